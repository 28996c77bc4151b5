"""The dashboard on a big store: a study of 200 runs x 200 epochs (40,000 epoch rows).

Generates the store through the store's API (synthetic numbers, no training), starts the real
`sweeplab serve` on a free loopback port and times, over HTTP as the page sees them:

- the study page's data (``/api/study/NAME``: every run's curves) and its table (``/table``);
- a live update (``/updates?after=CURSOR``) with nothing new, with 1 new epoch row, and with one
  new row for every run (200 rows);
- the same updates on a store with the same 200 runs but 20 epochs each (4,000 rows): an update
  costs the same there, since it reads the new rows only (plus one indexed query over the links).

Ratios are against the full study load measured in the same run. Run from the repository root:

    .venv/bin/python benchmarks/serve_study_page.py            # 200 x 200, and 200 x 20
    .venv/bin/python benchmarks/serve_study_page.py --runs 50  # smaller, quicker
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from serve_helpers import Server, metrics, synthetic_study  # noqa: E402
from sweeplab.store import Store  # noqa: E402


def timed_get(url: str, repeat: int) -> tuple[float, int]:
    """(median seconds, bytes) of ``repeat`` GETs of ``url``."""
    times, size = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=120) as r:
            size = len(r.read())
        times.append(time.perf_counter() - t0)
    return statistics.median(times), size


def cursor_of(url: str) -> str:
    import json

    with urllib.request.urlopen(url, timeout=120) as r:
        return json.loads(r.read())["cursor"]


def commit_next(db: Path, run_ids: list[str], epoch: int, seeds: int) -> None:
    with Store(db) as store:
        for i, run_id in enumerate(run_ids):
            store.commit_epoch(run_id, epoch, metrics(i // seeds, i % seeds, epoch), None)


def measure(folder: Path, runs: int, epochs: int, seeds: int, repeat: int) -> dict[str, float]:
    db = folder / "sweeplab.db"
    t0 = time.perf_counter()
    arms = [f"arm {a}" for a in range(runs // seeds)]
    arms[0] = "baseline"
    ids = synthetic_study(db, "big", arms, seeds=seeds, epochs=epochs + 2, done=epochs)
    print(f"  generated {len(ids)} runs x {epochs} epochs = {len(ids) * epochs:,} rows "
          f"in {time.perf_counter() - t0:.1f} s ({db.stat().st_size / 1e6:.1f} MB)")
    out = {}
    with Server(folder) as server:
        api = f"{server.url}/api/study/big"
        timed_get(api, 1)  # warm: the server's imports and SQLite's page cache
        out["full"], size = timed_get(api, repeat)
        print(f"  study data  /api/study/big        {out['full'] * 1000:8.1f} ms  ({size / 1e6:.2f} MB JSON)")
        out["table"], _ = timed_get(f"{api}/table", repeat)
        print(f"  table       /api/study/big/table  {out['table'] * 1000:8.1f} ms")
        cursor = cursor_of(api)
        out["none"], _ = timed_get(f"{api}/updates?after={quote(cursor)}", repeat)
        commit_next(db, ids[:1], epochs + 1, seeds)
        out["one"], _ = timed_get(f"{api}/updates?after={quote(cursor)}", repeat)
        cursor = cursor_of(api)
        commit_next(db, ids[1:], epochs + 1, seeds)
        commit_next(db, ids[:1], epochs + 2, seeds)
        out["all"], size = timed_get(f"{api}/updates?after={quote(cursor)}", repeat)
        for key, what in (("none", "nothing new"), ("one", "1 new row"), ("all", f"{len(ids)} new rows")):
            print(f"  update, {what:<14}             {out[key] * 1000:8.1f} ms  "
                  f"= {out[key] / out['full']:.3f} x the full load")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (timings are wall clock)")
    results = {}
    for epochs in (args.epochs, max(1, args.epochs // 10)):
        print(f"{args.runs} runs x {epochs} epochs:")
        with tempfile.TemporaryDirectory() as d:
            results[epochs] = measure(Path(d), args.runs, epochs, args.seeds, args.repeat)
    big, small = results[args.epochs], results[max(1, args.epochs // 10)]
    print(f"study data load at {args.runs * args.epochs:,} rows: {big['full']:.3f} s (goal: under 1 s)")
    print(f"update with 1 new row, {args.epochs} vs {args.epochs // 10} epochs per run: "
          f"{big['one'] / small['one']:.2f} x (1.0 = independent of the rows already stored)")
    print(f"full load, {args.epochs} vs {args.epochs // 10} epochs per run: {big['full'] / small['full']:.2f} x")


if __name__ == "__main__":
    main()
