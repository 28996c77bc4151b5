"""Issue 13: studies on Ray (`sweeplab run --executor ray`), on a real Ray on this machine's loopback.

Every Ray process a test starts gets RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 and the driver uses
``ray.init(address="local")``: Ray then listens on 127.0.0.1 only, which the tests assert. Ray is
stopped by the PIDs and process groups the tests started, never with ``ray stop``.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from sweeplab.store import Store
from sweeplab.study import load_study
from sweeplab.study.execute import run_study

from helpers import LOOPBACK_ENV, sweeplab

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'sweeplab[ray]')")
TIMING = {"epoch_time_s", "train_images_per_s", "peak_mem_mb", "finished_at"}
EXE = Path(sys.executable).parent / "sweeplab"

STUDY = """
[study]
name = "{name}"
seeds = {seeds}
metric = "test_acc"

[baseline]
epochs = {epochs}
batch_size = {batch}
device = "cpu"
data = {{ dataset = "digits" }}
model = {{ name = "mlp", hidden = [16] }}
optim = {{ name = "sgd", lr = 0.05, momentum = 0.9 }}

[[arm]]
name = "linear"
model = {{ name = "linear" }}
{extra}
"""

#: A user's network that builds and passes the preflight forward (no grad), then raises in training.
BOOM = '''\
import torch
from torch import nn


class Boom(nn.Module):
    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.fc = nn.Linear(int(torch.tensor(input_shape).prod()), num_classes)

    def forward(self, x):
        if torch.is_grad_enabled():
            raise RuntimeError("boom: this network refuses to train")
        return self.fc(x.flatten(1))
'''


def write_study(tmp_path: Path, name="r", seeds=1, epochs=2, batch=64, extra="") -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(STUDY.format(name=name, seeds=seeds, epochs=epochs, batch=batch, extra=extra))
    return p


def epoch_rows(db: Path) -> dict[tuple[str, int], dict]:
    with Store(db, readonly=True) as store:
        return {(run.id, r["epoch"]): {k: v for k, v in r.items() if k not in TIMING}
                for run in store.list_runs() for r in store.epochs(run.id)}


def epochs_by_run(db: Path) -> dict[str, list[int]]:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            rows = con.execute("select run_id, epoch from epochs order by run_id, epoch").fetchall()
        finally:
            con.close()
    except sqlite3.Error:  # not created yet
        return {}
    out: dict[str, list[int]] = {}
    for run_id, epoch in rows:
        out.setdefault(run_id, []).append(epoch)
    return out


def statuses(db: Path) -> dict[str, tuple[str, str | None]]:
    with Store(db, readonly=True) as store:
        return {r.id: (r.status, r.status_detail) for r in store.list_runs()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listeners(root_pids: list[int]) -> list[tuple[str, str, int]]:
    """(process name, ip, port) of every listening socket of these processes and their children."""
    import psutil

    procs = []
    for pid in root_pids:
        try:
            p = psutil.Process(pid)
            procs += [p, *p.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    out = []
    for p in procs:
        try:
            conns = p.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out += [(p.name(), c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
    return out


def _loopback(ip: str) -> bool:
    """127.0.0.0/8, also as an IPv4-mapped IPv6 address (::ffff:127.0.0.1)."""
    addr = ipaddress.ip_address(ip)
    addr = getattr(addr, "ipv4_mapped", None) or addr
    return addr.version == 4 and addr in ipaddress.ip_network("127.0.0.0/8")


def assert_loopback_only(root_pids: list[int]) -> None:
    found = listeners(root_pids)
    assert found, "found no Ray listener to check"
    outside = [f for f in found if not _loopback(f[1])]
    assert not outside, f"Ray listens outside 127.0.0.0/8: {outside}"


@pytest.fixture(scope="module")
def local_ray():
    """One Ray on this machine for the module (start-up takes seconds), loopback only."""
    if not HAVE_RAY:
        pytest.skip("ray is not installed (pip install 'sweeplab[ray]')")
    old = {k: os.environ.get(k) for k in LOOPBACK_ENV}
    os.environ.update(LOOPBACK_ENV)  # before ray is imported: it reads this when imported
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- without Ray (a few seconds each: the real CLI in a subprocess) -------------------------------

@pytest.mark.slow
@pytest.mark.timeout(120)
def test_without_ray_the_executor_says_how_to_install_it(tmp_path):
    fake = tmp_path / "no_ray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    study = write_study(tmp_path)
    r = sweeplab("run", str(study), "--out", str(tmp_path / "out"), "--executor", "ray",
                 env={"PYTHONPATH": str(fake.parent)})
    assert r.returncode == 2, r.stdout + r.stderr
    assert "pip install 'sweeplab[ray]'" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "out").exists()  # nothing recorded


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_ray_options_without_the_ray_executor_are_refused(tmp_path):
    r = sweeplab("run", str(write_study(tmp_path)), "--out", str(tmp_path / "out"), "--address", "auto")
    assert r.returncode == 2 and "--address" in r.stderr and "--executor ray" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_an_address_is_checked_to_answer_before_ray_is_asked():
    """Malformed or silent addresses are one line naming --address (ray.init retried them for
    minutes, printing its log); a port that listens passes. No Ray is imported for this."""
    from sweeplab.errors import ConfigError
    from sweeplab.executor.ray_executor import check_reachable

    for bad, words in [("", "host:port"), ("a:b", "host:port"), ("10.0.0.5", "host:port"), ("h:99999", "host:port"),
                       ("no-such-host.invalid:6379", "nothing answers"), (f"127.0.0.1:{free_port()}", "refused")]:
        with pytest.raises(ConfigError) as e:
            check_reachable(bad, timeout_s=2)
        assert str(e.value).startswith(f"--address {bad!r}:") and words in str(e.value), str(e.value)
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(1)
        check_reachable(f"127.0.0.1:{listening.getsockname()[1]}")
        check_reachable(f"ray://127.0.0.1:{listening.getsockname()[1]}")
    check_reachable("auto")  # left to Ray, which fails at once without a cluster


@needs_ray
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_bad_address_or_resources_leave_the_store_as_it_was(tmp_path):
    """The study is stored only once Ray is joined and can hold a run: before, a silent address
    hung for minutes after recording a new version, and --address auto without a cluster or
    --num-cpus beyond the cluster failed after it."""
    out = tmp_path / "out"
    first = write_study(tmp_path, name="kept", epochs=1)
    assert sweeplab("run", str(first), "--out", str(out), "--workers", "1").returncode == 0
    study = write_study(tmp_path, name="kept", epochs=2)  # a new version, with runs to train
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "sweeplab.db-shm"}
    for extra in (["--address", f"127.0.0.1:{free_port()}"], ["--address", "auto"], ["--num-cpus", "1000"]):
        r = sweeplab("run", str(study), "--out", str(out), "--executor", "ray", *extra,
                     env={**LOOPBACK_ENV, "RAY_ADDRESS": ""}, timeout=120)
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert r.returncode == 2 and len(errors) == 1 and extra[0] in errors[0], r.stderr
        assert "Traceback" not in r.stderr
        assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != "sweeplab.db-shm"} == before, extra


# -- on a local Ray (slow) -----------------------------------------------------------------------

@needs_ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_same_stored_results_as_the_local_executor_and_loopback_only(tmp_path, local_ray):
    from sweeplab.executor.ray_executor import RayOptions

    spec = load_study(write_study(tmp_path, seeds=2, epochs=3))
    pids: dict[str, int] = {}

    def on_event(run_id, event, info):
        if event == "worker":
            pids[run_id] = info["pid"]

    results = run_study(spec, tmp_path / "ray" / "sweeplab.db", ray=RayOptions(), on_event=on_event)
    assert_loopback_only([os.getpid()])  # the local Ray's GCS, raylet and workers
    run_study(spec, tmp_path / "local" / "sweeplab.db", workers=1)

    assert len(results) == 4 and all(r["status"] == "completed" for r in results.values())
    assert len(pids) == 4 and os.getpid() not in pids.values()  # trained in Ray's workers
    ray_rows, local_rows = epoch_rows(tmp_path / "ray" / "sweeplab.db"), epoch_rows(tmp_path / "local" / "sweeplab.db")
    assert len(ray_rows) == 4 * 3
    assert ray_rows == local_rows  # every stored digit
    with Store(tmp_path / "ray" / "sweeplab.db", readonly=True) as store:
        for run in store.list_runs():
            assert run.status == "completed" and run.params and run.data_checksum and run.wall_time_s > 0
            assert store.load_checkpoint(run.id, "last").epoch == 3 and store.load_checkpoint(run.id, "best")


@needs_ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_worker_killed_mid_epoch_is_retried_from_its_last_epoch(tmp_path, local_ray):
    from sweeplab.executor.ray_executor import RayOptions

    # batch 2 on digits: hundreds of steps per epoch, so the kill lands inside epoch 2.
    spec = load_study(write_study(tmp_path, epochs=4, batch=2))
    target = spec.runs[0].run_id
    seen: dict[str, list] = {"workers": [], "retries": [], "killed_in": []}

    def on_event(run_id, event, info):
        if run_id != target:
            return
        if event == "worker":
            seen["workers"].append(info["pid"])
        elif event == "retry":
            seen["retries"].append(info)
        elif event == "batch" and info["epoch"] == 2 and not seen["killed_in"] and info["step"] < info["steps"]:
            seen["killed_in"].append(info["epoch"])
            os.kill(seen["workers"][-1], signal.SIGKILL)

    db = tmp_path / "ray" / "sweeplab.db"
    results = run_study(spec, db, ray=RayOptions(max_retries=2), on_event=on_event)
    assert seen["killed_in"] == [2] and len(seen["retries"]) == 1, seen
    assert len(set(seen["workers"])) == 2  # a new worker took the run over
    assert results[target]["status"] == "completed"
    assert epochs_by_run(db)[target] == [1, 2, 3, 4]  # none missing, none twice
    # resumed from epoch 1's checkpoint, it trained the same curve as an uninterrupted run
    run_study(spec, tmp_path / "local" / "sweeplab.db", workers=1)
    assert epoch_rows(db) == epoch_rows(tmp_path / "local" / "sweeplab.db")


@needs_ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_run_raising_in_its_task_fails_with_its_reason_and_the_others_complete(tmp_path, local_ray):
    from sweeplab.executor.ray_executor import RayOptions
    from sweeplab.study.execute import prepare_study

    (tmp_path / "nets.py").write_text(BOOM)
    study = write_study(tmp_path, extra='[[arm]]\nname = "boom"\nmodel = { name = "nets.py:Boom" }\n')
    spec = load_study(study)
    db = tmp_path / "out" / "sweeplab.db"
    plan = prepare_study(spec, db)
    (tmp_path / "nets.py").unlink()  # the code reaches the workers inside the run's config, not by path
    results = run_study(spec, db, plan=plan, ray=RayOptions())
    by_arm = {r.arm: statuses(db)[r.run_id] for r in spec.runs}
    assert by_arm["baseline"][0] == "completed" and by_arm["linear"][0] == "completed"
    assert by_arm["boom"] == ("failed", "RuntimeError: boom: this network refuses to train")
    assert {r["status"] for r in results.values()} == {"completed", "failed"}
    done = epochs_by_run(db)
    boom = next(r.run_id for r in spec.runs if r.arm == "boom")
    assert boom not in done and sorted(map(len, done.values())) == [2, 2]


# -- a `ray start` cluster joined with --address, and the driver killed (slow) -------------------

@pytest.fixture
def ray_head(tmp_path):
    """`ray start --head --block` on a free loopback port, stopped by its own process group."""
    if not HAVE_RAY:
        pytest.skip("ray is not installed (pip install 'sweeplab[ray]')")
    port = free_port()
    env = {**os.environ, **LOOPBACK_ENV}
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's unix socket paths must fit 107 bytes
    head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--num-cpus", "2",
                             "--port", str(port), "--node-ip-address", "127.0.0.1", "--include-dashboard", "false",
                             "--temp-dir", temp, "--block"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        address = f"127.0.0.1:{port}"
        end = time.monotonic() + 90
        while time.monotonic() < end and not any(p == port for _, _, p in listeners([head.pid])):
            time.sleep(0.5)
        assert head.poll() is None, "ray start exited"
        yield address, head.pid
    finally:
        head.terminate()  # `ray start --block` stops the processes it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait(timeout=30)
        try:
            os.killpg(head.pid, signal.SIGKILL)  # anything of its group left behind
        except ProcessLookupError:
            pass
        shutil.rmtree(temp, ignore_errors=True)


@needs_ray
@pytest.mark.slow
@pytest.mark.timeout(480)
def test_driver_killed_then_rerun_resumes_on_a_joined_cluster(tmp_path, ray_head):
    address, head_pid = ray_head
    study = write_study(tmp_path, epochs=5, batch=4)  # 2 runs; an epoch takes a while at batch 4
    out, db = tmp_path / "out", tmp_path / "out" / "sweeplab.db"
    env = {**os.environ, **LOOPBACK_ENV, "COLUMNS": "200"}
    # 2 cores per run on a 2-core cluster: one run at a time, so one finishes before the kill
    cmd = [str(EXE), "run", str(study), "--out", str(out), "--executor", "ray", "--address", address,
           "--num-cpus", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    def second_run_started() -> bool:  # the first run has all its epochs, the second at least one
        done = sorted(map(len, epochs_by_run(db).values()))
        return len(done) == 2 and done[0] >= 1 and done[1] == 5

    try:
        end = time.monotonic() + 240
        while time.monotonic() < end and not second_run_started():
            time.sleep(0.05)
        assert second_run_started(), "the study never reached its second run"
        assert_loopback_only([head_pid, proc.pid])
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver (its Ray tasks die with their job)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with Store(db, readonly=True) as store:
        before = {r.id: (r.status, r.finished_at, store.epochs(r.id)) for r in store.list_runs()}
    assert sorted(s for s, _, _ in before.values()) == ["completed", "running"]
    assert all(len(e) < 5 for s, _, e in before.values() if s == "running")

    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    after = epochs_by_run(db)
    assert len(after) == 2 and all(e == [1, 2, 3, 4, 5] for e in after.values()), after
    with Store(db, readonly=True) as store:
        for rid, (status, finished_at, rows) in before.items():
            assert store.get_run(rid).status == "completed"
            kept = store.epochs(rid)[: len(rows)]
            assert kept == rows  # nothing committed before the kill was trained again
            if status == "completed":  # the finished run was not trained again
                assert store.get_run(rid).finished_at == finished_at


@needs_ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_step_rows_and_longer_runs_on_ray_match_the_local_executor(tmp_path, local_ray):
    """eval_every_steps rows stream back with their epoch; a longer run continues the shorter one
    on the driver (the worker's private store has no other runs) and ends where local training does."""
    from sweeplab.executor.ray_executor import RayOptions

    path = write_study(tmp_path, epochs=2, extra="").read_text().replace(
        "[baseline]\n", "[baseline]\neval_every_steps = 7\n")
    study = tmp_path / "steps.toml"
    study.write_text(path)
    ray_db, local_db = tmp_path / "ray" / "sweeplab.db", tmp_path / "local" / "sweeplab.db"
    events: list[tuple[str, str, dict]] = []
    run_study(load_study(study), ray_db, ray=RayOptions())
    run_study(load_study(study, epochs=4), ray_db, ray=RayOptions(), on_event=lambda r, e, i: events.append((r, e, i)))
    run_study(load_study(study, epochs=4), local_db, workers=1)

    def steps(db):
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT s.run_id, s.step, s.epoch, s.train_loss, s.test_acc FROM steps s"
                                " JOIN runs r ON r.id = s.run_id WHERE r.epochs_planned = 4 ORDER BY 1, 2").fetchall()

    assert steps(ray_db) and steps(ray_db) == steps(local_db)
    four = {k: v for k, v in epoch_rows(ray_db).items() if len(epochs_by_run(ray_db)[k[0]]) == 4}
    assert four == {k: v for k, v in epoch_rows(local_db).items() if k in four} and len(four) == 2 * 4
    said = [i["continuation"] for _, e, i in events if e == "start" and i.get("continuation")]
    assert len(said) == 2 and all(m.startswith("continued from run") and m.endswith("at epoch 2") for m in said)
    with Store(ray_db, readonly=True) as store:
        longer = [r for r in store.list_runs() if r.epochs_planned == 4]
        assert len(longer) == 2 and all(r.continued_from for r in longer)


