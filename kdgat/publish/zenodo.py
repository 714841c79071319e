"""The release's archives (code and models) to Zenodo through its REST deposition API, under one concept
DOI: the first release makes a new deposition, each later one a new version of it.

The concept is found among the token owner's depositions by the title of .zenodo.json. A published
version whose version string is this release's tag and whose files have the same MD5s is this release:
nothing is sent. Otherwise: create the draft (new deposition, or `newversion` of the latest), remove the
files a new version carries over, upload each archive into the draft's bucket (checking the MD5 Zenodo
computes), set the metadata, publish. Any failure before publish deletes the draft, so nothing
half-made stays behind; the error names the call and Zenodo's answer. The token travels in the
Authorization header only, never in a URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from kdgat.publish.bundle import FileInfo

TIMEOUT_S = 120.0
Action = Literal["new", "new_version", "unchanged", "not checked"]


class ZenodoError(RuntimeError):
    """A Zenodo call failed; the message names it and Zenodo's reason (never the token)."""


@dataclass
class ZenodoPlan:
    action: Action
    latest: dict[str, Any] | None = None  # the concept's latest published deposition
    files: dict[str, FileInfo] = field(default_factory=dict)

    @property
    def doi(self) -> str | None:
        return None if self.latest is None else self.latest.get("doi")


class Zenodo:
    """A small client of /api/deposit/depositions at ``base_url`` (zenodo.org, its sandbox, a test server)."""

    def __init__(self, base_url: str, token: str, timeout: float = TIMEOUT_S) -> None:
        self.base = base_url.rstrip("/") + "/api"
        self.http = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, url: str, **kwargs: Any) -> Any:
        """One request (``url`` absolute or relative to /api); its JSON body, or None when empty."""
        full = url if url.startswith(("http://", "https://")) else self.base + url
        what = f"{method} {full.split('?')[0]}"
        try:
            resp = self.http.request(method, full, **kwargs)
        except httpx.HTTPError as err:
            raise ZenodoError(f"{what}: no answer ({type(err).__name__}: {err})") from None
        if resp.status_code >= 400:
            try:
                body = resp.json()
                reason = body.get("message") or body
                errors = body.get("errors")
            except ValueError:
                reason, errors = resp.text[:300], None
            detail = f"{reason}" + (f" {errors}" if errors else "")
            raise ZenodoError(f"{what}: HTTP {resp.status_code}: {detail}")
        return resp.json() if resp.content else None

    # --- what exists ---------------------------------------------------------------------------------

    def depositions(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = self.call(
                "GET", "/deposit/depositions", params={"size": 100, "page": page, "sort": "mostrecent"}
            )
            out += batch
            if len(batch) < 100:
                return out
            page += 1

    def plan(self, title: str, tag: str, files: dict[str, FileInfo]) -> ZenodoPlan:
        """new | new_version | unchanged for a release titled ``title`` with version ``tag``."""
        mine = [d for d in self.depositions() if d.get("metadata", {}).get("title") == title]
        drafts = [d for d in mine if not d.get("submitted")]
        if drafts:
            ids = ", ".join(str(d["id"]) for d in drafts)
            raise ZenodoError(
                f"an unpublished draft of {title!r} exists (deposition {ids}): "
                "publish or delete it on Zenodo first"
            )
        if not mine:
            return ZenodoPlan("new", None, files)
        latest = max(mine, key=lambda d: int(d["id"]))
        remote = {f["filename"]: f["checksum"].removeprefix("md5:") for f in latest.get("files", [])}
        same_files = remote == {name: info.md5 for name, info in files.items()}
        if latest.get("metadata", {}).get("version") == tag:
            if not same_files:
                raise ZenodoError(
                    f"version {tag} is published (deposition {latest['id']}) with other files: the study "
                    "changed without a new git commit; commit, then publish"
                )
            return ZenodoPlan("unchanged", latest, files)
        return ZenodoPlan("new_version", latest, files)

    # --- publishing ----------------------------------------------------------------------------------

    def _draft(self, plan: ZenodoPlan) -> dict[str, Any]:
        if plan.action == "new":
            draft: dict[str, Any] = self.call("POST", "/deposit/depositions", json={})
            return draft
        assert plan.latest is not None
        made = self.call("POST", f"/deposit/depositions/{plan.latest['id']}/actions/newversion")
        draft = self.call("GET", made["links"]["latest_draft"])
        return draft

    def publish(self, plan: ZenodoPlan, folder: Path, metadata: dict[str, Any]) -> dict[str, Any]:
        """Carry out ``plan`` with the files of ``folder``; the published deposition (or the latest)."""
        if plan.action == "unchanged":
            assert plan.latest is not None
            return plan.latest
        draft = self._draft(plan)
        try:
            for carried in draft.get("files", []):
                self.call("DELETE", f"/deposit/depositions/{draft['id']}/files/{carried['id']}")
            for name, info in plan.files.items():
                with (folder / name).open("rb") as fh:
                    stored = self.call(
                        "PUT",
                        f"{draft['links']['bucket']}/{name}",
                        content=fh.read(),
                        headers={"Content-Type": "application/octet-stream"},
                    )
                if stored.get("checksum") != f"md5:{info.md5}":
                    raise ZenodoError(
                        f"{name}: Zenodo stored MD5 {stored.get('checksum')}, sent md5:{info.md5}"
                    )
            self.call("PUT", f"/deposit/depositions/{draft['id']}", json={"metadata": metadata})
            done: dict[str, Any] = self.call("POST", f"/deposit/depositions/{draft['id']}/actions/publish")
            return done
        except BaseException as err:
            try:
                self.call("DELETE", f"/deposit/depositions/{draft['id']}")
            except ZenodoError as cleanup:
                raise ZenodoError(f"{err}; and the draft {draft['id']} was not deleted: {cleanup}") from None
            if isinstance(err, ZenodoError):
                raise ZenodoError(f"{err} (draft {draft['id']} deleted: nothing published)") from None
            raise
