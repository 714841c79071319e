"""The release bundle (kdgat/publish/): its files, model card and archives from a tiny study, models loaded
back with the pipeline's predictions, CITATION.cff and .zenodo.json, the publish params, and a dry run
that makes no network call. Uploads: tests/test_publish_upload.py; W&B: tests/test_publish_registry.py."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
import yaml
from typer.testing import CliRunner

from kdgat.cli.main import app
from kdgat.config import ParamsError, load_params, parse_params
from kdgat.fusion.policy import FusionPolicy, join_predictions, load_policy
from kdgat.publish import from_pretrained, limits
from kdgat.publish.bundle import ReleaseError, build_release, files_of
from kdgat.publish.limits import FusionChoice
from kdgat.publish.pretrained import checkpoint_of
from kdgat.publish.release import redact, secret
from kdgat.study import MODELS, Model, Paths
from kdgat.train.data import collate, load_graphs
from kdgat.train.infer import predict
from kdgat.train.weights import load_model

REPO = Path(__file__).resolve().parents[1]
DATASET = "synth"


@pytest.fixture(scope="module")
def built(release_study: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A copy of the tiny study with its bundle written."""
    root = tmp_path_factory.mktemp("bundle") / "study"
    shutil.copytree(release_study, root)
    return root, build_release(load_params(root / "params.yaml"), root)


def _front_matter(readme: Path) -> dict[str, Any]:
    text = readme.read_text()
    assert text.startswith("---\n")
    return dict(yaml.safe_load(text.split("---\n")[1]))


def test_bundle_holds_every_model_as_safetensors_and_no_pickle(built: tuple[Path, Any]) -> None:
    _, release = built
    folder = release.datasets[DATASET]
    files = set(files_of(folder))
    for m in MODELS:
        assert {f"{m}/model.safetensors", f"{m}/config.json"} <= files
    assert {
        "README.md",
        "CITATION.cff",
        "release.json",
        "onnx/gat_small_kd.onnx",
        "onnx/detector.json",
    } <= files
    assert not [f for f in files if f.endswith((".ckpt", ".pt", ".pth", ".pkl", ".bin"))]
    manifest = json.loads((folder / "release.json").read_text())
    assert manifest["git_commit"] == release.git_commit and manifest["tag"] == release.tag
    assert manifest["files_sha256"] == {
        p: i.sha256 for p, i in files_of(folder).items() if p != "release.json"
    }
    assert [p.name for p in release.archives] == ["kd-gat-0.1.0-code.tar.gz", "kd-gat-0.1.0-models-synth.zip"]
    assert not release.dirty  # the bundle folder is git-ignored


def test_model_card_carries_the_study(built: tuple[Path, Any]) -> None:
    root, release = built
    readme = release.datasets[DATASET] / "README.md"
    meta = _front_matter(readme)
    metrics = json.loads(Paths(DATASET, root).metrics.read_text())
    assert meta["license"] == "mit" and "onnx" in meta["tags"] and meta["datasets"] == [DATASET]
    index = {e["name"]: e for e in meta["model-index"]}
    assert set(index) == {f"kd-gat-{DATASET}-{m}" for m in MODELS}
    for m in MODELS:
        results = index[f"kd-gat-{DATASET}-{m}"]["results"]
        assert len(results) == len(metrics[m])  # one per test scenario
        for r in results:
            scenario = r["dataset"]["name"].split("(")[1].rstrip(")")
            f1 = next(x["value"] for x in r["metrics"] if x["type"] == "f1")
            assert f1 == pytest.approx(metrics[m][scenario]["f1"], abs=1e-6)
    text = readme.read_text()
    assert release.git_commit in text and release.params_hash in text
    assert "## Limitations" in text and "@software{kdgat" in text and "not real traffic" in text
    assert "| unknown_attack | an attack kind held out of training; unseen attack: masquerade |" in text
    assert "`kdgat detect --calibrate LOG`" in text and "needs retraining" not in text
    # each fusion's fallback comes from its stage report, as the fusion stage decided it
    for m in ("fusion_large", "fusion_small", "fusion_small_kd"):
        report = json.loads(Paths(DATASET, root).outputs(Model.parse(m)).report.read_text())
        alone = {0.0: "VGAE alone", 1.0: "GAT alone"}.get(report["fixed_alpha"], "a fixed α")
        line = next(
            (
                x
                for x in text.splitlines()
                if "(`fusion.fallback`)" in x
                and (re.search(rf"\b{m}\b", x) or x.startswith("- Every released fusion"))
            ),
            None,
        )
        fell_back = report["policy"]["chosen"] == "fixed_alpha"
        assert (line is not None) == fell_back and (not fell_back or alone in str(line))


