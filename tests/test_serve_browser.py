"""The dashboard in a real browser: headless Chromium (Debian's ``chromium``, driven by the
``playwright`` package through ``executable_path``; no browser download) against the real
`sweeplab serve` on a free loopback port.

Every page is opened with all requests routed through a check that aborts and records anything
not addressed to the server's own loopback origin; each test asserts that list is empty. Pages
are saved as screenshots under the test's tmp dir (and copied to $SWEEPLAB_SHOTS_DIR when set).

Skipped where ``/usr/bin/chromium`` is absent; ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from serve_helpers import SWEEPLAB, Server, synthetic_study
from sweeplab.store import Store

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium not installed at /usr/bin/chromium "
                       "(Debian: apt-get install -y chromium); the dashboard is not tested in a browser"),
    pytest.mark.timeout(120),
]

XSS = "<script>alert(1)</script>"
ARMS = ["baseline", XSS, "wide", "deep"]


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("dash")
    synthetic_study(out / "sweeplab.db", "demo", ARMS, seeds=3, epochs=12, diverge={11: 8})  # deep, seed 2
    return out


@pytest.fixture(scope="module")
def server(store_dir):
    with Server(store_dir) as s:
        yield s


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


class Page:
    """A page with off-machine requests blocked and recorded, dialogs and script errors recorded."""

    def __init__(self, browser, server, tmp_path: Path):
        self.server, self.tmp = server, tmp_path
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.offsite: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.context.route("**/*", self._route)
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("request", lambda r: self.requests.append(r.url))

    def _route(self, route):
        url = urlparse(route.request.url)
        if url.scheme in ("data", "blob") or (url.hostname == "127.0.0.1" and url.port == self.server.port):
            route.continue_()
        else:
            self.offsite.append(route.request.url)
            route.abort()

    def open(self, path: str):
        self.page.goto(self.server.url + path, wait_until="networkidle")
        return self.page

    def shot(self, name: str) -> Path:
        path = self.tmp / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        target = os.environ.get("SWEEPLAB_SHOTS_DIR")
        if target:
            Path(target).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(target) / path.name)
        return path

    def close(self):
        self.context.close()


@pytest.fixture
def page(browser, server, tmp_path):
    p = Page(browser, server, tmp_path)
    yield p
    p.close()
    assert p.offsite == [], f"requests off the machine: {p.offsite}"
    assert p.dialogs == [], f"a script ran and opened a dialog: {p.dialogs}"
    assert p.errors == [], f"script errors: {p.errors}"


MEAN_LINES = "(m) => [...window.studyState.charts.get(m).series].filter(s => s.role === 'mean' && s.show).map(s => s.group)"


@pytest.mark.slow  # ~7 s with the browser's and the server's start: over the fast suite's budget
def test_study_page_draws_one_line_per_arm_and_shows_names_as_text(page):
    pg = page.open("/study/demo")
    pg.wait_for_function("() => window.studyState && window.studyState.charts.size > 0")
    assert pg.evaluate(MEAN_LINES, "test_acc") == ARMS
    assert pg.evaluate(MEAN_LINES, "train_loss") == ARMS
    labels = pg.locator(".legend-item .legend-label").all_text_contents()
    assert labels == ARMS  # the arm name is shown as its characters
    assert pg.evaluate("[...document.scripts].every(s => s.src.startsWith(location.origin + '/static/'))")
    assert pg.locator("#comparison tbody tr").count() == len(ARMS)
    page.shot("study")


def canvas_pixels(pg, metric: str, colour: str) -> int:
    """Pixels of ``metric``'s chart close to ``colour`` (a drawn line of that arm)."""
    return pg.evaluate("""([metric, colour]) => {
      const c = document.querySelector(`figure[data-metric="${metric}"] canvas`);
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      const n = parseInt(colour.slice(1), 16), rgb = [(n >> 16) & 255, (n >> 8) & 255, n & 255];
      let k = 0;
      for (let i = 0; i < d.length; i += 4)
        if (Math.abs(d[i] - rgb[0]) + Math.abs(d[i + 1] - rgb[1]) + Math.abs(d[i + 2] - rgb[2]) < 60 && d[i + 3] > 200) k++;
      return k;
    }""", [metric, colour])


