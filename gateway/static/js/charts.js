// @ts-check
// Hand-written inline-SVG sparklines: one series, a filled area, the latest value and the window's maximum.

const NS = "http://www.w3.org/2000/svg";
const H = 64;
const PAD = 4;
const TOP = 14; // room for the "max" caption above the plot

function svg(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** Draw `values` (oldest first, nulls for gaps) into `host`, replacing what was there. */
export function sparkline(host, values, { capacity = 60, label = "", format = (v) => String(v) } = {}) {
  const W = Math.max(120, Math.round(host.clientWidth || 260)); // drawn at the host's size: no letterboxing
  const finite = values.filter((v) => Number.isFinite(v));
  const max = Math.max(1e-9, ...finite);
  const step = (W - 2 * PAD) / Math.max(1, capacity - 1);
  const offset = capacity - values.length;
  const x = (i) => PAD + (offset + i) * step;
  const y = (v) => H - PAD - (v / max) * (H - PAD - TOP);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "spark", role: "img",
    "aria-label": `${label}: ${finite.length ? format(finite[finite.length - 1]) : "no data yet"}` });
  root.append(svg("line", { x1: PAD, x2: W - PAD, y1: H - PAD, y2: H - PAD, class: "axis" }));
  let path = "";
  let area = "";
  let start = null;
  values.forEach((v, i) => {
    if (!Number.isFinite(v)) {
      if (start !== null) area += `L${x(i - 1)},${H - PAD}L${x(start)},${H - PAD}Z`;
      start = null;
      return;
    }
    const cmd = start === null ? "M" : "L";
    if (start === null) start = i;
    path += `${cmd}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
    area += `${cmd}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
  });
  if (start !== null) area += `L${x(values.length - 1)},${H - PAD}L${x(start)},${H - PAD}Z`;
  if (area) root.append(svg("path", { d: area, class: "area" }));
  if (path) root.append(svg("path", { d: path, class: "line" }));
  const maxText = svg("text", { x: PAD, y: 10, class: "max" });
  maxText.textContent = finite.length ? `max ${format(max)}` : "";
  root.append(maxText);
  host.replaceChildren(root);
}
