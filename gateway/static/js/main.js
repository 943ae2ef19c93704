// @ts-check
// Wires the console: screens behind hash links (#models, #try, #live), the admin-token form, the readiness
// banner, and the polling of the model list.

import { ApiError, api } from "./api.js";
import { all, byId, messageOf, one } from "./dom.js";
import { initLive } from "./live.js";
import { initModels } from "./models.js";
import { initMonitor } from "./monitor.js";
import { startPolling, store } from "./store.js";
import { token } from "./token.js";
import { initTry } from "./tryit.js";

const SCREENS = ["models", "try", "live", "monitor"];
const READY_MS = 5000;

/** @param {Event} [event] */
function route(event) {
  const wanted = location.hash.replace("#", "");
  const screen = SCREENS.includes(wanted) ? wanted : "models";
  for (const section of all(document, "section.screen"))
    section.hidden = section.dataset.screen !== screen;
  // After a switch (not on first load), move focus to the new screen's heading for keyboard and screen readers.
  if (event) one(document, `section[data-screen="${screen}"] h1`).focus();
  for (const link of all(document, ".tabs a")) {
    if (link.dataset.screen === screen) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function initToken() {
  const form = byId("token-form");
  const input = byId("token-input", HTMLInputElement);
  const forget = byId("token-forget");
  const state = byId("token-state");
  const show = (value) => {
    state.textContent = value ? "admin" : "read-only";
    state.className = `token-state ${value ? "admin" : ""}`;
    forget.hidden = !value;
    input.value = value ? "••••••••" : "";
    input.disabled = Boolean(value);
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!input.disabled) token.set(input.value);
  });
  forget.addEventListener("click", () => {
    token.set("");
    input.focus();
  });
  token.onChange(show);
  show(token.get());
}

// The models that are not ready, from the Readiness body of GET /readyz (503 while a model server is
// unreachable or a model has no AVAILABLE version): {"ready": false, "models": {"fashion": "ready" | why}}.
// The reasons are shown on each model's card; the banner only names them.
function notReady(body) {
  const models = body && typeof body === "object" && body.models && typeof body.models === "object" ? body.models : {};
  return Object.entries(models)
    .filter(([, why]) => why !== "ready")
    .map(([name]) => name);
}

async function checkReady() {
  const banner = byId("banner");
  const footer = byId("ready-state");
  try {
    await api.ready();
    banner.hidden = true;
    footer.textContent = "● all model servers ready";
    footer.className = "ok";
  } catch (err) {
    const failure = err instanceof ApiError ? err : new ApiError(0, messageOf(err));
    const names = notReady(failure.body);
    banner.hidden = false;
    banner.textContent =
      failure.status === 0
        ? "The gateway cannot be reached. The console reconnects by itself."
        : `Not ready: ${names.length ? names.join(", ") : "a model"}. The model server is down or has no ` +
          "version loaded: requests fail with 503 until it is back. The console keeps checking.";
    footer.textContent = "● not ready";
    footer.className = "bad";
  }
  setTimeout(checkReady, READY_MS);
}

window.addEventListener("hashchange", route);
route();
initToken();
initModels();
initTry();
initLive();
initMonitor();
store.subscribe(() => document.body.classList.toggle("loaded", true));
startPolling();
checkReady();
