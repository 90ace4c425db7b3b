"""Strict validation of the multiaddrs a share code may carry.

Accepted shapes (HOST is ip4, ip6, dns, dns4 or dns6; TRANSPORT is
``tcp/PORT`` or ``udp/PORT/quic-v1``)::

    /HOST/TRANSPORT[/p2p/PEER]
    /HOST/TRANSPORT/p2p/RELAY/p2p-circuit[/p2p/PEER]

PEER must be the sharer's peer ID; RELAY is any valid peer ID. Unspecified
hosts (0.0.0.0, ::) are refused: they are listen addresses, not reachable
ones. We parse ourselves because the ``multiaddr`` library is lenient
(``/tcp/+01``, ``//``, missing leading ``/``); it is consulted afterwards
so that what we accept is also what the host can dial.
"""

from __future__ import annotations

import ipaddress
import re

import multiaddr
import multiaddr.exceptions

from .errors import ShareCodeError, quote
from .peerid import peer_id_to_bytes

__all__ = [
    "MAX_ADDRESSES",
    "MAX_ADDRESS_CHARS",
    "code_addresses",
    "host_multiaddr",
    "is_shareable",
    "validate_multiaddr",
]

MAX_ADDRESSES = 32
MAX_ADDRESS_CHARS = 1024

_HOSTS = frozenset({"ip4", "ip6", "dns", "dns4", "dns6"})
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_DNS_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


class _Bad(Exception):
    """Internal: a reason, wrapped with the address by ``validate_multiaddr``."""


def _ip4(value: str) -> str:
    try:
        ip = ipaddress.IPv4Address(value)
    except ValueError:
        raise _Bad(f"invalid IPv4 address {quote(value)}") from None
    if ip.is_unspecified:
        raise _Bad("unspecified address 0.0.0.0")
    return str(ip)


def _ip6(value: str) -> str:
    if "%" in value:
        raise _Bad("IPv6 zone IDs are not allowed")
    try:
        ip = ipaddress.IPv6Address(value)
    except ValueError:
        raise _Bad(f"invalid IPv6 address {quote(value)}") from None
    if ip.is_unspecified or (ip.ipv4_mapped is not None and ip.ipv4_mapped.is_unspecified):
        raise _Bad("unspecified address ::")
    return str(ip)


def _dns(value: str) -> str:
    labels = value.split(".")
    # "ab--" labels are reserved for IDNA ("xn--"); the library checks those.
    if len(value) > 253 or not all(
        _DNS_LABEL.fullmatch(label) and (label[2:4] != "--" or label[:2].lower() == "xn") for label in labels
    ):
        raise _Bad(f"invalid DNS name {quote(value)}")
    return value


def _port(value: str) -> str:
    if not _PORT.fullmatch(value) or int(value) > 65535:
        raise _Bad(f"port must be 1-65535, got {quote(value)}")
    return value


def _peer(value: str) -> str:
    try:
        peer_id_to_bytes(value)
    except ShareCodeError as exc:
        raise _Bad(str(exc)) from None
    return value


def _take(parts: list[str], i: int, what: str) -> str:
    if i >= len(parts):
        raise _Bad(f"missing {what}")
    return parts[i]


