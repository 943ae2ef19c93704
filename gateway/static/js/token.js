// @ts-check
// The admin token lives only in this tab: memory plus sessionStorage (cleared when the tab closes), never
// localStorage or a cookie. Listeners re-render the admin controls when it changes.

const KEY = "tfserve-console.admin-token";
const listeners = new Set();

function read() {
  try {
    return sessionStorage.getItem(KEY) ?? "";
  } catch {
    return "";
  }
}

let current = read();

export const token = {
  get: () => current,
  set(value) {
    current = value.trim();
    try {
      if (current) sessionStorage.setItem(KEY, current);
      else sessionStorage.removeItem(KEY);
    } catch {
      // storage disabled: memory only
    }
    for (const fn of listeners) fn(current);
  },
  onChange(fn) {
    listeners.add(fn);
  },
};
