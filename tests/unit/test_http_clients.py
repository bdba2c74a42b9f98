"""The worker's outbound clients against a real server on loopback: no cookies kept, the egress guard applied."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator

import httpx
import pytest
import trustme

from activities.egress import Egress, ResponseTooLarge
from docflow.config import Settings
from docflow.egress import EgressDenied, parse_allowlist
from tests.http_target import HttpTarget
from worker import model_http_client


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    with HttpTarget("127.0.0.1") as server:
        yield server


def test_the_model_client_keeps_no_cookie(target: HttpTarget) -> None:
    async def calls() -> None:
        async with model_http_client(Settings()) as client:
            (await client.get(f"{target.url}/cookie/model")).raise_for_status()
            (await client.get(f"{target.url}/headers/model")).raise_for_status()
            assert len(client.cookies.jar) == 0

    asyncio.run(calls())
    assert "cookie" not in {k.lower() for k in target.headers["/headers/model"][0]}


def _egress(allow: str, cap: int = 1024 * 1024) -> Egress:
    return Egress(parse_allowlist(allow), cap)


def _send(egress: Egress, url: str, headers: dict[str, str] | None = None) -> int:
    async def go() -> int:
        answer = await egress.send("GET", url, headers=headers or {}, content=None, timeout=10)
        return answer.status

    return asyncio.run(go())


def test_an_allowed_name_is_reached_with_its_host_header(target: HttpTarget) -> None:
    url = f"http://localhost:{target.port}/headers/named"
    assert _send(_egress("localhost"), url) == 200
    assert target.headers["/headers/named"][0]["Host"] == f"localhost:{target.port}"


def test_loopback_is_refused_without_a_request(target: HttpTarget) -> None:
    with pytest.raises(EgressDenied, match="loopback"):
        _send(_egress(""), f"{target.url}/echo/refused")
    with pytest.raises(EgressDenied, match="localhost"):
        _send(_egress("127.0.0.2/32"), f"http://localhost:{target.port}/echo/refused")
    assert target.counts["/echo/refused"] == 0


def test_each_redirect_hop_is_checked(target: HttpTarget) -> None:
    with pytest.raises(EgressDenied, match="127.0.0.3"):
        _send(_egress("127.0.0.1/32"), f"{target.url}/redirect/a?to=http://127.0.0.3:{target.port}/echo/hop")
    assert target.counts["/redirect/a"] == 1
    to = f"http://localhost:{target.port}/echo/hop"
    assert _send(_egress("127.0.0.1/32, localhost"), f"{target.url}/redirect/b?to={to}") == 200
    assert target.counts["/echo/hop"] == 1


def test_credentials_are_not_carried_to_another_origin(target: HttpTarget) -> None:
    to = f"http://localhost:{target.port}/headers/cross"
    headers = {"Authorization": "Bearer x", "X-Plain": "kept"}
    _send(_egress("127.0.0.1/32, localhost"), f"{target.url}/redirect/c?to={to}", headers)
    sent = target.headers["/headers/cross"][0]
    assert "Authorization" not in sent and sent["X-Plain"] == "kept"


def test_a_body_over_the_cap_is_refused(target: HttpTarget) -> None:
    with pytest.raises(ResponseTooLarge):
        _send(_egress("127.0.0.1/32", cap=1024), f"{target.url}/deep/cap?depth=600")
    assert _send(_egress("127.0.0.1/32", cap=1024), f"{target.url}/deep/cap?depth=500") == 200


def test_proxies_from_the_environment_are_ignored(target: HttpTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # would fail to connect if it were used
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    assert _send(_egress("127.0.0.1/32"), f"{target.url}/echo/proxy") == 200


def _tls_target(ca: trustme.CA, *names: str) -> HttpTarget:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(server)
    return HttpTarget("127.0.0.1", tls=server)


def test_tls_is_verified_against_the_host_name_while_connecting_to_the_checked_address() -> None:
    ca = trustme.CA()
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    egress = Egress(parse_allowlist("localhost"), 1 << 20, trusting)

    async def get(url: str) -> int:
        return (await egress.send("GET", url, headers={}, content=None, timeout=10)).status

    with _tls_target(ca, "localhost") as named:
        assert asyncio.run(get(f"https://localhost:{named.port}/headers/tls")) == 200
        assert named.headers["/headers/tls"][0]["Host"] == f"localhost:{named.port}"
    # A certificate for the address connected to, but not for the name asked for: refused.
    with _tls_target(ca, "127.0.0.1") as by_ip, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(get(f"https://localhost:{by_ip.port}/headers/tls"))
    # A certificate from a CA the client does not trust: refused.
    with _tls_target(trustme.CA(), "localhost") as untrusted, pytest.raises(httpx.ConnectError):
        asyncio.run(get(f"https://localhost:{untrusted.port}/headers/tls"))
