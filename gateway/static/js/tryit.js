// @ts-check
// The "Try it" screen: pick a model and a version, then images (drag and drop or pick), a text, or the
// features of a record; shows the top-k labels as bars, a binary classifier's verdict, or the predicted
// value, with the version that answered, and an "Explain" button beside each answer when the model has an
// explain signature (explain.js). Everything model-specific (class names, example values, units)
// comes from the model's contract, never from this file.

import { api } from "./api.js";
import { all, byId, clear, formatNumber, h, messageOf, showError } from "./dom.js";
import { contributionChart, explainControl, explainable, imageExplanation, tokenExplanation } from "./explain.js";
import { readClassification, readDetail, readRegression } from "./shapes.js";
import { store } from "./store.js";

/**
 * The screen's elements, found once by initTry (the page is parsed by then).
 * @typedef {object} TryUi
 * @property {HTMLSelectElement} modelSelect
 * @property {HTMLSelectElement} versionSelect
 * @property {HTMLElement} taskLine
 * @property {HTMLElement} errorBox
 * @property {HTMLElement} results
 * @property {HTMLElement} recordFields
 * @property {HTMLButtonElement} recordExample
 * @property {HTMLTextAreaElement | HTMLInputElement} textInput
 * @property {HTMLInputElement} imageK
 * @property {Record<string, HTMLFormElement>} forms the form of each task
 */
/** @type {TryUi} */
let ui;

/** @type {(import("./shapes.js").Detail & {name: string}) | null} the model version the forms are built for */
let detail = null;

function choice() {
  const [kind, value] = (ui.versionSelect.value || "latest:").split(":");
  if (kind === "version") return { version: value };
  if (kind === "label") return { label: value };
  return {};
}

function answeredBy(model, version) {
  return h("p", { class: "answered" }, "Answered by ", h("strong", { class: "answered-model" }, model ?? "?"),
    " version ", h("strong", { class: "answered-version" }, version ?? "?"));
}

function bars(pairs, { highlight = 0 } = {}) {
  return h(
    "ol",
    { class: "bars" },
    pairs.map((p, i) => {
      const pct = Math.max(0, Math.min(1, p.score)) * 100;
      return h(
        "li",
        { class: i === highlight ? "best" : "" },
        h("span", { class: "bar-label" }, p.label),
        h("span", { class: "bar-track", role: "img", "aria-label": `${p.label} ${pct.toFixed(1)}%` },
          h("span", { class: "bar-fill", css: `width:${pct.toFixed(1)}%` })),
        h("span", { class: "bar-score" }, pct > 0 && pct < 0.1 ? "<0.1%" : `${pct.toFixed(1)}%`),
      );
    }),
  );
}

async function submit(run) {
  showError(ui.errorBox, "");
  ui.results.setAttribute("aria-busy", "true");
  try {
    await run();
  } catch (err) {
    showError(ui.errorBox, messageOf(err));
  } finally {
    ui.results.setAttribute("aria-busy", "false");
  }
}

function classifyImages(files) {
  const images = [...files].filter((f) => f.size > 0 || f.type);
  if (!images.length) return;
  const k = Math.max(1, Math.min(10, Number(ui.imageK.value) || 3));
  submit(async () => {
    clear(ui.results, h("p", { class: "muted" }, `Classifying ${images.length} image(s)…`));
    const model = current();
    const picked = choice();
    const reply = readClassification(await api.classifyImages(model.name, images, k, picked));
    clear(
      ui.results,
      answeredBy(reply.model ?? model.name, reply.version),
      h("div", { class: "image-results" }, images.map((file, i) => {
        const url = URL.createObjectURL(file);
        const top = reply.items[i] ?? [];
        return h("figure", { class: "image-result" },
          h("img", { src: url, alt: file.name, width: 84, height: 84, onload: () => URL.revokeObjectURL(url) }),
          h("figcaption", {},
            h("div", { class: "file-name" }, file.name),
            top.length ? h("div", { class: "top-label" }, top[0].label) : null,
            bars(top.slice(0, k)),
            explainable(model)
              ? explainControl(async () =>
                imageExplanation(file, await api.explainImages(model.name, [file], picked)))
              : null));
      })),
    );
  });
}

/** @param {SubmitEvent} e */
function classifyText(e) {
  e.preventDefault();
  const text = ui.textInput.value;
  if (!text.trim()) {
    showError(ui.errorBox, "Type a message first.");
    return;
  }
  submit(async () => {
    const model = current();
    const picked = choice();
    const reply = readClassification(await api.classifyTexts(model.name, [text], picked));
    const pairs = reply.items[0] ?? [];
    clear(ui.results, answeredBy(reply.model ?? model.name, reply.version), verdict(model, pairs), bars(pairs),
      explainable(model)
        ? explainControl(async () => tokenExplanation(await api.explainTexts(model.name, [text], picked)))
        : null);
  });
}

