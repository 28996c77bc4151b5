/* Line charts on uPlot (vendored, MIT; see uPlot.LICENSE). One chart = one metric panel:
   each line belongs to a group (an arm setting, a run) that the legend shows or hides at once. */
"use strict";

SL.alpha = function (hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
};

/** Values for a log axis: non-positive values cannot be drawn there, so they become gaps. */
SL.forLog = (values, log) => (log ? values.map((v) => (v !== null && v > 0 ? v : null)) : values);

/** lines: [{group, role ("mean"|"band-lo"|"band-hi"|"seed"|"raw"|"mark"), colour, dash, width, values}].
    A "band-hi" line followed by its "band-lo" fills the 95% interval between them. */
SL.lineChart = function (box, spec) {
  const series = [{ label: "epoch" }];
  const data = [spec.x];
  const bands = [];
  const groups = new Map();
  spec.lines.forEach((line) => {
    const idx = series.length;
    const s = { label: line.label || line.group, show: line.show !== false, role: line.role, group: line.group,
                stroke: line.colour, width: line.width || 2, dash: line.dash || undefined, spanGaps: false,
                points: { show: line.role === "mark" || spec.points || spec.x.length <= 1, size: line.role === "mark" ? 11 : 5,
                          stroke: line.colour, fill: line.role === "mark" ? "#fff" : line.colour, width: 2 } };
    if (line.role === "band-lo" || line.role === "band-hi" || line.role === "range") { s.stroke = "transparent"; s.width = 0; s.points = { show: false }; }
    if (line.role === "mark") s.paths = () => null;
    if (line.role === "band-lo") bands.push({ series: [idx - 1, idx], fill: SL.alpha(line.colour, 0.16) });
    series.push(s);
    data.push(SL.forLog(line.values, spec.logY));
    if (!groups.has(line.group)) groups.set(line.group, []);
    groups.get(line.group).push(idx);
  });
  const acc = SL.isAcc(spec.metric || "");
  // uPlot passes null for the log-axis ticks it leaves unlabelled.
  const yFmt = (v) => (v === null ? "" : acc ? `${SL.num(v, 3)}%` : SL.num(v, 3));
  const opts = {
    width: Math.max(280, box.clientWidth), height: spec.height || 230,
    legend: { show: false }, series, bands,
    cursor: { drag: { x: true, y: false, setScale: true }, points: { size: 6 } },
    scales: { x: spec.logX ? { distr: 3, time: false } : { time: false },
              y: spec.logY ? { distr: 3 } : { auto: true } },
    axes: [
      { label: spec.xLabel || "epoch", labelSize: 18, size: 34, stroke: "#555", grid: { stroke: "#eceef2", width: 1 },
        ticks: { stroke: "#d0d4db" }, values: spec.xValues || ((u, ticks) => ticks.map((v) => (v === null ? "" : SL.num(v, 3)))),
        incrs: spec.xLabel ? undefined : [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000] },
      { size: 56, stroke: "#555", grid: { stroke: "#eceef2", width: 1 }, ticks: { stroke: "#d0d4db" },
        values: (u, ticks) => ticks.map(yFmt) },
    ],
    hooks: { setCursor: [(u) => spec.onCursor && spec.onCursor(u, u.cursor.idx)], draw: spec.draw ? [spec.draw] : [] },
  };
  box.replaceChildren();
  const u = new uPlot(opts, data, box);
  u.groups = groups;
  u.spec = spec;
  return u;
};

/** Show or hide every line of a group (honouring lines that are off for their own reason). */
SL.showGroup = function (u, group, show, allow) {
  for (const idx of u.groups.get(group) || []) {
    const want = show && (!allow || allow(u.series[idx]));
    if (u.series[idx].show !== want) u.setSeries(idx, { show: want });
  }
};

/** Per-epoch mean, 95% interval (Student t, critical values computed by the server with the
    report's scipy code) and n over several runs' columns: the report's mean_curve. */
SL.meanCurve = function (x, runs, tcrit) {
  const mean = [], lo = [], hi = [], n = [];
  for (let i = 0; i < x.length; i++) {
    const vs = runs.map((r) => r[i]).filter((v) => v !== null && v !== undefined && isFinite(v));
    n.push(vs.length);
    if (!vs.length) { mean.push(null); lo.push(null); hi.push(null); continue; }
    const m = vs.reduce((a, b) => a + b, 0) / vs.length;
    mean.push(m);
    if (vs.length < 2) { lo.push(m); hi.push(m); continue; }
    const sd = Math.sqrt(vs.reduce((a, b) => a + (b - m) * (b - m), 0) / (vs.length - 1));
    const half = (tcrit[vs.length] || 1.96) * sd / Math.sqrt(vs.length);
    lo.push(m - half); hi.push(m + half);
  }
  return { mean, lo, hi, n };
};

/** A run's column aligned on epochs 1..E (index e-1), scaled (accuracies in %). */
SL.aligned = function (cols, metric, epochs, scale) {
  const out = new Array(epochs).fill(null);
  if (!cols || !cols[metric]) return out;  // a metric the run never recorded is left out of its columns
  cols.epoch.forEach((e, i) => {
    const v = cols[metric][i];
    if (e >= 1 && e <= epochs) out[e - 1] = v === null ? null : v * scale;
  });
  return out;
};

/** Error bars for a sweep chart: vertical whiskers with caps from lo to hi at each point. */
SL.errorBars = function (lo, hi, colour) {
  return (u) => {
    const ctx = u.ctx;
    ctx.save();
    ctx.strokeStyle = colour; ctx.lineWidth = 1.5 * devicePixelRatio;
    u.data[0].forEach((x, i) => {
      if (lo[i] === null || hi[i] === null) return;
      const px = u.valToPos(x, "x", true), y0 = u.valToPos(lo[i], "y", true), y1 = u.valToPos(hi[i], "y", true);
      const cap = 5 * devicePixelRatio;
      ctx.beginPath();
      ctx.moveTo(px, y0); ctx.lineTo(px, y1);
      ctx.moveTo(px - cap, y0); ctx.lineTo(px + cap, y0);
      ctx.moveTo(px - cap, y1); ctx.lineTo(px + cap, y1);
      ctx.stroke();
    });
    ctx.restore();
  };
};
