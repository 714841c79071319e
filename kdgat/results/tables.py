"""Terminal / Markdown views of the evaluation metrics (metrics/<dataset>.json: model → scenario → metric)."""

from __future__ import annotations

from typing import Any

# a calibrated scenario (thresholds set on the unseen vehicle's calibration windows) beside its plain one
SCENARIO_ORDER = (
    "known",
    "unknown_vehicle",
    "unknown_vehicle_calibrated",
    "unknown_attack",
    "unknown_both",
    "unknown_both_calibrated",
)


def metrics_table(
    metrics: dict[str, dict[str, dict[str, Any]]], metric: str = "f1", scenarios: list[str] | None = None
) -> str:
    """One row per model, one column per scenario present (or per one of ``scenarios``, in that order);
    '—' where the metric is undefined."""
    present = {s for by_scenario in metrics.values() for s in by_scenario}
    if scenarios is None:
        scenarios = [s for s in SCENARIO_ORDER if s in present] + sorted(present - set(SCENARIO_ORDER))
    lines = [
        f"| model | {' | '.join(scenarios)} |",
        f"| --- |{' ---: |' * len(scenarios)}",
    ]
    for model, by_scenario in metrics.items():
        cells = [by_scenario.get(s, {}).get(metric) for s in scenarios]
        lines.append(f"| {model} | " + " | ".join("—" if v is None else f"{v:.3f}" for v in cells) + " |")
    return "\n".join(lines)
