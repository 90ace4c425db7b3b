"""Correctness and robustness fixes to py-libp2p 0.8.1 internals.

Replacement functions only; they are registered, fingerprinted and applied
with the speed patches in ``_libp2p_patches.PATCHES`` (one registry, one
``apply``), and tested in ``tests/node/test_libp2p_patches.py``.

* ``Swarm._do_handle_inbound_connection`` (issue 9, finding 1): upstream
  keeps each inbound connection's handler -- and with it one slot of the
  swarm's inbound ``CapacityLimiter`` -- alive until the *swarm* stops
  (``await self.manager.wait_finished()``), not until the connection
  closes. After ``max_connections`` inbound connections in a process's
  lifetime, closed or not, every new one is refused: a relay or a
  long-lived node wedged for good within minutes of ordinary traffic.
  Ours waits until the connection itself is closed (or the swarm stops).
* ``KadDHT._do_handle_stream`` (issue 10): upstream answers ADD_PROVIDER
  with an echo. The Kademlia spec defines no answer; go-libp2p-kad-dht
  sends ADD_PROVIDER one-way and reuses the stream, so after one provide
  every later answer reached go one request late. The handler now sees the
  stream through :class:`_NoAddProviderEcho`, which drops that one answer.
* ``ProviderStore.add_provider`` (issue 9, finding 4): upstream stored
  every address of an ADD_PROVIDER (one message held 419,410: +47 MB) and
  any number of keys. Ours keeps at most ``PROVIDER_ADDRS`` addresses per
  record, ``PROVIDER_KEYS_PER_PEER`` keys per provider and
  ``PROVIDER_RECORDS`` records in all; when full, new records are ignored
  (the sender is not told: ADD_PROVIDER has no answer).
* ``PeerStore._enforce_peer_limit`` (issue 9, the soak): past ``max_peers``
  (1000) entries upstream evicts entries without addresses first, then the
  oldest, and our own entry is both: it holds only our keys (and, from the
  DHT, addresses inserted first). Then ``host.get_public_key()`` raised in
  the next identify handler and the exception ended the process: the
  15-minute soak's relay exited 1 ("PeerStoreError: 'peer ID not found'")
  after ~4,000 peers. Ours never evicts an entry holding a private key:
  that is this host.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import trio
from libp2p.network.connection.raw_connection import RawConnection

from ._trio_race import first_of

logger = logging.getLogger(__name__)

__all__ = ["inbound_until_closed", "kad_stream_no_echo", "bounded_add_provider", "peer_limit_keeps_self"]

#: Addresses kept per provider record (go keeps what the peerstore holds; 8 dialable addresses suffice).
PROVIDER_ADDRS = 8
#: Keys one provider may be recorded under in our store.
PROVIDER_KEYS_PER_PEER = 256
#: Provider records in all: with PROVIDER_ADDRS each, a few tens of MB at most.
PROVIDER_RECORDS = 20_000
_KAD_ADD_PROVIDER = 2  # Message.MessageType.ADD_PROVIDER


async def _wait_closed(muxed: Any, swarm: Any) -> None:
    """Until ``muxed`` shuts down or closes, or the swarm stops; whichever is first."""
    waits = [getattr(muxed, name, None) for name in ("event_closed", "event_shutting_down")]
    events = [e for e in waits if isinstance(e, trio.Event)]
    if not events:  # not yamux: keep upstream's barrier
        await swarm.manager.wait_finished()
        return
    await first_of(*(e.wait for e in events), swarm.manager.wait_finished)


async def inbound_until_closed(self: Any, read_write_closer: Any, maddr: Any, failure_event: Any) -> None:
    """``Swarm._do_handle_inbound_connection`` that gives the slot back on close.

    Same steps as upstream for TCP (connection gate, secure + mux upgrade,
    failure metrics); the pre-multiplexed branch (QUIC, WebTransport) is not
    loaded by p2pshare (the lean import stubs QUIC out).
    """
    remote_maddr = self._build_remote_multiaddr(read_write_closer)
    if remote_maddr is not None and not await self.connection_gate.is_allowed(remote_maddr):
        with contextlib.suppress(Exception):
            await read_write_closer.close()
            failure_event.conn_incoming_error = True
            if self.metric_send_channel is not None:
                await self.metric_send_channel.send(failure_event)
        return
    raw_conn = RawConnection(read_write_closer, False)
    try:
        muxed = await self.upgrade_inbound_raw_conn(raw_conn, maddr)
    except Exception as exc:  # noqa: BLE001 - a stranger's failed handshake is routine
        logger.debug("inbound connection from %s failed: %s", remote_maddr, exc)
        with contextlib.suppress(Exception):
            await raw_conn.close()
        return
    # The barrier upstream keeps (trio's serve_listeners closes the socket
    # when this handler returns), but only while the connection lives.
    await _wait_closed(muxed, self)


def _is_lone_varint(data: bytes | bytearray | memoryview) -> bool:
    """A complete unsigned varint and nothing else (how the handler writes a length prefix)."""
    raw = bytes(data)
    return 0 < len(raw) <= 10 and all(b & 0x80 for b in raw[:-1]) and not raw[-1] & 0x80


def _is_add_provider(data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data`` is a Kademlia message of type ADD_PROVIDER (field 1, varint)."""
    raw = bytes(data)
    if len(raw) < 2 or raw[0] != 0x08:  # field 1, wire type 0 comes first in protobuf's canonical order
        return False
    return raw[1] == _KAD_ADD_PROVIDER


