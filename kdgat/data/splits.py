"""Which split each window belongs to, chosen so that no information crosses from evaluation to training.

The original work split windows at random after pooling folders that held the same benign capture
twice, so identical windows sat in train and validation. Here:

- test captures (layout.role_of) form one split per scenario and never touch training;
- training captures split into train/val either by contiguous time blocks (the last ``val_fraction`` of
  each capture's windows, after an embargo gap of ceil(size / stride) windows so that no overlapping
  window straddles the boundary), by segments (the same cut made in every run of benign windows and
  every run of attack windows of a capture, with an embargo gap after each validation block, so that
  train and val keep the capture's class balance; a tail cut moves the attacks of a capture attacked
  near its end all to val) or by whole captures (chosen from the seed, stratified by whether a
  capture holds attacks);
- a dataset without test captures holds out the last ``val_fraction`` of each training capture's windows
  as "test_known" (same embargo), whichever way train/val is then split; meta.json says so;
- windows whose exact content (content_hashes) also occurs in train, or for a test window in val, are
  dropped and counted. The embargo gap is one window wider than strictly needed, which also leaves a
  stride of frames between the blocks.

Windows are addressed in file-major order: the windows of file 0, then of file 1, and so on.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from kdgat.config import SplitParams, WindowParams
from kdgat.data.layout import CALIBRATION, SCENARIOS, TRAIN
from kdgat.io import DataError

NOT_STORED = -1  # split code of a window that is stored nowhere (embargo gap or cross-split duplicate)
TRAIN_SPLIT = "train"
VAL_SPLIT = "val"
CALIBRATION_SPLIT = CALIBRATION  # benign windows of the unknown vehicle: thresholds there, never training


def scenario_split(scenario: str) -> str:
    return f"test_{scenario}"


@dataclass
class SplitPlan:
    names: list[str]  # split code i means names[i]
    code: np.ndarray  # int8 per window; NOT_STORED for windows in no split
    heldout_test: bool  # test_known was cut from the training captures (the dataset had no test captures)
    embargo_windows: int
    embargo_dropped: int = 0
    notes: list[str] = field(default_factory=list)


def embargo(windows: WindowParams) -> int:
    """Windows left out between two blocks: enough that no frame is shared across the gap."""
    return math.ceil(windows.size / windows.stride)


def _cut_tail(n: int, fraction: float, gap: int) -> tuple[int, int]:
    """(head, tail) window counts for a block of n windows; tail = 0 when n is too short to split."""
    tail = max(1, round(fraction * n))
    head = n - tail - gap
    return (n, 0) if head < 1 else (head, tail)


def _val_files(files: list[int], has_attack: np.ndarray, params: SplitParams, notes: list[str]) -> set[int]:
    picked: set[int] = set()
    for stratum, kind in ((False, "benign"), (True, "attack")):
        members = [f for f in files if bool(has_attack[f]) == stratum]
        if len(members) < 2:
            if members:
                notes.append(
                    f"only one {kind} training capture: it stays in train, so val has no {kind} capture"
                )
            continue
        k = min(len(members) - 1, max(1, round(params.val_fraction * len(members))))
        rng = np.random.default_rng([params.seed, int(stratum)])
        picked.update(members[i] for i in rng.choice(len(members), size=k, replace=False))
    return picked


def assign_splits(
    roles: Sequence[str],
    n_windows: Sequence[int] | np.ndarray,
    has_attack: Sequence[bool] | np.ndarray,
    windows: WindowParams,
    params: SplitParams,
    sources: Sequence[str] | None = None,
    window_attack: np.ndarray | None = None,
) -> SplitPlan:
    """Split code per window, for files given in the order their windows are laid out.

    ``roles`` are layout.role_of(source) per file, ``has_attack`` whether the file holds any attack frame,
    ``window_attack`` whether each window does (needed by ``by: segment``).
    """
    if params.by == "segment" and window_attack is None:
        raise ValueError("split.by 'segment' needs the label of every window")
    n_windows = np.asarray(n_windows, dtype=np.int64)
    has_attack = np.asarray(has_attack, dtype=bool)
    names_of = list(sources) if sources is not None else [f"file {i}" for i in range(len(roles))]
    scenario_order = list(SCENARIOS.values())
    scenarios = sorted({r for r in roles if r not in (TRAIN, CALIBRATION)}, key=scenario_order.index)
    heldout = not scenarios
    names = [TRAIN_SPLIT, VAL_SPLIT] + [scenario_split(s) for s in (scenarios or ["known"])]
    if CALIBRATION in roles:
        names.append(CALIBRATION_SPLIT)
    gap = embargo(windows)
    plan = SplitPlan(names, np.full(int(n_windows.sum()), NOT_STORED, np.int8), heldout, gap)
    offsets = np.concatenate([[0], np.cumsum(n_windows)])

    usable: dict[int, int] = {}  # training file → leading windows left for train/val
    for f, role in enumerate(roles):
        lo, n = int(offsets[f]), int(n_windows[f])
        if role == CALIBRATION:
            plan.code[lo : lo + n] = names.index(CALIBRATION_SPLIT)
        elif role != TRAIN:
            plan.code[lo : lo + n] = names.index(scenario_split(role))
        elif heldout:
            head, tail = _cut_tail(n, params.val_fraction, gap)
            plan.code[lo + n - tail : lo + n] = names.index(scenario_split("known"))
            usable[f] = head if tail else n
            if n and not tail:
                plan.notes.append(f"{names_of[f]}: too short to hold out a test block")
        else:
            usable[f] = n

    val_files = _val_files(list(usable), has_attack, params, plan.notes) if params.by == "file" else set()
    for f, n in usable.items():
        lo = int(offsets[f])
        if params.by == "file":
            plan.code[lo : lo + n] = 1 if f in val_files else 0
            continue
        if params.by == "segment":
            assert window_attack is not None
            _cut_segments(plan.code, lo, window_attack[lo : lo + n], params.val_fraction, gap)
            continue
        head, tail = _cut_tail(n, params.val_fraction, gap)
        plan.code[lo : lo + head] = 0
        plan.code[lo + n - tail : lo + n] = 1
        if n and not tail:
            plan.notes.append(f"{names_of[f]}: too short for a validation block, all in train")
    plan.embargo_dropped = int((plan.code == NOT_STORED).sum())
    return plan


def _cut_segments(code: np.ndarray, lo: int, attack: np.ndarray, fraction: float, gap: int) -> None:
    """Train head and val tail in every run of same-label windows of one capture (``by: segment``); the
    first ``gap`` windows after a val block stay out, so no window shares frames across the cut."""
    change = np.flatnonzero(np.diff(attack.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [attack.size]])
    after_val = False
    for a, b in itertools.pairwise(bounds.tolist()):
        a = a + gap if after_val else a
        head, tail = _cut_tail(b - a, fraction, gap) if b > a else (0, 0)
        code[lo + a : lo + a + head] = 0
        code[lo + b - tail : lo + b] = 1
        after_val = tail > 0


class SplitError(DataError):
    """A split the models cannot learn or be judged on; the message says what to change."""


def check_splits(
    plan: SplitPlan, window_attack: np.ndarray, params: SplitParams, batch_size: int
) -> dict[str, dict[str, int]]:
    """Benign and attack windows per split; raises SplitError naming every split that cannot work:
    validation or a test scenario without benign or without attack windows (no threshold can be chosen,
    no detection rate or false-alarm rate measured), a training split with fewer attack windows than a
    batch (``batch_size``), a calibration split with attack frames."""
    counts = {
        name: {
            "benign": int(((plan.code == c) & ~window_attack).sum()),
            "attack": int(((plan.code == c) & window_attack).sum()),
        }
        for c, name in enumerate(plan.names)
    }
    resplit = (
        f"add training captures, or change split.by (now {params.by}; time_block | segment | file) "
        f"or split.val_fraction (now {params.val_fraction})"
    )
    problems = []
    for name, n in counts.items():
        if name == CALIBRATION_SPLIT:
            if n["attack"]:
                problems.append(
                    f"{CALIBRATION_SPLIT} has {n['attack']} windows with attack frames: calibration_*/ "
                    "holds the unknown vehicle's benign traffic only"
                )
            continue
        if name == TRAIN_SPLIT:
            if n["attack"] < batch_size:
                problems.append(
                    f"train has {n['attack']} attack windows, fewer than a batch ({batch_size}): add "
                    "captures with attacks, lower train.batch_size, or change split.by or split.val_fraction"
                )
            continue
        missing = [kind for kind in ("benign", "attack") if n[kind] == 0]
        if not missing:
            continue
        lacking = (
            f"{name} has no {' and no '.join(missing)} window ({n['benign']} benign, {n['attack']} attack)"
        )
        if name == VAL_SPLIT or plan.heldout_test:
            problems.append(f"{lacking}: {resplit}")
        else:
            problems.append(f"{lacking}: add captures with {' and '.join(missing)} traffic to its folder")
    if problems:
        raise SplitError("unworkable splits: " + "; ".join(problems))
    return counts


FEW_BATCHES = 10  # attack batches per epoch below which training is warned about


def split_warnings(counts: dict[str, dict[str, int]], batch_size: int) -> list[str]:
    """What may go wrong in training though the splits can work: so few attack windows that an epoch of
    the curriculum (every attack window plus a few benign per attack) is a handful of optimizer steps (the
    weight average then reaches back one epoch only, train.ema_decay capped at 1 - 1/steps)."""
    attack = counts.get(TRAIN_SPLIT, {}).get("attack", 0)
    if attack >= FEW_BATCHES * batch_size:
        return []
    return [
        f"train has {attack} attack windows, under {FEW_BATCHES} batches of {batch_size}: an epoch is a few "
        "optimizer steps, too few for the model to see much of the attacks; "
        "lower train.batch_size, or add captures with attacks"
    ]


_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, elementwise (uint64 arithmetic wraps by design)."""
    z = z ^ (z >> np.uint64(30))
    z *= _M1
    z ^= z >> np.uint64(27)
    z *= _M2
    z ^= z >> np.uint64(31)
    return z


