"""A real HTTP server on loopback that receives webhook events: it keeps each request's headers and raw body.

`fail(event_id, times)` makes it answer 500 to that event's next `times` deliveries; `redirect(event_id, to)`
answers 302 to `to` instead. The test stack's worker
sends the test project's events to the receiver on 127.0.0.2 (allowed by the stack's egress setting); a second
receiver on 127.0.0.1 stands for an address the egress guard must keep out, and must never receive anything.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Delivery:
    """One request as it arrived."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.body)
        return event


class WebhookReceiver:
    """The server; `deliveries` holds every request, in arrival order."""

    def __init__(self, host: str) -> None:
        self.deliveries: list[Delivery] = []
        self.failures: Counter[str] = Counter()
        self.redirects: dict[str, str] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.deliveries.append(Delivery(self.command, self.path, dict(self.headers.items()), raw))
                    try:
                        event_id = str(json.loads(raw).get("id"))
                    except ValueError:
                        event_id = ""
                    failing = receiver.failures[event_id] > 0
                    if failing:
                        receiver.failures[event_id] -= 1
                    location = receiver.redirects.get(event_id)
                status, body = (500, b'{"error":"not now"}') if failing else (200, b'{"ok":true}')
                if location is not None:
                    status = 302
                self.send_response(status)
                if location is not None:
                    self.send_header("Location", location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST  # noqa: N815

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def fail(self, event_id: str, times: int) -> None:
        """Answer 500 to the next `times` deliveries of this event."""
        with self.lock:
            self.failures[event_id] = times

    def redirect(self, event_id: str, to: str) -> None:
        """Answer 302 to `to` to every delivery of this event."""
        with self.lock:
            self.redirects[event_id] = to

    def received(self, event_id: str) -> list[Delivery]:
        """Every delivery of this event, in arrival order."""
        with self.lock:
            found = []
            for delivery in self.deliveries:
                try:
                    if delivery.event.get("id") == event_id:
                        found.append(delivery)
                except ValueError:
                    continue
            return found

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
