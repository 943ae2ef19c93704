// @ts-check
// The Monitor screen: per model, its served traffic against the version's training data, from
// GET /v1/models/{name}/drift (the model server's drift report, every 3 s while visible): the drift state,
// the largest PSI over time, and per feature the live vs reference histograms with their PSI.

import { api } from "./api.js";
import { sparkline } from "./charts.js";
import { byId, clear, h, messageOf } from "./dom.js";
import { store } from "./store.js";

const SAMPLE_MS = 3000;
const NS = "http://www.w3.org/2000/svg";
/** @type {HTMLElement} */
let host;

function svg(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

const shares = (counts) => {
  const total = counts.reduce((a, b) => a + b, 0) || 1;
  return counts.map((c) => c / total);
};

/** Reference (outlined) and live (filled) shares per bin, side by side. */
function histogram(reference, live, label) {
  const ref = shares(reference);
  const now = shares(live);
  const W = 220;
  const H = 70;
  const top = Math.max(1e-9, ...ref, ...now);
  const step = W / ref.length;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "histogram", role: "img", "aria-label": label });
  ref.forEach((share, i) => {
    const y = (v) => H - 2 - (v / top) * (H - 4);
    root.append(svg("rect", { x: i * step + 1, y: y(share), width: step / 2 - 1, height: H - 2 - y(share), class: "ref" }));
    root.append(svg("rect", { x: i * step + step / 2, y: y(now[i] ?? 0), width: step / 2 - 1,
      height: H - 2 - y(now[i] ?? 0), class: "live" }));
  });
  return root;
}

function feature(name, reference, item, threshold) {
  const psi = item?.psi ?? 0;
  return h("div", { class: `feature ${psi >= threshold ? "drifting" : ""}`, dataset: { feature: name } },
    h("h4", {}, h("code", {}, name), ` PSI ${psi.toFixed(3)}`, item?.ks !== undefined ? ` · KS ${item.ks.toFixed(3)}` : ""),
    histogram(reference.counts, item?.live_counts ?? [], `${name}: reference vs live histogram`));
}

function version(model, number, report) {
  const latest = report.latest ?? {};
  const drift = Boolean(latest.drift);
  const chart = h("div", { class: "chart psi-chart" });
  const names = Object.keys(report.reference).sort(
    (a, b) => (latest.features?.[b]?.psi ?? 0) - (latest.features?.[a]?.psi ?? 0));
  const el = h("article", { class: "monitor-version", dataset: { model, version: number } },
    h("h2", {}, `${model} · version ${number} `,
      h("span", { class: `state ${drift ? "bad" : "ok"}` }, latest.rows ? (drift ? "drift" : "no drift") : "collecting")),
    h("p", { class: "muted small" },
      latest.rows ? `${latest.rows} rows in the window; largest PSI ${latest.max_psi.toFixed(3)} ` +
        `(threshold ${report.threshold})` : "Not enough traffic yet."),
    h("div", { class: "metric" }, h("h3", {}, "largest PSI over time"), chart),
    h("div", { class: "features" }, names.map((name) =>
      feature(name, report.reference[name], latest.features?.[name], report.threshold))));
  queueMicrotask(() => sparkline(chart, report.history.map(([, psi]) => psi),
    { capacity: Math.max(60, report.history.length), label: `${model} largest PSI`, format: (v) => v.toFixed(3) }));
  return el;
}

async function sample() {
  const blocks = [];
  for (const model of store.models) {
    try {
      const report = await api.drift(model.name);
      for (const [number, item] of Object.entries(report.versions ?? {})) blocks.push(version(model.name, number, item));
    } catch (err) {
      blocks.push(h("p", { class: "muted" }, `${model.name}: ${messageOf(err)}`));
    }
  }
  clear(host, blocks.length ? blocks : [h("p", { class: "muted" }, "No model reports drift yet.")]);
}

export function initMonitor() {
  host = byId("monitor-charts");
  const tick = async () => {
    if (!document.hidden && !byId("screen-monitor").hidden) await sample();
    setTimeout(tick, SAMPLE_MS);
  };
  tick();
}
