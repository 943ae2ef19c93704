// @ts-check
// The Live screen: requests per second and mean latency per model, from the gateway's own Prometheus
// metrics, sampled every 2 s while the tab is visible (a 2-minute window). Rates come from counter deltas
// between two samples, so a gateway restart (counters going down) just starts a new window.

import { api } from "./api.js";
import { sparkline } from "./charts.js";
import { all, byId, clear, h, messageOf, one } from "./dom.js";
import { parsePrometheus, sumBy } from "./prometheus.js";

const SAMPLE_MS = 2000;
const CAPACITY = 60;
/** @type {HTMLElement} the charts' container, found by initLive */
let host;
const series = new Map(); // model (or route) -> {rps: [], latency: []}
let previous = null; // {t, requests: Map, latencySum: Map, latencyCount: Map}

// The gateway's request families: the request counter and the request-latency histogram (not the upstream
// ones, which time only the model-server call). Grouped by their `model` label; a gateway whose metrics carry
// no model label is shown per API route instead (`/v1/models/{name}:classify` ...). Only inference routes
// count (not the console's own polling), and model "" (no configured model: unknown names) is left out.
const INFERENCE_ROUTE = /:(classify|predict|regress)$/;
const isRequests = (s) => /request/.test(s.name) && /_total$/.test(s.name) && !/upstream|error/.test(s.name);
const isLatency = (suffix) => (s) =>
  s.name.endsWith(`_seconds${suffix}`) && /request|latency/.test(s.name) && !/upstream/.test(s.name);
const isInference = (s) =>
  "route" in s.labels ? INFERENCE_ROUTE.test(s.labels.route) && s.labels.model !== "" : Boolean(s.labels.model);

let groupBy = "model";

function read(text) {
  const all = parsePrometheus(text);
  const own = all.some((s) => s.name.startsWith("gateway_")) ? all.filter((s) => s.name.startsWith("gateway_")) : all;
  const samples = own.filter(isInference);
  groupBy = samples.some((s) => isRequests(s) && "model" in s.labels) ? "model" : "route";
  return {
    t: performance.now() / 1000,
    requests: sumBy(samples, groupBy, isRequests),
    latencySum: sumBy(samples, groupBy, isLatency("_sum")),
    latencyCount: sumBy(samples, groupBy, isLatency("_count")),
  };
}

function push(list, value) {
  list.push(value);
  if (list.length > CAPACITY) list.shift();
}

function update(now) {
  const names = new Set([...now.requests.keys(), ...now.latencyCount.keys(), ...series.keys()]);
  for (const name of names) {
    if (!series.has(name)) series.set(name, { rps: [], latency: [] });
    const s = series.get(name);
    if (!previous) continue;
    const dt = now.t - previous.t;
    const dReq = (now.requests.get(name) ?? 0) - (previous.requests.get(name) ?? 0);
    const dSum = (now.latencySum.get(name) ?? 0) - (previous.latencySum.get(name) ?? 0);
    const dCount = (now.latencyCount.get(name) ?? 0) - (previous.latencyCount.get(name) ?? 0);
    push(s.rps, dReq >= 0 && dt > 0 ? dReq / dt : null);
    push(s.latency, dCount > 0 && dSum >= 0 ? (dSum / dCount) * 1000 : null);
  }
  previous = now;
}

const last = (list) => [...list].reverse().find((v) => Number.isFinite(v));

function render() {
  byId("live-note").textContent =
    groupBy === "route" ? "Per API route: the gateway's request metrics carry no model label." : "";
  if (!series.size) {
    clear(host, h("p", { class: "muted" },
      "No inference requests have been counted yet. Try a model, then come back: the charts fill in as " +
      "requests arrive."));
    return;
  }
  const names = [...series.keys()].sort();
  const have = all(host, ".live-model").map((el) => el.dataset.model);
  if (JSON.stringify(have) !== JSON.stringify(names)) {
    clear(host, names.map((name) => h("article", { class: "live-model", dataset: { model: name } },
      h("h2", {}, groupBy === "route" ? h("code", {}, name) : name),
      h("div", { class: "metric" }, h("h3", {}, "requests / s"), h("p", { class: "now rps" }),
        h("div", { class: "chart rps-chart" })),
      h("div", { class: "metric" }, h("h3", {}, "mean latency (ms)"), h("p", { class: "now latency" }),
        h("div", { class: "chart latency-chart" })))));
  }
  for (const name of names) {
    const el = one(host, `.live-model[data-model="${CSS.escape(name)}"]`);
    const s = series.get(name);
    const rps = last(s.rps);
    const lat = last(s.latency);
    one(el, ".now.rps").textContent = rps === undefined ? "—" : rps.toFixed(2);
    one(el, ".now.latency").textContent = lat === undefined ? "—" : lat.toFixed(1);
    sparkline(one(el, ".rps-chart"), s.rps,
      { capacity: CAPACITY, label: `${name} requests per second`, format: (v) => v.toFixed(2) });
    sparkline(one(el, ".latency-chart"), s.latency,
      { capacity: CAPACITY, label: `${name} mean latency in ms`, format: (v) => `${v.toFixed(1)} ms` });
  }
}

async function sample() {
  try {
    update(read(await api.metrics()));
    render();
  } catch (err) {
    clear(host, h("p", { class: "error" }, `Metrics are unavailable: ${messageOf(err)}`));
  }
}

export function initLive() {
  host = byId("live-charts");
  const tick = async () => {
    if (!document.hidden) await sample();
    setTimeout(tick, SAMPLE_MS);
  };
  tick();
}
