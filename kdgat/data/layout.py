"""The can-train-and-test folder layout, which every dataset here (the synthetic one included) uses.

    train_01_attack_free/            benign captures
    train_02_with_attacks/           captures with injected attacks
    test_01_known_vehicle_known_attack/
    test_02_unknown_vehicle_known_attack/
    test_03_known_vehicle_unknown_attack/
    test_04_unknown_vehicle_unknown_attack/

A capture's role (training or one test scenario) follows from its top-level folder; captures outside
these folders (a single log file ingested on its own) are training captures.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

TRAIN = "train"
SCENARIOS = {
    "test_01": "known",
    "test_02": "unknown_vehicle",
    "test_03": "unknown_attack",
    "test_04": "unknown_both",
}
SCENARIO_FOLDERS = {
    "known": "test_01_known_vehicle_known_attack",
    "unknown_vehicle": "test_02_unknown_vehicle_known_attack",
    "unknown_attack": "test_03_known_vehicle_unknown_attack",
    "unknown_both": "test_04_unknown_vehicle_unknown_attack",
}
TRAIN_FOLDERS = ("train_01_attack_free", "train_02_with_attacks")

# File-name spellings of the same attack across the public datasets → one canonical name.
ATTACK_ALIASES = {
    "attack-free": "none",
    "attack_free": "none",
    "normal": "none",
    "normal_run_data": "none",
    "benign": "none",
    "dos": "dos",
    "fuzzing": "fuzzy",
    "fuzzy": "fuzzy",
    "gear": "gear",
    "rpm": "rpm",
}


def role_of(source: str) -> str:
    """TRAIN or a scenario name ("known", "unknown_vehicle", ...) for a capture path."""
    top = PurePosixPath(source).parts[0] if source else ""
    for prefix, scenario in SCENARIOS.items():
        if top.startswith(prefix):
            return scenario
    return TRAIN


def attack_of_filename(name: str) -> str:
    """Canonical attack type named by a capture file ("DoS-1.csv" → "dos", "attack-free-2.csv" → "none").

    The stem loses a trailing run number and an HCRL "_dataset" suffix; known aliases are mapped;
    anything else is kept, lower-cased, so new attack kinds (e.g. "force-neutral") survive as they are.
    """
    stem = PurePosixPath(name).name.split(".")[0].lower()
    stem = re.sub(r"[-_]?\d+$", "", stem)
    stem = re.sub(r"_dataset$", "", stem)
    return ATTACK_ALIASES.get(stem, stem)
