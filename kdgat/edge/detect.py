"""`kdgat detect`: the exported student watching a stream of CAN frames.

Frames (kdgat/edge/stream.py: a log file or a live python-can bus) → windows of the study's size and
stride → graphs by the pipeline's feature code → the detector's VGAE, GAT and Q-net in ONNX Runtime →
one JSON line per window (``emit``) and a summary at the end. Windows complete in batches of up to
INFER_BATCH on a file and one at a time on a live bus; a window's latency is the time from its
last frame's arrival to its decision.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from kdgat.data.alignment import Alignment, Profiles, align, id_profiles
from kdgat.data.features import GraphBatch
from kdgat.data.graphs import expected_meta, expected_of_meta
from kdgat.data.ranges import no_ranges
from kdgat.data.vocab import UNKNOWN, Vocabulary, format_id
from kdgat.edge.runtime import EdgeModels, graph_inputs
from kdgat.edge.stream import Chunk, Counts, Windower, window_graphs
from kdgat.fusion.policy import vehicle_threshold

TOP_IDS = 3  # IDs reported per window
# Windows per ONNX Runtime call on a file (the fusion policy decides a whole chunk's windows at once): the
# graph models cost more per window in larger calls (docs/edge.md, Speed)
INFER_BATCH = 16


class Stop:
    """Set by SIGINT / SIGTERM: the loop finishes the frames in hand and prints its summary."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def __call__(self) -> bool:
        return self.signal is not None

    @contextmanager
    def installed(self) -> Iterator[Stop]:
        def handler(signum: int, frame: FrameType | None) -> None:
            del frame
            self.signal = signal.Signals(signum).name

        before = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in before.items():
                signal.signal(s, h)


def _top_ids(x: np.ndarray, keys: np.ndarray, k: int) -> list[str]:
    """The window's IDs whose node features lie farthest from benign training traffic: largest mean |z| of
    the scaled features (the scalers are fitted on benign training graphs)."""
    weight = np.abs(x).mean(axis=1)
    return [format_id(int(keys[i])) for i in np.argsort(-weight, kind="stable")[:k]]


