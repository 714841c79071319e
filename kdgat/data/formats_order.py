"""Which frames of a capture are out of time order: the one rule every log format shares.

Timestamps must not go backwards within a file. When they do, the rule keeps the longest run in order
it can see: each frame is compared with the HORIZON frames on either side of it, and of two frames out of
order with each other the one out of order with more of its neighbours goes (on a tie, the later one: a
swap drops the frame that goes backwards). So a burst of a few frames far in the future, or far in the
past, is the bad part, not the thousands of good frames around it that a running maximum of the clock
would drop. Frames still out of order after that (over
more than the horizon) are dropped by the running clock, so what is kept is always sorted.

Vectorized: 2·HORIZON passes over the timestamps, and only when some timestamp goes backwards. A file read
a part at a time (formats_core.Finisher) gets the same verdicts: a part keeps its last HOLD candidates back
for the next, and the Clock carries the timestamps of the last HOLD it decided.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

HORIZON = 32  # frames on either side a frame is compared with: bursts of up to 15 are found as such
HOLD = 2 * HORIZON  # a frame's verdict reads its neighbours' counts, which read theirs


@dataclass
class Clock:
    """What the rule carries from one part of a file to the next."""

    recent: np.ndarray = field(default_factory=lambda: np.empty(0))  # the last HOLD timestamps decided
    latest: float = -np.inf  # the latest timestamp kept so far
    latest_line: int = 0  # where the clock reached it


def out_of_step(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(drop, ahead) per frame: dropped as the one to blame in some pair of frames within HORIZON of each
    other that are out of order, and, among those, ahead (out of order with more frames after it than
    before it: a jump into the future) rather than behind. NaN compares as in order with everything."""
    n = ts.size
    after = np.zeros(n, dtype=np.int32)  # frames within HORIZON after it, stamped earlier
    before = np.zeros(n, dtype=np.int32)  # frames within HORIZON before it, stamped later
    for d in range(1, min(HORIZON, n - 1) + 1):
        pair = ts[:-d] > ts[d:]
        after[:-d] += pair
        before[d:] += pair
    degree = after + before
    drop = np.zeros(n, dtype=bool)
    for d in range(1, min(HORIZON, n - 1) + 1):
        pair = ts[:-d] > ts[d:]
        drop[:-d] |= pair & (degree[d:] < degree[:-d])  # the earlier frame, out of step with more
        drop[d:] |= pair & (degree[:-d] <= degree[d:])  # the later one, also on a tie
    return drop, drop & (after > before)


def judge(
    ts: np.ndarray, lines: np.ndarray, clock: Clock, decided: int, unit: str
) -> tuple[np.ndarray, np.ndarray, str]:
    """(bad, ahead, why) for the first ``decided`` of a part's candidate timestamps ``ts`` (the rest only
    looked at): ``why`` says what is wrong with the first bad frame ("" when none is). Moves ``clock`` on
    past the decided ones."""
    bad = ahead = np.zeros(decided, dtype=bool)
    why = ""
    seen = np.r_[clock.recent, ts]
    k = clock.recent.size
    if (np.diff(seen) < 0).any() or (ts.size and ts[0] < clock.latest):
        drop, jump = out_of_step(seen)
        drop, ahead = drop[k : k + decided], jump[k : k + decided]
        rest = np.flatnonzero(~drop)
        latest = np.maximum.accumulate(np.r_[clock.latest, ts[rest]])
        late = np.zeros(decided, dtype=bool)
        late[rest] = ts[rest] < latest[:-1]
        bad = drop | late
    if bad.any():
        first = int(np.argmax(bad))
        if ahead[first]:
            nxt = first + 1 + int(np.argmax(ts[first + 1 :] < ts[first]))
            why = f"timestamp {ts[first]:.6f} is later than the next frames ({ts[nxt]:.6f} at {unit} "
            why += f"{lines[nxt]})"
        else:  # where the clock had already reached a later time: this part, or the parts before it
            prev = int(np.argmax(ts[:first])) if first else -1
            at = (
                (ts[prev], lines[prev])
                if first and ts[prev] > clock.latest
                else (clock.latest, clock.latest_line)
            )
            why = f"timestamp {ts[first]:.6f} is earlier than {at[0]:.6f} at {unit} {at[1]}"
    kept = np.flatnonzero(~bad)
    clock.recent = seen[: k + decided][-HOLD:]
    if kept.size and ts[kept].max() > clock.latest:
        top = kept[np.argmax(ts[kept])]
        clock.latest, clock.latest_line = float(ts[top]), int(lines[top])
    return bad, ahead, why
