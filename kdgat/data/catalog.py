"""The dataset catalogue (catalog.yaml beside this file): what each dataset is, where it comes from,
how it is laid out and which test scenarios it has."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

from kdgat.data.layout import SCENARIO_FOLDERS

RAW_ROOT = Path("data/raw")


class DatasetEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    title: str
    source: str
    layout: str
    format: str
    vehicles: str
    attacks: list[str]
    scenarios: list[str]
    checksum: str | None = None

    def raw_dir(self, root: Path = RAW_ROOT) -> Path:
        return root / self.name


@lru_cache(maxsize=1)
def catalogue() -> dict[str, DatasetEntry]:
    text = resources.files("kdgat.data").joinpath("catalog.yaml").read_text()
    entries = {name: DatasetEntry(name=name, **body) for name, body in yaml.safe_load(text).items()}
    for e in entries.values():
        unknown = set(e.scenarios) - set(SCENARIO_FOLDERS)
        if unknown:
            raise ValueError(f"catalog.yaml: {e.name}: unknown scenarios {sorted(unknown)}")
    return entries


def get(name: str) -> DatasetEntry:
    entries = catalogue()
    if name not in entries:
        raise KeyError(f"unknown dataset {name!r}; the catalogue lists: {', '.join(entries)}")
    return entries[name]
