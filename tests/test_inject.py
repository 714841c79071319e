"""Attacks injected into real benign traffic (kdgat.data.inject): layout, labels, rates, the train/test cut,
determinism, and the real WRX dataset through ingest and graphs.

The logic runs on small synthetic benign candump logs; the WRX tests skip when ../shared/data/can is
absent."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from support.can_logs import kdgat
from support.tiny_project import study_params

from kdgat.data.catalog import get
from kdgat.data.formats import read_capture, read_dataset
from kdgat.data.frames import BENIGN, BYTE_COLUMNS
from kdgat.data.graphs import build_graphs
from kdgat.data.inject import KNOWN_ATTACKS, build_injected
from kdgat.data.layout import SCENARIO_FOLDERS, TRAIN_FOLDERS, attack_of_filename, role_of
from kdgat.data.synth import MANIFEST, to_cantt
from kdgat.data.synth_attacks import INJECTION_INTERVAL_S
from kdgat.data.synth_bus import make_vehicle, simulate_vehicle, stream
from kdgat.io import OUTPUT_MARK

STUDY = study_params()  # the repository's params.yaml

PARAMS = STUDY.inject.model_copy(update={"seed": 5, "holdout_attack": "suspension"})
DURATIONS_S = (9.0, 12.0, 15.0)  # short, like the WRX logs (10–36 s)
KEY = ["ts_us", "can_id", *BYTE_COLUMNS]  # a frame as written: µs timestamp, ID, payload


def _write_candump(frames: pl.DataFrame, path: Path) -> None:
    text = to_cantt(frames).select(
        pl.format("({}) can0 {}#{}", "timestamp", "arbitration_id", "data_field").alias("line")
    )
    path.write_text("\n".join(text["line"].to_list()) + "\n")


def _keyed(frames: pl.DataFrame) -> pl.DataFrame:
    return frames.with_columns(ts_us=(pl.col("timestamp") * 1e6).round().cast(pl.Int64))


def _read(root: Path, rel: str) -> pl.DataFrame:
    frames, report = read_capture(root / rel, fmt="cantt", source=rel)
    assert report.bad_lines == 0
    return _keyed(frames)


def _files(manifest: dict[str, Any], **match: str) -> list[dict[str, Any]]:
    return [f for f in manifest["files"] if all(f[k] == v for k, v in match.items())]


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three benign candump captures of one synthetic vehicle."""
    root = tmp_path_factory.mktemp("benign")
    vehicle = make_vehicle(0, seed=11)
    for i, duration in enumerate(DURATIONS_S):
        frames = simulate_vehicle(vehicle, duration, stream(11, 99, i), t0=1_500_000_000.0 + 100 * i)
        _write_candump(frames, root / f"drive-{'abc'[i]}.log")
    (root / "SOURCE.md").write_text("not a capture\n")
    return root


