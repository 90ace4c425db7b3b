"""What the relay client deals in: reservations, relay addresses, its errors.

Split from :mod:`.client` (which re-exports these names) so the client
keeps to its I/O: the states it holds, how a relay's address is read and
which of a relay's announced addresses are fit for our circuit addresses.
No trio here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import multiaddr

from p2pshare.node.circuit.wire import Limit, Status
from p2pshare.node.host import DialError
from p2pshare.sharecode.multiaddrs import (
    IpClass,
    ip_class,
    ip_text,
    is_circuit,
    is_dialable_tcp,
    relay_of,
    trailing_peer,
    with_peer,
)

__all__ = [
    "CARRIES_DATA_BYTES",
    "RelayError",
    "RelayAddr",
    "ReservationState",
    "decode_relay_addrs",
    "limit_carries_data",
    "parse_relay_addr",
]

_MAX_ADDRS_PER_RELAY = 8
#: Announced addresses looked at (the wire allows 32): TCP ones may come
#: after the relay's /ws, /quic-v1 and /webtransport ones.
_MAX_ANNOUNCED = 32

#: A relay whose circuits may carry at least this much per direction (or
#: are unlimited) can carry a transfer; others only help to hole-punch.
CARRIES_DATA_BYTES = 64 * 1024 * 1024


def limit_carries_data(limit: Limit | None) -> bool:
    """Whether circuits under ``limit`` can carry a file transfer (not only a punch)."""
    if limit is None or limit.data == 0:
        return limit is None or limit.duration == 0 or limit.duration >= 600
    return limit.data >= CARRIES_DATA_BYTES and (limit.duration == 0 or limit.duration >= 600)


class RelayError(DialError):
    """A relay refused or failed; ``status`` is the spec's code when it sent one."""

    def __init__(self, message: str, status: Status | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ReservationState:
    relay_peer_id: str
    relay_addr: str  # as configured
    expire: int  # UTC UNIX seconds, as granted
    addrs: tuple[str, ...]  # the relay's announced addrs, with /p2p/<relay>
    limit: Limit | None  # None: the relay limits nothing
    has_voucher: bool

    @property
    def carries_data(self) -> bool:
        """Circuits through this relay can carry a transfer, not only a hole punch."""
        return limit_carries_data(self.limit)


@dataclass(frozen=True)
class RelayAddr:
    """A relay candidate: its peer ID and where to dial it."""

    peer_id: str
    addr: str  # dialable, without /p2p


def parse_relay_addr(addr: str) -> tuple[str, str]:
    """``(relay peer ID, relay multiaddr with /p2p/<relay>)`` from a relay or circuit addr."""
    found = relay_of(addr)
    if found is None:
        raise RelayError(f"bad relay address {addr[:200]!r}")
    relay, text = found
    if not relay:
        raise RelayError(f"relay address {addr[:200]!r} has no /p2p/<relay-id>")
    return relay, text


def decode_relay_addrs(raw: Sequence[bytes], relay_peer_id: str, *, keep_loopback: bool = False) -> tuple[str, ...]:
    """The relay's announced addresses, fit for our circuit addresses.

    Only plain TCP ones (``/HOST/<h>/tcp/<port>``, then at most this
    relay's ``/p2p/``) are kept: our host dials TCP only, and a share code
    holds nothing else. go and js relays also announce ``/ws``,
    ``/webtransport/…`` and ``/webrtc-direct`` addresses; one of them in a
    reservation made ``share`` end with "bad share code", no code printed
    (a hostile-peer review, stop 43). Loopback and link-local ones are
    dropped (js-libp2p relays announce their 127.0.0.1: a receiver elsewhere
    would dial its own host), unless we reached the relay on loopback
    ourselves (one machine).
    """
    out: list[str] = []
    for b in raw[:_MAX_ANNOUNCED]:
        try:
            text = str(multiaddr.Multiaddr(b))
        except Exception:
            continue
        bare = text.rsplit("/p2p/", 1)[0] if trailing_peer(text) is not None else text
        if is_circuit(text) or not is_dialable_tcp(bare):
            continue
        cls = ip_class(ip_text(text) or "")
        if cls is IpClass.LINK_LOCAL or (cls is IpClass.LOOPBACK and not keep_loopback):
            continue
        full = with_peer(text, relay_peer_id)
        if full is None:
            continue  # names another peer: not usable as this relay's address
        out.append(full)
    return tuple(dict.fromkeys(out))[:_MAX_ADDRS_PER_RELAY]
