// Unit tests of the widget's pure helpers and its client function, run in Chromium (no Node needed).
// The runner is this file: each test is a function; failures are collected in the returned list.
const widget = await import(globalThis.WIDGET_MODULE_URL);
const { format, money, clockText, daysLeft, priceText, problemText, humanize, call, Problem, newKey, CardError,
  cardErrorText, taxRows, suggestionPriceText, requirementsText } = widget;
const { messages } = await import(new URL("messages.js", globalThis.WIDGET_MODULE_URL).href);
const t = (key, vars) => format(messages.en[key] ?? key, vars); // as the widget: an unknown key shows itself

const tests = {};
const eq = (actual, expected) => {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`expected ${e}, got ${a}`);
};

tests["taxRows shows net, tax per jurisdiction and rate, and gross; or says tax was not calculated"] = () => {
  const de = { currency: "EUR", total_minor: 225, net_minor: 225, tax_minor: 43, gross_minor: 268,
    tax: { status: "computed", reverse_charge: false, exempt: false, breakdown: [
      { jurisdiction: "Germany", rate: "19.0", taxability: "standard_rated", tax_minor: 43 }] } };
  eq(taxRows(de, t, "en").rows, [["Price before tax", "€2.25"], ["Tax (Germany, 19 %)", "€0.43"],
    ["Due now, tax included", "€2.68"]]);
  eq(taxRows(de, t, "en").note, null);
  const fr = { ...de, tax_minor: 0, gross_minor: 225, tax: { ...de.tax, reverse_charge: true, breakdown: [
    { jurisdiction: "France", rate: "0", taxability: "reverse_charge", tax_minor: 0 }] } };
  eq(taxRows(fr, t, "en").rows, [["Price before tax", "€2.25"], ["Tax", "€0.00"], ["Due now, tax included", "€2.25"]]);
  eq(taxRows(fr, t, "en").note, "Reverse charge: your company accounts for the VAT.");
  const none = { currency: "USD", total_minor: 900, tax: { status: "not_computed", breakdown: [] } };
  eq(taxRows(none, t, "en").rows, [["Due now", "$9.00"]]);
  eq(taxRows(none, t, "en").note, "Not calculated here: tax may be added to this price.");
};
tests["an offer's prerequisites are named with their price, in the offer's currency, when the offers list one"] = () => {
  const offers = [
    { module: "ai", name: "AI Insights", prices: [
      { model: "recurring", amount_minor: 1900, currency: "USD", interval: "month", per_seat: true, current: true },
      { model: "recurring", amount_minor: 1700, currency: "EUR", interval: "month", per_seat: true, current: true }] },
    { module: "old", name: "Old Hub", prices: [
      { model: "recurring", amount_minor: 500, currency: "USD", interval: "month", per_seat: false, current: false }] }];
  eq(requirementsText(["ai"], offers, "USD", t, "en-US"), "AI Insights ($19.00 per seat per month)");
  eq(requirementsText(["ai"], offers, "EUR", t, "en-US"), "AI Insights (€17.00 per seat per month)");
  eq(requirementsText(["ai", "old", "gone"], offers, "USD", t, "en-US"),
    "AI Insights ($19.00 per seat per month), Old Hub, gone"); // no current price, not offered: the name alone
  eq(requirementsText([], offers, "USD", t, "en-US"), "");
};
tests["a suggestion's price says what is due now, that metered usage is billed later, and that a trial is free"] = () => {
  const line = (model) => ({ module: "m", model, total_minor: model === "metered" ? 0 : 1246 });
  const item = (total, models, extra = {}) => ({ kind: "purchase", trial_days: null, ...extra,
    quote: { currency: "USD", total_minor: total, lines: models.map(line) } });
  eq(suggestionPriceText(item(1246, ["recurring"]), t, "en-US"), "$12.46 due now");
  eq(suggestionPriceText(item(0, ["metered"]), t, "en-US"), "Usage billed monthly; nothing due now");
  eq(suggestionPriceText(item(1246, ["recurring", "metered"]), t, "en-US"), "$12.46 due now, then usage billed monthly");
  eq(suggestionPriceText(item(1246, ["recurring"], { kind: "trial", trial_days: 30 }), t, "en-US"),
    "Try it free for 30 days.");
  eq(suggestionPriceText({ kind: "adoption", trial_days: null, quote: null }, t, "en-US"), null);
};
tests["cardErrorText says a decline in plain words, with what to do next"] = () => {
  eq(cardErrorText(new CardError("insufficient_funds", "Your card has insufficient funds."), t),
    "This card has insufficient funds. Use another card.");
  eq(cardErrorText(new CardError("incorrect_number"), t), "That card number is not right. Check it and try again.");
  eq(cardErrorText(new CardError("processing_error", "An error occurred while processing your card."), t),
    "The card could not be used: An error occurred while processing your card.");
  eq(cardErrorText(new Problem(0, null), t), t("error.network"));
};
tests["every card code the local Stripe fake answers has its own message"] = () => {
  for (const code of ["card_declined", "generic_decline", "insufficient_funds", "incorrect_number", "invalid_expiry_month",
    "invalid_expiry_year", "invalid_cvc", "test_mode_live_card", "setup_intent_authentication_failure",
    "payment_intent_authentication_failure", "canceled", "network", "settle_timeout"]) {
    if (!messages.en[`card.error.${code}`]) throw new Error(`no message for ${code}`);
  }
};
tests["format fills placeholders and leaves unknown ones"] = () => {
  eq(format("{a} and {b}", { a: 1 }), "1 and {b}");
};
tests["money uses the currency's own exponent"] = () => {
  eq(money(2900, "USD", "en-US"), "$29.00");
  eq(money(500, "JPY", "en-US"), "¥500");
  eq(money(1234, "KWD", "en-US"), "KWD\u00a01.234");
  eq(money(2900, "EUR", "de-DE"), "29,00\u00a0€");
};
tests["clockText counts down and never goes negative"] = () => {
  eq(clockText(29 * 60000 + 59000), "29:59");
  eq(clockText(3600000 * 23 + 5000), "23:00:05");
  eq(clockText(-5), "0:00");
};
tests["daysLeft rounds up"] = () => {
  const now = Date.parse("2026-11-23T12:00:00Z");
  eq(daysLeft("2026-12-07T12:00:00Z", now), 14);
  eq(daysLeft("2026-11-23T12:00:01Z", now), 1);
  eq(daysLeft("2026-11-20T00:00:00Z", now), 0);
};
tests["priceText explains per seat, once and metered tiers"] = () => {
  eq(priceText({ model: "recurring", currency: "USD", amount_minor: 2900, interval: "month", per_seat: true }, t, "en-US"),
    "$29.00 per seat per month");
  eq(priceText({ model: "recurring", currency: "USD", amount_minor: 99000, interval: "year", per_seat: false }, t, "en-US"),
    "$990.00 per year");
  eq(priceText({ model: "one_time", currency: "USD", amount_minor: 19900 }, t, "en-US"), "$199.00 once");
  eq(priceText({ model: "metered", currency: "USD", interval: "month", unit: "insight", included_quantity: 50,
    tiers: [{ up_to: 500, unit_amount_minor: 20 }, { unit_amount_minor: 10 }] }, t, "en-US"),
    "50 a month included, then $0.20 per insight up to 500, $0.10 per insight after that"); // no "50 insight"
};
tests["problems become plain sentences"] = () => {
  eq(problemText(new Problem(0, null), t), messages.en["error.network"]);
  eq(problemText(new Problem(401, { detail: "expired" }), t), messages.en["error.session"]);
  eq(problemText(new Problem(422, { detail: "The quote expired." }), t), "Something went wrong: The quote expired.");
};
tests["humanize turns keys into words"] = () => { eq(humanize("advanced_charts"), "Advanced charts"); };
tests["newKey is unique per call"] = () => { if (newKey("x") === newKey("x")) throw new Error("same key twice"); };

