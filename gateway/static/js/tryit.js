// The "Try it" screen: pick a model and a version, then images (drag and drop or pick), a text, or the
// features of a record; shows the top-k labels as bars, the spam probability, or the predicted value, with
// the version that answered.

import { api } from "./api.js";
import { clear, formatNumber, h, showError } from "./dom.js";
import { readClassification, readDetail, readRegression } from "./shapes.js";
import { store } from "./store.js";

const $ = (id) => document.getElementById(id);
const modelSelect = $("try-model");
const versionSelect = $("try-version");
const taskLine = $("try-task");
const errorBox = $("try-error");
const results = $("try-results");
const forms = {
  image_classification: $("form-image"),
  text_classification: $("form-text"),
  regression: $("form-records"),
};

// A typical California block (the first row of the housing data) for "Fill an example".
const HOUSING_EXAMPLE = {
  longitude: -122.23, latitude: 37.88, housing_median_age: 41, total_rooms: 880, total_bedrooms: 129,
  population: 322, households: 126, median_income: 8.3252,
};

let detail = null;

function choice() {
  const [kind, value] = (versionSelect.value || "latest:").split(":");
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
          h("span", { class: "bar-fill", style: `width:${pct.toFixed(1)}%` })),
        h("span", { class: "bar-score" }, pct > 0 && pct < 0.1 ? "<0.1%" : `${pct.toFixed(1)}%`),
      );
    }),
  );
}

async function submit(run) {
  showError(errorBox, "");
  results.setAttribute("aria-busy", "true");
  try {
    await run();
  } catch (err) {
    showError(errorBox, err.message);
  } finally {
    results.setAttribute("aria-busy", "false");
  }
}

function classifyImages(files) {
  const images = [...files].filter((f) => f.size > 0 || f.type);
  if (!images.length) return;
  const k = Math.max(1, Math.min(10, Number($("image-k").value) || 3));
  submit(async () => {
    clear(results, h("p", { class: "muted" }, `Classifying ${images.length} image(s)…`));
    const reply = readClassification(await api.classifyImages(detail.name, images, k, choice()));
    clear(
      results,
      answeredBy(reply.model ?? detail.name, reply.version),
      h("div", { class: "image-results" }, images.map((file, i) => {
        const url = URL.createObjectURL(file);
        const top = reply.items[i] ?? [];
        return h("figure", { class: "image-result" },
          h("img", { src: url, alt: file.name, width: 84, height: 84, onload: () => URL.revokeObjectURL(url) }),
          h("figcaption", {},
            h("div", { class: "file-name" }, file.name),
            top.length ? h("div", { class: "top-label" }, top[0].label) : null,
            bars(top.slice(0, k))));
      })),
    );
  });
}

function classifyText(e) {
  e.preventDefault();
  const text = $("text-input").value;
  if (!text.trim()) {
    showError(errorBox, "Type a message first.");
    return;
  }
  submit(async () => {
    const reply = readClassification(await api.classifyTexts(detail.name, [text], choice()));
    const pairs = reply.items[0] ?? [];
    const spam = pairs.find((p) => String(p.label).toLowerCase() === "spam");
    const verdict = spam
      ? spam.score >= 0.5
        ? h("p", { class: "verdict spam" }, `Spam · ${(spam.score * 100).toFixed(1)}% spam probability`)
        : h("p", { class: "verdict ham" }, `Not spam · ${(spam.score * 100).toFixed(1)}% spam probability`)
      : h("p", { class: "verdict" }, pairs[0] ? `${pairs[0].label}` : "no answer");
    clear(results, answeredBy(reply.model ?? detail.name, reply.version), verdict, bars(pairs));
  });
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
  const record = {};
  for (const input of $("records-fields").querySelectorAll("input")) {
    const raw = input.value.trim();
    if (raw === "") continue; // unknown: the model imputes it
    const n = Number(raw);
    if (!Number.isFinite(n)) throw new Error(`${input.dataset.feature}: “${raw}” is not a number.`);
    record[input.dataset.feature] = n;
  }
  return record;
}

