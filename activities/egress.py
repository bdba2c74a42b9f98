"""Outbound HTTP for user config: resolve, check, connect to the checked address, redirect hop by hop, read capped.

The rule itself is `docflow.egress`; this module applies it to real requests:

- The host is resolved here (async getaddrinfo) and every address it has is checked; the request then goes to
  the first checked address itself (the URL carries the IP), so a DNS answer that changes between check and
  connect (rebinding) cannot move it. The original `Host` header is sent, and for https the TLS SNI name is the
  host name (httpx's `sni_hostname` extension): the certificate is verified against the host name, as it would
  be without pinning; verification is never switched off.
- Redirects are followed here, at most `MAX_REDIRECTS` hops, each resolved and checked like the first; 303 and
  a POST's 301/302 turn into a GET without body; a hop to another origin drops credential headers.
- Each call has its own client and connection pool: no cookie jar is kept (the jar refuses every cookie), no
  connection made for one host name is reused for another name on the same IP, and proxies from the
  environment are ignored (`trust_env=False`: a proxy would resolve the name again, unchecked).
- The body is read as a stream, decoded, and refused past `max_response_bytes` (`ResponseTooLarge`).
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import ipaddress
import socket
import ssl
from dataclasses import dataclass, field

import certifi
import httpx

from docflow.egress import Allowlist, EgressDenied, IPAddress, check

MAX_REDIRECTS = 5
REDIRECT_STATUS = {301, 302, 303, 307, 308}
CREDENTIAL_HEADERS = {"authorization", "proxy-authorization", "cookie"}


class ResponseTooLarge(Exception):
    """The answer's body is larger than the egress cap."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the response body is larger than {limit} bytes (setting egress_max_response_bytes)")
        self.limit = limit


@dataclass
class Answer:
    """A final (non-redirect) answer: status, headers, the whole body, and the hops that led to it."""

    status: int
    headers: httpx.Headers
    body: bytes
    url: str
    redirects: list[str] = field(default_factory=list)


def no_cookies() -> http.cookiejar.CookieJar:
    """A cookie jar that keeps nothing: a cookie set by one call is never sent by another."""
    return http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


def default_ssl_context() -> ssl.SSLContext:
    """Certificate and host-name verification against certifi's roots; built once, it costs ~20 ms."""
    return ssl.create_default_context(cafile=certifi.where())


class Egress:
    """Sends one request under the egress rule."""

    def __init__(self, allow: Allowlist, max_response_bytes: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self.allow = allow
        self.max_response_bytes = max_response_bytes
        self.ssl_context = ssl_context or default_ssl_context()

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        content: bytes | None,
        timeout: float,
        sensitive: frozenset[str] = frozenset(),
    ) -> Answer:
        """Send, following checked redirects; raises EgressDenied, ResponseTooLarge or httpx.HTTPError."""
        try:
            async with asyncio.timeout(timeout), self._client(timeout) as client:
                return await self._follow(client, method, httpx.URL(url), headers, content, sensitive)
        except TimeoutError as exc:
            raise httpx.TimeoutException(f"no complete answer within {timeout} s") from exc

    def _client(self, timeout: float) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(verify=self.ssl_context, retries=0)
        return httpx.AsyncClient(
            transport=transport, trust_env=False, follow_redirects=False, cookies=no_cookies(), timeout=timeout
        )

    async def _follow(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        content: bytes | None,
        sensitive: frozenset[str],
    ) -> Answer:
        hops: list[str] = []
        headers = {k: v for k, v in headers.items() if k.lower() != "host"}
        while True:
            target, extensions = await self._pin(url)
            request = client.build_request(
                method,
                target,
                headers={**headers, "Host": url.netloc.decode("ascii")},
                content=content,
                extensions=extensions,
            )
            response = await client.send(request, stream=True)
            try:
                location = response.headers.get("location")
                if response.status_code not in REDIRECT_STATUS or location is None:
                    body = await self._read(response)
                    return Answer(response.status_code, response.headers, body, str(url), hops)
            finally:
                await response.aclose()
            if len(hops) >= MAX_REDIRECTS:
                raise httpx.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects", request=request)
            next_url = url.join(location).copy_with(fragment=None)
            if next_url.scheme not in ("http", "https"):
                raise EgressDenied(next_url.host or location, f"redirect to a {next_url.scheme or 'relative'} URL")
            if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                method, content = "GET", None
                headers = {k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")}
            if (next_url.scheme, next_url.host, next_url.port) != (url.scheme, url.host, url.port):
                drop = CREDENTIAL_HEADERS | sensitive
                headers = {k: v for k, v in headers.items() if k.lower() not in drop}
            hops.append(str(next_url))
            url = next_url

    async def _pin(self, url: httpx.URL) -> tuple[httpx.URL, dict[str, str]]:
        """The URL with its host replaced by a checked address, and the TLS name to verify."""
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        addresses = await _resolve(host, port)
        check(host, addresses, self.allow)
        pinned = url.copy_with(host=str(addresses[0]))
        literal = _is_ip(host)
        return pinned, ({"sni_hostname": host} if url.scheme == "https" and not literal else {})

    async def _read(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_response_bytes:
            raise ResponseTooLarge(self.max_response_bytes)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():  # decoded: a small gzip bomb still counts at full size
            size += len(chunk)
            if size > self.max_response_bytes:
                raise ResponseTooLarge(self.max_response_bytes)
            chunks.append(chunk)
        return b"".join(chunks)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address of the host, in getaddrinfo's order, without duplicates."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpx.ConnectError(f"cannot resolve {host}: {exc.strerror}") from exc
    seen: dict[IPAddress, None] = {}
    for info in infos:
        seen.setdefault(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]), None)
    return list(seen)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
