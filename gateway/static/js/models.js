// @ts-check
// The Models screen: every model with its versions and their state, the labels, the version that answers,
// what each replica serves and whether they converged, the canary and recent events, the model card of a
// version, and the admin controls (promote / roll back / latest / set label / canary).

import { api } from "./api.js";
import { renderCard } from "./card.js";
import { all, byId, clear, h, messageOf, one } from "./dom.js";
import { refresh, store } from "./store.js";
import { token } from "./token.js";

/** @type {HTMLElement} the list of model articles, found by initModels */
let list;
/** @type {HTMLElement} */
let refreshed;
const articles = new Map(); // model name -> {article, parts}
const openCards = new Map(); // model name -> version whose card is open

const STATE_TEXT = { available: "available", loading: "loading", failed: "failed", unloading: "unloading",
  ended: "unloaded" };
// Promote loads the version when it is not loaded (the gateway rewrites the server's config), so any version
// can be promoted except the pinned one and one that is loading right now.
const promotable = (model, v) => model.pinned !== v.version && v.state !== "loading" && v.state !== "unloading";

function labelsOf(model, version) {
  return Object.entries(model.labels)
    .filter(([, v]) => v === version)
    .map(([label]) => label)
    .sort();
}

function adminButton(text, attrs, onclick) {
  const button = h("button", { type: "button", class: "small", ...attrs, onclick }, text);
  button.dataset.admin = "";
  return button;
}

async function runAdmin(model, message, action, done) {
  const { parts } = articles.get(model);
  parts.msg.className = "admin-msg";
  parts.msg.textContent = "Working…";
  try {
    await action();
    parts.msg.classList.add("ok");
    parts.msg.textContent = done;
  } catch (err) {
    parts.msg.classList.add("bad");
    parts.msg.textContent = `${message} refused: ${messageOf(err)}`;
  }
  await refresh();
}

function versionRow(model, v) {
  const isServing = v.version === model.serving;
  const cardOpen = openCards.get(model.name) === v.version;
  return h(
    "tr",
    { class: isServing ? "serving" : "", dataset: { version: String(v.version) } },
    h("th", { scope: "row" }, `v${v.version}`, isServing ? h("span", { class: "answers" }, "answers") : null),
    h(
      "td",
      {},
      h("span", { class: `state state-${v.state}` }, STATE_TEXT[v.state] ?? v.state),
      v.error ? h("div", { class: "state-error" }, v.error) : null,
    ),
    h("td", {}, labelsOf(model, v.version).map((l) =>
      h("span", { class: "chip" }, l,
        adminButton("×", { class: "chip-remove", "aria-label": `Remove label ${l} of ${model.name}` }, () =>
          runAdmin(model.name, "Remove label", () => api.removeLabel(model.name, l),
            `${model.name}: label “${l}” removed.`))))),
    h(
      "td",
      { class: "actions" },
      h(
        "button",
        {
          type: "button",
          class: "small secondary",
          "aria-expanded": cardOpen ? "true" : "false",
          onclick: () => toggleCard(model.name, v.version),
        },
        "Model card",
      ),
      adminButton(
        "Promote",
        {
          "aria-label": `Promote ${model.name} version ${v.version}`,
          disabled: !promotable(model, v),
        },
        () =>
          runAdmin(
            model.name,
            "Promote",
            () => api.promote(model.name, v.version),
            `${model.name}: version ${v.version} promoted; it answers requests now.`,
          ),
      ),
    ),
  );
}

