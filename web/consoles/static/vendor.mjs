// The vendor console's pages, drawn from the public API as the signed-in member of the vendor's staff.
import { columns, hbars, legend } from "./charts.mjs";
import { act, all, api, count, day, empty, h, money, notice, pct, render, table, when } from "./console.mjs";

const field = (label, input, hint) => {
  const id = input.id || (input.id = `f-${Math.random().toString(36).slice(2, 9)}`);
  if (hint) input.setAttribute("aria-describedby", `${id}-hint`);
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null);
};
const priceText = (p) => `${money(p.amount_minor ?? p.unit_amount_minor ?? 0, p.currency)}${p.interval ? ` / ${p.interval}` : ""}`;

// ---------------------------------------------------------------- Catalog
async function catalog() {
  const [modules, revisions] = await Promise.all([api("GET", "/v1/catalog/modules"), api("GET", "/v1/catalog/revisions", { query: { limit: 5 } })]);
  const source = h("textarea", { rows: 14, name: "toml", spellcheck: "false" });
  const file = h("input", { type: "file", accept: ".toml,text/plain", name: "file" });
  file.addEventListener("change", async () => { if (file.files[0]) source.value = await file.files[0].text(); });
  const out = h("div", { class: "out", "aria-live": "polite" });
  const planBox = h("div", {});
  const planButton = h("button", { type: "button", class: "primary" }, "Plan the change");
  planButton.addEventListener("click", () => act(planButton, out, async () => {
    const plan = await api("POST", "/v1/catalog/plan", { body: { toml: source.value } });
    planBox.replaceChildren(planView(plan, source.value));
    return plan.empty ? "Nothing would change." : "Planned. Review the changes, then apply.";
  }));
  render(
    h("p", { class: "sub" }, `Live revision ${revisions.data[0]?.revision ?? "—"}, applied ${when(revisions.data[0]?.applied_at)}.`),
    table("Modules with their current prices", [
      { label: "Module", cell: (m) => h("span", {}, m.name, " ", h("code", {}, m.key)) },
      { label: "Category", cell: (m) => m.category },
      { label: "Status", cell: (m) => m.status },
      { label: "Features", cell: (m) => m.features.map((f) => f.name).join(", ") },
      { label: "Current prices", cell: (m) => m.current_prices.map((p) => `${priceText(p)} (v${p.version})`).join("; ") || "—" },
    ], modules.data),
    h("section", { class: "card", "aria-labelledby": "upload-h" },
      h("h2", { id: "upload-h" }, "Change the catalog"),
      h("p", { class: "hint" }, "Upload the catalog as a TOML file (or paste it), plan to see what would change and whom it affects, then apply. `commerce catalog export` prints the live one."),
      field("Catalog file", file),
      field("Catalog TOML", source),
      planButton, out, planBox));
}

function planView(plan, toml) {
  const out = h("div", { class: "out", "aria-live": "polite" });
  const applyButton = h("button", { type: "button", class: "primary", disabled: plan.empty }, `Apply as revision ${plan.base_revision + 1}`);
  applyButton.addEventListener("click", () => act(applyButton, out, async () => {
    const done = await api("POST", "/v1/catalog/apply", { body: { toml, expected_revision: plan.base_revision } });
    applyButton.disabled = true;
    return done.applied ? `Applied: the catalog is now at revision ${done.revision}.` : "Nothing to apply.";
  }));
  const affected = (c) => [c.affected_owners?.length ? `${c.affected_owners.length} existing owner(s) in ${new Set(c.affected_owners.map((o) => o.account_id)).size} account(s)` : null,
    c.amount_minor_before != null || c.amount_minor_after != null ? `${c.amount_minor_before != null ? money(c.amount_minor_before, c.currency) : "—"} → ${c.amount_minor_after != null ? money(c.amount_minor_after, c.currency) : "—"}` : null].filter(Boolean).join("; ");
  return h("section", { class: "card plan", "aria-labelledby": "plan-h" },
    h("h2", { id: "plan-h" }, `Plan against revision ${plan.base_revision}`),
    h("ul", { class: "summary" }, Object.entries(plan.summary).map(([k, v]) => h("li", {}, `${k}: ${v}`))),
    table("What applying would change", [
      { label: "Change", cell: (c) => h("span", { class: `chg ${c.action}` }, c.action) },
      { label: "What", cell: (c) => `${c.kind} ${c.key}` },
      { label: "Detail", cell: (c) => c.detail },
      { label: "Prices and owners", cell: affected },
    ], plan.changes, { emptyText: "Nothing would change." }),
    applyButton, out);
}