// The client against a scripted fetch: what it sends and how it retries.
async function withFetch(answers, fn) {
  const seen = [];
  const real = globalThis.fetch;
  globalThis.fetch = async (url, init) => {
    seen.push({ url: String(url), init });
    const next = answers.shift();
    if (next === "network") throw new TypeError("Failed to fetch");
    return new Response(next.body === undefined ? null : JSON.stringify(next.body),
      { status: next.status, headers: { "Content-Type": "application/json", ...(next.headers || {}) } });
  };
  try { return await fn(seen); } finally { globalThis.fetch = real; }
}
const auth = (token = "t1", refresh = async () => false) => ({ api: "http://api.test/", token: () => token, refresh });

tests["a keyed write is retried with the same key after a network failure"] = async () => {
  await withFetch(["network", { status: 201, body: { id: "ord_1" } }], async (seen) => {
    const order = await call(auth(), "POST", "/v1/orders", { body: { quote_id: "q" }, key: "order-1" });
    eq(order, { id: "ord_1" });
    eq(seen.map((s) => s.init.headers["Idempotency-Key"]), ["order-1", "order-1"]);
    eq(seen[0].init.headers.Authorization, "Bearer t1");
  });
};
tests["a write without a key is not retried"] = async () => {
  await withFetch(["network", { status: 200, body: {} }], async (seen) => {
    let failed = null;
    try { await call(auth(), "POST", "/v1/trials", { body: {} }); } catch (err) { failed = err; }
    eq([failed instanceof Problem, failed.status, seen.length], [true, 0, 1]);
  });
};
tests["409 in flight is retried, 422 is not"] = async () => {
  await withFetch([{ status: 409, body: { idempotency_key: "k" } }, { status: 422, body: { detail: "no", code: "unprocessable" } }], async (seen) => {
    let failed = null;
    try { await call(auth(), "POST", "/v1/orders", { body: {}, key: "k" }); } catch (err) { failed = err; }
    eq([failed.status, failed.code, seen.length], [422, "unprocessable", 2]);
  });
};
tests["401 asks for a new token once and retries with it"] = async () => {
  let token = "old";
  const a = { api: "http://api.test/", token: () => token, refresh: async () => { token = "new"; return true; } };
  await withFetch([{ status: 401, body: { detail: "expired" } }, { status: 200, body: { user: "u" } }], async (seen) => {
    eq(await call(a, "GET", "/v1/me"), { user: "u" });
    eq(seen.map((s) => s.init.headers.Authorization), ["Bearer old", "Bearer new"]);
  });
};
tests["query parameters are encoded"] = async () => {
  await withFetch([{ status: 200, body: {} }], async (seen) => {
    await call(auth(), "GET", "/v1/offers", { query: { user: "a b&c" } });
    eq(seen[0].url, "http://api.test/v1/offers?user=a+b%26c");
  });
};

const failures = [];
for (const [name, fn] of Object.entries(tests)) {
  try { await fn(); } catch (err) { failures.push(`${name}: ${err.message}`); }
}
globalThis.WIDGET_TEST_RESULT = { ran: Object.keys(tests).length, failures };