const EVENT_TEXT = {
  promoted: (e) => `v${e.version} promoted (was ${e.previous === null ? "latest" : `v${e.previous}`})`,
  rolled_back: (e) => `rolled back to v${e.version}`,
  latest: () => "back to the configured policy",
  labelled: (e) => `label “${e.label}” → v${e.version}`,
  label_removed: (e) => `label “${e.label}” removed`,
  canary_started: (e) => `canary v${e.version} at ${e.weight} % (stable v${e.stable})`,
  canary_weight: (e) => `canary v${e.version} now ${e.weight} % (shadow ${e.shadow} %)`,
  canary_ended: (e) => `canary v${e.version} ended: ${e.reason}`,
  canary_auto_rollback: (e) =>
    `canary v${e.version} rolled back automatically (${e.reason}: errors ${pct(e.canary_error_rate)} vs ` +
    `${pct(e.stable_error_rate)}, p99 ${e.canary_p99_seconds} s vs ${e.stable_p99_seconds} s)`,
  refused: (e) => `change refused: ${e.reason}`,
  edited: (e) => e.reason,
};
const pct = (x) => `${(Number(x) * 100).toFixed(1)} %`;

function replicaLine(model) {
  if (!model.replicas.length) return null;
  const state = model.converged ? "converged" : "not converged";
  return h(
    "div",
    { class: "cluster small", dataset: { converged: String(model.converged) } },
    h("span", { class: `state state-${model.converged ? "available" : "loading"} converged` }, state),
    h("span", { class: "muted" }, ` generation ${model.generation ?? "–"} · `),
    model.replicas.map((r) =>
      h(
        "span",
        { class: `replica-chip${r.reachable ? "" : " down"}`, title: r.error ?? "" },
        `${r.id}: `,
        r.reachable
          ? r.versions.filter((v) => v.state === "available").map((v) => `v${v.version}`).join(" ") || "none"
          : "unreachable",
        r.answers !== null ? h("span", { class: "muted replica-answers" }, ` (answers v${r.answers})`) : null,
      ),
    ),
    model.desiredError ? h("p", { class: "error desired-error" }, `models.config refused: ${model.desiredError}`)
      : null,
  );
}

function canaryPanel(model) {
  const c = model.canary;
  if (!c) return null;
  const status = c.status === "running" ? "running"
    : c.status === "starting" ? "starting (loading the candidate)"
    : `rolled back automatically (${c.reason})`;
  const w = c.window;
  return h(
    "div",
    { class: `canary canary-${c.status}` },
    h("strong", {}, `Canary v${c.version}`),
    ` vs stable v${c.stable}: ${c.weight} % of requests, shadow ${c.shadow} % · `,
    h("span", { class: "canary-status" }, status),
    w ? h("div", { class: "muted small" }, `this gateway's window: canary ${w.canary_requests} requests, ` +
      `errors ${pct(w.canary_error_rate)} (stable ${pct(w.stable_error_rate)}), p99 ${w.canary_p99_seconds} s ` +
      `(stable ${w.stable_p99_seconds} s)`) : null,
  );
}

function eventList(model) {
  if (!model.events.length) return null;
  return h(
    "details",
    { class: "events small" },
    h("summary", {}, `Recent events (${model.events.length})`),
    h("ol", { reversed: true }, model.events.slice().reverse().map((e) =>
      h("li", {}, h("time", { class: "muted" }, new Date(Number(e.time) * 1000).toLocaleTimeString()), " ",
        (EVENT_TEXT[e.kind] ?? ((x) => x.kind))(e)))),
  );
}

function toggleCard(name, version) {
  if (openCards.get(name) === version) openCards.delete(name);
  else openCards.set(name, version);
  const entry = articles.get(name);
  const model = store.find(name);
  if (entry && model) {
    entry.fingerprint = null;
    renderModel(entry, model);
    const open = openCards.get(name);
    if (open !== undefined) renderCard(entry.parts.card, name, open);
    else clear(entry.parts.card);
  }
}

