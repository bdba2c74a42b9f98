"""A real HTTP server on loopback for the api_call block to call: echo, flaky, slow; it counts requests."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class HttpTarget:
    """`/echo` answers the JSON body; `/flaky/<key>?fail=N` answers 503 N times first; `/slow?seconds=S` sleeps."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.bodies: list[Any] = []
        target = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, payload: Any) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                target.counts[url.path] += 1
                target.bodies.append(body)
                query = parse_qs(url.query)
                if url.path.startswith("/flaky") and target.counts[url.path] <= int(query.get("fail", ["1"])[0]):
                    self._answer(503, {"error": "try again"})
                    return
                if url.path.startswith("/slow"):
                    time.sleep(float(query.get("seconds", ["5"])[0]))
                if url.path.startswith("/missing"):
                    self._answer(404, {"error": "no such thing"})
                    return
                self._answer(200, {"received": body, "count": target.counts[url.path], "path": url.path})

            do_PUT = do_POST  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HttpTarget:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
