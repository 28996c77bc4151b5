"""The HTML report as a browser shows it: headless Chromium (Debian's ``chromium`` package) loads
``report.html`` from disk, with networking off, and must log no console error, keep the table and
the figures in its DOM, and paint a page whose figures are visible (the screenshot has far more
coloured pixels than the same page with its images removed).

Skipped where ``/usr/bin/chromium`` is absent; ``.ci/run`` installs it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sweeplab.report import build_report, save_report
from sweeplab.store import Store
from sweeplab.study import load_study
from sweeplab.study.execute import run_study

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium not installed at /usr/bin/chromium "
                       "(Debian: apt-get install -y chromium); the report is not rendered in a browser"),
    pytest.mark.timeout(60),
]

STUDY = """
[study]
name = "browser"
description = "Two arms and a diverging one, two seeds, three epochs."
seeds = 2

[baseline]
epochs = 3
data = { dataset = "digits" }
model = { name = "mlp", hidden = [16] }
optim = { name = "sgd", lr = 0.05, momentum = 0.9 }

[[arm]]
name = "linear"
model = { name = "linear" }

[[arm]]
name = "exploding lr"
loss = { name = "mse" }
schedule = { name = "exponential", gamma = 100.0 }
"""


def chromium(page: Path, tmp: Path, name: str) -> tuple[str, str, np.ndarray]:
    """(DOM, stderr log, screenshot as an RGB array) of ``page`` in headless Chromium."""
    from PIL import Image

    shot = tmp / f"{name}.png"
    proc = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp / ('profile-' + name)}", "--enable-logging=stderr", "--v=0",
         "--window-size=1200,3000", f"--screenshot={shot}", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=40,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr, np.asarray(Image.open(shot).convert("RGB")).astype(int)


def coloured_pixels(image: np.ndarray) -> int:
    """Pixels with a clearly saturated colour: plot lines, bands and heatmaps (text is grey)."""
    return int(((image.max(axis=2) - image.min(axis=2)) > 80).sum())


def test_report_renders_in_chromium(tmp_path):
    db = tmp_path / "sweeplab.db"
    run_study(load_study(STUDY), db, workers=1, threads=1)
    with Store(db, readonly=True) as store:
        report = build_report(store, "browser")
    page = save_report(report, tmp_path / "report", formats="html")["html"]

    dom, log, shot = chromium(page, tmp_path, "report")
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert not console, "console messages:\n" + "\n".join(console)
    assert shot.shape == (3000, 1200, 3) and shot.std() > 10, "blank screenshot"

    # The DOM holds the comparison table (one row per arm setting, the best marked) and every figure.
    for s in report.settings:
        assert f"<td>{s.label}</td>" in dom
    assert dom.count('<tr class="best"><td>★ 1</td>') == 1
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', dom)) == len(report.figures) >= 5

    # The figures are painted: without them the same page shows far fewer coloured pixels.
    bare = tmp_path / "report" / "bare.html"
    bare.write_text(re.sub(r"<img [^>]*>", "", page.read_text()))
    _, _, bare_shot = chromium(bare, tmp_path, "bare")
    assert coloured_pixels(shot) > coloured_pixels(bare_shot) + 5000
