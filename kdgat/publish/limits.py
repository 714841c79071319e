"""What a model card says the released models cannot do, read from the study's own records: the metrics
per test scenario (metrics/<ds>.json), the attack kinds each split holds (reports/graphs/<ds>.json) and
each fusion's deployed policy (reports/train/<ds>/fusion_*.json, "policy" and "fixed_alpha").

Each line is derived, never typed in, so a card cannot repeat a weakness the study no longer has nor
leave out one it found; only what no record carries stays as fixed text in card.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kdgat.study import Model

SCENARIOS = {
    "known": "vehicles and attacks seen in training",
    "unknown_vehicle": "a vehicle held out of training",
    "unknown_attack": "an attack kind held out of training",
    "unknown_both": "held-out vehicle and held-out attack",
    "unknown_vehicle_calibrated": "the held-out vehicle, thresholds set on its benign traffic",
    "unknown_both_calibrated": "held-out vehicle and attack, thresholds set on the vehicle's benign traffic",
}
CALIBRATED = (
    "_calibrated"  # suffix of a scenario's split after calibration on the vehicle (kdgat/data/layout.py)
)
FAMILY_NAMES = {"gat": "GAT", "vgae": "VGAE", "fusion": "fusion"}


@dataclass(frozen=True)
class FusionChoice:
    """The policy a fusion stage deployed: the DQN's, or (``fusion.fallback``) the validated fixed α."""

    chosen: str  # "dqn" | "fixed_alpha"
    fixed_alpha: float  # 1: the GAT alone, 0: the VGAE alone


def fusion_choice(report: Mapping[str, Any]) -> FusionChoice:
    """From a fusion stage's report (kdgat/fusion/train.py)."""
    return FusionChoice(str(report["policy"]["chosen"]), float(report["fixed_alpha"]))


def ordered(scenarios: set[str]) -> list[str]:
    """The known scenarios in SCENARIOS' order, then any other alphabetically."""
    return [s for s in SCENARIOS if s in scenarios] + sorted(scenarios - set(SCENARIOS))


def unseen_attacks(counts: Mapping[str, Any]) -> dict[str, list[str]]:
    """Per test scenario, the attack kinds its windows hold that no train window does (the graphs
    report's split counts); scenarios without one are left out."""
    trained = set(counts.get("train", {}).get("attack_types", {}))
    out = {}
    for split, c in counts.items():
        if split.startswith("test_") and (new := sorted(set(c.get("attack_types", {})) - trained)):
            out[split.removeprefix("test_")] = new
    return out


def describe(scenario: str, unseen: Mapping[str, Sequence[str]]) -> str:
    what = SCENARIOS.get(scenario, scenario)
    return f"{what}; unseen attack: {', '.join(unseen[scenario])}" if unseen.get(scenario) else what


def _who(names: Sequence[str], among: Sequence[str]) -> tuple[str, bool]:
    """``names`` as the card says them, and whether the verb is plural: a whole family is named as one."""
    if len(names) == len(among):
        return "every released model", False
    families = [f for f in FAMILY_NAMES if any(Model.parse(m).family == f for m in among)]
    whole = [f for f in families if {m for m in among if Model.parse(m).family == f} <= set(names)]
    if whole and all(Model.parse(m).family in whole for m in names):
        return "every released " + " and ".join(FAMILY_NAMES[f] for f in whole), False
    return ", ".join(names), len(names) > 1


def _calibration_note(scenario: str, alarmed: Sequence[str], metrics: Mapping[str, Any]) -> str:
    """Where the scenario has a calibrated split: what calibrating on the vehicle first gives."""
    cal = scenario + CALIBRATED
    fprs = [metrics[m][cal]["fpr"] for m in alarmed if metrics[m].get(cal, {}).get("fpr") is not None]
    if not fprs:
        return ""
    span = f"{min(fprs):.3f}" if min(fprs) == max(fprs) else f"{min(fprs):.3f}–{max(fprs):.3f}"
    return (
        " A new vehicle needs calibration on its own benign traffic first (`kdgat detect --calibrate LOG`):"
        f" then the FPR is {span} (**{cal}**)."
    )


def _fusion_lines(fusions: Mapping[str, FusionChoice], models: Sequence[str]) -> list[str]:
    by_alpha: dict[float, list[str]] = {}
    for name, choice in fusions.items():
        if choice.chosen == "fixed_alpha":
            by_alpha.setdefault(choice.fixed_alpha, []).append(name)
    out = []
    released = [m for m in models if Model.parse(m).family == "fusion"]
    for alpha, names in sorted(by_alpha.items()):
        whole = sorted(names) == sorted(released)
        who = "Every released fusion" if whole else ", ".join(names)
        plural = len(names) > 1 and not whole
        pron = "their" if plural else "its"
        deployed = {1.0: f"{pron} GAT alone", 0.0: f"{pron} VGAE alone"}.get(alpha, f"a fixed α = {alpha:g}")
        out.append(
            f"{who} {'deploy' if plural else 'deploys'} {deployed} (α = {alpha:g}, the weighting validation"
            " chose), not the DQN: the DQN showed no gain over that α on held-out validation windows"
            " (`fusion.fallback`)."
        )
    return out


def limitations(
    metrics: Mapping[str, Any],
    models: Sequence[str],
    unseen: Mapping[str, Sequence[str]] | None = None,
    fusions: Mapping[str, FusionChoice] | None = None,
) -> list[str]:
    """What the released models cannot do: scenarios where a model flags nearly every benign window
    (FPR ≥ 0.99; with what calibration gives, where the scenario has a calibrated split) or misses
    nearly every attack (recall ≤ 0.01), and fusions that deploy a fixed α instead of their DQN."""
    unseen = unseen or {}
    out = []
    for scenario in ordered({s for m in models for s in metrics.get(m, {})}):
        rows = {m: metrics[m][scenario] for m in models if scenario in metrics.get(m, {})}
        alarmed = [m for m, v in rows.items() if (v.get("fpr") or 0) >= 0.99 and v.get("n_benign")]
        blind = [m for m, v in rows.items() if v.get("recall") is not None and v["recall"] <= 0.01]
        what = describe(scenario, unseen)
        if alarmed:
            who, plural = _who(alarmed, list(rows))
            out.append(
                f"**{scenario}** ({what}): {who} {'flag' if plural else 'flags'} nearly every benign window"
                f" (FPR ≥ 0.99).{_calibration_note(scenario, alarmed, metrics)}"
            )
        if blind:
            who, plural = _who(blind, list(rows))
            out.append(
                f"**{scenario}** ({what}): {who} {'miss' if plural else 'misses'} nearly every attack"
                " (recall ≤ 0.01)."
            )
    return [*out, *_fusion_lines({k: v for k, v in (fusions or {}).items() if k in models}, models)]
