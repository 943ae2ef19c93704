// @ts-check
// Reads the gateway's JSON replies (gateway/schemas.py: ModelList, ModelDetail, ClassifyReply, RegressReply)
// into the few shapes the views draw, so the views never guess at field names.

/** @typedef {{version: number | null, state: string, error: string}} Version */
/**
 * @typedef {object} Model
 * @property {string} name
 * @property {Version[]} versions
 * @property {Record<string, number | null>} labels
 * @property {number | null} pinned
 * @property {number | null} serving
 * @property {string | null} error
 * @property {Replica[]} replicas what each replica serves
 * @property {boolean} converged every replica answers and serves the desired versions
 * @property {number | null} generation of the desired state (models.config)
 * @property {string | null} desiredError why the models.config was refused
 * @property {Canary | null} canary
 * @property {Array<Record<string, any>>} events recent version events, newest last
 */
/** @typedef {{id: string, reachable: boolean, versions: Version[], error: string | null, answers: number | null}} Replica */
/**
 * @typedef {object} Canary
 * @property {number | null} version
 * @property {number | null} stable
 * @property {number} weight
 * @property {number} shadow
 * @property {string} status
 * @property {string | null} reason
 * @property {Record<string, number> | null} window
 */
/** @typedef {ReturnType<typeof readDetail>} Detail */

// TF Serving's ModelVersionStatus states, as the console names them.
const STATES = {
  UNKNOWN: "unknown",
  START: "loading",
  LOADING: "loading",
  AVAILABLE: "available",
  UNLOADING: "unloading",
  END: "ended",
};

function versionNumber(v) {
  if (v === null || v === undefined || v === "") return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

/** One VersionStatus: {version, state: "available"|"loading"|"failed"|..., error}. A version that ended with
 * an error (or that the gateway reports as failed) is "failed". */
/** @param {any} raw @returns {Version} */
export function readVersion(raw) {
  const error = raw.error ?? raw.status?.error_message ?? "";
  let state = STATES[String(raw.state ?? "UNKNOWN").toUpperCase()] ?? String(raw.state).toLowerCase();
  if (error || state === "failed") state = "failed";
  return { version: versionNumber(raw.version), state, error: error || "" };
}

/** One ModelSummary of GET /v1/models. `serving` is the version that answers requests without a version or
 * label, as measured on the replicas (`answers`); when none was measured, the pinned one, else the highest
 * AVAILABLE one (TF Serving's "latest"). */
/** @param {any} raw @returns {Model} */
export function readModel(raw) {
  const versions = (raw.versions ?? []).map(readVersion).sort((a, b) => (b.version ?? 0) - (a.version ?? 0));
  /** @type {Record<string, number | null>} */
  const labels = {};
  for (const [label, v] of Object.entries(raw.labels ?? {})) labels[label] = versionNumber(v);
  const pinned = versionNumber(raw.pinned);
  const available = versions.filter((v) => v.state === "available").map((v) => v.version);
  const serving = versionNumber(raw.answers) ?? pinned ?? (available.length ? Math.max(...available) : null);
  const canary = raw.canary
    ? {
        version: versionNumber(raw.canary.version),
        stable: versionNumber(raw.canary.stable),
        weight: Number(raw.canary.weight ?? 0),
        shadow: Number(raw.canary.shadow ?? 0),
        status: String(raw.canary.status ?? "running"),
        reason: raw.canary.reason ?? null,
        window: raw.canary.window ?? null,
      }
    : null;
  return {
    name: raw.name,
    versions,
    labels,
    pinned,
    serving,
    error: raw.error ?? null,
    replicas: (raw.replicas ?? []).map((r) => ({
      id: String(r.id),
      reachable: Boolean(r.reachable),
      versions: (r.versions ?? []).map(readVersion),
      error: r.error ?? null,
      answers: versionNumber(r.answers),
    })),
    converged: Boolean(raw.converged),
    generation: versionNumber(raw.generation),
    desiredError: raw.desired_error ?? null,
    canary,
    events: Array.isArray(raw.events) ? raw.events : [],
  };
}

/** @param {any} payload @returns {Model[]} */
export function readModelList(payload) {
  return (payload?.models ?? []).map(readModel).sort((a, b) => a.name.localeCompare(b.name));
}

/** ModelDetail of GET /v1/models/{name}: task, class labels, the input contract, signatures. */
/** @param {any} payload */
export function readDetail(payload) {
  const contract = payload?.contract ?? {};
  return {
    name: payload?.model ?? contract.model,
    version: versionNumber(payload?.version),
    task: payload?.task ?? contract.task ?? null,
    classes: Array.isArray(payload?.labels) ? payload.labels : (contract.labels ?? []),
    inputs: payload?.inputs ?? contract.inputs ?? {},
    signatures: payload?.signatures ?? {},
    contract,
    source: payload?.contract_source ?? null,
  };
}

/** ClassifyReply: {model, version, items: [[{label, score}, ...] per input, best first]}. */
export function readClassification(payload) {
  return {
    model: payload?.model,
    version: versionNumber(payload?.version),
    items: (payload?.predictions ?? []).map((p) =>
      (p.top ?? [{ label: p.label, score: p.score }]).filter((c) => typeof c.score === "number"),
    ),
  };
}

/** RegressReply: {model, version, unit, values: [number per record]}. */
export function readRegression(payload) {
  return {
    model: payload?.model,
    version: versionNumber(payload?.version),
    unit: payload?.unit ?? null,
    values: (payload?.predictions ?? []).map((p) => (typeof p.value === "number" ? p.value : NaN)),
  };
}
