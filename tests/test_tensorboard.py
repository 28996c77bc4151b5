"""`sweeplab run --tensorboard` writes event files per run: scalars per epoch and hparams."""

from __future__ import annotations

import pytest

from helpers import sweeplab

pytest.importorskip("tensorboard", reason="tensorboard is an optional dependency (pip install 'sweeplab[tensorboard]')")


def test_event_files_hold_every_epoch(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    study = tmp_path / "s.toml"
    study.write_text('[study]\nname = "tb"\nseeds = 2\n[baseline]\nepochs = 3\ndevice = "cpu"\n'
                     'data = { dataset = "digits" }\nmodel = { name = "linear" }\n')
    r = sweeplab("run", str(study), "--out", str(tmp_path / "out"), "--workers", "1", "--tensorboard")
    assert r.returncode == 0, r.stderr
    runs = sorted(p for p in (tmp_path / "out" / "tensorboard").iterdir() if p.is_dir())
    assert len(runs) == 2 and all("seed" in p.name for p in runs)
    acc = EventAccumulator(str(runs[0]))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"loss/train_loss", "accuracy/test_acc", "run/lr"} <= set(tags)
    assert [e.step for e in acc.Scalars("accuracy/test_acc")] == [1, 2, 3]
    hp = EventAccumulator(str(runs[0] / "."))  # add_hparams(run_name=".") writes into the run's own dir
    hp.Reload()
    assert any(t.startswith("hparam/") for t in hp.Tags()["scalars"])
