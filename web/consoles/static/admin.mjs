// The customer admin console's pages, each drawn from the public API as the signed-in admin.
import { budgetBar, columns, hbars } from "./charts.mjs";
import {
  accountPath, act, all, api, count, ctx, day, empty, h, money, newKey, notice, render, table, toMajor, toMinor, when,
} from "./console.mjs";

const field = (label, input, hint) => {
  const id = input.id || (input.id = `f-${Math.random().toString(36).slice(2, 9)}`);
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) input.setAttribute("aria-describedby", hintId);
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hint ? h("p", { class: "hint", id: hintId }, hint) : null);
};
const percents = (s) => String(s).split(/[\s,]+/).filter(Boolean).map(Number);

// ---------------------------------------------------------------- Budgets
async function budgets() {
  const [list, guard] = await Promise.all([api("GET", accountPath("/budgets")), api("GET", accountPath("/guardrails"))]);
  if (!list.data.length) return render(empty("This account has no budget yet. Purchases are paid by card until one exists."));
  const cards = await Promise.all(list.data.map((b) => budgetCard(b, guard)));
  render(h("div", { class: "cards" }, cards));
}

async function budgetCard(b, guard) {
  const thresholds = guard.policy.alert_thresholds_pct;
  const ledger = await all(accountPath(`/budgets/${b.id}/ledger`), { limit: 200 });
  const months = [...new Set(ledger.map((e) => e.period))].sort().slice(-6);
  if (!months.includes(b.period)) months.push(b.period);
  const net = (p) => ledger.filter((e) => e.period === p).reduce((s, e) => s + (e.kind === "capture" ? e.amount_minor : e.kind === "refund" ? -e.amount_minor : 0), 0);
  const f = (v) => money(v, b.currency);
  const headingId = `budget-${b.id}`;
  const amount = h("input", { type: "text", inputmode: "decimal", name: "amount", value: toMajor(b.amount_minor, b.currency), autocomplete: "off" });
  const marks = h("input", { type: "text", name: "thresholds", value: thresholds.join(", "), autocomplete: "off" });
  const out = h("div", { class: "out", "aria-live": "polite" });
  const save = h("button", { type: "submit", class: "primary" }, "Save budget");
  const form = h("form", { class: "edit", "aria-label": `Edit ${b.name}` },
    field(`Amount per period (${b.currency})`, amount, "Takes effect from this period on."),
    field("Alert thresholds (% of the amount)", marks, "For example 50, 80, 100. They apply to every budget of the account."),
    save, out);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    act(save, out, async () => {
      const minor = toMinor(amount.value, b.currency);
      if (minor === null) throw new Error(`Enter the amount in ${b.currency}, like 5000 or 5000.00.`);
      const wanted = percents(marks.value);
      if (!wanted.length || wanted.some((t) => !Number.isInteger(t) || t < 1 || t > 1000)) throw new Error("Thresholds are whole percentages from 1 to 1000, separated by commas.");
      if (minor !== b.amount_minor) await api("PATCH", accountPath(`/budgets/${b.id}`), { body: { amount_minor: minor }, key: newKey() });
      if (wanted.join() !== thresholds.join()) await api("PUT", accountPath("/guardrails"), { body: { ...guard.policy, alert_thresholds_pct: wanted } });
      await budgets();
      return null;
    });
  });
  return h("section", { class: "card budget", "aria-labelledby": headingId },
    h("h2", { id: headingId }, b.name, b.cost_center ? h("span", { class: "tag" }, `cost center ${b.cost_center}`) : null),
    h("p", { class: "sub" }, `Period ${b.period}: ${day(b.period_starts_at)} to ${day(b.period_ends_at)}`),
    h("dl", { class: "figures" },
      h("div", {}, h("dt", {}, "Amount"), h("dd", { "data-figure": "amount" }, f(b.period_amount_minor))),
      h("div", { class: "captured" }, h("dt", {}, "Captured"), h("dd", { "data-figure": "captured" }, f(b.captured_minor))),
      h("div", { class: "held" }, h("dt", {}, "Held for approvals"), h("dd", { "data-figure": "held" }, f(b.reserved_minor))),
      h("div", {}, h("dt", {}, "Left"), h("dd", { "data-figure": "left" }, f(b.remaining_minor)))),
    budgetBar({ title: `${b.name}: ${b.used_pct}% used this period (${f(b.captured_minor)} captured, ${f(b.reserved_minor)} held, ${f(b.remaining_minor)} left); alerts at ${thresholds.join("%, ")}%`,
                amount: b.period_amount_minor, captured: b.captured_minor, held: b.reserved_minor, thresholds }),
    h("h3", {}, "Spend per month"),
    columns({ title: `${b.name}: captured spend per month`, labels: months, series: [{ name: "Captured", values: months.map(net), cls: "captured" }], format: f }),
    form);
}

