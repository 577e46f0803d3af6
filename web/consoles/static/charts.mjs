// Charts drawn as inline SVG from data (no library, nothing fetched): bars over time, horizontal bars (funnels,
// rankings) and the budget bar. Colours come from console.css classes; each chart is an image whose title says
// what it shows and every figure in it (what a screen reader reads: the drawn text inside is not), and some pages
// show the same figures in a table beside it.
import { h } from "./console.mjs";

let seq = 0;

/** The smallest 1, 2, 2.5 or 5 times a power of ten at or above ``v`` (> 0): the top of a chart's scale, so its
 * ticks read 0, 1,000, 2,000 rather than 0, 965.34, 1,930.67. */
export function niceCeil(v) {
  const power = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((m) => m * power).find((n) => n >= v);
}

const AXIS_CHAR_PX = 7.5; // width of one character of an axis label, generously (the labels are small text)
const LABEL_CHAR_PX = 9; // of a bar's label or value (larger text)

/** Vertical bars, one per label, stacked by series: {title, labels, series: [{name, values, cls}], format}. */
export function columns({ title, labels, series, format = String, height = 180 }) {
  const id = `chart-${++seq}`;
  const totals = labels.map((_, i) => series.reduce((s, x) => s + (x.values[i] || 0), 0));
  if (!totals.some((t) => t > 0)) return h("p", { class: "empty" }, `${title}: nothing yet.`);
  const max = niceCeil(Math.max(1, ...totals));
  const ticks = [0, 0.5, 1].map((f) => [f, format(Math.round(max * f))]);
  const left = Math.max(56, 10 + AXIS_CHAR_PX * Math.max(...ticks.map(([, text]) => String(text).length)));
  const width = Math.max(320, labels.length * 56 + left + 4);
  const top = 12, bottom = 28, plot = height - top - bottom;
  const band = (width - left - 8) / Math.max(1, labels.length);
  const bars = [];
  labels.forEach((label, i) => {
    let y = top + plot;
    for (const s of series) {
      const v = s.values[i] || 0;
      const hgt = (v / max) * plot;
      y -= hgt;
      if (v > 0) bars.push(h("rect", { class: `bar ${s.cls || ""}`, x: left + i * band + band * 0.15, y, width: band * 0.7, height: hgt },
        h("title", {}, `${label} · ${s.name}: ${format(v)}`)));
    }
    bars.push(h("text", { class: "axis", x: left + i * band + band / 2, y: height - 10, "text-anchor": "middle" }, label));
  });
  const grid = ticks.map(([f, text]) => h("g", {},
    h("line", { class: "grid", x1: left, x2: width - 8, y1: top + plot - f * plot, y2: top + plot - f * plot }),
    h("text", { class: "axis", x: left - 6, y: top + plot - f * plot + 4, "text-anchor": "end" }, text)));
  return h("figure", { class: "chart" },
    h("svg", { role: "img", "aria-labelledby": id, viewBox: `0 0 ${width} ${height}`, width, height, preserveAspectRatio: "xMinYMin meet" },
      h("title", { id }, `${title}: ${labels.map((label, i) => `${label} ${format(totals[i])}`).join("; ")}`), grid, bars),
    series.length > 1 ? legend(series) : null);
}

/** Horizontal bars: {title, rows: [{label, value, note?}], format}. */
export function hbars({ title, rows, format = String }) {
  const id = `chart-${++seq}`;
  const max = Math.max(1, ...rows.map((r) => r.value));
  const values = rows.map((r) => (r.note ? `${format(r.value)} · ${r.note}` : String(format(r.value))));
  const chars = (texts) => Math.max(0, ...texts.map((t) => String(t).length));
  // room for the longest label on the left and the longest value on the right: nothing is cut off
  const labelW = Math.max(150, 12 + LABEL_CHAR_PX * chars(rows.map((r) => r.label)));
  const valueW = Math.max(104, 12 + LABEL_CHAR_PX * chars(values));
  const rowH = 30, barW = 300, width = labelW + barW + valueW, height = rows.length * rowH + 8;
  const items = rows.map((r, i) => h("g", {},
    h("text", { class: "label", x: labelW - 8, y: i * rowH + 20, "text-anchor": "end" }, r.label),
    h("rect", { class: `bar ${r.cls || ""}`, x: labelW, y: i * rowH + 6, height: rowH - 10, width: Math.max(1, (r.value / max) * barW) },
      h("title", {}, `${r.label}: ${format(r.value)}`)),
    h("text", { class: "value", x: labelW + Math.max(1, (r.value / max) * barW) + 6, y: i * rowH + 20 }, values[i])));
  return h("figure", { class: "chart" },
    h("svg", { role: "img", "aria-labelledby": id, viewBox: `0 0 ${width} ${height}`, width, height, preserveAspectRatio: "xMinYMin meet" },
      h("title", { id }, `${title}: ${rows.map((r, i) => `${r.label} ${values[i]}`).join("; ")}`), items));
}

/** A budget's period as one bar: captured, held, left, with the alert thresholds marked. */
export function budgetBar({ title, amount, captured, held, thresholds }) {
  const id = `chart-${++seq}`;
  const width = 600, height = 40, scale = (v) => (Math.min(v, amount) / Math.max(1, amount)) * width;
  const marks = thresholds.filter((t) => t <= 100).map((t) =>
    h("line", { class: "threshold", x1: (t / 100) * width, x2: (t / 100) * width, y1: 0, y2: 30, "vector-effect": "non-scaling-stroke" }));
  return h("div", { class: "budget-meter" }, h("svg", { role: "img", "aria-labelledby": id, class: "budget-bar", viewBox: `0 0 ${width} 30`, preserveAspectRatio: "none" },
    h("title", { id }, title),
    h("rect", { class: "track", x: 0, y: 4, width, height: 22 }),
    h("rect", { class: "bar captured", x: 0, y: 4, width: scale(captured), height: 22 }),
    h("rect", { class: "bar held", x: scale(captured), y: 4, width: scale(captured + held) - scale(captured), height: 22 }),
    marks),
  h("div", { class: "ticks", "aria-hidden": "true" }, thresholds.filter((t) => t <= 100).map((t) => {
    const tick = h("span", {}, `${t}%`);
    tick.style.left = `${t}%`;  // CSSOM, not a style attribute: allowed by the page's CSP
    return tick;
  })),
  legend([{ name: "Captured", cls: "captured" }, { name: "Held for approvals", cls: "held" }, { name: "Alert threshold", cls: "threshold" }]));
}

export function legend(series) {
  return h("ul", { class: "legend" }, series.map((s) => h("li", {}, h("span", { class: `swatch ${s.cls || ""}`, "aria-hidden": "true" }), s.name)));
}
