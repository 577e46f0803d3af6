// The consoles' core: one API client (the console's cookie session, its CSRF token, an Idempotency-Key on
// money-moving calls, problems turned into plain words), a tiny element builder, formatting per currency and
// locale, and the page table. Each page is a function that draws into <div id="view"> from the public API.
import { text } from "./messages.mjs";

export const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? null;
export const ctx = {
  console: meta("console"), page: meta("console-page"), csrf: meta("csrf-token"),
  account: meta("console-account"), currency: meta("console-currency"),
  locale: navigator.language || "en-US",
};

/** A fresh Idempotency-Key. */
export const newKey = () => (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || text("error.generic"));
    this.status = status;
    this.problem = problem || {};
  }
}

/** Call the API as the signed-in console user; throws ApiError with a message fit to show. */
export async function api(method, path, { body, query, key, raw } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = ctx.csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (key) headers["Idempotency-Key"] = key;
  let response;
  try {
    response = await fetch(url, { method, headers, credentials: "same-origin",
                                  body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, { detail: text("error.network") });
  }
  if (response.status === 401) throw new ApiError(401, { detail: text("error.signed_out") });
  if (!response.ok) {
    let problem = null;
    try { problem = await response.json(); } catch { /* not a problem document */ }
    throw new ApiError(response.status, problem);
  }
  if (raw) return response.text();
  return response.status === 204 ? null : response.json();
}

/** Every page of a cursor-paginated list (bounded). */
export async function all(path, query = {}, pages = 10) {
  const out = [];
  let cursor = null;
  for (let i = 0; i < pages; i++) {
    const page = await api("GET", path, { query: { ...query, cursor } });
    out.push(...page.data);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return out;
}

/** h("p", {class: "x", onclick: f}, "text", child): an element; strings become text nodes (never HTML). */
export function h(tag, props, ...children) {
  const svg = ["svg", "rect", "line", "text", "title", "g", "path", "polyline", "desc"].includes(tag);
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else if (!svg && k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const exponents = {};
/** The number of minor units in a major one for a currency (from Intl: JPY 0, USD 2, KWD 3). */
export function exponent(currency) {
  if (!(currency in exponents)) {
    exponents[currency] = new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
  }
  return exponents[currency];
}

/** 123450 USD -> "$1,234.50" in the browser's locale. */
export function money(minor, currency) {
  return new Intl.NumberFormat(ctx.locale, { style: "currency", currency }).format(minor / 10 ** exponent(currency));
}

/** "12.50" (major units, as typed) -> 1250 minor units, or null when it is not an amount. */
export function toMinor(textValue, currency) {
  const s = String(textValue).trim().replace(/,/g, "");
  if (!/^\d+(\.\d+)?$/.test(s)) return null;
  const [whole, frac = ""] = s.split(".");
  const exp = exponent(currency);
  if (frac.length > exp) return null;
  return Number(whole) * 10 ** exp + Number((frac + "0".repeat(exp)).slice(0, exp) || 0);
}

export function toMajor(minor, currency) {
  return (minor / 10 ** exponent(currency)).toFixed(exponent(currency));
}

export const when = (iso) => iso ? new Intl.DateTimeFormat(ctx.locale, { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso)) : "";
export const day = (iso) => iso ? new Intl.DateTimeFormat(ctx.locale, { dateStyle: "medium" }).format(new Date(iso)) : "";
export const count = (n) => new Intl.NumberFormat(ctx.locale).format(n);
export const pct = (x, digits = 1) => new Intl.NumberFormat(ctx.locale, { style: "percent", maximumFractionDigits: digits }).format(x);

/** Replace the page's content. */
export function render(...nodes) {
  const view = document.getElementById("view");
  view.replaceChildren(...nodes.flat());
}

/** A message that a screen reader announces: role=alert for errors, role=status otherwise. */
export function notice(message, kind = "status") {
  return h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
}

export const empty = (message) => h("p", { class: "empty" }, message);

/** A table: columns [{label, cell: row => node|string, num?: bool}], with a caption for screen readers. */
export function table(caption, columns, rows, { emptyText } = {}) {
  if (!rows.length) return empty(emptyText || text("empty.generic"));
  return h("div", { class: "table-wrap" }, h("table", {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c, i) => {
      const v = c.cell(r);
      return i === 0 ? h("th", { scope: "row", class: c.num ? "num" : null }, v) : h("td", { class: c.num ? "num" : null }, v);
    }))))));
}

/** Run an action from a button: busy while it runs, the outcome announced in `out`. */
export async function act(button, out, fn) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  out.replaceChildren();
  try {
    const message = await fn();
    if (message) out.replaceChildren(notice(message));
  } catch (e) {
    out.replaceChildren(notice(e.message || text("error.generic"), "error"));
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

export const accountPath = (rest = "") => `/v1/accounts/${encodeURIComponent(ctx.account)}${rest}`;

async function start() {
  const module = ctx.console === "admin" ? await import("./admin.mjs") : await import("./vendor.mjs");
  const draw = module.pages[ctx.page];
  try {
    await draw();
  } catch (e) {
    render(notice(e.message || text("error.generic"), "error"));
  }
  document.body.dataset.ready = "true";
}

start();
