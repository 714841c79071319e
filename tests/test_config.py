"""params.yaml validation: one readable message naming the key and what it accepts."""

from pathlib import Path

import pytest
import yaml

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
        ({"split": {"by": "random"}}, "split.by: Input should be 'time_block' or 'file'"),
        ({"windows": {"size": 10, "stride": 20}}, "stride (20) must not exceed size (10)"),
        (
            {"datasets": ["synth", "hcrl_xx"]},
            "unknown dataset(s) ['hcrl_xx']; expected any of ['synth', 'hcrl_ch'",
        ),
        ({"split": {"val_fraction": 1.5}}, "split.val_fraction: Input should be less than 1"),
    ],
)
def test_bad_params_name_key_and_allowed_values(raw: dict, expected: str) -> None:
    with pytest.raises(ParamsError) as err:
        parse_params(raw, "params.yaml")
    assert expected in str(err.value)
    assert str(err.value).startswith("params.yaml: 1 invalid parameter")


def test_params_are_frozen() -> None:
    p = Params()
    with pytest.raises(ValueError):
        p.windows.size = 5  # type: ignore[misc]


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("windows: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
