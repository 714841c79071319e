"""A JSON API server on loopback for tests that stand in for a web service (tests/support/fake_hub.py,
fake_zenodo.py): threads, a record of every call, bearer-token checks and injected failures.

``fail`` maps (method, path prefix) to an HTTP status, or to "drop" (close the connection without an
answer); each entry fires once. ``route`` (the subclass) answers (status, body, headers): a JSON body, raw
bytes (a file), or None. HEAD is answered as GET without the body.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlparse

Answer = tuple[int, Any, dict[str, str]]


class LoopbackAPI:
    auth_error: ClassVar[dict[str, Any]] = {"error": "Invalid credentials in Authorization header"}

    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[tuple[str, str]] = []  # (method, path) in arrival order
        self.fail: dict[tuple[str, str], int | str] = {}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # shutdown() waits up to one poll interval (0.5 s by default), at every test's teardown
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> LoopbackAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def anonymous_ok(self, method: str, path: str) -> bool:
        """Whether a call without a token is served (a public read)."""
        return method == "GET"

    def route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Answer:
        raise NotImplementedError

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(
                self, status: int, body: Any = None, headers: dict[str, str] | None = None, head: bool = False
            ) -> None:
                raw = isinstance(body, bytes)
                data = body if raw else b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream" if raw else "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if not head:
                    self.wfile.write(data)

            def _handle(self, method: str) -> None:
                url = urlparse(self.path)
                path, query = unquote(url.path), parse_qs(url.query)
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with api.lock:
                    api.calls.append((method, path))
                    for (m, prefix), action in list(api.fail.items()):
                        if m == method and path.startswith(prefix):
                            del api.fail[(m, prefix)]
                            if action == "drop":
                                self.close_connection = True
                                self.connection.shutdown(2)
                                return
                            self._send(
                                int(action), {"error": f"injected {action}", "message": f"injected {action}"}
                            )
                            return
                    auth = self.headers.get("Authorization")
                    if (
                        auth is None and not api.anonymous_ok("GET" if method == "HEAD" else method, path)
                    ) or (auth is not None and auth != f"Bearer {api.token}"):
                        self._send(401, api.auth_error)
                        return
                    status, out, headers = api.route("GET" if method == "HEAD" else method, path, query, body)
                self._send(status, out, headers, head=method == "HEAD")

            def do_GET(self) -> None:
                self._handle("GET")

            def do_HEAD(self) -> None:
                self._handle("HEAD")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PUT(self) -> None:
                self._handle("PUT")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        return Handler
