"""What evaluating every N steps costs: a run's epoch time (training and evaluation, summed over
its epochs) with ``eval_every_steps`` against the same run without it, measured in this one
process in round robin, and the epoch rows of both compared (they must be equal: the option only
adds step rows).

Each evaluation is one pass over the validation and test sets, so the cost is roughly
(evaluations x eval-set size) / (training samples) of an epoch's forward work. Run by hand (not a
test):

    .venv/bin/python benchmarks/eval_steps.py
    .venv/bin/python benchmarks/eval_steps.py --every 10 50 200 --batch-size 16 --epochs 3 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from sweeplab.resolve import build_run_config
from sweeplab.store import Store
from sweeplab.train.loop import fit, record_run

_TRAINING = ("train_loss", "train_acc", "test_loss", "test_acc", "val_loss", "val_acc", "lr")


def _run(store: Store, every: int | None, args: argparse.Namespace) -> tuple[float, list[dict], int]:
    data = {"data": {"dataset": "digits", "val_size": 200}, "model": {"name": "mlp", "hidden": [64]},
            "epochs": args.epochs, "batch_size": args.batch_size, "device": "cpu", "threads": args.threads,
            "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9}}
    if every:
        data["eval_every_steps"] = every
    cfg = build_run_config(data)
    record_run(store, cfg)
    result = fit(cfg, store)
    seconds = sum(r["epoch_time_s"] for r in result.epochs)  # training + evaluation, not set-up or commits
    return seconds, [{k: r.get(k) for k in _TRAINING} for r in result.epochs], len(store.steps(result.run_id))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--every", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    settings = [None, *args.every]
    times: dict[int | None, list[float]] = {e: [] for e in settings}
    rows: dict[int | None, list[dict]] = {}
    evaluations: dict[int | None, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        with Store(Path(tmp) / "warm.db") as store:  # imports, data load and kernels warmed up
            _run(store, None, args)
        for i in range(args.repeats):  # round robin, so that drift in the machine's load hits all alike
            for every in settings:
                with Store(Path(tmp) / f"{every}-{i}.db") as store:
                    seconds, rows[every], evaluations[every] = _run(store, every, args)
                times[every].append(seconds)
    base = times[None]
    print(f"without eval_every_steps: {statistics.median(base):.2f} s (median of {args.repeats})")
    for every in args.every:
        ratio = statistics.median(t / b for t, b in zip(times[every], base))
        same = "equal" if rows[every] == rows[None] else "DIFFERENT"
        print(f"eval_every_steps={every:>5}: {statistics.median(times[every]):.2f} s, x{ratio:.2f} the time "
              f"(median of per-repeat ratios), {evaluations[every]} evaluations, epoch rows {same}")

if __name__ == "__main__":
    main()
