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