// ---------------------------------------------------------------- Availability
async function availability() {
  const params = new URLSearchParams(location.search);
  const segment = h("select", { name: "segment" }, ["enterprise", "mid_market", "smb"].map((s) => h("option", { value: s, selected: (params.get("segment") || "enterprise") === s }, s)));
  const region = h("select", { name: "region" }, ["us", "eu"].map((r) => h("option", { value: r, selected: (params.get("region") || "us") === r }, r)));
  const grid = h("div", {});
  const detail = h("div", { class: "cell-detail", "aria-live": "polite" });
  const draw = async () => {
    const m = await api("GET", "/v1/catalog/availability", { query: { segment: segment.value, region: region.value } });
    const cell = (mod, role) => m.cells.find((c) => c.module === mod && c.role === role);
    grid.replaceChildren(h("div", { class: "table-wrap" }, h("table", { class: "matrix" },
      h("caption", {}, `Availability for a user with one role in a ${m.segment} account in ${m.region} (catalog revision ${m.revision})`),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Module"), m.roles.map((r) => h("th", { scope: "col" }, r)))),
      h("tbody", {}, m.modules.map((mod) => h("tr", {}, h("th", { scope: "row" }, mod.name),
        m.roles.map((r) => {
          const c = cell(mod.key, r);
          return h("td", { class: `effect ${c.effect}` }, h("button", { type: "button", class: "cell", "aria-label": `${mod.name} for ${r}: ${c.effect.replace("_", " ")}`,
            onclick: () => detail.replaceChildren(h("h2", {}, `${mod.name} for ${r}`), h("p", { class: "reason" }, c.reason),
              h("p", { class: "sub" }, c.policy ? `Decided by policy ${c.policy}${c.rule ? `, rule ${c.rule}` : " (its default)"}.` : "Decided by the catalog's default.")) },
          c.effect.replace("_", " ")));
        })))))));
  };
  segment.addEventListener("change", draw);
  region.addEventListener("change", draw);
  await draw();
  render(h("form", { class: "filters", onsubmit: (e) => e.preventDefault() }, field("Segment", segment), field("Region", region)),
    legend([{ name: "purchasable", cls: "purchasable" }, { name: "approval required", cls: "approval_required" }, { name: "visible", cls: "visible" }, { name: "hidden", cls: "hidden" }]),
    grid, detail);
}

// ---------------------------------------------------------------- Accounts
async function accounts() {
  const list = await all("/v1/accounts", { limit: 100 }, 5);
  render(table("Customer accounts", [
    { label: "Account", cell: (a) => h("a", { href: `/admin/budgets?account=${encodeURIComponent(a.external_id)}` }, a.name) },
    { label: "Segment", cell: (a) => a.segment },
    { label: "Region", cell: (a) => a.region },
    { label: "Currency", cell: (a) => a.currency },
    { label: "Team", cell: (a) => [a.sales_team, a.sales_rep].filter(Boolean).join(" / ") },
  ], list, { emptyText: "No customer account yet." }));
}

// ---------------------------------------------------------------- Suggestions
async function suggestions() {
  const s = await api("GET", "/v1/suggestions/stats");
  const o = s.overall, l = s.lift;
  const ci = l.ci95_low === null ? "not enough data yet" : `${pct(l.ci95_low)} to ${pct(l.ci95_high)}`;
  const revenue = Object.entries(o.revenue_minor).map(([c, v]) => money(v, c)).join(", ") || "none";
  render(
    h("p", { class: "sub" }, `${day(s.since)} to ${day(s.until)}; ${s.holdout_pct}% of users are held out (they see no suggestions); purchases count within ${s.attribution_days} days.`),
    h("section", { "aria-labelledby": "funnel-h" }, h("h2", { id: "funnel-h" }, "Funnel"),
      hbars({ title: "Suggestion funnel: shown, clicked, bought", rows: [
        { label: "Shown", value: o.impressions }, { label: "Clicked", value: o.clicks, note: pct(o.ctr) + " of shown" },
        { label: "Dismissed", value: o.dismissals, cls: "muted" }, { label: "Bought", value: o.purchases, note: pct(o.conversion) + " of shown" }], format: count }),
      h("p", {}, `Revenue from suggestions: ${revenue}.`)),
    h("section", { "aria-labelledby": "lift-h" }, h("h2", { id: "lift-h" }, "Lift against the holdout"),
      s.holdout_pct === 0 && l.holdout_users === 0
        ? h("p", { class: "lift" }, "No holdout: every user sees suggestions, so their lift cannot be measured. Hold some users out with COMMERCE_SUGGEST_HOLDOUT_PCT (for example 10).")
        : [hbars({ title: "Conversion with suggestions against the holdout", rows: [
        { label: "With suggestions", value: Math.round(l.treatment_rate * 10000) / 100, note: `${l.treatment_converted} of ${l.treatment_users} users` },
        { label: "Holdout", value: Math.round(l.holdout_rate * 10000) / 100, cls: "muted", note: `${l.holdout_converted} of ${l.holdout_users} users` }], format: (v) => `${v}%` }),
      h("p", { class: "lift" }, l.difference === null ? "Not enough data for a lift yet." :
        `Lift: ${pct(l.difference)} points (95% confidence interval ${ci})${l.significant ? ", significant." : ", not significant yet."}`)]),
    h("h2", {}, "By module"),
    table("Funnel and lift per module", [
      { label: "Module", cell: (m) => m.module },
      { label: "Shown", num: true, cell: (m) => count(m.funnel.impressions) },
      { label: "Clicked", num: true, cell: (m) => count(m.funnel.clicks) },
      { label: "Bought", num: true, cell: (m) => count(m.funnel.purchases) },
      { label: "Conversion", num: true, cell: (m) => pct(m.funnel.conversion) },
      { label: "Lift (95% CI)", cell: (m) => m.lift.difference === null ? "—" : `${pct(m.lift.difference)} (${pct(m.lift.ci95_low)} to ${pct(m.lift.ci95_high)})` },
    ], s.modules, { emptyText: "No suggestion shown yet." }));
}

