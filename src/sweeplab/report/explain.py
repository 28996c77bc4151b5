"""Findings that explain the classic ablations, each computed from the stored runs.

``findings.py`` says what is better and whether it is significant; these say *why it looks the way
it does* for the ablations every course asks about, with the check that explains each and words
no stronger than the numbers: a deep linear MLP against one linear layer, where the best learning
rate lies on its grid and which rates were too slow, batch sizes at equal epochs and at equal
steps, the train-test gap and the onset of overfitting with and without a regulariser, the
convergence speed of two losses, whether two implementations of one network agree, and the
measured numbers beside the published ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from sweeplab.vocabulary import lower_is_better

from .findings import Finding, at_chance, comparison_text, diff_text, metric_name
from .numbers import pct
from .stats import mean_curve, welch
from .tables import ArmSetting, batch_families, by_arm, flatten, numeric_axis

#: Keys whose change is a regulariser (augmentation, weight decay, dropout, BatchNorm, smoothing).
REGULARISERS = ("data.augment", "optim.weight_decay", "model.dropout", "model.batchnorm", "loss.label_smoothing")
_IGNORED = ("seed", "threads")


def _cfg(s: ArmSetting) -> dict[str, Any]:
    runs = s.trained_runs or s.runs
    flat = flatten(runs[0].config) if runs else {}
    return {k: v for k, v in flat.items() if k not in _IGNORED}


def _diff(a: ArmSetting, b: ArmSetting) -> set[str]:
    ca, cb = _cfg(a), _cfg(b)
    return {k for k in set(ca) | set(cb) if ca.get(k) != cb.get(k)}


def _value(s: ArmSetting, metric: str) -> str:
    m = s.metric
    if not m.n:
        return "no completed run"
    if metric.endswith("acc"):
        return f"{pct(m.mean)}" + (f" ± {100 * m.std:.1f}" if m.std is not None else "") + f" (n={m.n})"
    return f"{m.mean:.4g}" + (f" ± {m.std:.2g}" if m.std is not None else "") + f" (n={m.n})"


def linear_composition(settings: Sequence[ArmSetting], metric: str) -> list[Finding]:
    """An MLP without activations against a single linear layer (same everything else)."""
    deep = [s for s in settings if _cfg(s).get("model.activation") == "none" and _cfg(s).get("model.hidden")]
    single = [s for s in settings if _cfg(s).get("model.hidden") == []]
    out = []
    for d in deep:
        for o in single:
            if not d.metric.n or not o.metric.n or not all(k.startswith("model.") for k in _diff(d, o)):
                continue
            c = welch(d.metric, o.metric)
            text = (f"{d.label} (an MLP without activations) against {o.label} (one linear layer), final "
                    f"{metric_name(metric)}: {_value(d, metric)} vs {_value(o, metric)}, "
                    f"{diff_text(c.diff, metric)} ({comparison_text(c)}). A composition of linear maps is one "
                    "linear map, so both represent the same functions and equal accuracy is the expectation: ")
            if c.p is None:
                text += "with one seed on a side this cannot be tested."
            elif not c.significant:
                text += "it held (the difference is within noise at this n)."
            else:
                better = (c.diff > 0) != lower_is_better(metric)
                text += (f"it did not hold at this n: {d.label} is significantly {'better' if better else 'worse'}. "
                         "Same function class, different training: depth changes the optimisation "
                         "(the gradient of a product of matrices), not what can be represented.")
            out.append(Finding("linear", text, (d.label, o.label)))
    return out


def _reach(s: ArmSetting, metric: str, target: float) -> int | None:
    """First epoch at which the setting's mean curve of ``metric`` reaches ``target``."""
    for epoch, m in mean_curve([r.curve(metric) for r in s.completed_runs]):
        if m.mean is not None and m.mean >= target:
            return epoch
    return None