// ---------------------------------------------------------------- Approvals
const notes = new Map();
let shownPending = "";

async function approvals() {
  await drawApprovals();
  setInterval(async () => {
    const pending = await api("GET", accountPath("/approvals"), { query: { state: "pending" } }).catch(() => null);
    if (pending && pending.data.map((a) => a.id).join() !== shownPending) await drawApprovals(true);
  }, 3000);
}

// people and modules as they are read: a name with the id beside it (the id alone when the vendor gave no name),
// the modules' catalog names
const person = (name, id) => (name ? `${name} (${id})` : id);
const requesterOf = (a) => person(a.requester_name, a.requester);
const modulesOf = (a) => (a.module_names && a.module_names.length ? a.module_names : a.modules).join(", ");

async function drawApprovals(arrived = false) {
  const [pending, decided, budgetsNow] = await Promise.all([
    api("GET", accountPath("/approvals"), { query: { state: "pending" } }),
    api("GET", accountPath("/approvals"), { query: { limit: 50 } }),
    api("GET", accountPath("/budgets")),
  ]);
  shownPending = pending.data.map((a) => a.id).join();
  const left = (a) => budgetsNow.data.find((b) => b.currency === a.currency && !b.cost_center);
  const rows = pending.data.map((a) => {
    const note = h("textarea", { rows: 2, name: "note", value: notes.get(a.id) || "", oninput: (e) => notes.set(a.id, e.target.value) });
    const out = h("div", { class: "out", "aria-live": "polite" });
    const decide = (approve) => async (e) => act(e.currentTarget, out, async () => {
      await api("POST", `/v1/approvals/${a.id}/${approve ? "approve" : "deny"}`, { body: { note: note.value || null }, key: newKey() });
      notes.delete(a.id);
      await drawApprovals();
      document.getElementById("approvals-status").textContent = `${approve ? "Approved" : "Denied"}: ${modulesOf(a)} for ${requesterOf(a)}.`;
      return null;
    });
    const b = left(a);
    const headingId = `approval-${a.id}`;
    const who = requesterOf(a);
    const what = modulesOf(a);
    return h("li", { class: "card approval", "aria-labelledby": headingId },
      h("h3", { id: headingId }, `${who} asks for ${what}`),
      h("dl", { class: "figures" },
        h("div", {}, h("dt", {}, "Amount"), h("dd", {}, money(a.total_minor, a.currency))),
        h("div", {}, h("dt", {}, "Budget after approval"), h("dd", {}, b ? `${money(b.remaining_minor, b.currency)} left (held already)` : "paid by card")),
        h("div", {}, h("dt", {}, "Asked"), h("dd", {}, when(a.created_at))),
        h("div", {}, h("dt", {}, "Expires"), h("dd", {}, when(a.expires_at)))),
      h("p", {}, h("strong", {}, "Reason: "), a.reason || "none given"),
      a.why.length ? h("div", { class: "sub" }, h("p", {}, "What the guardrails said when it was asked:"),
        h("ul", {}, a.why.map((r) => h("li", {}, r)))) : null,
      a.temporary_access_until ? h("p", { class: "sub" }, `Temporary access in force until ${when(a.temporary_access_until)}`) : null,
      field(`Note to ${who} (optional)`, note),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "primary", onclick: decide(true) }, `Approve ${what} for ${who}`),
        h("button", { type: "button", class: "danger", onclick: decide(false) }, `Deny ${what} for ${who}`)),
      out);
  });
  const done = decided.data.filter((a) => a.state !== "pending");
  render(
    h("p", { id: "approvals-status", role: "status", class: "notice" }, arrived ? "A new request arrived." : ""),
    h("h2", {}, `Waiting for a decision (${pending.data.length})`),
    rows.length ? h("ul", { class: "cards plain" }, rows) : empty("No request is waiting. New requests appear here as they arrive."),
    h("h2", {}, "Decided"),
    table("Decided requests, newest first", [
      { label: "Requester", cell: (a) => requesterOf(a) },
      { label: "Modules", cell: (a) => modulesOf(a) },
      { label: "Amount", num: true, cell: (a) => money(a.total_minor, a.currency) },
      { label: "Decision", cell: (a) => a.state },
      { label: "By", cell: (a) => a.decided_by || "—" },
      { label: "When", cell: (a) => when(a.decided_at) },
      { label: "Note", cell: (a) => a.decision_note || "" },
    ], done, { emptyText: "No decisions yet." }));
}

