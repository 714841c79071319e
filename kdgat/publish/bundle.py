"""The release bundle, written by every `kdgat publish` (dry run or not) from the study's outputs:

    <folder>/<dataset>/README.md            the model card (kdgat/publish/card.py): the Hub repo's front page
    <folder>/<dataset>/<model>/model.safetensors + config.json   each released model (pretrained.py)
    <folder>/<dataset>/onnx/*.onnx, detector.json                the edge export, when onnx/<dataset>/ exists
    <folder>/<dataset>/CITATION.cff, release.json                how to cite; version, commit, file hashes
    <folder>/zenodo/kd-gat-<version>-code.tar.gz                 `git archive` of the commit
    <folder>/zenodo/kd-gat-<version>-models-<dataset>.zip        each dataset's folder above

Everything is deterministic (no timestamps; archives with fixed dates), so the same commit and study give
the same bytes and a second publish finds nothing to change. Reads the study's files only.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from safetensors import safe_open

from kdgat.config import Params, sections
from kdgat.edge.build import bundle_dir
from kdgat.io import atomic_path
from kdgat.publish import card
from kdgat.publish.limits import FusionChoice, fusion_choice, unseen_attacks
from kdgat.publish.pretrained import WEIGHTS, write_pretrained
from kdgat.study import Model, Paths
from kdgat.track.tracker import git_commit, params_hash

CITATION = "CITATION.cff"
ZENODO_META = ".zenodo.json"
# the params a card shows under "Training": what shaped the released models
TRAINING_KEYS = ("windows", "models", "train", "gat_train", "vgae_train", "kd", "fusion")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date zip stores: archives without the build's time


class ReleaseError(RuntimeError):
    """The release cannot be built (a study output is missing, the citation file is invalid, ...)."""


@dataclass(frozen=True)
class FileInfo:
    size: int
    sha256: str
    md5: str  # Zenodo's checksum
    git_sha1: str  # the Hub's blob id of a file stored in git (not LFS)


@dataclass(frozen=True)
class Release:
    """One run's bundle: what a plan compares with each service, and what an upload sends."""

    root: Path  # the bundle folder
    version: str  # CITATION.cff's
    tag: str  # v<version>-g<commit>: the Hub tag and the Zenodo version of this release
    git_commit: str | None
    dirty: bool  # tracked files differ from the commit: --yes refuses
    params_hash: str
    citation: dict[str, Any]
    datasets: dict[str, Path] = field(default_factory=dict)  # dataset → its folder
    archives: list[Path] = field(default_factory=list)  # the Zenodo files


def file_info(path: Path) -> FileInfo:
    data = path.read_bytes()
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    return FileInfo(len(data), hashlib.sha256(data).hexdigest(), md5, blob)


