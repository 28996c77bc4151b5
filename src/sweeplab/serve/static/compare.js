/* The compare page: two or more runs from any studies, curves overlaid, config side by side. */
"use strict";

async function main() {
  const ids = (new URLSearchParams(location.search).get("runs") || "").split(",").filter(Boolean);
  SL.header([["Studies", "/"], ["compare", null]]);
  let c;
  try { c = await SL.fetchJSON(`/api/compare?runs=${ids.map(encodeURIComponent).join(",")}`); } catch (err) { SL.fail("main", err); return; }
  const colours = c.runs.map((_, i) => SL.PALETTE[i % SL.PALETTE.length]);
  const name = (r) => `${r.label || r.run_id} · seed ${r.seed}`;
  const main = document.getElementById("main");
  const cell = (v) => SL.el("td", { class: "mono" }, v === undefined ? "–" : JSON.stringify(v));
  const cfgRows = (keys, cls) => keys.map((k) => SL.el("tr", { class: cls }, SL.el("th", { class: "mono" }, k), c.configs.map((cfg) => cell(cfg[k]))));
  const input = SL.el("input", { type: "text", id: "add-run", placeholder: "run id (or a unique prefix) from any study", size: 36 });
  const add = () => {
    const id = input.value.trim();
    if (id) location.search = `?runs=${[...ids, id].map(encodeURIComponent).join(",")}`;
  };
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") add(); });
  SL.fill(main, 
    SL.el("section", { class: "study-head" }, SL.el("div", {}, SL.el("h1", {}, `Comparing ${c.runs.length} runs`)),
      SL.el("div", { class: "add-run" }, input, SL.el("button", { type: "button", class: "button", on: { click: add } }, "Add run"))),
    SL.el("section", { class: "legend" }, c.runs.map((r, i) => SL.el("a", { class: "legend-item", href: `/run/${encodeURIComponent(r.run_id)}` },
      SL.el("span", { class: "swatch", style: { "--c": colours[i] } }), SL.el("span", { class: "legend-label" }, name(r)), SL.statusPill(r.status)))),
    SL.el("section", { class: "panels", id: "panels" }),
    SL.el("section", { class: "card" }, SL.el("h2", {}, "Config"),
      SL.el("table", { class: "grid kv", id: "config-diff" },
        SL.el("thead", {}, SL.el("tr", {}, SL.el("th", {}, "key"), c.runs.map((r, i) => SL.el("th", {}, SL.el("span", { class: "swatch sm", style: { "--c": colours[i] } }), name(r))))),
        SL.el("tbody", {}, cfgRows(c.differ, "differs"))),
      SL.el("details", {}, SL.el("summary", {}, `${c.same.length} keys with the same value`),
        SL.el("table", { class: "grid kv" }, SL.el("tbody", {}, cfgRows(c.same, ""))))));
  const epochs = Math.max(1, ...c.runs.map((r) => Math.max(0, ...r.series.epoch)));
  const x = Array.from({ length: epochs }, (_, i) => i + 1);
  for (const metric of ["train_loss", "test_loss", "train_acc", "test_acc", "val_acc", "lr"]) {
    if (!c.runs.some((r) => r.series[metric].some((v) => v !== null))) continue;
    const plot = SL.el("div", { class: "plot" });
    document.getElementById("panels").appendChild(SL.el("figure", { class: "panel" }, SL.el("figcaption", {}, SL.METRIC_TITLES[metric]), plot));
    const scale = SL.isAcc(metric) ? 100 : 1;
    SL.lineChart(plot, { metric, x, lines: c.runs.map((r, i) => ({ group: r.run_id, role: "mean", colour: colours[i],
      dash: i % 2 ? SL.DASH_OF["--"] : null, values: SL.aligned(r.series, metric, epochs, scale) })) });
  }
}

main();
