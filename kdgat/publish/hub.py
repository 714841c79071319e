"""One dataset's bundle folder to its Hugging Face Hub model repo, through huggingface_hub.

The plan compares the folder with the repo's files (sha256 of LFS files, git blob ids of the others) and
its tags; the upload then creates the repo when missing, makes ONE commit holding every added, changed
and removed file (a Hub commit is all or nothing: a failure leaves the repo as it was), and tags it with
the release tag. A repo already holding this release's files and tag is left alone: publishing the same
commit twice changes nothing. HF_ENDPOINT (read per call) points the client at another server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.errors import RepositoryNotFoundError
from huggingface_hub.hf_api import RepoFile

from kdgat.publish.bundle import FileInfo

KEEP_REMOTE = (".gitattributes",)  # the Hub's own file, not part of a release


class HubConflictError(RuntimeError):
    """The release tag exists on the Hub with other files: the study changed without a new commit."""


@dataclass
class HubPlan:
    repo_id: str
    checked: bool  # False: the dry run did not ask the Hub
    exists: bool = False
    tag_exists: bool = False
    add: list[str] = field(default_factory=list)  # new or changed
    unchanged: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        return self.checked and self.exists and self.tag_exists and not self.add and not self.delete


def hub_api(token: str | None) -> HfApi:
    return HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token or False)


def _same(remote: RepoFile, local: FileInfo) -> bool:
    if remote.lfs is not None:
        return bool(remote.lfs.sha256 == local.sha256)
    return bool(remote.blob_id == local.git_sha1)


def plan_repo(api: HfApi | None, repo_id: str, local: dict[str, FileInfo], tag: str) -> HubPlan:
    """What an upload of ``local`` would change in ``repo_id`` (``api`` None: unchecked, all to add)."""
    if api is None:
        return HubPlan(repo_id, checked=False, add=sorted(local))
    try:
        refs = api.list_repo_refs(repo_id)
    except RepositoryNotFoundError:
        return HubPlan(repo_id, checked=True, add=sorted(local))
    remote = {e.path: e for e in api.list_repo_tree(repo_id, recursive=True) if isinstance(e, RepoFile)}
    plan = HubPlan(repo_id, checked=True, exists=True, tag_exists=any(t.name == tag for t in refs.tags))
    for path, info in local.items():
        (plan.unchanged if path in remote and _same(remote[path], info) else plan.add).append(path)
    plan.delete = sorted(p for p in remote if p not in local and p not in KEEP_REMOTE)
    if plan.tag_exists and (plan.add or plan.delete):
        raise HubConflictError(
            f"{repo_id}: tag {tag} exists with other files ({len(plan.add)} differ, {len(plan.delete)} "
            "extra): the study changed without a new git commit; commit, then publish"
        )
    return plan


def push_repo(
    api: HfApi, plan: HubPlan, folder: Path, tag: str, message: str, description: str, private: bool
) -> str | None:
    """Apply ``plan``: create the repo, one commit, the tag. Returns the new commit's id (None: none)."""
    if plan.up_to_date:
        return None
    if not plan.exists:
        api.create_repo(plan.repo_id, private=private, exist_ok=True)
    oid = None
    if plan.add or plan.delete:
        operations: list[CommitOperationAdd | CommitOperationDelete] = [
            CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(folder / p)) for p in plan.add
        ]
        operations += [CommitOperationDelete(path_in_repo=p) for p in plan.delete]
        info = api.create_commit(
            plan.repo_id, operations, commit_message=message, commit_description=description
        )
        oid = info.oid
    if not plan.tag_exists:
        api.create_tag(plan.repo_id, tag=tag, revision=oid, tag_message=message)
    return oid