class _NoAddProviderEcho:
    """The KAD stream as py-libp2p's handler sees it, minus its ADD_PROVIDER answers.

    The handler writes each answer as a varint length, then the message: the
    length is held until the message shows what it is; an ADD_PROVIDER
    answer is dropped with its length, anything else goes out as written.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._held: bytes | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    async def write(self, data: bytes) -> None:
        held, self._held = self._held, None
        if held is None:
            if _is_lone_varint(data):
                self._held = bytes(data)
                return
            await self._stream.write(data)
            return
        if _is_add_provider(data):
            return
        await self._stream.write(held + bytes(data))


async def kad_stream_no_echo(self: Any, stream: Any) -> None:
    """``KadDHT._do_handle_stream`` over a stream that sends no ADD_PROVIDER answer."""
    from ._libp2p_speed import _ORIGINALS

    await _ORIGINALS["kad_no_add_provider_answer"](self, _NoAddProviderEcho(stream))


def bounded_add_provider(self: Any, key: bytes, provider: Any) -> None:
    """``ProviderStore.add_provider`` with bounds on addresses, keys per provider and records."""
    from libp2p.peer.peerinfo import PeerInfo

    from ._libp2p_speed import _ORIGINALS

    if not provider or not provider.peer_id:
        return
    peer = str(provider.peer_id)
    records = self.providers
    known = key in records and peer in records[key]
    if not known:
        total = sum(len(v) for v in records.values())
        if total >= PROVIDER_RECORDS:
            logger.debug("provider store full (%d records): ignoring %s", total, peer)
            return
        mine = sum(1 for v in records.values() if peer in v)
        if mine >= PROVIDER_KEYS_PER_PEER:
            logger.debug("provider %s already holds %d keys: ignoring another", peer, mine)
            return
    trimmed = PeerInfo(provider.peer_id, list(provider.addrs)[:PROVIDER_ADDRS])
    _ORIGINALS["kad_provider_bounds"](self, key, trimmed)


def peer_limit_keeps_self(self: Any) -> None:
    """``PeerStore._enforce_peer_limit`` that never evicts our own entry.

    Same order as upstream (entries without addresses, then expired ones,
    then the oldest), over every entry except those holding a private key:
    only the host's own entry has one, and without it the host cannot sign
    or answer identify.
    """
    if len(self.peer_data_map) <= self.max_peers:
        return
    to_evict = len(self.peer_data_map) - self.max_peers

    def evict_priority(item: tuple[Any, Any]) -> tuple[bool, bool]:
        _, data = item
        return (not data.get_addrs(), data.is_expired())

    others = [item for item in self.peer_data_map.items() if getattr(item[1], "privkey", None) is None]
    for peer_id, _ in sorted(others, key=evict_priority, reverse=True)[:to_evict]:
        self.peer_record_map.pop(peer_id, None)
        del self.peer_data_map[peer_id]
