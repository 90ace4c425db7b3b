"""The legacy ``CODE:KEY:IP:PORT`` share code, still accepted everywhere."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ._base64 import KEY_BYTES, b64decode_forgiving, check_key
from .addresses import host_multiaddr
from .errors import ShareCodeError, quote
from .human import normalize_human_code
from .multiaddrs import legacy_endpoint

__all__ = ["LegacyCode", "legacy_for", "parse_legacy"]

_HEX_KEY = re.compile(r"[0-9A-Fa-f]{64}")
_HEX_DIGITS = re.compile(r"[0-9A-Fa-f]+")
_PORT = re.compile(r"[0-9]{1,5}")
_FORM = "expected CODE:KEY:IP:PORT"


def _check_host(host: object) -> str:
    if not isinstance(host, str):
        raise ShareCodeError(f"legacy code: host must be a string, got {type(host).__name__}")
    if "%" in host:
        raise ShareCodeError("legacy code: IPv6 zone IDs are not allowed")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ShareCodeError(f"legacy code: {quote(host)} is not an IP address") from None
    if ip.is_unspecified:
        raise ShareCodeError(f"legacy code: unspecified address {ip} is not reachable")
    return str(ip)


def _check_port(port: object) -> int:
    if not isinstance(port, int) or isinstance(port, bool):
        raise ShareCodeError(f"legacy code: port must be an integer, got {type(port).__name__}")
    if not 1 <= port <= 65535:
        raise ShareCodeError(f"legacy code: port {port} is not in 1-65535")
    return port


@dataclass(frozen=True)
class LegacyCode:
    """A decoded legacy code. Construction validates and normalises all fields."""

    share_code: str
    encryption_key: bytes = dataclasses.field(repr=False)
    host: str
    port: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "share_code", normalize_human_code(self.share_code))
        check_key(self.encryption_key)
        object.__setattr__(self, "host", _check_host(self.host))
        _check_port(self.port)

    def encode(self) -> str:
        """``CODE:<64 hex>:IP:PORT``, IPv6 hosts in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.share_code}:{self.encryption_key.hex()}:{host}:{self.port}"

    def multiaddr(self) -> str:
        """The sharer's address as ``/ip4/IP/tcp/PORT`` or ``/ip6/IP/tcp/PORT``."""
        return host_multiaddr(self.host, self.port)


def _decode_key(text: str) -> bytes:
    """64 hex digits, or base64 (43/44 characters) of 32 bytes."""
    if _HEX_KEY.fullmatch(text):
        return bytes.fromhex(text)
    if len(text) == 64:
        raise ShareCodeError("legacy code: KEY is 64 characters but not hex")
    if _HEX_DIGITS.fullmatch(text) and len(text) not in (43, 44):
        raise ShareCodeError(f"legacy code: KEY has {len(text)} hex digits, expected 64")
    key = b64decode_forgiving(text, "legacy code: KEY")
    if len(key) != KEY_BYTES:
        raise ShareCodeError(f"legacy code: KEY is {len(key)} byte{'' if len(key) == 1 else 's'}, expected {KEY_BYTES}")
    return key


def parse_legacy(text: str) -> LegacyCode:
    """Parse ``CODE:KEY:IP:PORT`` (whitespace already removed by the caller)."""
    code, sep, rest = text.partition(":")
    key_text, sep2, hostport = rest.partition(":")
    if not (sep and sep2 and hostport):
        raise ShareCodeError(f"legacy code: {_FORM}")
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0 or hostport[close + 1 : close + 2] != ":":
            raise ShareCodeError(f"legacy code: {_FORM} with IPv6 as [IP]:PORT")
        host, port_text = hostport[1:close], hostport[close + 2 :]
        if ":" not in host:
            raise ShareCodeError("legacy code: only IPv6 addresses go in brackets")
    else:
        host, sep3, port_text = hostport.rpartition(":")
        if not sep3:
            raise ShareCodeError(f"legacy code: {_FORM}")
        if ":" in host:
            raise ShareCodeError("legacy code: an IPv6 address must be in brackets: [IP]:PORT")
    if not _PORT.fullmatch(port_text):
        raise ShareCodeError("legacy code: PORT must be a number 1-65535")
    key = _decode_key(key_text)
    return LegacyCode(share_code=code, encryption_key=key, host=host, port=int(port_text))


def legacy_for(human_code: str, key: bytes, addrs: Sequence[str]) -> LegacyCode | None:
    """The legacy code for a share: it needs one plain IP:PORT (a non-loopback IPv4 preferred)."""
    picked = legacy_endpoint(addrs)
    if picked is None:
        return None
    host, port = picked
    return LegacyCode(share_code=human_code, encryption_key=key, host=host, port=port)
