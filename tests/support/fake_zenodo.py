"""Zenodo's REST deposition API on loopback for the release tests, in the shapes its documentation gives
(developers.zenodo.org): list/create/get/update/delete depositions, the bucket file upload (PUT
/api/files/<bucket>/<name>, answering the MD5 it computed), deleting a draft's files, and the
newversion and publish actions. Published depositions are immutable and cannot be deleted; a concept
has at most one open draft. Call log, token checks and injected failures: support/loopback.py.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from support.loopback import Answer, LoopbackAPI

REQUIRED = ("title", "upload_type", "description", "creators")


@dataclass
class Deposition:
    id: int
    conceptrecid: int
    bucket: str
    metadata: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # filename → content
    file_ids: dict[str, str] = field(default_factory=dict)
    submitted: bool = False


class FakeZenodo(LoopbackAPI):
    auth_error: ClassVar[dict[str, Any]] = {
        "status": 401,
        "message": "The server could not verify that you are authorized to access the URL requested.",
    }

    def __init__(self, token: str = "zenodo_test_token") -> None:
        super().__init__(token)
        self.deps: dict[int, Deposition] = {}
        self.next_id = 1000

    def __enter__(self) -> FakeZenodo:
        super().__enter__()
        return self

    def anonymous_ok(self, method: str, path: str) -> bool:
        return False  # the deposition API always wants the token

    def published(self) -> list[Deposition]:
        return sorted((d for d in self.deps.values() if d.submitted), key=lambda d: d.id)

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def _json(self, d: Deposition) -> dict[str, Any]:
        base = f"{self.url}/api/deposit/depositions/{d.id}"
        out: dict[str, Any] = {
            "id": d.id,
            "record_id": d.id,
            "conceptrecid": str(d.conceptrecid),
            "metadata": d.metadata,
            "state": "done" if d.submitted else "unsubmitted",
            "submitted": d.submitted,
            "files": [
                {
                    "id": d.file_ids[name],
                    "filename": name,
                    "filesize": len(data),
                    "checksum": hashlib.md5(data, usedforsecurity=False).hexdigest(),
                }
                for name, data in sorted(d.files.items())
            ],
            "links": {
                "self": base,
                "bucket": f"{self.url}/api/files/{d.bucket}",
                "publish": f"{base}/actions/publish",
                "discard": f"{base}/actions/discard",
                "newversion": f"{base}/actions/newversion",
                "html": f"{self.url}/deposit/{d.id}",
            },
        }
        if d.submitted:
            out["doi"] = f"10.5072/zenodo.{d.id}"
            out["conceptdoi"] = f"10.5072/zenodo.{d.conceptrecid}"
        return out

    def route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Answer:
        if path.startswith("/api/files/") and method == "PUT":
            bucket, _, name = path.removeprefix("/api/files/").partition("/")
            dep = next((d for d in self.deps.values() if d.bucket == bucket), None)
            if dep is None or dep.submitted:
                return 403, {"status": 403, "message": "The bucket is locked or unknown."}, {}
            dep.files[name] = body
            dep.file_ids[name] = hashlib.sha1(f"{dep.id}/{name}".encode(), usedforsecurity=False).hexdigest()
            md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
            return 201, {"key": name, "size": len(body), "checksum": f"md5:{md5}"}, {}
        if not path.startswith("/api/deposit/depositions"):
            return 404, {"status": 404, "message": "The requested URL was not found on the server."}, {}
        parts = [p for p in path.removeprefix("/api/deposit/depositions").split("/") if p]
        if not parts:
            if method == "GET":
                return 200, [self._json(d) for d in sorted(self.deps.values(), key=lambda d: -d.id)], {}
            if method == "POST":
                dep_id = self._new_id()
                dep = Deposition(dep_id, self._new_id(), f"bucket-{dep_id}")
                self.deps[dep_id] = dep
                return 201, self._json(dep), {}
        dep = self.deps.get(int(parts[0]))
        if dep is None:
            return 404, {"status": 404, "message": "PID does not exist."}, {}
        rest = parts[1:]
        if not rest:
            if method == "GET":
                return 200, self._json(dep), {}
            if method == "PUT":
                if dep.submitted:
                    return 400, {"status": 400, "message": "Deposition is published: edit it first."}, {}
                meta = json.loads(body)["metadata"]
                missing = [k for k in REQUIRED if not meta.get(k)]
                if missing:
                    errors = [{"field": f"metadata.{k}", "message": "Field is required."} for k in missing]
                    return 400, {"status": 400, "message": "Validation error.", "errors": errors}, {}
                dep.metadata = meta
                return 200, self._json(dep), {}
            if method == "DELETE":
                if dep.submitted:
                    return 403, {"status": 403, "message": "Published depositions cannot be deleted."}, {}
                del self.deps[dep.id]
                return 204, None, {}
        if rest[:1] == ["files"] and method == "DELETE" and len(rest) == 2:
            found = next((n for n, i in dep.file_ids.items() if i == rest[1]), None)
            if found is None or dep.submitted:
                return 404, {"status": 404, "message": "File does not exist."}, {}
            del dep.files[found], dep.file_ids[found]
            return 204, None, {}
        if rest[:1] == ["actions"] and method == "POST" and len(rest) == 2:
            if rest[1] == "publish":
                if not dep.files or not all(dep.metadata.get(k) for k in REQUIRED):
                    return (
                        400,
                        {
                            "status": 400,
                            "message": "Validation error.",
                            "errors": [{"message": "files and metadata required"}],
                        },
                        {},
                    )
                dep.submitted = True
                return 202, self._json(dep), {}
            if rest[1] == "newversion":
                if not dep.submitted:
                    return 400, {"status": 400, "message": "Only published depositions get new versions."}, {}
                if any(d.conceptrecid == dep.conceptrecid and not d.submitted for d in self.deps.values()):
                    return 400, {"status": 400, "message": "A new version draft already exists."}, {}
                latest = max(
                    (d for d in self.deps.values() if d.conceptrecid == dep.conceptrecid), key=lambda d: d.id
                )
                new_id = self._new_id()
                draft = Deposition(
                    new_id,
                    dep.conceptrecid,
                    f"bucket-{new_id}",
                    dict(latest.metadata),
                    dict(latest.files),
                    {},
                )
                draft.file_ids = {
                    n: hashlib.sha1(f"{new_id}/{n}".encode(), usedforsecurity=False).hexdigest()
                    for n in draft.files
                }
                self.deps[new_id] = draft
                out = self._json(dep)
                out["links"]["latest_draft"] = f"{self.url}/api/deposit/depositions/{new_id}"
                return 201, out, {}
        return 404, {"status": 404, "message": f"no route {method} {path}"}, {}
