"""Browser benchmark of the dashboard: per page, the time from navigation to the first chart drawn (a Plot
mark or the force graph in the DOM) and the bytes transferred, in headless Debian chromium (Playwright, a
dev dependency) against a served site — `make preview`, or any URL.

    python -m kdgat.bench.dashboard [--url http://localhost:8787] [--repeats 3] [--out bench/dashboard.json]
    python -m kdgat.bench.dashboard --table bench/dashboard.json   # the table docs/dashboard.md shows

Each visit starts with an empty cache (a new browser context), so the bytes are what a first visit
downloads, DuckDB's web worker's fetches (its wasm) included; the time is the median over the repeats.
Prints one JSON object, with the date and the machine's load average, which the figures depend on."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"  # Debian's package: Playwright downloads no browser here
# No sandbox (root in CI), no GPU, and nothing that phones home
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = ["/", "/leaderboard", "/kd-transfer", "/dataset-comparison", "/training-curves", "/timeline",
         "/dqn-policy", "/vgae-latent", "/gat-state-space", "/attention", "/can-bus-graph"]  # fmt: skip
FIRST_CHART = "#observablehq-main svg g[aria-label]"
# The pages' titles, as the docs' tables name them
TITLES = dict(zip(PAGES, ["Overview", "Leaderboard", "KD transfer", "Dataset comparison", "Training curves",
                          "Run timeline", "DQN policy", "VGAE latent space", "GAT state space",
                          "Attention heatmap", "CAN bus graph"], strict=True))  # fmt: skip


def visit(browser: Any, url: str) -> tuple[float, int, int]:
    """Seconds to the first chart; bytes transferred until the network is idle (headers and encoded bodies,
    as on the wire) in all, and of them DuckDB's wasm."""
    context = browser.new_context()
    page = context.new_page()
    # Playwright's request events, unlike the page's CDP session, also see what dedicated workers fetch:
    # DuckDB-WASM downloads its wasm from its web worker
    finished: list[Any] = []
    context.on("requestfinished", lambda request: finished.append(request))
    start = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_selector(FIRST_CHART, state="attached", timeout=120_000)
    first_chart = time.perf_counter() - start
    page.wait_for_load_state("networkidle")
    total = duckdb = 0
    for request in finished:
        sizes = request.sizes()  # asks the browser: before the context closes
        # a response from the memory cache reports a body of minus its headers: 0 bytes on the wire
        n = max(0, sizes["responseHeadersSize"] + sizes["responseBodySize"])
        total += n
        if "duckdb" in request.url and request.url.endswith(".wasm"):
            duckdb += n
    context.close()
    return first_chart, total, duckdb


def table(record: dict[str, Any]) -> str:
    """The markdown table of docs/dashboard.md: per page, the first chart and the megabytes transferred
    (DuckDB's wasm apart, where a page downloads it)."""
    lines = ["| page | first chart | transferred | of which DuckDB wasm |", "| --- | ---: | ---: | ---: |"]
    for path, r in record["pages"].items():
        wasm = f"{r['mb_duckdb_wasm']:.1f} MB" if r["mb_duckdb_wasm"] else "—"
        secs, mb = f"{r['first_chart_s']:.1f} s", f"{r['mb_transferred']:.1f} MB"
        lines.append(f"| {TITLES[path]} | {secs} | {mb} | {wasm} |")
    return "\n".join(lines)


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--url", default="http://localhost:8787")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--table", type=Path, metavar="RECORD", help="print the docs' table of RECORD only")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return
    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()[0]
    pages: dict[str, dict[str, float]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        for path in PAGES:
            runs = [visit(browser, args.url.rstrip("/") + path) for _ in range(args.repeats)]
            pages[path] = {
                "first_chart_s": round(statistics.median(r[0] for r in runs), 3),
                "mb_transferred": round(statistics.median(r[1] for r in runs) / 1e6, 2),
                "mb_duckdb_wasm": round(statistics.median(r[2] for r in runs) / 1e6, 2),
            }
        browser.close()
    result = {
        "url": args.url,
        "repeats": args.repeats,
        "date": datetime.datetime.now(datetime.UTC).date().isoformat(),
        "cpus": os.cpu_count(),
        # one-minute load average before and after: on a shared machine the times follow it
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "pages": pages,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