@needs_ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_an_interrupt_returns_only_once_every_task_stream_has_ended(local_ray):
    """Ctrl-C cancels the tasks; the driver then shuts its Ray down. A thread still reading a task's
    stream at that moment makes Ray start again inside that thread, whose core worker then ends
    the whole process (exit 1) before the runs are marked interrupted: so the executor raises only
    after every stream thread has seen its task end."""
    from sweeplab.executor import Task
    from sweeplab.executor.ray_executor import RayExecutor, RayOptions

    def ticking(payload, emit):  # pickled by value: the workers need not import this module
        for i in range(600):
            emit("tick", {"i": i})
            time.sleep(0.1)
        return payload

    def on_event(key, event, info):
        if event == "tick" and info["i"] == 3:
            raise KeyboardInterrupt  # as the driver's Ctrl-C handler does inside the event loop

    with pytest.raises(KeyboardInterrupt):
        RayExecutor(RayOptions()).run([Task("a", "a"), Task("b", "b")], ticking, on_event)
    reading = [t for t in threading.enumerate() if t.name == "sweeplab-ray-stream" and t.is_alive()]
    assert reading == []


@needs_ray
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_an_address_where_nothing_listens_is_one_line_before_anything_is_stored(tmp_path):
    """Ray itself retries a dead address for minutes, printing warnings; the driver looks first."""
    port = free_port()  # nothing listens there
    study = write_study(tmp_path)
    r = sweeplab("run", str(study), "--out", str(tmp_path / "out"), "--executor", "ray", "--address",
                 f"127.0.0.1:{port}", env=LOOPBACK_ENV, timeout=100)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-2000:]
    assert lines[0].startswith(f"error: --address '127.0.0.1:{port}'") and "nothing answers" in lines[0], lines
    assert not (tmp_path / "out" / "sweeplab.db").exists()


