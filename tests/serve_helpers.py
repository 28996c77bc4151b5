"""Helpers for the dashboard's tests and benchmark: a study written through the store's own API
(real SQLite, synthetic numbers, no training) and the real `sweeplab serve` in a subprocess."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from sweeplab.store import Arm, Link, Store

SWEEPLAB = Path(sys.executable).parent / "sweeplab"


def metrics(arm_index: int, seed: int, epoch: int) -> dict[str, float]:
    """A plausible epoch row: loss falling, accuracy rising, a little different per arm and seed."""
    rate = 0.15 + 0.05 * arm_index
    acc = 0.95 - 0.6 * math.exp(-rate * epoch) - 0.01 * arm_index + 0.003 * seed
    # What the trainer also stores for a 10-class dataset (in extra_json): per-class accuracy and
    # the confusion matrix of every epoch, so reading rows costs what it costs on a real store.
    per_class = [min(1.0, max(0.0, acc + 0.01 * (k - 5))) for k in range(10)]
    confusion = [[int(180 * per_class[i]) if i == j else int(20 * (1 - per_class[i]) / 9) for j in range(10)]
                 for i in range(10)]
    return {"train_loss": 2.3 * math.exp(-rate * epoch) + 0.05, "test_loss": 2.2 * math.exp(-rate * epoch) + 0.1,
            "train_acc": min(acc + 0.02, 1.0), "test_acc": acc, "lr": 0.05, "lr_mean": 0.05,
            "epoch_time_s": 1.0 + 0.1 * seed, "train_images_per_s": 5000.0 + 100 * arm_index,
            "test_per_class_acc": per_class, "test_confusion": confusion}


def synthetic_study(db: Path, name: str, arms: list[str | tuple[str, str, dict[str, Any]]], seeds: int,
                    epochs: int, *, done: int | None = None, diverge: dict[int, int] | None = None) -> list[str]:
    """Write a study with ``arms`` (the first is the baseline) x ``seeds`` runs, each with ``done``
    of its ``epochs`` committed (all by default; runs not finished stay ``running``). An arm is a
    name, or ``(arm, label, axes)`` for one point of a grid arm. ``diverge``: link index -> the
    epoch in which that run diverged (rows before it only). Returns the run ids in link order."""
    done = epochs if done is None else done
    diverge = diverge or {}
    points = [(a, a, {}) if isinstance(a, str) else a for a in arms]
    with Store(db) as store:
        links, ids = [], []
        for a, (arm, label, _) in enumerate(points):
            for seed in range(seeds):
                run_id = f"{name[:8]}-{a:03d}-{seed:02d}"
                config = {"model": {"name": "mlp", "hidden": [16 * (a + 1)]}, "seed": seed, "epochs": epochs}
                store.upsert_run(run_id, json.dumps(config), seed, label=label, epochs_planned=epochs)
                links.append(Link(arm=arm, seed=seed, run_id=run_id, label=label))
                ids.append(run_id)
        arm_names = list(dict.fromkeys(arm for arm, _, _ in points))
        spec = {"name": name, "arms": [{"name": a} for a in arm_names],
                "runs": [{"arm": arm, "label": label, "axes": axes} for arm, label, axes in points]}
        store.save_study(name, spec_json=json.dumps(spec), arms=[Arm(a) for a in arm_names], links=links,
                         description=f"synthetic study {name}")
        for i, link in enumerate(links):
            store.set_status(link.run_id, "running")
            last = min(done, diverge.get(i, epochs + 1) - 1)
            for epoch in range(1, last + 1):
                row = metrics(i // seeds, link.seed, epoch)
                store.commit_epoch(link.run_id, epoch, row, None, add_wall_time_s=row["epoch_time_s"])
            if i in diverge:
                store.set_status(link.run_id, "diverged", json.dumps(
                    {"epoch": diverge[i], "step": 3, "reason": "non-finite training loss (nan)"}))
            elif done == epochs:
                store.set_status(link.run_id, "completed")
    return ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, Any]:
    """(status, parsed JSON or text) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=20) as r:
            status, body, kind = r.status, r.read().decode(), r.headers.get("content-type", "")
    except urllib.error.HTTPError as err:
        status, body, kind = err.code, err.read().decode(), err.headers.get("content-type", "")
    return status, (json.loads(body) if "json" in kind else body)


class Server:
    """`sweeplab serve --out OUT --port PORT` in a subprocess, stopped by its PID."""

    def __init__(self, out: Path, port: int | None = None, *extra: str):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([str(SWEEPLAB), "serve", "--out", str(out), "--port", str(self.port), *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "COLUMNS": "200"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sweeplab serve exited {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("sweeplab serve did not start listening in 30 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
