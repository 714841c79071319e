"""Binary detection metrics and curves (scikit-learn + numpy, no torch): the leaf evaluation and fusion share.

Conventions (scikit-learn's; cross-checked against torchmetrics in tests/test_evaluate.py):
- the positive class is 1 (attack); ``score`` is higher = more likely an attack; a decision is 0/1;
- a ROC/PR point is taken at every distinct score value, predicting attack for ``score >= threshold``;
- ROC-AUC is the trapezoid under the ROC curve; PR-AUC is average precision, Σ (Rₙ − Rₙ₋₁)·Pₙ (no
  interpolation, so it is not inflated by the trapezoid rule on a PR curve);
- a metric whose denominator is zero (e.g. recall with no attack graphs, AUC with one class) is None, written
  as null in JSON, rather than a substitute 0 that would read as a measured failure.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import sklearn.metrics as skm
from numpy.typing import ArrayLike, NDArray

FPR_TARGETS: dict[str, float] = {"dr_at_fpr_1pct": 0.01, "dr_at_fpr_0p1pct": 0.001}
MAX_CURVE_POINTS = 200

Metric = float | int | None


class Curve(NamedTuple):
    x: NDArray[np.float64]  # fpr (ROC) or recall (PR)
    y: NDArray[np.float64]  # tpr (ROC) or precision (PR)
    threshold: NDArray[np.float64]  # score >= threshold → attack; +inf for the "nothing flagged" point


def check_binary(
    y: ArrayLike, score: ArrayLike | None = None, what: str = "predictions"
) -> NDArray[np.int64]:
    """y as int64 0/1 (raises naming ``what`` otherwise); ``score`` must match its length and be finite."""
    yy = np.asarray(y)
    if yy.ndim != 1:
        raise ValueError(f"{what}: labels must be 1-D, got shape {yy.shape}")
    bad = ~np.isin(yy, (0, 1))
    if bad.any():
        raise ValueError(f"{what}: labels must be 0/1; row {int(np.argmax(bad))} holds {yy[bad][0]!r}")
    if score is not None:
        s = np.asarray(score, dtype=np.float64)
        if s.shape != yy.shape:
            raise ValueError(f"{what}: {s.shape[0] if s.ndim else 0} scores for {yy.shape[0]} labels")
        nonfinite = ~np.isfinite(s)
        if nonfinite.any():
            raise ValueError(f"{what}: score is not finite at row {int(np.argmax(nonfinite))}")
    return yy.astype(np.int64)


def roc_curve(y: ArrayLike, score: ArrayLike, drop_intermediate: bool = True) -> Curve | None:
    """(fpr, tpr, threshold) from the all-benign point (0, 0, +inf) up; None unless both classes occur.
    ``drop_intermediate`` keeps only the corners (no area or optimum lies between them)."""
    yy = check_binary(y, score)
    if yy.min(initial=1) == yy.max(initial=0):
        return None
    fpr, tpr, thr = skm.roc_curve(yy, np.asarray(score, np.float64), drop_intermediate=drop_intermediate)
    return Curve(fpr.astype(np.float64), tpr.astype(np.float64), thr.astype(np.float64))


def pr_curve(y: ArrayLike, score: ArrayLike) -> Curve | None:
    """(recall, precision, threshold) from (0, 1, +inf) by descending threshold; None unless both classes."""
    yy = check_binary(y, score)
    if yy.min(initial=1) == yy.max(initial=0):
        return None
    precision, recall, thr = skm.precision_recall_curve(yy, np.asarray(score, np.float64))
    return Curve(
        recall[::-1].astype(np.float64), precision[::-1].astype(np.float64), np.r_[np.inf, thr[::-1]]
    )


def roc_auc(y: ArrayLike, score: ArrayLike) -> float | None:
    yy = check_binary(y, score)
    return None if yy.min(initial=1) == yy.max(initial=0) else float(skm.roc_auc_score(yy, score))


def average_precision(y: ArrayLike, score: ArrayLike) -> float | None:
    yy = check_binary(y, score)
    return None if yy.min(initial=1) == yy.max(initial=0) else float(skm.average_precision_score(yy, score))


def tpr_at_fpr(y: ArrayLike, score: ArrayLike, max_fpr: float) -> float | None:
    """Detection rate of the best threshold whose false-positive rate is at most ``max_fpr`` (no
    interpolation: an operating point a threshold can actually reach). With fewer than 1/max_fpr benign
    graphs this is the detection rate at zero false alarms."""
    c = roc_curve(y, score, drop_intermediate=False)
    if c is None:
        return None
    ok = c.x <= max_fpr + 1e-12
    return float(c.y[ok].max())


def youden_threshold(y: ArrayLike, score: ArrayLike) -> tuple[float, float] | None:
    """(threshold, J) maximising Youden's J = TPR − FPR; ties go to the highest cut (fewest alarms). The
    cut sits halfway between the lowest score it keeps and the highest score below that: every cut in
    that gap gives the same J on these scores, and its middle leaves the most room on both sides for
    scores these did not show (an attack type validation lacks scores between the two classes). None if
    one class is missing or no threshold beats chance (J <= 0)."""
    c = roc_curve(y, score, drop_intermediate=False)
    if c is None:
        return None
    j = c.y - c.x
    best = int(np.argmax(j >= j.max() - 1e-12))  # float ties (2/3 vs 1 − 1/3) count as ties
    if j[best] <= 0:
        return None
    lowest_kept = float(c.threshold[best])
    s = np.asarray(score, dtype=np.float64)
    below = s[s < lowest_kept]
    return (lowest_kept + float(below.max())) / 2 if below.size else lowest_kept, float(j[best])


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def binary_metrics(
    y: ArrayLike, score: ArrayLike, decision: ArrayLike, what: str = "predictions"
) -> dict[str, Metric]:
    """Every metric of one model on one scenario; see the module docstring for the None convention."""
    yy = check_binary(y, score, what)
    dd = check_binary(decision, None, f"{what} (decision)")
    if dd.shape != yy.shape:
        raise ValueError(f"{what}: {dd.size} decisions for {yy.size} labels")
    s = np.asarray(score, dtype=np.float64)
    tp = int(np.sum((yy == 1) & (dd == 1)))
    fp = int(np.sum((yy == 0) & (dd == 1)))
    fn = int(np.sum((yy == 1) & (dd == 0)))
    tn = int(np.sum((yy == 0) & (dd == 0)))
    recall, specificity = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    mcc_den = float(tp + fp) * float(tp + fn) * float(tn + fp) * float(tn + fn)
    out: dict[str, Metric] = {
        "n": int(yy.size),
        "n_attack": tp + fn,
        "n_benign": tn + fp,
        "tn": tn,
        "fp": fp,
        "fn": fn,
        "tp": tp,
        "accuracy": _ratio(tp + tn, yy.size),
        "precision": _ratio(tp, tp + fp),
        "recall": recall,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "specificity": specificity,
        "balanced_accuracy": None if recall is None or specificity is None else (recall + specificity) / 2,
        "mcc": float((tp * tn - fp * fn) / np.sqrt(mcc_den)) if mcc_den > 0 else None,
        "fpr": _ratio(fp, fp + tn),
        "fnr": _ratio(fn, fn + tp),
        "roc_auc": roc_auc(yy, s),
        "pr_auc": average_precision(yy, s),
    }
    for key, target in FPR_TARGETS.items():
        out[key] = tpr_at_fpr(yy, s, target)
    return out


def thin(curve: Curve, max_points: int = MAX_CURVE_POINTS) -> Curve:
    """At most ``max_points`` points, evenly spaced along the curve, first and last kept."""
    n = curve.x.size
    if n <= max_points:
        return curve
    keep = np.unique(np.round(np.linspace(0, n - 1, max_points)).astype(np.int64))
    return Curve(curve.x[keep], curve.y[keep], curve.threshold[keep])
