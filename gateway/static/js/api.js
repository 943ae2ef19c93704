// @ts-check
// The gateway's public JSON API, as the console uses it. The console has no private endpoints: every call
// here is in the gateway's OpenAPI schema (/openapi.json). All URLs are relative to the page, so the console
// works behind a path prefix too.

import { token } from "./token.js";

/** An API failure with a message meant for people (never raw JSON). */
export class ApiError extends Error {
  /** @param {number} status HTTP status (0: no answer) @param {string} message @param {unknown} [body] */
  constructor(status, message, body = null) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// Pull a human-readable sentence out of the error bodies the gateway (FastAPI) and the model servers send:
// {"detail": "..."}, {"detail": [{"loc": [...], "msg": "..."}]}, {"error": "..."}, {"message": "..."}.
export function describeError(status, body) {
  let text = "";
  if (body && typeof body === "object") {
    const detail = body.detail ?? body.error ?? body.message;
    if (typeof detail === "string") {
      text = detail;
    } else if (Array.isArray(detail)) {
      text = detail
        .map((d) => {
          const where = Array.isArray(d.loc) ? d.loc.filter((p) => p !== "body").join(".") : "";
          return where ? `${where}: ${d.msg}` : d.msg;
        })
        .join("; ");
    } else if (detail && typeof detail === "object") {
      text = detail.message ?? detail.error ?? "";
    }
  } else if (typeof body === "string") {
    text = body.trim().slice(0, 300);
  }
  const hint = {
    401: "admin token missing or wrong",
    403: "admin token refused",
    404: "not found",
    413: "too large",
    415: "unsupported file type",
    503: "a model server is unavailable",
    504: "the model server did not answer in time",
  }[status];
  if (!text) text = hint ?? "request failed";
  return `${text} (HTTP ${status})`;
}

/**
 * @typedef {object} RequestOptions
 * @property {unknown} [json] a body sent as JSON
 * @property {FormData} [form] a multipart body
 * @property {boolean} [admin] send the admin token
 * @property {AbortSignal} [signal]
 */

/**
 * @param {string} method
 * @param {string} path
 * @param {RequestOptions} [options]
 * @returns {Promise<any>} the parsed JSON (or text) body
 */
async function request(method, path, { json, form, admin = false, signal } = {}) {
  /** @type {Record<string, string>} */
  const headers = { Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  if (admin && token.get()) headers.Authorization = `Bearer ${token.get()}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body, signal, cache: "no-store" });
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    throw new ApiError(0, "The gateway cannot be reached. Is it running?");
  }
  const type = response.headers.get("Content-Type") ?? "";
  const payload = type.includes("json") ? await response.json().catch(() => null) : await response.text();
  if (!response.ok) throw new ApiError(response.status, describeError(response.status, payload), payload);
  return payload;
}

const enc = encodeURIComponent;

// Version selection as the gateway takes it: query parameters `version` or `label`.
function selector(choice) {
  const params = new URLSearchParams();
  if (choice?.version) params.set("version", String(choice.version));
  else if (choice?.label) params.set("label", choice.label);
  return params;
}

function withQuery(path, params) {
  const q = params.toString();
  return q ? `${path}?${q}` : path;
}

export const api = {
  listModels: (signal) => request("GET", "v1/models", { signal }),
  getModel: (name, choice, signal) =>
    request("GET", withQuery(`v1/models/${enc(name)}`, selector(choice)), { signal }),
  modelCard: (name, version) => request("GET", `v1/models/${enc(name)}/versions/${enc(version)}/card`),
  curvesUrl: (name, version) => `v1/models/${enc(name)}/versions/${enc(version)}/curves.png`,

  classifyImages(name, files, k, choice) {
    const form = new FormData();
    for (const f of files) form.append("file", f, f.name);
    const params = selector(choice);
    params.set("k", String(k));
    return request("POST", withQuery(`v1/models/${enc(name)}:classify`, params), { form });
  },
  classifyTexts: (name, texts, choice) =>
    request("POST", withQuery(`v1/models/${enc(name)}:classify`, selector(choice)), { json: { texts } }),
  regress: (name, records, choice) =>
    request("POST", withQuery(`v1/models/${enc(name)}:regress`, selector(choice)), { json: { records } }),
  // Why: integrated-gradients attributions from the model's explain signature (same inputs as above).
  explainImages(name, files, choice) {
    const form = new FormData();
    for (const f of files) form.append("file", f, f.name);
    return request("POST", withQuery(`v1/models/${enc(name)}:explain`, selector(choice)), { form });
  },
  explainTexts: (name, texts, choice) =>
    request("POST", withQuery(`v1/models/${enc(name)}:explain`, selector(choice)), { json: { texts } }),
  explainRecords: (name, records, choice) =>
    request("POST", withQuery(`v1/models/${enc(name)}:explain`, selector(choice)), { json: { records } }),

  // Admin (Bearer token; 401 without it, 403 when the gateway has none configured). The gateway writes them
  // to the shared models.config and applies them to every replica (HandleReloadConfigRequest).
  promote: (name, version) =>
    request("POST", `v1/admin/models/${enc(name)}:promote`, { json: { version: Number(version) }, admin: true }),
  rollback: (name) => request("POST", `v1/admin/models/${enc(name)}:rollback`, { admin: true }),
  latest: (name) => request("POST", `v1/admin/models/${enc(name)}:latest`, { admin: true }),
  setLabel: (name, label, version) =>
    request("PUT", `v1/admin/models/${enc(name)}/labels/${enc(label)}`, {
      json: { version: Number(version) },
      admin: true,
    }),
  removeLabel: (name, label) =>
    request("DELETE", `v1/admin/models/${enc(name)}/labels/${enc(label)}`, { admin: true }),
  setCanary: (name, version, weight, shadow) =>
    request("PUT", `v1/admin/models/${enc(name)}/canary`, {
      json: { version: Number(version), weight: Number(weight), shadow: Number(shadow) },
      admin: true,
    }),
  abortCanary: (name) => request("DELETE", `v1/admin/models/${enc(name)}/canary`, { admin: true }),
  promoteCanary: (name) => request("POST", `v1/admin/models/${enc(name)}/canary:promote`, { admin: true }),

  drift: (name, signal) => request("GET", `v1/models/${enc(name)}/drift`, { signal }),
  metrics: (signal) => request("GET", "metrics", { signal }),
  ready: (signal) => request("GET", "readyz", { signal }),
};
