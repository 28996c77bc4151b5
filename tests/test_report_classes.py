"""Class names from an image folder travel with the run into the report's per-class table, its
figures and the export columns (issue 11, item 2)."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from PIL import Image

from sweeplab.report import build_report, save_report
from sweeplab.store import Store
from sweeplab.study import load_study
from sweeplab.study.execute import run_study

from helpers import sweeplab

pytestmark = pytest.mark.timeout(120)
CLASSES = ("cat", "dog", "sea ship")


def test_image_folder_class_names_in_report_and_export(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 4)):
        for k, cls in enumerate(CLASSES):
            (tmp_path / "imgs" / split / cls).mkdir(parents=True)
            for i in range(n):  # each class its own brightness, so the classes can be learned
                arr = np.clip(rng.normal(60 + 70 * k, 10, (5, 6, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(tmp_path / "imgs" / split / cls / f"i{i}.png")
    study = f"""
[study]
name = "folders"
[baseline]
epochs = 1
batch_size = 8
data = {{ dataset = "imagefolder", path = "{tmp_path / 'imgs'}" }}
model = {{ name = "mlp", hidden = [8] }}
"""
    db = tmp_path / "out" / "sweeplab.db"
    run_study(load_study(study), db, workers=1, threads=1)
    with Store(db, readonly=True) as store:
        report = build_report(store, "folders")
    assert tuple(report.header.class_names) == CLASSES
    md = save_report(report, tmp_path / "r", formats="md")["md"].read_text()
    table = next(line for line in md.splitlines() if line.startswith("| arm setting"))
    assert table == "| arm setting | cat | dog | sea ship |"
    confusion = next(f for f in report.figures if f.section == "confusion")
    assert [t.get_text() for t in confusion.mpl.axes[0].get_xticklabels()] == list(CLASSES)
    r = sweeplab("export", "folders", "--out", str(tmp_path / "out"), "--format", "csv")
    header = next(csv.reader(io.StringIO(r.stdout)))
    assert [c for c in header if c.startswith("test_acc_")] == ["test_acc_cat", "test_acc_dog", "test_acc_sea_ship"]