@pytest.mark.slow
def test_toggles_hide_an_arm_and_switch_the_axis(page):
    pg = page.open("/study/demo")
    pg.wait_for_function("() => window.studyState && window.studyState.charts.size > 0")
    colour = pg.evaluate("window.studyState.styles.get('wide').colour")
    shown = canvas_pixels(pg, "test_acc", colour)
    assert shown > 100
    pg.locator(".legend-item", has_text="wide").click()
    assert pg.evaluate(MEAN_LINES, "test_acc") == [a for a in ARMS if a != "wide"]
    assert canvas_pixels(pg, "test_acc", colour) < shown / 10
    pg.locator(".legend-item", has_text="wide").click()
    assert canvas_pixels(pg, "test_acc", colour) > shown / 2

    axis = "() => { const u = window.studyState.charts.get('test_loss'); return [u.scales.y.distr, u.axes[1]._values]; }"
    distr, linear_ticks = pg.evaluate(axis)
    assert distr == 1
    pg.locator("#t-logy").check()
    distr, log_ticks = pg.evaluate(axis)
    assert distr == 3 and log_ticks != linear_ticks
    assert "logy=1" in pg.url  # the view is in the URL, so it can be bookmarked

    pg.locator("#t-seeds").check()
    seeds = pg.evaluate("[...window.studyState.charts.get('test_acc').series].filter(s => s.role === 'seed' && s.show).length")
    assert seeds == 3 * len(ARMS)
    page.shot("study-logy-seeds")

    pg.locator("#t-logx").check()
    assert pg.evaluate("window.studyState.charts.get('test_acc').scales.x.distr") == 3

    # The diverged run is marked at the epoch it diverged in (8), on its last recorded value.
    marks = pg.evaluate("""() => { const u = window.studyState.charts.get('train_loss');
      return u.series.map((s, i) => [s.role, s.group, u.data[i]]).filter(([r]) => r === 'mark'); }""")
    assert [(g, [i for i, v in enumerate(d) if v is not None]) for _, g, d in marks] == [("deep", [7])]

    pg.locator("#smooth").fill("0.6")
    mean, raw, shown = pg.evaluate("""() => { const u = window.studyState.charts.get('test_acc');
      const i = u.series.findIndex(s => s.role === 'mean' && s.group === 'baseline');
      const j = u.series.findIndex(s => s.role === 'raw' && s.group === 'baseline');
      return [u.data[i], u.data[j], u.series[j].show]; }""")
    assert shown and "smooth=0.6" in pg.url
    assert mean[0] == pytest.approx(raw[0])  # debiased: the first point is not pulled towards 0
    assert mean[-1] < raw[-1] - 0.5  # a rising curve, smoothed, lags behind its raw points


@pytest.mark.slow
def test_every_page_renders(page, server, store_dir):
    pg = page.open("/")
    assert pg.locator("#studies tbody tr").count() == 1
    assert pg.locator(".study-link").inner_text() == "demo"
    page.shot("studies")
    with Store(store_dir / "sweeplab.db", readonly=True) as store:
        ids = [link.run_id for link in store.study_runs("demo")]
    pg = page.open(f"/run/{ids[3]}")
    pg.wait_for_selector("figure.panel canvas")
    assert pg.locator("h1").inner_text().startswith(XSS)
    assert "model.hidden" in pg.locator(".card").first.inner_text()
    assert pg.locator("#ckpt-cmd").inner_text() == f"sweeplab checkpoint {ids[3]} --kind best -o {ids[3]}-best.pt"
    page.shot("run")
    pg = page.open(f"/compare?runs={ids[0]},{ids[3]},{ids[6]}")
    pg.wait_for_selector("figure.panel canvas")
    assert pg.locator("#config-diff tbody th").all_text_contents() == ["model.hidden"]
    page.shot("compare")
    pg = page.open("/study/no-such-study")
    assert "no study named 'no-such-study'" in pg.locator("main").inner_text()
    page.errors.clear()  # the 404 itself is logged by the browser as a failed resource
    page.shot("not-found")


LIVE_STUDY = """
[study]
name = "live"
seeds = 1

[baseline]
epochs = 400
batch_size = 16
device = "cpu"
data = { dataset = "digits" }
model = { name = "mlp", hidden = [16] }
optim = { name = "sgd", lr = 0.05, momentum = 0.9 }
"""


