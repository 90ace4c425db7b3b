"""Birthday port probing through a symmetric NAT (trio adapter).

The method, its order of packets and its bounds are explained and decided in
:mod:`node.dcutr.birthday`; this module only performs them: the easy side's
pending dials from the listen port (:func:`hold_probes`), the hard side's
pool of dials from new mappings (:func:`open_mappings`), each one nursery
whose winner cancels the rest, bounded by the caller's deadline; the
exchange over the relayed connection; and the hand-over of the connected
socket to the swarm through the path a DCUtR punch uses
(:func:`node.dcutr._trio_libp2p.upgrade_punched`): the hard side as the
Noise initiator, the easy side as the responder. The DCUtR service
(:mod:`._trio_service`) decides when to run it: the inbound side's upgrade
after its direct dial, the outbound side at once when it is symmetric.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import resource
import socket as stdlib_socket
from collections.abc import Callable, Sequence

import trio

from p2pshare.node.dcutr import _trio_libp2p as lp
from p2pshare.node.dcutr._trio_rounds import Changes, Rounds
from p2pshare.node.dcutr.birthday import (
    HARD_BATCH,
    HARD_TICK,
    PROBE_BATCH,
    PROBE_TICK,
    PROTOCOL_ID,
    BirthdayConfig,
    EasyBudget,
    EasyPlan,
    Pacer,
    easy_answer,
    hard_connect,
    hard_target,
    nofile_target,
    sockets_allowed,
)
from p2pshare.node.dcutr.policy import DCUtREvent, Role, Upgraded, UpgradeFailed
from p2pshare.node.dcutr.wire import WireError, read_message
from p2pshare.node.host import Host, HostError, LibP2PByteStream
from p2pshare.node.natinfo.addrs import TcpAddr, parse_tcp_addr

__all__ = ["Birthday", "hold_probes", "open_mappings", "PROTOCOL_ID"]

logger = logging.getLogger(__name__)

UPGRADE_TIMEOUT = 10.0  # s for Noise + yamux on the winning socket
_AFTER_EOF = 1.0  # s the easy side still waits for its half of the upgrade after the hard side is done


def _fds_in_use() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def fd_budget(need: int) -> int:
    """Raise RLIMIT_NOFILE's soft limit if ``need`` more sockets would not fit
    (bounded, see :func:`~node.dcutr.birthday.nofile_target`); return how many fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = _fds_in_use()
    target = nofile_target(soft, hard, in_use, need)
    if target is not None:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as e:
            logger.debug("birthday: cannot raise RLIMIT_NOFILE to %d: %s", target, e)
    return sockets_allowed(soft, in_use, need)


def _claim(winner: list[trio.socket.SocketType], sock: trio.socket.SocketType, race: trio.CancelScope) -> None:
    """The first socket wins and ends its race; any later one is closed."""
    if winner:
        sock.close()
        return
    winner.append(sock)
    race.cancel()


async def _paced(pacer: Pacer, start: Callable[[], None]) -> None:
    """Call ``start`` as often and as soon as ``pacer`` allows, until it is done."""
    while not pacer.done:
        for _ in range(pacer.due(trio.current_time())):
            start()
        await trio.sleep_until(pacer.next_at())


