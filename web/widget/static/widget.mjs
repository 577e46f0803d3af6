// Commerce widget, API v1: custom elements <commerce-offer> and <commerce-suggestions> with Shadow DOM,
// and Commerce.mount(). No dependencies, no build step. Each element keeps its state in one object and
// renders it with plain functions; every network call goes through one client function (token,
// Idempotency-Key, retries, problems turned into messages). Strings live in messages.js.
import { messages as MESSAGES } from "./messages.js";

const MODULE_URL = new URL(import.meta.url);
const DEFAULT_API = new URL("../../../", MODULE_URL).href; // /widget/v1/<build>/widget.mjs -> the service root
const RETRY_DELAYS_MS = [300, 1000, 2500];
const TOKEN_WAIT_MS = 30000;

// ---------------------------------------------------------------- small helpers

/** Build a DOM node: h("button", {type: "button", onclick: f}, "Buy"). Text is never parsed as HTML. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Fill {name} placeholders of a message. */
export function format(template, vars) {
  return template.replace(/\{(\w+)\}/g, (all, name) => (vars && name in vars ? String(vars[name]) : all));
}

/** The fraction digits of a currency (USD 2, JPY 0, KWD 3), as Intl knows them. */
export function exponent(currency) {
  return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
}

/** Integer minor units as a localized amount ("$29.00", "29,00 €"). */
export function money(minor, currency, locale) {
  const digits = exponent(currency);
  return new Intl.NumberFormat(locale, { style: "currency", currency, minimumFractionDigits: digits })
    .format(minor / 10 ** digits);
}

/** Milliseconds as m:ss or h:mm:ss (never negative). */
export function clockText(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
}

/** Whole days from now until a time, rounded up. */
export function daysLeft(until, now = Date.now()) {
  return Math.max(0, Math.ceil((new Date(until).getTime() - now) / 86400000));
}

/** A fresh Idempotency-Key. */
export function newKey(prefix) {
  const random = globalThis.crypto && crypto.randomUUID ? crypto.randomUUID()
    : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  return `${prefix}-${random}`;
}

/** A feature key as words, when the service gives no name ("advanced_charts" -> "Advanced charts"). */
export function humanize(key) {
  const words = String(key).replace(/[_-]+/g, " ").trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A problem answer (RFC 9457) or a network failure, with the words to show. */
export class Problem extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || (status === 0 ? "network" : "error");
    this.body = body || {};
  }
}

/** Turn a problem into a sentence for the user. */
export function problemText(problem, t) {
  if (!(problem instanceof Problem)) return t("error.generic", { detail: String(problem && problem.message) });
  if (problem.status === 0) return t("error.network");
  if (problem.status === 401) return t("error.session");
  if (problem.status === 429) return t("error.rate_limited", { seconds: problem.body.retry_after_seconds || 60 });
  if (problem.status === 403) return t("error.forbidden", { detail: problem.message });
  return t("error.generic", { detail: problem.message });
}

// ---------------------------------------------------------------- the one client function

/**
 * Call the API. `auth` supplies the token and a way to refresh it. Reads and writes that carry an
 * Idempotency-Key are retried on network failures, 5xx and "still in flight" (409) with the same key,
 * so a double click or a dropped answer never does the work twice.
 */
