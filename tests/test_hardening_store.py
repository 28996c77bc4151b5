"""Issue 8, items 3, 4 and 13: the run store is never changed by a refusal or a read, reads work
on a read-only filesystem, and a redefined study keeps its earlier versions findable."""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sweeplab.errors import StoreError
from sweeplab.store import Store
from sweeplab.study import parse_study
from sweeplab.study.execute import run_study

from helpers import sweeplab

STUDY = """
[study]
name = "{name}"
description = "hardening test study"
seeds = {seeds}
metric = "test_acc"

[baseline]
epochs = {epochs}
batch_size = 128
device = "cpu"
data = {{ dataset = "digits" }}
model = {{ name = "mlp", hidden = [16] }}
optim = {{ name = "sgd", lr = 0.05, momentum = 0.9 }}

[[arm]]
name = "linear"
model = {{ name = "linear" }}
{extra}
"""


def write_study(folder: Path, name="s", seeds=2, epochs=2, extra="", file=None) -> Path:
    p = folder / (file or f"{name}.toml")
    p.write_text(STUDY.format(name=name, seeds=seeds, epochs=epochs, extra=extra))
    return p


def side_files(db: Path) -> list[str]:
    return sorted(p.name for p in db.parent.iterdir() if p.name.startswith(db.name + "-"))


def one_error_line(result) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


# ---------------------------------------------------------------- item 4: foreign files untouched


def _foreign_rollback_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
    conn.execute("INSERT INTO contacts VALUES ('ada', '123')")
    conn.commit()
    conn.close()


def _foreign_wal_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.commit()
    conn.close()  # the last connection checkpoints and removes -wal/-shm


def _foreign_app_id_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1234")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()


def _not_sqlite(path: Path) -> None:
    path.write_bytes(b"name,phone\nada,123\n" * 40)


FOREIGN = {
    "sqlite-rollback-journal": (_foreign_rollback_db, "tables of its own"),
    "sqlite-wal": (_foreign_wal_db, "tables of its own"),
    "sqlite-other-application-id": (_foreign_app_id_db, "another program"),
    "not-sqlite": (_not_sqlite, "not a SQLite database"),
}


@pytest.fixture(params=sorted(FOREIGN))
def foreign_db(request, tmp_path):
    make, words = FOREIGN[request.param]
    out = tmp_path / "out"
    out.mkdir()
    db = out / "sweeplab.db"
    make(db)
    assert side_files(db) == []
    return db, words


@pytest.mark.parametrize("readonly", [False, True], ids=["readwrite", "readonly"])
def test_foreign_file_is_refused_before_anything_is_written(foreign_db, readonly):
    db, words = foreign_db
    before = db.read_bytes()
    with pytest.raises(StoreError, match=words):
        Store(db, readonly=readonly)
    assert db.read_bytes() == before  # header bytes 18-19 included: no switch to WAL
    assert side_files(db) == []


def test_foreign_file_untouched_by_the_cli(foreign_db, tmp_path):
    db, words = foreign_db
    before = db.read_bytes()
    study = write_study(tmp_path, seeds=1, epochs=1)
    for args in (("run", str(study)), ("status",), ("export",), ("report", "--dir", str(tmp_path / "rep"))):
        line = one_error_line(sweeplab(*args, "--out", str(db.parent)))
        assert words in line and str(db) in line, line
        assert db.read_bytes() == before, args
        assert side_files(db) == [], args


def test_empty_file_still_becomes_a_store(tmp_path):
    db = tmp_path / "sweeplab.db"
    db.touch()
    with Store(db) as store:
        assert store.list_studies() == []


# ---------------------------------------------------------------- item 13: read-only filesystem


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory):
    """A store holding one finished tiny study (2 arms x 1 seed x 1 epoch), closed cleanly."""
    root = tmp_path_factory.mktemp("ro")
    spec = parse_study(write_study(root, seeds=1, epochs=1).read_text())
    db = root / "out" / "sweeplab.db"
    run_study(spec, db, workers=1)
    assert side_files(db) == []  # the last writer merged and removed its WAL
    return db