def learning_rates(settings: Sequence[ArmSetting], metric: str) -> list[Finding]:
    """Along an lr grid: which diverged (epoch, step), which ended at chance, which were slow, and
    whether the best lies on the grid's edge."""
    out = []
    for arm, members in by_arm(settings).items():
        axis = numeric_axis(members)
        if axis is None or axis.split(".")[-1] != "lr" or any(set(s.axes) != {axis} for s in members):
            continue
        pts = sorted(members, key=lambda s: float(s.axes[axis]))
        parts = []
        diverged = [(s, s.diverged_runs) for s in pts if s.diverged_runs]
        if diverged:
            parts.append("diverged: " + "; ".join(
                f"lr={s.axes[axis]:g} in {len(rs)} of {len(s.runs)} seeds (epoch {min(r.diverged_epoch or 0 for r in rs)}"
                + (f", step {min(r.detail['step'] for r in rs if 'step' in r.detail)}"
                   if any("step" in r.detail for r in rs) else "") + ")" for s, rs in diverged))
        chance = [(s, at_chance(s)) for s in pts]
        chance = [(s, c) for s, c in chance if c]
        if chance:
            parts.append("ended at chance level: " + "; ".join(
                f"lr={s.axes[axis]:g} ({len(c)} of {len(s.completed_runs)} completed seeds)" for s, c in chance))
        done = [s for s in pts if s.metric.n]
        if not done:
            out.append(Finding("lr", f"{arm}: no learning rate completed a run; " + "; ".join(parts) + ".", ()))
            continue
        sign = -1.0 if lower_is_better(metric) else 1.0
        top = max(done, key=lambda s: sign * s.metric.mean)
        values = [float(s.axes[axis]) for s in pts]
        text = (f"{arm}: the best learning rate on the grid is {top.axes[axis]:g} ({_value(top, metric)} final "
                f"{metric_name(metric)}).")
        if len(values) >= 3 and float(top.axes[axis]) in (min(values), max(values)):
            edge = "smallest" if float(top.axes[axis]) == min(values) else "largest"
            text += (f" It is the {edge} value tried, on the grid's edge: the optimum may lie beyond the grid "
                     f"({'below' if edge == 'smallest' else 'above'} {top.axes[axis]:g}).")
        elif len(values) >= 3:
            text += " It lies inside the grid, with worse values on both sides."
        if parts:
            joined = "; ".join(parts)
            text += " " + joined[0].upper() + joined[1:] + "."
        if not lower_is_better(metric) and len(done) >= 2:
            target = 0.95 * top.metric.mean
            speed = []
            for s in done:
                e = _reach(s, metric, target)
                planned = max(len(r.epochs) for r in s.completed_runs)
                speed.append(f"lr={s.axes[axis]:g}: " + (f"epoch {e}" if e else f"not within {planned} epochs"))
            text += (f" Epochs to 95% of the best final {metric_name(metric)} ({pct(target)}), mean curves: "
                     + "; ".join(speed) + ". Rates that never get there in the budget are too slow for it.")
        out.append(Finding("lr", text, tuple(s.label for s in pts)))
    return out


def _steps(s: ArmSetting) -> int | None:
    env = s.trained_runs[0].env if s.trained_runs else {}
    spe = env.get("steps_per_epoch")
    if isinstance(spe, int) and spe > 0:
        return spe
    n = env.get("n_train")
    return math.ceil(n / s.batch_size) if isinstance(n, int) and isinstance(s.batch_size, int) else None


def batch_steps(settings: Sequence[ArmSetting], metric: str) -> list[Finding]:
    """The smallest and largest batch of a family at equal epochs and at equal optimiser steps."""
    out = []
    for family in batch_families(settings):
        small, large = family[min(family)], family[max(family)]
        s_steps, l_steps = _steps(small), _steps(large)
        if not small.metric.n or not large.metric.n or not s_steps or not l_steps:
            continue
        epochs = max(len(r.epochs) for r in large.completed_runs)
        total = epochs * l_steps
        c = welch(small.metric, large.metric)
        name = metric_name(metric)
        text = (f"Batch {small.batch_size} takes {s_steps:,} steps per epoch, batch {large.batch_size} {l_steps:,}. "
                f"At equal epochs ({epochs}), final {name}: {_value(small, metric)} vs {_value(large, metric)} "
                f"({comparison_text(c)}). ")
        at = math.ceil(total / s_steps)
        curve = dict(mean_curve([r.curve(metric) for r in small.completed_runs]))
        if total < s_steps:
            text += (f"Batch {large.batch_size}'s whole run ({total:,} steps) is shorter than one epoch of batch "
                     f"{small.batch_size}, so no stored epoch is at equal steps: the larger batch made "
                     f"{s_steps * epochs / total:.0f}× fewer updates.")
        elif at in curve and curve[at].mean is not None:
            v = curve[at].mean
            shown = pct(v) if metric.endswith("acc") else f"{v:.4g}"
            text += (f"At equal steps ({total:,}: epoch {at} of batch {small.batch_size}), batch {small.batch_size} "
                     f"had {shown}, against batch {large.batch_size}'s final {_value(large, metric)}: "
                     "compare the two to see how much of the gap is the number of updates.")
        out.append(Finding("batch_steps", text, (small.label, large.label)))
    return out