@needs_ray
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_tensorboard_with_ray_is_refused_before_the_study_is_recorded(tmp_path):
    study = write_study(tmp_path)
    db = tmp_path / "out" / "sweeplab.db"
    db.parent.mkdir()
    Store(db).close()
    before = db.read_bytes()
    r = sweeplab("run", str(study), "--out", str(db.parent), "--executor", "ray", "--tensorboard",
                 env=LOOPBACK_ENV, timeout=100)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "--tensorboard" in lines[0], r.stderr[-2000:]
    assert "Started a local Ray" not in r.stderr  # refused before Ray starts, too
    assert db.read_bytes() == before


@needs_ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_longer_max_batch_run_on_ray_says_why_it_trains_from_scratch(tmp_path, local_ray):
    """batch_size = "max" is resolved on the worker's device, which the driver cannot see before
    it continues a run: so the longer run trains from scratch there, and says so, as locally."""
    from sweeplab.executor.ray_executor import RayOptions

    text = write_study(tmp_path, epochs=1).read_text().replace("batch_size = 64", 'batch_size = "max"\nmax_batch_size = 64')
    study = tmp_path / "max.toml"
    study.write_text(text)
    db = tmp_path / "ray" / "sweeplab.db"
    run_study(load_study(study), db, ray=RayOptions())
    events: list[tuple[str, str, dict]] = []
    run_study(load_study(study, epochs=2), db, ray=RayOptions(), on_event=lambda r, e, i: events.append((r, e, i)))
    said = [i.get("continuation") for _, e, i in events if e == "start"]
    assert len(said) == 2 and all(m and m.startswith("trains from scratch: ") and "max" in m for m in said), said