// ---------------------------------------------------------------- Guardrails
// flash: a message for the freshly drawn page (the page is drawn anew after a save; the old one's message went with it)
async function guardrails(flash) {
  const current = await api("GET", accountPath("/guardrails"));
  const p = current.policy;
  const cur = ctx.currency;
  const inputs = {
    auto: h("input", { type: "text", inputmode: "decimal", name: "auto", value: toMajor(p.auto_approve_limit_minor, cur) }),
    cap: h("input", { type: "text", inputmode: "decimal", name: "cap", value: p.per_user_cap_minor === null ? "" : toMajor(p.per_user_cap_minor, cur) }),
    approvers: h("input", { type: "text", name: "approvers", value: p.approver_roles.join(", ") }),
    expiry: h("input", { type: "number", min: 1, max: 2160, name: "expiry", value: p.approval_expiry_hours }),
    temp: h("input", { type: "number", min: 0, max: 720, name: "temp", value: p.temporary_access_hours }),
    route: h("select", { name: "route" }, ["budget", "card"].map((r) => h("option", { value: r, selected: p.preferred_route === r }, r === "budget" ? "The account's budget" : "The user's own card"))),
  };
  const out = h("div", { class: "out", "aria-live": "polite" });
  const result = h("div", { class: "simulation" });
  const draft = () => {
    const auto = toMinor(inputs.auto.value, cur);
    if (auto === null) throw new Error(`Enter the auto-approve limit in ${cur}, like 100 or 100.00.`);
    const cap = inputs.cap.value.trim() === "" ? null : toMinor(inputs.cap.value, cur);
    if (cap === undefined || (inputs.cap.value.trim() !== "" && cap === null)) throw new Error(`Enter the cap per user in ${cur}, or leave it empty for no cap.`);
    const roles = inputs.approvers.value.split(/[\s,]+/).filter(Boolean);
    if (!roles.length) throw new Error("Name at least one approver role.");
    return { ...p, auto_approve_limit_minor: auto, per_user_cap_minor: cap, approver_roles: roles,
             approval_expiry_hours: Number(inputs.expiry.value), temporary_access_hours: Number(inputs.temp.value),
             preferred_route: inputs.route.value };
  };
  const simulate = h("button", { type: "button" }, "Simulate on the last 90 days");
  const save = h("button", { type: "button", class: "primary", disabled: true }, "Save as a new version");
  simulate.addEventListener("click", () => act(simulate, out, async () => {
    const policy = draft();
    const [was, would] = await Promise.all([
      api("POST", accountPath("/guardrails/simulate"), { body: { policy: p, days: 90 } }),
      api("POST", accountPath("/guardrails/simulate"), { body: { policy, days: 90 } }),
    ]);
    result.replaceChildren(simulation(was, would, diff(p, policy)));
    save.disabled = false;
    return "Simulated. Review the difference, then save.";
  }));
  save.addEventListener("click", () => act(save, out, async () => {
    const saved = await api("PUT", accountPath("/guardrails"), { body: draft() });
    await guardrails(`Saved as version ${saved.version}.`);
    return null;
  }));
  const toml = h("textarea", { rows: 10, name: "toml", spellcheck: "false" });
  toml.value = await api("GET", accountPath("/guardrails/export"), { raw: true });
  const tomlOut = h("div", { class: "out", "aria-live": "polite" });
  const importButton = h("button", { type: "button" }, "Import this TOML as a new version");
  importButton.addEventListener("click", () => act(importButton, tomlOut, async () => {
    const saved = await api("POST", accountPath("/guardrails/import"), { body: { toml: toml.value } });
    return `Imported as version ${saved.version}. Reload to edit it above.`;
  }));
  render(
    h("p", { class: "sub" }, `Version ${current.version} is in force.`),
    h("form", { class: "card edit", "aria-label": "Guardrails", onsubmit: (e) => e.preventDefault() },
      h("h2", {}, "Approvals and caps"),
      field(`Auto-approve purchases up to (${cur})`, inputs.auto, "Above this an approver decides."),
      field(`Cap per user per period (${cur})`, inputs.cap, "Leave empty for no cap."),
      field("Approver roles", inputs.approvers, "Comma-separated, for example admin, manager."),
      field("Requests expire after (hours)", inputs.expiry),
      field("Temporary access while waiting (hours)", inputs.temp, "0 gives no access before the decision."),
      field("Pay by default from", inputs.route),
      p.role_rules.length || p.overrides.length ? h("p", { class: "hint" }, `Kept as they are: ${p.role_rules.length} role rule(s) and ${p.overrides.length} override(s) (edit them in the TOML below).`) : null,
      h("div", { class: "actions" }, simulate, save), out),
    result,
    h("section", { class: "card", "aria-labelledby": "toml-h" }, h("h2", { id: "toml-h" }, "As TOML (import and export)"),
      field("Policy TOML", toml, "The same document the API's export and import use."), importButton, tomlOut));
  // written after the live region is in the page, so that it is announced
  if (typeof flash === "string") setTimeout(() => out.replaceChildren(notice(flash)), 0);
}

