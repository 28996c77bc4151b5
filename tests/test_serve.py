"""`sweeplab serve` over HTTP, without a browser: the real server in a subprocess on a free
loopback port, over a real store written through the store's API (synthetic numbers, no training).

Covers the JSON API the pages use (a study's curves, the live cursor returning only new rows, the
report's table), 404s for unknown ids and traversal, no endpoint that writes, the store file left
untouched, and the one-line errors of a port in use and a corrupt or missing store.
"""

from __future__ import annotations

import hashlib
import socket
import urllib.parse
import urllib.request

import pytest

from helpers import sweeplab
from serve_helpers import Server, free_port, get, metrics, synthetic_study
from sweeplab.report import build_report
from sweeplab.store import Store

pytestmark = pytest.mark.timeout(60)

ARMS = ["baseline", "<script>alert(1)</script>", "wide"]
GRID = [("baseline", "baseline", {})] + [("lr", f"lr: optim.lr={v}", {"optim.lr": v}) for v in (0.001, 0.01, 0.1)]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    out = tmp_path_factory.mktemp("serve")
    ids = synthetic_study(out / "sweeplab.db", "live", ARMS, seeds=2, epochs=5, done=3)
    synthetic_study(out / "sweeplab.db", "done", ["baseline", "other"], seeds=3, epochs=4)
    synthetic_study(out / "sweeplab.db", "lab/x y", ["baseline"], seeds=1, epochs=2)
    synthetic_study(out / "sweeplab.db", "grid", GRID, seeds=2, epochs=4, diverge={7: 3})
    with Server(out) as server:
        yield server, out, ids


def test_study_payload_has_every_arm_and_run(served):
    server, _, ids = served
    status, data = get(f"{server.url}/api/study/live")
    assert status == 200
    assert [s["label"] for s in data["settings"]] == ARMS
    assert [s["is_baseline"] for s in data["settings"]] == [True, False, False]
    assert [link["run_id"] for link in data["links"]] == ids
    assert all(data["series"][i]["epoch"] == [1, 2, 3] for i in ids)
    assert data["series"][ids[0]]["test_acc"][2] == pytest.approx(metrics(0, 0, 3)["test_acc"])
    assert "test_acc" in data["metrics"] and "val_acc" not in data["metrics"]  # never recorded: no panel


def test_a_study_name_with_a_slash_is_a_name(served):
    server, _, _ = served
    status, data = get(f"{server.url}/api/study/lab%2Fx%20y")
    assert status == 200 and data["study"]["name"] == "lab/x y"
    assert get(f"{server.url}/api/study/lab%2Fx%20y/table")[1]["rows"][0]["label"] == "baseline"
    assert get(f"{server.url}/study/lab%2Fx%20y")[0] == 200
    assert get(f"{server.url}/api/study/lab%2Fx")[0] == 404


def test_updates_return_only_new_rows(served):
    server, out, ids = served
    _, data = get(f"{server.url}/api/study/live")
    _, none = get(f"{server.url}/api/study/live/updates?after={data['cursor']}")
    assert none["links"] == [] and none["series"] == {} and not none["reset"]
    with Store(out / "sweeplab.db") as store:  # a writer while the server reads
        store.commit_epoch(ids[1], 4, metrics(0, 1, 4), None)
    _, up = get(f"{server.url}/api/study/live/updates?after={data['cursor']}")
    assert [link["run_id"] for link in up["links"]] == [ids[1]]
    assert up["series"] == {ids[1]: {k: [v] for k, v in _columns(metrics(0, 1, 4), 4).items()}}
    assert not up["status_changed"]
    with Store(out / "sweeplab.db") as store:
        store.set_status(ids[2], "diverged", '{"epoch": 4, "step": 1, "reason": "loss is nan"}')
    _, up2 = get(f"{server.url}/api/study/live/updates?after={up['cursor']}")
    assert [(link["run_id"], link["status"], link["diverged_epoch"]) for link in up2["links"]] == [(ids[2], "diverged", 4)]
    assert up2["series"] == {} and up2["status_changed"]
    _, stale = get(f"{server.url}/api/study/live/updates?after=v9:1-1")
    assert stale["reset"]


def _columns(row, epoch):
    from sweeplab.serve.data import CURVE_METRICS

    return {"epoch": epoch, **{m: row.get(m) for m in CURVE_METRICS}}


def test_table_is_the_reports(served):
    server, out, _ = served
    _, table = get(f"{server.url}/api/study/done/table")
    with Store(out / "sweeplab.db", readonly=True) as store:
        report = build_report(store, "done", with_figures=False)
    assert [r["label"] for r in table["rows"]] == [s.label for s in report.settings]
    for row, s in zip(table["rows"], report.settings):
        assert row["metric"]["mean"] == pytest.approx(s.metric.mean)
        assert row["metric"]["ci_high"] == pytest.approx(s.metric.ci_high)
        if s.vs_baseline is not None:
            assert row["vs_baseline"]["p"] == pytest.approx(s.vs_baseline.p)
    _, studies = get(f"{server.url}/api/studies")
    by_name = {s["name"]: s for s in studies["studies"]}
    assert by_name["done"]["outcomes"] == {"completed": 6} and by_name["done"]["epochs_done"] == 24
    assert by_name["live"]["outcomes"].get("running", 0) >= 4 and by_name["live"]["eta_s"] is not None