async def hold_probes(
    local: tuple[str, int], ip: str, ports: Sequence[int], deadline: float, all_sent: trio.Event
) -> trio.socket.SocketType | None:
    """Dial each of ``ip``:``ports`` from ``local`` (paced; ``all_sent`` is set
    once every SYN has left) and keep the sockets pending until one connects
    or ``deadline``. Kept, not closed after the SYN: when the hard side's SYN
    comes in, a socket in SYN-SENT answers it (TCP simultaneous open) with a
    SYN-ACK that carries the sequence number the NAT already saw. A listener
    would answer with a new one, which Linux conntrack marks INVALID and does
    not translate (lab: 10 of 10 such SYN-ACKs left with the private source
    address). Returns the connected socket."""
    held = fd_budget(len(ports))
    winner: list[trio.socket.SocketType] = []

    async def one(port: int, nursery: trio.Nursery) -> None:
        sock = trio.socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_STREAM)
        try:
            sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR, 1)
            sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEPORT, 1)
            await sock.bind(local)
            await sock.connect((ip, port))
        except OSError as e:
            sock.close()
            if e.errno not in (errno.ECONNREFUSED, errno.ETIMEDOUT):
                logger.debug("birthday: probe %s:%d from :%d: %s", ip, port, local[1], e)
            return
        except BaseException:
            sock.close()
            raise
        # Several ports usually match (≈ 8 expected): the hard side keeps the
        # first that connected there and closes the rest, so the one it keeps
        # is the one that speaks (multistream, as the Noise initiator); a
        # closed one reads EOF. Taking our own first one instead paired two
        # different sockets, and both upgrades failed (lab, symmetric:cone).
        try:
            speaks = bool(await sock.recv(1, stdlib_socket.MSG_PEEK))
        except OSError:
            speaks = False
        except BaseException:
            sock.close()
            raise
        if not speaks:
            sock.close()
            return
        _claim(winner, sock, nursery.cancel_scope)

    try:
        with trio.move_on_at(deadline):
            async with trio.open_nursery() as nursery:
                todo = iter(ports[:held])
                pacer = Pacer(min(held, len(ports)), PROBE_BATCH, PROBE_TICK, trio.current_time())
                await _paced(pacer, lambda: nursery.start_soon(one, next(todo), nursery))
                await trio.sleep(PROBE_TICK)  # let the last batch send its SYNs
                all_sent.set()
    except BaseException:  # the caller gave up (the peer went direct some other way)
        for sock in winner:
            sock.close()  # the hard side's upgrade on its end fails now, not at its timeout
        raise
    all_sent.set()
    return winner[0] if winner else None


async def open_mappings(
    target: TcpAddr, cfg: BirthdayConfig, deadline: float
) -> tuple[trio.socket.SocketType, int] | None:
    """Dial ``target`` from many new sockets (each a new NAT mapping), paced,
    at most ``cfg.hard_sockets`` pending and ``cfg.hard_dials`` in all, until
    one connects or ``deadline``. Returns (connected socket, dials) or None."""
    held = fd_budget(cfg.hard_sockets)
    if held < 1:
        logger.info("birthday: no file descriptors to spare")
        return None
    winner: list[trio.socket.SocketType] = []
    dials = 0

    async def one(nursery: trio.Nursery) -> None:
        nonlocal dials
        sock = trio.socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_STREAM)
        try:
            await sock.connect((target.ip, target.port))
        except OSError:
            sock.close()
            if dials < cfg.hard_dials and not winner:  # refused (RST): a new mapping is a new ticket
                dials += 1
                nursery.start_soon(one, nursery)
            return
        except BaseException:
            sock.close()
            raise
        _claim(winner, sock, nursery.cancel_scope)

    with trio.move_on_at(deadline):
        async with trio.open_nursery() as nursery:
            pacer = Pacer(held, HARD_BATCH, HARD_TICK, trio.current_time())

            def start() -> None:
                nonlocal dials
                dials += 1
                nursery.start_soon(one, nursery)

            await _paced(pacer, start)
    return (winner[0], dials) if winner else None


