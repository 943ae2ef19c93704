// The model list, polled from GET /v1/models, shared by the screens. Subscribers get the new list (or the
// error) after each poll; the poll runs while the tab is visible and right after any admin action.

import { api } from "./api.js";
import { readModelList } from "./shapes.js";

const POLL_MS = 3000;
const listeners = new Set();

export const store = {
  models: [],
  error: null,
  updatedAt: null,
  subscribe(fn) {
    listeners.add(fn);
  },
  find(name) {
    return this.models.find((m) => m.name === name) ?? null;
  },
};

let timer = null;
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
