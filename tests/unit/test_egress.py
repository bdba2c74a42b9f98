"""The egress rule as a pure function: resolved addresses are given, nothing is sent anywhere."""

from __future__ import annotations

import ipaddress

import pytest

from docflow.egress import Allowlist as AllowlistT
from docflow.egress import (
    EgressDenied,
    check,
    denied_rule,
    forbidden_rule,
    literal_origin_error,
    parse_allowlist,
)

NOTHING = parse_allowlist("")


def _ips(*addresses: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [ipaddress.ip_address(a) for a in addresses]


@pytest.mark.parametrize(
    ("address", "rule"),
    [
        ("127.0.0.1", "loopback"),
        ("127.9.9.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.10.1", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "cgnat"),
        ("100.127.255.254", "cgnat"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("168.63.129.16", "metadata"),
        ("100.100.100.200", "metadata"),
        ("192.0.2.10", "private"),  # documentation range: not global
    ],
)
def test_each_forbidden_range_names_its_rule(address: str, rule: str) -> None:
    assert forbidden_rule(ipaddress.ip_address(address)) == rule


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "100.128.0.1"])
def test_public_addresses_pass(address: str) -> None:
    assert forbidden_rule(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("address", "rule"),
    [
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "metadata"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 of 169.254.169.254
        ("64:ff9b::c0a8:101", "private"),  # NAT64 of 192.168.1.1
    ],
)
def test_ipv6_forms_of_ipv4_are_judged_by_the_ipv4_address(address: str, rule: str) -> None:
    found = forbidden_rule(ipaddress.ip_address(address))
    assert found is not None and found.startswith(rule)


def test_public_ipv4_inside_ipv6_passes() -> None:
    assert forbidden_rule(ipaddress.ip_address("::ffff:8.8.8.8")) is None


def test_one_bad_address_among_good_ones_refuses_the_host() -> None:
    refused = denied_rule("mixed.example", _ips("8.8.8.8", "127.0.0.1"), NOTHING)
    assert refused is not None and refused[0] == "loopback"
    with pytest.raises(EgressDenied) as raised:
        check("mixed.example", _ips("8.8.8.8", "127.0.0.1"), NOTHING)
    assert "mixed.example" in str(raised.value) and "loopback" in str(raised.value)
    assert raised.value.host == "mixed.example"


def test_no_address_is_refused() -> None:
    with pytest.raises(EgressDenied):
        check("nothing.example", [], NOTHING)


def test_allowlist_cidr_opens_only_its_network() -> None:
    allow = parse_allowlist("127.0.0.2/32, 10.0.0.0/8")
    assert denied_rule("x", _ips("127.0.0.2"), allow) is None
    assert denied_rule("x", _ips("10.200.0.1"), allow) is None
    assert denied_rule("x", _ips("127.0.0.1"), allow) == ("loopback", ipaddress.ip_address("127.0.0.1"))
    assert denied_rule("x", _ips("127.0.0.2", "192.168.0.1"), allow) is not None


def test_allowlist_host_name_opens_that_name_only() -> None:
    allow = parse_allowlist("erp.internal, *.corp.example")
    assert denied_rule("erp.internal", _ips("10.0.0.5"), allow) is None
    assert denied_rule("ERP.internal.", _ips("10.0.0.5"), allow) is None
    assert denied_rule("billing.corp.example", _ips("10.0.0.6"), allow) is None
    assert denied_rule("other.internal", _ips("10.0.0.5"), allow) is not None
    assert denied_rule("corp.example.evil", _ips("10.0.0.5"), allow) is not None


def test_metadata_opens_only_when_named_exactly() -> None:
    metadata = _ips("169.254.169.254")
    assert denied_rule("x", metadata, parse_allowlist("169.254.0.0/16")) is not None
    assert denied_rule("x", metadata, parse_allowlist("0.0.0.0/0")) is not None
    assert denied_rule("metadata.internal", metadata, parse_allowlist("metadata.internal")) is not None
    assert denied_rule("x", metadata, parse_allowlist("169.254.169.254")) is None
    assert denied_rule("x", _ips("169.254.1.1"), parse_allowlist("169.254.0.0/16")) is None


def test_ipv6_allowlist() -> None:
    allow = parse_allowlist("fd00:1::/64")
    assert denied_rule("x", _ips("fd00:1::5"), allow) is None
    assert denied_rule("x", _ips("fd00:2::5"), allow) is not None


@pytest.mark.parametrize("entry", ["127.0.0.1:8080", "http://x", "a b", "10.0.0.0/33", "-bad-.example"])
def test_a_bad_allowlist_entry_is_an_error(entry: str) -> None:
    with pytest.raises(ValueError, match="egress allowlist"):
        parse_allowlist(entry)


def test_empty_allowlist() -> None:
    assert parse_allowlist(" , ") == AllowlistT()


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com{{ path }}",
        "https://api.example.com:{{ port }}/x",
        "https://{{ host }}/x",
        "https://api.{{ domain }}/x",
        "{{ scheme }}://api.example.com/x",
        "http{{ s }}://api.example.com/x",
        "https://user:pw@api.example.com/x",
        "https://{{ user }}@api.example.com/x",
        "ftp://api.example.com/x",
        "https:///x",
    ],
)
def test_an_origin_that_is_not_literal_is_refused(url: str) -> None:
    assert literal_origin_error(url) is not None


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com/{{ path }}",
        "https://api.example.com:8443/v1/{{ id }}?q={{ q }}",
        "http://127.0.0.2:9000?x={{ x }}",
        "http://[::1]:8080/a#{{ f }}",
        "https://api.example.com",
    ],
)
def test_a_literal_origin_passes(url: str) -> None:
    assert literal_origin_error(url) is None