/**
 * A binary classifier's verdict: its contract lists two classes, [negative, positive] (the 0/1 order it was
 * trained with; ``positive_label`` in the contract overrides), e.g. ["ham", "spam"]. Other models: the top
 * label.
 * @param {import("./shapes.js").Detail} model
 * @param {{label: string, score: number}[]} pairs
 */
function verdict(model, pairs) {
  const classes = model.classes.map(String);
  const positive = String(model.contract?.positive_label ?? (classes.length === 2 ? classes[1] : ""));
  const hit = positive ? pairs.find((p) => String(p.label) === positive) : undefined;
  if (!hit) return h("p", { class: "verdict" }, pairs[0] ? `${pairs[0].label}` : "no answer");
  const flagged = hit.score >= 0.5;
  const named = flagged ? positive : (classes.find((c) => c !== positive) ?? `not ${positive}`);
  const shown = named.charAt(0).toUpperCase() + named.slice(1);
  return h("p", { class: `verdict ${flagged ? "positive" : "negative"}`, dataset: { label: named } },
    `${shown} · ${(hit.score * 100).toFixed(1)}% ${positive} probability`);
}

/** The model the forms were built for (the forms are hidden until there is one). */
function current() {
  if (!detail) throw new Error("Pick a model first.");
  return detail;
}

function formatValue(value, unit) {
  if (!Number.isFinite(value)) return "no value";
  if (unit && /^[A-Z]{3}$/.test(unit)) {
    try {
      return value.toLocaleString("en-US", { style: "currency", currency: unit, maximumFractionDigits: 0 });
    } catch {
      // not a currency Intl knows: fall through to number + unit
    }
  }
  return unit ? `${formatNumber(value)} ${unit}` : formatNumber(value);
}

function recordFromForm() {
  /** @type {Record<string, number>} */
  const record = {};
  for (const input of all(ui.recordFields, "input", HTMLInputElement)) {
    const raw = input.value.trim();
    if (raw === "") continue; // unknown: the model imputes it
    const n = Number(raw);
    const feature = input.dataset.feature ?? input.id;
    if (!Number.isFinite(n)) throw new Error(`${feature}: “${raw}” is not a number.`);
    record[feature] = n;
  }
  return record;
}

function regress(e) {
  e.preventDefault();
  submit(async () => {
    const model = current();
    const record = recordFromForm();
    const picked = choice();
    const reply = readRegression(await api.regress(model.name, [record], picked));
    const value = reply.values[0];
    // What the value means comes from the contract's "output" (name, unit, description); a currency unit
    // (ISO 4217, e.g. USD) is shown as money.
    const meaning = model.contract?.output ?? {};
    const name = meaning.name ?? model.contract?.predict?.outputs?.[0] ?? "prediction";
    const unit = reply.unit ?? meaning.unit ?? null;
    clear(
      ui.results,
      answeredBy(reply.model ?? model.name, reply.version),
      h("p", { class: "prediction" },
        h("span", { class: "muted" }, `${String(name).replaceAll("_", " ")}: `),
        h("strong", { class: "predicted-value" }, formatValue(value, unit))),
      meaning.description ? h("p", { class: "muted small" }, meaning.description) : null,
      explainable(model)
        ? explainControl(async () => contributionChart(await api.explainRecords(model.name, [record], picked),
          (v) => formatValue(v, unit)))
        : null,
    );
  });
}

/**
 * One field per numeric input of the contract; "Fill an example" appears when the contract gives example
 * values (``inputs.<name>.example``).
 * @param {import("./shapes.js").Detail} model
 */
function buildRecordFields(model) {
  const fields = ui.recordFields;
  /** @type {[string, any][]} */
  const inputs = Object.entries(model.inputs ?? {}).filter(([, spec]) => (spec?.kind ?? "numeric") === "numeric");
  clear(
    fields,
    inputs.map(([name, spec]) =>
      h("div", { class: "field" },
        h("label", { for: `feature-${name}` }, name.replaceAll("_", " ")),
        h("input", { id: `feature-${name}`, type: "text", inputmode: "decimal", dataset: { feature: name },
          "aria-describedby": `hint-${name}`, placeholder: "unknown" }),
        h("span", { class: "hint", id: `hint-${name}` },
          [spec?.description, spec?.unit ? `in ${spec.unit}` : null].filter(Boolean).join(" · ")))),
  );
  if (!inputs.length) fields.append(h("p", { class: "muted" }, "This model publishes no numeric inputs."));
  ui.recordExample.hidden = !inputs.some(([, spec]) => typeof spec?.example === "number");
}

/** @param {string} value @param {string} text */
const option = (value, text) => /** @type {HTMLOptionElement} */ (h("option", { value }, text));