def _epochs_in_store(db: Path) -> int:
    try:
        with Store(db, readonly=True) as store:
            return sum(link.epochs_done for link in store.study_runs("live"))
    except Exception:  # not created yet, or mid-creation
        return 0


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_new_epochs_appear_without_reload(browser, tmp_path):
    (tmp_path / "live.toml").write_text(LIVE_STUDY)
    run = subprocess.Popen([str(SWEEPLAB), "run", str(tmp_path / "live.toml"), "--out", str(tmp_path / "out")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while _epochs_in_store(tmp_path / "out" / "sweeplab.db") < 1:
            assert run.poll() is None and time.monotonic() < deadline, "the study did not start training"
            time.sleep(0.2)
        with Server(tmp_path / "out") as server:
            p = Page(browser, server, tmp_path)
            try:
                pg = p.open("/study/live")
                pg.wait_for_function("() => window.studyState && window.studyState.charts.size > 0")
                first = pg.evaluate("Object.values(window.studyState.data.series)[0].epoch.length")
                navigations = pg.evaluate("performance.getEntriesByType('navigation').length")
                pg.wait_for_function("(n) => Object.values(window.studyState.data.series)[0].epoch.length > n", arg=first,
                                     timeout=60_000)
                drawn = pg.evaluate("window.studyState.charts.get('test_acc').data[0].length")
                assert drawn > first  # the chart itself grew, not only the data behind it
                assert pg.evaluate("window.studyState.fullLoads") == 1
                assert pg.evaluate("performance.getEntriesByType('navigation').length") == navigations
                full = [u for u in p.requests if urlparse(u).path == "/api/study/live"]
                polls = [u for u in p.requests if urlparse(u).path == "/api/study/live/updates"]
                assert len(full) == 1 and polls  # incremental updates only, never the whole study again
                assert int(pg.locator("#epochs-done").inner_text()) > first - 1
                p.shot("study-live")
                assert p.offsite == [] and p.dialogs == [] and p.errors == []
            finally:
                p.close()
    finally:
        if run.poll() is None:
            os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=30)


@pytest.mark.slow
def test_store_that_turns_unreadable_shows_a_clear_page(browser, tmp_path):
    synthetic_study(tmp_path / "sweeplab.db", "gone", ["baseline"], seeds=1, epochs=2)
    with Server(tmp_path) as server:
        p = Page(browser, server, tmp_path)
        try:
            (tmp_path / "sweeplab.db").write_bytes(b"\0garbage" * 4096)
            for side in ("sweeplab.db-wal", "sweeplab.db-shm"):
                (tmp_path / side).unlink(missing_ok=True)
            pg = p.open("/")
            pg.wait_for_selector(".error-box")
            text = pg.locator(".error-box").inner_text()
            assert "cannot be read" in text or "not a database" in text or "corrupt" in text
            assert "Traceback" not in text
            p.shot("store-unreadable")
            assert p.offsite == [] and p.dialogs == []
        finally:
            p.close()


@pytest.mark.slow  # the browser and a server of its own: ~10 s
def test_study_names_descriptions_and_class_names_are_shown_as_text(browser, tmp_path):
    """Markup in a study's name (and so its description), in class names and in config values
    reaches the studies, study and run pages as its characters: no script runs, no element is made."""
    name = '<img src=x onerror=alert(1)>"/table'  # also ends like an API endpoint
    ids = synthetic_study(tmp_path / "sweeplab.db", name, ["baseline", XSS], seeds=1, epochs=2)
    classes = [f"<b onmouseover=alert({k})>c{k}</b>" for k in range(10)]
    with Store(tmp_path / "sweeplab.db") as store:
        store.update_run(ids[1], env_json={"class_names": classes})
    with Server(tmp_path) as server:
        p = Page(browser, server, tmp_path)
        try:
            pg = p.open("/")
            assert pg.locator(".study-link").inner_text() == name
            assert name in pg.locator("#studies").inner_text()  # the description holds the name too
            pg.locator(".study-link").click()
            pg.wait_for_function("() => window.studyState && window.studyState.charts.size > 0")
            assert pg.locator(".crumb").last.inner_text() == name
            assert pg.locator(".legend-item .legend-label").all_text_contents() == ["baseline", XSS]
            pg = p.open(f"/run/{ids[1]}")
            pg.wait_for_selector(".class-name")
            assert pg.locator(".class-name").all_text_contents() == classes
            for html_tag in ("img", "b"):
                assert pg.locator(f"main {html_tag}").count() == 0 and pg.evaluate(
                    f"document.querySelectorAll('{html_tag}[onerror], {html_tag}[onmouseover]').length") == 0
            pg.locator(".class-name").first.hover()
        finally:
            p.close()
        assert p.offsite == [] and p.dialogs == [] and p.errors == [], (p.offsite, p.dialogs, p.errors)
