"""Released models into the W&B model registry, with aliases.

Each stage logs its checkpoint as the model artifact <model>-<dataset> of the tracking project
(kdgat/track/tracker.py). A release links, per released model, the artifact version whose file is the
released checkpoint (matched by MD5, so a later rerun's version is never promoted by mistake) into
wandb-registry-<registry>/<model>-<dataset> with params.yaml `publish.wandb` aliases: `aliases` for every
model, `promoted_aliases` (production, paper-v1) as well for the `promoted` ones. Linking a version that
is already linked with the same aliases changes nothing at W&B, so a rerun is harmless.

W&B has no transaction over several links, so a failure on the k-th link is undone by hand, as far as its
public Artifact API reaches (wandb 0.31): each link this run made is removed again (``Artifact.unlink``),
and a version that was linked before gets back the aliases it had (``aliases`` + ``save``). An alias this
run moved off another version of the collection (`production` of an earlier release) is not moved back:
W&B reports no previous holder. The error names what was undone and anything that could not be.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kdgat.config import Params
from kdgat.study import Model, Paths
from kdgat.track.tracker import artifact_name


class RegistryError(RuntimeError):
    """No W&B artifact holds a released checkpoint, or linking failed."""


class Artifacts(Protocol):
    """What ``link_models`` needs of ``wandb.Api`` (tests pass a stand-in)."""

    def artifacts(self, type_name: str, name: str) -> Iterable[Any]: ...


@dataclass(frozen=True)
class Link:
    source: str  # entity/project/<model>-<dataset> (entity omitted: the key's default)
    file: str  # the checkpoint's name inside the artifact
    checkpoint: Path
    target: str  # wandb-registry-<registry>/<model>-<dataset>
    aliases: tuple[str, ...]


def link_plan(params: Params, root: Path = Path(".")) -> list[Link]:
    """One link per released model of each released dataset, with its aliases."""
    pub, tracking = params.publish, params.tracking
    prefix = f"{tracking.entity}/{tracking.project}" if tracking.entity else tracking.project
    links = []
    for dataset in pub.datasets:
        for name in pub.models:
            aliases = [
                *pub.wandb.aliases,
                *(pub.wandb.promoted_aliases if name in pub.wandb.promoted else ()),
            ]
            ckpt = Paths(dataset, root).weights(Model.parse(name))
            art = artifact_name(name, dataset)
            links.append(
                Link(
                    f"{prefix}/{art}",
                    ckpt.name,
                    ckpt,
                    f"wandb-registry-{pub.wandb.registry}/{art}",
                    tuple(dict.fromkeys(aliases)),
                )
            )
    return links


def wandb_digest(path: Path) -> str:
    """W&B's manifest digest of a file: base64 of its MD5."""
    return base64.b64encode(hashlib.md5(path.read_bytes(), usedforsecurity=False).digest()).decode()


def _holding(api: Artifacts, link: Link) -> Any:
    digest = wandb_digest(link.checkpoint)
    try:
        versions = list(api.artifacts("model", link.source))
    except Exception as err:  # wandb raises its own CommError/ValueError for an unknown artifact
        raise RegistryError(
            f"{link.source}: no such W&B artifact ({err}); sync the runs: `kdgat track sync`"
        ) from None
    for art in versions:
        entry = art.manifest.entries.get(link.file)
        if entry is not None and entry.digest == digest:
            return art
    raise RegistryError(
        f"{link.source}: none of its {len(versions)} version(s) holds {link.checkpoint} as released; "
        "sync the runs that made it (`kdgat track sync`)"
    )


def _name(link: Link) -> str:
    return link.source.rsplit("/", 1)[-1]  # <model>-<dataset>


def _linked_before(art: Any, link: Link) -> Any | None:
    """The link of ``art`` into ``link.target`` that exists already (an earlier release), if any."""
    try:
        for linked in art.linked_artifacts:
            if f"{linked.project}/{linked.name.split(':')[0]}" == link.target:
                return linked
    except Exception as err:  # asked before anything is linked: failing here leaves W&B untouched
        raise RegistryError(f"{_name(link)}: reading the links of {link.source}: {err}") from None
    return None


@dataclass
class _Made:
    """One link of this run, and how to undo it: unlink it, or take off the aliases this run added."""

    link: Link
    linked: Any  # the link artifact W&B returned
    added: list[str] | None  # aliases this run added to a link made before; None: this run made the link


def _undo(made: Sequence[_Made]) -> str:
    """Undo ``made`` (last first); says what was undone and what could not be."""
    undone, stuck = [], []
    for m in reversed(made):
        try:
            if m.added is None:
                m.linked.unlink()
            elif m.added:
                m.linked.aliases = [a for a in m.linked.aliases if a not in m.added]
                m.linked.save()  # on a logged artifact: updates its aliases only
            else:
                continue  # linked before with these aliases already: this run changed nothing there
            undone.append(_name(m.link))
        except Exception as err:
            stuck.append(f"{_name(m.link)} ({err})")
    if not made:
        return "nothing was linked before it"
    said = [f"undone: {', '.join(undone)}"] if undone else []
    if stuck:
        said.append(f"still linked, undo by hand in the registry: {', '.join(stuck)}")
    return "; ".join(said) or "the links before it were there already"


def link_models(api: Artifacts, links: Sequence[Link]) -> list[str]:
    """Find every link's artifact version and its existing links first (so a missing one links nothing),
    then link them all; a failing link undoes the ones before it. Returns what was linked, one line each."""
    found = []
    for link in links:
        art = _holding(api, link)
        before = _linked_before(art, link)
        # read now: linking changes the aliases of an existing link in place
        added = None if before is None else [a for a in link.aliases if a not in before.aliases]
        found.append((link, art, added))
    done: list[str] = []
    made: list[_Made] = []
    for link, art, added in found:
        try:
            linked = art.link(link.target, aliases=list(link.aliases))
        except Exception as err:
            raise RegistryError(
                f"{_name(link)}: linking {link.source}:{art.version} to {link.target}: {err}; {_undo(made)}"
            ) from None
        made.append(_Made(link, linked, added))
        done.append(f"{link.source}:{art.version} → {link.target} [{', '.join(link.aliases)}]")
    return done


def wandb_api(key: str, root: Path) -> Artifacts:
    """wandb.Api with the key, its files kept under <root>/wandb/ (as the stages' runs)."""
    import wandb

    from kdgat.track.tracker import wandb_env

    with wandb_env(root):
        api: Artifacts = wandb.Api(api_key=key)
    return api
