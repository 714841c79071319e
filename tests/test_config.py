"""params.yaml validation: one readable message naming the key and what it accepts."""

from pathlib import Path

import pytest
import yaml

import kdgat.config as config
from kdgat.config import Params, ParamsError, load_params, parse_params

REPO = Path(__file__).resolve().parents[1]


def test_repo_params_are_valid_and_complete() -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    params = load_params(REPO / "params.yaml")
    # Every parameter is spelled out in params.yaml, so DVC tracks it and no code default acts unseen.
    assert raw == params.model_dump(mode="json")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"windows": {"size": 100, "strid": 5}}, "windows.strid: unknown key"),
        ({"ingest": {"format": "pcap"}}, "ingest.format: Input should be 'auto', 'candump'"),
        ({"split": {"by": "random"}}, "split.by: Input should be 'time_block', 'segment' or 'file'"),
        # issue 16, item 10: no inf/NaN, no boolean for a number, ranges of the pairs
        ({"synth": {"minutes": float("inf")}}, "synth.minutes: Input should be a finite number"),
        ({"train": {"lr": float("nan")}}, "train.lr: Input should be a finite number"),
        ({"train": {"seed": True}}, "train.seed: expected a number, got a boolean"),
        ({"fusion": {"epsilon": [1.5, 0.0]}}, "fusion.epsilon.0: Input should be less than or equal to 1"),
        ({"gat_train": {"benign_ratio": [0, 3]}}, "gat_train.benign_ratio.0: Input should be greater than 0"),
        ({"gat_train": {"hardness": [0.3, 1.2]}}, "gat_train.hardness.1: Input should be less than or equal"),
        ({"windows": {"size": 10, "stride": 20}}, "stride (20) must not exceed size (10)"),
        (
            {"datasets": ["synth", "hcrl_xx"]},
            "unknown dataset(s) ['hcrl_xx']; expected any of ['synth', 'hcrl_ch'",
        ),
        ({"split": {"val_fraction": 1.5}}, "split.val_fraction: Input should be less than 1"),
    ],
)
def test_bad_params_name_key_and_allowed_values(raw: dict, expected: str) -> None:
    full = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in raw.items():  # one bad entry in an otherwise complete file
        full[key] = {**full[key], **value} if isinstance(value, dict) else value
    with pytest.raises(ParamsError) as err:
        parse_params(full, "params.yaml")
    assert expected in str(err.value)
    assert str(err.value).startswith("params.yaml: 1 invalid parameter")


def test_params_yaml_is_the_only_place_a_value_is_set() -> None:
    # a default in config.py could disagree with params.yaml, and any path that skipped the file (a test,
    # a command run elsewhere) would run another study than `make run`
    models = [m for m in vars(config).values() if isinstance(m, type) and issubclass(m, config._Strict)]
    models.remove(config.HPOParam)  # a search range: its type says which fields apply, the rest are absent
    assert Params in models and len(models) > 10
    with_default = [
        f"{m.__name__}.{name}" for m in models for name, f in m.model_fields.items() if not f.is_required()
    ]
    assert with_default == []


def test_params_are_frozen() -> None:
    p = load_params(REPO / "params.yaml")
    with pytest.raises(ValueError):
        p.windows.size = 5  # type: ignore[misc]


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("windows: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
