/* The studies page: every study in the store with its outcomes, progress, ETA and last update. */
"use strict";

async function refresh(first) {
  let data;
  try { data = await SL.fetchJSON("/api/studies"); } catch (err) { SL.fail("main", err); setTimeout(refresh, 5000); return; }
  const main = document.getElementById("main");
  const rows = data.studies.map((s) => {
    const frac = s.epochs_planned ? s.epochs_done / s.epochs_planned : 0;
    return SL.el("tr", { "data-study": s.name },
      SL.el("td", {}, SL.el("a", { class: "study-link", href: `/study/${encodeURIComponent(s.name)}` }, s.name),
        SL.el("div", { class: "desc small" }, s.description || "")),
      SL.el("td", { class: "num" }, `${s.runs}`, SL.el("div", { class: "small muted" }, `${s.arms} arms`)),
      SL.el("td", {}, SL.outcomePills(s.outcomes)),
      SL.el("td", { class: "progress-cell" },
        SL.el("div", { class: "bar" }, SL.el("div", { class: "fill", style: { width: `${(100 * frac).toFixed(1)}%` } })),
        SL.el("div", { class: "small muted" }, `${s.epochs_done} / ${s.epochs_planned} epochs`)),
      SL.el("td", { class: "num" }, s.eta_s === null ? "–" : SL.duration(s.eta_s)),
      SL.el("td", { class: "num", title: s.last_update }, SL.ago(s.last_update)));
  });
  SL.fill(main, 
    SL.el("section", { class: "study-head" }, SL.el("div", {}, SL.el("h1", {}, "Studies"),
      SL.el("p", { class: "meta mono" }, data.store))),
    data.studies.length
      ? SL.el("section", { class: "card" }, SL.el("table", { class: "grid", id: "studies" },
          SL.el("thead", {}, SL.el("tr", {}, ["study", "runs", "outcomes", "progress", "ETA", "last update"].map((h) => SL.el("th", {}, h)))),
          SL.el("tbody", {}, rows)))
      : SL.el("section", { class: "card" }, SL.el("p", {}, "No studies in this store yet. Start one with "),
          SL.el("pre", {}, "sweeplab run quickstart --out DIR")));
  const running = data.studies.some((s) => s.outcomes.running || s.outcomes.pending);
  SL.setLive(running ? "on" : "idle", running ? "live" : "watching");
  setTimeout(refresh, running ? 3000 : 8000);
}

SL.header([["Studies", null]]);
refresh(true);
