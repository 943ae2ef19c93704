// @ts-check
// Tiny DOM helpers: build elements without innerHTML, so text from the API is never parsed as markup.

/**
 * The element with this id, checked to be a ``type`` (HTMLElement by default). The page ships every id the
 * scripts use, so a missing one is a bug: it throws at start-up, not later as "cannot read null".
 * @template {Element} [T=HTMLElement]
 * @param {string} id
 * @param {new (...args: any[]) => T} [type]
 * @returns {T}
 */
export function byId(id, type) {
  return checked(document.getElementById(id), `#${id}`, type);
}

/**
 * The first element under ``root`` matching ``selector``, checked as ``byId`` does.
 * @template {Element} [T=HTMLElement]
 * @param {ParentNode} root
 * @param {string} selector
 * @param {new (...args: any[]) => T} [type]
 * @returns {T}
 */
export function one(root, selector, type) {
  return checked(root.querySelector(selector), selector, type);
}

/**
 * Every element under ``root`` matching ``selector`` (each checked to be a ``type``).
 * @template {Element} [T=HTMLElement]
 * @param {ParentNode} root
 * @param {string} selector
 * @param {new (...args: any[]) => T} [type]
 * @returns {T[]}
 */
export function all(root, selector, type) {
  return [...root.querySelectorAll(selector)].map((el) => checked(el, selector, type));
}

/**
 * @template {Element} T
 * @param {Element | null} el
 * @param {string} what
 * @param {new (...args: any[]) => T} [type]
 * @returns {T}
 */
function checked(el, what, type) {
  const want = type ?? HTMLElement;
  if (!(el instanceof want)) throw new Error(`the page has no ${what} (${want.name})`);
  return /** @type {T} */ (el);
}

/** The message of anything thrown. @param {unknown} err @returns {string} */
export function messageOf(err) {
  return err instanceof Error ? err.message : String(err);
}

/**
 * An element with attributes (``class``, ``dataset``, ``on<event>`` handlers, booleans) and children.
 * @param {string} tag
 * @param {Record<string, any> | null} [attrs]
 * @param {...any} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "css") el.style.cssText = value; // CSSOM: allowed by the CSP, a style attribute is not
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

/** @param {Element} el @param {any[]} children */
function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/**
 * @template {Element} T
 * @param {T} el
 * @param {...any} children
 * @returns {T}
 */
export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function formatBytes(n) {
  if (typeof n !== "number" || !Number.isFinite(n)) return "—";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function formatNumber(x, digits = 3) {
  if (typeof x !== "number" || !Number.isFinite(x)) return String(x ?? "—");
  if (Math.abs(x) >= 1000) return x.toLocaleString("en-US", { maximumFractionDigits: 0 });
  return String(Number(x.toPrecision(digits)));
}

/** @param {HTMLElement} el @param {string} message */
export function showError(el, message) {
  if (!message) {
    el.hidden = true;
    el.textContent = "";
    return;
  }
  el.hidden = false;
  el.textContent = message;
}
