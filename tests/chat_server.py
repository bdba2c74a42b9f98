"""A real HTTP server speaking the chat-completions protocol, for driving model clients in tests.

It listens on a free 127.0.0.1 port in a background thread; `url` ends in `/v1`. It records every
request (with the time it arrived), answers with scripted content (a dict, a string, or a callable of
the request body), and can be told to fail the next N requests with a status code and headers
(`Retry-After`), to hang on the next N, to answer the next ones with given contents in turn, to answer
a body that is not JSON, or to delay every answer. It records the most requests it held at once.

    with ChatCompletionsServer() as server:
        server.answer({"total": 12})
        server.fail_next(429, headers={"Retry-After": "1"})
        server.hang_next(2.0)
        server.answer_next('{"total": 12,', {"total": 12})
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = dict[str, Any] | str | Callable[[dict[str, Any]], dict[str, Any] | str]


@dataclass
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float = 0.0  # time.monotonic() when the request arrived

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass
class _Reply:
    status: int
    body: str
    headers: dict[str, str]


@dataclass
class _Script:
    answer: Answer = field(default_factory=dict)
    failures: list[_Reply] = field(default_factory=list)
    next_answers: list[Answer] = field(default_factory=list)
    hangs: list[float] = field(default_factory=list)
    delay_seconds: float = 0.0
    model: str | None = None
    usage: dict[str, int] = field(
        default_factory=lambda: {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    )


class ChatCompletionsServer:
    """A chat-completions server on 127.0.0.1 that tests script and inspect."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._script = _Script()
        self._lock = threading.Lock()
        self._in_flight = 0
        self.max_concurrent = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        # A short poll interval: stopping the server (every test does) waits for one poll.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="chat-server", daemon=True)

    @property
    def in_flight(self) -> int:
        """Requests held right now (a delayed one keeps its place until it is answered)."""
        with self._lock:
            return self._in_flight

    def drain(self, timeout: float = 30) -> None:
        """Wait until no request is held: a late answer must not take the next test's scripted one."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)

    @property
    def url(self) -> str:
        """The base URL clients take, ending in /v1."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> ChatCompletionsServer:
        """Start serving in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ChatCompletionsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, content: Answer, model: str | None = None) -> None:
        """Answer with this message content: a dict (sent as JSON), raw text, or a function of the request."""
        with self._lock:
            self._script.answer = content
            self._script.model = model

    def fail_next(
        self, status: int, times: int = 1, body: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next `times` requests with this HTTP status (and an OpenAI-style error body).

        A status of 200 with a `body` answers that body as it is (a completion that is not JSON).
        """
        text = body or json.dumps({"error": {"message": f"scripted failure {status}", "type": "test"}})
        with self._lock:
            self._script.failures.extend([_Reply(status, text, headers or {})] * times)

    def answer_next(self, *contents: Answer) -> None:
        """Answer the next successful requests with these contents in turn, then the `answer` again."""
        with self._lock:
            self._script.next_answers.extend(contents)

    def hang_next(self, seconds: float, times: int = 1) -> None:
        """Hold the next `times` requests this long before answering (a hung server, for client timeouts)."""
        with self._lock:
            self._script.hangs.extend([seconds] * times)

    def delay(self, seconds: float) -> None:
        """Wait this long before answering each request (to provoke client timeouts)."""
        with self._lock:
            self._script.delay_seconds = seconds

    def _respond(self, request: RecordedRequest) -> _Reply:
        with self._lock:
            if self._script.failures:
                return self._script.failures.pop(0)
            script = self._script
            scripted = script.next_answers.pop(0) if script.next_answers else script.answer
        if request.path.rstrip("/") != "/v1/chat/completions":
            return _Reply(404, json.dumps({"error": {"message": f"no route {request.path}"}}), {})
        answer = scripted(request.body) if callable(scripted) else scripted
        content = answer if isinstance(answer, str) else json.dumps(answer)
        body = request.body if isinstance(request.body, dict) else {}
        completion = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": script.model or body.get("model", "test-model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": script.usage,
        }
        return _Reply(200, json.dumps(completion), {})

    def _arrive(self, request: RecordedRequest) -> float:
        """Record a request; the time to hold it before answering."""
        with self._lock:
            self.requests.append(request)
            self._in_flight += 1
            self.max_concurrent = max(self.max_concurrent, self._in_flight)
            return self._script.hangs.pop(0) if self._script.hangs else self._script.delay_seconds

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", errors="replace")
                recorded = RecordedRequest("POST", self.path, dict(self.headers.items()), body, time.monotonic())
                wait = server._arrive(recorded)
                try:
                    if wait:
                        time.sleep(wait)
                    reply = server._respond(recorded)
                finally:
                    server._leave()
                payload = reply.body.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test); nothing to answer

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        return Handler