def test_final_rows_extra_is_enough_for_the_table(served):
    """The dashboard reads only each run's last row with its extra metrics; every number of the
    table, per-class accuracy and confusion matrix included, is the same as from every row."""
    from dataclasses import asdict

    from sweeplab.report.tables import group_settings, load_runs, rank_settings

    _, out, _ = served
    with Store(out / "sweeplab.db", readonly=True) as store:
        spec = store.get_study("grid").spec
        full = rank_settings(group_settings(load_runs(store, "grid"), spec), "test_acc")
        light_runs = load_runs(store, "grid", extra="final")
        light = rank_settings(group_settings(light_runs, spec), "test_acc")
    assert any(s.confusion for s in full) and any(s.per_class_acc for s in full)
    drop = lambda s: {k: v for k, v in asdict(s).items() if k != "runs"}  # noqa: E731
    assert [drop(s) for s in light] == [drop(s) for s in full]
    assert "test_confusion" not in light_runs[0].epochs[0] and "test_confusion" in light_runs[0].epochs[-1]


def test_sweeps_and_divergence(served):
    server, out, _ = served
    _, table = get(f"{server.url}/api/study/grid/table")
    _, study = get(f"{server.url}/api/study/grid")
    with Store(out / "sweeplab.db", readonly=True) as store:
        report = build_report(store, "grid", with_figures=False)
    [sweep] = table["sweeps"]
    assert sweep["arm"] == "lr" and sweep["axis"] == "optim.lr" and sweep["log_x"]  # 0.001..0.1 spans decades
    assert [p["x"] for p in sweep["points"]] == [0.001, 0.01, 0.1]
    for p in sweep["points"]:
        assert p["mean"] == pytest.approx(report.setting(p["label"]).metric.mean)
    assert sweep["points"][2]["n"] == 1  # one of its two seeds diverged: left out of the final mean
    diverged = [link for link in study["links"] if link["status"] == "diverged"]
    assert [(d["index"], d["diverged_epoch"]) for d in diverged] == [(7, 3)]
    assert study["series"][diverged[0]["run_id"]]["epoch"] == [1, 2]
    assert "nan" in diverged[0]["detail"]


@pytest.mark.parametrize("path", ["/api/study/..%2F..", "/api/study/..%2F..%2Fetc%2Fpasswd", "/api/study/nope",
                                  "/api/study/nope/updates?after=v1:", "/api/run/nope", "/study/nope",
                                  "/run/nope", "/static/..%2F..%2Fapp.py", "/static/../app.py", "/nothing"])
def test_unknown_and_traversal_are_404(served, path):
    server, _, _ = served
    status, body = get(server.url + path)
    assert status == 404
    text = body["error"] if isinstance(body, dict) else body
    assert text and "Traceback" not in text
    if path.startswith(("/study/", "/run/")):
        assert "<h1>Not found</h1>" in text


def test_no_endpoint_writes_and_the_store_is_untouched(served):
    server, out, ids = served
    db = out / "sweeplab.db"
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    for path in ("/api/study/done", f"/api/run/{ids[0]}", "/api/study/done/table", f"/api/compare?runs={ids[0]},{ids[1]}"):
        assert get(server.url + path)[0] == 200
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            req = urllib.request.Request(server.url + path, method=method, data=b"{}")
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(req, timeout=10)
            assert err.value.code == 405
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_run_and_compare(served):
    server, _, ids = served
    _, run = get(f"{server.url}/api/run/{ids[2]}")
    assert run["run_id"] == ids[2] and run["study"] == "live"
    assert run["config_diff"] == {"model.hidden": [32]} and run["config"]["model.hidden"] == [32]
    _, wide = get(f"{server.url}/api/run/{ids[4]}")
    assert wide["config_diff"] == {"model.hidden": [48]}
    assert wide["checkpoint_command"] == f"sweeplab checkpoint {ids[4]} --kind best -o {ids[4]}-best.pt"
    _, cmp = get(f"{server.url}/api/compare?runs={ids[0]},{ids[4]}")
    assert cmp["differ"] == ["model.hidden"] and [r["run_id"] for r in cmp["runs"]] == [ids[0], ids[4]]
    assert get(f"{server.url}/api/compare?runs={ids[0]}")[0] == 400


