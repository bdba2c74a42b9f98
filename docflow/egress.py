"""The egress rule for outbound calls made from user config (api_call): which URLs and addresses may be reached.

Pure functions; the activity (`activities/egress.py`) resolves the host and connects to the address checked here.

- The origin (scheme, host, port) of an api_call URL comes from the literal config only: a `{{ }}` placeholder
  before the end of the authority is refused on write (`literal_origin_error`), credentials in the URL too.
- Every address a host resolves to must pass (`denied_rule`): loopback, private (RFC 1918, ULA fc00::/7),
  link-local, CGNAT (100.64.0.0/10), multicast, unspecified, reserved and other non-global ranges are refused,
  and cloud metadata addresses by name. IPv6 forms that carry an IPv4 address (mapped, 6to4, Teredo, NAT64)
  are judged by that IPv4 address.
- The operator's allowlist (`DOCFLOW_EGRESS_ALLOW`, comma-separated CIDRs and host names, `*.example.com` for
  subdomains) opens addresses: a CIDR opens the addresses inside it, a host name opens whatever that name resolves
  to. Entries carry no port: to open one service only, run it on an address of its own. A metadata address is
  opened only by an entry that is exactly that address (a /32 or /128), so a broad "allow our VPC" entry never
  hands out the cloud's instance credentials.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Instance metadata and platform agents: AWS (IMDS v4/v6, ECS, EKS pod identity), GCP, Azure (IMDS, WireServer),
# OpenStack, DigitalOcean (169.254.169.254), Alibaba, Oracle.
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.170.23",
        "fd00:ec2::254",
        "fd00:ec2::23",
        "168.63.129.16",
        "100.100.100.200",
        "192.0.0.192",
    )
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_PLACEHOLDER = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_HOSTNAME = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$")


class EgressDenied(Exception):
    """A call refused by the egress rule: `host` and the `rule` that refused it."""

    def __init__(self, host: str, rule: str, address: str | None = None) -> None:
        where = f"{host} ({address})" if address and address != host else host
        super().__init__(f"egress to {where} refused: {rule}")
        self.host = host
        self.rule = rule
        self.address = address


@dataclass(frozen=True)
class Allowlist:
    """What the operator opened: networks, exact host names and `*.suffix` wildcards."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)
    suffixes: tuple[str, ...] = ()

    def names(self, host: str) -> bool:
        """True when the host name itself is allowed."""
        host = host.lower().rstrip(".")
        return host in self.hosts or any(host.endswith(s) for s in self.suffixes)

    def opens(self, address: IPAddress) -> bool:
        """True when an allowed network holds the address (a metadata address only when named exactly)."""
        return any(
            address.version == net.version and address in net and (address not in METADATA or net.num_addresses == 1)
            for net in self.networks
        )


def parse_allowlist(text: str) -> Allowlist:
    """Parse `10.0.0.0/8, 127.0.0.2, api.internal, *.corp.example` (raises ValueError on a bad entry)."""
    networks: list[IPNetwork] = []
    hosts: set[str] = set()
    suffixes: list[str] = []
    for raw in text.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        if not _HOSTNAME.match(entry) or ":" in entry or "/" in entry:
            raise ValueError(f"egress allowlist: {raw.strip()!r} is neither a CIDR nor a host name")
        if entry.startswith("*."):
            suffixes.append(entry[1:].rstrip("."))
        else:
            hosts.add(entry.rstrip("."))
    return Allowlist(tuple(networks), frozenset(hosts), tuple(suffixes))


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo client, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def forbidden_rule(address: IPAddress) -> str | None:
    """The name of the rule that refuses this address, or None for an ordinary public address."""
    if address in METADATA:
        return "metadata"
    inner = embedded_ipv4(address)
    if inner is not None:
        rule = forbidden_rule(inner)
        return f"{rule} (inside {address})" if rule else None
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("cgnat", isinstance(address, ipaddress.IPv4Address) and address in _CGNAT),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("non-global", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def denied_rule(host: str, addresses: list[IPAddress], allow: Allowlist) -> tuple[str, IPAddress] | None:
    """The first resolved address refused and its rule, or None when every address may be reached."""
    named = allow.names(host)
    for address in addresses:
        rule = forbidden_rule(address)
        if rule is None or allow.opens(address):
            continue
        if named and address not in METADATA:
            continue
        return rule, address
    return None


def check(host: str, addresses: list[IPAddress], allow: Allowlist) -> None:
    """Raise EgressDenied unless every address of `host` may be reached."""
    if not addresses:
        raise EgressDenied(host, "the host resolved to no address")
    refused = denied_rule(host, addresses, allow)
    if refused is not None:
        rule, address = refused
        raise EgressDenied(host, f"{rule} address, not in the egress allowlist", str(address))


def literal_origin_error(url: str) -> str | None:
    """Why a URL template's origin is not literal (placeholder, credentials, not http(s)), or None when it is."""
    match = _PLACEHOLDER.search(url)
    head = url[: match.start()] if match else url
    scheme, sep, rest = head.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return "must start with a literal http:// or https://"
    authority_end = re.search(r"[/?#]", rest)
    if match is not None and authority_end is None:
        return "scheme, host and port must be literal: end the host (and port) with '/' before any {{ }} placeholder"
    authority = rest[: authority_end.start()] if authority_end else rest
    if "@" in authority:
        return "must not carry credentials; send them in a header, e.g. {{ secrets.NAME }}"
    try:
        parts = urlsplit(f"{scheme}://{authority}/")
        host, _ = parts.hostname, parts.port
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    if not host:
        return "must name a host"
    return None


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute URL, with the default port filled in (raises ValueError)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL with a host: {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, parts.hostname.lower(), port
