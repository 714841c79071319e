"""The can-train-and-test folder layout, which every dataset here (the synthetic one included) uses.

    train_01_attack_free/            benign captures
    train_02_with_attacks/           captures with injected attacks
    test_01_known_vehicle_known_attack/
    test_02_unknown_vehicle_known_attack/
    test_03_known_vehicle_unknown_attack/
    test_04_unknown_vehicle_unknown_attack/
    calibration_*/                    (optional) benign traffic of the unknown vehicle, before deployment

A capture's role (training or one test scenario) follows from its top-level folder (LAYOUT_RULES).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

# One paragraph per line (help texts wrap them to the terminal); the folder list keeps its lines.
LAYOUT_RULES = "\n\n".join(
    [
        "A dataset folder holds its captures (any format of `kdgat ingest --help`, also as .gz, .xz or "
        ".zst) in these top-level folders, at any depth below them:",
        "train_*/  training captures, e.g. train_01_attack_free/, train_02_with_attacks/ "
        "(train and validation are cut from them)\n"
        "test_01_*/  test scenario known (known vehicle, known attack)\n"
        "test_02_*/  test scenario unknown_vehicle\n"
        "test_03_*/  test scenario unknown_attack\n"
        "test_04_*/  test scenario unknown_both\n"
        "calibration_*/  benign captures of the unknown vehicle (the one of test_02 and test_04), "
        "recorded apart from every test capture: a detector installed in that car may learn its normal "
        "traffic first (calibration.seconds of each, used without labels)",
        "A folder with none of these folders is one bag of training captures: the test split is cut "
        "from the end of each. Once one of them exists, a capture outside them is an error, never "
        "silently training data. Files without a capture extension are warned about and left out; "
        "hidden files and README/LICENSE-like files are skipped.",
        "Frames are attacks where the log marks them (HCRL's T flag, the can-train-and-test attack "
        "column; candump and python-can logs hold benign traffic). An attack capture's type comes from "
        "its file name (DoS-1.csv: dos; a run number after - or _ is dropped) or, with --attack-from "
        "folder, from the folder holding it (train_02_with_attacks/tsc/1.csv: tsc).",
    ]
)

TRAIN = "train"
CALIBRATION = "calibration"
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
    """TRAIN, CALIBRATION or a scenario name ("known", "unknown_vehicle", ...) for a capture path."""
    top = PurePosixPath(source).parts[0] if source else ""
    if top.startswith(CALIBRATION):
        return CALIBRATION
    for prefix, scenario in SCENARIOS.items():
        if top.startswith(prefix):
            return scenario
    return TRAIN


def attack_of_filename(name: str) -> str:
    """Canonical attack type named by a capture file ("DoS-1.csv" → "dos", "attack-free-2.csv" → "none").

    The stem loses a run number after - or _ and an HCRL "_dataset" suffix; known aliases are mapped;
    anything else is kept, lower-cased, so new attack kinds (e.g. "force-neutral", "tsc1": digits that
    are part of the name) survive as they are.
    """
    stem = PurePosixPath(name).name.split(".")[0].lower()
    stem = re.sub(r"[-_]\d+$", "", stem)
    stem = re.sub(r"_dataset$", "", stem)
    if not stem or stem.isdigit():  # "1.csv": the name says nothing
        return "unknown"
    return ATTACK_ALIASES.get(stem, stem)


def attack_of_folder(source: str) -> str:
    """Canonical attack type named by the folder holding a capture (".../tsc/1.csv" → "tsc")."""
    parent = PurePosixPath(source).parent.name.lower()
    return ATTACK_ALIASES.get(parent, parent)


def is_layout_folder(top: str) -> bool:
    return (
        top == TRAIN
        or top.startswith(("train_", CALIBRATION))
        or any(top.startswith(prefix) for prefix in SCENARIOS)
    )


def unplaced(sources: list[str]) -> list[str]:
    """Captures (paths relative to the dataset root) that no layout rule places: none when the folder has no
    layout folder at all (one bag of training captures), else those outside every layout folder."""
    tops = [PurePosixPath(s).parts[0] if len(PurePosixPath(s).parts) > 1 else "" for s in sources]
    if not any(is_layout_folder(t) for t in tops):
        return []
    return [s for s, t in zip(sources, tops, strict=True) if not is_layout_folder(t)]
