"""How a receiver reaches a sharer: the dial policy, apart from the Node.

A sharer on our LAN (mDNS) is dialled where it announced itself, at once.
The code's direct addresses race its relayed ones (direct first, relays after
a head start); in parallel, after a head start for the code itself, the DHT
is asked for the sharer's current addresses and for every provider of the
share. The first connection wins and cancels the rest (one nursery). A
sharer that is restarting is re-dialled with backoff until the deadline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import trio

from p2pshare import sharecode
from p2pshare.node.circuit.client import RelayClient
from p2pshare.node.discovery import Discovery
from p2pshare.node.errors import PeerUnreachableError
from p2pshare.node.host import Host
from p2pshare.node.mdns.service import Mdns
from p2pshare.node.recent import remember
from p2pshare.sharecode.multiaddrs import (
    IpClass,
    ip_class,
    ip_text,
    is_circuit,
    is_loopback_ip,
    is_public_ip,
    relay_of,
    same_ip4_prefix,
)

RELAY_DELAY = 1.5  # seconds a direct dial runs alone before relays join the race
DHT_DELAY = 1.0  # seconds the code's own addresses are tried alone before asking the DHT
#: Seconds one pass waits for an mDNS answer naming the sharer (our queries go
#: out at 0, 1 and 3 s); bounded so that a pass ends, and the code is re-dialled.
LAN_WAIT = 3.5
_MAX_AVOIDED = 64
#: Sharers whose relay we remember (``Reacher._via``), the newest kept: a
#: receiving process meets one per sharer it fetches from.
VIA_KEPT = 256
DATA_RELAY_SEARCH = 10.0  # seconds to look for a sharer's data-carrying relay after a limited one cut us


_UNREACHABLE = "could not reach the sharer: "


@dataclass
class Reacher:
    host: Host
    relay: RelayClient
    discovery: Discovery
    force_relay: bool = False
    use_dht: bool = True
    #: Local discovery: a sharer on our LAN is dialled where it announced itself.
    lan: Mdns | None = None
    #: Relays that limited a circuit of ours (js/go defaults: 128 KiB / 2 min):
    #: once one cut a transfer, reaching again skips them (issue 10).
    avoid: set[str] = field(default_factory=set)
    #: peer -> the relay its relayed connection goes through (the last one
    #: we dialled), for the newest VIA_KEPT peers.
    _via: dict[str, str] = field(default_factory=dict)

    def note_via(self, peer_id: str, relay: str) -> None:
        """Our connection to ``peer_id`` goes through ``relay``."""
        remember(self._via, peer_id, relay, VIA_KEPT)

    def note_limited(self, peer_id: str) -> None:
        """Our circuit to ``peer_id`` is limited: avoid its relay from now on."""
        relay = self._via.get(peer_id)
        if relay and len(self.avoid) < _MAX_AVOIDED:
            self.avoid.add(relay)

    def _promising(self, addr: str) -> bool:
        """Could a direct dial to ``addr`` work from here? A public address,
        loopback, or a private one on one of our own /24s (the same LAN). A
        peer's private address on another network never answers: it gets no
        head start over the relays."""
        ip = ip_text(addr)
        if ip is None:
            return True  # dns names and the like: let them try
        if is_public_ip(ip) or is_loopback_ip(ip):
            return True
        return same_ip4_prefix(ip, self.host.listen_addrs())

    def from_network(self, addrs: Sequence[str]) -> list[str]:
        """Addresses the DHT handed out for a peer, minus those that can only
        reach ourselves: loopback and link-local name this host (or link),
        not the peer's, unless we too only listen on loopback (one machine)."""
        ours = self.host.listen_addrs()
        local_only = bool(ours) and all(is_loopback_ip(ip_text(a) or "") for a in ours)
        out = []
        for a in addrs:
            ip = ip_text(a)
            cls = ip_class(ip) if ip is not None else None
            if cls is IpClass.LINK_LOCAL or (cls is IpClass.LOOPBACK and not local_only):
                continue
            out.append(a)
        return out

    async def reach_until(
        self,
        parsed: sharecode.ShareCode | sharecode.LegacyCode,
        deadline: float,
        last_error: Exception | None,
        *,
        fresh: bool = False,
    ) -> str:
        """Dial until it works or ``deadline`` passes (the sharer may be restarting).

        ``fresh``: ask the DHT for the sharer's current addresses at once
        (the code's relays are the ones that limited us), in one pass of at
        most ``DATA_RELAY_SEARCH`` s: a sharer with no relay that carries
        data is said at once, not at the deadline."""
        delay = 0.25
        if fresh:  # one pass: the code (minus relays that limited us) and the DHT's answer now
            deadline = min(deadline, trio.current_time() + DATA_RELAY_SEARCH)
            try:
                return await self.reach(parsed, deadline, fresh=True)
            except PeerUnreachableError as exc:
                raise PeerUnreachableError(f"{exc}; run the same command again to resume") from None
        while True:
            try:
                return await self.reach(parsed, deadline, fresh=fresh)
            except PeerUnreachableError as exc:
                if trio.current_time() + delay >= deadline:
                    if last_error is not None:
                        raise PeerUnreachableError(
                            f"lost the sharer ({last_error}) and could not reach it again: {exc}; "
                            "run the same command again to resume"
                        ) from None
                    raise
            await trio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def reach(
        self, parsed: sharecode.ShareCode | sharecode.LegacyCode, deadline: float, *, fresh: bool = False
    ) -> str:
        remaining = max(0.1, deadline - trio.current_time())
        if isinstance(parsed, sharecode.LegacyCode):
            try:
                return await self.host.connect_unknown(parsed.multiaddr(), timeout=remaining)
            except (OSError, ConnectionError, TimeoutError) as exc:
                raise PeerUnreachableError(f"{_UNREACHABLE}{exc}") from None
        return await self._reach_share(parsed, remaining, fresh)

    async def _reach_share(self, code: sharecode.ShareCode, timeout: float, at_once: bool = False) -> str:
        """Dial the code's addresses and, in parallel (after a head start for
        those), whatever the DHT knows: the sharer's current addresses by
        peer ID, and every provider of the share. First connection wins."""
        winner: str | None = None
        errors: list[str] = []
        tried: set[tuple[str, tuple[str, ...]]] = set()
        code_failed = trio.Event()  # the code's own addresses answered "no": the DHT need not wait

        with trio.move_on_after(timeout):
            async with trio.open_nursery() as nursery:

                async def attempt(peer_id: str, addrs: Sequence[str], *, of_code: bool = False) -> None:
                    nonlocal winner
                    circuits = [a for a in addrs if is_circuit(a)]
                    direct = [] if self.force_relay else [a for a in addrs if not is_circuit(a)]
                    try:
                        await self.connect_any(peer_id, direct, circuits, timeout=timeout)
                    except PeerUnreachableError as exc:
                        errors.append(str(exc).removeprefix(_UNREACHABLE))  # said once, below
                        if of_code:
                            code_failed.set()
                        return
                    if winner is None:
                        winner = peer_id
                        nursery.cancel_scope.cancel()

                async def via_dht() -> None:
                    # The code's own addresses get a head start, when one may answer:
                    # a printed-early code holds only a LAN address of another network.
                    if not at_once and any(is_circuit(a) or self._promising(a) for a in code.addresses):
                        with trio.move_on_after(DHT_DELAY):
                            await code_failed.wait()
                    if not await self.discovery.wait_bootstrapped(min(0.5 if at_once else 10.0, timeout)):
                        errors.append("the DHT has no peers (no bootstrap node reachable)")
                        return
                    try:
                        fresh = await self.discovery.find_peer(code.peer_id, timeout=timeout)
                    except Exception as exc:  # noqa: BLE001 - a failed lookup is one more error line
                        errors.append(f"DHT peer lookup: {exc}")
                        fresh = []
                    new = [a for a in self.from_network(fresh) if a not in code.addresses]
                    if new:
                        tried.add((code.peer_id, tuple(sorted(new))))
                        nursery.start_soon(attempt, code.peer_id, new)
                    try:
                        providers = await self.discovery.find_providers(
                            sharecode.dht_key(code.share_code), timeout=timeout, limit=8
                        )
                    except Exception as exc:  # noqa: BLE001
                        errors.append(f"DHT provider lookup: {exc}")
                        return
                    for info in providers:
                        addrs = self.from_network(info.addrs)
                        ident = (info.peer_id, tuple(sorted(addrs)))
                        if addrs and ident not in tried:
                            tried.add(ident)
                            nursery.start_soon(attempt, info.peer_id, addrs)
                    if not providers and not new:
                        errors.append("the DHT knows no peer serving this share")

                async def via_lan(lan: Mdns) -> None:
                    # No head start for the code: a LAN answer is fresh, and
                    # names the sharer's port now (it may have restarted).
                    heard = await lan.wait_addrs(code.peer_id, min(timeout, LAN_WAIT))
                    addrs = [a for a in heard if a not in code.addresses]
                    ident = (code.peer_id, tuple(sorted(addrs)))
                    if addrs and ident not in tried:
                        tried.add(ident)
                        nursery.start_soon(attempt, code.peer_id, addrs)

                if self.lan is not None and self.lan.interfaces:
                    nursery.start_soon(via_lan, self.lan)
                if code.addresses:
                    tried.add((code.peer_id, tuple(sorted(code.addresses))))
                    nursery.start_soon(partial(attempt, code.peer_id, list(code.addresses), of_code=True))
                if self.use_dht:
                    nursery.start_soon(via_dht)
        if winner is not None:
            return winner
        if not errors:
            errors.append(f"no answer within {timeout:.0f}s")
        raise PeerUnreachableError(_UNREACHABLE + "; ".join(dict.fromkeys(errors[-4:])))

    async def connect_any(
        self, peer_id: str, direct: Sequence[str], circuits: Sequence[str], *, timeout: float
    ) -> None:
        """Race a direct dial against relayed ones (given a head start of
        ``RELAY_DELAY``); the first connection wins and cancels the rest."""
        if self.host.is_connected(peer_id):
            return
        errors: list[str] = []
        with trio.move_on_after(timeout):
            async with trio.open_nursery() as nursery:

                async def via_direct() -> None:
                    try:
                        await self.host.connect(peer_id, list(direct), timeout=timeout)
                        nursery.cancel_scope.cancel()
                    except (OSError, ConnectionError, TimeoutError) as exc:
                        errors.append(f"direct: {exc}")

                async def via_relays() -> None:
                    if any(self._promising(a) for a in direct):
                        await trio.sleep(RELAY_DELAY)
                    for circuit in circuits:
                        relay = (relay_of(circuit) or ("", ""))[0]
                        if relay in self.avoid:
                            errors.append(f"relay: {relay} limits circuits")
                            continue
                        try:
                            await self.relay.dial_via_relay(peer_id, circuit, timeout=timeout)
                            self.note_via(peer_id, relay)
                            nursery.cancel_scope.cancel()
                            return
                        except (OSError, ConnectionError, TimeoutError) as exc:
                            errors.append(f"relay: {exc}")

                if direct:
                    nursery.start_soon(via_direct)
                if circuits:
                    nursery.start_soon(via_relays)
        if self.host.is_connected(peer_id):
            return
        if not direct and not circuits:
            raise PeerUnreachableError("the code carries no address to dial")
        detail = "; ".join(errors[-3:]) or f"no answer within {max(timeout, 1.0):.0f}s"
        raise PeerUnreachableError(_UNREACHABLE + detail)