def test_bundle_is_byte_for_byte_reproducible(built: tuple[Path, Any]) -> None:
    root, release = built
    before = {**files_of(release.root)}
    again = build_release(load_params(root / "params.yaml"), root)
    assert files_of(again.root) == before


@pytest.mark.parametrize("family", ["gat", "vgae"])
def test_from_pretrained_predicts_as_the_pipeline_checkpoint(
    built: tuple[Path, Any], family: str, tmp_path: Path
) -> None:
    root, release = built
    paths = Paths(DATASET, root)
    for variant in ("large", "small_kd"):
        m = Model(family, variant)
        model = from_pretrained(release.datasets[DATASET], m.name)
        study, _ = load_model(paths.weights(m))
        assert isinstance(model, torch.nn.Module) and not model.training
        b = collate(load_graphs(paths.graphs, "test_known"), np.arange(8))
        args = b.inputs() if family == "gat" else b.inputs()[:4]  # a VGAE scores nodes: no batch vector
        with torch.no_grad():
            out, ref = model(*args), study(*args)
        pairs = zip(out, ref, strict=True) if isinstance(out, tuple) else [(out, ref)]
        for a, r in pairs:
            assert torch.equal(a, r)
        # the prediction tables (every split, every column) of the rebuilt checkpoint are the study's
        ckpt = tmp_path / f"{m.name}.ckpt"
        torch.save(checkpoint_of(release.datasets[DATASET] / m.name), ckpt)
        assert predict(ckpt, paths.graphs).equals(pl.read_parquet(paths.predictions(m)))


def test_from_pretrained_fusion_decides_as_the_study(built: tuple[Path, Any]) -> None:
    root, release = built
    paths = Paths(DATASET, root)
    policy = from_pretrained(release.datasets[DATASET] / "fusion_small_kd")
    assert isinstance(policy, FusionPolicy)
    joined = join_predictions(
        pl.read_parquet(paths.predictions(Model.parse("vgae_small_kd"))),
        pl.read_parquet(paths.predictions(Model.parse("gat_small_kd"))),
    )
    study = load_policy(paths.weights(Model.parse("fusion_small_kd")))
    assert policy.predict(joined).equals(study.predict(joined))


