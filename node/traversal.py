"""NAT traversal for one node: hole punching (DCUtR), the listen port's true
public mapping (STUN over TCP against the relays) and reachability (AutoNAT).

The node wires this between its host and its relay client: DCUtR must be
serving before the first relayed connection arrives.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial

import trio

from p2pshare.node._trio_race import first_of
from p2pshare.node.autonat._trio_client import AutoNAT, open_autonat
from p2pshare.node.autonat.client import AutoNATConfig, Reachability, Verdict
from p2pshare.node.dcutr._trio_libp2p import listen_tcp
from p2pshare.node.dcutr._trio_service import DCUtR, open_dcutr
from p2pshare.node.dcutr.policy import PunchConfig, Upgraded, UpgradeFailed
from p2pshare.node.discovery.dnsaddr import resolve_bootstrap
from p2pshare.node.events import NatDiscovered, ReachabilityChanged, TraversalEvent
from p2pshare.node.host import Host
from p2pshare.node.natinfo import Mapping, NatReport
from p2pshare.node.natinfo._trio_identify import observe_from
from p2pshare.node.natinfo._trio_stun import DEFAULT_PORTS, probe_nat
from p2pshare.node.natinfo.observed import identify_sources, mapping_from_sightings, symmetric_ip
from p2pshare.node.recent import remember
from p2pshare.sharecode.multiaddrs import ip_text, is_public_ip

log = logging.getLogger(__name__)

# DCUtR results remembered, by peer. Only a receiver reads them, about the
# one sharer it fetches from, just after the upgrade: the latest ones are
# enough. Unbounded, a long-lived sharer kept one per relayed receiver it
# ever had (677 after the 15-minute soak, scripts/soak --heap; issue 9).
RESULTS_KEPT = 256

# Relays whose STUN servers were asked, the newest kept: a receiving
# process meets the relays of every sharer it fetches from. Forgetting one
# costs at most one more probe of it.
PROBED_KEPT = 64


_DNS_TIMEOUT = 5.0  # s per /dnsaddr bootstrap name (the default list's): resolved, they answer identify


class Traversal:
    """What the node knows about its NAT, and the upgrades DCUtR made."""

    def __init__(
        self, host: Host, on_event: Callable[[TraversalEvent], None] | None, peers: Sequence[str] = ()
    ) -> None:
        self.host = host
        self.peers = tuple(peers)  # bootstrap peers: they answer identify when no relay is configured
        self.observed: list[str] = []
        self.nat: NatReport | None = None
        self._hard_ip: str | None = None  # our public IP when our NAT is symmetric
        self.verdict: Verdict | None = None
        self._on_event = on_event
        self._upgrades: dict[str, Upgraded] = {}
        self._failures: dict[str, UpgradeFailed] = {}
        self._changed = trio.Event()
        self._autonat: AutoNAT | None = None
        self._dcutr: DCUtR | None = None
        self._probing = trio.Lock()
        self._probed: dict[str, None] = {}  # relays whose STUN was asked, newest last

    def _emit(self, event: TraversalEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)

    def on_dcutr(self, event: Upgraded | UpgradeFailed) -> None:
        if isinstance(event, Upgraded):
            remember(self._upgrades, event.peer_id, event, RESULTS_KEPT)
            self._failures.pop(event.peer_id, None)
        else:
            remember(self._failures, event.peer_id, event, RESULTS_KEPT)
        log.info("dcutr %s: %s", event.event, event)
        self._changed.set()
        self._changed = trio.Event()
        self._emit(event)

    def hard_ip(self) -> str | None:
        """Our public IP when the probe found an endpoint-dependent (symmetric)
        mapping: DCUtR then tries birthday port probing (node.dcutr.birthday)."""
        return self._hard_ip

    def upgrade(self, peer_id: str) -> Upgraded | None:
        return self._upgrades.get(peer_id)

    async def wait_direct(self, peer_id: str, timeout: float, *, until_failure: bool = True) -> str | None:
        """Wait (bounded) until ``peer_id`` is reachable without the relay.

        Returns "hole-punched" (DCUtR punched through), "direct" (a plain
        direct connection: one side was publicly reachable and dialled the
        other, which raises no DCUtR event on the dialled side), or None when
        DCUtR gave up (``until_failure``) or time ran out.
        """
        with trio.move_on_after(timeout):
            # Wake on what can change the answer: a DCUtR result, a
            # connection to the peer opening or closing, or (while one runs)
            # the end of a DCUtR round with it. Subscribe first, then look,
            # so nothing falls between the look and the wait.
            async with self.host.connection_events() as events:
                while True:
                    up = self._upgrades.get(peer_id)
                    if up is not None:
                        return "hole-punched" if up.method in ("hole-punch", "birthday") else "direct"
                    direct = self.host.connection_path(peer_id) == "direct"
                    # A round's punched connection is in the swarm before the
                    # round reports it: while one runs, wait for its word or
                    # its end (a round may end without one: then it is a plain
                    # direct path) instead of calling the path a plain dial.
                    punching = direct and self._dcutr is not None and self._dcutr.busy(peer_id)
                    if direct and not punching:
                        return "direct"
                    if until_failure and peer_id in self._failures:
                        return None
                    waits: list[Callable[[], Awaitable[object]]] = [self._changed.wait, events.receive]
                    if punching and self._dcutr is not None:
                        waits.append(partial(self._dcutr.wait_idle, peer_id))
                    await first_of(*waits)
        return None

    def forget(self, peer_id: str) -> None:
        self._failures.pop(peer_id, None)

    def can_probe(self) -> bool:
        """Whether :meth:`probe` has someone to ask even without relays."""
        return bool(identify_sources((), self.peers))

    async def probe(self, relays: Sequence[str]) -> None:
        """Learn the listen port's public mapping: STUN at ``relays``, else
        identify at them and at our bootstrap peers. One probe at a time; a
        caller that finds the work done (by the start-up probe) returns."""
        async with self._probing:
            if self.nat is not None and all(r in self._probed for r in relays):
                return
            for relay in relays:
                remember(self._probed, relay, None, PROBED_KEPT)
            await self._probe(relays)

    async def probe_settled(self) -> None:
        """Return once no probe runs (at once when none does)."""
        async with self._probing:
            return

    async def _probe(self, relays: Sequence[str]) -> None:
        servers = [(ip, port) for ip in dict.fromkeys(filter(None, map(ip_text, relays))) for port in DEFAULT_PORTS]
        sources = identify_sources(relays, await resolve_bootstrap(self.peers, timeout=_DNS_TIMEOUT))
        local = next(iter(listen_tcp(self.host)), None)
        if (not servers and not sources) or local is None:
            return
        report = NatReport(Mapping.UNKNOWN, None, False, 0, 0)
        if servers:
            try:
                report = await probe_nat(local, servers)
            except OSError as exc:
                log.info("NAT mapping probe failed: %s", exc)
                return
        self.nat = report
        if report.mapping is Mapping.ENDPOINT_DEPENDENT and report.public_ip and is_public_ip(report.public_ip):
            self._hard_ip = report.public_ip
        public = f"/ip4/{report.public[0]}/tcp/{report.public[1]}" if report.public else None
        if public is None and report.observations == 0:
            # No STUN answered (go/js relays run none) or no relay to ask: identify.
            await self._probe_identify(sources, local[1])
            return
        if report.punchable and public and self.observed != [public]:
            self._set_observed(public)
        self._emit(NatDiscovered(report.mapping.value, public, report.punchable))

    async def _probe_identify(self, sources: Sequence[str], listen_port: int) -> None:
        seen = await observe_from(self.host, sources)
        if not seen:
            return
        predicted = mapping_from_sightings(seen, listen_port)
        self._hard_ip = symmetric_ip(seen) if predicted is None else None
        log.info("NAT mapping from identify (%d peer(s)): %s", len(seen), predicted or "unpredictable")
        if predicted is not None and self.observed != [predicted]:
            self._set_observed(predicted)
        self._emit(NatDiscovered("port-preserving" if predicted else "port-changing", predicted, predicted is not None))

    def _set_observed(self, addr: str) -> None:
        self.observed = [addr]
        if self._autonat is not None:
            self._autonat.addrs_changed()  # our addresses changed: re-check reachability now

    def interfaces_changed(self) -> None:
        """This machine's interface addresses changed (a laptop on another
        network): AutoNAT re-checks whether others can dial us."""
        if self._autonat is not None:
            self._autonat.interfaces_changed()

    def add_autonat_server(self, addr: str, *, avoid: Callable[[str], bool] | None = None) -> bool:
        """A peer that serves AutoNAT (``addr`` with ``/p2p/<id>``): ask it too,
        unless ``avoid`` says not now (see ``AutoNAT.avoid``)."""
        if self._autonat is None:
            return False
        if avoid is not None:
            self._autonat.avoid = avoid
        return self._autonat.add_server(addr)

    async def watch_reachability(self, servers: Sequence[str], config: AutoNATConfig) -> None:
        # Servers dial back only addresses on the IP they see us on (the
        # spec's protection): offer our public mapping too, not just the
        # (private) listen addresses, or a NATed node never gets a verdict.
        async with open_autonat(
            self.host, servers, config, addrs=lambda: [*self.observed, *self.host.listen_addrs()]
        ) as autonat:
            self._autonat = autonat
            async for verdict in autonat.watch():
                self.verdict = verdict
                if verdict.reachability != Reachability.UNKNOWN or verdict.asked:
                    self._emit(ReachabilityChanged(verdict.reachability.value, verdict.confirmed, verdict.addrs))


@asynccontextmanager
async def open_traversal(
    host: Host,
    *,
    relays: Sequence[str],
    autonat: AutoNATConfig | None,
    on_event: Callable[[TraversalEvent], None] | None = None,
    punch: PunchConfig | None = None,
    peers: Sequence[str] = (),
) -> AsyncIterator[Traversal]:
    """Serve DCUtR on ``host``; with relays or ``peers`` (bootstrap) probe the
    NAT at once, so DCUtR's first CONNECT carries our public mapping; given a
    config, run AutoNAT against the relays."""
    traversal = Traversal(host, on_event, peers)
    async with open_dcutr(
        host,
        punch or PunchConfig(),
        observed=lambda: traversal.observed,
        on_event=traversal.on_dcutr,
        settled=traversal.probe_settled,
        hard_ip=traversal.hard_ip,
    ) as dcutr:
        traversal._dcutr = dcutr
        async with trio.open_nursery() as nursery:
            if relays or traversal.can_probe():
                nursery.start_soon(traversal.probe, list(relays))
            if autonat is not None:
                # Servers: the configured relays, plus peers found to serve
                # AutoNAT (AutoRelay's scout offers them: add_autonat_server).
                nursery.start_soon(traversal.watch_reachability, list(relays), autonat)
            try:
                yield traversal
            finally:
                nursery.cancel_scope.cancel()