@pytest.fixture(scope="module")
def built(src: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("inject") / "wrx_inject"
    return out, build_injected(src, out, PARAMS)


# ---------------------------------------------------------------- layout


def test_layout_roles_and_holdout_only_in_test_03(built: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = built
    folders = {
        TRAIN_FOLDERS[0],
        TRAIN_FOLDERS[1],
        SCENARIO_FOLDERS["known"],
        SCENARIO_FOLDERS["unknown_attack"],
    }
    assert {p.name for p in out.iterdir() if p.is_dir()} == folders
    assert get("wrx_inject").scenarios == manifest["scenarios"] == ["known", "unknown_attack"]
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.csv"))
    assert written == sorted(f["path"] for f in manifest["files"])
    per_folder: dict[str, Counter[str]] = {}
    for f in manifest["files"]:
        assert attack_of_filename(f["path"]) == f["attack"]  # the reader's type = the injected kind
        role = role_of(f["path"])
        assert role == (
            "train"
            if f["folder"] in TRAIN_FOLDERS
            else {"test_01": "known", "test_03": "unknown_attack"}[f["folder"][:7]]
        )
        assert f["part"] == ("train" if role == "train" else "test")
        per_folder.setdefault(f["folder"], Counter())[f["attack"]] += 1
    n = len(DURATIONS_S)
    assert per_folder[TRAIN_FOLDERS[0]] == {BENIGN: n}
    assert per_folder[TRAIN_FOLDERS[1]] == {k: n for k in KNOWN_ATTACKS}
    assert per_folder[SCENARIO_FOLDERS["known"]] == {BENIGN: n} | {k: n for k in KNOWN_ATTACKS}
    assert per_folder[SCENARIO_FOLDERS["unknown_attack"]] == {"suspension": n}
    frames, _ = read_dataset(out, progress=False)
    types = (
        frames.filter(pl.col("label") == 1)
        .group_by(pl.col("source").str.split("/").list.first())
        .agg(pl.col("attack_type").unique().sort())
    )
    seen = dict(zip(types["source"].to_list(), types["attack_type"].to_list(), strict=True))
    assert seen[SCENARIO_FOLDERS["unknown_attack"]] == ["suspension"]
    assert seen[TRAIN_FOLDERS[1]] == seen[SCENARIO_FOLDERS["known"]] == sorted(KNOWN_ATTACKS)
    assert TRAIN_FOLDERS[0] not in seen


def test_train_copies_reuse_a_part_with_other_streams(src: Path, tmp_path: Path) -> None:
    m = build_injected(src, tmp_path / "out", PARAMS.model_copy(update={"train_copies": 2}))
    dos = _files(m, folder=TRAIN_FOLDERS[1], attack="dos", capture="drive-a.log")
    assert [f["path"].rsplit("/", 1)[1] for f in dos] == ["dos-1.csv", "dos-2.csv"]
    assert dos[0]["bursts"] != dos[1]["bursts"]


# ---------------------------------------------------------------- labels and rates


@pytest.mark.parametrize("folder", [TRAIN_FOLDERS[1], SCENARIO_FOLDERS["known"]])
def test_labels_mark_exactly_the_injected_frames(built: tuple[Path, dict[str, Any]], folder: str) -> None:
    out, manifest = built
    for f in _files(manifest, folder=folder):
        if f["attack"] == BENIGN:
            continue
        base_folder = TRAIN_FOLDERS[0] if f["part"] == "train" else SCENARIO_FOLDERS["known"]
        benign = _read(
            out, _files(manifest, folder=base_folder, capture=f["capture"], attack=BENIGN)[0]["path"]
        )
        frames = _read(out, f["path"])
        kept = frames.filter(pl.col("label") == 0).select(KEY)
        assert kept.sort(KEY).equals(benign.select(KEY).sort(KEY)), f["path"]  # nothing benign lost or added
        injected = frames.filter(pl.col("label") == 1)
        assert injected.height == f["attack_frames"] > 0
        assert set(injected["attack_type"]) == {f["attack"]}


def test_suspension_drops_its_target_and_labels_its_interval(built: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = built
    for f in _files(manifest, attack="suspension"):
        benign = _read(
            out,
            _files(manifest, folder=SCENARIO_FOLDERS["known"], capture=f["capture"], attack=BENIGN)[0][
                "path"
            ],
        )
        frames = _read(out, f["path"])
        t0 = f["start_time"]
        inside = pl.lit(False)
        for b in f["bursts"]:
            inside = inside | pl.col("timestamp").is_between(t0 + b["start_s"] - 1e-6, t0 + b["end_s"] - 1e-6)
        target = int(f["bursts"][0]["target_ids"][0], 16)
        dropped = benign.filter(inside & (pl.col("can_id") == target))
        assert dropped.height > 0
        assert frames.height == benign.height - dropped.height
        assert frames.filter(inside & (pl.col("can_id") == target)).height == 0
        assert frames.filter(inside)["label"].min() == 1 and frames.filter(~inside)["label"].max() == 0


@pytest.mark.parametrize("kind", KNOWN_ATTACKS)
def test_car_hacking_injection_rates(built: tuple[Path, dict[str, Any]], kind: str) -> None:
    out, manifest = built
    payloads, ids = set(), set()
    for f in _files(manifest, attack=kind):
        injected = _read(out, f["path"]).filter(pl.col("label") == 1)
        for b in f["bursts"]:
            start, end = f["start_time"] + b["start_s"], f["start_time"] + b["end_s"]
            burst = injected.filter(pl.col("timestamp").is_between(start, end))
            gaps = np.diff(burst["timestamp"].to_numpy())
            assert np.median(gaps) == pytest.approx(INJECTION_INTERVAL_S[kind], rel=0.05), f["path"]
            assert burst.height == pytest.approx((end - start) / INJECTION_INTERVAL_S[kind], rel=0.02)
        ids |= set(injected["can_id"].to_list())
        payloads |= set(injected.select(BYTE_COLUMNS).rows())
    if kind == "dos":
        assert ids == {0} and payloads == {(0,) * 8}
    elif kind == "fuzzy":
        assert len(ids) > 100 and len(payloads) > 1000
    else:  # one fixed ID for the whole dataset, as in Car-Hacking; one payload per file
        role = manifest["spoof_roles"][kind]
        assert ids == {int(role["can_id"], 16)}
        assert len(payloads) <= len(_files(manifest, attack=kind))
    if kind == "rpm":
        assert manifest["spoof_roles"]["gear"]["can_id"] != role["can_id"]


# ---------------------------------------------------------------- the train/test cut


def _benign_by_part(out: Path, manifest: dict[str, Any], capture: str) -> dict[str, pl.DataFrame]:
    parts: dict[str, list[pl.DataFrame]] = {"train": [], "test": []}
    for f in _files(manifest, capture=capture):
        parts[f["part"]].append(_read(out, f["path"]).filter(pl.col("label") == 0))
    return {k: pl.concat(v) for k, v in parts.items()}


def _check_cut(src: Path, out: Path, manifest: dict[str, Any], fraction: float) -> None:
    for cap in manifest["captures"]:
        parts = _benign_by_part(out, manifest, cap["name"])
        train_ts, test_ts = parts["train"]["timestamp"].to_numpy(), parts["test"]["timestamp"].to_numpy()
        assert train_ts.max() < test_ts.min()  # disjoint in time
        original = _keyed(read_capture(src / cap["name"])[0]).select(KEY)
        whole = pl.concat(
            [
                _read(out, _files(manifest, capture=cap["name"], part=p, attack=BENIGN)[0]["path"])
                for p in ("train", "test")
            ]
        ).select(KEY)
        assert whole.equals(original)  # every frame in exactly one part, in order
        t0, t1 = original["ts_us"][0] / 1e6, original["ts_us"][-1] / 1e6
        assert cap["cut_time"] == pytest.approx(t0 + fraction * (t1 - t0))


def test_train_and_test_parts_never_share_benign_frames(
    src: Path, built: tuple[Path, dict[str, Any]]
) -> None:
    out, manifest = built
    _check_cut(src, out, manifest, PARAMS.train_fraction)


# ---------------------------------------------------------------- determinism, errors, entry points


def test_same_seed_same_bytes_other_seed_differs(
    src: Path, built: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out, manifest = built
    again = tmp_path / "again"
    (again / "stale").mkdir(parents=True)  # a folder kdgat wrote before: replaced as a whole
    (again / OUTPUT_MARK).write_text("")
    assert build_injected(src, again, PARAMS) == manifest
    for f in manifest["files"] + [{"path": MANIFEST}]:
        assert (again / f["path"]).read_bytes() == (out / f["path"]).read_bytes(), f["path"]
    assert not (again / "stale").exists()
    other = build_injected(src, tmp_path / "other", PARAMS.model_copy(update={"seed": 6}))
    assert [f["bursts"] for f in other["files"]] != [f["bursts"] for f in manifest["files"]]
    assert [f["frames"] for f in other["files"] if f["attack"] == BENIGN] == [
        f["frames"] for f in manifest["files"] if f["attack"] == BENIGN
    ]


def test_missing_source_folder_is_a_clear_error(tmp_path: Path, repo_root: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere: folder of benign CAN captures not found.*WRX"):
        build_injected(tmp_path / "nowhere", tmp_path / "out", PARAMS)
    params = STUDY.model_dump(mode="json")
    params["inject"]["source"] = "nowhere"
    (tmp_path / "params.yaml").write_text(json.dumps(params))
    res = subprocess.run(
        [sys.executable, str(repo_root / "stages/inject.py"), "data/raw/wrx_inject"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2
    # the last line is the one-line error (a tracking WARNING about the failed stage may come before it)
    assert res.stderr.splitlines()[-1].startswith("error: nowhere: folder of benign CAN captures not found")
    assert not (tmp_path / "data/raw/wrx_inject").exists()


def test_cli_inject(src: Path, tmp_path: Path) -> None:
    res = kdgat("inject", src, tmp_path / "out", "--seed", "3", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "out" / MANIFEST).read_text())["seed"] == 3


# ---------------------------------------------------------------- the real WRX captures


@pytest.fixture(scope="module")
def wrx(can_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    src = can_data / "wrx-2016"
    if not src.is_dir():
        pytest.skip(f"WRX captures not found at {src}")
    out = tmp_path_factory.mktemp("wrx") / "wrx_inject"
    return src, out, build_injected(src, out, STUDY.inject)


def test_wrx_dataset_cut_and_spoof_targets(wrx: tuple[Path, Path, dict[str, Any]]) -> None:
    src, out, manifest = wrx
    assert len(manifest["captures"]) == 6
    _check_cut(src, out, manifest, STUDY.inject.train_fraction)
    roles = {k: int(v["can_id"], 16) for k, v in manifest["spoof_roles"].items()}
    assert len(set(roles.values())) == 2
    for cap in manifest["captures"]:  # both spoofed IDs are sent in every capture
        ids = set(read_capture(src / cap["name"])[0]["can_id"].to_list())
        assert set(roles.values()) <= ids


def test_wrx_through_ingest_and_graphs(wrx: tuple[Path, Path, dict[str, Any]], tmp_path: Path) -> None:
    _, out, _ = wrx
    p = STUDY
    frames, report = read_dataset(out, fmt=get("wrx_inject").format, progress=False)
    assert report.bad_lines == 0
    meta = build_graphs(frames, p.windows, p.split, p.vocab, tmp_path / "graphs")
    counts = meta["counts"]
    print(
        "\nwrx_inject graphs:",
        json.dumps({s: {"benign": c["benign"], **c["attack_types"]} for s, c in counts.items()}),
    )
    assert set(counts) == {"train", "val", "test_known", "test_unknown_attack"}
    for kind in KNOWN_ATTACKS:  # a few hundred training windows per known kind
        assert counts["train"]["attack_types"][kind] >= 300
        assert counts["test_known"]["attack_types"][kind] >= 100
    assert set(counts["test_unknown_attack"]["attack_types"]) == {"suspension"}
    assert counts["test_unknown_attack"]["attack"] >= 100
    assert min(c["benign"] for c in counts.values()) >= 200
