"""Trio side of short codes: the sharer's stream handler and expiry timer,
and the receiver's search (DHT providers of the number, each candidate
tried over its own Noise stream). The decisions are in :mod:`.core`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import trio

from p2pshare import sharecode
from p2pshare.node.discovery import Discovery, LookupStats
from p2pshare.node.discovery.lookup import worth_another_look
from p2pshare.node.errors import PeerUnreachableError
from p2pshare.node.host import Host, LibP2PByteStream, StreamError
from p2pshare.node.progress import format_count
from p2pshare.node.reach import Reacher
from p2pshare.sharecode.short import ShortCode, window_keys

from .core import CodeRefusedError, Offer, ReceiverSession, WrongWordsError
from .events import (
    ShortCodeAdvertised,
    ShortCodeClaimed,
    ShortCodeEvent,
    ShortCodeExpired,
    ShortCodeFailed,
    ShortCodeRefused,
)
from .search import RoundEnd, next_round
from .wire import PROTOCOL_ID, MsgType, Refusal, ShortCodeMsg, WireError, encode, read_message

__all__ = ["PROTOCOL_ID", "advertise_short_code", "claim_short_code", "expire_offer", "serve_attempt"]

log = logging.getLogger(__name__)

STEP_TIMEOUT = 10.0  # seconds a peer gets for each message of the exchange
#: Providers of one number tried at most: a key's whole record set (the
#: spec's k). Collisions are rare, but records made ahead of a sharer by
#: throwaway identities may fill the key, the sharer's record last: with 8,
#: the receiver never saw it (a hostile-peer review, stop 43). Dials run in
#: parallel; a dead address costs nothing but its dial.
LOOKUP_LIMIT = 20
#: Seconds a candidate's PAKE runs alone before the next one's starts too
#: (sooner when it ends): the right sharer answers within a few round trips,
#: so a silent one costs the receiver this long, not ``STEP_TIMEOUT``.
PAKE_STAGGER = 1.0


async def serve_attempt(
    host: Host,
    offer: Offer,
    payload: Callable[[], bytes],
    emit: Callable[[ShortCodeEvent], None],
    stream: LibP2PByteStream,
) -> None:
    """One receiver's attempt: HELLO, then REPLY or REFUSED, then CONFIRM."""
    peer = stream.remote_peer_id
    try:
        with trio.fail_after(STEP_TIMEOUT):
            hello = await read_message(stream.read)
    except (WireError, EOFError, StreamError, trio.TooSlowError) as exc:
        log.debug("short code: bad hello from %s: %s", peer, exc)
        await stream.reset()
        return
    offer.payload = payload()  # the addresses as of now (relays come and go)
    opened = offer.open(trio.current_time(), sharer_id=host.peer_id_bytes, receiver_id=stream.remote_peer_id_bytes)
    if isinstance(opened, Refusal):
        emit(ShortCodeRefused(peer, opened))
        await _send_quietly(stream, ShortCodeMsg(MsgType.REFUSED, reason=opened))
        return
    try:
        reply = opened.on_hello(hello)
        with trio.fail_after(STEP_TIMEOUT):
            await stream.write(encode(reply))
            confirm = await read_message(stream.read)
        opened.on_confirm(confirm)
    except (WireError, EOFError, StreamError, trio.TooSlowError) as exc:
        log.debug("short code: attempt from %s ended: %s", peer, exc)
    finally:
        emit(ShortCodeClaimed(peer) if opened.succeeded else ShortCodeFailed(peer, offer.tries_left))
    await stream.close_write() if opened.succeeded else await stream.reset()


async def _send_quietly(stream: LibP2PByteStream, msg: ShortCodeMsg) -> None:
    try:
        with trio.move_on_after(STEP_TIMEOUT):
            await stream.write(encode(msg))
            await stream.close_write()
    except StreamError:
        await stream.reset()


async def expire_offer(
    offer: Offer, discovery: Discovery, keys: Sequence[bytes], emit: Callable[[ShortCodeEvent], None]
) -> None:
    """At expiry, stop advertising the number's keys (``Node`` advertised them).

    The handler stays: a receiver who still finds an old provider record
    (Kademlia has no delete) is told the code expired, not left waiting.
    """
    await trio.sleep_until(offer.expires_at)
    for key in keys:
        discovery.withdraw(key)
    emit(ShortCodeExpired())


