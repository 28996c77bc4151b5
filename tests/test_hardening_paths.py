"""Names are data, outputs fail in one line (issue 8 items 7, 8, 9, 11 output side, 14).

Real CLI processes on tiny digits studies: a study name never becomes a path outside ``--out``,
report text is inert in Markdown, ``show`` reads bundled studies only, and a report, export or
checkpoint that cannot be written is one line on stderr with exit code 2, the store untouched.
"""

from __future__ import annotations

import hashlib
import os
import resource
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sweeplab.report.escape import md_cell, md_text
from sweeplab.report.paths import MAX_SLUG, safe_name
from sweeplab.study.bundled import STUDIES_DIR, bundled_path

from helpers import sweeplab

XSS_ARM = "<img src=x onerror=alert(1)>"
XSS_DESC = "<script>alert('study')</script> a | b"
# Within the 200-character limit on names (study/limits.py), but 300 bytes as a file name.
LONG_STUDY = "ü" * 100 + "s" * 100
LONG_ARM = "a" * 200


def study_toml(name: str, arm: str, description: str = "tiny") -> str:
    quote = lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'  # noqa: E731
    return f"""[study]
name = {quote(name)}
description = {quote(description)}
seeds = 1
[baseline]
epochs = 1
device = "cpu"
data = {{ dataset = "digits" }}
model = {{ name = "mlp", hidden = [8] }}
[[arm]]
name = {quote(arm)}
description = {quote(description)}
optim = {{ lr = 0.5 }}
"""


