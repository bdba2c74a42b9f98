"""The CLI's view of the REST API: one httpx client, and every failure as one `CliError` line.

The CLI talks to the API only over HTTP (httpx is a runtime dependency; the retab SDK is not), so it works on
an install without the dev extras. Where it connects: `--api-url`, else the settings' `api_url` (what
`docflow up` prints). Its key: `--api-key`, else `DOCFLOW_API_KEY`, else the development key `docflow up`
keeps in `<data_dir>/dev-api-key`.

    CliError          anything the user can act on: printed as one line on stderr, exit status 1
     ├── ApiFailure   the API answered 4xx/5xx: its `detail.message`, code and status
     └── Unreachable  no answer at the base URL
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from docflow.config import Settings

PREFIX = "/v1/workflows"
DEFAULT_TIMEOUT = 60.0
PAGE = 1000  # the largest page of blocks and edges (a draft holds at most max_blocks_per_workflow)


class CliError(Exception):
    """An error shown as one line on stderr; the command exits with `status`."""

    status = 1

    def __init__(self, message: str) -> None:
        # One line: newlines in a server message would break scripts that read stderr line by line.
        super().__init__(" ".join(message.split()))


class ApiFailure(CliError):
    """The API refused or failed a request."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        self.status_code = status_code
        self.code = code
        super().__init__(f"{message} ({code}, HTTP {status_code})")


class Unreachable(CliError):
    """Nothing answered at the API's base URL."""


def dev_key(settings: Settings) -> tuple[str, str] | None:
    """The development key and project `docflow up` wrote, if there is one."""
    path = settings.data_dir / "dev-api-key"
    try:
        key, project = path.read_text().split()
    except (OSError, ValueError):
        return None
    return key, project


@dataclass
class Connection:
    """Where the API is and how to sign in; filled from the global options."""

    settings: Settings
    api_url: str | None = None
    api_key: str | None = None
    project_id: str | None = None
    _api: Api | None = field(default=None, repr=False)

    def api(self) -> Api:
        """The client, made on first use (so `docflow up` and `--help` need no key)."""
        if self._api is None:
            url = self.api_url or self.settings.api_url
            key = self.api_key or (self.settings.api_key.get_secret_value() if self.settings.api_key else None)
            if key is None and (found := dev_key(self.settings)) is not None:
                key, self.project_id = found[0], self.project_id or found[1]
            if key is None:
                where = self.settings.data_dir / "dev-api-key"
                raise CliError(
                    f"no API key: pass --api-key, set DOCFLOW_API_KEY, or start `docflow up` (it writes {where})"
                )
            self._api = Api(url, key)
        return self._api


class Api:
    """JSON over HTTP to `/v1/workflows…`; every non-2xx answer raises `ApiFailure`."""

    def __init__(self, base_url: str, key: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        # Full URLs, not httpx's base_url: it would add a trailing slash to `/v1/workflows` itself.
        self._http = httpx.Client(headers={"Api-Key": key}, timeout=timeout)

    def get(self, path: str, **params: Any) -> Any:
        """GET a path under /v1/workflows; `None` params are left out."""
        return self.request("GET", path, params=params)

    def all(self, path: str, page_size: int = PAGE, **params: Any) -> list[Any]:
        """Every item of a paged list (`{data, list_metadata: {after}}`), page after page."""
        items: list[Any] = []
        after = None
        while True:
            page = self.get(path, **params, limit=page_size, after=after)
            items += page["data"]
            after = (page.get("list_metadata") or {}).get("after")
            if not after or not page["data"]:
                return items

    def post(self, path: str, body: Any = None, **params: Any) -> Any:
        """POST JSON."""
        return self.request("POST", path, body=body, params=params)

    def patch(self, path: str, body: Any, **params: Any) -> Any:
        """PATCH JSON."""
        return self.request("PATCH", path, body=body, params=params)

    def delete(self, path: str, **params: Any) -> Any:
        """DELETE."""
        return self.request("DELETE", path, params=params)

    def request(self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        """One request; the decoded JSON answer (None when empty)."""
        return self.exchange(method, path, body=body, params=params)[0]

    def exchange(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[Any, httpx.Headers]:
        """One request with these headers; the decoded JSON answer (None when empty) and the answer's headers."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(
                method, self.base_url + PREFIX + path, json=body, params=query, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise Unreachable(f"the API at {self.base_url} did not answer in time ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach the API at {self.base_url}: {exc} (is `docflow up` running?)") from exc
        if response.is_error or response.is_redirect:
            raise failure(response)
        if not response.content:
            return None, response.headers
        try:
            return response.json(), response.headers
        except ValueError as exc:
            raise CliError(f"{method} {path}: the API answered something that is not JSON") from exc


def failure(response: httpx.Response) -> ApiFailure:
    """The error an API answer carries (`{"detail": {"code", "message", "details"}}` or FastAPI's text)."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, dict):
        return ApiFailure(response.status_code, str(detail.get("code", "error")), str(detail.get("message", detail)))
    if isinstance(detail, str):
        return ApiFailure(response.status_code, "error", detail)
    text = response.text.strip()[:200] or response.reason_phrase
    return ApiFailure(response.status_code, "error", text)


def say(text: str, err: bool = False) -> None:
    """Plain text as it is (rich would wrap long lines at the terminal's width and read `[…]` as markup)."""
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def print_json(value: Any) -> None:
    """The `--json` output: indented JSON on stdout, one document per command."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def read_json_file(path: Path, what: str) -> Any:
    """A JSON file the user named; a CliError naming it when it is missing or not JSON."""
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise CliError(f"{what}: cannot read {path}: {exc.strerror}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise CliError(f"{what}: {path} is not JSON: {exc}") from exc
