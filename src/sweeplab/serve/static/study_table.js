/* The study page's comparison table and sweep charts, from /api/study/NAME/table (computed by
   the report's own code on the server). */
"use strict";

function fmtMetric(metric, x) { return SL.isAcc(metric) ? SL.pct(x, 2) : SL.num(x, 4); }

function renderTable(t) {
  const m = t.metric;
  const head = ["#", "setting", "outcomes", "n", `final ${m} (mean ± std)`, "95% CI", `Δ ${m} vs baseline`, "p (Welch)"];
  const rows = t.rows.map((r) => {
    const style = S.styles.get(r.label) || { colour: "#999" };
    const s = r.metric, vs = r.vs_baseline;
    const pm = s.mean === null ? "–" : `${fmtMetric(m, s.mean)}${s.std !== null ? " ± " + fmtMetric(m, s.std) : ""}`;
    const ci = s.ci_low === null ? "–" : `${fmtMetric(m, s.ci_low)} – ${fmtMetric(m, s.ci_high)}`;
    let delta = "", p = "";
    if (r.is_baseline) { delta = "baseline"; p = ""; }
    else if (vs) { delta = vs.diff === null ? "–" : SL.isAcc(m) ? `${SL.pts(vs.diff)} pts` : (vs.diff >= 0 ? "+" : "−") + SL.num(Math.abs(vs.diff), 3); p = vs.p !== null ? SL.pval(vs.p) : (vs.note || "–"); }
    return SL.el("tr", { class: (r.is_baseline ? "baseline " : "") + (r.rank === 1 ? "best" : ""), "data-label": r.label },
      SL.el("td", { class: "num" }, r.rank ?? "–"),
      SL.el("td", {}, SL.el("span", { class: "swatch sm", style: { "--c": style.colour } }), r.label),
      SL.el("td", {}, SL.outcomePills(r.outcomes)),
      SL.el("td", { class: "num" }, String(s.n)),
      SL.el("td", { class: "num strong" }, pm),
      SL.el("td", { class: "num" }, ci),
      SL.el("td", { class: "num" + (vs && vs.significant ? " sig" : "") }, delta),
      SL.el("td", { class: "num" + (vs && vs.significant ? " sig" : "") }, p));
  });
  SL.fill(document.getElementById("table"), SL.el("table", { class: "grid", id: "comparison" },
    SL.el("thead", {}, SL.el("tr", {}, head.map((h) => SL.el("th", {}, h)))), SL.el("tbody", {}, rows)),
    SL.el("p", { class: "hint" }, `Bold Δ and p: significant at α = ${t.alpha}. Rows with no completed run have no rank.`));
}

function renderSweeps(t) {
  const card = document.getElementById("sweeps-card");
  card.hidden = !t.sweeps.length;
  const box = document.getElementById("sweeps");
  SL.fill(box);
  const scale = SL.isAcc(t.metric) ? 100 : 1;
  for (const sw of t.sweeps) {
    const plot = SL.el("div", { class: "plot" });
    box.appendChild(SL.el("figure", { class: "panel", "data-sweep": sw.arm },
      SL.el("figcaption", {}, `${sw.arm}: final ${t.metric} against ${sw.axis}`, sw.log_x ? SL.el("span", { class: "unit" }, " (log axis)") : null), plot));
    const pts = sw.points.filter((p) => p.mean !== null);
    const colour = (S.styles.get(pts.length ? pts[0].label : "") || { colour: SL.PALETTE[0] }).colour;
    const cut = (v) => (scale === 100 ? Math.min(Math.max(v, 0), 100) : v);
    const lo = pts.map((p) => (p.ci_low === null ? null : cut(p.ci_low * scale)));
    const hi = pts.map((p) => (p.ci_high === null ? null : cut(p.ci_high * scale)));
    SL.lineChart(plot, { metric: t.metric, x: pts.map((p) => p.x), logX: sw.log_x, xLabel: sw.axis, height: 220,
      xValues: (u, ticks) => ticks.map((v) => (v === null ? "" : !sw.log_x || pts.some((p) => Math.abs(p.x - v) < 1e-12 * Math.abs(v)) ||
        Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9 ? SL.num(v, 3) : "")), draw: SL.errorBars(lo, hi, colour),
      points: true, lines: [{ group: sw.arm, role: "mean", colour, values: pts.map((p) => p.mean * scale) },
        { group: sw.arm, role: "range", colour, values: lo }, { group: sw.arm, role: "range", colour, values: hi }] });
  }
}
