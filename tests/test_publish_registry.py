"""The W&B registry step of a release (kdgat/publish/registry.py) against a stand-in of ``wandb.Api``
(tests/support/fake_wandb.py): the alias plan, the version holding the released checkpoint linked with its
aliases, and a link failing midway undoing the links before it."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.fake_wandb import FakeArtifact, FakeLink, fake_api

from kdgat.config import load_params
from kdgat.publish.registry import Link, RegistryError, link_models, link_plan, wandb_digest

REPO = Path(__file__).resolve().parents[1]


def test_alias_plan_promotes_the_paper_models() -> None:
    params = load_params(REPO / "params.yaml")
    links = {link.target: link for link in link_plan(params)}
    assert len(links) == len(params.publish.models) * len(params.publish.datasets)
    kd = links["wandb-registry-model/gat_small_kd-synth"]
    assert kd.aliases == ("staging", "production", "paper-v1")
    assert kd.source == "kd-gat/gat_small_kd-synth" and kd.file == "gat_small_kd.ckpt"
    assert links["wandb-registry-model/gat_large-synth"].aliases == ("staging",)


def _links(root: Path, *models: str) -> list[Link]:
    by_model = {
        link.source.rsplit("/", 1)[-1].removesuffix("-synth"): link
        for link in link_plan(load_params(root / "params.yaml"), root)
    }
    return [by_model[m] for m in models]


def _versions(links: list[Link]) -> dict[str, list[FakeArtifact]]:
    """Per source: an older version (another file) and v1, which holds the released checkpoint."""
    return {
        link.source: [
            FakeArtifact("v0", link.file, "other"),
            FakeArtifact("v1", link.file, wandb_digest(link.checkpoint)),
        ]
        for link in links
    }


def test_link_models_links_the_version_holding_the_released_checkpoint(release_study: Path) -> None:
    links = _links(release_study, "gat_large", "gat_small_kd")
    versions = _versions(links)
    done = link_models(fake_api(versions), links)
    assert len(done) == 2
    for link in links:
        old, released = versions[link.source]
        assert old.linked() == [] and released.linked() == [(link.target, list(link.aliases))]
    assert link_models(fake_api(versions), links) == done  # a rerun links the same, adds nothing
    assert versions[links[1].source][1].linked() == [(links[1].target, list(links[1].aliases))]
    # one artifact without the released file: nothing is linked at all
    versions = _versions(links)
    versions[links[1].source] = [FakeArtifact("v0", links[1].file, "other")]
    with pytest.raises(RegistryError, match="none of its 1 version"):
        link_models(fake_api(versions), links)
    assert all(a.linked() == [] for arts in versions.values() for a in arts)


def test_a_failing_link_undoes_the_links_before_it(release_study: Path) -> None:
    links = _links(release_study, "gat_large", "gat_small_kd", "gat_small")
    versions = _versions(links)
    large, kd, small = (versions[link.source][1] for link in links)
    kd.link(links[1].target, ["staging"])  # an earlier release linked it, without the paper's aliases
    small.fail = RuntimeError("HTTP 502 Bad Gateway")
    with pytest.raises(RegistryError) as err:
        link_models(fake_api(versions), links)
    assert str(err.value) == (
        "gat_small-synth: linking kd-gat/gat_small-synth:v1 to wandb-registry-model/gat_small-synth: "
        "HTTP 502 Bad Gateway; undone: gat_small_kd-synth, gat_large-synth"
    )
    # the new link is gone; the earlier one is back to the aliases it had
    assert large.linked() == [] and kd.linked() == [(links[1].target, ["staging"])]
    assert small.linked() == []


def test_the_second_link_failing_names_the_first_if_it_cannot_be_undone(release_study: Path) -> None:
    links = _links(release_study, "gat_large", "gat_small_kd")
    versions = _versions(links)
    large, kd = (versions[link.source][1] for link in links)
    kd.fail = RuntimeError("HTTP 500")
    # the first link made, then refused when undone: the error says it is still linked
    real_link = large.link

    def link_then_refuse_unlink(target: str, aliases: list[str]) -> FakeLink:
        made = real_link(target, aliases)
        made.fail = PermissionError("no permission to unlink")
        return made

    large.link = link_then_refuse_unlink  # type: ignore[method-assign]
    with pytest.raises(RegistryError) as err:
        link_models(fake_api(versions), links)
    assert str(err.value).startswith("gat_small_kd-synth: linking kd-gat/gat_small_kd-synth:v1")
    assert str(err.value).endswith(
        "HTTP 500; still linked, undo by hand in the registry: gat_large-synth (no permission to unlink)"
    )
    assert large.linked() == [(links[0].target, ["staging"])]