class Detector:
    def __init__(self, bundle_dir: Path, threads: int = 1, labelled: bool = False) -> None:
        self.models = EdgeModels(bundle_dir, threads)
        data = self.models.data
        self.size, self.stride = int(data["windows"]["size"]), int(data["windows"]["stride"])
        self.known = Vocabulary.from_meta(data["vocab"])
        self.vocab: Vocabulary | Alignment = self.known  # an Alignment after ``calibrate`` (align_ids)
        self.scalers = data["scalers"]
        # windows.absent_ids: the known vehicles' steady IDs; ``calibrate`` replaces them with the car's
        expected = data.get("expected_ids")
        self.expected: np.ndarray | None = (
            None if expected is None else expected_of_meta(expected["known"], len(self.known))
        )
        # windows.byte_ranges: the known vehicles' byte levels; a calibrated car's one drive bounds none
        ranges = data.get("byte_ranges")
        self.ranges: np.ndarray | None = None if ranges is None else np.asarray(ranges, dtype=np.float32)
        self.labelled = labelled  # a log with labels: each line also says whether the window held an attack
        self.fused_threshold: float | None = (
            None  # set by ``calibrate``: fused >= it alarms, not the policy's 0.5
        )
        self._seen: dict[str, list[float]] | None = None  # VGAE, GAT and fused scores seen, while calibrating
        self._reset()

    def _reset(self) -> None:
        self.counts = Counts()
        self.windows = self.alerts = 0
        self.latency: list[float] = []
        self.seconds = {"parse": 0.0, "windows": 0.0, "features": 0.0, "inference": 0.0}

    def calibrate(self, chunks: Iterator[Chunk]) -> dict[str, Any]:
        """Learn this vehicle's normal traffic before watching it, from the first calibration seconds (the
        bundle's) of ``chunks``, benign traffic used without labels: with ``align_ids`` its IDs are paired
        with the training captures' (kdgat/data/alignment.py, as the graphs stage does for the study's
        unseen vehicle), then the fused scores of its windows set the threshold by the evaluation's own
        rule (kdgat/fusion/policy.vehicle_threshold). Counters start over afterwards."""
        cal = self.models.data["calibration"]
        parts = list(_first_seconds(chunks, float(cal["seconds"])))
        if not parts:
            raise ValueError("the calibration log holds no frame")
        frames = Chunk.join(parts)
        out: dict[str, Any] = {"calibration": True, "seconds": cal["seconds"], "fpr": cal["fpr"]}
        target = id_profiles("calibration", frames.key, frames.ts, frames.dlc, frames.payload)
        if cal.get("align_ids") and cal.get("references"):
            self.vocab = align(self.known, target, [Profiles.from_meta(r) for r in cal["references"]])
            out["alignment"] = self.vocab.to_meta()
        if self.expected is not None:  # the car's own steady IDs, in the slots its IDs now take
            car = expected_meta("calibration", self.vocab.lookup(target.keys), target)
            self.expected = expected_of_meta([car], len(self.known))
            out["expected_ids"] = len(car["slots"])
        if self.ranges is not None:
            self.ranges = no_ranges(1, len(self.known))
        # the fusion's inputs and guard are re-cut on the car's windows first (FusionPolicy.for_vehicle); the
        # fused scores of the same windows, through it, then set the alarm threshold
        seen = self._calibration_scores(frames)
        self.models.policy = self.models.policy.for_vehicle(seen["vgae_score"], seen["p_attack"])
        fused = self._calibration_scores(frames)["fused"]
        self.fused_threshold = vehicle_threshold(fused, float(cal["fpr"]))
        self._reset()
        return out | {"windows": len(fused), "fused_threshold": self.fused_threshold}

    def _calibration_scores(self, frames: Chunk) -> dict[str, np.ndarray]:
        """The VGAE, GAT (p_attack) and fused scores of every window of ``frames``."""
        self._seen = {"vgae_score": [], "p_attack": [], "fused": []}
        for _ in self.windows_of(iter([frames])):
            pass
        seen, self._seen = self._seen, None
        return {k: np.asarray(v) for k, v in seen.items()}

    def windows_of(self, chunks: Iterator[Chunk]) -> Iterator[dict[str, Any]]:
        """One record per complete window, in order."""
        windower = Windower(self.size, self.stride)
        while True:
            t0 = time.perf_counter()
            chunk = next(chunks, None)
            t1 = time.perf_counter()
            self.seconds["parse"] += t1 - t0
            if chunk is None:
                return
            self.counts.frames += len(chunk)
            unknown = self.vocab.lookup(chunk.key) == UNKNOWN
            if unknown.any():
                self.counts.unknown_id_frames += int(unknown.sum())
                self.counts.unknown_ids.update(format_id(int(k)) for k in np.unique(chunk.key[unknown])[:20])
            cut = windower.push(chunk)
            self.seconds["windows"] += time.perf_counter() - t1
            if cut is not None:
                yield from self._score(*cut, t1)

    def graphs(self, frames: Chunk, starts: np.ndarray) -> GraphBatch:
        """The graphs of the windows of ``frames`` that begin at rows ``starts``, as the study builds them."""
        return window_graphs(frames, starts, self.size, self.vocab, self.scalers, self.expected, self.ranges)

    def _score(
        self, frames: Chunk, starts: np.ndarray, first_row: int, arrived: float
    ) -> Iterator[dict[str, Any]]:
        t0 = time.perf_counter()
        batch = self.graphs(frames, starts)
        inputs = graph_inputs(batch)
        t1 = time.perf_counter()
        table = self.models.score(inputs, INFER_BATCH)
        t2 = time.perf_counter()
        self.seconds["features"] += t1 - t0
        self.seconds["inference"] += t2 - t1
        self.latency.extend([t2 - arrived] * len(starts))
        node_ptr = np.concatenate([[0], np.cumsum(batch.n_nodes)])
        fused, decision = table["fused"].tolist(), table["decision"].tolist()
        if self._seen is not None:
            self._seen["fused"].extend(fused)
            self._seen["vgae_score"].extend(table["vgae_score"].tolist())
            self._seen["p_attack"].extend(table["p_attack"].tolist())
        alpha, p_attack = table["alpha"].tolist(), table["p_attack"].tolist()
        vgae_score, anomaly = table["vgae_score"].tolist(), table["vgae_anomaly"].tolist()
        for i in range(len(starts)):
            s = int(starts[i])
            keys = np.unique(frames.key[s : s + self.size])  # node order: sorted IDs (features.py)
            cut = self.fused_threshold
            attack = bool(decision[i]) if cut is None else fused[i] >= cut
            self.windows += 1
            self.alerts += attack
            record = {
                "window": self.windows - 1,
                "first_frame": s + first_row,
                "t_start": float(frames.ts[s]),
                "t_end": float(frames.ts[s + self.size - 1]),
                "attack": attack,
                "fused": round(fused[i], 6),
                "alpha": alpha[i],
                "p_attack": round(p_attack[i], 6),
                "vgae_score": round(vgae_score[i], 6),
                "vgae_anomaly": round(anomaly[i], 6),
                "top_ids": _top_ids(batch.x[node_ptr[i] : node_ptr[i + 1]], keys, TOP_IDS),
            }
            if self.labelled:
                record["label"] = int(batch.y[i])
            yield record

    def summary(self, wall_s: float, stopped_by: str | None) -> dict[str, Any]:
        lat = np.array(self.latency) * 1e3
        return {
            "summary": True,
            "windows": self.windows,
            "alerts": self.alerts,
            "attack_seen": self.alerts > 0,
            "frames_per_s": round(self.counts.frames / wall_s, 1) if wall_s > 0 else None,
            "wall_s": round(wall_s, 3),
            "latency_ms": {
                "p50": round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
                "p99": round(float(np.percentile(lat, 99)), 3) if len(lat) else None,
            },
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "stopped_by": stopped_by,
            "fused_threshold": self.fused_threshold,  # None: the study's own decision (validation thresholds)
            **self.counts.to_dict(),
        }


def _first_seconds(chunks: Iterator[Chunk], seconds: float) -> Iterator[Chunk]:
    """The frames of ``chunks`` up to ``seconds`` after the first one."""
    end = None
    for chunk in chunks:
        end = float(chunk.ts[0]) + seconds if end is None else end
        past = np.flatnonzero(chunk.ts >= end)
        keep = int(past[0]) if past.size else len(chunk)
        if keep:
            yield chunk.rows(0, keep)
        if keep < len(chunk):
            return


def run(
    detector: Detector,
    chunks: Callable[[Stop], Iterator[Chunk]],
    emit: Callable[[str], None],
    alerts_only: bool = False,
    ready: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run until the source ends or a signal arrives; emits the window lines and the summary, returns it.
    ``ready`` is called once the signals are handled and the source is open (a followed log is read from
    its end as it is then)."""
    started = time.perf_counter()
    with Stop().installed() as stop:
        source = chunks(stop)
        if ready is not None:
            ready()
        for record in detector.windows_of(source):
            if record["attack"] or not alerts_only:
                emit(json.dumps(record))
            if stop():
                break
        summary = detector.summary(time.perf_counter() - started, stop.signal)
    emit(json.dumps(summary))
    return summary
