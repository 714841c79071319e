"""ID alignment (kdgat/data/alignment.py): an unseen vehicle's IDs take the slots of known IDs that behave
alike, from its benign calibration traffic alone."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from kdgat.data.alignment import Alignment, Profiles, align, distinct_references, id_profiles
from kdgat.data.synth_bus import make_vehicle, simulate_vehicle
from kdgat.data.vocab import UNKNOWN, Vocabulary


def profiles(name: str, frames: pl.DataFrame, renumber: dict[int, int] | None = None) -> Profiles:
    key = frames["can_id"].to_numpy().astype(np.int64)
    if renumber is not None:
        key = np.array([renumber[int(k)] for k in key], dtype=np.int64)
    payload = np.column_stack([frames[f"b{i}"].to_numpy() for i in range(8)])
    return id_profiles(name, key, frames["timestamp"].to_numpy(), frames["dlc"].to_numpy(), payload)


@pytest.mark.parametrize("index", [0, 2])
def test_a_known_vehicle_renumbered_gets_its_own_ids_back(index: int) -> None:
    """Another capture of a training vehicle whose manufacturer renumbered every ID: each ID is paired
    with the one it was, and that vehicle (not another) is the reference."""
    vehicle, other = make_vehicle(index, 7), make_vehicle(index + 5, 7)
    seen = simulate_vehicle(vehicle, 30.0, np.random.default_rng(1))
    again = simulate_vehicle(vehicle, 30.0, np.random.default_rng(2))
    ids = sorted(set(seen["can_id"].to_list()))
    fresh = np.random.default_rng(3).choice(np.arange(0x100, 0x7FF), len(ids), replace=False)
    renumber = dict(zip(ids, fresh.tolist(), strict=True))
    refs = [
        profiles("other", simulate_vehicle(other, 30.0, np.random.default_rng(4))),
        profiles("seen", seen),
    ]
    result = align(Vocabulary(np.array(ids, dtype=np.int64)), profiles("new", again, renumber), refs)
    assert result.reference == "seen"
    assert {new: result.pairs[new] for new in renumber.values()} == {
        new: old for old, new in renumber.items()
    }


def test_lookup_gives_partners_slots_and_unknown_to_the_rest() -> None:
    vocab = Vocabulary(np.array([0x100, 0x200, 0x300], dtype=np.int64))
    aligned = Alignment(vocab, {0x555: 0x200, 0x556: 0x300}, "ref", 0.1)
    got = aligned.lookup(np.array([0x555, 0x556, 0x100, 0x7FF]))
    # 0x100 is a known number, but this vehicle's calibration never paired it: unknown here
    assert got.tolist() == [2, 3, UNKNOWN, UNKNOWN]
    assert aligned.to_meta()["pairs"] == {"555": "200", "556": "300"}


def test_profiles_survive_the_json_round_trip_and_references_are_one_per_id_set() -> None:
    frames = simulate_vehicle(make_vehicle(1, 7), 10.0, np.random.default_rng(0))
    p = profiles("capture-1", frames)
    back = Profiles.from_meta(p.to_meta())
    assert np.array_equal(back.keys, p.keys) and np.allclose(back.rows, p.rows, atol=1e-4)
    twin = profiles("capture-2", simulate_vehicle(make_vehicle(1, 7), 10.0, np.random.default_rng(1)))
    assert [r.name for r in distinct_references([p, twin])] == ["capture-1"]


def test_traffic_without_a_periodic_id_is_a_clear_error() -> None:
    one_each = id_profiles(
        "calibration", np.arange(5, dtype=np.int64), np.arange(5.0), np.full(5, 8), np.zeros((5, 8), np.uint8)
    )
    vocab = Vocabulary(np.array([1], dtype=np.int64))
    with pytest.raises(ValueError, match=r"calibration has no ID with 3 frames or more .*align_ids"):
        align(vocab, one_each, [one_each])
