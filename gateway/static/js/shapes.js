// Reads the gateway's JSON replies into the few shapes the console draws. Kept in one place so the views
// never guess at field names.

const STATES = {
  UNKNOWN: "unknown",
  START: "loading",
  LOADING: "loading",
  AVAILABLE: "available",
  UNLOADING: "unloading",
  END: "ended",
};

function versionNumber(v) {
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

/** One version: {version, state ("available"|"loading"|"failed"|...), error}. */
export function readVersion(raw) {
  const error =
    raw.error ?? raw.error_message ?? raw.status?.error_message ?? raw.status?.message ?? "";
  const code = raw.status?.error_code ?? raw.error_code ?? "OK";
  let state = STATES[String(raw.state ?? "UNKNOWN").toUpperCase()] ?? String(raw.state).toLowerCase();
  if ((error && code !== "OK") || String(raw.state).toLowerCase() === "failed") state = "failed";
  if (state === "ended" && error) state = "failed";
  return { version: versionNumber(raw.version), state, error: error || "" };
}

/** One model of GET /v1/models: {name, versions[], labels{label: version}, pinned, serving, error, ...}. */
export function readModel(raw) {
  const versions = (raw.versions ?? raw.model_version_status ?? []).map(readVersion);
  versions.sort((a, b) => (b.version ?? 0) - (a.version ?? 0));
  const labels = {};
  const rawLabels = raw.version_labels ?? raw.labels ?? {};
  if (rawLabels && !Array.isArray(rawLabels)) {
    for (const [label, v] of Object.entries(rawLabels)) labels[label] = versionNumber(v);
  }
  const pinned = versionNumber(raw.pinned ?? raw.pinned_version ?? raw.policy?.specific ?? null);
  const available = versions.filter((v) => v.state === "available").map((v) => v.version);
  const serving =
    versionNumber(raw.serving ?? raw.serving_version ?? raw.default_version ?? null) ??
    pinned ??
    (available.length ? Math.max(...available) : null);
  return {
    name: raw.name,
    task: raw.task ?? raw.contract?.task ?? null,
    server: raw.server ?? raw.address ?? raw.model_server ?? null,
    versions,
    labels,
    pinned,
    serving,
    policy: raw.policy ?? null,
    error: raw.error ?? raw.detail ?? null,
  };
}

export function readModelList(payload) {
  const list = Array.isArray(payload) ? payload : (payload?.models ?? []);
  return list.map(readModel).sort((a, b) => a.name.localeCompare(b.name));
}

/** GET /v1/models/{name}: the input contract and class labels. */
export function readDetail(payload) {
  const contract = payload?.contract ?? {};
  return {
    name: payload?.name,
    version: versionNumber(payload?.version ?? payload?.model_spec?.version),
    task: payload?.task ?? contract.task ?? null,
    classes: payload?.class_labels ?? payload?.classes ?? contract.labels ?? [],
    inputs: payload?.inputs ?? contract.inputs ?? {},
    signatures: payload?.signatures ?? {},
    contract,
  };
}

function readPairs(item) {
  // [{label, score}] | {classes: [{label, score}]} | {labels: [], scores: []} | [[label, score], ...]
  const list = item?.classes ?? item?.top_k ?? item?.predictions ?? item;
  if (Array.isArray(list)) {
    return list
      .map((c) => (Array.isArray(c) ? { label: c[0], score: c[1] } : { label: c.label, score: c.score }))
      .filter((c) => typeof c.score === "number");
  }
  if (item && Array.isArray(item.labels) && Array.isArray(item.scores)) {
    return item.labels.map((label, i) => ({ label, score: item.scores[i] }));
  }
  return [];
}

/** A classify reply: {model, version, items: [[{label, score}], ...]} - one list per input, best first. */
export function readClassification(payload) {
  const rows = payload?.results ?? payload?.predictions ?? payload?.classifications ?? [];
  return {
    model: payload?.model ?? payload?.model_spec?.name,
    version: versionNumber(payload?.version ?? payload?.model_spec?.version),
    items: rows.map((row) => readPairs(row).sort((a, b) => b.score - a.score)),
  };
}

/** A regress reply: {model, version, values: [number, ...]}. */
export function readRegression(payload) {
  const rows = payload?.results ?? payload?.predictions ?? payload?.values ?? payload?.outputs ?? [];
  const values = rows.map((r) => {
    if (typeof r === "number") return r;
    if (r && typeof r === "object") {
      const v = r.value ?? r.median_house_value ?? r.prediction ?? Object.values(r).find((x) => typeof x === "number");
      return typeof v === "number" ? v : NaN;
    }
    return NaN;
  });
  return {
    model: payload?.model ?? payload?.model_spec?.name,
    version: versionNumber(payload?.version ?? payload?.model_spec?.version),
    values,
    unit: payload?.unit ?? null,
  };
}
