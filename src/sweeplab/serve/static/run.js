/* The run page: outcome, config (what differs from the baseline; the full config one click away),
   curves, per-class accuracy and confusion matrix of any epoch, the checkpoint export command. */
"use strict";

const RUN = decodeURIComponent(location.pathname.replace(/^\/run\//, ""));

function kv(obj) {
  const keys = Object.keys(obj || {}).sort();
  if (!keys.length) return SL.el("p", { class: "muted" }, "Same config as the baseline (seed aside).");
  return SL.el("table", { class: "kv" }, SL.el("tbody", {}, keys.map((k) =>
    SL.el("tr", {}, SL.el("th", { class: "mono" }, k), SL.el("td", { class: "mono" }, JSON.stringify(obj[k]))))));
}

function matrix(rows, names) {
  const max = Math.max(1, ...rows.flat());
  const label = (i) => (names && names[i] !== undefined ? names[i] : String(i));
  return SL.el("table", { class: "confusion" },
    SL.el("thead", {}, SL.el("tr", {}, SL.el("th", { class: "corner" }, "true \\ predicted"), rows.map((_, j) => SL.el("th", {}, label(j))))),
    SL.el("tbody", {}, rows.map((row, i) => SL.el("tr", {}, SL.el("th", {}, label(i)),
      row.map((v, j) => SL.el("td", { class: i === j ? "diag" : "", style: { "--a": (v / max).toFixed(3) }, title: `${label(i)} → ${label(j)}: ${v}` }, String(v)))))));
}

function classTable(acc, names) {
  return SL.el("div", { class: "classes" }, acc.map((a, i) => SL.el("div", { class: "class-bar" },
    SL.el("span", { class: "class-name" }, names && names[i] !== undefined ? names[i] : `class ${i}`),
    SL.el("span", { class: "bar" }, SL.el("span", { class: "fill", style: { width: `${(100 * a).toFixed(1)}%` } })),
    SL.el("span", { class: "num" }, SL.pct(a)))));
}

function epochView(r, box, epoch) {
  const row = r.per_class.find((p) => p.epoch === epoch);
  SL.fill(box, row.per_class_acc ? SL.el("div", {}, SL.el("h3", {}, `Per-class test accuracy, epoch ${epoch}`), classTable(row.per_class_acc, r.class_names)) : null,
    row.confusion ? SL.el("div", {}, SL.el("h3", {}, `Confusion matrix, epoch ${epoch}`), matrix(row.confusion, r.class_names)) : null);
}

async function main() {
  SL.header([["Studies", "/"], [RUN, null]]);
  let r;
  try { r = await SL.fetchJSON(`/api/run/${encodeURIComponent(RUN)}`); } catch (err) { SL.fail("main", err); return; }
  SL.header([["Studies", "/"], ...(r.study ? [[r.study, `/study/${encodeURIComponent(r.study)}`]] : []), [`run ${r.run_id}`, null]]);
  const style = r.link ? SL.styles(r.settings, r.palette).get(r.link.label) : null;
  const colour = style ? style.colour : SL.PALETTE[0];
  const facts = [`${r.epochs_done} / ${r.epochs_planned ?? "?"} epochs`, SL.duration(r.wall_time_s),
    r.params ? `${r.params.toLocaleString()} params` : null, r.device].filter(Boolean).join(" · ");
  const full = SL.el("details", { class: "full-config" }, SL.el("summary", {}, "Full config"), kv(r.config));
  const main = document.getElementById("main");
  const epochBox = SL.el("div", { class: "epoch-view" });
  const picker = r.per_class.length ? SL.el("select", { id: "epoch-pick", on: { change: (e) => epochView(r, epochBox, Number(e.target.value)) } },
    r.per_class.map((p) => SL.el("option", { value: p.epoch, selected: p === r.per_class[r.per_class.length - 1] }, `epoch ${p.epoch}`))) : null;
  SL.fill(main, 
    SL.el("section", { class: "study-head" }, SL.el("div", {},
      SL.el("h1", {}, r.link ? r.link.label : (r.label || r.run_id), SL.el("span", { class: "muted" }, ` · seed ${r.seed}`)),
      SL.el("p", { class: "meta" }, SL.statusPill(r.status), r.detail ? ` ${r.detail}` : "", ` · ${facts}`),
      SL.el("p", { class: "meta mono" }, `run ${r.run_id}`, r.studies.length > 1 ? ` · in studies: ${r.studies.join(", ")}` : ""))),
    SL.el("section", { class: "two" },
      r.config_diff === null
        ? SL.el("div", { class: "card" }, SL.el("h2", {}, "Config"), SL.el("p", { class: "hint" }, "This run belongs to no study (trained with sweeplab train):"), kv(r.config))
        : SL.el("div", { class: "card" }, SL.el("h2", {}, "Config"), SL.el("p", { class: "hint" }, "What differs from the study's baseline:"), kv(r.config_diff), full),
      SL.el("div", { class: "card" }, SL.el("h2", {}, "Best checkpoint"),
        SL.el("p", { class: "hint" }, "Export the weights kept at the best epoch (by the study metric) as a plain state_dict:"),
        SL.el("pre", { id: "ckpt-cmd" }, r.checkpoint_command),
        SL.el("button", { type: "button", class: "button", on: { click: () => navigator.clipboard && navigator.clipboard.writeText(r.checkpoint_command) } }, "Copy"))),
    SL.el("section", { class: "panels", id: "panels" }),
    r.per_class.length ? SL.el("section", { class: "card" }, SL.el("h2", {}, "Per class"), SL.el("label", { class: "toggle" }, "epoch ", picker), epochBox) : null);
  const x = r.series.epoch;
  for (const metric of ["train_loss", "test_loss", "train_acc", "test_acc", "val_acc", "lr"]) {
    if (!r.series[metric].some((v) => v !== null)) continue;
    const plot = SL.el("div", { class: "plot" });
    document.getElementById("panels").appendChild(SL.el("figure", { class: "panel" }, SL.el("figcaption", {}, SL.METRIC_TITLES[metric]), plot));
    const scale = SL.isAcc(metric) ? 100 : 1;
    SL.lineChart(plot, { metric, x, lines: [{ group: "run", role: "mean", colour, values: r.series[metric].map((v) => (v === null ? null : v * scale)) }] });
  }
  if (r.per_class.length) epochView(r, epochBox, r.per_class[r.per_class.length - 1].epoch);
}

main();