function diff(a, b) {
  return Object.keys(b).filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k])).map((k) => ({ key: k, was: a[k], now: b[k] }));
}

function simulation(was, would, changes) {
  const f = (v) => money(v, ctx.currency);
  const row = (label, a, b, fmt = count) => h("tr", {}, h("th", { scope: "row" }, label), h("td", { class: "num" }, fmt(a)), h("td", { class: "num" }, fmt(b)), h("td", { class: "num" }, (b - a > 0 ? "+" : "") + fmt(b - a)));
  return h("section", { class: "card", "aria-labelledby": "sim-h" },
    h("h2", { id: "sim-h" }, `Simulation over ${would.requests} purchases of the last ${would.days} days`),
    h("div", { class: "table-wrap" }, h("table", {}, h("caption", {}, "Current policy against the draft"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Outcome"), h("th", { scope: "col", class: "num" }, "Now"), h("th", { scope: "col", class: "num" }, "Draft"), h("th", { scope: "col", class: "num" }, "Difference"))),
      h("tbody", {},
        row("Auto-approved", was.auto_approved, would.auto_approved),
        row("Sent for approval", was.approval_required, would.approval_required),
        row("Blocked", was.blocked, would.blocked),
        row("Spend auto-approved", was.spend_auto_approved_minor, would.spend_auto_approved_minor, f),
        row("Spend sent for approval", was.spend_approval_required_minor, would.spend_approval_required_minor, f),
        row("Spend blocked", was.spend_blocked_minor, would.spend_blocked_minor, f)))),
    h("h3", {}, "Changes against the current version"),
    changes.length ? h("ul", { class: "diff" }, changes.map((c) => h("li", {}, h("code", {}, c.key), `: ${JSON.stringify(c.was)} → ${JSON.stringify(c.now)}`)))
      : empty("The draft is the same as the current version."),
    would.changed.length ? table("Purchases the draft would decide differently", [
      { label: "Order", cell: (c) => c.order_id },
      { label: "User", cell: (c) => c.user },
      { label: "Amount", num: true, cell: (c) => f(c.total_minor) },
      { label: "Was", cell: (c) => (c.was || "—").replace("_", " ") },
      { label: "Would be", cell: (c) => c.would_be.replace("_", " ") },
    ], would.changed) : null);
}

// ---------------------------------------------------------------- Spend
async function spend() {
  const [orders, users, statements] = await Promise.all([
    all(accountPath("/orders"), { limit: 100 }, 5), all(`${accountPath("/users")}`, { limit: 100 }, 5),
    api("GET", accountPath("/statements")),
  ]);
  const paid = orders.filter((o) => ["paid", "fulfilled"].includes(o.state));
  const center = Object.fromEntries(users.map((u) => [u.external_id, u.cost_center || "none"]));
  const userNamed = Object.fromEntries(users.map((u) => [u.external_id, u.name]));
  const moduleNamed = Object.fromEntries(paid.flatMap((o) => o.lines.map((l) => [l.module, l.name])));
  const cur = paid[0]?.currency || ctx.currency;
  const f = (v) => money(v, cur);
  const group = (keyOf) => {
    const m = new Map();
    for (const o of paid) for (const [k, v] of keyOf(o)) {
      const g = m.get(k) || { key: k, total: 0, orders: [] };
      g.total += v; g.orders.push(o.id); m.set(k, g);
    }
    return [...m.values()].sort((a, b) => b.total - a.total);
  };
  const net = (o) => o.total_minor - o.refunded_minor;
  const byUser = group((o) => [[o.user, net(o)]]);
  const byModule = group((o) => o.lines.map((l) => [l.module, Math.round(net(o) * l.total_minor / Math.max(1, o.total_minor))]));
  const byCenter = group((o) => [[center[o.user] || "none", net(o)]]);
  const months = [...new Set(paid.map((o) => o.created_at.slice(0, 7)))].sort();
  const monthly = months.map((m) => paid.filter((o) => o.created_at.startsWith(m)).reduce((s, o) => s + net(o), 0));
  const breakdown = (caption, label, rows, name = (key) => key) => table(caption, [
    { label, cell: (g) => name(g.key) },
    { label: "Spend", num: true, cell: (g) => f(g.total) },
    { label: "Orders behind it", cell: (g) => h("details", {}, h("summary", {}, `${g.orders.length} order(s)`), h("ul", { class: "ids" }, g.orders.map((id) => h("li", {}, h("code", {}, id))))) },
  ], rows, { emptyText: "No paid purchases yet." });
  render(
    paid.length ? columns({ title: `Spend per month (${cur})`, labels: months, series: [{ name: "Spend", values: monthly, cls: "captured" }], format: f }) : empty("No paid purchases yet."),
    h("div", { class: "grid2" },
      h("section", { "aria-labelledby": "by-user" }, h("h2", { id: "by-user" }, "By user"), byUser.length ? hbars({ title: "Spend by user", rows: byUser.slice(0, 8).map((g) => ({ label: userNamed[g.key] || g.key, value: g.total })), format: f }) : null, breakdown("Spend by user", "User", byUser, (id) => person(userNamed[id], id))),
      h("section", { "aria-labelledby": "by-module" }, h("h2", { id: "by-module" }, "By module"), breakdown("Spend by module", "Module", byModule, (key) => moduleNamed[key] || key)),
      h("section", { "aria-labelledby": "by-center" }, h("h2", { id: "by-center" }, "By cost center"), breakdown("Spend by cost center", "Cost center", byCenter))),
    h("h2", {}, "Statements"),
    table("Bill-back statements, newest first", [
      { label: "Period", cell: (s) => s.period },
      { label: "Total", num: true, cell: (s) => money(s.total_minor, s.currency) },
      { label: "Status", cell: (s) => s.status },
      { label: "Invoice", cell: (s) => s.stripe_invoice_id || "—" },
      { label: "Download", cell: (s) => download(`statement-${s.period}.csv`, statementCsv(s), `Download ${s.period} as CSV`) },
    ], statements.data, { emptyText: "No statement yet: budget spend is billed when a period is closed." }));
}

function statementCsv(s) {
  const lines = [["order_id", "modules", "currency", "captured_minor", "refunded_minor", "net_minor"]];
  for (const l of s.lines) lines.push([l.order_id, l.modules.join(" "), l.currency, l.captured_minor, l.refunded_minor, l.net_minor]);
  return lines.map((r) => r.join(",")).join("\n") + "\n";
}

function download(name, body, label) {
  return h("a", { href: URL.createObjectURL(new Blob([body], { type: "text/csv" })), download: name }, label);
}

// ---------------------------------------------------------------- Adoption
async function adoption() {
  const [grants, advice] = await Promise.all([
    all(accountPath("/grants"), { limit: 100 }, 5),
    api("GET", accountPath("/advisor"), { query: { limit: 50 } }),
  ]);
  const active = grants.filter((g) => g.status === "active");
  const pools = await Promise.all(active.filter((g) => g.seats).map((g) => api("GET", accountPath(`/grants/${g.id}`))));
  const out = h("div", { class: "out", "aria-live": "polite" });
  const unused = new Map();
  for (const a of advice.data) for (const m of a.remove) unused.set(m, (unused.get(m) || []).concat(a.user));
  const byModule = new Map();
  for (const g of active) byModule.set(g.module, (byModule.get(g.module) || 0) + 1);
  render(
    h("p", { class: "sub" }, advice.message),
    hbars({ title: "Modules owned: grants per module, and how many holders do not use it", rows: [...byModule].sort((a, b) => b[1] - a[1]).slice(0, 12)
      .map(([m, n]) => ({ label: m, value: n, note: unused.has(m) ? `${unused.get(m).length} unused` : "all used" })), format: count }),
    h("h2", {}, "Seats"),
    pools.length ? h("ul", { class: "cards plain" }, pools.map((g) => h("li", { class: "card" },
      h("h3", {}, `${g.module}: ${g.seats_assigned} of ${g.seats} seats taken`),
      (g.assigned_users || []).length ? h("ul", { class: "seats" }, g.assigned_users.map((u) => h("li", {}, u, " ",
        h("button", { type: "button", onclick: (e) => act(e.currentTarget, out, async () => {
          await api("DELETE", accountPath(`/grants/${g.id}/seats/${encodeURIComponent(u)}`));
          await adoption();
          document.getElementById("adoption-status").textContent = `Reclaimed the ${g.module} seat of ${u}.`;
          return null;
        }) }, `Reclaim ${u}'s seat`)))) : empty("No seat is assigned.")))) : empty("No seat pools."),
    h("p", { id: "adoption-status", role: "status", class: "notice" }),
    out,
    h("h2", {}, "Not used by their holders"),
    table(`Modules users hold but do not use (from usage), biggest saving first${advice.data.length > 15 ? `: 15 of ${advice.data.length}` : ""}`, [
      { label: "User", cell: (a) => a.user },
      { label: "Unused modules", cell: (a) => a.remove.join(", ") || "—" },
      { label: "Would save per month", num: true, cell: (a) => money(a.saving_monthly_minor, advice.currency) },
    ], advice.data.slice(0, 15), { emptyText: "Everyone uses what they hold." }),
    h("h2", {}, "Grants per module"),
    table("Active grants per module", [
      { label: "Module", cell: ([m]) => m },
      { label: "Users holding it", num: true, cell: ([, gs]) => count(gs.filter((g) => g.user).length) },
      { label: "Account-wide", cell: ([, gs]) => gs.some((g) => !g.user) ? "yes" : "no" },
      { label: "Oldest since", cell: ([, gs]) => day(gs.map((g) => g.starts_at).sort()[0]) },
    ], [...Map.groupBy(active, (g) => g.module)].sort((a, b) => a[0].localeCompare(b[0]))));
}

// ---------------------------------------------------------------- Audit log
async function audit() {
  const entries = await all(accountPath("/audit-log"), { limit: 100 }, 3);
  const filter = h("input", { type: "search", name: "filter", autocomplete: "off" });
  const body = h("div", {});
  const draw = () => {
    const q = filter.value.trim().toLowerCase();
    body.replaceChildren(table("Changes in the account, newest first", [
      { label: "When", cell: (e) => when(e.occurred_at) },
      { label: "Who", cell: (e) => e.actor },
      { label: "What", cell: (e) => e.action },
      { label: "On", cell: (e) => `${e.target_type} ${e.target_id}` },
    ], entries.filter((e) => !q || `${e.actor} ${e.action} ${e.target_type} ${e.target_id}`.toLowerCase().includes(q)),
    { emptyText: q ? "No change matches the filter." : "No change recorded yet." }));
  };
  filter.addEventListener("input", draw);
  draw();
  render(field("Filter by who, what or on what", filter), body);
}

export const pages = { budgets, approvals, guardrails, spend, adoption, audit };
