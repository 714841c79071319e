"""`kdgat publish --yes` against stand-ins of the Hugging Face Hub and Zenodo on loopback
(tests/support/fake_hub.py, fake_zenodo.py): every file arrives with its hash, the metadata and the call
order are the services' documented ones, a second publish of the same commit changes nothing, a new commit
makes a new version, and a bad token, an error midway or a dropped connection leaves nothing half-published
and says which service failed, without the token."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest
import torch
import yaml
from support.fake_hub import FakeHub
from support.fake_wandb import FakeArtifact, fake_api
from support.fake_zenodo import FakeZenodo
from support.release_study import git
from typer.testing import CliRunner

from kdgat.cli.main import app
from kdgat.config import Params, load_params, with_overrides
from kdgat.publish import from_pretrained
from kdgat.publish.bundle import files_of
from kdgat.publish.registry import link_plan, wandb_digest
from kdgat.publish.release import PublishError, describe, make_plan, publish

# Whole publish runs over HTTP to two servers, about a second each: the integration tier
pytestmark = pytest.mark.slow
REPO_ID = "kd-gat/kd-gat-synth"
HUB_ONLY = ("hub",)
BOTH = ("hub", "zenodo")


@pytest.fixture
def services(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeHub, FakeZenodo]]:
    with FakeHub() as hub, FakeZenodo() as zen:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", hub.token)
        monkeypatch.setenv("ZENODO_TOKEN", zen.token)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        # the stand-in serves the LFS protocol; huggingface_hub would pick Xet when hf_xet is installed
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_PROGRESS_BARS", True)
        yield hub, zen


@pytest.fixture
def study(release_study: Path, tmp_path: Path) -> Path:
    root = tmp_path / "study"
    shutil.copytree(release_study, root)
    return root


def _params(root: Path, zen: FakeZenodo) -> Params:
    return with_overrides(load_params(root / "params.yaml"), {"publish.zenodo.url": zen.url})


def _zenodo_writes(zen: FakeZenodo) -> list[tuple[str, str]]:
    return [c for c in zen.calls if c[0] != "GET"]


def test_publish_sends_every_file_with_its_metadata_in_order(
    study: Path, services: tuple[FakeHub, FakeZenodo]
) -> None:
    hub, zen = services
    params = _params(study, zen)
    done = publish(params, study, services=BOTH)
    bundle = study / "release" / "synth"
    manifest = json.loads((bundle / "release.json").read_text())
    commit, tag = manifest["git_commit"], manifest["tag"]
    repo = hub.repos[REPO_ID]
    # the Hub: every file byte for byte, the weights as LFS objects, one commit naming the git commit, a tag
    assert repo.files == {p: (bundle / p).read_bytes() for p in files_of(bundle)}
    assert {i.sha256 for p, i in files_of(bundle).items() if p.endswith(".safetensors")} <= set(hub.lfs)
    assert len(repo.commits) == 1 and commit in repo.commits[0]["summary"]
    assert repo.tags == {tag: repo.commits[0]["oid"]}
    writes = hub.writes()
    assert writes[0] == ("POST", "/api/repos/create")
    assert all(c[1].startswith("/lfs-upload/") for c in writes[1:-2])
    assert len(writes[1:-2]) == sum(p.endswith((".safetensors", ".onnx")) for p in repo.files)
    assert writes[-2] == ("POST", f"/api/models/{REPO_ID}/commit/main")
    assert writes[-1] == ("POST", f"/api/models/{REPO_ID}/tag/{repo.commits[0]['oid']}")
    # Zenodo: one published deposition holding both archives, with .zenodo.json's metadata and the tag
    (dep,) = zen.published()
    archives = files_of(study / "release" / "zenodo")
    assert dep.files == {n: (study / "release" / "zenodo" / n).read_bytes() for n in archives}
    assert dep.metadata["version"] == tag and dep.metadata["upload_type"] == "software"
    assert dep.metadata["title"] == json.loads((study / ".zenodo.json").read_text())["title"]
    related = [r["identifier"] for r in dep.metadata["related_identifiers"]]
    assert related == [f"https://huggingface.co/{REPO_ID}"]
    zw = _zenodo_writes(zen)
    assert zw[0] == ("POST", "/api/deposit/depositions")
    assert [c[0] for c in zw[1:-2]] == ["PUT"] * len(archives)
    assert all(c[1].startswith("/api/files/") for c in zw[1:-2])
    assert zw[-2:] == [
        ("PUT", f"/api/deposit/depositions/{dep.id}"),
        ("POST", f"/api/deposit/depositions/{dep.id}/actions/publish"),
    ]
    assert any(f"10.5072/zenodo.{dep.id}" in line for line in done)


def test_the_same_commit_twice_changes_nothing_and_a_new_commit_is_a_new_version(
    study: Path, services: tuple[FakeHub, FakeZenodo]
) -> None:
    hub, zen = services
    params = _params(study, zen)
    publish(params, study, services=BOTH)
    hub_before, zen_before = len(hub.writes()), len(_zenodo_writes(zen))
    done = publish(params, study, services=BOTH)
    assert len(hub.writes()) == hub_before and len(_zenodo_writes(zen)) == zen_before
    assert done[0] == f"{REPO_ID}: unchanged" and done[1].startswith("Zenodo: unchanged")
    lines = describe(make_plan(params, study, remote=True, services=BOTH))
    assert any("already published: all" in line for line in lines)
    assert any("already published as 10.5072/zenodo." in line for line in lines)

    (study / "NOTES.md").write_text("a change\n")
    git(study, "add", "NOTES.md")
    git(study, "commit", "-qm", "a change")
    publish(params, study, services=BOTH)
    repo = hub.repos[REPO_ID]
    assert len(repo.commits) == 2 and len(repo.tags) == 2
    configs = [p for p in repo.files if p.endswith("config.json")]
    # the card, the manifest and the configs carry the commit; the weights did not change
    assert repo.commits[1]["paths"] == sorted(["README.md", "release.json", *configs])
    first, second = zen.published()
    assert (
        first.conceptrecid == second.conceptrecid and first.metadata["version"] != second.metadata["version"]
    )
    assert set(second.files) == set(first.files)


def test_a_bad_token_sends_nothing_and_names_the_service(
    study: Path, services: tuple[FakeHub, FakeZenodo], monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, zen = services
    monkeypatch.setenv("HF_TOKEN", "hf_wrong_secret_token")
    with pytest.raises(PublishError) as err:
        publish(_params(study, zen), study, services=BOTH)
    message = str(err.value)
    assert message.startswith("Hugging Face Hub: kd-gat/kd-gat-synth") and "401" in message
    assert "hf_wrong_secret_token" not in message
    assert hub.repos == {} and hub.writes() == [] and _zenodo_writes(zen) == []


def test_missing_tokens_or_uncommitted_changes_send_nothing(
    study: Path, services: tuple[FakeHub, FakeZenodo], monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, zen = services
    monkeypatch.delenv("ZENODO_TOKEN")
    with pytest.raises(PublishError, match="set ZENODO_TOKEN"):
        publish(_params(study, zen), study, services=BOTH)
    monkeypatch.setenv("ZENODO_TOKEN", zen.token)
    (study / "params.yaml").write_text((study / "params.yaml").read_text() + "\n")
    with pytest.raises(PublishError, match="uncommitted changes"):
        publish(_params(study, zen), study, services=BOTH)
    assert hub.writes() == [] and _zenodo_writes(zen) == []


@pytest.mark.parametrize("failure", [500, "drop"])
def test_a_hub_commit_failing_midway_leaves_no_commit_and_a_rerun_finishes(
    study: Path, services: tuple[FakeHub, FakeZenodo], failure: int | str
) -> None:
    hub, zen = services
    hub.fail[("POST", f"/api/models/{REPO_ID}/commit/")] = failure
    with pytest.raises(PublishError, match=r"^Hugging Face Hub: kd-gat/kd-gat-synth") as err:
        publish(_params(study, zen), study, services=BOTH)
    if failure == 500:
        assert "500" in str(err.value)
    repo = hub.repos[REPO_ID]
    assert repo.files == {} and repo.commits == [] and repo.tags == {}
    assert _zenodo_writes(zen) == []  # Zenodo comes after every Hub repo (the plan only read it)
    publish(_params(study, zen), study, services=BOTH)
    assert len(repo.commits) == 1 and len(repo.tags) == 1 and len(zen.published()) == 1


@pytest.mark.parametrize(
    ("where", "failure"),
    [
        (("POST", "/api/deposit/depositions/"), 500),  # the publish action (creating has no trailing /)
        (("PUT", "/api/files/"), "drop"),  # an archive upload loses its connection
        (("PUT", "/api/files/"), 401),  # an archive rejected
    ],
)
def test_a_zenodo_failure_deletes_the_draft(
    study: Path, services: tuple[FakeHub, FakeZenodo], where: tuple[str, str], failure: int | str
) -> None:
    _, zen = services
    zen.fail[where] = failure
    with pytest.raises(PublishError, match=r"^Zenodo: .*draft \d+ deleted: nothing published") as err:
        publish(_params(study, zen), study, services=("zenodo",))
    assert zen.token not in str(err.value)
    assert zen.deps == {}  # no draft, no record
    assert zen.calls[-1][0] == "DELETE"


def test_a_failed_new_version_keeps_the_published_one_alone(
    study: Path, services: tuple[FakeHub, FakeZenodo]
) -> None:
    _, zen = services
    params = _params(study, zen)
    publish(params, study, services=("zenodo",))
    (first,) = zen.published()
    published_files = dict(first.files)
    (study / "NOTES.md").write_text("a change\n")
    git(study, "add", "NOTES.md")
    git(study, "commit", "-qm", "a change")
    zen.fail[("POST", f"/api/deposit/depositions/{first.id + 2}/actions/publish")] = 500
    with pytest.raises(PublishError, match=r"draft \d+ deleted"):
        publish(params, study, services=("zenodo",))
    assert list(zen.deps) == [first.id] and first.files == published_files
    publish(params, study, services=("zenodo",))  # a rerun makes the new version
    assert len(zen.published()) == 2


def test_sandbox_sends_to_the_sandbox_url_and_never_to_zenodo_org(
    study: Path, services: tuple[FakeHub, FakeZenodo]
) -> None:
    _, zen = services
    # the CLI reads params.yaml: the stand-in is the sandbox, and the real URL a port that refuses at once
    raw = yaml.safe_load((study / "params.yaml").read_text())
    raw["publish"]["zenodo"] |= {"url": "http://127.0.0.1:9", "sandbox_url": zen.url}
    (study / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    git(study, "commit", "-qam", "the Zenodo stand-in as sandbox")  # --yes wants a clean tree
    args = ["publish", "--sandbox", "--only", "zenodo", "--root", str(study)]
    plan = CliRunner().invoke(app, args)
    assert plan.exit_code == 0, plan.output
    assert f"Zenodo {zen.url} ←" in plan.output and "127.0.0.1:9" not in plan.output
    result = CliRunner().invoke(app, [*args, "--yes"])
    assert result.exit_code == 0, result.output
    (dep,) = zen.published()
    assert f"Zenodo: published 10.5072/zenodo.{dep.id}" in result.output


def _wandb(study: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, list[FakeArtifact]], list[str]]:
    """The stand-in of wandb.Api in place of the real one: each released model's artifact holds its
    checkpoint; returns the versions per source and the keys the API was built with."""
    monkeypatch.setenv("WANDB_API_KEY", "wandb-secret")
    versions = {
        link.source: [FakeArtifact("v0", link.file, wandb_digest(link.checkpoint))]
        for link in link_plan(load_params(study / "params.yaml"), study)
    }
    keys: list[str] = []

    def api(key: str, root: Path) -> Any:
        keys.append(key)
        return fake_api(versions)

    monkeypatch.setattr("kdgat.publish.release.wandb_api", api)
    return versions, keys


def test_registry_links_each_released_checkpoint_with_its_aliases(
    study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    versions, keys = _wandb(study, monkeypatch)
    done = publish(load_params(study / "params.yaml"), study, services=("wandb",))
    assert keys == ["wandb-secret"] and len(done) == len(versions) == 9
    (kd,) = versions["kd-gat/fusion_small_kd-synth"]
    assert kd.linked() == [
        ("wandb-registry-model/fusion_small_kd-synth", ["staging", "production", "paper-v1"])
    ]


def test_a_registry_link_failing_names_w_and_b_and_the_model_and_leaves_none_linked(
    study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    versions, _ = _wandb(study, monkeypatch)
    first, second = list(versions)[:2]
    versions[second][0].fail = RuntimeError("HTTP 500 wandb-secret")
    with pytest.raises(PublishError) as err:
        publish(load_params(study / "params.yaml"), study, services=("wandb",))
    name, before = second.rsplit("/", 1)[-1], first.rsplit("/", 1)[-1]
    assert str(err.value).startswith(f"W&B registry: {name}: linking {second}:v0 to ")
    assert str(err.value).endswith(f"HTTP 500 ***; undone: {before}")  # the key never shows
    assert all(a.linked() == [] for arts in versions.values() for a in arts)


def test_cli_upload_errors_never_show_the_token(
    study: Path, services: tuple[FakeHub, FakeZenodo], monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, _ = services
    monkeypatch.setenv("HF_TOKEN", "hf_do_not_print_me")
    result = CliRunner().invoke(app, ["publish", "--yes", "--only", "hub", "--root", str(study)])
    assert result.exit_code == 1
    assert "error: Hugging Face Hub" in result.output and "401" in result.output
    assert "hf_do_not_print_me" not in result.output
    assert hub.repos == {}


def test_from_pretrained_loads_a_published_model_from_the_hub(
    study: Path, services: tuple[FakeHub, FakeZenodo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, zen = services
    publish(_params(study, zen), study, services=HUB_ONLY)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # an empty cache: everything is downloaded
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    hub.calls.clear()
    model = from_pretrained(REPO_ID, "gat_small_kd")
    local = from_pretrained(study / "release" / "synth" / "gat_small_kd")
    assert isinstance(model, torch.nn.Module) and isinstance(local, torch.nn.Module)
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), local.state_dict().values(), strict=True)
    )
    downloaded = sorted(p for m, p in hub.calls if m == "GET" and "/resolve/" in p)
    assert [p.rsplit("/", 2)[-2:] for p in downloaded] == [
        ["gat_small_kd", "config.json"],
        ["gat_small_kd", "model.safetensors"],
    ]