def content_hashes(key: np.ndarray, dlc: np.ndarray, payload: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """128-bit hash [W, 2] uint64 of windows given per frame as [W, S] arrays.

    ``key`` int64 ID keys, ``dlc``, ``payload`` (the 8 bytes as one uint64) and ``gaps`` [W, S - 1], the
    seconds between consecutive frames, rounded here to µs so that a replayed window matches whatever
    its absolute time. Each frame's fields and position are combined with odd multipliers and mixed
    into 64 bits; the window's hash is the wrapping sum and the xor of those, two different combiners
    that equal windows share and unequal ones almost surely do not.
    """
    W, S = key.shape
    h = np.zeros((W, S), dtype=np.int64)
    h[:, 1:] = np.rint(gaps * 1e6)
    h = h.view(np.uint64)
    h *= _M1
    h += payload
    h += key.view(np.uint64) * _M2
    h += dlc.astype(np.uint64) << np.uint64(40)
    h += np.arange(S, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    h = _mix(h)
    return np.stack([h.sum(axis=1, dtype=np.uint64), np.bitwise_xor.reduce(h, axis=1)], axis=1)


def drop_duplicates(hashes: np.ndarray, plan: SplitPlan) -> dict[str, int]:
    """Drop val/test windows identical to a train window, and test windows identical to a val window.

    ``hashes`` is [W, 2] uint64 (a 128-bit content hash per window). Duplicates within one split, and
    across two test scenarios, are kept: neither lets training see evaluation data. Returns the number
    dropped per split and marks them NOT_STORED in ``plan.code``.
    """
    keys = np.ascontiguousarray(hashes, dtype=np.uint64).view("V16").ravel()
    reference = keys[plan.code == 0]
    dropped: dict[str, int] = {}
    for c, name in enumerate(plan.names[1:], start=1):
        member = np.flatnonzero(plan.code == c)
        dup = member[np.isin(keys[member], reference)]
        plan.code[dup] = NOT_STORED
        dropped[name] = len(dup)
        if name == VAL_SPLIT:
            reference = np.concatenate([reference, keys[plan.code == c]])
    return dropped
