"""Tests of the run store against real SQLite files: round trips, constraints, schema versions,
concurrent writer processes and a writer killed mid-commit."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import sweeplab
from sweeplab.errors import StoreError
from sweeplab.store import (
    EPOCH_METRIC_COLUMNS,
    RUN_STATUSES,
    SCHEMA_VERSION,
    Arm,
    EpochConflictError,
    Link,
    Store,
    default_worker_id,
)
from sweeplab.store import _schema

SRC_DIR = str(Path(sweeplab.__file__).resolve().parents[1])


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "runs" / "sweeplab.db") as s:
        yield s


def _run(store: Store, run_id: str = "r1", seed: int = 0, **kwargs):
    return store.upsert_run(run_id, {"model": "mlp", "seed": seed, "run": run_id}, seed, **kwargs)


def _blob(run_id: str, epoch: int, size: int = 64) -> bytes:
    """Checkpoint bytes that say which run and epoch they belong to."""
    head = f"{run_id}:{epoch}:".encode()
    return (head * (size // len(head) + 1))[:size]


# ---------------------------------------------------------------------- opening


def test_open_creates_folders_wal_and_schema_version(tmp_path):
    path = tmp_path / "deep" / "er" / "sweeplab.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "epochs", "checkpoints", "studies", "arms", "study_runs"} <= tables
    conn.close()


@pytest.mark.parametrize("readonly", [False, True])
def test_newer_schema_is_refused(tmp_path, readonly):
    path = tmp_path / "s.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer sweeplab") as info:
        Store(path, readonly=readonly)
    assert f"schema {SCHEMA_VERSION + 3} > {SCHEMA_VERSION}" in str(info.value)
    assert "upgrade sweeplab" in str(info.value)


@pytest.mark.parametrize("readonly", [False, True])
def test_garbage_file_is_refused_and_left_alone(tmp_path, readonly):
    path = tmp_path / "notes.db"
    content = b"these are my notes, not a database\n" * 200
    path.write_bytes(content)
    with pytest.raises(StoreError, match="not a SQLite database"):
        Store(path, readonly=readonly)
    assert path.read_bytes() == content


def test_other_programs_sqlite_file_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE contacts (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a sweeplab run store"):
        Store(path)
    conn = sqlite3.connect(path)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert tables == ["contacts"]
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0


def test_readonly_missing_file_errors_without_creating_it(tmp_path):
    path = tmp_path / "nope" / "sweeplab.db"
    with pytest.raises(StoreError, match="no run store") as info:
        Store(path, readonly=True)
    assert str(path) in str(info.value)
    assert not path.exists() and not path.parent.exists()


def test_readonly_reads_closed_store_and_refuses_writes(tmp_path):
    path = tmp_path / "s.db"
    with Store(path) as writer:
        _run(writer)
        writer.commit_epoch("r1", 1, {"test_acc": 0.25}, b"ckpt")
    with Store(path, readonly=True) as reader:
        assert reader.get_run("r1").epochs_done == 1
        assert reader.load_checkpoint("r1") == (1, b"ckpt")
        with pytest.raises(StoreError, match="read-only"):
            reader.commit_epoch("r1", 2, {}, b"x")
        with pytest.raises(StoreError, match="read-only"):
            _run(reader, "r2")
    with Store(path) as writer:
        assert writer.last_epoch("r1") == 1
        assert [r.id for r in writer.list_runs()] == ["r1"]


def test_reader_sees_commits_of_a_live_writer(tmp_path):
    path = tmp_path / "s.db"
    with Store(path) as writer, Store(path, readonly=True) as reader:
        _run(writer)
        assert reader.last_epoch("r1") == 0
        writer.commit_epoch("r1", 1, {"train_loss": 2.0}, b"a")
        assert reader.last_epoch("r1") == 1
        assert reader.epochs("r1")[0]["train_loss"] == 2.0


def test_migrations_apply_in_order_and_keep_data(tmp_path, monkeypatch):
    path = tmp_path / "s.db"
    with Store(path) as s:
        _run(s, label="old")

    def v2(conn):
        conn.execute("ALTER TABLE runs ADD COLUMN notes TEXT DEFAULT 'added by v2'")

    monkeypatch.setattr(_schema, "_MIGRATIONS", [*_schema._MIGRATIONS, v2])
    with Store(path) as s:
        assert s.get_run("r1").label == "old"
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    assert conn.execute("SELECT notes FROM runs WHERE id='r1'").fetchone()[0] == "added by v2"
    conn.close()
    monkeypatch.undo()
    with pytest.raises(StoreError, match="newer sweeplab"):
        Store(path)


def test_writes_wait_for_another_writers_lock(tmp_path):
    path = tmp_path / "s.db"
    with Store(path) as s:
        _run(s)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    with Store(path, timeout_s=0.1) as impatient:
        with pytest.raises(StoreError, match="stayed locked"):
            impatient.commit_epoch("r1", 1, {}, b"x")
        # The lock is released only after this block: raising at all shows it gave up waiting.
    release.start()
    with Store(path, timeout_s=10) as patient:
        patient.commit_epoch("r1", 1, {}, b"x")
        assert patient.last_epoch("r1") == 1
    release.join()
    holder.close()


# ---------------------------------------------------------------------- runs


def test_run_round_trip_and_metadata(store):
    run = _run(store, label="mlp s0", epochs_planned=5)
    assert (run.id, run.seed, run.label, run.status) == ("r1", 0, "mlp s0", "pending")
    assert run.config == {"model": "mlp", "seed": 0, "run": "r1"}
    assert run.epochs_done == 0 and run.wall_time_s == 0.0

    env = {"torch": "2.14.1", "host": "box"}
    updated = store.update_run(
        "r1", env_json=env, device="cuda:0", params=1234, flops=5.5e6, data_source="cifar10",
        data_checksum="abc", batch_size_used=256,
    )
    assert updated.env == env
    assert (updated.device, updated.params, updated.flops) == ("cuda:0", 1234, 5.5e6)
    assert store.get_run("r1") == updated

    with pytest.raises(TypeError, match="status"):
        store.update_run("r1", status="completed")
    with pytest.raises(StoreError, match="no run with id"):
        store.update_run("ghost", device="cpu")
    with pytest.raises(StoreError, match="no run with id"):
        store.get_run("ghost")


def test_upsert_never_clobbers_and_rejects_a_different_config(store):
    _run(store, epochs_planned=3)
    store.claim_run("r1")
    store.commit_epoch("r1", 1, {"test_acc": 0.5}, b"c1")
    store.set_status("r1", "completed")

    again = store.upsert_run("r1", {"run": "r1", "seed": 0, "model": "mlp"}, 0, label="late label")
    assert again.status == "completed" and again.epochs_done == 1
    assert again.label == "late label"  # a missing label is filled in...
    assert store.upsert_run("r1", again.config, 0, label="other").label == "late label"  # ...once
    with pytest.raises(StoreError, match="different config"):
        store.upsert_run("r1", {"model": "cnn"}, 0)
    with pytest.raises(StoreError, match="different config or seed"):
        store.upsert_run("r1", again.config, 1)


def test_status_timestamps_detail_and_wall_time(store):
    _run(store)
    running = store.set_status("r1", "running", add_wall_time_s=1.0)
    assert running.started_at and running.finished_at is None
    assert running.worker == default_worker_id()
    store.commit_epoch("r1", 1, {}, b"x", add_wall_time_s=2.5)
    diverged = store.set_status("r1", "diverged", "epoch 1: train loss is nan", add_wall_time_s=0.5)
    assert diverged.status_detail == "epoch 1: train loss is nan"
    assert diverged.finished_at is not None
    assert diverged.wall_time_s == pytest.approx(4.0)
    resumed = store.set_status("r1", "running")
    assert resumed.started_at == running.started_at  # first start is kept over resumes
    assert resumed.finished_at is None and resumed.status_detail is None
    with pytest.raises(ValueError, match="unknown run status"):
        store.set_status("r1", "exploded")


def test_run_record_reads_like_a_mapping(store):
    run = _run(store, label="x")
    assert run["status"] == "pending" and run["label"] == "x"
    assert run.get("status_detail") is None and run.get("no_such_field", 7) == 7
    with pytest.raises(KeyError):
        run["no_such_field"]


def test_absolute_wall_time_and_add_are_exclusive(store):
    _run(store)
    assert store.set_status("r1", "completed", wall_time_s=12.5).wall_time_s == 12.5
    with pytest.raises(ValueError, match="not both"):
        store.set_status("r1", "completed", wall_time_s=1.0, add_wall_time_s=1.0)
    with pytest.raises(ValueError, match="finite"):
        store.update_run("r1", wall_time_s=-1)
    assert store.get_run("r1").wall_time_s == 12.5


def test_forget_run_wipes_results_but_keeps_run_and_links(store):
    _run(store, label="keep me")
    store.save_study("s", spec_json={}, arms=["a"], links=[Link("a", 0, "r1")])
    store.claim_run("r1")
    with pytest.raises(StoreError, match="being trained"):
        store.forget_run("r1")  # claimed by this (live) process
    store.commit_epoch("r1", 1, {"test_acc": 0.1}, b"last", b"best", add_wall_time_s=3.0)
    store.set_status("r1", "completed")

    assert store.forget_run("r1") is True
    run = store.get_run("r1")
    assert (run.status, run.epochs_done, run.wall_time_s) == ("pending", 0, 0.0)
    assert run.label == "keep me"
    assert store.epochs("r1") == [] and store.load_checkpoint("r1", "best") is None
    assert [r.run_id for r in store.study_runs("s")] == ["r1"]
    store.commit_epoch("r1", 1, {"test_acc": 0.2}, b"again")  # numbering starts over
    assert store.forget_run("ghost") is False


def test_claim_run_is_exclusive(store):
    _run(store)
    assert store.claim_run("r1", worker="a:1") is True
    assert store.claim_run("r1", worker="b:2") is False
    assert store.get_run("r1").worker == "a:1"
    store.set_status("r1", "completed")
    assert store.claim_run("r1") is False
    assert store.get_run("r1").status == "completed"
    store.set_status("r1", "failed", "boom")
    assert store.claim_run("r1", from_statuses=["failed"]) is True
    with pytest.raises(StoreError, match="no run with id"):
        store.claim_run("ghost")


def test_find_run_by_prefix(store):
    for run_id in ("abc111", "abc222", "abd333"):
        _run(store, run_id)
    assert store.find_run("abc1").id == "abc111"
    assert store.find_run("abd").id == "abd333"
    assert store.find_run("abc222").id == "abc222"
    with pytest.raises(StoreError, match="ambiguous"):
        store.find_run("ab")
    with pytest.raises(StoreError, match="no run id starts with"):
        store.find_run("zz")


def test_list_runs_and_counts_filter_by_study_and_status(store):
    for i, run_id in enumerate(["a", "b", "c"]):
        _run(store, run_id, seed=i)
    store.set_status("b", "completed")
    store.save_study(
        "s", spec_json={}, arms=["x"], links=[Link("x", 2, "c"), Link("x", 1, "b")]
    )
    assert [r.id for r in store.list_runs()] == ["a", "b", "c"]
    assert [r.id for r in store.list_runs(study="s")] == ["c", "b"]  # study order
    assert [r.id for r in store.list_runs(status="pending")] == ["a", "c"]
    assert [r.id for r in store.list_runs(study="s", status=["completed"])] == ["b"]
    counts = store.counts_by_status()
    assert set(counts) == set(RUN_STATUSES)
    assert (counts["pending"], counts["completed"], counts["running"]) == (2, 1, 0)
    assert store.counts_by_status("s")["pending"] == 1
    with pytest.raises(StoreError, match="no study named"):
        store.list_runs(study="typo")


def test_reset_stale_running_only_touches_dead_workers(store):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped, so its pid is gone
    host = default_worker_id().rpartition(":")[0]
    for run_id in ("dead", "alive", "remote", "done"):
        _run(store, run_id)
    store.claim_run("dead", worker=f"{host}:{dead.pid}")
    store.claim_run("alive")
    store.claim_run("remote", worker="some-other-host:1")
    store.claim_run("done", worker=f"{host}:{dead.pid}")
    store.set_status("done", "completed")

    assert store.reset_stale_running() == ["dead"]
    assert store.get_run("dead").status == "interrupted"
    assert "died" in store.get_run("dead").status_detail
    assert store.get_run("alive").status == "running"
    assert store.get_run("remote").status == "running"
    assert store.get_run("done").status == "completed"

    time.sleep(0.05)
    assert store.reset_stale_running(stale_after_s=3600) == []
    assert sorted(store.reset_stale_running(stale_after_s=0.01)) == ["alive", "remote"]

    store.claim_run("alive")
    assert store.mark_interrupted(["alive", "done", "dead"], "ctrl-c") == ["alive"]
    assert store.get_run("alive").status_detail == "ctrl-c"
    assert store.get_run("done").status == "completed"


# ---------------------------------------------------------------------- epochs and checkpoints


class _Scalar:
    """Stands in for a 0-d numpy/torch value: anything with .item()."""

    def __init__(self, value):
        self.value = value

    def item(self):
        return self.value


def test_epoch_metrics_route_to_columns_and_extra(store, tmp_path):
    _run(store)
    metrics = {
        "train_loss": _Scalar(1.5),
        "test_acc": 0.75,
        "lr": 0.1,
        "per_class_acc": [0.5, 1.0],
        "confusion": [[3, 1], [0, 4]],
        "note": "warmup",
    }
    store.commit_epoch("r1", 1, metrics, b"x")
    store.commit_epoch("r1", 2, {"train_loss": float("nan"), "val_acc": float("inf")}, b"y")

    first, second = store.epochs("r1")
    assert first["epoch"] == 1 and first["run_id"] == "r1" and first["finished_at"]
    for key, value in metrics.items():
        assert first[key] == (value.item() if isinstance(value, _Scalar) else value)
    assert first["val_loss"] is None  # every column is present, None when not measured
    assert set(EPOCH_METRIC_COLUMNS) <= set(first)
    assert second["train_loss"] != second["train_loss"]  # nan survives (SQLite would drop it)
    assert second["val_acc"] == float("inf")

    conn = sqlite3.connect(tmp_path / "runs" / "sweeplab.db")
    test_acc, extra = conn.execute(
        "SELECT test_acc, extra_json FROM epochs WHERE run_id='r1' AND epoch=1"
    ).fetchone()
    conn.close()
    assert test_acc == 0.75  # a real column, queryable from SQL
    assert "per_class_acc" in extra and "test_acc" not in extra

    with pytest.raises(ValueError, match="set by the store"):
        store.commit_epoch("r1", 3, {"epoch": 3}, None)
    with pytest.raises(TypeError, match="must be a number"):
        store.commit_epoch("r1", 3, {"test_acc": "high"}, None)
    assert store.last_epoch("r1") == 2


def test_duplicate_or_skipped_epoch_is_rejected_atomically(store, tmp_path):
    _run(store)
    store.commit_epoch("r1", 1, {"train_loss": 1.0}, b"first")
    with pytest.raises(EpochConflictError, match="already recorded"):
        store.commit_epoch("r1", 1, {"train_loss": 9.0}, b"second", b"best?")
    with pytest.raises(EpochConflictError, match="next epoch is 2"):
        store.commit_epoch("r1", 3, {}, b"third")
    with pytest.raises(ValueError, match="numbered from 1"):
        store.commit_epoch("r1", 0, {}, b"zero")
    assert [e["train_loss"] for e in store.epochs("r1")] == [1.0]
    assert store.load_checkpoint("r1") == (1, b"first")  # the failed commit changed nothing
    assert store.load_checkpoint("r1", "best") is None
    with pytest.raises(StoreError, match="no run with id"):
        store.commit_epoch("ghost", 1, {}, b"x")

    # The schema itself refuses a second row, whatever code writes it.
    conn = sqlite3.connect(tmp_path / "runs" / "sweeplab.db")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO epochs (run_id, epoch, finished_at) VALUES ('r1', 1, 'now')"
        )
    conn.close()


def test_checkpoints_last_replaced_best_kept_until_improved(store, tmp_path):
    _run(store)
    assert store.load_checkpoint("r1") is None
    store.commit_epoch("r1", 1, {"test_acc": 0.5}, _blob("r1", 1), best_ckpt=_blob("r1", 1))
    store.commit_epoch("r1", 2, {"test_acc": 0.4}, _blob("r1", 2))
    store.commit_epoch("r1", 3, {"test_acc": 0.6}, _blob("r1", 3), best_ckpt=_blob("r1", 3))
    store.commit_epoch("r1", 4, {"test_acc": 0.55}, _blob("r1", 4))
    assert store.load_checkpoint("r1") == (4, _blob("r1", 4))
    assert store.load_checkpoint("r1", "best") == (3, _blob("r1", 3))
    with pytest.raises(ValueError, match="kind"):
        store.load_checkpoint("r1", "first")

    conn = sqlite3.connect(tmp_path / "runs" / "sweeplab.db")
    # Replaced in place, not piled up: one row per kind.
    assert conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == 2
    conn.execute("UPDATE checkpoints SET data = X'00' WHERE kind = 'last'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="corrupt"):
        store.load_checkpoint("r1")


# ---------------------------------------------------------------------- studies


def test_study_round_trip_with_a_run_shared_by_two_arms(store):
    _run(store, "base0", seed=0)
    _run(store, "base1", seed=1)
    _run(store, "bn0", seed=0)
    spec = {"base": {"model": "mlp"}, "arms": {"base": {}, "same": {"lr": 0.1}, "bn": {"bn": True}}}
    arms = [Arm("base"), Arm("same", {"lr": 0.1}), Arm("bn", '{"bn": true}')]
    links = [
        Link("base", 0, "base0", "base s0"),
        Link("base", 1, "base1", "base s1"),
        Link("same", 0, "base0", "same s0"),  # resolves to the same config as base s0
        Link("bn", 0, "bn0", "bn s0"),
    ]
    study = store.save_study("bn-ablation", spec_json=spec, arms=arms, links=links,
                             description="does BN help", metric="test_acc")
    assert study.spec == spec and study.metric == "test_acc"
    assert [a.name for a in study.arms] == ["base", "same", "bn"]
    assert study.arms[1].override_json == '{"lr":0.1}'
    assert store.get_study("bn-ablation") == study

    store.commit_epoch("base0", 1, {"test_acc": 0.5}, b"c")
    rows = store.study_runs("bn-ablation")
    assert [(r.arm, r.seed, r.run_id, r.label) for r in rows] == [
        ("base", 0, "base0", "base s0"),
        ("base", 1, "base1", "base s1"),
        ("same", 0, "base0", "same s0"),
        ("bn", 0, "bn0", "bn s0"),
    ]
    assert rows[0].epochs_done == rows[2].epochs_done == 1
    assert store.counts_by_status("bn-ablation")["pending"] == 3  # base0 counted once

    epochs = store.all_epochs("bn-ablation")
    assert [(e["arm"], e["run_id"], e["epoch"], e["test_acc"]) for e in epochs] == [
        ("base", "base0", 1, 0.5),
        ("same", "base0", 1, 0.5),
    ]
    assert epochs[0]["label"] == "base s0" and epochs[0]["status"] == "pending"

    # Saving again updates the spec and links; runs and epochs are untouched.
    updated = store.save_study("bn-ablation", spec_json={"v": 2}, arms=["bn", "base"],
                               links=[Link("bn", 0, "bn0"), Link("base", 0, "base0")])
    assert updated.spec == {"v": 2} and updated.created_at == study.created_at
    assert [(r.arm, r.run_id) for r in store.study_runs("bn-ablation")] == [
        ("bn", "bn0"), ("base", "base0")
    ]
    assert store.last_epoch("base0") == 1 and store.get_run("base1").id == "base1"
    assert [s.name for s in store.list_studies()] == ["bn-ablation"]


def test_save_study_validates_links(store):
    _run(store, "r1")
    with pytest.raises(StoreError, match="not in the store"):
        store.save_study("s", spec_json={}, arms=["a"], links=[Link("a", 0, "missing")])
    with pytest.raises(ValueError, match="unknown arm"):
        store.save_study("s", spec_json={}, arms=["a"], links=[Link("b", 0, "r1")])
    with pytest.raises(ValueError, match="duplicate arm"):
        store.save_study("s", spec_json={}, arms=["a", "a"], links=[])
    with pytest.raises(StoreError, match="no study named"):
        store.get_study("s")  # nothing was half-saved


# ---------------------------------------------------------------------- processes


def _commit_epochs_worker(path: str, run_id: str, barrier, n_epochs: int) -> None:
    barrier.wait()  # all workers open the (not yet existing) file at once
    with Store(path) as s:
        s.upsert_run(run_id, {"run": run_id}, 0)
        assert s.claim_run(run_id)
        for epoch in range(1, n_epochs + 1):
            s.commit_epoch(run_id, epoch, {"train_loss": 1.0 / epoch, "worker": run_id},
                           _blob(run_id, epoch, 50_000), add_wall_time_s=0.01)
        s.set_status(run_id, "completed")


def test_four_processes_commit_concurrently_without_losing_rows(tmp_path):
    path = str(tmp_path / "fresh" / "sweeplab.db")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_commit_epochs_worker, args=(path, f"run{i}", barrier, 20))
             for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]

    with Store(path, readonly=True) as s:
        assert s.counts_by_status()["completed"] == 4
        total = 0
        for i in range(4):
            rows = s.epochs(f"run{i}")
            assert [r["epoch"] for r in rows] == list(range(1, 21))
            assert all(r["worker"] == f"run{i}" for r in rows)
            assert s.load_checkpoint(f"run{i}") == (20, _blob(f"run{i}", 20, 50_000))
            assert s.get_run(f"run{i}").wall_time_s == pytest.approx(0.2)
            total += len(rows)
        assert total == 80


def _claim_worker(path: str, run_ids: list[str], barrier, queue) -> None:
    with Store(path) as s:
        barrier.wait()
        queue.put([run_id for run_id in run_ids if s.claim_run(run_id)])


def test_concurrent_claims_give_each_run_to_one_worker(tmp_path):
    path = str(tmp_path / "sweeplab.db")
    run_ids = [f"r{i}" for i in range(12)]
    with Store(path) as s:
        for run_id in run_ids:
            _run(s, run_id)
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_claim_worker, args=(path, run_ids, barrier, queue))
             for _ in range(4)]
    for p in procs:
        p.start()
    claimed = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    flat = [run_id for got in claimed for run_id in got]
    assert sorted(flat) == sorted(run_ids)  # every run claimed, none twice


_KILL_TARGET = textwrap.dedent(
    """
    import sys
    from sweeplab.store import Store

    def blob(run_id, epoch, size):
        head = f"{run_id}:{epoch}:".encode()
        return (head * (size // len(head) + 1))[:size]

    path, size = sys.argv[1], int(sys.argv[2])
    with Store(path) as s:
        s.upsert_run("victim", {"run": "victim"}, 0)
        assert s.claim_run("victim")
        epoch = s.last_epoch("victim")
        while True:
            epoch += 1
            best = blob("victim", epoch, size) if epoch % 3 == 0 else None
            s.commit_epoch("victim", epoch, {"train_loss": 1.0 / epoch},
                           blob("victim", epoch, size), best)
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_writer_killed_mid_commit_leaves_consistent_epochs_and_checkpoints(tmp_path):
    path = tmp_path / "sweeplab.db"
    script = tmp_path / "victim.py"
    script.write_text(_KILL_TARGET)
    env = {**os.environ, "PYTHONPATH": SRC_DIR + os.pathsep + os.environ.get("PYTHONPATH", "")}
    size = 2_000_000  # big enough that most of the child's time is spent inside a commit
    seen_before = 0
    # Kill, reopen and resume three times on the same file, at different moments.
    for delay in (0.0, 0.037, 0.11):
        child = subprocess.Popen([sys.executable, str(script), str(path), str(size)], env=env)
        deadline = time.monotonic() + 60
        while True:
            assert child.poll() is None, "the writer died on its own"
            assert time.monotonic() < deadline, "the writer made no progress"
            if path.exists():
                try:
                    with Store(path, readonly=True) as probe:
                        if probe.last_epoch("victim") >= seen_before + 3:
                            break
                except StoreError:
                    pass  # not created yet
            time.sleep(0.01)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL

        with Store(path, readonly=True) as reader:  # a dashboard opening right after the crash
            assert reader.last_epoch("victim") >= seen_before + 3
        with Store(path) as s:
            conn = sqlite3.connect(path)
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            conn.close()
            rows = s.epochs("victim")
            n = len(rows)
            assert [r["epoch"] for r in rows] == list(range(1, n + 1))
            assert all(r["train_loss"] == pytest.approx(1.0 / r["epoch"]) for r in rows)
            last = s.load_checkpoint("victim")
            assert last == (n, _blob("victim", n, size))
            best = s.load_checkpoint("victim", "best")
            assert best == (n - n % 3, _blob("victim", n - n % 3, size))
            assert s.get_run("victim").status == "running"
            assert s.reset_stale_running() == ["victim"]
            assert s.get_run("victim").status == "interrupted"
        seen_before = n


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_store_refuses_use_across_fork(store):
    _run(store)
    pid = os.fork()
    if pid == 0:  # child: must not touch the parent's connection
        try:
            store.get_run("r1")
        except RuntimeError:
            store.close()  # must not finalise the inherited connection either
            os._exit(0)
        except BaseException:
            os._exit(2)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    store.commit_epoch("r1", 1, {}, b"x")  # the parent's connection still works
    assert store.last_epoch("r1") == 1
    assert store.load_checkpoint("r1") == (1, b"x")


def _open_fresh_worker(path: str, barrier) -> None:
    barrier.wait()
    with Store(path):
        pass


def test_many_processes_creating_one_store_at_once_all_open_it(tmp_path):
    # Regression: a process reading the header while another committed the new schema once saw
    # application_id from before and user_version from after, and called the file foreign.
    ctx = multiprocessing.get_context("fork")
    for trial in range(30):
        path = str(tmp_path / str(trial) / "sweeplab.db")
        barrier = ctx.Barrier(6)
        procs = [ctx.Process(target=_open_fresh_worker, args=(path, barrier)) for _ in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=60)
        assert [p.exitcode for p in procs] == [0] * 6, f"trial {trial}"
        with Store(path, readonly=True) as s:  # raises unless the schema is complete
            assert s.list_runs() == []