// ---------------------------------------------------------------- Sales credit
async function credit() {
  const months = [];
  const now = new Date();
  for (let i = 5; i >= 0; i--) {
    const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - i, 1));
    months.push(d.toISOString().slice(0, 7));
  }
  const reports = await Promise.all(months.map((p) => api("GET", "/v1/billing/sales-credit", { query: { period: p } })));
  const motions = ["land", "expand", "renewal"];
  const cur = reports.flatMap((r) => r.rows)[0]?.currency || "USD";
  const sum = (r, motion) => r.rows.filter((x) => x.motion === motion && x.currency === cur).reduce((s, x) => s + x.amount_minor, 0);
  const latest = reports[reports.length - 1];
  render(
    columns({ title: `Bookings credited per month by motion (${cur})`, labels: months,
      series: motions.map((m) => ({ name: m, values: reports.map((r) => sum(r, m)), cls: m })), format: (v) => money(v, cur) }),
    h("h2", {}, `This month (${latest.period})`),
    table("Credit by team, rep and motion (negative amounts are reversals)", [
      { label: "Team", cell: (r) => r.team || "—" },
      { label: "Rep", cell: (r) => r.rep || "—" },
      { label: "Motion", cell: (r) => r.motion },
      { label: "Bookings", num: true, cell: (r) => count(r.bookings) },
      { label: "Amount", num: true, cell: (r) => money(r.amount_minor, r.currency) },
    ], latest.rows, { emptyText: "No booking credited this month yet." }));
}

// ---------------------------------------------------------------- Webhooks
async function webhooks() {
  const endpoints = await all("/v1/webhook-endpoints", { limit: 50 }, 2);
  if (!endpoints.length) return render(empty("No webhook endpoint is registered. Register one with POST /v1/webhook-endpoints."));
  const sections = await Promise.all(endpoints.map(async (e) => {
    const deliveries = (await api("GET", `/v1/webhook-endpoints/${e.id}/deliveries`, { query: { limit: 20 } })).data;
    const out = h("div", { class: "out", "aria-live": "polite" });
    const rotate = h("button", { type: "button" }, "Rotate the signing secret");
    rotate.addEventListener("click", () => act(rotate, out, async () => {
      const r = await api("POST", `/v1/webhook-endpoints/${e.id}/rotate-secret`, { body: {} });
      return `New secret (shown once): ${r.secret}. The previous one keeps signing until ${when(r.previous_secret_expires_at)}.`;
    }));
    const headingId = `ep-${e.id}`;
    return h("section", { class: "card", "aria-labelledby": headingId },
      h("h2", { id: headingId }, e.url),
      h("p", { class: "sub" }, `${e.status}${e.disabled_reason ? ` (${e.disabled_reason})` : ""}; ${e.consecutive_failures} failure(s) in a row; events: ${e.event_types.join(", ") || "all"}`),
      rotate,
      table(`Recent deliveries to ${e.url}`, [
        { label: "Event", cell: (d) => d.event_type },
        { label: "Status", cell: (d) => h("span", { class: `status ${d.status}` }, d.status) },
        { label: "Attempts", num: true, cell: (d) => count(d.attempt_count) },
        { label: "Last answer", cell: (d) => d.last_response_status ?? "—" },
        { label: "When", cell: (d) => when(d.last_attempt_at || d.created_at) },
        { label: "Action", cell: (d) => d.status === "failed" ? h("button", { type: "button", onclick: (ev) => act(ev.currentTarget, out, async () => {
          await api("POST", `/v1/webhook-endpoints/${e.id}/replay`, { body: { event_id: d.event_id } });
          return `Replaying ${d.event_type}: a new delivery is queued.`;
        }) }, `Replay ${d.event_type}`) : "" },
      ], deliveries, { emptyText: "No delivery yet." }),
      out);
  }));
  render(sections);
}

export const pages = { catalog, availability, accounts, suggestions, credit, webhooks };