function buildArticle(name) {
  const parts = {
    head: h("header", { class: "model-head" }),
    problem: h("p", { class: "error", role: "alert", hidden: true }),
    table: h("table", { class: "versions" }),
    msg: h("p", { class: "admin-msg", role: "status", "aria-live": "polite" }),
    labelName: /** @type {HTMLInputElement} */ (h("input", { id: `label-${name}`, type: "text",
      pattern: "[A-Za-z0-9_]+", placeholder: "stable", required: true, size: 10 })),
    labelVersion: /** @type {HTMLSelectElement} */ (h("select", { id: `label-v-${name}`,
      "aria-label": `Version for the label of ${name}` })),
    card: h("div", { class: "card-panel" }),
    cluster: h("div", { class: "cluster-panel" }),
    canaryVersion: /** @type {HTMLSelectElement} */ (h("select", { id: `canary-v-${name}`,
      "aria-label": `Candidate version of ${name}` })),
    canaryWeight: /** @type {HTMLInputElement} */ (h("input", { id: `canary-w-${name}`, type: "number", min: 0,
      max: 100, step: "any", value: 10, size: 4, required: true })),
    canaryShadow: /** @type {HTMLInputElement} */ (h("input", { id: `canary-s-${name}`, type: "number", min: 0,
      max: 100, step: "any", value: 0, size: 4, required: true })),
  };
  const canaryForm = h(
    "form",
    {
      class: "canary-form",
      onsubmit: (e) => {
        e.preventDefault();
        const [v, w, s] = [parts.canaryVersion.value, parts.canaryWeight.value, parts.canaryShadow.value];
        runAdmin(name, "Canary", () => api.setCanary(name, v, w, s),
          `${name}: version ${v} answers ${w} % of requests (shadow ${s} %).`);
      },
    },
    h("label", { for: `canary-v-${name}` }, "Canary"),
    parts.canaryVersion,
    h("label", { for: `canary-w-${name}` }, "weight %"),
    parts.canaryWeight,
    h("label", { for: `canary-s-${name}` }, "shadow %"),
    parts.canaryShadow,
    adminButton("Set canary", { type: "submit" }),
    adminButton("Promote canary", { "aria-label": `Promote the canary of ${name}` }, () =>
      runAdmin(name, "Promote canary", () => api.promoteCanary(name), `${name}: the canary is the stable version.`)),
    adminButton("Abort canary", { "aria-label": `Abort the canary of ${name}` }, () =>
      runAdmin(name, "Abort canary", () => api.abortCanary(name), `${name}: canary aborted.`)),
  );
  const setLabel = h(
    "form",
    {
      class: "label-form",
      onsubmit: (e) => {
        e.preventDefault();
        const label = parts.labelName.value.trim();
        const version = parts.labelVersion.value;
        runAdmin(name, "Set label", () => api.setLabel(name, label, version),
          `${name}: label “${label}” now points at version ${version}.`);
      },
    },
    h("label", { for: `label-${name}` }, "Label"),
    parts.labelName,
    h("span", { "aria-hidden": "true" }, "→"),
    parts.labelVersion,
    adminButton("Set label", { type: "submit" }),
  );
  const controls = h(
    "div",
    { class: "admin-row" },
    adminButton("Roll back", { "aria-label": `Roll back ${name}` }, () =>
      runAdmin(name, "Roll back", () => api.rollback(name), `${name}: rolled back to the previous version.`),
    ),
    adminButton("Back to latest", { "aria-label": `Serve the latest version of ${name}` }, () =>
      runAdmin(name, "Back to latest", () => api.latest(name), `${name}: the latest version answers again.`),
    ),
    setLabel,
    canaryForm,
  );
  const article = h(
    "article",
    { class: "model", dataset: { model: name }, "aria-labelledby": `model-${name}` },
    parts.head,
    parts.problem,
    parts.cluster,
    parts.table,
    controls,
    parts.msg,
    parts.card,
  );
  return { article, parts };
}