def _onset(s: ArmSetting) -> tuple[int, int] | None:
    """(epoch of the minimum of the mean test loss, last epoch) when test loss turns up after it
    while train loss keeps falling; None when it does not (or the curves are too short)."""
    test = [(e, m.mean) for e, m in mean_curve([r.curve("test_loss") for r in s.completed_runs]) if m.mean is not None]
    train = dict((e, m.mean) for e, m in mean_curve([r.curve("train_loss") for r in s.completed_runs]))
    if len(test) < 3:
        return None
    low_epoch, low = min(test, key=lambda p: p[1])
    last_epoch, last = test[-1]
    if low_epoch == last_epoch or last <= low:
        return None
    a, b = train.get(low_epoch), train.get(last_epoch)
    if a is None or b is None or b >= a:
        return None
    return low_epoch, last_epoch


def regularisers(settings: Sequence[ArmSetting], metric: str) -> list[Finding]:
    """Each arm that changes only a regulariser against the baseline: the train-test gap with and
    without, and when overfitting starts (test loss turning up while train loss falls)."""
    base = next((s for s in settings if s.is_baseline), None)
    if base is None or not base.completed_runs:
        return []

    def onset_text(s: ArmSetting) -> str:
        o = _onset(s)
        return (f"test loss turns up after epoch {o[0]} while train loss keeps falling" if o
                else "test loss does not turn up within its epochs")

    out = []
    for s in settings:
        keys = _diff(s, base)
        if s.is_baseline or not keys or not s.completed_runs:
            continue
        if not all(any(k == r or k.startswith(r + ".") for r in REGULARISERS) for k in keys):
            continue
        gs, gb = s.gap.mean, base.gap.mean
        gap = (f"train − test gap {100 * gs:.1f} points vs {100 * gb:.1f} without"
               if gs is not None and gb is not None else "no train − test gap to compare")
        c = welch(s.gap, base.gap)
        out.append(Finding("regularisation", f"{s.label} ({', '.join(sorted(keys))}) against the baseline: {gap} "
                                             f"({comparison_text(c)}); with it, {onset_text(s)}; without, "
                                             f"{onset_text(base)}.", (s.label, base.label)))
    return out


def losses(settings: Sequence[ArmSetting], metric: str) -> list[Finding]:
    """Settings that differ only in the loss: convergence speed (epochs to 95% of best) and result."""
    out = []
    for i, a in enumerate(settings):
        for b in settings[i + 1:]:
            keys = _diff(a, b)
            if not keys or not all(k.startswith("loss.") for k in keys) or not (a.completed_runs and b.completed_runs):
                continue
            la, lb = _cfg(a).get("loss.name"), _cfg(b).get("loss.name")
            c = welch(a.epochs_to_95, b.epochs_to_95)
            ea, eb = a.epochs_to_95.mean, b.epochs_to_95.mean
            out.append(Finding("loss", (
                f"Loss {la} ({a.label}) against {lb} ({b.label}): epochs to 95% of the best test accuracy "
                f"{ea:.1f} vs {eb:.1f} ({comparison_text(c)}); {'faster' if ea < eb else 'slower' if ea > eb else 'as fast'}"
                f" with {la}. Final {metric_name(metric)}: {_value(a, metric)} vs {_value(b, metric)}."
            ) if ea is not None and eb is not None else f"Loss {la} against {lb}: no convergence speed to compare.",
                (a.label, b.label)))
    return out


