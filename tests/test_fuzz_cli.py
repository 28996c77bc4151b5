"""Fuzzing the CLI with study files and ``--set`` values (issue 8, "Done when").

Whatever the input, `sweeplab run STUDY --dry-run` exits 0 or 2, never with a traceback; an exit 2
says why in at most 4 lines on stderr and leaves an existing store byte-identical. The CLI runs in
this process (the real entry point, ``sweeplab.cli.main.main``) so hundreds of inputs take seconds;
an uncaught exception fails the test with the input that caused it.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import sweeplab
from sweeplab.cli.main import main

BASE = {
    "study": {"name": "fuzz", "seeds": 1},
    "baseline": {"epochs": 1, "data": {"dataset": "digits", "train_subset": 100},
                 "model": {"name": "mlp", "hidden": [8]}},
    "arm": [{"name": "lr", "optim": {"lr": [0.1, 0.01]}}],
}
KEYS = [
    "study.name", "study.seeds", "study.metric", "study.description", "study.include_baseline", "study.zz",
    "baseline.epochs", "baseline.batch_size", "baseline.grad_clip", "baseline.seed", "baseline.device",
    "baseline.optim.lr", "baseline.optim.name", "baseline.optim.momentum", "baseline.optim.betas",
    "baseline.schedule.name", "baseline.schedule.milestones", "baseline.loss.name",
    "baseline.data.dataset", "baseline.data.train_subset", "baseline.data.val_size", "baseline.data.random_state",
    "baseline.data.augment.crop_padding", "baseline.model.name", "baseline.model.hidden",
    "baseline.model.activation", "baseline.model.dropout", "baseline.max_batch_size", "baseline.zz",
    # added after issue 8: evaluation every N steps, early stopping, Ray resources
    "baseline.eval_every_steps", "baseline.early_stop", "baseline.early_stop.patience",
    "baseline.early_stop.metric", "baseline.early_stop.min_delta", "baseline.early_stop.zz",
    "study.resources", "study.resources.num_cpus", "study.resources.num_gpus",
]
#: Flags of `run` whose values are drawn too (--address only from values that need no network).
FLAGS = ["--epochs", "--seeds", "--workers", "--executor", "--ray-data", "--num-cpus", "--num-gpus", "--max-retries"]
ADDRESSES = ["", "auto", "a:b", ":", "ray://", "127.0.0.1:1", "[::1]:0", "h:99999"]
SCALARS = st.one_of(
    st.integers(min_value=-(2**65), max_value=2**65),
    st.integers(min_value=-2, max_value=12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(["", "max", "sgd", "adam", "relu", "cosine", "cpu", "cuda:9", "digits", "nope", "../../x",
                     "<script>", "test_acc", "2", "1e3", "mlp", "linear"]),
    st.text(max_size=8),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.sampled_from(["a", "lr", "name"]), inner,
                                                                      max_size=2)), max_leaves=6)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"


def toml_doc(doc: dict) -> str:
    lines = []
    for table in ("study", "baseline"):
        lines.append(f"[{table}]")
        lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in doc.get(table, {}).items()]
    for arm in doc.get("arm", []):
        lines.append("[[arm]]")
        lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in arm.items()]
    return "\n".join(lines) + "\n"


def mutated(changes: dict, cut: int | None) -> str:
    doc = json.loads(json.dumps(BASE))
    for dotted, value in changes.items():
        node = doc
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else {}
        node[leaf] = value
    text = toml_doc(doc)
    return text if cut is None else text[:cut] + text[cut + 1:]  # one character dropped: syntax errors


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz") / "out"
    study = out.parent / "ok.toml"
    study.write_text(toml_doc(BASE))
    assert sweeplab("run", str(study), "--out", str(out)).returncode == 0
    return out


def check(argv: list[str], out, capfd) -> None:
    db = out / "sweeplab.db"
    before = db.read_bytes()
    capfd.readouterr()
    code = main(argv)
    captured = capfd.readouterr()
    assert code in (0, 2), (argv, code, captured.err[-1000:])
    assert "Traceback" not in captured.err + captured.out
    if code == 2:
        lines = [ln for ln in captured.err.splitlines() if ln.strip()]
        assert 1 <= len(lines) <= 4, captured.err
        assert db.read_bytes() == before


def _fuzz_study_files(n: int):
    @settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck))
    @given(changes=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=3),
           cut=st.one_of(st.none(), st.integers(min_value=0, max_value=400)))
    def fuzz(store, tmp_path, capfd, changes, cut):
        path = tmp_path / "study.toml"
        path.write_text(mutated(changes, cut), encoding="utf-8", errors="surrogatepass")
        check(["run", str(path), "--dry-run", "--out", str(store)], store, capfd)

    return fuzz


def _fuzz_set_values(n: int):
    @settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck))
    @given(key=st.sampled_from([k.removeprefix("baseline.") for k in KEYS if k.startswith("baseline.")]
                               + ["", ".", "optim..lr", "model", "seed"]),
           value=st.one_of(VALUES.map(toml_value), st.text(max_size=12)),
           flags=st.lists(st.one_of(
               st.tuples(st.sampled_from(FLAGS), st.one_of(SCALARS.map(str), st.sampled_from(["ray", "local", "worker"]))),
               st.tuples(st.just("--address"), st.sampled_from(ADDRESSES))), max_size=2))
    def fuzz(store, tmp_path, capfd, key, value, flags):
        path = tmp_path / "study.toml"
        path.write_text(toml_doc(BASE))
        extra = [x for flag, v in flags for x in (flag, v)]
        check(["run", str(path), "--dry-run", "--out", str(store), "--set", f"{key}={value}", *extra], store, capfd)

    return fuzz


test_fuzz_study_files = _fuzz_study_files(250)
test_fuzz_set_values = _fuzz_set_values(250)
test_fuzz_study_files_long = pytest.mark.slow(_fuzz_study_files(2000))
test_fuzz_set_values_long = pytest.mark.slow(_fuzz_set_values(2000))