async def claim_short_code(
    host: Host,
    reacher: Reacher,
    discovery: Discovery,
    code: ShortCode,
    *,
    timeout: float,
    on_retry: Callable[[RoundEnd, float], None] | None = None,
) -> sharecode.ShareCode:
    """Find the sharers of ``code``'s number and run the PAKE with each until
    one opens; return the full code it sealed.

    Candidates are dialled in parallel (a dial costs nobody a try); the
    PAKE starts with one, and with the next when that one ended or after
    ``PAKE_STAGGER`` of silence, stopping at the first success: a colliding
    sharer loses at most one try to this receiver, and a silent fake costs
    it a second, not ``STEP_TIMEOUT``.

    A round that found sharers it could not dial, or whose lookup failed on
    its way, is followed by another until the deadline (``search.next_round``
    decides; ``on_retry`` hears why and the seconds left): a sharer restarting
    comes back with the same code on a new port.

    ``timeout`` is one deadline for all of it, from the call: joining the
    DHT, the lookups, the dials and the PAKE share it, so a user's
    ``--timeout 30`` gives up after 30 s, not after 30 s per phase.
    """
    deadline = trio.current_time() + timeout
    if not await discovery.wait_bootstrapped(min(10.0, timeout)):
        raise PeerUnreachableError("short codes need the DHT, and no bootstrap node answered; use the long code")
    rounds = 0
    while True:
        rounds += 1
        now = time.time()
        found, unusable, stats = await _look_up(discovery, reacher, window_keys(code.number, now, now), deadline)
        if found:
            result = await _claim_from(host, reacher, code, found, deadline, timeout)
            if isinstance(result, sharecode.ShareCode):
                return result
            end, failure = RoundEnd.UNREACHABLE, result
        elif unusable:
            raise PeerUnreachableError(
                f"found a sharer of short code {code.redacted} in the DHT, but only at loopback or link-local "
                "addresses, which only its own machine (or link) can dial; if it runs on this one, use its long code"
            )
        else:
            end = RoundEnd.LOOKUP_FAILED if worth_another_look(stats) else RoundEnd.NOT_FOUND
            failure = PeerUnreachableError(
                f"no sharer of short code {code.redacted} found in the DHT; check the number, "
                "and that the sharer still runs (short codes expire)"
            )
        pause = next_round(end, rounds, trio.current_time(), deadline)
        if pause is None:
            raise failure
        log.debug("short code: round %d ended (%s); again in %.1f s", rounds, end.value, pause)
        if on_retry is not None:
            on_retry(end, max(0.0, deadline - trio.current_time()))
        await trio.sleep(pause)


async def _look_up(
    discovery: Discovery, reacher: Reacher, keys: Sequence[bytes], deadline: float
) -> tuple[dict[str, list[str]], set[str], list[LookupStats]]:
    """The providers of ``keys`` (the number's current windows), by peer:
    their dialable addresses; the peers found only at addresses that name
    this machine or link; and each lookup's statistics."""
    found: dict[str, list[str]] = {}
    unusable: set[str] = set()
    stats: list[LookupStats] = []
    with trio.move_on_at(deadline):
        async with trio.open_nursery() as nursery:
            for key in keys:

                async def lookup(key: bytes = key) -> None:
                    left = max(0.0, deadline - trio.current_time())
                    infos, how = await discovery.lookup_providers(key, timeout=left, limit=LOOKUP_LIMIT)
                    if how is not None:
                        stats.append(how)
                    for info in infos:
                        addrs = reacher.from_network(info.addrs)
                        if addrs:
                            known = found.setdefault(info.peer_id, [])
                            known.extend(a for a in addrs if a not in known)
                        elif info.addrs:
                            unusable.add(info.peer_id)

                nursery.start_soon(lookup)
    return found, unusable - found.keys(), stats


