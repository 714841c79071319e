"""Browser benchmark of the dashboard: per page, the time from navigation to the first chart drawn (a Plot
mark or the force graph in the DOM) and the bytes transferred, in headless Debian chromium (Playwright, a
dev dependency) against a served site — `make preview`, or any URL.

    python -m kdgat.bench.dashboard [--url http://localhost:8787] [--repeats 3] [--out bench/dashboard.json]

Each visit starts with an empty cache (a new browser context), so the bytes are what a first visit
downloads; the time is the median over the repeats. Prints one JSON object."""

from __future__ import annotations

import argparse
import json
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


def visit(browser: Any, url: str) -> tuple[float, int]:
    """Seconds to the first chart, bytes transferred (encoded, as on the wire) until the network is idle."""
    context = browser.new_context()
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    sizes: list[int] = []
    cdp.on("Network.loadingFinished", lambda e: sizes.append(int(e["encodedDataLength"])))
    start = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_selector(FIRST_CHART, state="attached", timeout=120_000)
    first_chart = time.perf_counter() - start
    page.wait_for_load_state("networkidle")
    context.close()
    return first_chart, sum(sizes)


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--url", default="http://localhost:8787")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    pages: dict[str, dict[str, float]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        for path in PAGES:
            runs = [visit(browser, args.url.rstrip("/") + path) for _ in range(args.repeats)]
            pages[path] = {
                "first_chart_s": round(statistics.median(r[0] for r in runs), 3),
                "mb_transferred": round(statistics.median(r[1] for r in runs) / 1e6, 2),
            }
        browser.close()
    result = {"url": args.url, "repeats": args.repeats, "pages": pages}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
