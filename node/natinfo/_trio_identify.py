"""Learn our public TCP mapping from a relay's identify, when it has no STUN.

Only ``p2pshare relay`` runs our STUN-over-TCP responder; public go/js relays
do not. Every libp2p peer does answer identify, whose ``observedAddr`` is how
it sees our connection. If the observed port equals the local port of that
connection, the NAT preserves ports, and our listen port's public mapping is
the observed IP with the listen port: what DCUtR must announce. If the ports
differ (a symmetric NAT), nothing can be predicted and nothing is announced.
Whom to ask and what the answers mean is decided in :mod:`.observed`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import multiaddr
import trio

from p2pshare.node.host import Host, HostError
from p2pshare.node.natinfo.observed import ASK, QUORUM, Sighting, predict_mapping
from p2pshare.node.pbwire import PbError, iter_fields, try_unframe
from p2pshare.sharecode.multiaddrs import split_first_peer

__all__ = ["observe_via_identify", "observe_from", "observed_addr_field", "predict_mapping"]

log = logging.getLogger(__name__)

IDENTIFY_PROTOCOL = "/ipfs/id/1.0.0"
_MAX_IDENTIFY = 64 * 1024  # identify messages are small; bound what a peer can make us buffer
_TRIES = 4  # js allows one identify stream per direction at a time; py-libp2p runs its own on connect
_RETRY_DELAY = 0.3
_OBSERVED_ADDR_FIELD = 4  # Identify.observedAddr (bytes)


def observed_addr_field(message: bytes) -> bytes | None:
    """Field 4 (observedAddr) of an Identify protobuf; None if absent or malformed."""
    try:
        for number, _wire, value in iter_fields(message):
            if number == _OBSERVED_ADDR_FIELD and isinstance(value, bytes):
                return value
    except PbError:
        return None
    return None


async def _identify_once(host: Host, peer_id: str) -> tuple[bytes | None, int | None]:
    """(observedAddr, local port of the connection that carried it).

    Both must come from the same connection: at start-up the relay client,
    the DHT bootstrap and this probe dial the relay at once and py-libp2p
    keeps every connection, so the peer may see us on several mappings. The
    swarm puts this stream on whichever it likes best; comparing its
    observedAddr with another connection's local port made a cone NAT look
    port-changing (lab: 1 run in 3 announced no public address and never
    punched)."""
    stream = await host.open_stream(peer_id, IDENTIFY_PROTOCOL)
    local = stream.connection.local_port()
    try:
        buf = b""
        while len(buf) < _MAX_IDENTIFY:
            part = await stream.read(_MAX_IDENTIFY - len(buf))
            if not part:
                break
            buf += part
            try:
                got = try_unframe(buf, _MAX_IDENTIFY)
            except PbError:
                return None, local
            if got is not None:
                return observed_addr_field(got[0]), local
        return None, local
    finally:
        await stream.reset()


async def observe_via_identify(host: Host, relay_addr: str, timeout: float = 5.0) -> tuple[str, int, int] | None:
    """(observed IP, observed port, our local port) of one connection to a relay."""
    split = split_first_peer(relay_addr)
    if split is None:
        return None
    base, peer_id = split
    with trio.move_on_after(timeout):
        try:
            await host.connect(peer_id, [base], timeout=timeout)
        except (OSError, ConnectionError, ValueError, HostError) as exc:  # unreachable or malformed: no answer
            log.debug("identify: cannot reach %s: %s", peer_id, exc)
            return None
        for attempt in range(_TRIES):
            try:
                raw, local = await _identify_once(host, peer_id)
            except (OSError, ConnectionError) as exc:
                log.debug("identify of %s failed (try %d): %s", peer_id, attempt + 1, exc)
                await trio.sleep(_RETRY_DELAY)
                continue
            if raw is None or local is None:
                return None  # no observation, or not over a direct TCP connection
            try:
                obs = multiaddr.Multiaddr(raw)
                return str(obs.value_for_protocol("ip4")), int(obs.value_for_protocol("tcp")), local
            except Exception:  # noqa: BLE001 - an IPv6/circuit/garbled observation: nothing to learn
                return None
    return None


async def observe_from(
    host: Host, sources: Sequence[str], *, ask: int = ASK, quorum: int = QUORUM, timeout: float = 5.0
) -> list[Sighting]:
    """Ask ``sources`` in order, ``ask`` at a time (one that gives no answer
    makes room for the next); return once ``quorum`` answered, or all were
    asked and ended (each is bounded by ``timeout``)."""
    queue = list(sources)
    need = min(quorum, len(queue))
    out: list[Sighting] = []
    if not queue:
        return out
    async with trio.open_nursery() as nursery:

        async def one(addr: str) -> None:
            seen = await observe_via_identify(host, addr, timeout)
            if seen is None:
                if queue:
                    nursery.start_soon(one, queue.pop(0))
                return
            out.append(Sighting(*seen))
            if len(out) >= need:
                nursery.cancel_scope.cancel()

        for _ in range(min(ask, len(queue))):
            nursery.start_soon(one, queue.pop(0))
    return out