def test_readonly_store_in_unwritable_folder_reads_without_side_files(finished_store, tmp_path, monkeypatch):
    # Works as root too: the folder's writability is what the Store asks the system about.
    from sweeplab.store import _open

    db = tmp_path / "out" / "sweeplab.db"
    db.parent.mkdir()
    shutil.copy(finished_store, db)
    before = db.read_bytes()
    monkeypatch.setattr(_open, "folder_writable", lambda folder: False)
    with Store(db, readonly=True) as store:
        assert [s.name for s in store.list_studies()] == ["s"]
        assert len(store.all_epochs("s")) == 2
        assert store.counts_by_status("s")["completed"] == 2
    assert side_files(db) == []
    assert db.read_bytes() == before


def _readonly_cli(out: Path, *args: str):
    """Run the CLI with ``out`` on a read-only filesystem: chmod 0555/0444 when not root, a
    read-only bind mount in a private mount namespace as root (chmod does not stop root)."""
    db = out / "sweeplab.db"
    exe = str(Path(sys.executable).parent / "sweeplab")
    env = {**os.environ, "COLUMNS": "200"}
    if os.geteuid() != 0:
        db.chmod(0o444)
        out.chmod(0o555)
        try:
            return subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=600)
        finally:
            out.chmod(0o755)
            db.chmod(0o644)
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare: cannot make a read-only filesystem")
    q = shlex.quote(str(out))
    script = (f"mount --bind {q} {q} && mount -o remount,ro,bind {q} && touch {q}/probe 2>/dev/null "
              f"&& exit 97; exec {shlex.join([exe, *args])}")
    r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env,
                       timeout=600)
    if r.returncode in (97,) or "mount:" in r.stderr or "unshare:" in r.stderr:
        pytest.skip(f"cannot make a read-only filesystem here: {r.stderr.strip()[:200]}")
    return r


