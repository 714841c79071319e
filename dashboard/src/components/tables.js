// Helpers every page shares: results rows as plain objects, the notice for a missing table, a chart width
// with a floor, and the number format of `kdgat results` (kdgat/results/views.py render: floats to 3 decimals, "—" for null).
import {html} from "npm:htl";

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
