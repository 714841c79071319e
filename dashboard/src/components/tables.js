// Helpers every page shares: results rows as plain objects, the notice for a missing table, a chart width
// with a floor, room for axis labels, the family colours, and the number format of `kdgat results` (kdgat/results/views.py render: floats to 3 decimals, "—" for null).
import {html} from "npm:htl";

export {FAMILY_COLORS} from "../figures/common.js";

// Arrow rows → plain objects; int64 columns arrive as BigInt, which Plot and Inputs cannot scale.
export function rows(table) {
  return table.toArray().map((row) =>
    Object.fromEntries(Object.entries(row.toJSON()).map(([k, v]) => [k, typeof v === "bigint" ? Number(v) : v]))
  );
}

export function fixed3(value) {
  if (value == null || Number.isNaN(value)) return "—";
  // Python's format rounds an exact tie to even, toFixed rounds it up (0.5625: "0.562" against "0.563").
  // A double is a tie at 3 decimals only when it is an odd multiple of 1/16 (k + 1/2 thousandths).
  const sixteenths = value * 16;
  if (Number.isInteger(sixteenths) && sixteenths % 2 !== 0) {
    const below = Math.floor(value * 1000);  // exact: value * 1000 is a multiple of 62.5
    return ((below % 2 === 0 ? below : below + 1) / 1000).toFixed(3);
  }
  return value.toFixed(3);
}

// What a page shows in place of a chart whose table the results stage has not written for this dataset.
export function missing(table, dataset) {
  return html`<div class="note missing" data-missing=${table}>
    No <code>${table}</code> rows${dataset ? html` for <b>${dataset}</b>` : ""} in <code>results/</code>:
    run <code>make run</code> (its <code>results</code> stage writes them), then <code>make dashboard</code>.
  </div>`;
}

// A chart's width with a floor: a render while the page is still being laid out (a transient narrow
// width, seen in CI under load) would otherwise draw bars of negative width.
export const chartWidth = (width, floor = 320) => Math.max(width, floor);

// Plot writes tick labels in a 10 px sans-serif; these names (lowercase, digits, "_") run under 6.2 px a
// character. Margins sized from the labels keep the longest one inside the chart, where Plot's fixed
// defaults cut names such as "test_unknown_both_calibrated".
const CHAR_PX = 6.2;
const longest = (labels) => Math.max(0, ...[...labels].map((l) => String(l).length));

// A margin that holds the longest of `labels` beside a vertical axis (or under one turned 90°), plus the tick.
export const labelRoom = (labels, pad = 14) => Math.ceil(pad + CHAR_PX * longest(labels));

// Tick labels of a horizontal band axis (one band per label over `span` px) that never overlap: level
// where the longest fits its band, broken after each "_" where the longest part does, else turned 90°.
// Returns the axis options and the bottom margin they need.
export function bandAxis(labels, span) {
  const band = span / Math.max(1, labels.length);
  const parts = labels.map((l) => String(l).split("_").map((p, i, all) => (i < all.length - 1 ? `${p}_` : p)));
  if (band >= CHAR_PX * longest(labels) + 8) return {axis: {}, marginBottom: 30};
  if (band >= CHAR_PX * longest(parts.flat()) + 8) {
    const lines = Math.max(...parts.map((p) => p.length));
    return {axis: {tickFormat: (l) => String(l).replaceAll("_", "_\n")}, marginBottom: 18 + 12 * lines};
  }
  return {axis: {tickRotate: -90}, marginBottom: labelRoom(labels, 16)};
}
