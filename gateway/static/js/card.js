// @ts-check
// The model card of one version: test metrics against their baselines, sizes, signatures and the training
// curves, from the gateway's model-card endpoint. When the gateway does not expose cards, the panel falls back
// to what GET /v1/models/{name} gives (signatures, inputs, class labels of the version that answers).

import { api } from "./api.js";
import { clear, formatBytes, formatNumber, h, messageOf } from "./dom.js";
import { readDetail } from "./shapes.js";

function metricsTable(metrics) {
  const entries = Object.entries(metrics ?? {}).filter(([k]) => !k.startsWith("baseline_"));
  if (!entries.length) return null;
  return h(
    "table",
    { class: "kv" },
    h("caption", {}, "Test metrics"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "metric"), h("th", { scope: "col" }, "model"),
      h("th", { scope: "col" }, "baseline"))),
    h(
      "tbody",
      {},
      entries.map(([k, v]) =>
        h("tr", {}, h("th", { scope: "row" }, k.replaceAll("_", " ")), h("td", {}, formatNumber(v)),
          h("td", { class: "muted" }, formatNumber(metrics[`baseline_${k}`] ?? "—"))),
      ),
    ),
  );
}

function sizesTable(sizes) {
  const entries = Object.entries(sizes ?? {});
  if (!entries.length) return null;
  return h(
    "table",
    { class: "kv" },
    h("caption", {}, "Sizes"),
    h("tbody", {}, entries.map(([k, v]) =>
      h("tr", {}, h("th", { scope: "row" }, k.replaceAll("_", " ")), h("td", {}, formatBytes(v))))),
  );
}

function tensorText(spec) {
  if (!spec || typeof spec !== "object") return String(spec ?? "");
  const dtype = String(spec.dtype ?? "").replace(/^DT_/, "").toLowerCase();
  const shape = Array.isArray(spec.shape) ? `[${spec.shape.join(", ")}]` : "";
  return `${dtype}${shape}`;
}

function signaturesList(signatures) {
  const entries = Object.entries(signatures ?? {});
  if (!entries.length) return null;
  return h(
    "div",
    { class: "signatures" },
    h("h4", {}, "Signatures"),
    h("dl", {}, entries.map(([key, sig]) => [
      h("dt", {}, key, (sig?.method ?? sig?.method_name)
        ? h("span", { class: "muted small" }, ` ${sig.method ?? sig.method_name}`) : null),
      h("dd", {},
        Object.entries(sig?.inputs ?? {}).map(([n, s]) => h("code", {}, `${n}: ${tensorText(s)}`)),
        h("span", { class: "arrow", "aria-label": "gives" }, " → "),
        Object.entries(sig?.outputs ?? {}).map(([n, s]) => h("code", {}, `${n}: ${tensorText(s)}`))),
    ])),
  );
}

function curves(name, version) {
  const figure = h("figure", { class: "curves" });
  const img = h("img", {
    src: api.curvesUrl(name, version),
    alt: `Training curves of ${name} version ${version}`,
    loading: "lazy",
  });
  img.addEventListener("error", () =>
    clear(figure, h("p", { class: "muted small" }, "Training curves are not available from the API.")));
  figure.append(img, h("figcaption", { class: "muted small" }, "Training curves"));
  return figure;
}

export async function renderCard(panel, name, version) {
  clear(panel, h("p", { class: "muted" }, `Loading the model card of ${name} v${version}…`));
  let card = null;
  try {
    card = await api.modelCard(name, version);
  } catch {
    card = null;
  }
  const head = h("h3", {}, `Model card · ${name} v${version}`);
  if (card) {
    const training = card.training ?? {};
    clear(
      panel,
      head,
      h("p", { class: "muted small" },
        [card.created ? `created ${card.created}` : null,
          training.epochs ? `${training.epochs} epochs` : null,
          training.seconds ? `${formatNumber(training.seconds)} s training` : null]
          .filter(Boolean).join(" · ")),
      h("div", { class: "card-grid" }, metricsTable(card.metrics), sizesTable(card.sizes)),
      signaturesList(card.signatures),
      (card.curves ?? []).length ? curves(name, version) : null,
    );
    return;
  }
  // Fallback: the metadata of the version that answers.
  try {
    const detail = readDetail(await api.getModel(name, { version }));
    clear(
      panel,
      head,
      h("p", { class: "muted small" },
        `The gateway does not expose model cards yet; showing what the model server says about v${version}.`),
      h("p", {}, `Task: ${(detail.task ?? "unknown").replaceAll("_", " ")}`,
        detail.source === "derived" ? h("span", { class: "muted small" }, " (derived from metadata)") : null),
      detail.classes.length ? h("p", {}, "Classes: ", detail.classes.map((c) => h("span", { class: "chip" }, c))) : null,
      signaturesList(detail.signatures),
    );
  } catch (err) {
    clear(panel, head, h("p", { class: "muted" },
      `No metadata for v${version}: the model server answers only for loaded versions (${messageOf(err)}).`));
  }
}