function renderModel({ parts }, model) {
  const detail = store.details.get(model.name);
  const task = detail?.task;
  const answers = model.serving !== null ? `v${model.serving}` : "no version";
  const how = model.pinned !== null ? "pinned" : "latest";
  clear(
    parts.head,
    h("h2", { id: `model-${model.name}` }, model.name),
    task ? h("span", { class: "task" }, task.replaceAll("_", " ")) : null,
    h("span", { class: "answering" }, "answering: ", h("strong", { class: "serving-version" }, answers),
      h("span", { class: "muted" }, ` (${how})`)),
  );
  if (detail?.classes?.length) {
    parts.head.append(h("p", { class: "classes small" }, h("span", { class: "muted" }, "classes: "),
      detail.classes.join(" · ")));
  }
  if (model.error) {
    parts.problem.hidden = false;
    clear(parts.problem, h("strong", {}, "Model server unavailable. "), String(model.error));
  } else {
    parts.problem.hidden = true;
  }
  clear(
    parts.table,
    h("caption", { class: "visually-hidden" }, `Versions of ${model.name}`),
    h("thead", {}, h("tr", {}, ["Version", "State", "Labels", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
    h(
      "tbody",
      {},
      model.versions.length
        ? model.versions.map((v) => versionRow(model, v))
        : h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No version is loaded.")),
    ),
  );
  clear(parts.cluster, replicaLine(model), canaryPanel(model), eventList(model));
  for (const select of [parts.labelVersion, parts.canaryVersion]) {
    const chosen = select.value;
    clear(select, model.versions.map((v) => h("option", { value: v.version }, `v${v.version}`)));
    if (chosen && model.versions.some((v) => String(v.version) === chosen)) select.value = chosen;
  }
  applyToken();
}

function applyToken() {
  const has = Boolean(token.get());
  byId("readonly-note").hidden = has;
  for (const button of all(list, "[data-admin]", HTMLButtonElement)) {
    if (!has) {
      button.disabled = true;
      button.title = "Enter the admin token (top right) to manage versions";
    } else {
      button.title = "";
      if (button.textContent === "Promote") {
        const row = button.closest("tr");
        const model = store.find(button.closest("article")?.dataset.model ?? "");
        const v = model?.versions.find((x) => String(x.version) === row?.dataset.version);
        button.disabled = !model || !v || !promotable(model, v);
      } else {
        button.disabled = false;
      }
    }
  }
  for (const input of all(list, ".label-form input, .label-form select, .canary-form input, .canary-form select")) {
    if (input instanceof HTMLInputElement || input instanceof HTMLSelectElement) input.disabled = !has;
  }
}

function render(state) {
  list.setAttribute("aria-busy", "false");
  if (state.error && !state.models.length) {
    clear(list, h("p", { class: "error" }, `The model list is unavailable: ${messageOf(state.error)}`));
    articles.clear();
    return;
  }
  if (!state.models.length) {
    clear(list, h("p", { class: "muted" }, "No models are configured."));
    return;
  }
  const names = state.models.map((m) => m.name);
  for (const [name, entry] of articles) {
    if (!names.includes(name)) {
      entry.article.remove();
      articles.delete(name);
    }
  }
  if (!list.querySelector("article")) list.replaceChildren();
  for (const model of state.models) {
    let entry = articles.get(model.name);
    if (!entry) {
      entry = buildArticle(model.name);
      articles.set(model.name, entry);
    }
    list.append(entry.article); // keeps sorted order; moving an element keeps its state
    // Re-render only on change, so polling never steals keyboard focus from a button.
    const fingerprint = JSON.stringify([model, state.details.get(model.name) ?? null,
      openCards.get(model.name) ?? null]);
    if (entry.fingerprint !== fingerprint) {
      entry.fingerprint = fingerprint;
      renderModel(entry, model);
    }
  }
  const when = state.updatedAt?.toLocaleTimeString() ?? "";
  refreshed.textContent = state.error ? `Refresh failed (${messageOf(state.error)}); showing the last list.` :
    `Updated ${when}, refreshes every 3 s.`;
}

export function initModels() {
  list = byId("models-list");
  refreshed = byId("models-refreshed");
  store.subscribe(render);
  token.onChange(applyToken);
}
