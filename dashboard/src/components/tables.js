// Helpers every page shares: results rows as plain objects, the notice for a missing table, and the
// number format of `kdgat results` (kdgat/results/views.py render: floats to 3 decimals, "—" for null).
import {html} from "npm:htl";

// Arrow rows → plain objects; int64 columns arrive as BigInt, which Plot and Inputs cannot scale.
export function rows(table) {
  return table.toArray().map((row) =>
    Object.fromEntries(Object.entries(row.toJSON()).map(([k, v]) => [k, typeof v === "bigint" ? Number(v) : v]))
  );
}

export function fixed3(value) {
  return value == null || Number.isNaN(value) ? "—" : value.toFixed(3);
}

// What a page shows in place of a chart whose table the results stage has not written for this dataset.
export function missing(table, dataset) {
  return html`<div class="note missing" data-missing=${table}>
    No <code>${table}</code> rows${dataset ? html` for <b>${dataset}</b>` : ""} in <code>results/</code>:
    run <code>make run</code> (its <code>results</code> stage writes them), then <code>make dashboard</code>.
  </div>`;
}

// Datasets present in a table, sorted; the selector every page starts with.
export function datasetsOf(records) {
  return [...new Set(records.map((d) => d.dataset))].sort();
}
