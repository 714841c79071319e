"""Released models into the W&B model registry, with aliases.

Each stage logs its checkpoint as the model artifact <model>-<dataset> of the tracking project
(kdgat/track/tracker.py). A release links, per released model, the artifact version whose file is the
released checkpoint (matched by MD5, so a later rerun's version is never promoted by mistake) into
wandb-registry-<registry>/<model>-<dataset> with params.yaml `publish.wandb` aliases: `aliases` for every
model, `promoted_aliases` (production, paper-v1) as well for the `promoted` ones. Linking a version that
is already linked with the same aliases changes nothing at W&B, so a rerun is harmless.
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


def link_models(api: Artifacts, links: Sequence[Link]) -> list[str]:
    """Find every link's artifact version first (so a missing one links nothing), then link them all;
    returns what was linked, one line each."""
    found = [(link, _holding(api, link)) for link in links]
    done = []
    for link, art in found:
        try:
            art.link(link.target, aliases=list(link.aliases))
        except Exception as err:
            raise RegistryError(f"linking {link.source} to {link.target}: {err}") from None
        done.append(f"{link.source}:{art.version} → {link.target} [{', '.join(link.aliases)}]")
    return done


def wandb_api(key: str, root: Path) -> Artifacts:
    """wandb.Api with the key, its files kept under <root>/wandb/ (as the stages' runs)."""
    import wandb

    from kdgat.track.tracker import wandb_env

    with wandb_env(root):
        api: Artifacts = wandb.Api(api_key=key)
    return api
