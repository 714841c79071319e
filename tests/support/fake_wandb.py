"""A stand-in for what kdgat/publish/registry.py calls of ``wandb.Api`` (wandb 0.31): ``artifacts(type,
name)`` listing a model's versions, each with its manifest entries, ``linked_artifacts``, ``link(target,
aliases)`` returning the link artifact, and on that ``unlink()`` and ``aliases`` + ``save()``. Links live on
their source version as W&B's memberships do; ``fail`` makes one version's ``link`` (or a link's ``unlink``)
raise, as a registry refusing a request midway."""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace


class FakeLink:
    """A link artifact: ``project`` the registry, ``name`` <collection>:<version>, saved ``aliases``."""

    def __init__(self, source: FakeArtifact, target: str, aliases: Iterable[str]) -> None:
        self.source = source
        self.project, collection = target.split("/")
        self.version = "v0"  # its index in the registry collection
        self.name = f"{collection}:{self.version}"
        self.aliases = list(dict.fromkeys([*aliases, self.version]))  # W&B lists the version as an alias
        self.saved = list(self.aliases)
        self.fail: Exception | None = None

    @property
    def target(self) -> str:
        return f"{self.project}/{self.name.split(':')[0]}"

    def unlink(self) -> None:
        if self.fail:
            raise self.fail
        self.source.links.remove(self)

    def save(self) -> None:
        self.saved = list(self.aliases)


class FakeArtifact:
    """One version of a logged model artifact holding ``file`` with W&B's ``digest``."""

    def __init__(self, version: str, file: str, digest: str) -> None:
        self.version = version
        self.manifest = SimpleNamespace(entries={file: SimpleNamespace(digest=digest)})
        self.links: list[FakeLink] = []
        self.fail: Exception | None = None

    @property
    def linked_artifacts(self) -> list[FakeLink]:
        return list(self.links)

    def linked(self) -> list[tuple[str, list[str]]]:
        """(target, saved aliases but the version) of each link, as a test compares them."""
        return [(lk.target, [a for a in lk.saved if a != lk.version]) for lk in self.links]

    def link(self, target: str, aliases: list[str]) -> FakeLink:
        if self.fail:
            raise self.fail
        for lk in self.links:  # linked already: W&B adds the aliases to the existing membership
            if lk.target == target:
                lk.aliases = list(dict.fromkeys([*lk.aliases, *aliases]))
                lk.save()
                return lk
        lk = FakeLink(self, target, aliases)
        self.links.append(lk)
        return lk


def fake_api(versions: dict[str, list[FakeArtifact]]) -> SimpleNamespace:
    """``wandb.Api`` as registry.py uses it, over ``versions``: source name → its artifact versions."""
    return SimpleNamespace(artifacts=lambda type_name, name: versions[name])