def _canonical(text: str, peer_id: str) -> str:
    if not text.startswith("/"):
        raise _Bad("must start with '/'")
    parts = text[1:].split("/")
    if "" in parts:
        raise _Bad("empty component")
    out: list[str] = []
    host = parts[0]
    if host not in _HOSTS:
        raise _Bad(f"unsupported host protocol {quote(host)} (want ip4, ip6, dns, dns4 or dns6)")
    value = _take(parts, 1, f"{host} value")
    out += [
        host,
        _ip4(value) if host == "ip4" else _ip6(value) if host == "ip6" else _dns(value),
    ]
    transport = _take(parts, 2, "transport (tcp or udp)")
    if transport == "tcp":
        out += ["tcp", _port(_take(parts, 3, "tcp port"))]
        i = 4
    elif transport == "udp":
        out += ["udp", _port(_take(parts, 3, "udp port"))]
        if _take(parts, 4, "quic-v1 after udp") != "quic-v1":
            raise _Bad(f"unsupported protocol {quote(parts[4])} after udp (want quic-v1)")
        out.append("quic-v1")
        i = 5
    else:
        raise _Bad(f"unsupported transport {quote(transport)} (want tcp or udp/quic-v1)")
    rest = parts[i:]
    if not rest:
        return "/" + "/".join(out)
    if rest[0] != "p2p":
        raise _Bad(f"unsupported protocol {quote(rest[0])} (want p2p or p2p-circuit)")
    first = _peer(_take(rest, 1, "peer ID after p2p"))
    rest = rest[2:]
    if not rest:
        if first != peer_id:
            raise _Bad("/p2p/ peer ID differs from the code's peer_id")
        return "/" + "/".join(out + ["p2p", first])
    if rest[0] != "p2p-circuit":
        raise _Bad(f"unsupported protocol {quote(rest[0])} after p2p (want p2p-circuit)")
    out += ["p2p", first, "p2p-circuit"]
    rest = rest[1:]
    if rest:
        if rest[0] != "p2p" or len(rest) != 2:
            raise _Bad("only /p2p/PEER may follow p2p-circuit")
        if _peer(rest[1]) != peer_id:
            raise _Bad("peer ID after p2p-circuit differs from the code's peer_id")
        out += ["p2p", rest[1]]
    return "/" + "/".join(out)


def is_shareable(text: str, peer_id: str) -> bool:
    """Can a share code of ``peer_id`` hold this address (:func:`validate_multiaddr`)?"""
    try:
        validate_multiaddr(text, peer_id)
    except ShareCodeError:
        return False
    return True


def code_addresses(direct: list[str], relayed: list[str], peer_id: str) -> list[str]:
    """The addresses a code of ``peer_id`` names: those it can hold
    (:func:`is_shareable`; one bad address made no code at all), at most
    :data:`MAX_ADDRESSES`, direct ones first, and room kept for up to half
    of them relayed: behind a NAT with many interface addresses, the relayed
    ones are the ones that work."""
    direct = [a for a in direct if is_shareable(a, peer_id)]
    relayed = [a for a in relayed if is_shareable(a, peer_id)][: MAX_ADDRESSES // 2]
    return direct[: MAX_ADDRESSES - len(relayed)] + relayed


def validate_multiaddr(text: object, peer_id: str, index: int = 1) -> str:
    """Validate one share address and return its canonical string.

    ``index`` (1-based) only labels the error: ``bad multiaddr #2 '...': why``.
    """
    label = f"bad multiaddr #{index}"
    if not isinstance(text, str):
        raise ShareCodeError(f"{label}: expected a string, got {type(text).__name__}")
    if len(text) > MAX_ADDRESS_CHARS:
        raise ShareCodeError(f"{label}: too long ({len(text)} characters, at most {MAX_ADDRESS_CHARS})")
    try:
        canon = _canonical(text, peer_id)
    except _Bad as exc:
        raise ShareCodeError(f"{label} {quote(text)}: {exc}") from None
    # The host dials with the library, so its spelling is the canonical one
    # (it differs from ours only for IPv4-in-IPv6 forms such as ::ffff:1.2.3.4).
    try:
        lib = str(multiaddr.Multiaddr(canon))
        stable = str(multiaddr.Multiaddr(lib)) == lib
    except (multiaddr.exceptions.Error, ValueError, TypeError, LookupError):
        stable = False
    if not stable:
        raise ShareCodeError(f"{label} {quote(text)}: rejected by the multiaddr library")
    return lib


def host_multiaddr(host: str, port: int) -> str:
    """``/ip4/HOST/tcp/PORT`` or ``/ip6/HOST/tcp/PORT`` for an IP literal."""
    ip = ipaddress.ip_address(host)
    return f"/ip{ip.version}/{ip}/tcp/{port}"
