"""`kdgat publish`: build the bundle, plan what goes where, and (with --yes) upload it.

The plan is the dry run: it writes the bundle and says, per service, what goes where and how big it is;
it makes no network call unless asked to compare with what is published (``remote``). The upload goes in
a fixed order — every dataset's Hub repo, then Zenodo (whose record links the Hub repos), then the W&B
registry — and stops at the first failure with the service and its reason. Each step is whole on its
own (one Hub commit per repo, a Zenodo draft deleted unless published, W&B links made only once every
artifact is found), and each skips what is already published, so rerunning after a failure finishes
the release without doing anything twice.

Tokens (HF_TOKEN, ZENODO_TOKEN, WANDB_API_KEY) come from the environment or the git-ignored .env, are
checked before anything is sent, and are scrubbed from every message this module lets out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kdgat.config import Params
from kdgat.publish.bundle import ZENODO_META, Release, build_release, file_info, files_of, zenodo_metadata
from kdgat.publish.hub import HubPlan, hub_api, plan_repo, push_repo
from kdgat.publish.registry import Link, link_models, link_plan, wandb_api
from kdgat.publish.zenodo import Zenodo, ZenodoPlan

SERVICES = ("hub", "zenodo", "wandb")
TOKENS = {"hub": "HF_TOKEN", "zenodo": "ZENODO_TOKEN", "wandb": "WANDB_API_KEY"}
NAMES = {"hub": "Hugging Face Hub", "zenodo": "Zenodo", "wandb": "W&B registry"}
KEY_FILE = ".env"


class PublishError(RuntimeError):
    """A release step failed; the message starts with the service and never holds a token."""


def secret(name: str, root: Path = Path(".")) -> str | None:
    """``name`` from the environment, else from a `NAME=value` line of <root>/.env."""
    if os.environ.get(name):
        return os.environ[name]
    env_file = root / KEY_FILE
    if env_file.is_file():
        for line in env_file.read_text().splitlines():
            key, sep, value = line.removeprefix("export ").partition("=")
            if sep and key.strip() == name and value.strip().strip("'\""):
                return value.strip().strip("'\"")
    return None


def redact(text: str, secrets: Iterable[str | None]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


@dataclass
class Plan:
    release: Release
    hub: dict[str, HubPlan]  # dataset → its repo's plan
    zenodo: ZenodoPlan
    zenodo_url: str
    links: list[Link]
    notes: list[str] = field(default_factory=list)  # what was not checked, and why


def _sizes(files: dict[str, int]) -> str:
    total = sum(files.values())
    return f"{len(files)} files, {total / 1024:,.0f} KiB"


def zenodo_url(params: Params, sandbox: bool) -> str:
    return params.publish.zenodo.sandbox_url if sandbox else params.publish.zenodo.url


def zenodo_title(root: Path) -> str:
    return str(json.loads((root / ZENODO_META).read_text())["title"])


def make_plan(
    params: Params,
    root: Path = Path("."),
    *,
    remote: bool = False,
    sandbox: bool = False,
    services: Sequence[str] = SERVICES,
) -> Plan:
    """Write the bundle and plan its upload; ``remote``: ask each service what it already holds."""
    release = build_release(params, root)
    notes = []
    hf_token = secret(TOKENS["hub"], root)
    api = hub_api(hf_token) if remote and "hub" in services else None
    hub = {}
    for dataset, folder in release.datasets.items():
        repo_id = params.publish.hub.repo.format(dataset=dataset)
        try:
            hub[dataset] = plan_repo(api, repo_id, files_of(folder), release.tag)
        except Exception as err:
            raise PublishError(f"{NAMES['hub']}: {repo_id}: {redact(str(err), [hf_token])}") from None
    archives = {p.name: file_info(p) for p in release.archives}
    url = zenodo_url(params, sandbox)
    zen_token = secret(TOKENS["zenodo"], root)
    zen = ZenodoPlan("not checked", None, archives)
    if remote and "zenodo" in services:
        if zen_token is None:
            notes.append(f"Zenodo not checked: {TOKENS['zenodo']} is not set")
        else:
            client = Zenodo(url, zen_token)
            try:
                zen = client.plan(zenodo_title(root), release.tag, archives)
            except Exception as err:
                raise PublishError(f"{NAMES['zenodo']}: {redact(str(err), [zen_token])}") from None
            finally:
                client.close()
    if not remote:
        notes.append("remote state not checked (add --remote to compare with what is published)")
    return Plan(release, hub, zen, url, link_plan(params, root), notes)


def describe(plan: Plan) -> list[str]:
    """The plan as lines of text: what goes where, sizes, what is already there."""
    r = plan.release
    commit = r.git_commit or "none"
    lines = [
        f"release {r.tag} (git {commit}{', uncommitted changes' if r.dirty else ''}; params {r.params_hash})",
        f"bundle: {r.root}",
    ]
    for dataset, hp in plan.hub.items():
        files = files_of(r.datasets[dataset])
        lines.append(
            f"Hugging Face Hub {hp.repo_id} ← {dataset}/ ({_sizes({p: i.size for p, i in files.items()})})"
        )
        if not hp.checked:
            lines.append(f"  {len(hp.add)} files to upload, then tag {r.tag} (remote not checked)")
        elif hp.up_to_date:
            lines.append(f"  already published: all {len(hp.unchanged)} files unchanged, tag {r.tag} exists")
        else:
            state = "exists" if hp.exists else "will be created"
            lines.append(
                f"  repo {state}; one commit: {len(hp.add)} added or changed, {len(hp.delete)} removed, "
                f"{len(hp.unchanged)} unchanged; tag {r.tag}"
            )
            for p in hp.add:
                lines.append(f"    + {p} ({files[p].size / 1024:,.1f} KiB)")
            for p in hp.delete:
                lines.append(f"    - {p}")
    z = plan.zenodo
    lines.append(f"Zenodo {plan.zenodo_url} ← {_sizes({n: i.size for n, i in z.files.items()})}")
    for name, info in z.files.items():
        lines.append(f"    {name} ({info.size / 1024:,.1f} KiB, md5 {info.md5})")
    lines.append(
        {
            "new": "  a new deposition (first release: a new concept DOI)",
            "new_version": f"  a new version of deposition {z.latest and z.latest.get('id')} ({z.doi})",
            "unchanged": f"  already published as {z.doi}: nothing to send",
            "not checked": "  new deposition or new version (remote not checked)",
        }[z.action]
    )
    lines.append(f"W&B registry: {len(plan.links)} links")
    for link in plan.links:
        lines.append(f"    {link.source} → {link.target} [{', '.join(link.aliases)}]")
    return [*lines, *(f"note: {n}" for n in plan.notes)]


def publish(
    params: Params, root: Path = Path("."), *, sandbox: bool = False, services: Sequence[str] = SERVICES
) -> list[str]:
    """Upload the release to ``services`` (in SERVICES order); returns what was done, one line each."""
    tokens = {s: secret(TOKENS[s], root) for s in services}
    missing = [TOKENS[s] for s, t in tokens.items() if not t]
    if missing:
        raise PublishError(
            f"set {', '.join(missing)} (environment or {KEY_FILE}) to publish; nothing was sent"
        )
    plan = make_plan(params, root, remote=True, sandbox=sandbox, services=services)
    r = plan.release
    if r.dirty or r.git_commit is None:
        raise PublishError(
            "the working tree has uncommitted changes: commit them first (a release cites a commit)"
        )
    done = []
    secrets = list(tokens.values())
    if "hub" in services:
        api = hub_api(tokens["hub"])
        for dataset, hp in plan.hub.items():
            message = f"kd-gat {r.tag}: {dataset} models from git {r.git_commit}"
            description = f"params hash {r.params_hash}; models: {', '.join(params.publish.models)}"
            try:
                oid = push_repo(
                    api, hp, r.datasets[dataset], r.tag, message, description, params.publish.hub.private
                )
            except Exception as err:
                raise PublishError(f"{NAMES['hub']}: {hp.repo_id}: {redact(str(err), secrets)}") from None
            done.append(
                f"{hp.repo_id}: "
                + (
                    f"commit {oid}, tag {r.tag}"
                    if oid
                    else f"tag {r.tag}"
                    if not hp.up_to_date
                    else "unchanged"
                )
            )
    if "zenodo" in services:
        related = [f"https://huggingface.co/{hp.repo_id}" for hp in plan.hub.values()]
        client = Zenodo(plan.zenodo_url, str(tokens["zenodo"]))
        try:
            rec = client.publish(plan.zenodo, r.root / "zenodo", zenodo_metadata(root, r, related))
        except Exception as err:
            raise PublishError(f"{NAMES['zenodo']}: {redact(str(err), secrets)}") from None
        finally:
            client.close()
        state = "unchanged" if plan.zenodo.action == "unchanged" else "published"
        done.append(f"Zenodo: {state} {rec.get('doi')} (concept {rec.get('conceptdoi')})")
    if "wandb" in services:
        try:
            done += link_models(wandb_api(str(tokens["wandb"]), root), plan.links)
        except Exception as err:
            raise PublishError(f"{NAMES['wandb']}: {redact(str(err), secrets)}") from None
    return done