def test_status_report_export_work_on_a_readonly_filesystem(finished_store, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    db = out / "sweeplab.db"
    shutil.copy(finished_store, db)
    before = db.read_bytes()

    r = _readonly_cli(out, "status", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "unable to open" not in r.stderr and " s " in r.stdout
    r = _readonly_cli(out, "status", "s", "--out", str(out))
    assert r.returncode == 0 and "completed 2" in r.stdout, r.stderr
    r = _readonly_cli(out, "export", "s", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert len(list(csv.DictReader(io.StringIO(r.stdout)))) == 2
    reports = tmp_path / "reports"
    r = _readonly_cli(out, "report", "s", "--out", str(out), "--dir", str(reports))
    assert r.returncode == 0, r.stderr
    assert (reports / "report.html").is_file()
    assert db.read_bytes() == before and side_files(db) == []


def test_a_writer_on_an_unwritable_folder_says_so_and_leaves_the_store(finished_store, tmp_path, monkeypatch):
    from sweeplab.store import _open

    db = tmp_path / "out" / "sweeplab.db"
    db.parent.mkdir()
    shutil.copy(finished_store, db)
    before = db.read_bytes()
    monkeypatch.setattr(_open, "folder_writable", lambda folder: False)
    with pytest.raises(StoreError, match="cannot be written .*read-only filesystem or folder") as err:
        Store(db)
    assert "not a SQLite database" not in str(err.value) and "\n" not in str(err.value)
    assert db.read_bytes() == before and side_files(db) == []


@pytest.mark.slow  # 5-9 s: the real CLI (torch imported) in a read-only mount
def test_training_on_a_readonly_filesystem_is_one_line_naming_why(finished_store, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    db = out / "sweeplab.db"
    shutil.copy(finished_store, db)
    before = db.read_bytes()
    r = _readonly_cli(out, "train", "--dataset", "digits", "--epochs", "1", "--out", str(out))
    line = one_error_line(r)
    assert "read-only filesystem or folder" in line and str(db) in line and "not a SQLite database" not in line
    assert db.read_bytes() == before and side_files(db) == []


# ---------------------------------------------------------------- item 3: study versions


def _export_rows(out: Path, *args: str) -> tuple[list[dict], str]:
    r = sweeplab("export", "s", "--out", str(out), *args)
    assert r.returncode == 0, r.stderr
    return list(csv.DictReader(io.StringIO(r.stdout))), r.stderr


@pytest.mark.slow  # about 30 s: a full study, then a quick pass, through the real CLI
def test_quick_pass_after_a_full_run_is_a_new_version_not_a_replacement(tmp_path):
    study, out = write_study(tmp_path, seeds=2, epochs=2), tmp_path / "out"
    r = sweeplab("run", str(study), "--out", str(out), "-w", "1")
    assert r.returncode == 0, r.stderr
    assert "version" not in r.stdout  # a first run records version 1 silently
    full, note = _export_rows(out)
    assert len(full) == 2 * 2 * 2 and "version 1 of 1" in note

    quick = sweeplab("run", str(study), "--out", str(out), "--epochs", "1", "--seeds", "1", "-w", "1")
    assert quick.returncode == 0, quick.stderr
    notice = [x for x in quick.stdout.splitlines() if "version 2 of 2" in x]
    assert len(notice) == 1 and "overrides" in notice[0], quick.stdout

    rows, note = _export_rows(out)  # the default is still the full definition
    assert rows == full
    assert "version 1 of 2" in note and note.count("\n") == 1
    rows, note = _export_rows(out, "--version", "2")
    assert len(rows) == 2 and {x["epoch"] for x in rows} == {"1"} and "version 2 of 2" in note
    r = sweeplab("export", "s", "--out", str(out), "--format", "json", "--version", "1")
    assert json.loads(r.stdout)["version"] == 1 and len(json.loads(r.stdout)["epochs"]) == 8

    for version, words in ((None, "version 1 of 2"), ("2", "version 2 of 2")):
        target = tmp_path / f"report-{version}"
        args = ["report", "s", "--out", str(out), "--dir", str(target), "--format", "md"]
        r = sweeplab(*args, *(["--version", version] if version else []))
        assert r.returncode == 0, r.stderr
        md = (target / "report.md").read_text()
        assert words in md, md[:2000]
        assert f"Seeds | {'0, 1' if version is None else '0'} |" in md

    again = sweeplab("run", str(study), "--out", str(out), "-w", "1")  # the same file: no new version
    assert again.returncode == 0 and "changed" not in again.stdout, again.stdout
    with Store(out / "sweeplab.db", readonly=True) as store:
        versions = store.study_versions("s")
        assert [(v.version, v.variant, v.is_default, v.links) for v in versions] == [
            (1, False, True, 4), (2, True, False, 2)]

    bad = one_error_line(sweeplab("export", "s", "--out", str(out), "--version", "3"))
    assert "--version" in bad and "1-2" in bad and "3" in bad


def test_another_file_with_the_same_study_name_is_a_new_version(tmp_path):
    out = tmp_path / "out"
    first = write_study(tmp_path, seeds=1, epochs=1, file="a.toml")
    second = write_study(tmp_path, seeds=1, epochs=1, file="b.toml",
                         extra='[[arm]]\nname = "wider"\nmodel = { hidden = [24] }\n')
    assert sweeplab("run", str(first), "--out", str(out), "-w", "1").returncode == 0
    r = sweeplab("run", str(second), "--out", str(out), "-w", "1")
    assert r.returncode == 0, r.stderr
    assert any("version 2 of 2" in x and "now show it" in x for x in r.stdout.splitlines()), r.stdout

    rows, note = _export_rows(out)  # a definition from a file becomes the default
    assert {x["arm"] for x in rows} == {"baseline", "linear", "wider"} and "version 2 of 2" in note
    rows, note = _export_rows(out, "--version", "1")
    assert {x["arm"] for x in rows} == {"baseline", "linear"} and "version 1 of 2" in note
    r = sweeplab("status", "s", "--out", str(out), "--version", "1")
    assert r.returncode == 0 and "version 1 of 2" in r.stdout and "wider" not in r.stdout, r.stdout
    with Store(out / "sweeplab.db", readonly=True) as store:
        assert store.get_study("s", 1).spec["source"] == first.read_text()
        assert store.get_study("s").spec["source"] == second.read_text()
        assert len(store.list_runs(study="s", version=1)) == 2 and len(store.list_runs(study="s")) == 3


def _schema_1_store(db: Path) -> None:
    """A store as sweeplab's first schema wrote it: study 'old', 2 completed runs of 1 epoch."""
    from sweeplab.store import _schema

    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN IMMEDIATE")
    _schema._v1(conn)
    conn.execute(f"PRAGMA application_id = {_schema.APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    now = "2026-01-01T00:00:00.000+00:00"
    for run_id, seed in (("r0", 0), ("r1", 1)):
        conn.execute("INSERT INTO runs (id, config_json, seed, status, created_at) VALUES (?, '{}', ?,"
                     " 'completed', ?)", (run_id, seed, now))
        conn.execute("INSERT INTO epochs (run_id, epoch, test_acc, finished_at) VALUES (?, 1, 0.5, ?)",
                     (run_id, now))
    conn.execute("INSERT INTO studies VALUES ('old', 'from v1', ?, 'test_acc', ?, ?)",
                 (json.dumps({"name": "old", "seeds": [0, 1]}), now, now))
    conn.execute("INSERT INTO arms VALUES ('old', 'baseline', 0, '{}')")
    conn.executemany("INSERT INTO study_runs VALUES ('old', 'baseline', ?, ?, 'baseline', ?)",
                     [(0, "r0", 0), (1, "r1", 1)])
    conn.commit()
    conn.close()


def test_a_schema_1_store_migrates_its_study_to_version_1(tmp_path):
    from sweeplab.store import _schema

    db = tmp_path / "old.db"
    _schema_1_store(db)
    with Store(db) as store:
        record = store.get_study("old")
        assert (record.version, record.versions, record.description) == (1, 1, "from v1")
        assert [link.run_id for link in store.study_runs("old")] == ["r0", "r1"]
        assert len(store.all_epochs("old")) == 2
        assert [v.links for v in store.study_versions("old")] == [2]
        # The same spec saved again is the same version; a changed one is version 2.
        from sweeplab.store import Link

        same = store.save_study("old", spec_json=record.spec_json, arms=["baseline"],
                                links=[Link("baseline", 0, "r0"), Link("baseline", 1, "r1")],
                                description="from v1", metric="test_acc")
        assert (same.version, same.versions) == (1, 1)
        new = store.save_study("old", spec_json={"name": "old", "seeds": [0]}, arms=["baseline"],
                               links=[Link("baseline", 0, "r0")], variant=True)
        assert (new.version, new.versions, new.variant) == (2, 2, True)
        assert store.get_study("old").version == 1  # a variant does not become the default
        assert [link.run_id for link in store.study_runs("old")] == ["r0", "r1"]
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == _schema.current_version()
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


def test_a_reader_upgrades_an_older_store_it_can_write_and_refuses_one_it_cannot(tmp_path, capsys, monkeypatch):
    from sweeplab.cli.main import main
    from sweeplab.store import _open, _schema

    db = tmp_path / "out" / "sweeplab.db"
    db.parent.mkdir()
    _schema_1_store(db)
    before = db.read_bytes()
    with monkeypatch.context() as m:  # a read-only folder: refused in one line saying what to do, untouched
        m.setattr(_open, "folder_writable", lambda folder: False)
        assert main(["status", "old", "--out", str(db.parent)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "older schema (1 <" in err and "copy it" in err, err
        assert db.read_bytes() == before
    # Where it can be written, status (a reader) upgrades it as a writer would, then reads it.
    assert main(["status", "old", "--out", str(db.parent)]) == 0
    assert "completed 2" in capsys.readouterr().out
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == _schema.current_version()
    conn.close()
    with Store(db, readonly=True) as store:
        assert [link.run_id for link in store.study_runs("old")] == ["r0", "r1"]


def test_a_schema_2_store_gains_arm_descriptions_from_its_specs(tmp_path):
    from sweeplab.store import _schema

    db = tmp_path / "v2.db"
    conn = sqlite3.connect(db)
    conn.execute("BEGIN IMMEDIATE")
    _schema._v1(conn)
    _schema._v2(conn)
    conn.execute(f"PRAGMA application_id = {_schema.APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 2")
    now = "2026-01-01T00:00:00.000+00:00"
    spec = {"name": "old", "arms": [{"name": "baseline", "description": ""},
                                    {"name": "linear", "description": "No activations: a deep linear net."}]}
    conn.execute("INSERT INTO studies VALUES ('old', '', ?, 'test_acc', ?, ?)", (json.dumps(spec), now, now))
    conn.execute("INSERT INTO study_versions VALUES ('old', 1, 'h', ?, '', 'test_acc', 0, ?, ?)",
                 (json.dumps(spec), now, now))
    conn.executemany("INSERT INTO arms VALUES ('old', 1, ?, ?, '{}')", [("baseline", 0), ("linear", 1)])
    conn.commit()
    conn.close()
    with Store(db) as store:
        arms = store.get_study("old").arms
    assert [(a.name, a.description) for a in arms] == [("baseline", ""), ("linear", "No activations: a deep linear net.")]
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == _schema.current_version()
        assert conn.execute("SELECT count(*) FROM lr_finds").fetchone()[0] == 0
