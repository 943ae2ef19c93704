// @ts-check
// "Explain" beside each answer in Try it: why the model said that, from POST /v1/models/{name}:explain
// (integrated gradients, computed by the model's own explain signature). Images: the heat layer over the
// uploaded image with an opacity slider; texts: the model's tokens highlighted by weight; records: each
// feature's contribution as a bar, in the output's unit. Red raises the explained score, blue lowers it.

import { clear, formatNumber, h, messageOf } from "./dom.js";

/** Does this model version publish an explain signature (its contract names one)? @param {any} model */
export function explainable(model) {
  return Boolean(model?.contract?.explain?.signature);
}

/**
 * An "Explain" button and the box its answer goes into.
 * @param {() => Promise<Node>} run fetches and draws the explanation
 * @returns {HTMLElement[]}
 */
export function explainControl(run) {
  const box = h("div", { class: "explanation", "aria-live": "polite" });
  const button = /** @type {HTMLButtonElement} */ (h("button", { type: "button", class: "secondary small explain" }, "Explain"));
  button.addEventListener("click", async () => {
    button.disabled = true;
    clear(box, h("p", { class: "muted small" }, "Explaining…"));
    try {
      clear(box, await run());
    } catch (err) {
      clear(box, h("p", { class: "error", role: "alert" }, messageOf(err)));
    } finally {
      button.disabled = false;
    }
  });
  return [button, box];
}

/** @param {number} weight @param {number} max */
function tint(weight, max) {
  const alpha = Math.min(1, Math.abs(weight) / max) * 0.75;
  return weight >= 0 ? `rgba(220, 38, 38, ${alpha.toFixed(3)})` : `rgba(37, 99, 235, ${alpha.toFixed(3)})`;
}

/** @param {any} reply @param {any} item */
function why(reply, item) {
  const what = item.label ? `“${item.label}”` : "this value";
  return `Why ${what}: red raises it, blue lowers it (integrated gradients from ${reply.baseline ? `the ${reply.baseline}` : "a baseline"}, ${reply.steps} steps).`;
}

/**
 * The uploaded image with the attributions' heat layer on top and an opacity slider.
 * @param {File} file @param {any} reply an ExplainReply for this one file
 */
export function imageExplanation(file, reply) {
  const item = reply.predictions?.[0] ?? {};
  const url = URL.createObjectURL(file);
  const heat = h("img", { class: "heat", src: `data:image/png;base64,${item.heatmap ?? ""}`,
    alt: `attribution heat map for ${item.label ?? "the answer"}`, width: 168, height: 168 });
  heat.style.opacity = "0.7";
  const slider = /** @type {HTMLInputElement} */ (h("input", { type: "range", min: "0", max: "100", value: "70",
    class: "opacity" }));
  slider.addEventListener("input", () => {
    heat.style.opacity = String(Number(slider.value) / 100);
  });
  return h("div", { class: "explain-image" },
    h("div", { class: "overlay-stack" },
      h("img", { class: "base", src: url, alt: file.name, width: 168, height: 168 }),
      heat),
    h("label", { class: "small opacity-label" }, "Heat map opacity ", slider),
    h("p", { class: "muted small" }, why(reply, item)));
}

/** The model's tokens, each highlighted by its weight. @param {any} reply */
export function tokenExplanation(reply) {
  const item = reply.predictions?.[0] ?? {};
  const tokens = item.tokens ?? [];
  const max = Math.max(1e-12, ...tokens.map((/** @type {any} */ t) => Math.abs(t.weight)));
  return h("div", { class: "explain-text" },
    h("p", { class: "tokens" }, tokens.map((/** @type {any} */ t) => [
      h("mark", { class: "token", css: `background-color: ${tint(t.weight, max)}`,
        title: `${t.weight >= 0 ? "+" : ""}${formatNumber(t.weight)}`, dataset: { weight: String(t.weight) } }, t.token),
      " ",
    ])),
    h("p", { class: "muted small" }, why(reply, item)));
}

/**
 * One bar per feature, largest first: what it added to (right, red) or took from (left, blue) the output,
 * starting at the baseline's output.
 * @param {any} reply @param {(value: number) => string} format the output's unit
 */
export function contributionChart(reply, format) {
  const item = reply.predictions?.[0] ?? {};
  const rows = [...(item.features ?? [])].sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution));
  const max = Math.max(1e-12, ...rows.map((f) => Math.abs(f.contribution)));
  return h("div", { class: "explain-records" },
    h("p", { class: "muted small" },
      `From the ${reply.baseline ?? "baseline"} (${format(item.baseline_score)}) to this prediction `
      + `(${format(item.score)}): what each feature added. Red raises it, blue lowers it.`),
    h("ol", { class: "contributions" }, rows.map((f) => {
      const share = (Math.abs(f.contribution) / max) * 50;
      const up = f.contribution >= 0;
      const sign = up ? "+" : "−";
      return h("li", { dataset: { feature: f.feature, contribution: String(f.contribution) } },
        h("span", { class: "bar-label" }, f.feature.replaceAll("_", " ")),
        h("span", { class: "contribution-track", role: "img",
          "aria-label": `${f.feature} ${sign}${format(Math.abs(f.contribution))}` },
          h("span", { class: `contribution-fill ${up ? "up" : "down"}`,
            css: `${up ? "left" : "right"}: 50%; width: ${share.toFixed(1)}%` })),
        h("span", { class: "bar-score" }, `${sign}${format(Math.abs(f.contribution))}`));
    })));
}