def test_port_in_use_is_one_line_exit_2(tmp_path):
    synthetic_study(tmp_path / "sweeplab.db", "s", ["baseline"], seeds=1, epochs=1)
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen(1)
        r = sweeplab("serve", "--out", str(tmp_path), "--port", str(port), timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--port" in lines[0] and str(port) in lines[0] and "in use" in lines[0]
    assert "Traceback" not in r.stderr + r.stdout


def test_corrupt_or_missing_store_is_a_clear_message(tmp_path):
    missing = sweeplab("serve", "--out", str(tmp_path / "none"), "--port", str(free_port()), timeout=60)
    assert missing.returncode == 2 and "no run store" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "sweeplab.db").write_bytes(b"this is not a database" * 100)
    r = sweeplab("serve", "--out", str(tmp_path), "--port", str(free_port()), timeout=60)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1
    assert "sweeplab.db" in lines[0] and "not a SQLite database" in lines[0]


def test_only_loopback_hosts_pass_without_a_warning():
    from sweeplab.serve.server import is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "example.org"))


def test_columns_turn_non_finite_values_into_gaps():
    from sweeplab.serve.data import CURVE_METRICS, columns

    base = dict.fromkeys(CURVE_METRICS)
    rows = [{**base, "epoch": 1, "train_loss": 2.0, "test_acc": 0.5},
            {**base, "epoch": 2, "train_loss": float("nan"), "test_acc": 0.6},
            {**base, "epoch": 3, "train_loss": float("inf"), "test_acc": 0.7}]
    cols = columns(rows)
    assert cols["epoch"] == [1, 2, 3] and cols["train_loss"] == [2.0, None, None]
    assert cols["test_acc"] == [0.5, 0.6, 0.7] and cols["val_acc"] == [None, None, None]
    assert set(columns(rows, sparse=True)) == {"epoch", "train_loss", "test_acc"}
    assert columns([]) == {"epoch": [], **{m: [] for m in CURVE_METRICS}}


@pytest.mark.parametrize("after", ["-1", "abc", str(10**30), "9" * 5000, "v1:", "v-1:0-0", "v1:0-99", "v1:1-0*-3",
                                   "v1:0-0*1000000", "v1:" + "0-0*1000000." * 50 + "0-0"])
def test_odd_cursors_get_a_fresh_start(served, after):
    """Whatever ``after`` holds, the answer is a 200 asking the page to reload (``reset``)."""
    server, _, _ = served
    status, body = get(f"{server.url}/api/study/done/updates?after={urllib.parse.quote(after)}")
    assert status == 200 and body["reset"] is True and body["cursor"].startswith("v1:")


def test_a_cursor_claiming_millions_of_links_is_not_expanded(tmp_path):
    """A 250-character cursor that claims 20 million links is refused without building them (it
    was expanded into a 20-million-entry list first: 50 such parts in one URL took gigabytes)."""
    import tracemalloc

    from sweeplab.serve import data

    synthetic_study(tmp_path / "sweeplab.db", "s", ["baseline", "b"], seeds=1, epochs=2)
    huge = "v1:" + "0-0*1000000." * 20 + "0-0"
    with Store(tmp_path / "sweeplab.db", readonly=True) as store:
        good = data.study_payload(store, "s")["cursor"]
        assert data.study_updates(store, "s", good)["reset"] is False
        tracemalloc.start()
        try:
            answer = data.study_updates(store, "s", huge)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert answer == {"reset": True, "cursor": good}
    assert peak < 5_000_000, f"{peak:,} bytes to answer a bad cursor"


def test_a_study_named_like_an_endpoint_is_that_study(tmp_path):
    """"a/table" and "x/updates" are names like any other: "a/table" showed the table of "a", and
    "x/updates" was a 404 (the decoded path cannot tell a "/" in a name from the endpoint's)."""
    db = tmp_path / "sweeplab.db"
    synthetic_study(db, "a", ["baseline", "arm-of-a"], seeds=1, epochs=2)
    synthetic_study(db, "a/table", ["baseline", "arm-of-a-table"], seeds=1, epochs=2)
    synthetic_study(db, "x/updates", ["baseline"], seeds=1, epochs=2)
    with Server(tmp_path) as server:
        _, study = get(f"{server.url}/api/study/a%2Ftable")
        assert study["study"]["name"] == "a/table" and [s["label"] for s in study["settings"]][1] == "arm-of-a-table"
        _, table = get(f"{server.url}/api/study/a%2Ftable/table")
        assert {row["label"] for row in table["rows"]} == {"baseline", "arm-of-a-table"}
        _, of_a = get(f"{server.url}/api/study/a/table")  # a plain "/": the table of "a"
        assert {row["label"] for row in of_a["rows"]} == {"baseline", "arm-of-a"}
        _, x = get(f"{server.url}/api/study/x%2Fupdates")
        assert x["study"]["name"] == "x/updates"
        _, up = get(f"{server.url}/api/study/x%2Fupdates/updates?after={urllib.parse.quote(x['cursor'])}")
        assert up["reset"] is False and up["links"] == []
        assert get(f"{server.url}/api/study/lab%2Fx/table")[0] == 404
