"""Typed parameters: Pydantic models over params.yaml, validated once before any work starts.

Every model is frozen and forbids unknown keys, so a typo in params.yaml fails loudly instead of
silently falling back to a default.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PARAMS_FILE = Path("params.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class IngestParams(_Strict):
    format: Literal["auto", "candump", "asc", "blf", "trc", "canlog_csv", "hcrl", "hcrl_txt", "cantt"] = (
        "auto"
    )
    on_bad_line: Literal["error", "skip"] = "error"  # skip: drop and count bad lines in the report


class SynthParams(_Strict):
    seed: int = 0
    minutes: float = Field(12.0, gt=0)  # total capture time over all files
    vehicles: int = Field(4, ge=2, le=8)  # the last one is held out as the unknown vehicle
    holdout_attack: Literal["dos", "fuzzy", "gear", "rpm", "replay", "masquerade", "suspension"] = (
        "masquerade"
    )


class WindowParams(_Strict):
    size: int = Field(100, ge=2)  # frames per window
    stride: int = Field(100, ge=1)  # frames between window starts; < size gives overlapping windows

    @model_validator(mode="after")
    def _stride_fits(self) -> WindowParams:
        if self.stride > self.size:
            raise ValueError(f"stride ({self.stride}) must not exceed size ({self.size})")
        return self


class SplitParams(_Strict):
    by: Literal["time_block", "file"] = "time_block"  # file needs several captures per class
    val_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 0


class VocabParams(_Strict):
    min_count: int = Field(1, ge=1)  # IDs seen fewer times in benign training traffic map to unknown


def catalogue_names() -> list[str]:
    """Dataset names in catalog.yaml (read directly, so params are checked before any data code loads)."""
    text = resources.files("kdgat.data").joinpath("catalog.yaml").read_text()
    return list(yaml.safe_load(text))


class Params(_Strict):
    datasets: list[str] = Field(default_factory=lambda: ["synth"], min_length=1)  # the DVC foreach
    ingest: IngestParams = IngestParams()
    synth: SynthParams = SynthParams()
    windows: WindowParams = WindowParams()
    split: SplitParams = SplitParams()
    vocab: VocabParams = VocabParams()

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, names: list[str]) -> list[str]:
        known = catalogue_names()
        bad = [n for n in names if n not in known]
        if bad:
            raise ValueError(f"unknown dataset(s) {bad}; expected any of {known}")
        if len(set(names)) != len(names):
            raise ValueError("a dataset is listed twice")
        return names


class ParamsError(ValueError):
    """params.yaml is invalid; the message names each bad key and what it accepts."""


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: {err.error_count()} invalid parameter(s)"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (check spelling; see kdgat/config.py)")
            continue
        got = "" if e["type"] == "missing" else f" (got {e.get('input')!r})"
        lines.append(f"  {key}: {e['msg']}{got}")
    return "\n".join(lines)


def parse_params(raw: object, source: str = "params") -> Params:
    try:
        return Params.model_validate(raw or {})
    except ValidationError as err:
        raise ParamsError(format_validation_error(err, source)) from None


@lru_cache(maxsize=8)
def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml (cached: loaded once per process)."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: parameters file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    return parse_params(raw, str(path))