def test_citation_cff_is_valid_and_matches_the_package() -> None:
    validator = Path(sys.executable).with_name("cffconvert")
    proc = subprocess.run(
        [str(validator), "--validate", "-i", str(REPO / "CITATION.cff")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert cff["version"] == project["version"]
    assert cff["license"] == project["license"]["text"]


def test_zenodo_metadata_has_what_a_deposition_needs() -> None:
    meta = json.loads((REPO / ".zenodo.json").read_text())
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert {"upload_type", "title", "creators", "description", "license"} <= set(meta)
    assert meta["title"] == cff["title"] and meta["upload_type"] == "software"
    assert meta["license"] == load_params(REPO / "params.yaml").publish.license


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"models": ["fusion_small_kd", "gat_small_kd"]}, "fuses ['vgae_small_kd']"),
    ],
)
def test_publish_params_refuse_incomplete_releases(change: dict[str, Any], message: str) -> None:
    raw = load_params(REPO / "params.yaml").model_dump(mode="json")
    raw["publish"].update(change)
    with pytest.raises(ParamsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_params(raw)


def test_tokens_come_from_the_environment_or_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZENODO_TOKEN", raising=False)
    assert secret("ZENODO_TOKEN", tmp_path) is None
    (tmp_path / ".env").write_text("WANDB_API_KEY=w\nexport ZENODO_TOKEN='z-secret'\n")
    assert secret("ZENODO_TOKEN", tmp_path) == "z-secret"
    monkeypatch.setenv("ZENODO_TOKEN", "from-env")
    assert secret("ZENODO_TOKEN", tmp_path) == "from-env"
    assert redact("401 for from-env at z-secret", ["from-env", None, "z-secret"]) == "401 for *** at ***"


@pytest.mark.parametrize("flags", [[], ["--dry-run"]], ids=["default", "explicit"])
def test_dry_run_writes_the_bundle_and_makes_no_network_call(
    release_study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: list[str]
) -> None:
    root = tmp_path / "study"
    shutil.copytree(release_study, root)
    calls: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        calls.append(args)
        raise OSError("the dry run must not reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    for name in ("HF_TOKEN", "ZENODO_TOKEN", "WANDB_API_KEY"):
        monkeypatch.setenv(name, f"secret-{name}")
    result = CliRunner().invoke(app, ["publish", *flags, "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert calls == []
    out = result.output
    assert "Hugging Face Hub kd-gat/kd-gat-synth ← synth/" in out and "KiB" in out
    assert "kd-gat-0.1.0-models-synth.zip" in out and "wandb-registry-model/gat_small_kd-synth" in out
    assert "dry run: nothing was sent" in out and "secret-" not in out
    assert (root / "release" / DATASET / "gat_small_kd" / "model.safetensors").is_file()


def test_dry_run_and_yes_together_are_refused_before_anything_is_built(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["publish", "--dry-run", "--yes", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --dry-run and --yes contradict each other: give one"
    ]
    assert list(tmp_path.iterdir()) == []  # no params read, no bundle written


def test_card_limitations_come_from_the_metrics() -> None:
    row = {"fpr": 0.0, "recall": 0.9, "n_benign": 10}
    metrics = {
        "gat_small_kd": {
            "known": row,
            "unknown_vehicle": {**row, "fpr": 1.0},
            "unknown_attack": {**row, "recall": 0.0},
        },
        "gat_small": {"known": row, "unknown_vehicle": {**row, "fpr": 1.0}, "unknown_attack": row},
    }
    lines = limits.limitations(metrics, ["gat_small_kd", "gat_small"])
    assert lines == [
        "**unknown_vehicle** (a vehicle held out of training): every released model flags nearly every "
        "benign window (FPR ≥ 0.99).",
        "**unknown_attack** (an attack kind held out of training): gat_small_kd misses nearly every attack "
        "(recall ≤ 0.01).",
    ]
    assert limits.limitations({"gat_small": {"known": row}}, ["gat_small"]) == []


def test_card_limitations_carry_what_the_study_did_not_meet() -> None:
    # the default study's findings in miniature (README: results, generalisation): the unseen attack
    # missed by the GAT and the fusion, the new vehicle alarming until calibrated, the fusion's fallback
    ok = {"fpr": 0.0, "recall": 1.0, "n_benign": 10}
    models = ["gat_small_kd", "vgae_small_kd", "fusion_small_kd"]
    metrics = {
        m: {
            "known": ok,
            "unknown_vehicle": {**ok, "fpr": 1.0},
            "unknown_vehicle_calibrated": {**ok, "fpr": fpr},
            "unknown_attack": {**ok, "recall": 0.06 if m.startswith("vgae") else 0.0},
        }
        for m, fpr in zip(models, [0.004, 0.0, 0.015], strict=True)
    }
    counts = {
        "train": {"attack_types": {"dos": 5, "fuzzy": 4}},
        "test_known": {"attack_types": {"dos": 2}},
        "test_unknown_attack": {"attack_types": {"masquerade": 3}},
    }
    unseen = limits.unseen_attacks(counts)
    assert unseen == {"unknown_attack": ["masquerade"]}
    fusions = {"fusion_small_kd": FusionChoice("fixed_alpha", 1.0)}
    lines = limits.limitations(metrics, models, unseen, fusions)
    assert lines == [
        "**unknown_vehicle** (a vehicle held out of training): every released model flags nearly every "
        "benign window (FPR ≥ 0.99). A new vehicle needs calibration on its own benign traffic first "
        "(`kdgat detect --calibrate LOG`): then the FPR is 0.000–0.015 (**unknown_vehicle_calibrated**).",
        "**unknown_attack** (an attack kind held out of training; unseen attack: masquerade): every "
        "released GAT and fusion misses nearly every attack (recall ≤ 0.01).",
        "Every released fusion deploys its GAT alone (α = 1, the weighting validation chose), not the "
        "DQN: the DQN showed no gain over that α on held-out validation windows (`fusion.fallback`).",
    ]
    # a fusion that deploys its DQN has nothing to confess
    assert (
        limits.limitations(metrics, models, unseen, {"fusion_small_kd": FusionChoice("dqn", 1.0)})
        == lines[:2]
    )
    assert limits.describe("unknown_both_calibrated", {}) != "unknown_both_calibrated"


@pytest.mark.parametrize(
    "output",
    ["models/synth/fusion_small.ckpt", "reports/train/synth/fusion_small.json", "reports/graphs/synth.json"],
)
def test_a_missing_study_output_is_named_and_the_old_bundle_kept(
    release_study: Path, tmp_path: Path, output: str
) -> None:
    root = tmp_path / "study"
    shutil.copytree(release_study, root)
    params = load_params(root / "params.yaml")
    build_release(params, root)
    before = files_of(root / "release" / DATASET)
    (root / output).unlink()
    with pytest.raises(ReleaseError, match=re.escape(f"{output}: missing; run the study first")):
        build_release(params, root)
    assert files_of(root / "release" / DATASET) == before


def test_publishing_an_unstudied_dataset_is_refused_at_publish_time(release_study: Path) -> None:
    # params load with it (a project on its own datasets runs `dvc repro` without editing publish)
    params = load_params(release_study / "params.yaml")
    params = params.model_copy(
        update={"publish": params.publish.model_copy(update={"datasets": ["hcrl_ch"]})}
    )
    with pytest.raises(ReleaseError, match=re.escape("publish.datasets names ['hcrl_ch']")):
        build_release(params, release_study)
