"""The dataset catalogue: kd-gat's own datasets (catalog.yaml beside this file) and the project's
(datasets.yaml beside params.yaml, written by `kdgat datasets add`): what each dataset is, where it comes
from, how it is read and which test scenarios it has."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from kdgat.config import PROJECT_CATALOGUE, RAW_ROOT, ParamsError, package_catalogue, project_catalogue
from kdgat.data.format_names import FORMATS
from kdgat.data.layout import SCENARIO_FOLDERS
from kdgat.io import atomic_path

NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # a DVC foreach key and a folder name
HEADER = """\
# The project's own datasets, beside kd-gat's (`kdgat datasets` lists both). Add one with
#   kdgat datasets add NAME --path FOLDER [--format auto] [--attack-from filename|folder]
# which checks the folder's layout, writes the entry here and links data/raw/NAME to the folder
# (docs/data.md). Then put NAME in params.yaml `datasets` (and `synthetic: []` to skip the synthetic set).
"""


class DatasetEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    title: str
    source: str
    layout: str = "cantt"
    format: Literal["auto", "candump", "asc", "blf", "trc", "canlog_csv", "hcrl", "hcrl_txt", "cantt"] = (
        "auto"
    )
    vehicles: str = ""
    attacks: list[str] = []
    scenarios: list[str] = []  # a project dataset: whichever test folders it has
    checksum: str | None = None
    path: str | None = None  # a project dataset: its folder as given (data/raw/<name> links to it)
    attack_from: Literal["filename", "folder"] = "filename"  # where an attack capture's type is read

    def raw_dir(self, root: Path = RAW_ROOT) -> Path:
        return root / self.name


@lru_cache(maxsize=4)
def _load(project: Path) -> dict[str, DatasetEntry]:
    entries: dict[str, DatasetEntry] = {}
    for where, raw in (("catalog.yaml", package_catalogue()), (str(project), project_catalogue(project))):
        for name, body in raw.items():
            body = {"title": name, "source": body.get("path", ""), **body}
            try:
                entries[name] = DatasetEntry(name=name, **body)
            except ValidationError as err:
                raise ParamsError(
                    f"{where}: {name}: {err.errors()[0]['msg']} ({err.errors()[0]['loc']})"
                ) from None
            unknown = set(entries[name].scenarios) - set(SCENARIO_FOLDERS)
            if unknown:
                raise ValueError(f"{where}: {name}: unknown scenarios {sorted(unknown)}")
    return entries


def catalogue(project: Path = PROJECT_CATALOGUE) -> dict[str, DatasetEntry]:
    return _load(project)


def get(name: str) -> DatasetEntry:
    entries = catalogue()
    if name not in entries:
        raise KeyError(f"unknown dataset {name!r}; the catalogue lists: {', '.join(entries)}")
    return entries[name]


def add_dataset(
    name: str,
    folder: Path,
    fmt: str = "auto",
    attack_from: str = "filename",
    title: str | None = None,
    project: Path = PROJECT_CATALOGUE,
    raw_root: Path = RAW_ROOT,
) -> DatasetEntry:
    """Declare a project dataset: write its entry to ``project`` and link ``raw_root``/name to ``folder``
    (what the ingest stage reads and DVC hashes). The caller checks the folder's layout first."""
    if not NAME.match(name):
        raise ParamsError(
            f"{name!r}: a dataset name is lower-case letters, digits and _, starting with a letter"
        )
    if name in package_catalogue():
        raise ParamsError(f"{name!r} is one of kd-gat's own datasets; give yours another name")
    if fmt != "auto" and fmt not in FORMATS:
        raise ParamsError(f"format {fmt!r}: expected auto or one of {', '.join(FORMATS)}")
    entries = project_catalogue(project)
    if name in entries:
        raise ParamsError(f"{project}: {name!r} is declared already; edit or remove its entry there")
    body: dict[str, Any] = {"path": str(folder), "format": fmt, "attack_from": attack_from}
    if title:
        body["title"] = title
    entry = DatasetEntry(name=name, **{"title": name, "source": str(folder), **body})
    link = raw_root / name
    if link.resolve() != folder.resolve():
        if link.exists() or link.is_symlink():
            raise ParamsError(
                f"{link}: exists and is not {folder}; move it away or name the dataset otherwise"
            )
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(folder.resolve(), link.parent.resolve()), link)
    with atomic_path(project) as tmp:
        tmp.write_text(HEADER + "\n" + yaml.safe_dump({**entries, name: body}, sort_keys=False))
    _load.cache_clear()
    return entry