async def _claim_from(
    host: Host,
    reacher: Reacher,
    code: ShortCode,
    found: dict[str, list[str]],
    deadline: float,
    timeout: float,
) -> sharecode.ShareCode | PeerUnreachableError:
    """Dial ``found`` and run the PAKE with those that answer; the full
    code, or (when none could be dialled) the error to give if no later
    round does better. A PAKE that ran and failed raises: it cost the
    sharer a try, and is not repeated."""
    wrong: list[str] = []
    refused: list[CodeRefusedError] = []
    errors: list[str] = []
    reached = 0
    result: sharecode.ShareCode | None = None
    send, receive = trio.open_memory_channel[str](len(found))
    with trio.move_on_at(deadline):
        async with trio.open_nursery() as nursery:

            async def dial(peer_id: str, addrs: list[str]) -> None:
                circuits = [a for a in addrs if sharecode.multiaddrs.is_circuit(a)]
                direct = [a for a in addrs if a not in circuits]
                try:
                    left = max(0.0, deadline - trio.current_time())
                    await reacher.connect_any(peer_id, direct, circuits, timeout=left)
                except PeerUnreachableError as exc:
                    errors.append(str(exc))
                    return
                await send.send(peer_id)

            async def dial_all() -> None:
                async with send, trio.open_nursery() as dials:
                    for peer_id, addrs in found.items():
                        dials.start_soon(dial, peer_id, addrs)

            async def run_pake(peer_id: str, ended: trio.Event) -> None:
                nonlocal result
                try:
                    found_code = await _attempt(host, code, peer_id)
                except WrongWordsError:
                    wrong.append(peer_id)
                except CodeRefusedError as exc:
                    refused.append(exc)
                except (WireError, EOFError, StreamError, trio.TooSlowError) as exc:
                    errors.append(f"{peer_id[-8:]}: {exc}")
                else:
                    if result is None:
                        result = found_code
                    nursery.cancel_scope.cancel()
                finally:
                    ended.set()

            nursery.start_soon(dial_all)
            async with receive:
                async for peer_id in receive:
                    # The next candidate's PAKE starts when this one ended, or
                    # after PAKE_STAGGER if it is still silent: a fake provider
                    # that reads HELLO and never answers held each receiver for
                    # STEP_TIMEOUT (10 s) per fake, one after the other (a
                    # hostile-peer review, stop 43).
                    reached += 1
                    ended = trio.Event()
                    nursery.start_soon(run_pake, peer_id, ended)
                    with trio.move_on_after(PAKE_STAGGER):
                        await ended.wait()
    if result is not None:
        return result
    if wrong:
        raise WrongWordsError(
            f"the words of short code {code.redacted} do not match (tried {format_count(len(wrong), 'sharer')} with this number); "
            "check the words"
        )
    if refused:
        raise refused[0]
    detail = "; ".join(errors[-3:]) or f"no answer within {timeout:.0f}s"
    failure = PeerUnreachableError(f"found a sharer of short code {code.redacted} but could not reach it: {detail}")
    if reached:
        raise failure
    return failure


async def _attempt(host: Host, code: ShortCode, peer_id: str) -> sharecode.ShareCode:
    with trio.fail_after(STEP_TIMEOUT):  # a silent candidate must not hold up the next
        stream = await host.open_stream(peer_id, PROTOCOL_ID)
    try:
        session = ReceiverSession(code, receiver_id=host.peer_id_bytes, sharer_id=stream.remote_peer_id_bytes)
        with trio.fail_after(STEP_TIMEOUT):
            await stream.write(encode(session.hello()))
            reply = await read_message(stream.read)
        share = session.on_reply(reply, sharer_peer_id=stream.remote_peer_id)
        with trio.fail_after(STEP_TIMEOUT):
            await stream.write(encode(session.confirm()))
            await stream.close_write()
        return share
    except BaseException:
        await stream.reset()
        raise


async def advertise_short_code(
    discovery: Discovery, keys: list[bytes], on_event: Callable[[ShortCodeEvent], None], until: float
) -> None:
    """Provider records for every window of the code's life, the current
    window first (kept fresh by discovery until ``expire_offer`` withdraws
    them); one at a time, as the long code's record goes out.

    None is started at or after ``until`` (the offer's expiry, trio's
    clock): ``expire_offer`` has withdrawn the keys then, and a key
    advertised after its withdrawal would be re-advertised for ever. Before
    ``until``, ``expire_offer`` has not run, so it withdraws every key
    started here (the check and ``advertise``'s recording of the key happen
    with no checkpoint between them)."""
    await discovery.wait_bootstrapped(30)
    for i, key in enumerate(keys):
        if trio.current_time() >= until:
            return
        try:
            stored = await discovery.advertise(key)
        except Exception as exc:  # noqa: BLE001 - best effort, as for the long code's record
            log.warning("could not advertise the short code in the DHT: %s", exc)
            stored = 0
        if i == 0:
            on_event(ShortCodeAdvertised(keys=len(keys), peers=stored))