function regress(e) {
  e.preventDefault();
  submit(async () => {
    const record = recordFromForm();
    const reply = readRegression(await api.regress(detail.name, [record], choice()));
    const value = reply.values[0];
    // What the value means comes from the contract's "output" (name, unit, description); a currency unit
    // (ISO 4217, e.g. USD) is shown as money.
    const meaning = detail.contract?.output ?? {};
    const name = meaning.name ?? detail.contract?.predict?.outputs?.[0] ?? "prediction";
    const unit = reply.unit ?? meaning.unit ?? null;
    clear(
      results,
      answeredBy(reply.model ?? detail.name, reply.version),
      h("p", { class: "prediction" },
        h("span", { class: "muted" }, `${String(name).replaceAll("_", " ")}: `),
        h("strong", { class: "predicted-value" }, formatValue(value, unit))),
      meaning.description ? h("p", { class: "muted small" }, meaning.description) : null,
    );
  });
}

function buildRecordFields() {
  const fields = $("records-fields");
  const inputs = Object.entries(detail.inputs ?? {}).filter(([, spec]) => (spec?.kind ?? "numeric") === "numeric");
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
}

function fillVersions(name) {
  const model = store.find(name);
  const previous = versionSelect.value;
  const options = [h("option", { value: "latest:" }, "as served (default)")];
  if (model) {
    for (const label of Object.keys(model.labels).sort())
      options.push(h("option", { value: `label:${label}` }, `label “${label}” → v${model.labels[label]}`));
    for (const v of model.versions.filter((x) => x.state === "available"))
      options.push(h("option", { value: `version:${v.version}` }, `v${v.version}`));
  }
  // Rebuild only on change: replacing the options of an open <select> would close it under the user.
  const fingerprint = options.map((o) => `${o.value}=${o.textContent}`).join("|");
  if (versionSelect.dataset.fingerprint === fingerprint) return;
  versionSelect.dataset.fingerprint = fingerprint;
  clear(versionSelect, options);
  if ([...versionSelect.options].some((o) => o.value === previous)) versionSelect.value = previous;
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
  showError(errorBox, "");
  clear(results);
  for (const form of Object.values(forms)) form.hidden = true;
  fillVersions(name);
  if (!name) return;
  taskLine.textContent = "Reading the model's input contract…";
  try {
    detail = readDetail(await api.getModel(name, choice()));
    detail.name = detail.name ?? name;
  } catch (err) {
    detail = null;
    taskLine.textContent = "";
    showError(errorBox, `Cannot read ${name}: ${err.message}`);
    return;
  }
  const task = detail.task ?? store.find(name)?.task;
  const form = forms[task];
  taskLine.textContent = task ? task.replaceAll("_", " ") : "";
  if (!form) {
    showError(errorBox, `The console cannot build a form for task “${task ?? "unknown"}”; use the API.`);
    return;
  }
  if (task === "regression") buildRecordFields();
  form.hidden = false;
}

function fillModels(state) {
  const names = state.models.map((m) => m.name);
  const current = modelSelect.value;
  const existing = [...modelSelect.options].map((o) => o.value);
  if (JSON.stringify(existing) !== JSON.stringify(names)) {
    clear(modelSelect, names.map((n) => h("option", { value: n }, n)));
    if (names.includes(current)) modelSelect.value = current;
  }
  if (modelSelect.value && modelSelect.value !== detail?.name) selectModel(modelSelect.value);
  else if (modelSelect.value) fillVersions(modelSelect.value);
}

export function chooseModel(name) {
  if ([...modelSelect.options].some((o) => o.value === name)) {
    modelSelect.value = name;
    selectModel(name);
  }
}

export function initTry() {
  store.subscribe(fillModels);
  modelSelect.addEventListener("change", () => selectModel(modelSelect.value));
  $("try-pick").addEventListener("submit", (e) => e.preventDefault());

  const input = $("image-input");
  input.addEventListener("change", () => {
    classifyImages(input.files);
    input.value = "";
  });
  const zone = $("dropzone");
  for (const type of ["dragenter", "dragover"])
    zone.addEventListener(type, (e) => {
      e.preventDefault();
      zone.classList.add("over");
    });
  for (const type of ["dragleave", "drop"]) zone.addEventListener(type, () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    classifyImages(e.dataTransfer.files);
  });
  forms.image_classification.addEventListener("submit", (e) => e.preventDefault());
  forms.text_classification.addEventListener("submit", classifyText);
  forms.regression.addEventListener("submit", regress);
  for (const button of forms.text_classification.querySelectorAll("[data-example]"))
    button.addEventListener("click", () => {
      $("text-input").value = button.dataset.example;
      $("text-input").focus();
    });
  $("records-example").addEventListener("click", () => {
    for (const el of $("records-fields").querySelectorAll("input"))
      el.value = HOUSING_EXAMPLE[el.dataset.feature] ?? "";
  });
}
