"""AutoNAT v1 client role over a :class:`node.host.Host` (trio adapter).

``open_autonat(host, servers)`` checks our reachability on the schedule of
:class:`~node.autonat.client.ReachabilityTracker` and publishes each new
:class:`~node.autonat.client.Verdict`: ``async for v in autonat.watch()``
yields the current verdict, then every change. A private node should reserve
relay slots and advertise ``/p2p-circuit`` addrs; a public one its direct
addrs (the node wires that).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import multiaddr
import trio

from p2pshare.node.autonat.client import (
    AutoNATConfig,
    Outcome,
    ReachabilityTracker,
    ServerResult,
    Verdict,
)
from p2pshare.node.autonat.wire import (
    PROTOCOL_ID,
    Dial,
    DialResponse,
    ResponseStatus,
    WireError,
    encode_dial,
    read_message,
)
from p2pshare.node.host import Host, HostError
from p2pshare.node.natinfo.addrs import encode_addr, parse_tcp_addr

if TYPE_CHECKING:
    from trio_typing import TaskStatus

__all__ = ["AutoNAT", "open_autonat", "parse_servers", "MAX_SERVERS"]

#: AutoNAT servers remembered (configured plus found among peers).
MAX_SERVERS = 32

logger = logging.getLogger(__name__)

AddrProvider = Callable[[], Sequence[str]]


def parse_servers(servers: Sequence[str]) -> dict[str, list[str]]:
    """Group ``/…/p2p/<id>`` multiaddrs by peer ID (ValueError, one line, when bad)."""
    out: dict[str, list[str]] = {}
    for text in servers:
        try:
            maddr = multiaddr.Multiaddr(text)
            pid = maddr.value_for_protocol("p2p")
        except Exception:
            raise ValueError(f"bad AutoNAT server address {text[:200]!r}") from None
        if not pid:
            raise ValueError(f"AutoNAT server address {text[:200]!r} has no /p2p/<peer-id>")
        out.setdefault(str(pid), []).append(text)
    return out


class AutoNAT:
    """Made by :func:`open_autonat`."""

    def __init__(
        self,
        host: Host,
        servers: Sequence[str],
        config: AutoNATConfig,
        addrs: AddrProvider | None,
    ) -> None:
        self.host = host
        self.config = config
        self._servers = {p: a for p, a in parse_servers(servers).items() if p != host.peer_id}
        self._found: set[str] = set()  # servers met, not configured
        #: Found servers not to ask now (``Traversal`` sets it): js-libp2p's
        #: AutoNAT server closes the connection its dial-back returns, which
        #: for a peer already connected is ours, and with it a relay
        #: reservation held on that peer.
        self.avoid: Callable[[str], bool] = lambda pid: False
        self._addrs = addrs or host.listen_addrs
        self._tracker = ReachabilityTracker(config, trio.current_time())
        self._changed = trio.Event()
        self._wake = trio.Event()
        self.last_results: tuple[ServerResult, ...] = ()

    @property
    def verdict(self) -> Verdict:
        return self._tracker.verdict

    async def watch(self) -> AsyncIterator[Verdict]:
        """The current verdict, then each new one (forever)."""
        last: Verdict | None = None
        while True:
            event = self._changed
            current = self._tracker.verdict
            if current != last:
                last = current
                yield current
            if self._tracker.verdict == last:
                await event.wait()

    def add_server(self, addr: str) -> bool:
        """A peer found to serve AutoNAT (``addr`` with ``/p2p/<id>``); at most
        ``MAX_SERVERS`` are kept: when full, a found server that keeps giving
        no answer makes room (the tracker picks it). True if it was new."""
        try:
            found = parse_servers([addr])
        except ValueError:
            return False
        ((pid, addrs),) = found.items()
        if pid == self.host.peer_id or pid in self._servers:
            return False
        if len(self._servers) >= MAX_SERVERS:
            stale = self._tracker.stale_server([p for p in self._servers if p in self._found])
            if stale is None:
                return False
            del self._servers[stale]
            self._found.discard(stale)
            self._tracker.forget(stale)
        self._servers[pid] = addrs
        self._found.add(pid)
        self._tracker.server_added(trio.current_time(), len(self._servers), pid)
        self._wake.set()
        return True

    def addrs_changed(self) -> None:
        """Our addresses changed: re-check now."""
        self._tracker.addrs_changed(trio.current_time())
        self._wake.set()

    def interfaces_changed(self) -> None:
        """This machine's interface addresses changed: re-check soon (paced)."""
        self._tracker.interfaces_changed(trio.current_time())
        self._wake.set()

    async def check_once(self) -> Verdict:
        """Run one round now and return the (possibly unchanged) verdict."""
        await self._round()
        return self._tracker.verdict

    async def _round(self) -> None:
        # Avoid found servers we hold a relay reservation on, unless that
        # leaves too few to ask: a verdict is worth a reservation re-made
        # (a node that asks no one stays "unknown" and never relays for others).
        eligible = [p for p in self._servers if p not in self._found or not self.avoid(p)]
        if len(eligible) < self.config.servers_per_round:
            eligible = list(self._servers)
        picked = self._tracker.pick_servers(eligible)
        results: list[ServerResult] = []

        async def ask(pid: str) -> None:
            results.append(await self._ask(pid))

        async with trio.open_nursery() as nursery:
            for pid in picked:
                nursery.start_soon(ask, pid)
        self.last_results = tuple(results)
        new = self._tracker.complete_round(results, len(self._servers), trio.current_time())
        summary = ", ".join(f"{r.server[-8:]}={r.outcome.value}" for r in results)
        for r in results:
            if r.detail:
                logger.debug("autonat: %s: %s: %s", r.server, r.outcome.value, r.detail[:300])
        logger.info("autonat: round %d: %s", self._tracker.rounds, summary or "no servers")
        if new is not None:
            logger.info(
                "autonat: now %s%s %s",
                new.reachability.value,
                "" if new.confirmed else " (unconfirmed)",
                " ".join(new.addrs),
            )
            self._changed.set()
            self._changed = trio.Event()

    async def _ask(self, pid: str) -> ServerResult:
        raw: list[bytes] = []
        for a in self._addrs():
            if parse_tcp_addr(a) is None:
                continue  # only direct TCP addrs can be dialed back
            try:
                raw.append(encode_addr(a))
            except ValueError:
                continue
        if not raw:
            return ServerResult(pid, Outcome.REFUSED, detail="no direct addresses to test")
        timeout = self.config.request_timeout
        with trio.move_on_after(timeout):
            try:
                await self.host.connect(pid, self._servers[pid], timeout=timeout)
                stream = await self.host.open_stream(pid, PROTOCOL_ID)
            except HostError as e:
                return ServerResult(pid, Outcome.FAILED, detail=str(e))
            try:
                await stream.write(encode_dial(Dial(self.host.peer_id_bytes, tuple(raw))))
                answer = await read_message(stream.read)
            except (HostError, WireError, EOFError) as e:
                await stream.reset()
                return ServerResult(pid, Outcome.FAILED, detail=str(e))
            except BaseException:
                await stream.reset()
                raise
            await stream.reset()  # one request per stream; nothing more to say
            return _result(pid, answer)
        return ServerResult(pid, Outcome.FAILED, detail=f"no answer within {timeout:g}s")

    async def serve(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            self._wake = trio.Event()
            with trio.move_on_at(self._tracker.next_check_at()):
                await self._wake.wait()
            if self._tracker.due(trio.current_time()):
                await self._round()


def _result(pid: str, answer: Dial | DialResponse) -> ServerResult:
    if not isinstance(answer, DialResponse):
        return ServerResult(pid, Outcome.FAILED, detail="server sent DIAL, not DIAL_RESPONSE")
    if answer.status == ResponseStatus.OK:
        addr = None
        if answer.addr is not None:
            parsed = parse_tcp_addr(answer.addr)
            addr = parsed.multiaddr() if parsed is not None else None
        return ServerResult(pid, Outcome.OK, addr, answer.text)
    if answer.status == ResponseStatus.E_DIAL_ERROR:
        return ServerResult(pid, Outcome.DIAL_ERROR, detail=answer.text)
    return ServerResult(pid, Outcome.REFUSED, detail=f"{answer.status.name}: {answer.text}")


@asynccontextmanager
async def open_autonat(
    host: Host,
    servers: Sequence[str],
    config: AutoNATConfig = AutoNATConfig(),
    *,
    addrs: AddrProvider | None = None,
) -> AsyncIterator[AutoNAT]:
    """Check reachability against ``servers`` (multiaddrs with ``/p2p/<id>``)
    while the block runs. ``addrs`` gives the addresses to have tested
    (default: the host's listen addrs)."""
    client = AutoNAT(host, servers, config, addrs)
    async with trio.open_nursery() as nursery:
        await nursery.start(client.serve)
        try:
            yield client
        finally:
            nursery.cancel_scope.cancel()