def files_of(folder: Path) -> dict[str, FileInfo]:
    """Every file under ``folder`` by its relative POSIX path, sorted."""
    return {p.relative_to(folder).as_posix(): file_info(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def read_citation(root: Path) -> dict[str, Any]:
    path = root / CITATION
    if not path.is_file():
        raise ReleaseError(f"{path}: missing; the release cites it (docs/release.md)")
    data = yaml.safe_load(path.read_text())
    for key in ("title", "version", "authors"):
        if not (isinstance(data, dict) and data.get(key)):
            raise ReleaseError(f"{path}: needs {key!r}")
    return dict(data)


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, timeout=120)


def is_dirty(root: Path) -> bool:
    """Tracked files differ from HEAD (untracked ones do not matter: they are not released)."""
    proc = _git(root, "status", "--porcelain", "--untracked-files=no")
    return proc.returncode != 0 or bool(proc.stdout.strip())


def _parameters(weights: Path) -> int:
    with safe_open(str(weights), framework="pt") as f:
        return sum(_numel(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118 (a safe_open handle, not a dict)


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _study_json(path: Path) -> Any:
    if not path.is_file():
        raise ReleaseError(f"{path}: missing; run the study first (`make run`)")
    return json.loads(path.read_text())


def _records(paths: Paths, models: list[str]) -> tuple[dict[str, list[str]], dict[str, FusionChoice]]:
    """What the card's limitations read besides the metrics: the attack kinds no train window holds, per
    scenario (the graphs stage's report), and each released fusion's deployed policy (its stage report)."""
    counts = _study_json(paths.report("graphs"))["counts"]
    fusions = {
        name: fusion_choice(_study_json(paths.outputs(Model.parse(name)).report))
        for name in models
        if Model.parse(name).family == "fusion"
    }
    return unseen_attacks(counts), fusions


def build_dataset(dataset: str, params: Params, release: Release, root: Path, dest: Path) -> None:
    """One dataset's folder of the bundle at ``dest`` (replaced whole, atomically)."""
    paths, publish = Paths(dataset, root), params.publish
    metrics = _study_json(paths.metrics)
    unseen, fusions = _records(paths, publish.models)
    repo_id = publish.hub.repo.format(dataset=dataset)
    stamp = {"dataset": dataset, "version": release.version, "git_commit": release.git_commit or "unknown"}
    onnx_src = bundle_dir(paths)
    with atomic_path(dest, force=True) as out:
        out.mkdir()
        parameters = {}
        for name in publish.models:
            ckpt = paths.weights(Model.parse(name))
            if not ckpt.is_file():
                raise ReleaseError(f"{ckpt}: missing; run the study first (`make run`)")
            if name not in metrics:
                raise ReleaseError(f"{paths.metrics}: has no results of {name}; rerun `dvc repro`")
            write_pretrained(ckpt, out / name, {**stamp, "model": name, "params_hash": release.params_hash})
            parameters[name] = _parameters(out / name / WEIGHTS)
        onnx_files = []
        if onnx_src.is_dir():
            (out / "onnx").mkdir()
            for f in sorted(onnx_src.iterdir()):
                if f.suffix == ".onnx" or f.name == "detector.json":
                    shutil.copyfile(f, out / "onnx" / f.name)
                    onnx_files.append(f.name)
        shutil.copyfile(root / CITATION, out / CITATION)
        provenance = {
            "version": release.version,
            "git_commit": release.git_commit or "unknown (not a git checkout)",
            "params_hash": release.params_hash,
            "url": f"https://huggingface.co/{repo_id}",
        }
        (out / "README.md").write_text(
            card.render(
                dataset=dataset,
                repo_id=repo_id,
                models=publish.models,
                metrics=metrics,
                parameters=parameters,
                onnx_files=onnx_files,
                provenance=provenance,
                training=sections(params, TRAINING_KEYS),
                citation=release.citation,
                license_id=publish.license,
                unseen=unseen,
                fusions=fusions,
            )
        )
        hashes = {p: i.sha256 for p, i in files_of(out).items()}
        manifest = {
            **{k: v for k, v in provenance.items() if k != "url"},
            "tag": release.tag,
            "dataset": dataset,
            "models": publish.models,
            "files_sha256": hashes,
        }
        (out / "release.json").write_text(json.dumps(manifest, indent=1) + "\n")


def _zip_folder(src: Path, dest: Path, prefix: str) -> None:
    with atomic_path(dest, force=True) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for rel in files_of(src):
            info = zipfile.ZipInfo(f"{prefix}/{rel}", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, (src / rel).read_bytes())


def _code_archive(root: Path, commit: str, dest: Path, prefix: str) -> None:
    """`git archive` of the commit (its tar is deterministic), gzipped without a timestamp."""
    proc = _git(root, "archive", "--format=tar", f"--prefix={prefix}/", commit)
    if proc.returncode != 0:
        raise ReleaseError(f"git archive {commit}: {proc.stderr.decode().strip()}")
    with atomic_path(dest, force=True) as tmp:
        tmp.write_bytes(gzip.compress(proc.stdout, compresslevel=9, mtime=0))


def build_release(params: Params, root: Path = Path(".")) -> Release:
    """The whole bundle under params.publish.folder: every dataset's folder and the Zenodo archives."""
    root = root.resolve()
    citation = read_citation(root)
    version = str(citation["version"])
    commit = git_commit(root)
    folder = root / params.publish.folder
    release = Release(
        root=folder,
        version=version,
        tag=f"v{version}-g{commit[:12]}" if commit else f"v{version}-uncommitted",
        git_commit=commit,
        dirty=commit is None or is_dirty(root),
        params_hash=params_hash(params.model_dump(mode="json")),
        citation=citation,
    )
    # checked here, not when params load: a project that studies only its own datasets still runs
    unstudied = [d for d in params.publish.datasets if d not in params.datasets]
    if unstudied:
        raise ReleaseError(
            f"publish.datasets names {unstudied}, which datasets does not list: set publish.datasets"
        )
    for dataset in params.publish.datasets:
        build_dataset(dataset, params, release, root, folder / dataset)
        release.datasets[dataset] = folder / dataset
    zen = folder / "zenodo"
    if zen.exists():
        shutil.rmtree(zen)
    zen.mkdir(parents=True)
    if commit:
        _code_archive(root, commit, zen / f"kd-gat-{version}-code.tar.gz", f"kd-gat-{version}")
        release.archives.append(zen / f"kd-gat-{version}-code.tar.gz")
    for dataset, src in release.datasets.items():
        dest = zen / f"kd-gat-{version}-models-{dataset}.zip"
        _zip_folder(src, dest, f"kd-gat-{version}-{dataset}")
        release.archives.append(dest)
    return release


def zenodo_metadata(root: Path, release: Release, related: list[str]) -> dict[str, Any]:
    """.zenodo.json with this release's version and links to its Hub repos."""
    path = root / ZENODO_META
    if not path.is_file():
        raise ReleaseError(f"{path}: missing; it holds the Zenodo metadata (docs/release.md)")
    meta: dict[str, Any] = json.loads(path.read_text())
    meta["version"] = release.tag
    meta["related_identifiers"] = [
        *meta.get("related_identifiers", []),
        *(
            {"identifier": url, "relation": "isSupplementedBy", "resource_type": "software"}
            for url in related
        ),
    ]
    return meta
