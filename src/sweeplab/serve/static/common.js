/* Shared by every page: building DOM from data (text only, never HTML), fetching the API,
   number formats, the arm palette and the page header. Strings from the store are always set
   with textContent, so an arm named <script> shows as those characters. */
"use strict";
const SL = (window.SL = {});

/** el("td", {class: "num", title: "x"}, "text", childNode...): children that are not nodes become text. */
SL.el = function (tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else if (k === "style") for (const [p, val] of Object.entries(v)) node.style.setProperty(p, val);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
};

/** node.replaceChildren(...) without the nulls (replaceChildren would insert the text "null"). */
SL.fill = (node, ...children) => node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));

SL.fetchJSON = async function (url) {
  const r = await fetch(url, { cache: "no-store" });
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) throw new Error((body && body.error) || `${r.status} ${r.statusText}`);
  return body;
};

/* The report's palette (report/canvas.py; the server sends it with a study so the two always
   agree): Okabe and Ito's colour-blind-safe set, then Tol's muted set, yellow last; the baseline
   near-black. Colours go by study order, never by results, so arms keep theirs as runs finish. */
SL.BASELINE = "#1a1a1a";
SL.PALETTE = ["#E69F00", "#56B4E9", "#009E73", "#D55E00", "#0072B2", "#CC79A7", "#332288", "#88CCEE"];
SL.DASH_OF = { "-": null, "--": [7, 4], "-.": [7, 3, 2, 3], ":": [2, 3] };
SL.styles = function (settings, palette) {
  const colours = (palette && palette.colours) || SL.PALETTE;
  const baseline = (palette && palette.baseline) || SL.BASELINE;
  const dashes = ((palette && palette.line_styles) || ["-", "--", "-.", ":"]).map((d) => SL.DASH_OF[d] || null);
  const out = new Map();
  let i = 0;
  for (const s of [...settings].sort((a, b) => a.position - b.position)) {
    if (s.is_baseline) { out.set(s.label, { colour: baseline, dash: null }); continue; }
    out.set(s.label, { colour: colours[i % colours.length], dash: dashes[Math.floor(i / colours.length) % dashes.length] });
    i++;
  }
  return out;
};

SL.METRIC_TITLES = {
  train_loss: "Train loss", val_loss: "Validation loss", test_loss: "Test loss",
  train_acc: "Train accuracy", val_acc: "Validation accuracy", test_acc: "Test accuracy",
  lr: "Learning rate", epoch_time_s: "Time per epoch (s)", train_images_per_s: "Train images / s",
};
SL.isAcc = (m) => /_acc$/.test(m);

SL.num = function (x, digits = 3) {
  if (x === null || x === undefined || !isFinite(x)) return "–";
  const a = Math.abs(x);
  if (a !== 0 && a < 1e-3) return x.toExponential(1);
  if (a >= 1e6) return `${parseFloat((x / 1e6).toPrecision(digits))}M`;
  if (a >= 1e4) return `${parseFloat((x / 1e3).toPrecision(digits))}k`;
  return String(parseFloat(x.toPrecision(digits)));
};
SL.pct = (x, d = 1) => (x === null || x === undefined || !isFinite(x) ? "–" : (100 * x).toFixed(d) + "%");
SL.pts = (x, d = 2) => (x === null || x === undefined || !isFinite(x) ? "–" : (x >= 0 ? "+" : "−") + Math.abs(100 * x).toFixed(d));
SL.pval = (p) => (p === null || p === undefined ? "–" : p < 0.001 ? "<0.001" : p.toFixed(3));
SL.duration = function (s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
};
SL.ago = function (iso) {
  if (!iso) return "–";
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 5) return "just now";
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
};

SL.STATUS_ORDER = ["running", "pending", "completed", "diverged", "oom", "failed", "interrupted"];
SL.statusPill = (status, count) =>
  SL.el("span", { class: `pill st-${status}`, title: status }, count === undefined ? status : `${count} ${status}`);
SL.outcomePills = (outcomes) =>
  SL.el("span", { class: "pills" },
    SL.STATUS_ORDER.filter((s) => outcomes[s]).map((s) => SL.statusPill(s, outcomes[s])));

/** The top bar: brand, breadcrumb (a list of [text, href|null]) and a live indicator. */
SL.header = function (crumbs) {
  const bar = document.getElementById("top");
  SL.fill(bar, 
    SL.el("a", { class: "brand", href: "/" }, SL.el("span", { class: "logo" }, "◆"), "sweeplab"),
    SL.el("nav", { class: "crumbs" }, crumbs.map(([text, href]) =>
      SL.el("span", { class: "crumb" }, href ? SL.el("a", { href }, text) : text))),
    SL.el("span", { id: "live", class: "live" }, ""));
};
SL.setLive = function (state, text) {
  const live = document.getElementById("live");
  if (!live) return;
  live.className = `live ${state}`;
  SL.fill(live, SL.el("span", { class: "dot" }), text);
};
SL.fail = function (where, err) {
  const box = document.getElementById(where) || document.body;
  SL.fill(box, SL.el("div", { class: "error-box" }, SL.el("strong", {}, "Cannot show this: "), err.message));
  SL.setLive("down", "store unreadable");
};

/** A debiased exponential moving average (Adam-style bias correction): the first points are not
    pulled towards zero. weight 0 returns the values unchanged; gaps (null) stay gaps. */
SL.ema = function (values, weight) {
  if (!weight) return values;
  let acc = 0, steps = 0;
  return values.map((v) => {
    if (v === null || v === undefined) return null;
    acc = weight * acc + (1 - weight) * v; steps++;
    return acc / (1 - Math.pow(weight, steps));
  });
};