class Birthday:
    """Both halves for one host: :meth:`answer` (easy side, a stream
    handler) and :meth:`dial` (hard side, for one relayed peer)."""

    def __init__(
        self,
        host: Host,
        cfg: BirthdayConfig,
        observed: Callable[[], Sequence[str]],
        hard_ip: Callable[[], str | None],
        rng: random.Random,
        changes: Changes | None = None,
    ) -> None:
        self.host = host
        self.cfg = cfg
        self._observed = observed
        self._hard_ip = hard_ip
        self._rng = rng
        changes = changes or Changes()  # told when busy() may have changed
        self._easy = Rounds(changes)  # peers whose probing we answer, until upgraded
        self._budget = EasyBudget()
        self._dialing = Rounds(changes)  # peers we probe for (hard side)
        self.on_event: Callable[[DCUtREvent], None] = lambda _e: None  # the easy side's outcomes

    def hard(self) -> str | None:
        """Our public IP when our NAT is symmetric (we run the hard side)."""
        return self._hard_ip()

    def busy(self, peer_id: str) -> bool:
        return peer_id in self._easy or peer_id in self._dialing

    async def first(self, peer_id: str) -> DCUtREvent | None:
        """Behind a symmetric NAT our DCUtR CONNECT has no address to offer, so
        plain DCUtR's rounds cannot work: probe ports instead (p2pshare peers
        only). None: not symmetric, already running, or the peer lacks the
        protocol. The caller reports the outcome. Runs after plain DCUtR's
        direct dial to a peer's public addresses: a public peer needs no
        probing, and spraying its listener with a batch of sockets first
        left symmetric:public relayed in 2 of 4 lab runs (the plain direct
        dial that followed failed too; cause not pinned down)."""
        if self.hard() is None or peer_id in self._dialing:
            return None
        with self._dialing.running(peer_id):
            return await self.dial(peer_id)

    def _local(self) -> tuple[str, int] | None:
        v4 = [b for b in lp.listen_tcp(self.host) if ":" not in b[0]]
        return v4[0] if v4 else None

    # -- easy side -----------------------------------------------------------

    async def answer(self, stream: LibP2PByteStream) -> None:
        """The stream handler of :data:`PROTOCOL_ID` (easy side). Answer one
        CONNECT: probe, answer once every SYN has left, then upgrade the
        socket the hard side's dial met (as the Noise responder), and tell
        ``on_event`` the outcome (nothing when refused)."""
        peer = stream.remote_peer_id
        local = self._local()
        if (
            peer in self._easy
            or local is None
            or not lp.relayed_conns(self.host, peer)
            or not self._budget.allow(peer, trio.current_time())
        ):
            await stream.reset()
            return None
        # Busy until the outcome is told: the upgraded connection joins the
        # swarm before that (a watcher waits for busy() to end, then reads it).
        with self._easy.running(peer):
            event = await self._answer(stream, peer, local)
            if event is not None:
                self.on_event(event)

    async def _answer(self, stream: LibP2PByteStream, peer: str, local: tuple[str, int]) -> DCUtREvent | None:
        started = trio.current_time()
        ours = [a for a in (parse_tcp_addr(x) for x in self._observed()) if a is not None]
        try:
            with trio.fail_after(self.cfg.exchange_timeout):
                plan = easy_answer(await read_message(stream.read), ours, self._rng, self.cfg)
            sock = await self._probe_and_answer(stream, peer, local, plan)
        except (WireError, EOFError, HostError, trio.TooSlowError) as e:
            logger.debug("birthday: answering %s failed: %s", peer, e or type(e).__name__)
            await stream.reset()
            return None
        reason = "birthday: no mapping matched"
        if sock is not None:
            try:
                with trio.fail_after(UPGRADE_TIMEOUT):
                    await lp.upgrade_punched(self.host, sock, peer, client=False)
            except (Exception, trio.TooSlowError) as e:
                reason = f"birthday: upgrade failed: {e}"
        elapsed = trio.current_time() - started
        if lp.direct_conns(self.host, peer):
            return Upgraded(peer, Role.RESPONDER.value, "birthday", elapsed, 1, len(plan.ports), None, "")
        return UpgradeFailed(peer, Role.RESPONDER.value, elapsed, 1, reason)

    async def _probe_and_answer(
        self, stream: LibP2PByteStream, peer: str, local: tuple[str, int], plan: EasyPlan
    ) -> trio.socket.SocketType | None:
        """Hold the probes; answer once all SYNs left; stop at a connected
        socket, at the deadline, soon after the hard side closed the stream,
        or once the peer is direct some other way (a public or unfiltered
        listener of ours took its dial: lab, symmetric:public)."""
        all_sent = trio.Event()
        got: list[trio.socket.SocketType | None] = []
        deadline = trio.current_time() + self.cfg.exchange_timeout + self.cfg.hard_window

        async def pool(cancel: trio.CancelScope) -> None:
            got.append(await hold_probes(local, plan.ip, plan.ports, deadline, all_sent))
            cancel.cancel()

        async def answer_then_watch(cancel: trio.CancelScope) -> None:
            await all_sent.wait()
            await stream.write(plan.reply)
            try:
                while await stream.read(64):
                    pass
            except HostError:
                pass
            await trio.sleep(_AFTER_EOF)  # the hard side is done; our socket may be a moment behind
            cancel.cancel()

        async def direct_anyway(cancel: trio.CancelScope) -> None:
            # Woken by connection events. Never by our own winning socket: it
            # is upgraded (joins the swarm) only after this nursery has ended;
            # a socket the pool claimed when this wins is closed (hold_probes).
            await lp.wait_direct(self.host, peer)
            cancel.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pool, nursery.cancel_scope)
            nursery.start_soon(answer_then_watch, nursery.cancel_scope)
            nursery.start_soon(direct_anyway, nursery.cancel_scope)
        return got[0] if got else None

    # -- hard side -----------------------------------------------------------

    async def dial(self, peer_id: str) -> DCUtREvent | None:
        """Run up to ``cfg.rounds`` rounds with ``peer_id``. None when it does
        not speak the protocol (or we are not symmetric): plain DCUtR then."""
        ip, local = self._hard_ip(), self._local()
        if ip is None or local is None:
            return None
        started = trio.current_time()
        reason = "no round ran"
        for round_no in range(1, self.cfg.rounds + 1):
            if lp.direct_conns(self.host, peer_id) or not lp.relayed_conns(self.host, peer_id):
                break
            try:
                with trio.fail_after(self.cfg.exchange_timeout):
                    stream = await self.host.open_stream(peer_id, PROTOCOL_ID)
            except (HostError, trio.TooSlowError) as e:
                logger.debug("birthday: %s does not answer %s: %s", peer_id, PROTOCOL_ID, e)
                if round_no == 1:
                    return None
                break
            try:
                won = await self._round(stream, peer_id, ip, local[1])
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                    try:
                        await stream.close_write()
                    except HostError:
                        pass
            if isinstance(won, tuple):
                elapsed = trio.current_time() - started
                return Upgraded(peer_id, Role.INITIATOR.value, "birthday", elapsed, round_no, won[1], None, won[0])
            reason = f"round {round_no}: {won}"
        if lp.direct_conns(self.host, peer_id):
            return None  # direct some other way (the peer dialled us): nothing of ours to report
        return UpgradeFailed(peer_id, Role.INITIATOR.value, trio.current_time() - started, round_no, reason)

    async def _round(self, stream: LibP2PByteStream, peer_id: str, ip: str, port: int) -> tuple[str, int] | str:
        """One exchange and dial pool: (address, dials) when upgraded, else why not."""
        try:
            with trio.fail_after(self.cfg.exchange_timeout):
                await stream.write(hard_connect(ip, port))
                target = hard_target(await read_message(stream.read))
        except (WireError, EOFError, HostError, trio.TooSlowError, ValueError) as e:
            return f"exchange failed: {e or type(e).__name__}"
        got = await open_mappings(target, self.cfg, trio.current_time() + self.cfg.hard_window)
        if got is None:
            return f"no mapping matched {target.multiaddr()}"
        sock, dials = got
        try:
            with trio.fail_after(UPGRADE_TIMEOUT):
                await lp.upgrade_punched(self.host, sock, peer_id, client=True)
        except (Exception, trio.TooSlowError) as e:
            logger.debug("birthday: upgrade of the matched socket to %s failed: %s", peer_id, e)
            return f"upgrade failed: {e}"
        return target.multiaddr(), dials