/** @param {string} name */
function fillVersions(name) {
  const model = store.find(name);
  const previous = ui.versionSelect.value;
  /** @type {HTMLOptionElement[]} */
  const options = [option("latest:", "as served (default)")];
  if (model) {
    for (const label of Object.keys(model.labels).sort())
      options.push(option(`label:${label}`, `label “${label}” → v${model.labels[label]}`));
    for (const v of model.versions.filter((x) => x.state === "available"))
      options.push(option(`version:${v.version}`, `v${v.version}`));
  }
  // Rebuild only on change: replacing the options of an open <select> would close it under the user.
  const fingerprint = options.map((o) => `${o.value}=${o.textContent}`).join("|");
  if (ui.versionSelect.dataset.fingerprint === fingerprint) return;
  ui.versionSelect.dataset.fingerprint = fingerprint;
  clear(ui.versionSelect, options);
  if ([...ui.versionSelect.options].some((o) => o.value === previous)) ui.versionSelect.value = previous;
}

let selecting = null; // the model whose contract is being read (polls must not start a second read)

async function selectModel(name) {
  if (selecting === name) return;
  selecting = name;
  try {
    await readContract(name);
  } finally {
    selecting = null;
  }
}

async function readContract(name) {
  showError(ui.errorBox, "");
  clear(ui.results);
  for (const form of Object.values(ui.forms)) form.hidden = true;
  fillVersions(name);
  if (!name) return;
  ui.taskLine.textContent = "Reading the model's input contract…";
  try {
    const read = readDetail(await api.getModel(name, choice()));
    detail = { ...read, name: read.name ?? name };
  } catch (err) {
    detail = null;
    ui.taskLine.textContent = "";
    showError(ui.errorBox, `Cannot read ${name}: ${messageOf(err)}`);
    return;
  }
  const task = detail.task ?? store.details.get(name)?.task;
  const form = ui.forms[task];
  ui.taskLine.textContent = task ? task.replaceAll("_", " ") : "";
  if (!form) {
    showError(ui.errorBox, `The console cannot build a form for task “${task ?? "unknown"}”; use the API.`);
    return;
  }
  if (task === "regression") buildRecordFields(detail);
  form.hidden = false;
}

function fillModels(state) {
  const names = state.models.map((m) => m.name);
  const current = ui.modelSelect.value;
  const existing = [...ui.modelSelect.options].map((o) => o.value);
  if (JSON.stringify(existing) !== JSON.stringify(names)) {
    clear(ui.modelSelect, names.map((n) => h("option", { value: n }, n)));
    if (names.includes(current)) ui.modelSelect.value = current;
  }
  if (ui.modelSelect.value && ui.modelSelect.value !== detail?.name) selectModel(ui.modelSelect.value);
  else if (ui.modelSelect.value) fillVersions(ui.modelSelect.value);
}

export function chooseModel(name) {
  if ([...ui.modelSelect.options].some((o) => o.value === name)) {
    ui.modelSelect.value = name;
    selectModel(name);
  }
}

export function initTry() {
  ui = {
    modelSelect: byId("try-model", HTMLSelectElement),
    versionSelect: byId("try-version", HTMLSelectElement),
    taskLine: byId("try-task"),
    errorBox: byId("try-error"),
    results: byId("try-results"),
    recordFields: byId("records-fields"),
    recordExample: byId("records-example", HTMLButtonElement),
    textInput: /** @type {HTMLTextAreaElement | HTMLInputElement} */ (byId("text-input")),
    imageK: byId("image-k", HTMLInputElement),
    forms: {
      image_classification: byId("form-image", HTMLFormElement),
      text_classification: byId("form-text", HTMLFormElement),
      regression: byId("form-records", HTMLFormElement),
    },
  };
  store.subscribe(fillModels);
  ui.modelSelect.addEventListener("change", () => selectModel(ui.modelSelect.value));
  byId("try-pick").addEventListener("submit", (e) => e.preventDefault());

  const input = byId("image-input", HTMLInputElement);
  input.addEventListener("change", () => {
    classifyImages(input.files);
    input.value = "";
  });
  const zone = byId("dropzone");
  for (const type of ["dragenter", "dragover"])
    zone.addEventListener(type, (e) => {
      e.preventDefault();
      zone.classList.add("over");
    });
  for (const type of ["dragleave", "drop"]) zone.addEventListener(type, () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer) classifyImages(e.dataTransfer.files);
  });
  ui.forms.image_classification.addEventListener("submit", (e) => e.preventDefault());
  ui.forms.text_classification.addEventListener("submit", classifyText);
  ui.forms.regression.addEventListener("submit", regress);
  for (const button of all(ui.forms.text_classification, "[data-example]"))
    button.addEventListener("click", () => {
      ui.textInput.value = button.dataset.example ?? "";
      ui.textInput.focus();
    });
  ui.recordExample.addEventListener("click", () => {
    const inputs = detail?.inputs ?? {};
    for (const el of all(ui.recordFields, "input", HTMLInputElement)) {
      const example = inputs[el.dataset.feature ?? ""]?.example;
      el.value = typeof example === "number" ? String(example) : "";
    }
  });
}
