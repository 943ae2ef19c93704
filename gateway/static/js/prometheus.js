// @ts-check
// A small reader for the Prometheus text exposition format (version 0.0.4): enough to sum counters and
// histogram parts by label. Lines: `# HELP`, `# TYPE`, and `name{label="value",...} number [timestamp]`.

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parse exposition text into [{name, labels, value}] (comments skipped). */
export function parsePrometheus(text) {
  const samples = [];
  for (const line of String(text).split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[2]) for (const [, k, v] of m[2].matchAll(LABEL)) labels[k] = v.replace(/\\(.)/g, "$1");
    const value = m[3] === "+Inf" ? Infinity : m[3] === "-Inf" ? -Infinity : Number(m[3]);
    samples.push({ name: m[1], labels, value });
  }
  return samples;
}

/** Sum the samples that `match(sample)` accepts, grouped by one label. */
export function sumBy(samples, label, match) {
  const out = new Map();
  for (const s of samples) {
    if (!match(s) || !(label in s.labels) || !Number.isFinite(s.value)) continue;
    const key = s.labels[label];
    out.set(key, (out.get(key) ?? 0) + s.value);
  }
  return out;
}