def agreement(settings: Sequence[ArmSetting]) -> list[Finding]:
    """Two implementations of one network (settings that differ only in ``model.name``), run by
    run: the largest per-epoch difference of train loss and test accuracy over seed pairs."""
    out = []
    for i, a in enumerate(settings):
        for b in settings[i + 1:]:
            if _diff(a, b) != {"model.name"}:
                continue
            pairs = [(ra, rb) for ra in a.trained_runs for rb in b.trained_runs if ra.seed == rb.seed]
            if not pairs:
                continue
            worst = {"train_loss": (0.0, 0), "test_acc": (0.0, 0)}
            epochs = 0
            for ra, rb in pairs:
                for key in worst:
                    xb = dict(rb.curve(key))
                    for e, v in ra.curve(key):
                        if e in xb and abs(v - xb[e]) > worst[key][0]:
                            worst[key] = (abs(v - xb[e]), e)
                        epochs = max(epochs, e)
            dl, da = worst["train_loss"], worst["test_acc"]
            acc = (f"{100 * da[0]:.2f} points in test accuracy (epoch {da[1]})" if da[0] > 0
                   else "none in test accuracy (equal at every epoch)")
            verdict = ("agree to float round-off" if dl[0] < 1e-4 and da[0] < 1e-9 else
                       "agree closely (the differences are round-off growing with training)" if dl[0] < 1e-2 and da[0] <= 0.01
                       else "disagree")
            out.append(Finding("agreement", (
                f"{a.label} and {b.label} ({_cfg(a).get('model.name')} vs {_cfg(b).get('model.name')}) {verdict}: "
                f"over {len(pairs)} seed pairs and {epochs} epochs the largest difference is {dl[0]:.2g} in train loss"
                f" (epoch {dl[1]}) and {acc}."), (a.label, b.label)))
    return out


def references(settings: Sequence[ArmSetting], reference: dict[str, Any], data_sources: Sequence[str]) -> list[Finding]:
    """Measured numbers beside the published ones of the study's ``reference`` table."""
    items = []
    for s in settings:
        for column, value in s.reference.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not s.final_test_acc.n:
                continue
            # "test_acc_pct_epoch2": the published number is at epoch 2, so compare there.
            at = re.search(r"epoch_?(\d+)", column)
            split = "train" if column.startswith("train") else "test"
            acc, when = s.final_test_acc.mean if split == "test" else s.final_train_acc.mean, "final"
            if at:
                curve = dict(mean_curve([r.curve(f"{split}_acc") for r in s.completed_runs]))
                epoch = int(at.group(1))
                if epoch not in curve or curve[epoch].mean is None:
                    continue
                acc, when = curve[epoch].mean, f"epoch {epoch}"
            if acc is None:
                continue
            if "error" in column:
                items.append(f"{s.label} {split} error ({when}) {100 * (1 - acc):.2f}% measured vs {value:g}% published")
            elif "acc" in column:
                ref = value / 100 if value > 1 else value
                items.append(f"{s.label} {split} accuracy ({when}) {pct(acc, 2)} measured vs {pct(ref, 2)} published")
    if not items:
        return []
    source = reference.get("source")
    text = "Beside the published numbers" + (f" ({source})" if source else "") + ": " + "; ".join(items) + "."
    if any("jpeg" in str(d).lower() for d in data_sources):
        text += (" The data here is a JPEG copy of the dataset: compression changes the pixels, so a gap of "
                 "a point or so from papers trained on the original files is expected.")
    return [Finding("reference", text, tuple(s.label for s in settings if s.reference))]


def distinct(settings: Sequence[ArmSetting]) -> list[ArmSetting]:
    """Settings in study order, leaving out any that links exactly the runs of an earlier one (a grid
    point equal to the baseline is the baseline's runs: comparing it again would repeat a finding)."""
    seen: set[frozenset[str]] = set()
    out = []
    for s in sorted(settings, key=lambda s: (not s.is_baseline, s.position)):
        key = frozenset(r.run_id for r in s.runs)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def explain(settings: Sequence[ArmSetting], metric: str, reference: dict[str, Any],
            data_sources: Sequence[str]) -> list[Finding]:
    """Every explaining finding, in reading order."""
    unique = distinct(settings)
    return [
        *linear_composition(unique, metric),
        *learning_rates(settings, metric),
        *batch_steps(settings, metric),
        *regularisers(unique, metric),
        *losses(unique, metric),
        *agreement(unique),
        *references(settings, reference, data_sources),
    ]
