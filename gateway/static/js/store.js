// @ts-check
// The model list, polled from GET /v1/models, shared by the screens. Subscribers get the new list (or the
// error) after each poll; the poll runs while the tab is visible and right after any admin action.

import { api } from "./api.js";
import { readDetail, readModelList } from "./shapes.js";

const POLL_MS = 3000;
/** @type {Set<(state: typeof store) => void>} */
const listeners = new Set();

/** @typedef {import("./shapes.js").Model} Model */
/** @typedef {import("./shapes.js").Detail} Detail */

export const store = {
  /** @type {Model[]} */
  models: [],
  /** @type {Map<string, Detail>} model name -> the detail of the version that answers (task, classes, inputs) */
  details: new Map(),
  /** @type {unknown} the last poll's failure, if it failed */
  error: null,
  /** @type {Date | null} */
  updatedAt: null,
  /** @param {(state: typeof store) => void} fn */
  subscribe(fn) {
    listeners.add(fn);
  },
  /** @param {string} name @returns {Model | null} */
  find(name) {
    return this.models.find((m) => m.name === name) ?? null;
  },
};

let timer = null;
const asking = new Set();

// Each model's task and classes, asked once (again after a failure, e.g. while its server was down).
function fetchDetails() {
  for (const model of store.models) {
    if (store.details.has(model.name) || asking.has(model.name) || model.error) continue;
    asking.add(model.name);
    api
      .getModel(model.name)
      .then((payload) => {
        store.details.set(model.name, readDetail(payload));
        for (const fn of listeners) fn(store);
      })
      .catch(() => {})
      .finally(() => asking.delete(model.name));
  }
}
let inflight = null;

export async function refresh() {
  if (inflight) return inflight;
  inflight = (async () => {
    try {
      store.models = readModelList(await api.listModels());
      store.error = null;
    } catch (err) {
      store.error = err;
    } finally {
      store.updatedAt = new Date();
      inflight = null;
    }
    for (const fn of listeners) fn(store);
    fetchDetails();
  })();
  return inflight;
}

export function startPolling() {
  const tick = async () => {
    if (!document.hidden) await refresh();
    timer = setTimeout(tick, POLL_MS);
  };
  clearTimeout(timer);
  tick();
}
