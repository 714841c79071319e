"""A Hugging Face Hub on loopback for the release tests: the endpoints huggingface_hub 2.4 calls to create
a repo, list its refs and files, preupload, upload LFS objects (basic transfer), commit and tag, answered
in the Hub's shapes (JSON bodies, X-Error-Code headers, NDJSON commits), with what arrives recorded
(support/loopback.py: the call log, token checks, injected failures).

Files whose names end in .safetensors, .onnx or .zip are LFS files, as the Hub's default .gitattributes
makes them; the others are regular git blobs. A commit is applied whole or not at all (an LFS object it
names that never arrived fails it with 422).

Point a client at it with HF_ENDPOINT=server.url (clients also need HF_HUB_DISABLE_XET: the Xet
protocol is not served here).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from support.loopback import Answer, LoopbackAPI

LFS_SUFFIXES = (".safetensors", ".onnx", ".zip", ".bin")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass
class Repo:
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[dict[str, Any]] = field(default_factory=list)  # {oid, summary, description, paths}
    tags: dict[str, str] = field(default_factory=dict)  # name → commit oid

    @property
    def head(self) -> str:
        return self.commits[-1]["oid"] if self.commits else "0" * 40


class FakeHub(LoopbackAPI):
    def __init__(self, token: str = "hf_test_token") -> None:
        super().__init__(token)
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}  # sha256 → content

    def __enter__(self) -> FakeHub:
        super().__enter__()
        return self

    def anonymous_ok(self, method: str, path: str) -> bool:
        return method == "GET" or path.startswith("/lfs-upload/")  # the upload URL is pre-signed

    def writes(self) -> list[tuple[str, str]]:
        """The calls that change the Hub (repo, LFS object, commit, tag), in order."""
        reads = ("/preupload/", "/api/validate-yaml", "/objects/batch")
        return [c for c in self.calls if c[0] != "GET" and not any(r in c[1] for r in reads)]

    def route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Answer:
        if method == "POST" and path == "/api/validate-yaml":
            return 200, {"errors": [], "warnings": []}, {}
        if method == "POST" and path == "/api/repos/create":
            req = json.loads(body)
            repo_id = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
            if repo_id in self.repos:
                return (
                    409,
                    {"error": "You already created this model repo", "url": f"{self.url}/{repo_id}"},
                    {},
                )
            self.repos[repo_id] = Repo(private=req.get("visibility") == "private" or bool(req.get("private")))
            return 200, {"url": f"{self.url}/{repo_id}", "name": repo_id}, {}
        if method == "PUT" and path.startswith("/lfs-upload/"):
            oid = path.rsplit("/", 1)[1]
            if hashlib.sha256(body).hexdigest() != oid:
                return 400, {"error": "sha256 does not match the object id"}, {}
            self.lfs[oid] = body
            return 200, None, {}
        if method == "POST" and path.endswith(".git/info/lfs/objects/batch"):
            repo_id = path.removeprefix("/").removesuffix(".git/info/lfs/objects/batch")
            if repo_id not in self.repos:
                return 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
            req = json.loads(body)
            objects = []
            for o in req["objects"]:
                entry: dict[str, Any] = {"oid": o["oid"], "size": o["size"], "authenticated": True}
                if o["oid"] not in self.lfs:
                    entry["actions"] = {"upload": {"href": f"{self.url}/lfs-upload/{o['oid']}", "header": {}}}
                objects.append(entry)
            return 200, {"transfer": "basic", "objects": objects}, {}
        if method == "GET" and "/resolve/" in path:
            return self._resolve(path)
        parts = path.removeprefix("/api/models/").split("/")
        if not path.startswith("/api/models/") or len(parts) < 3:
            return 404, {"error": f"no route {method} {path}"}, {}
        repo_id, action, rest = "/".join(parts[:2]), parts[2], parts[3:]
        repo = self.repos.get(repo_id)
        if repo is None:
            return 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
        if method == "GET" and action == "refs":
            branch = {"name": "main", "ref": "refs/heads/main", "targetCommit": repo.head}
            tags = [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": o} for t, o in repo.tags.items()]
            return 200, {"branches": [branch], "tags": tags, "converts": []}, {}
        if method == "GET" and action == "revision":
            sha = repo.tags.get("/".join(rest), repo.head)  # the stand-in keeps the head's files only
            siblings = [{"rfilename": p} for p in sorted(repo.files)]
            return (
                200,
                {
                    "id": repo_id,
                    "modelId": repo_id,
                    "sha": sha,
                    "siblings": siblings,
                    "private": repo.private,
                },
                {},
            )
        if method == "GET" and action == "tree":
            return 200, self._tree(repo), {}
        if method == "POST" and action == "preupload":
            files = json.loads(body)["files"]
            return 200, {"files": [self._mode(repo, f) for f in files]}, {}
        if method == "POST" and action == "commit":
            return self._commit(repo_id, repo, body)
        if method == "POST" and action == "tag":
            req = json.loads(body)
            if req["tag"] in repo.tags:
                return 409, {"error": "Tag already exists"}, {}
            rev = "/".join(rest)
            repo.tags[req["tag"]] = repo.head if rev in ("main", "") else rev
            return 200, {}, {}
        return 404, {"error": f"no route {method} {path}"}, {}

    def _resolve(self, path: str) -> Answer:
        """A file download: /<repo>/resolve/<revision>/<path> with the Hub's headers."""
        repo_id, _, rest = path.removeprefix("/").partition("/resolve/")
        _, _, file = rest.partition("/")  # any revision: the stand-in keeps the head's files only
        repo = self.repos.get(repo_id)
        if repo is None:
            return 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
        if file not in repo.files:
            return 404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"}
        data = repo.files[file]
        etag = hashlib.sha256(data).hexdigest() if self._is_lfs(file) else git_blob_id(data)
        return 200, data, {"X-Repo-Commit": repo.head, "ETag": f'"{etag}"'}

    @staticmethod
    def _is_lfs(path: str) -> bool:
        return path.endswith(LFS_SUFFIXES)

    def _mode(self, repo: Repo, f: dict[str, Any]) -> dict[str, Any]:
        mode = "lfs" if self._is_lfs(f["path"]) else "regular"
        entry: dict[str, Any] = {"path": f["path"], "uploadMode": mode, "shouldIgnore": False}
        if f["path"] in repo.files:
            entry["oid"] = git_blob_id(repo.files[f["path"]])
        return entry

    def _tree(self, repo: Repo) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        folders = sorted({"/".join(p.split("/")[:i]) for p in repo.files for i in range(1, p.count("/") + 1)})
        out += [{"type": "directory", "oid": "0" * 40, "size": 0, "path": d} for d in folders]
        for p, data in sorted(repo.files.items()):
            entry: dict[str, Any] = {"type": "file", "size": len(data), "path": p}
            if self._is_lfs(p):
                sha = hashlib.sha256(data).hexdigest()
                pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n"
                entry["oid"] = git_blob_id(pointer.encode())
                entry["lfs"] = {
                    "oid": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "pointerSize": len(pointer),
                }
            else:
                entry["oid"] = git_blob_id(data)
            out.append(entry)
        return out

    def _commit(self, repo_id: str, repo: Repo, body: bytes) -> Answer:
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next(x["value"] for x in lines if x["key"] == "header")
        new = dict(repo.files)
        for item in lines:
            key, value = item["key"], item["value"]
            if key == "file":
                new[value["path"]] = base64.b64decode(value["content"])
            elif key == "lfsFile":
                if value["oid"] not in self.lfs:
                    return (
                        422,
                        {"error": f"LFS object {value['oid']} of {value['path']} was not uploaded"},
                        {},
                    )
                new[value["path"]] = self.lfs[value["oid"]]
            elif key in ("deletedFile", "deletedFolder"):
                new = {
                    p: d
                    for p, d in new.items()
                    if p != value["path"] and not p.startswith(value["path"] + "/")
                }
        oid = hashlib.sha1(
            json.dumps([repo.head, sorted((p, git_blob_id(d)) for p, d in new.items())]).encode(),
            usedforsecurity=False,
        ).hexdigest()
        repo.files = new
        changed = sorted(x["value"]["path"] for x in lines if x["key"] != "header")
        repo.commits.append(
            {"oid": oid, "summary": header["summary"], "description": header["description"], "paths": changed}
        )
        return (
            200,
            {"commitUrl": f"{self.url}/{repo_id}/commit/{oid}", "commitOid": oid, "pullRequestUrl": None},
            {},
        )