def one_line_error(proc, *words: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    errors = [x for x in lines if x.startswith("error:")]
    assert "Traceback" not in proc.stderr and len(errors) == 1 and len(lines) == 1, proc.stderr
    err = errors[0]
    for w in words:
        assert w in err, (w, err)
    return err


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Three studies in one store: a traversal name (run --report), an absolute name, long names."""
    root = tmp_path_factory.mktemp("names")
    work = root / "a" / "b"
    work.mkdir(parents=True)
    out = work / "out"
    # What `../../victim` and an absolute name pointed at before: a report and a figure of the user's.
    victims = [work / "victim", root / "abs-victim"]
    for v in victims:
        (v / "figures").mkdir(parents=True)
        (v / "report.html").write_text("the user's own report")
        (v / "figures" / "curve_train_loss.png").write_bytes(b"the user's own figure")
    studies = {"traversal": ("../../victim", XSS_ARM, XSS_DESC), "absolute": (str(victims[1]), "lr", "tiny"),
               "long": (LONG_STUDY, LONG_ARM, "tiny")}
    for key, (name, arm, desc) in studies.items():
        f = work / f"{key}.toml"
        f.write_text(study_toml(name, arm, desc))
        extra = ["--report"] if key == "traversal" else []
        proc = sweeplab("run", str(f), "--out", str(out), "--workers", "1", *extra, cwd=work)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    before = {str(p): digest(p) for v in victims for p in v.rglob("*") if p.is_file()}
    return {"root": root, "work": work, "out": out, "victims": victims, "before": before, "studies": studies}


def files_outside(root: Path, out: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and out not in p.parents and p.suffix != ".toml"]


def test_study_names_never_leave_out_nor_touch_files_there(stores):
    out, work = stores["out"], stores["work"]
    for name, _, _ in stores["studies"].values():
        proc = sweeplab("report", name, "--out", str(out), cwd=work)
        assert proc.returncode == 0, proc.stderr[-3000:]
    after = {str(p): digest(p) for v in stores["victims"] for p in v.rglob("*") if p.is_file()}
    assert after == stores["before"]  # nothing overwritten, nothing deleted, nothing added
    outside = [p for p in files_outside(stores["root"], out) if str(p) not in stores["before"]]
    assert outside == []
    folders = sorted(p.name for p in (out / "reports").iterdir())
    assert len(folders) == 3 and all(len(f) <= MAX_SLUG + 9 and not f.startswith(".") for f in folders)
    assert safe_name("../../victim") in folders
    for folder in folders:
        assert (out / "reports" / folder / "report.html").is_file()
        assert (out / "reports" / folder / "report.md").is_file()


def test_long_arm_and_study_names_give_short_file_names(stores):
    folder = stores["out"] / "reports" / safe_name(LONG_STUDY)
    sweeplab("report", LONG_STUDY, "--out", str(stores["out"]), cwd=stores["work"])
    figures = [p.name for p in (folder / "figures").iterdir()]
    assert any(n.startswith("arm_aaaa") for n in figures)
    assert max(len(n.encode()) for n in figures) < 255


def test_stale_figures_deleted_only_when_a_report_wrote_them(stores, tmp_path):
    target = tmp_path / "mine"
    (target / "figures").mkdir(parents=True)
    own = target / "figures" / "arm_keep-me.png"  # a name a report could write, but the user did
    own.write_bytes(b"user")
    run = lambda: sweeplab("report", "../../victim", "--out", str(stores["out"]), "--dir", str(target))  # noqa: E731
    assert run().returncode == 0
    manifest = target / "figures" / ".sweeplab-figures.json"
    assert manifest.is_file() and own.read_bytes() == b"user"
    stale = target / "figures" / "sweep_gone.png"  # as if an earlier report had drawn it
    stale.write_bytes(b"old figure")
    manifest.write_text(manifest.read_text().replace("[", '["sweep_gone.png", ', 1))
    assert run().returncode == 0
    assert not stale.exists() and own.read_bytes() == b"user"


def test_report_md_escapes_names_and_descriptions(stores):
    folder = stores["out"] / "reports" / safe_name("../../victim")
    md = (folder / "report.md").read_text()
    assert "<img" not in md and "<script" not in md
    assert "&lt;img src=x onerror=alert(1)&gt;" in md and "&lt;script&gt;" in md
    html = (folder / "report.html").read_text()
    assert "<img src=x" not in html and "<script" not in html


def test_markdown_escape_keeps_text_and_breaks_structure():
    assert md_text("a\nb\r\nc") == "a b c"
    assert md_text("x_y *bold* [link](javascript:1) `c`") == "x_y \\*bold\\* \\[link\\](javascript:1) \\`c\\`"
    assert md_text("# not a heading", line_start=True) == "\\# not a heading"
    assert md_cell("a|b\nc") == "a\\|b c"
    assert md_text("<b>&") == "&lt;b&gt;&amp;"


def test_safe_name_maps_every_name_to_one_component():
    assert safe_name("quickstart") == "quickstart" and safe_name("cifar10-resnet-paper") == "cifar10-resnet-paper"
    for name in ("../../victim", "/etc/passwd", "..", ".", "", "a b", "a/b", "é" * 300, "x" * 5000, "-", "a\x00b"):
        s = safe_name(name)
        assert s and "/" not in s and "\x00" not in s and s not in (".", "..") and not s.startswith(".")
        assert len(s) <= MAX_SLUG + 9 and s.isascii()
    assert safe_name("a b") != safe_name("a-b") and safe_name("a/b") != safe_name("a b")


def test_show_accepts_bundled_names_only(tmp_path):
    secret = tmp_path / "secret.toml"
    secret.write_text("[study]\nname = 'secret content'\n")
    rel = os.path.relpath(tmp_path / "secret", STUDIES_DIR)
    assert (STUDIES_DIR / f"{rel}.toml").resolve() == secret.resolve()  # what the old lookup read
    proc = sweeplab("show", rel, cwd=tmp_path)
    one_line_error(proc, repr(rel), "quickstart")
    assert "secret content" not in proc.stdout
    assert bundled_path(rel) is None and bundled_path(str(tmp_path / "secret")) is None
    assert bundled_path("quickstart") is not None


def test_a_directory_as_study_file_says_so(tmp_path):
    (tmp_path / "studies").mkdir()
    proc = sweeplab("run", "studies", "--out", str(tmp_path / "out"), cwd=tmp_path)
    one_line_error(proc, "'studies'", "is a directory", "quickstart")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------- outputs that fail


def limited(args: list[str], max_bytes: int, cwd: Path) -> subprocess.CompletedProcess:
    """The CLI with files limited to ``max_bytes``: writes beyond fail as on a full disk (EFBIG)."""
    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    exe = Path(sys.executable).parent / "sweeplab"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, preexec_fn=cap,
                          env={**os.environ, "COLUMNS": "200"}, timeout=300)


def test_report_to_a_file_or_a_full_disk_is_one_line(stores, tmp_path):
    out, db = stores["out"], stores["out"] / "sweeplab.db"
    before = digest(db)
    a_file = tmp_path / "a-file"
    a_file.write_text("keep")
    for target in (a_file, Path("/dev/full")):
        proc = sweeplab("report", "../../victim", "--out", str(out), "--dir", str(target))
        one_line_error(proc, "--dir", str(target))
    assert a_file.read_text() == "keep"
    # The store's -shm (32 KiB) fits under the limit, a report with its embedded figures does not.
    proc = limited(["report", "../../victim", "--out", str(out), "--dir", str(tmp_path / "r"), "--format", "html"],
                   100_000, tmp_path)
    one_line_error(proc, "--dir", str(tmp_path / "r"), "too large")
    assert not (tmp_path / "r" / "report.html").exists() and digest(db) == before


def _run_id(db: Path) -> str:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("select id from runs where status = 'completed' limit 1").fetchone()[0]
    finally:
        con.close()


def test_export_and_checkpoint_outputs_that_fail_are_one_line(stores, tmp_path):
    out, db = stores["out"], stores["out"] / "sweeplab.db"
    before = digest(db)
    base = ["--out", str(out)]
    for target in (tmp_path, Path("/dev/full")):
        one_line_error(sweeplab("export", "../../victim", *base, "-o", str(target)), "-o", str(target))
        one_line_error(sweeplab("checkpoint", _run_id(db), *base, "-o", str(target)), "-o", str(target))
    assert digest(db) == before


def test_an_existing_output_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    from sweeplab.cli import outputs
    from sweeplab.errors import ConfigError

    kept = tmp_path / "kept.csv"
    kept.write_text("earlier export\n")

    def full_disk(src, dst):
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr(outputs.os, "replace", full_disk)
    with pytest.raises(ConfigError) as err:
        outputs.write_output(kept, b"new export\n", "-o")
    assert str(err.value).startswith("-o: ") and "No space left on device" in str(err.value)
    assert kept.read_text() == "earlier export\n" and [p.name for p in tmp_path.iterdir()] == ["kept.csv"]


@pytest.mark.parametrize("stdout", ["full", "closed"])
def test_export_to_a_failing_stdout_is_one_line(stores, stdout):
    exe = Path(sys.executable).parent / "sweeplab"
    args = [str(exe), "export", "../../victim", "--out", str(stores["out"])]
    if stdout == "full":
        with open("/dev/full", "w") as full:
            proc = subprocess.run(args, stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    else:
        proc = subprocess.run(args, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300,
                              preexec_fn=lambda: os.close(1))
    proc.stdout = ""
    one_line_error(proc, "stdout", "-o FILE")


def test_summary_of_a_model_too_big_for_memory_is_one_line():
    proc = sweeplab("summary", "mlp", "--dataset", "digits", "--set", "model.hidden=[1000000,1000000]")
    err = one_line_error(proc, "model", "out of memory", "1,000,076,000,010 parameters")
    assert "GiB" in err
    ok = sweeplab("summary", "mlp", "--dataset", "digits", "--set", "model.hidden=[16]")
    assert ok.returncode == 0 and "total params" in ok.stdout


def test_run_report_into_an_unwritable_folder_fails_before_training(tmp_path):
    study = tmp_path / "s.toml"
    study.write_text(study_toml("../../victim", "lr"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "reports").write_text("a file where the reports folder would be")
    proc = sweeplab("run", str(study), "--out", str(out), "--report", "--workers", "1")
    one_line_error(proc, "--report", "Not a directory")
    assert not (out / "sweeplab.db").exists()
