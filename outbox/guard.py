"""The SSRF guard for every outgoing call (webhooks, the edX LMS): a target must be https and every
address its host resolves to must be public. Private (RFC 1918, unique-local), loopback, link-local
(169.254.0.0/16: cloud metadata), multicast, reserved and unspecified addresses are refused, and so
are IPv4 addresses hidden in IPv6 forms (mapped, 6to4, NAT64-style). The connection then goes to the
address that was checked (no second lookup that DNS rebinding could answer differently), with the
host name kept for TLS and the Host header. `allow_loopback` (tests only) admits loopback targets,
over http too. Pure code (no Ray)."""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

# Cloud metadata addresses beyond link-local ones (AWS IPv6 IMDS is in fd00::/8, private anyway).
METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
            ipaddress.ip_address("100.100.100.200")}  # Alibaba Cloud's metadata service (shared address space)


class TargetRefused(ValueError):
    """A target the guard does not allow: the message says why."""


@dataclass(frozen=True)
class CheckedTarget:
    url: str  # the request URL, with the checked address in place of the host name
    host_header: str  # the original host[:port]
    sni_hostname: str | None  # for TLS: the original host name (None for a literal address)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in ipaddress.ip_network("64:ff9b::/96"):  # NAT64
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool) -> str | None:
    """Why this address may not be called, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            return refusal(inner, allow_loopback)
    if address.is_loopback:
        return None if allow_loopback else f"{address} is a loopback address"
    if address in METADATA:
        return f"{address} is a cloud metadata address"
    for kind in ("link_local", "private", "multicast", "reserved", "unspecified"):
        if getattr(address, f"is_{kind}"):
            return f"{address} is a {kind.replace('_', '-')} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def check_url_form(url: str, allow_loopback: bool) -> tuple[str, str, int]:
    """(scheme, host, port) of an acceptable URL's form; TargetRefused otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("https", "http"):
        raise TargetRefused("the URL must be https://")
    if parts.scheme == "http" and not allow_loopback:
        raise TargetRefused("the URL must be https:// (plain http is refused)")
    if not parts.hostname:
        raise TargetRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("the URL must not carry credentials")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def resolve(url: str, allow_loopback: bool) -> CheckedTarget:
    """Resolve the URL's host, check every address it has, and return where to connect."""
    scheme, host, port = check_url_form(url, allow_loopback)
    try:
        literal = ipaddress.ip_address(host)
        addresses = [literal]
    except ValueError:
        literal = None
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise TargetRefused(f"the host {host!r} does not resolve ({exc.strerror or exc})") from None
        except (UnicodeError, ValueError):  # e.g. a label over 63 characters (IDNA)
            raise TargetRefused(f"the host {host[:80]!r} is not a valid host name") from None
        addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not addresses:
        raise TargetRefused(f"the host {host!r} has no address")
    for address in addresses:
        why = refusal(address, allow_loopback)
        if why is not None:
            raise TargetRefused(f"{host} resolves to {why}" if literal is None else why)
    if scheme == "http" and not all(a.is_loopback for a in addresses):
        raise TargetRefused("plain http is allowed to loopback targets only")
    chosen = addresses[0]
    parts = urlsplit(url)
    netloc_host = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    pinned = urlunsplit(parts._replace(netloc=f"{netloc_host}:{port}"))
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return CheckedTarget(pinned, host_header, None if literal is not None else host)
