"""A real HTTP server on loopback for the api_call block to call; it counts requests and keeps their headers.

`/echo` answers the JSON body; `/flaky/<key>?fail=N` answers 503 N times first; `/slow?seconds=S` sleeps;
`/missing` answers 404; `/headers/<key>` answers the request's headers, query and body;
`/cookie/<key>` sets a cookie; `/redirect/<key>?to=URL` answers 302 to URL; `/deep/<key>?depth=N` answers
200 with JSON nested N deep. Paths match by prefix, so a test makes its own with a unique suffix.

The test stack's worker may reach only the address this target listens on (127.0.0.2, see
`tests/conftest.py`); a second target on 127.0.0.1 stands for what the egress guard must keep out.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

ALLOWED_HOST = "127.0.0.2"


class HttpTarget:
    """The server; `counts[path]` and `headers[path]` record what arrived."""

    def __init__(self, host: str = ALLOWED_HOST, tls: ssl.SSLContext | None = None) -> None:
        self.counts: Counter[str] = Counter()
        self.bodies: list[Any] = []
        self.headers: defaultdict[str, list[dict[str, str]]] = defaultdict(list)
        # `/slow…`: how many requests of a path are being answered now, and the most there ever were at once.
        self.in_flight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                target.counts[url.path] += 1
                target.bodies.append(body)
                target.headers[url.path].append(dict(self.headers.items()))
                query = parse_qs(url.query)
                if url.path.startswith("/flaky") and target.counts[url.path] <= int(query.get("fail", ["1"])[0]):
                    self._answer(503, {"error": "try again"})
                    return
                if url.path.startswith("/slow"):
                    with lock:
                        target.in_flight[url.path] += 1
                        target.peak[url.path] = max(target.peak[url.path], target.in_flight[url.path])
                    time.sleep(float(query.get("seconds", ["5"])[0]))
                    with lock:
                        target.in_flight[url.path] -= 1
                if url.path.startswith("/missing"):
                    self._answer(404, {"error": "no such thing"})
                    return
                if url.path.startswith("/headers"):
                    self._answer(200, {"headers": dict(self.headers.items()), "query": query, "body": body})
                    return
                if url.path.startswith("/cookie"):
                    self._answer(200, {"set": True}, {"Set-Cookie": f"session=s{time.monotonic_ns()}; Path=/"})
                    return
                if url.path.startswith("/redirect"):
                    self._answer(302, {}, {"Location": query["to"][0]})
                    return
                if url.path.startswith("/deep"):
                    depth = int(query.get("depth", ["100000"])[0])
                    self._answer(200, b"[" * depth + b"]" * depth)
                    return
                self._answer(200, {"received": body, "count": target.counts[url.path], "path": url.path})

            do_PUT = do_POST  # noqa: N815
            do_GET = do_POST  # noqa: N815

        self.server = ThreadingHTTPServer((host, 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://{host}:{self.server.server_address[1]}"
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HttpTarget:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
