/* The study page: one panel per metric (mean over seeds with its 95% band per arm setting), the
   legend, the report's comparison table, the sweeps and the runs. Loads the study once, then
   polls /updates with its cursor and merges only the new epoch rows. */
"use strict";

const NAME = decodeURIComponent(location.pathname.replace(/^\/study\//, ""));
const API = `/api/study/${encodeURIComponent(NAME)}`;
const params = new URLSearchParams(location.search);
const S = (window.studyState = {
  data: null, charts: new Map(), hidden: new Set(), seeds: params.get("seeds") === "1",
  logY: params.get("logy") === "1", logX: params.get("logx") === "1", smooth: Number(params.get("smooth") || 0),
  fullLoads: 0, updates: 0, table: null,
});

function keepInUrl() {
  const p = new URLSearchParams();
  if (S.seeds) p.set("seeds", "1");
  if (S.logY) p.set("logy", "1");
  if (S.logX) p.set("logx", "1");
  if (S.smooth) p.set("smooth", String(S.smooth));
  history.replaceState(null, "", location.pathname + (p.toString() ? "?" + p : ""));
}

async function load() {
  SL.header([["Studies", "/"], [NAME, null]]);
  try {
    S.data = await SL.fetchJSON(API);
    S.fullLoads++;
  } catch (err) { SL.fail("main", err); return; }
  S.styles = SL.styles(S.data.settings, S.data.palette);
  layout();
  drawAll();
  loadTable();
  setTimeout(poll, 1500);
}

function maxEpoch() {
  let e = 0;
  // The epochs trained so far, not those planned: a live study's curves fill the panel as they grow.
  for (const cols of Object.values(S.data.series)) for (const x of cols.epoch) e = Math.max(e, x);
  return Math.max(e, 1);
}

function layout() {
  const d = S.data, st = d.study;
  const main = document.getElementById("main");
  SL.fill(main, 
    SL.el("section", { class: "study-head" },
      SL.el("div", {},
        SL.el("h1", { id: "study-name" }, st.name),
        SL.el("p", { class: "desc" }, st.description || ""),
        SL.el("p", { class: "meta" }, `ranked by ${st.metric} · version ${st.version} of ${st.versions}`,
          st.variant ? " (with command-line overrides)" : "")),
      SL.el("div", { class: "progress-box", id: "progress" })),
    controls(),
    SL.el("section", { class: "legend", id: "legend" }),
    SL.el("section", { class: "panels", id: "panels" }),
    SL.el("section", { class: "card" }, SL.el("h2", {}, "Comparison"),
      SL.el("p", { class: "hint" }, "The report's table, recomputed as runs finish: final values over completed runs, mean ± std over seeds, " +
        "95% interval of the mean, Δ of the study metric against the baseline with Welch's t-test."),
      SL.el("div", { id: "table" }, SL.el("p", { class: "loading" }, "Computing…"))),
    SL.el("section", { class: "card", id: "sweeps-card", hidden: true }, SL.el("h2", {}, "Sweeps"), SL.el("div", { id: "sweeps", class: "sweeps" })),
    SL.el("section", { class: "card" }, SL.el("h2", {}, "Runs"),
      SL.el("p", { class: "hint" }, "Tick two or more runs to overlay them and see their config side by side."),
      SL.el("div", { id: "runs" })));
  renderProgress();
  renderLegend();
  renderRuns();
}

function renderProgress() {
  // A run shared by two arms (the baseline and a grid point equal to it) counts once, as on the studies page.
  const outcomes = {};
  const seen = new Set();
  let done = 0, planned = 0;
  for (const l of S.data.links) {
    if (seen.has(l.run_id)) continue;
    seen.add(l.run_id);
    outcomes[l.status] = (outcomes[l.status] || 0) + 1;
    done += l.epochs_done; planned += l.epochs_planned || l.epochs_done;
  }
  const frac = planned ? done / planned : 0;
  SL.fill(document.getElementById("progress"), 
    SL.el("div", { class: "progress-label" }, SL.el("strong", { id: "epochs-done" }, String(done)), ` / ${planned} epochs`),
    SL.el("div", { class: "bar" }, SL.el("div", { class: "fill", style: { width: `${(100 * frac).toFixed(1)}%` } })),
    SL.outcomePills(outcomes),
    S.data.eta_s !== null && S.data.eta_s !== undefined ? SL.el("div", { class: "meta", id: "eta" }, `about ${SL.duration(S.data.eta_s)} to go at the pace so far`) : null);
}

function controls() {
  const toggle = (id, text, key, title) => SL.el("label", { class: "toggle", title },
    SL.el("input", { type: "checkbox", id, checked: S[key], on: { change: (e) => { S[key] = e.target.checked; keepInUrl(); drawAll(); } } }), text);
  const smooth = SL.el("input", { type: "range", id: "smooth", min: 0, max: 0.95, step: 0.05, value: S.smooth,
    on: { input: (e) => { S.smooth = Number(e.target.value); document.getElementById("smooth-v").textContent = S.smooth ? S.smooth.toFixed(2) : "off"; keepInUrl(); drawAll(); } } });
  return SL.el("section", { class: "controls" },
    toggle("t-seeds", "single seeds", "seeds", "Draw each seed as a thin line under its mean"),
    toggle("t-logy", "log y", "logY", "Logarithmic y axis"),
    toggle("t-logx", "log x", "logX", "Logarithmic epoch axis"),
    SL.el("label", { class: "toggle", title: "Debiased exponential moving average of each line; the raw mean stays drawn faintly" },
      "smoothing", smooth, SL.el("span", { id: "smooth-v", class: "mono" }, S.smooth ? S.smooth.toFixed(2) : "off")),
    SL.el("span", { class: "hint right" }, "Drag across a panel to zoom, double-click to reset. Click a legend entry to hide it."));
}

function settingRuns(label) {
  const ids = [];
  for (const l of S.data.links) if (l.label === label && !ids.includes(l.run_id)) ids.push(l.run_id);
  return ids;
}

function renderLegend() {
  const box = document.getElementById("legend");
  const anyDiverged = S.data.links.some((l) => l.status === "diverged");
  SL.fill(box, ...S.data.settings.map((s) => {
    const style = S.styles.get(s.label);
    const links = S.data.links.filter((l) => l.label === s.label);
    const diverged = links.filter((l) => l.status === "diverged");
    const item = SL.el("button", { class: "legend-item" + (S.hidden.has(s.label) ? " off" : ""), type: "button",
      "data-label": s.label, "aria-pressed": !S.hidden.has(s.label), title: "Click to hide or show",
      on: { click: () => { S.hidden.has(s.label) ? S.hidden.delete(s.label) : S.hidden.add(s.label); applyHidden(); renderLegend(); } } },
      SL.el("span", { class: "swatch" + (style.dash ? " dashed" : ""), style: { "--c": style.colour } }),
      SL.el("span", { class: "legend-label" }, s.label),
      s.is_baseline ? SL.el("span", { class: "tag" }, "baseline") : null,
      SL.el("span", { class: "legend-n" }, `n=${links.length}`),
      diverged.length ? SL.el("span", { class: "tag warn" }, `${diverged.length} diverged`) : null);
    return item;
  }), anyDiverged ? SL.el("span", { class: "hint legend-note" }, "○ marks a diverged run at the epoch its loss blew up (on its last recorded value)") : null);
}

function applyHidden() {
  for (const u of S.charts.values())
    for (const s of S.data.settings) SL.showGroup(u, s.label, !S.hidden.has(s.label), (ser) => lineAllowed(ser));
}

function lineAllowed(ser) {
  if (ser.role === "seed") return S.seeds;
  if (ser.role === "raw") return S.smooth > 0;
  return true;
}

function metricLines(metric, epochs) {
  const scale = SL.isAcc(metric) ? 100 : 1;
  const lines = [];
  for (const s of S.data.settings) {
    const style = S.styles.get(s.label);
    const runs = settingRuns(s.label).map((id) => SL.aligned(S.data.series[id], metric, epochs, scale));
    const mc = SL.meanCurve(new Array(epochs).fill(0), runs, S.data.t_crit);
    const show = !S.hidden.has(s.label);
    // Every metric drawn is >= 0 and an accuracy's mean is <= 100%, so the interval is cut there (as in the report).
    mc.lo = mc.lo.map((v) => (v === null ? null : Math.max(v, 0)));
    if (scale === 100) mc.hi = mc.hi.map((v) => (v === null ? null : Math.min(v, 100)));
    const base = { group: s.label, colour: style.colour, dash: style.dash };
    lines.push({ ...base, role: "band-hi", values: mc.hi, show }, { ...base, role: "band-lo", values: mc.lo, show });
    if (S.smooth) lines.push({ ...base, role: "raw", values: mc.mean, width: 1, colour: SL.alpha(style.colour, 0.35), show });
    lines.push({ ...base, role: "mean", label: s.label, values: SL.ema(mc.mean, S.smooth), width: s.is_baseline ? 2.6 : 2, show });
    for (const r of runs) lines.push({ ...base, role: "seed", values: SL.ema(r, S.smooth), width: 1, colour: SL.alpha(style.colour, 0.45), show: show && S.seeds });
    const marks = new Array(epochs).fill(null);
    for (const l of S.data.links.filter((l) => l.label === s.label && l.diverged_epoch)) {
      const col = SL.aligned(S.data.series[l.run_id], metric, epochs, scale);
      const last = col.slice(0, l.diverged_epoch).filter((v) => v !== null).pop();
      if (last !== undefined && l.diverged_epoch <= epochs) marks[l.diverged_epoch - 1] = last;
    }
    if (marks.some((v) => v !== null)) lines.push({ ...base, role: "mark", label: `${s.label} diverged`, values: marks, show });
  }
  return lines;
}

function drawAll() {
  const panels = document.getElementById("panels");
  const epochs = maxEpoch();
  const x = Array.from({ length: epochs }, (_, i) => i + 1);
  for (const u of S.charts.values()) u.destroy();
  S.charts.clear();
  SL.fill(panels);
  for (const metric of S.data.metrics) {
    const plot = SL.el("div", { class: "plot" });
    const readout = SL.el("div", { class: "readout" }, "\u00a0");
    const panel = SL.el("figure", { class: "panel", "data-metric": metric },
      SL.el("figcaption", {}, SL.METRIC_TITLES[metric] || metric,
        SL.isAcc(metric) ? SL.el("span", { class: "unit" }, " %") : null), plot, readout);
    panels.appendChild(panel);
    const u = SL.lineChart(plot, { metric, x, lines: metricLines(metric, epochs), logY: S.logY, logX: S.logX,
      onCursor: (u, idx) => readoutText(readout, u, idx) });
    S.charts.set(metric, u);
  }
  panels.dataset.epochs = String(epochs);
}

function readoutText(box, u, idx) {
  if (idx === null || idx === undefined) { box.textContent = "\u00a0"; return; }
  const parts = [SL.el("strong", {}, `epoch ${u.data[0][idx]}`)];
  u.series.forEach((s, i) => {
    if (i === 0 || s.role !== "mean" || !s.show) return;
    const raw = u.series.findIndex((r) => r.group === s.group && r.role === "raw");
    const v = u.data[i][idx];
    if (v === null || v === undefined) return;
    const rawText = raw > 0 && u.data[raw][idx] !== null ? ` (raw ${SL.num(u.data[raw][idx], 4)})` : "";
    parts.push(SL.el("span", { class: "ro" }, SL.el("span", { class: "swatch sm", style: { "--c": S.styles.get(s.group).colour } }),
      `${s.group}: ${SL.num(v, 4)}${rawText}`));
  });
  SL.fill(box, ...parts);
}

function renderRuns() {
  const picked = new Set([...document.querySelectorAll("#runs input:checked")].map((i) => i.value));
  const rows = S.data.links.map((l) => SL.el("tr", { "data-run": l.run_id },
    SL.el("td", {}, SL.el("input", { type: "checkbox", value: l.run_id, checked: picked.has(l.run_id), "aria-label": "compare",
      on: { change: compareLink } })),
    SL.el("td", {}, SL.el("span", { class: "swatch sm", style: { "--c": S.styles.get(l.label).colour } }), l.label),
    SL.el("td", { class: "num" }, String(l.seed)),
    SL.el("td", {}, SL.statusPill(l.status), l.detail ? SL.el("span", { class: "detail" }, " " + l.detail) : null),
    SL.el("td", { class: "num" }, `${l.epochs_done} / ${l.epochs_planned ?? "?"}`),
    SL.el("td", { class: "num" }, SL.duration(l.wall_time_s)),
    SL.el("td", {}, SL.el("a", { class: "mono", href: `/run/${encodeURIComponent(l.run_id)}` }, l.run_id))));
  SL.fill(document.getElementById("runs"), 
    SL.el("table", { class: "grid" }, SL.el("thead", {}, SL.el("tr", {}, ["", "setting", "seed", "outcome", "epochs", "wall time", "run"].map((h) => SL.el("th", {}, h)))),
      SL.el("tbody", {}, rows)),
    SL.el("p", {}, SL.el("a", { id: "compare-link", class: "button disabled", href: "#" }, "Compare selected")));
  compareLink();
}

function compareLink() {
  const ids = [...new Set([...document.querySelectorAll("#runs input:checked")].map((i) => i.value))];
  const a = document.getElementById("compare-link");
  a.className = "button" + (ids.length >= 2 ? "" : " disabled");
  a.href = ids.length >= 2 ? `/compare?runs=${ids.map(encodeURIComponent).join(",")}` : "#";
  a.textContent = ids.length >= 2 ? `Compare ${ids.length} runs` : "Compare selected";
}

async function loadTable() {
  try { S.table = await SL.fetchJSON(`${API}/table`); } catch (err) { SL.fail("table", err); return; }
  renderTable(S.table);
  renderSweeps(S.table);
}

async function poll() {
  try {
    const up = await SL.fetchJSON(`${API}/updates?after=${encodeURIComponent(S.data.cursor)}`);
    S.updates++;
    if (up.reset) { await reloadAll(); return; }
    S.data.cursor = up.cursor;
    S.data.eta_s = up.eta_s;
    if (up.links.length) merge(up);
    const active = S.data.links.some((l) => l.status === "running" || l.status === "pending");
    SL.setLive(active ? "on" : "idle", active ? `live · checked ${new Date().toLocaleTimeString()}` : "all runs stopped · watching");
    setTimeout(poll, active ? 2000 : 5000);
  } catch (err) {
    SL.setLive("down", `cannot reach the server (${err.message}); retrying`);
    setTimeout(poll, 5000);
  }
}

function merge(up) {
  for (const l of up.links) Object.assign(S.data.links[l.index], l);
  for (const [id, cols] of Object.entries(up.series)) {
    const have = S.data.series[id] || (S.data.series[id] = { epoch: [] });
    const before = have.epoch.length, added = cols.epoch.length;
    // The first load leaves out columns a run had not recorded yet: pad so that every column stays aligned on epoch.
    for (const k of new Set([...Object.keys(have), ...Object.keys(cols)])) {
      if (k === "epoch") continue;
      have[k] = (have[k] || new Array(before).fill(null)).concat(cols[k] || new Array(added).fill(null));
    }
    have.epoch = have.epoch.concat(cols.epoch);
  }
  const known = new Set(S.data.metrics);
  const metrics = [...new Set(Object.values(S.data.series).flatMap((c) => Object.keys(c)))].filter((m) => m !== "epoch");
  const order = Object.keys(SL.METRIC_TITLES);
  const present = order.filter((m) => metrics.includes(m) &&
    (known.has(m) || Object.values(S.data.series).some((c) => (c[m] || []).some((v) => v !== null))));
  const newPanel = present.length !== S.data.metrics.length;
  S.data.metrics = present;
  renderProgress();
  renderLegend();
  renderRuns();
  if (newPanel) drawAll();
  else refreshData();
  if (up.status_changed) loadTable();
}

function refreshData() {
  const epochs = maxEpoch();
  const x = Array.from({ length: epochs }, (_, i) => i + 1);
  for (const [metric, u] of S.charts) {
    const lines = metricLines(metric, epochs);
    if (lines.length + 1 !== u.series.length) { drawAll(); return; }
    u.setData([x, ...lines.map((l) => SL.forLog(l.values, S.logY))], true);
  }
  document.getElementById("panels").dataset.epochs = String(epochs);
}

async function reloadAll() {
  S.data = await SL.fetchJSON(API);
  S.fullLoads++;
  S.styles = SL.styles(S.data.settings, S.data.palette);
  layout(); drawAll(); loadTable();
  setTimeout(poll, 2000);
}

window.addEventListener("resize", () => { clearTimeout(S.resizeT); S.resizeT = setTimeout(() => S.data && drawAll(), 200); });
document.addEventListener("DOMContentLoaded", load);