export async function call(auth, method, path, { body, key, query } = {}) {
  const url = new URL(path.replace(/^\//, ""), auth.api);
  for (const [name, value] of Object.entries(query || {})) if (value !== undefined) url.searchParams.set(name, value);
  const retryable = method === "GET" || Boolean(key);
  let refreshed = false;
  for (let attempt = 0; ; attempt++) {
    const headers = { Accept: "application/json", Authorization: `Bearer ${auth.token()}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (key) headers["Idempotency-Key"] = key;
    let res;
    try {
      res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        mode: "cors", credentials: "omit", cache: "no-store" });
    } catch (err) {
      if (retryable && attempt < RETRY_DELAYS_MS.length) { await delay(RETRY_DELAYS_MS[attempt]); continue; }
      throw new Problem(0, { detail: String(err && err.message) });
    }
    if (res.status === 401 && !refreshed) {
      refreshed = true;
      if (await auth.refresh()) { attempt--; continue; }
    }
    const data = res.status === 204 ? null : await res.json().catch(() => null);
    if (res.ok) return data;
    const inFlight = res.status === 409 && data && data.idempotency_key;
    const again = (inFlight || res.status >= 500 || res.status === 429) && retryable;
    if (again && attempt < RETRY_DELAYS_MS.length) {
      const wait = Number(res.headers.get("Retry-After")) * 1000;
      await delay(res.status === 429 && wait > 0 ? Math.min(wait, 5000) : RETRY_DELAYS_MS[attempt]);
      continue;
    }
    throw new Problem(res.status, data);
  }
}

// ---------------------------------------------------------------- shared styles and config

let sheetPromise = null;
function styles() {
  sheetPromise ||= fetch(new URL("widget.css", MODULE_URL), { mode: "cors", credentials: "omit" })
    .then((r) => r.text())
    .then((text) => { const sheet = new CSSStyleSheet(); sheet.replaceSync(text); return sheet; })
    .catch(() => null);
  return sheetPromise;
}

let configPromise = null;
function widgetConfig() {
  configPromise ||= fetch(new URL("../config.json", MODULE_URL), { mode: "cors", credentials: "omit" })
    .then((r) => r.json()).catch(() => ({ card_mode: "off" }));
  return configPromise;
}

// ---------------------------------------------------------------- price words

/**
 * The tax part of a quote as [label, amount] rows and a note: net, tax per jurisdiction and rate, gross (what is
 * due, tax included). Tax not computed: no tax row and a note saying so; the total stays the quote's total.
 */
export function taxRows(quote, t, locale) {
  const cur = quote.currency;
  const tax = quote.tax;
  if (!tax || tax.status !== "computed") {
    return { rows: [[t("quote.total"), money(quote.total_minor, cur, locale)]], note: t("quote.tax.not_computed") };
  }
  const rows = [[t("quote.net"), money(quote.net_minor, cur, locale)]];
  for (const part of tax.breakdown) {
    if (part.taxability === "reverse_charge" || part.taxability === "customer_exempt") continue;
    rows.push([t("quote.tax.line", { jurisdiction: part.jurisdiction, rate: Number(part.rate) }),
      money(part.tax_minor, cur, locale)]);
  }
  if (rows.length === 1) rows.push([t("quote.tax"), money(quote.tax_minor, cur, locale)]);
  rows.push([t("quote.gross"), money(quote.gross_minor, cur, locale)]);
  const note = tax.reverse_charge ? t("quote.tax.reverse_charge") : tax.exempt ? t("quote.tax.exempt") : null;
  return { rows, note };
}

export function priceText(price, t, locale) {
  const amount = (minor) => money(minor, price.currency, locale);
  const interval = price.interval ? t(`interval.${price.interval}`) : "";
  if (price.model === "one_time") return t("price.one_time", { amount: amount(price.amount_minor) });
  if (price.model === "recurring") {
    return t(price.per_seat ? "price.recurring.seat" : "price.recurring", { amount: amount(price.amount_minor), interval });
  }
  const unit = price.unit || t("unit.default");
  const tiers = (price.tiers || []).map((tier, i, all) => {
    const each = amount(tier.unit_amount_minor);
    if (all.length === 1) return t("price.tier.flat", { amount: each, unit });
    if (tier.up_to === null || tier.up_to === undefined || i === all.length - 1) return t("price.tier.last", { amount: each, unit });
    return t("price.tier", { amount: each, unit, up_to: tier.up_to });
  }).join(", ");
  if (price.included_quantity) {
    return t("price.metered.included", { included: price.included_quantity, unit, interval, tiers });
  }
  return t("price.metered", { tiers });
}

// The modules a purchase must add first, each with its price when the offers list it ("AI Insights ($19.00 per
// seat per month)"), so the offer's price is not read as the whole of what the quote will ask.
export function requirementsText(modules, offers, currency, t, locale) {
  return modules.map((m) => {
    const offer = offers.find((o) => o.module === m);
    const name = (offer && offer.name) || m;
    const price = offer && (offer.prices || []).find((p) => p.current !== false && p.currency === currency);
    return price ? t("offer.requires.priced", { module: name, price: priceText(price, t, locale) }) : name;
  }).join(", ");
}

// What a suggestion costs in one line: a trial is free for its days (its quote is what buying it would cost,
// not what starting the trial does); else what is due now, and that usage is billed later when a line is
// metered (a metered module alone costs nothing now: "$0.00 due now" would read as free).
export function suggestionPriceText(item, t, locale) {
  if (item.kind === "trial" && item.trial_days) return t("offer.trial", { days: item.trial_days });
  const quote = item.quote;
  if (!quote) return null;
  const metered = (quote.lines || []).some((line) => line.model === "metered");
  if (metered && quote.total_minor === 0) return t("quote.line.metered");
  const amount = money(quote.total_minor, quote.currency, locale);
  return t(metered ? "suggestion.price.metered" : "suggestion.price", { amount });
}

function lineText(line, currency, t, locale) {
  const amount = (minor) => money(minor, currency, locale);
  if (line.model === "metered") return t("quote.line.metered");
  if (line.model === "one_time") return t("quote.line.once", { amount: amount(line.prorated_minor) });
  if (line.prorated_minor !== line.full_period_minor && line.period_end) {
    const until = new Date(line.period_end).toLocaleDateString(locale, { month: "short", day: "numeric", timeZone: "UTC" });
    return t("quote.line.prorated", { until, amount: amount(line.prorated_minor), full: amount(line.full_period_minor) });
  }
  return t("quote.line.full", { amount: amount(line.prorated_minor), interval: t(`interval.${line.interval || "month"}`) });
}

// ---------------------------------------------------------------- the base element

let uid = 0;

class CommerceElement extends HTMLElement {
  static get observedAttributes() { return ["token", "feature", "surface", "lang"]; }

  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    this.options = {};
    this.ids = `c${++uid}`;
    this.state = { step: "loading" };
    this._token = null;
    this._tokenWaiters = [];
    this._timers = new Set();
    this._started = false;
    this.auth = {
      api: DEFAULT_API,
      token: () => this.token,
      refresh: () => this.refreshToken(),
    };
  }

  get token() { return this._token ?? this.getAttribute("token") ?? ""; }
  set token(value) {
    this._token = value;
    const waiters = this._tokenWaiters.splice(0);
    waiters.forEach((resolve) => resolve(true));
  }

  /** Messages of the page's language (or English), with the vendor's overrides. */
  t(key, vars) {
    const lang = (this.getAttribute("lang") || document.documentElement.lang || "en").slice(0, 2);
    const table = MESSAGES[lang] || MESSAGES.en;
    const text = (this.options.messages && this.options.messages[key]) || table[key] || MESSAGES.en[key] || key;
    return format(text, vars);
  }

  get locale() { return this.getAttribute("lang") || document.documentElement.lang || navigator.language || "en"; }

  attributeChangedCallback(name, before, after) {
    if (name === "token" && after && after !== before) this.token = after;
    else if (this._started && before !== after && (name === "feature" || name === "surface")) this.restart();
  }

  async connectedCallback() {
    if (this._started) return;
    this._started = true;
    if (this.getAttribute("api")) this.auth.api = new URL(this.getAttribute("api"), location.href).href;
    const sheet = await styles();
    if (sheet) this.shadowRoot.adoptedStyleSheets = [sheet];
    this.live = h("div", { class: "visually-hidden", role: "status", "aria-live": "polite" });
    this.main = h("div", { class: "main", part: "main" });
    this.dialog = new CheckoutDialog(this);
    this.shadowRoot.replaceChildren(this.main, this.dialog.node, this.live);
    this.restart();
  }

  disconnectedCallback() { this.stopTimers(); }

  restart() {
    this.stopTimers();
    this.setState({ step: "loading" });
    this.start().catch((err) => this.setState({ step: "error", error: problemText(err, this.t.bind(this)) }));
  }

  stopTimers() { this._timers.forEach((id) => clearInterval(id)); this._timers.clear(); }

  every(ms, fn) { const id = setInterval(fn, ms); this._timers.add(id); return id; }

  setState(patch, { focus = true } = {}) {
    const stepChanged = patch.step && patch.step !== this.state.step;
    this.state = { ...this.state, ...patch };
    this.main.replaceChildren(this.render());
    if (stepChanged && focus && this._interacted) {
      const target = this.main.querySelector("[data-autofocus]") || this.main.querySelector("h2");
      if (target) target.focus();
    }
  }

  announce(text) { this.live.textContent = text; }

  /** Ask the host page for a new token (onTokenExpired, else the commerce:token-expired event). */
  async refreshToken() {
    if (typeof this.options.onTokenExpired === "function") {
      const fresh = await this.options.onTokenExpired();
      if (fresh) { this.token = fresh; return true; }
      return false;
    }
    const changed = new Promise((resolve) => {
      this._tokenWaiters.push(resolve);
      setTimeout(() => resolve(false), TOKEN_WAIT_MS);
    });
    this.emit("commerce:token-expired", {});
    return changed;
  }

  /** Tell the host page: a bubbling, composed DOM event and the matching mount() callback. */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
    const callback = { "commerce:access-granted": "onAccess", "commerce:approval-requested": "onApprovalRequested",
      "commerce:dismissed": "onDismissed" }[type];
    if (callback && typeof this.options[callback] === "function") this.options[callback](detail);
  }

  api(method, path, opts) { return call(this.auth, method, path, opts); }

  /** The light-DOM node Stripe Elements mounts its card field into (slotted into the dialog's card form). */
  cardSlot() {
    let slot = this.querySelector(':scope > [slot="commerce-card"]');
    if (!slot) { slot = document.createElement("div"); slot.slot = "commerce-card"; this.append(slot); }
    return slot;
  }

  async me() {
    this._me ||= this.api("GET", "/v1/me");
    try { return await this._me; } catch (err) { this._me = null; throw err; }
  }

  section(titleText, ...children) {
    const id = `${this.ids}-title`;
    return h("section", { "aria-labelledby": id, class: `card step-${this.state.step}`, part: "card" },
      h("h2", { id, tabindex: "-1" }, titleText), ...children);
  }

  errorView() {
    return this.section(this.t("error.generic", { detail: "" }).replace(/:\s*$/, ""),
      h("p", { class: "error", role: "alert" }, this.state.error),
      h("div", { class: "actions" }, h("button", { type: "button", onclick: () => this.restart() }, this.t("action.retry"))));
  }
}

// ---------------------------------------------------------------- checkout dialog (quote, confirm, pay)

class CheckoutDialog {
  constructor(owner) {
    this.owner = owner;
    this.t = owner.t.bind(owner);
    this.titleId = `${owner.ids}-dialog-title`;
    this.node = h("dialog", { class: "checkout", part: "dialog", "aria-labelledby": this.titleId,
      onclose: () => this.closed() });
    this.state = {};
    this.countdown = null;
  }

  /** Quote the module for the user and show the confirm step. */
  async open({ module, feature, name, source }) {
    this.state = { step: "quoting", module, feature, name, source };
    this.render();
    if (!this.node.open) this.node.showModal();
    await this.quote();
  }

  async quote() {
    const { module } = this.state;
    try {
      const me = await this.owner.me();
      const quote = await this.owner.api("POST", "/v1/quotes", { body: { user: me.user, items: [{ module }], include_requirements: true } });
      // One key per quote: a double click, a retry after a dropped answer, or a token refresh replays it.
      this.set({ step: "quote", quote, orderKey: newKey(`order-${quote.id}`), reason: "" });
      this.startCountdown();
    } catch (err) {
      this.set({ step: "error", error: problemText(err, this.t) });
    }
  }

  set(patch) { this.state = { ...this.state, ...patch }; this.render(); }

  close() { if (this.node.open) this.node.close(); }

  closed() {
    this.stopCountdown();
    if (this._challenge) this._challenge(false);
    const { step, module, feature } = this.state;
    if (step === "quote" || step === "error" || step === "quoting") {
      this.owner.emit("commerce:dismissed", { module, feature, where: "checkout" });
    }
    this.state = {};
    this.owner.checkoutClosed?.(step);
  }

  startCountdown() {
    this.stopCountdown();
    const tick = () => {
      const node = this.node.querySelector("[data-countdown]");
      const left = new Date(this.state.quote.expires_at).getTime() - Date.now();
      if (left <= 0) { this.stopCountdown(); this.set({ step: "expired" }); return; }
      if (node) node.textContent = this.t("quote.expires", { time: clockText(left) });
    };
    this.countdown = setInterval(tick, 1000);
    tick();
  }

  stopCountdown() { if (this.countdown) clearInterval(this.countdown); this.countdown = null; }

  async confirm(button) {
    if (this.state.placing) return; // a double click lands here; the key makes a retry harmless anyway
    this.state.placing = true;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    const { quote, orderKey, reason } = this.state;
    try {
      const body = { quote_id: quote.id };
      if (reason && reason.trim()) body.reason = reason.trim();
      const order = await this.owner.api("POST", "/v1/orders", { body, key: orderKey });
      this.stopCountdown();
      await this.afterOrder(order);
    } catch (err) {
      this.set({ step: "error", error: problemText(err, this.t) });
    } finally {
      this.state.placing = false;
    }
  }

  async afterOrder(order) {
    const { module, feature, name } = this.state;
    if (order.state === "fulfilled" || order.state === "paid") {
      this.set({ step: "done", order });
      this.owner.granted({ module, feature, name, order_id: order.id, source: "order" });
    } else if (order.state === "pending_approval" || order.state === "approved") {
      this.set({ step: "requested", order });
      this.owner.emit("commerce:approval-requested", { module, feature, order_id: order.id, approval_id: order.approval_id });
      this.owner.pending?.(order);
    } else if (order.state === "payment_pending" || order.state === "requires_action") {
      this.set({ step: "pay", order, payKey: newKey(`pay-${order.id}`) });
      await this.loadCards();
      if (order.state === "requires_action") await this.authenticate(order);
    } else {
      this.set({ step: "error", error: this.t("order.failed", { reason: order.failure_reason || order.state }) });
    }
  }

  // ------------------------------------------------------------ card route

  async loadCards() {
    const me = await this.owner.me();
    try {
      const [cards, config] = await Promise.all([
        this.owner.api("GET", "/v1/payment-methods", { query: { user: me.user } }), widgetConfig()]);
      const list = cards.data || [];
      const chosen = (list.find((c) => c.id === this.state.chosen) || list.find((c) => c.is_default) || list[0] || {}).id || null;
      this.set({ cards: list, chosen, config, adding: list.length === 0 });
    } catch (err) {
      this.set({ step: "error", error: problemText(err, this.t) });
    }
  }

  /** Stripe.js with the publishable key, or the local fake's test-card client; null when cards cannot be added. */
  cardClient() {
    const { config } = this.state;
    if (!config) return null;
    if (config.card_mode === "fake") {
      this._cards ||= new TestCardClient(config.stripe_fake_url, config.stripe_publishable_key, (u, o, i) => this.showChallenge(u, o, i));
    } else if (config.card_mode === "stripe") {
      this._cards ||= new StripeJsClient(config.stripe_publishable_key, () => this.owner.cardSlot());
    }
    return this._cards || null;
  }

  async pay(button) {
    if (this.state.paying) return;
    this.state.paying = true;
    button.disabled = true;
    const { order, chosen, payKey } = this.state;
    try {
      const paid = await this.owner.api("POST", `/v1/orders/${order.id}/pay`, { body: chosen ? { payment_method_id: chosen } : {}, key: payKey });
      if (paid.state === "requires_action") { this.state.order = paid; await this.authenticate(paid); return; }
      if (paid.state === "failed") {
        // A decline is final for this attempt: the next try is a new payment with a new key.
        this.set({ order: paid, payKey: newKey(`pay-${order.id}`), declined: paid.failure_reason || (paid.payment && paid.payment.failure_reason) });
        return;
      }
      await this.afterOrder(paid);
    } catch (err) {
      this.set({ declined: problemText(err, this.t), payKey: newKey(`pay-${order.id}`) });
    } finally {
      this.state.paying = false;
    }
  }

  async saveCard(form) {
    const client = this.cardClient();
    let card = null;
    if (client instanceof TestCardClient) {
      const number = form.elements.number.value.replace(/[\s-]+/g, "");
      const expiry = /^(\d{1,2})\s*\/\s*(\d{2,4})$/.exec(form.elements.expiry.value.trim());
      const cvc = form.elements.cvc.value.trim();
      if (!/^\d{12,19}$/.test(number) || !expiry || !/^\d{3,4}$/.test(cvc)) { this.set({ cardError: this.t("card.invalid") }); return; }
      card = { number, exp_month: expiry[1], exp_year: expiry[2], cvc };
    }
    this.set({ savingCard: true, cardError: null });
    try {
      const me = await this.owner.me();
      const setup = await this.owner.api("POST", "/v1/payment-methods/setup", { query: { user: me.user }, key: newKey("setup") });
      const seti = await client.saveCard(setup.client_secret, card);
      // The service lists the customer's cards from Stripe; the new one shows up once Stripe has attached it.
      await waitFor(async () => {
        const cards = await this.owner.api("GET", "/v1/payment-methods", { query: { user: me.user } });
        return (cards.data || []).some((c) => c.id === seti.payment_method);
      });
      this.state.chosen = seti.payment_method;
      this.set({ step: "pay", savingCard: false, adding: false, declined: null });
      await this.loadCards();
      this.announce(this.t("card.saved"));
    } catch (err) {
      this.set({ step: "pay", savingCard: false, adding: true, cardError: cardErrorText(err, this.t) });
    }
  }

  announce(text) { this.owner.announce(text); }

  /** 3-D Secure on-session: confirm the order's PaymentIntent in the browser, then wait for Stripe's webhook. */
  async authenticate(order) {
    const client = this.cardClient();
    if (!client) { this.set({ step: "pay", declined: this.t("pay.unavailable") }); return; }
    this.set({ step: "paying" });
    let passed = true;
    try {
      const intent = await client.confirmPayment(order.payment.client_secret, this.state.chosen);
      passed = intent && ["succeeded", "processing"].includes(intent.status);
    } catch (err) {
      passed = false;
      if (!(err instanceof CardError) || err.code !== "canceled") this.state.declined = cardErrorText(err, this.t);
    }
    this.set({ step: "paying" });
    try {
      // The order completes (or fails) on Stripe's webhook; the answer in the browser was only a hint.
      const done = await waitFor(async () => {
        const o = await this.owner.api("GET", `/v1/orders/${order.id}`);
        return ["fulfilled", "paid", "failed"].includes(o.state) || (!passed && o.state !== "payment_pending") ? o : null;
      });
      if (done.state === "fulfilled" || done.state === "paid") { await this.afterOrder(done); return; }
      this.set({ step: "pay", order: done, payKey: newKey(`pay-${order.id}`),
        declined: this.state.declined || done.failure_reason || this.t("challenge.failed") });
    } catch (err) {
      this.set({ step: "error", error: cardErrorText(err, this.t) });
    }
  }

  /** Show the bank's (here: the fake's) challenge page in the dialog until it reports back or the user leaves. */
  showChallenge(url, origin, intentId) {
    return new Promise((resolve, reject) => {
      const listener = (e) => {
        if (e.origin !== origin || !e.data || e.data.type !== "stripe-fake:3ds-complete" || e.data.intent !== intentId) return;
        finish(true);
      };
      const finish = (answered) => {
        window.removeEventListener("message", listener);
        this._challenge = null;
        if (answered) resolve(true); else reject(new CardError("canceled"));
      };
      window.addEventListener("message", listener);
      this._challenge = finish;
      this.set({ step: "challenge", challengeUrl: url });
    });
  }

  // ------------------------------------------------------------ rendering

  render() {
    const s = this.state;
    const t = this.t;
    const title = (text) => h("h2", { id: this.titleId, tabindex: "-1", "data-autofocus": true }, text);
    const closeButton = h("button", { type: "button", class: "icon-close", "aria-label": t("dialog.close"), onclick: () => this.close() }, "×");
    let body;
    switch (s.step) {
      case "quoting": body = [title(t("quote.title")), h("p", { role: "status" }, t("quote.loading"))]; break;
      case "quote": body = this.quoteView(title); break;
      case "expired": body = [title(t("quote.title")), h("p", { role: "alert" }, t("quote.expired")),
        h("div", { class: "actions" }, h("button", { type: "button", class: "primary", onclick: () => this.set({ step: "quoting" }) || this.quote() }, t("action.requote")),
          h("button", { type: "button", onclick: () => this.close() }, t("action.cancel")))]; break;
      case "done": body = [title(t("order.done.title", { module: s.name || s.module })),
        h("p", {}, t("order.done", { feature: s.name || s.feature || s.module })),
        h("div", { class: "actions" }, h("button", { type: "button", class: "primary", onclick: () => this.close() }, t("action.continue")))]; break;
      case "requested": body = [title(t("order.requested.title")), h("p", {}, t("order.requested")),
        h("div", { class: "actions" }, h("button", { type: "button", class: "primary", onclick: () => this.close() }, t("action.close")))]; break;
      case "pay": body = this.payView(title); break;
      case "challenge": body = this.challengeView(title); break;
      case "paying": body = [title(t("pay.title")), h("p", { role: "status" }, t("pay.paying"))]; break;
      case "error": body = [title(t("quote.title")), h("p", { class: "error", role: "alert" }, s.error),
        h("div", { class: "actions" }, h("button", { type: "button", onclick: () => this.close() }, t("action.close")))]; break;
      default: body = [];
    }
    const focused = this.node.contains(this.node.getRootNode().activeElement) ? this.node.getRootNode().activeElement : null;
    const focusKey = focused && focused.getAttribute("data-key");
    this.node.replaceChildren(closeButton, h("div", { class: "dialog-body" }, body));
    const again = focusKey && this.node.querySelector(`[data-key="${focusKey}"]`);
    if (again) again.focus();
    else if (this.node.open) { const target = this.node.querySelector("[data-autofocus]"); if (target) target.focus(); }
  }

  quoteView(title) {
    const t = this.t;
    const { quote } = this.state;
    const loc = this.owner.locale;
    const { decision } = quote;
    const approval = decision.outcome === "approval_required";
    const blocked = decision.outcome === "blocked";
    const cur = quote.currency;
    const rows = quote.lines.map((line) => h("li", {},
      h("span", { class: "line-name" }, line.name), " ", h("span", { class: "muted" }, lineText(line, cur, t, loc))));
    const recurring = quote.lines.filter((l) => l.model === "recurring");
    const renew = recurring.length === 1
      ? h("p", { class: "muted" }, t("quote.renews", { amount: money(recurring[0].full_period_minor, cur, loc), interval: t(`interval.${recurring[0].interval}`) }))
      : null;
    const taxed = taxRows(quote, t, loc);
    const dl = h("dl", { class: "facts" },
      quote.discount_minor ? [h("dt", {}, t("quote.discount")), h("dd", {}, `−${money(quote.discount_minor, cur, loc)}`)] : null,
      taxed.rows.map(([label, value], i) => [h("dt", {}, label),
        h("dd", i === taxed.rows.length - 1 ? { class: "total" } : {}, value)]),
      taxed.note ? [h("dt", {}, t("quote.tax")), h("dd", { class: "muted" }, taxed.note)] : null,
      decision.route ? [h("dt", {}, t("quote.who_pays")), h("dd", {}, t(`quote.route.${decision.route}`))] : null,
      blocked ? null : [h("dt", {}, t("quote.approval")), h("dd", {}, t(approval ? "quote.approval.needed" : "quote.approval.none"))]);
    const reasons = h("ul", { class: "reasons" }, decision.reasons.map((r) => h("li", {}, r)));
    if (blocked) {
      return [title(t("quote.title.blocked")), reasons,
        h("div", { class: "actions" }, h("button", { type: "button", class: "primary", onclick: () => this.close() }, t("action.close")))];
    }
    const reasonId = `${this.owner.ids}-reason`;
    const reasonField = approval ? h("div", { class: "field" },
      h("label", { for: reasonId }, t("quote.reason.label")),
      h("textarea", { id: reasonId, rows: 3, maxlength: 2000, "data-key": "reason", value: this.state.reason,
        oninput: (e) => { this.state.reason = e.target.value; } })) : null;
    return [
      title(t(approval ? "quote.title.approval" : "quote.title")),
      h("ul", { class: "lines" }, rows), renew, dl, reasons,
      h("p", { class: "countdown", "data-countdown": true }, ""),
      reasonField,
      h("div", { class: "actions" },
        h("button", { type: "button", class: "primary", "data-key": "confirm", onclick: (e) => this.confirm(e.currentTarget) },
          t(approval ? "action.send_request" : "action.confirm")),
        h("button", { type: "button", "data-key": "cancel", onclick: () => this.close() }, t("action.cancel"))),
    ];
  }

  payView(title) {
    const t = this.t;
    const s = this.state;
    const loc = this.owner.locale;
    const amount = money(s.order.total_minor, s.order.currency, loc);
    const parts = [title(t("pay.title"))];
    if (s.declined) parts.push(h("div", { class: "error", role: "alert" }, h("p", {}, t("pay.declined", { reason: s.declined })), h("p", {}, t("pay.declined.next"))));
    if (!s.cards) { parts.push(h("p", { role: "status" }, t("loading"))); return parts; }
    if (s.cards.length) {
      const name = `${this.owner.ids}-card`;
      parts.push(h("fieldset", { class: "cards" }, h("legend", {}, t("pay.saved")),
        s.cards.map((c) => h("label", { class: "radio" },
          h("input", { type: "radio", name, value: c.id, checked: c.id === s.chosen, "data-key": `card-${c.id}`,
            onchange: () => { this.state.chosen = c.id; } }),
          " ", t("pay.card", { brand: c.brand[0].toUpperCase() + c.brand.slice(1), last4: c.last4, month: c.exp_month, year: c.exp_year }),
          c.is_default ? ` ${t("pay.default")}` : ""))));
    } else {
      parts.push(h("p", {}, t("pay.none")));
    }
    if (s.adding) parts.push(this.cardForm());
    else parts.push(h("div", { class: "actions" },
      s.cards.length ? h("button", { type: "button", class: "primary", "data-key": "pay", onclick: (e) => this.pay(e.currentTarget) }, t("action.pay", { amount })) : null,
      h("button", { type: "button", "data-key": "add-card", onclick: () => this.set({ adding: true, cardError: null }) }, t(s.cards.length ? "action.other_card" : "action.add_card")),
      h("button", { type: "button", onclick: () => this.close() }, t("action.cancel"))));
    return parts;
  }

  cardForm() {
    const t = this.t;
    const s = this.state;
    const client = this.cardClient();
    if (!client) {
      return [h("p", { class: "error", role: "alert" }, t("pay.unavailable")),
        h("div", { class: "actions" }, h("button", { type: "button", onclick: () => this.close() }, t("action.close")))];
    }
    const id = (n) => `${this.owner.ids}-${n}`;
    const field = (name, label, attrs) => h("div", { class: "field" }, h("label", { for: id(name) }, label),
      h("input", { id: id(name), name, "data-key": name, required: true, ...attrs }));
    const inputs = client instanceof TestCardClient ? [
      field("number", t("card.number"), { inputmode: "numeric", autocomplete: "cc-number", "aria-describedby": id("test-cards") }),
      h("div", { class: "row" }, field("expiry", t("card.expiry"), { autocomplete: "cc-exp", placeholder: "12/34" }),
        field("cvc", t("card.cvc"), { inputmode: "numeric", autocomplete: "cc-csc" })),
      h("div", { id: id("test-cards"), class: "muted small test-cards" }, h("p", {}, t("card.test_cards")),
        h("ul", {}, ["card.test.success", "card.test.3ds", "card.test.decline", "card.test.funds"].map((k) => h("li", {}, t(k)))))]
      : [h("div", { class: "field" }, h("p", { class: "label" }, t("card.details")), h("div", { class: "stripe-card" }, h("slot", { name: "commerce-card" })))];
    const form = h("form", { class: "card-form", "aria-labelledby": id("card-title"), novalidate: true,
      onsubmit: (e) => { e.preventDefault(); this.saveCard(e.currentTarget); } },
      h("h3", { id: id("card-title") }, t("card.title")),
      inputs,
      s.cardError ? h("p", { class: "error", role: "alert" }, s.cardError) : null,
      s.savingCard ? h("p", { role: "status" }, t("card.saving")) : null,
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", disabled: Boolean(s.savingCard) }, t("action.save_card")),
        h("button", { type: "button", onclick: () => this.set({ adding: false, cardError: null }) }, t("action.cancel"))));
    if (client instanceof StripeJsClient) client.mount().catch(() => this.set({ cardError: t("card.elements_error") }));
    return form;
  }

  challengeView(title) {
    const t = this.t;
    const s = this.state;
    return [title(t("challenge.title")), h("p", {}, t("challenge.text")),
      h("iframe", { class: "challenge", src: s.challengeUrl, title: t("challenge.frame") }),
      h("div", { class: "actions" }, h("button", { type: "button", onclick: () => this.close() }, t("action.cancel")))];
  }
}

/** Poll a check (never faster than 250 ms) until it returns something truthy or time runs out. */
async function waitFor(check, { timeoutMs = 20000, everyMs = 250 } = {}) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > until) throw new CardError("settle_timeout");
    await delay(everyMs);
  }
}

// ---------------------------------------------------------------- adding cards and 3-D Secure

/** A card problem with Stripe's code (decline_code first), shown through the messages file. */
export class CardError extends Error {
  constructor(code, message) { super(message || code); this.code = code || "card_error"; }
}

/** Stripe's answer about a card, in plain words with what to do next. */
export function cardErrorText(err, t) {
  if (err instanceof Problem) return problemText(err, t);
  const code = err instanceof CardError ? err.code : "card_error";
  const known = t(`card.error.${code}`);
  return known === `card.error.${code}` ? t("card.error.other", { detail: err.message }) : known;
}

const intentOf = (clientSecret) => String(clientSecret).split("_secret_")[0];

/**
 * The local Stripe fake (demo and tests), called as Stripe.js calls Stripe: form posts with the publishable key
 * and the intent's client secret, straight from the browser to the fake's own address (it answers CORS).
 */
export class TestCardClient {
  constructor(base, publishableKey, showChallenge) {
    this.base = `${String(base).replace(/\/+$/, "")}/`;
    this.key = publishableKey;
    this.showChallenge = showChallenge;
  }

  async request(method, path, fields) {
    const url = new URL(path, this.base);
    const form = new URLSearchParams({ key: this.key, ...fields });
    let res;
    try {
      if (method === "GET") { url.search = form.toString(); res = await fetch(url, { mode: "cors", credentials: "omit", cache: "no-store" }); }
      else res = await fetch(url, { method, mode: "cors", credentials: "omit", body: form });
    } catch {
      throw new CardError("network");
    }
    const data = await res.json().catch(() => ({}));
    if (!res.ok) { const e = data.error || {}; throw new CardError(e.decline_code || e.code || "card_error", e.message); }
    return data;
  }

  /** createPaymentMethod + confirmCardSetup (with its challenge); resolves to the succeeded SetupIntent. */
  async saveCard(clientSecret, card) {
    const pm = await this.request("POST", "v1/payment_methods", { type: "card", "card[number]": card.number,
      "card[exp_month]": card.exp_month, "card[exp_year]": card.exp_year, "card[cvc]": card.cvc });
    const id = intentOf(clientSecret);
    let seti = await this.request("POST", `v1/setup_intents/${id}/confirm`, { client_secret: clientSecret, payment_method: pm.id });
    seti = await this.nextAction(seti, "setup_intents", clientSecret);
    if (seti.status !== "succeeded") {
      const e = seti.last_setup_error || {};
      throw new CardError(e.decline_code || e.code || "authentication_failed", e.message);
    }
    return seti;
  }

  /** confirmCardPayment on-session, or handleNextAction when the intent already waits for the card holder. */
  async confirmPayment(clientSecret, paymentMethod) {
    const id = intentOf(clientSecret);
    let pi = await this.request("GET", `v1/payment_intents/${id}`, { client_secret: clientSecret });
    if (["requires_payment_method", "requires_confirmation"].includes(pi.status)) {
      const fields = { client_secret: clientSecret };
      if (paymentMethod) fields.payment_method = paymentMethod;
      pi = await this.request("POST", `v1/payment_intents/${id}/confirm`, fields);
    }
    return this.nextAction(pi, "payment_intents", clientSecret);
  }

  async nextAction(intent, kind, clientSecret) {
    if (intent.status !== "requires_action") return intent;
    const url = intent.next_action && intent.next_action.use_stripe_sdk && intent.next_action.use_stripe_sdk.stripe_js;
    await this.showChallenge(url, new URL(this.base).origin, intent.id);
    return this.request("GET", `v1/${kind}/${intent.id}`, { client_secret: clientSecret });
  }
}

const STRIPE_JS = "https://js.stripe.com/v3/";
let stripeJsPromise = null;

/** Stripe.js, added to the page once and only when a publishable key is configured (card_mode "stripe"). */
function loadStripeJs() {
  stripeJsPromise ||= new Promise((resolve, reject) => {
    if (globalThis.Stripe) { resolve(globalThis.Stripe); return; }
    const script = document.createElement("script");
    script.src = STRIPE_JS;
    script.async = true;
    script.onload = () => (globalThis.Stripe ? resolve(globalThis.Stripe) : reject(new CardError("elements_unavailable")));
    script.onerror = () => { stripeJsPromise = null; reject(new CardError("elements_unavailable")); };
    document.head.append(script);
  });
  return stripeJsPromise;
}

/** Stripe Elements: the card field lives in the host page's DOM (slotted into the dialog), Stripe's iframe in it. */
export class StripeJsClient {
  constructor(publishableKey, slot) { this.key = publishableKey; this.slot = slot; this.card = null; }

  async stripe() { const Stripe = await loadStripeJs(); this._stripe ||= Stripe(this.key); return this._stripe; }

  async mount() {
    const stripe = await this.stripe();
    if (this.card) return;
    this.card = stripe.elements().create("card");
    this.card.mount(this.slot());
  }

  async saveCard(clientSecret) {
    const stripe = await this.stripe();
    const r = await stripe.confirmCardSetup(clientSecret, { payment_method: { card: this.card } });
    if (r.error) throw new CardError(r.error.decline_code || r.error.code, r.error.message);
    return r.setupIntent;
  }

  async confirmPayment(clientSecret, paymentMethod) {
    const stripe = await this.stripe();
    const { paymentIntent } = await stripe.retrievePaymentIntent(clientSecret);
    const r = paymentIntent && paymentIntent.status === "requires_action"
      ? await stripe.handleNextAction({ clientSecret })
      : await stripe.confirmCardPayment(clientSecret, paymentMethod ? { payment_method: paymentMethod } : undefined);
    if (r.error) throw new CardError(r.error.decline_code || r.error.code, r.error.message);
    return r.paymentIntent;
  }
}

// ---------------------------------------------------------------- <commerce-offer feature="...">

export class CommerceOffer extends CommerceElement {
  async start() {
    const feature = this.getAttribute("feature") || this.options.feature;
    if (!feature) throw new Error("<commerce-offer> needs a feature attribute");
    const me = await this.me();
    const check = await this.api("GET", "/v1/entitlements/check", { query: { user: me.user, feature } });
    const featureName = (check.offer && check.offer.name) || humanize(feature);
    if (check.allowed) { this.setState({ step: "granted", feature, check, featureName }); return; }
    if (!check.offer || check.offer.effect === "hidden") { this.setState({ step: "unavailable", feature, check, featureName }); return; }
    const offers = await this.api("GET", "/v1/offers", { query: { user: me.user } });
    const offer = (offers.data || []).find((o) => o.module === check.offer.module);
    const unlock = offer && offer.unlocks.find((u) => u.feature === feature);
    this.setState({ step: "offer", feature, check, offer, offers: offers.data || [], featureName: (unlock && unlock.name) || featureName });
  }

  render() {
    const s = this.state;
    const t = this.t.bind(this);
    switch (s.step) {
      case "loading": return h("p", { class: "card muted", role: "status" }, t("loading"));
      case "error": return this.errorView();
      case "granted": return this.section(t("offer.granted.title", { feature: s.featureName }),
        h("p", {}, t("offer.granted", { feature: s.featureName })));
      case "unavailable": return this.section(t("offer.title.denied", { feature: s.featureName }),
        h("p", {}, t("offer.unavailable", { feature: s.featureName })));
      case "offer": return this.offerView();
      case "pending": return this.pendingView();
      case "trial": return this.trialView();
      case "dismissed": return h("div", { class: "dismissed" });
      default: return h("div");
    }
  }

  offerView() {
    const s = this.state;
    const t = this.t.bind(this);
    const { offer, check } = s;
    const hint = check.offer;
    const limitHit = check.reason === "limit_exceeded";
    const name = (offer && offer.name) || hint.name;
    const effect = hint.effect;
    const count = (n) => new Intl.NumberFormat(this.locale).format(n);
    const unlocks = offer ? offer.unlocks.map((u) => h("li", {},
      u.kind === "limit" && u.limit !== null
        ? (["day", "week", "month", "year"].includes(u.period)
          ? t("offer.unlock.limit", { name: u.name, limit: count(u.limit), period: t(`period.${u.period}`) })
          : t("offer.unlock.limit.total", { name: u.name, limit: count(u.limit) }))
        : u.kind === "value" || u.kind === "config" ? t("offer.unlock.value", { name: u.name, value: u.value })
          : t("offer.unlock.boolean", { name: u.name }))) : [];
    const prices = offer ? offer.prices.filter((p) => p.current !== false && p.currency === hint.currency) : [];
    const requires = requirementsText(hint.requires_unmet || [], s.offers || [], hint.currency, t, this.locale);
    const trial = hint.trial_available && hint.trial_days && effect !== "visible";
    const primary = effect === "purchasable" ? t("action.buy") : effect === "approval_required" ? t("action.request") : null;
    return this.section(t(limitHit ? "offer.title.limit" : "offer.title.denied", { feature: s.featureName }),
      h("p", { class: "module" }, h("strong", {}, t("offer.module", { module: name }))),
      offer && offer.description ? h("p", { class: "muted" }, offer.description) : null,
      unlocks.length ? [h("h3", {}, t("offer.unlocks")), h("ul", { class: "unlocks" }, unlocks)] : null,
      prices.length ? [h("h3", {}, t("offer.price")), h("ul", { class: "prices" }, prices.map((p) => h("li", {}, priceText(p, t, this.locale))))] : null,
      requires ? h("p", { class: "note" }, t("offer.requires", { modules: requires })) : null,
      trial ? h("p", { class: "note" }, t("offer.trial", { days: hint.trial_days })) : null,
      h("p", { class: `effect effect-${effect}` }, t(`offer.effect.${effect}`)),
      h("details", { class: "why" }, h("summary", {}, t("offer.why")), h("p", { class: "muted small" }, hint.reason)),
      s.notice ? h("p", { class: "error", role: "alert" }, s.notice) : null,
      h("div", { class: "actions" },
        primary ? h("button", { type: "button", class: "primary", onclick: () => this.buy() }, primary)
          : h("p", { class: "ask" }, t("action.ask_admin")),
        trial ? h("button", { type: "button", onclick: (e) => this.startTrial(e.currentTarget) }, t("action.trial")) : null,
        h("button", { type: "button", class: "quiet", onclick: () => this.dismiss() }, t("action.not_now"))));
  }

  pendingView() {
    const s = this.state;
    const t = this.t.bind(this);
    const a = s.approval;
    const name = (s.offer && s.offer.name) || s.check.offer.name;
    const parts = [];
    if (!a || a.state === "pending") {
      parts.push(h("p", {}, t("approval.status", { module: name })));
      if (a && a.temporary_access_until) parts.push(h("p", { "data-temporary": true }, t("approval.temporary", { time: clockText(new Date(a.temporary_access_until) - Date.now()) })));
    } else if (a.state === "denied") {
      parts.push(h("p", { role: "alert" }, t("approval.denied")));
      if (a.decision_note) parts.push(h("p", {}, t("approval.denied.note", { note: a.decision_note })));
      parts.push(h("div", { class: "actions" }, h("button", { type: "button", onclick: () => this.restart() }, t("action.continue"))));
    } else if (a.state === "expired" || a.state === "canceled") {
      parts.push(h("p", { role: "alert" }, t("approval.expired")),
        h("div", { class: "actions" }, h("button", { type: "button", onclick: () => this.restart() }, t("action.request"))));
    }
    return this.section(t("approval.title"), ...parts);
  }

  trialView() {
    const s = this.state;
    const t = this.t.bind(this);
    const days = daysLeft(s.trial.ends_at);
    return this.section(t("trial.title", { module: s.offer ? s.offer.name : s.trial.module }),
      h("p", {}, t("trial.started", { feature: s.featureName })),
      h("p", { class: "muted" }, days === 1 ? t("trial.day_left") : t("trial.days_left", { days })),
      h("div", { class: "actions" }, h("button", { type: "button", class: "primary", onclick: () => this.buy() }, t("action.convert"))));
  }

  buy() {
    this._interacted = true;
    const s = this.state;
    const module = s.check.offer.module;
    const name = (s.offer && s.offer.name) || s.check.offer.name;
    this.dialog.open({ module, feature: s.feature, name, source: "offer" });
  }

  async startTrial(button) {
    this._interacted = true;
    button.disabled = true;
    const s = this.state;
    try {
      const me = await this.me();
      const trial = await this.api("POST", "/v1/trials", { body: { user: me.user, module: s.check.offer.module } });
      this.setState({ step: "trial", trial, notice: null });
      this.announce(this.t("status.granted", { feature: s.featureName }));
      this.emit("commerce:access-granted", { feature: s.feature, module: trial.module, source: "trial", trial_ends_at: trial.ends_at });
    } catch (err) {
      button.disabled = false;
      this.setState({ notice: problemText(err, this.t.bind(this)) });
    }
  }

  dismiss() {
    const s = this.state;
    this.setState({ step: "dismissed" });
    this.emit("commerce:dismissed", { feature: s.feature, module: s.check.offer.module, where: "offer" });
  }

  granted(detail) {
    this.setState({ step: "granted" }, { focus: false });
    this.announce(this.t("status.granted", { feature: this.state.featureName }));
    this.emit("commerce:access-granted", { ...detail, feature: this.state.feature });
  }

  checkoutClosed() {
    this._interacted = true;
    const target = this.main.querySelector("h2");
    if (target) target.focus();
  }

  pending(order) {
    this.setState({ step: "pending", order, approval: null }, { focus: false });
    this.pollApproval(order);
  }

  pollApproval(order) {
    const every = Number(this.getAttribute("poll-ms") || this.options.pollMs || 4000);
    let busy = false;
    const tick = async () => {
      if (busy) return;
      busy = true;
      try {
        const approval = order.approval_id ? await this.api("GET", `/v1/approvals/${order.approval_id}`) : null;
        const fresh = await this.api("GET", `/v1/orders/${order.id}`);
        if (fresh.state === "fulfilled" || fresh.state === "paid") {
          this.stopTimers();
          this.setState({ step: "granted" }, { focus: false });
          this.announce(this.t("approval.approved", { feature: this.state.featureName }));
          this.emit("commerce:access-granted", { feature: this.state.feature, module: this.state.check.offer.module, order_id: order.id, source: "approval" });
          return;
        }
        if (approval && approval.state !== "pending") this.stopTimers();
        this.setState({ approval }, { focus: false });
      } catch (err) {
        if (err instanceof Problem && err.status === 401) { this.stopTimers(); this.setState({ step: "error", error: problemText(err, this.t.bind(this)) }); }
      } finally {
        busy = false;
      }
    };
    tick();
    this.every(every, tick);
  }
}

// ---------------------------------------------------------------- <commerce-suggestions surface="...">

export class CommerceSuggestions extends CommerceElement {
  async start() {
    const me = await this.me();
    const surface = this.getAttribute("surface") || this.options.surface || "default";
    const feature = this.getAttribute("trigger-feature") || this.options.triggerFeature;
    const body = { user: me.user, surface, limit: Number(this.getAttribute("limit") || this.options.limit || 3) };
    if (feature) body.trigger = { kind: this.getAttribute("trigger") || this.options.trigger || "feature_denied", feature };
    const answer = await this.api("POST", "/v1/suggestions", { body });
    const items = (answer.data || []).slice(0, 3);
    let names = {};
    if (items.some((i) => i.bundle && i.bundle.length)) {
      // Bundles name their steps by module key; the user's offers have the names.
      const offers = await this.api("GET", "/v1/offers", { query: { user: me.user } }).catch(() => ({ data: [] }));
      names = Object.fromEntries((offers.data || []).map((o) => [o.module, o.name]));
    }
    this.setState({ step: "list", items, names, done: {} });
    if (!this._listening) {
      // A purchase elsewhere on the page (an offer element) makes the matching card moot.
      this._listening = (e) => {
        if (e.target === this || this.state.step !== "list") return;
        const hit = this.state.items.find((i) => i.module === e.detail.module);
        if (hit) { this.state.done[hit.id] = "granted"; this.setState({}, { focus: false }); }
      };
      document.addEventListener("commerce:access-granted", this._listening);
    }
  }

  disconnectedCallback() {
    super.disconnectedCallback();
    if (this._listening) document.removeEventListener("commerce:access-granted", this._listening);
    this._listening = null;
  }

  render() {
    const s = this.state;
    const t = this.t.bind(this);
    if (s.step === "loading") return h("p", { class: "card muted", role: "status" }, t("loading"));
    if (s.step === "error") return this.errorView();
    const items = s.items.filter((i) => !s.done[i.id] || s.done[i.id] !== "dismissed");
    return h("section", { "aria-labelledby": `${this.ids}-title`, class: "suggestions", part: "suggestions" },
      h("h2", { id: `${this.ids}-title`, tabindex: "-1" }, t("region.suggestions")),
      items.length ? h("ul", { class: "suggestion-list" }, items.map((item) => this.item(item)))
        : h("p", { class: "muted" }, t("suggestion.none")));
  }

  item(item) {
    const t = this.t.bind(this);
    const id = `${this.ids}-${item.id}`;
    const owned = this.state.done[item.id] === "granted";
    const buyable = ["budget_auto_approved", "needs_approval", "card"].includes(item.payment_route) && item.quote;
    const steps = item.bundle && item.bundle.length ? [...item.bundle, item.module] : null;
    const price = owned ? null : suggestionPriceText(item, t, this.locale);
    // who pays; nobody pays for a trial (who would is said when it is bought)
    const who = owned ? t("offer.granted", { feature: item.name }) : item.kind === "trial" ? null
      : item.kind === "adoption" ? t("suggestion.adoption") : t(`suggestion.route.${item.payment_route}`);
    const primary = owned ? null : item.kind === "trial" ? t("action.trial")
      : buyable ? (item.payment_route === "needs_approval" ? t("action.request") : t("action.buy")) : null;
    return h("li", {}, h("article", { class: "card suggestion", "aria-labelledby": id },
      h("h3", { id }, item.name),
      h("ul", { class: "reasons", "aria-label": t("suggestion.why") }, item.reasons.map((r) => h("li", {}, r))),
      steps ? h("div", { class: "bundle" }, h("p", { class: "small" }, t("suggestion.bundle")),
        h("ol", {}, steps.map((m) => h("li", {}, m === item.module ? item.name : (this.state.names[m] || m))))) : null,
      price ? h("p", { class: "price" }, price) : null,
      who ? h("p", { class: "muted small" }, who) : null,
      h("div", { class: "actions" },
        primary ? h("button", { type: "button", class: "primary", "aria-describedby": id, onclick: (e) => this.act(item, e.currentTarget) }, primary) : null,
        owned ? null : h("button", { type: "button", class: "quiet", "aria-describedby": id, onclick: () => this.notNow(item) },
          item.kind === "adoption" ? t("suggestion.got_it") : t("action.not_now")))));
  }

  async feedback(item, action) {
    const me = await this.me();
    return this.api("POST", `/v1/suggestions/${item.id}/feedback`, { body: { user: me.user, action } });
  }

  async notNow(item) {
    this._interacted = true;
    this.state.done[item.id] = "dismissed";
    this.setState({}, { focus: false });
    const heading = this.main.querySelector("h2");
    if (heading) heading.focus();
    this.emit("commerce:dismissed", { module: item.module, suggestion_id: item.id, where: "suggestion" });
    try { await this.feedback(item, "dismiss"); } catch { /* the card is gone either way; the next request may show it again */ }
  }

  async act(item, button) {
    this._interacted = true;
    this.feedback(item, "click").catch(() => {});
    this._active = item;
    if (item.kind === "trial") {
      button.disabled = true;
      try {
        const me = await this.me();
        const trial = await this.api("POST", "/v1/trials", { body: { user: me.user, module: item.module } });
        this.granted({ module: item.module, name: item.name, source: "trial", trial_ends_at: trial.ends_at });
      } catch (err) {
        button.disabled = false;
        this.announce(problemText(err, this.t.bind(this)));
      }
      return;
    }
    this.dialog.open({ module: item.module, name: item.name, source: "suggestion" });
  }

  granted(detail) {
    const item = this._active;
    if (item) this.state.done[item.id] = "granted";
    this.setState({}, { focus: false });
    this.announce(this.t("status.granted", { feature: detail.name || detail.module }));
    this.emit("commerce:access-granted", { ...detail, suggestion_id: item && item.id });
  }

  pending(order) {
    const item = this._active;
    if (item) this.state.done[item.id] = "dismissed";
    this.setState({}, { focus: false });
  }
}

// ---------------------------------------------------------------- registration and mount()

if (!customElements.get("commerce-offer")) customElements.define("commerce-offer", CommerceOffer);
if (!customElements.get("commerce-suggestions")) customElements.define("commerce-suggestions", CommerceSuggestions);

/**
 * Mount a widget into a container: {token, feature} for an offer, {token, surface} for suggestions;
 * callbacks onAccess, onApprovalRequested, onDismissed, onTokenExpired (returns a new token or a promise of one).
 */
export function mount(container, options = {}) {
  if (!container) throw new Error("Commerce.mount needs an element");
  if (options.mode === "iframe") return mountFrame(container, options);
  const tag = options.feature ? "commerce-offer" : "commerce-suggestions";
  const el = document.createElement(tag);
  el.options = { ...options };
  if (options.token) el.token = options.token;
  for (const [attr, key] of [["feature", "feature"], ["surface", "surface"], ["api", "api"], ["lang", "lang"], ["poll-ms", "pollMs"], ["trigger-feature", "triggerFeature"]]) {
    if (options[key] !== undefined) el.setAttribute(attr, options[key]);
  }
  container.replaceChildren(el);
  return el;
}

const CALLBACKS = { "commerce:access-granted": "onAccess", "commerce:approval-requested": "onApprovalRequested",
  "commerce:dismissed": "onDismissed" };

/**
 * Iframe mode: the widget runs in a frame on the service's origin (frame.html); this page talks to it with
 * postMessage, to that origin only. The frame's events are dispatched on the iframe element (bubbling).
 */
function mountFrame(container, options) {
  const src = new URL("frame.html", MODULE_URL);
  const origin = src.origin;
  const frame = document.createElement("iframe");
  frame.src = src.href;
  const lang = (options.lang || document.documentElement.lang || "en").slice(0, 2);
  frame.title = options.title || (options.messages && options.messages["frame.title"])
    || (MESSAGES[lang] || MESSAGES.en)["frame.title"] || MESSAGES.en["frame.title"];
  frame.style.cssText = "border:0;width:100%;max-width:36rem;height:320px;display:block;color-scheme:normal";
  const send = (message) => frame.contentWindow && frame.contentWindow.postMessage(message, origin);
  const listener = async (e) => {
    if (e.source !== frame.contentWindow || e.origin !== origin || !e.data || typeof e.data !== "object") return;
    const { type, detail } = e.data;
    if (type === "commerce:frame-ready") {
      const { onAccess, onApprovalRequested, onDismissed, onTokenExpired, mode, ...plain } = options;
      send({ ...plain, type: "commerce:init" });
    } else if (type === "commerce:resize") {
      frame.style.height = `${Math.ceil(detail.height)}px`;
    } else if (type === "commerce:token-expired") {
      const token = typeof options.onTokenExpired === "function" ? await options.onTokenExpired() : null;
      send({ type: "commerce:token", token });
    } else if (CALLBACKS[type]) {
      frame.dispatchEvent(new CustomEvent(type, { detail, bubbles: true }));
      if (typeof options[CALLBACKS[type]] === "function") options[CALLBACKS[type]](detail);
    }
  };
  window.addEventListener("message", listener);
  frame.destroy = () => { window.removeEventListener("message", listener); frame.remove(); };
  container.replaceChildren(frame);
  return frame;
}
