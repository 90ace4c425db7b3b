"""Correctness and robustness fixes to py-libp2p 0.8.1 internals.

Replacement functions only; they are registered, fingerprinted and applied
with the speed patches in ``_libp2p_patches.PATCHES`` (one registry, one
``apply``), and tested in ``tests/node/test_libp2p_patches.py`` and
``tests/node/test_libp2p_kad_bounds.py``.

* ``Swarm._do_handle_inbound_connection`` (issue 9, finding 1): upstream
  keeps each inbound connection's handler -- and with it one slot of the
  swarm's inbound ``CapacityLimiter`` -- alive until the *swarm* stops
  (``await self.manager.wait_finished()``), not until the connection
  closes. After ``max_connections`` inbound connections in a process's
  lifetime, closed or not, every new one is refused: a relay or a
  long-lived node wedged for good within minutes of ordinary traffic.
  Ours waits until the connection itself is closed (or the swarm stops),
  counts it in the resource manager (``node/rcmgr``: transient while its
  handshake runs, then its peer's) and gives a handshake HANDSHAKE_TIMEOUT.
  It also says nothing until the dialer has spoken (``_dialer_speaks_first``),
  which is how a hole punch that reached a listener knows it did.
* ``KadDHT._do_handle_stream`` (issues 10 and 9): upstream answers
  ADD_PROVIDER with an echo. The Kademlia spec defines no answer;
  go-libp2p-kad-dht sends ADD_PROVIDER one-way and reuses the stream, so
  after one provide every later answer reached go one request late. The
  handler now sees the stream through :class:`_GuardedKadStream`, which
  drops that one answer. Upstream also serves at most 12 KAD streams at once
  (the 13th is reset) but lets each wait for its next request forever and
  take a 4 MiB request: one peer holding 12 idle streams stopped the DHT
  server for everyone (tested: still refused 20 s later), and each of 12
  requests of 4 MiB of addresses is parsed into Python objects before any
  bound applies (finding 4: 419,410 addresses, +47 MB). Ours
  (``kad_handle_stream``) drops that limiter: which streams are served is
  ``node.rcmgr.kad_streams``'s decision (per peer, per address group, in
  all, and a full table ends a waiting stream for a newcomer; 12 idle
  streams from 3 identities shut the server for everyone, stop 43), and it
  resets a stream that brings no
  whole request within ``KAD_STREAM_IDLE`` s of its opening or of our last
  answer (go-libp2p-kad-dht resets after 1 min idle), and refuses a request
  over ``KAD_REQUEST_BYTES`` at its length prefix, before its body. Each is
  an error, and "on any error, the stream is reset" (kad-dht spec, RPC
  messages); clients open a new stream.
* ``YamuxStream.reset`` (issue 9): upstream keeps a stream's unread data,
  and the stream's entry, for 60 s after we reset it, in case someone reads
  it; after our own reset nobody does. A DHT server resets every stream of
  a rate-limited or refused request, each with up to a receive window of
  pipelined requests in it: under a flood that was the bulk of its growth.
  Ours drops the data when it resets.
* ``kad_dht.maybe_consume_signed_record`` (issue 9): py-libp2p's KAD
  handler puts the signed peer record of every request (``senderRecord``)
  and of every provider (``signedRecord``) into the peerstore, all its
  addresses, deduplicated one by one in O(n^2): one record of 20,000
  addresses held the event loop for 12 s, and the peerstore keeps them 2 h
  and sends them in every answer that names that peer. Records over
  ``SIGNED_RECORD_BYTES`` or ``SIGNED_RECORD_ADDRS`` addresses are not
  stored and the request is served as if it carried none: the field is
  py-libp2p's own (the spec and go/js have no such field), so ignoring it is
  what every other implementation does.
* ``ProviderStore.add_provider`` (issue 9, finding 4): upstream stored
  every address of an ADD_PROVIDER (one message held 419,410: +47 MB) and
  any number of keys. Ours (bounds and store in ``_libp2p_provider_table``)
  keeps at most ``PROVIDER_ADDRS`` addresses of at
  most ``PROVIDER_ADDR_BYTES`` each per record, ``PROVIDER_KEYS_PER_PEER``
  keys per provider, ``PROVIDER_RECORDS`` records and ``PROVIDER_BYTES`` of
  keys and addresses in all: **at most 40 MB of provider records**
  (``PROVIDER_MEMORY_MB``; 38 MB measured for the worst case of both
  bounds). The store is a :class:`ProviderTable` that keeps these totals as
  records come and go -- py-libp2p expires records itself, with ``del``, in
  ``get_providers`` and ``cleanup_expired`` -- so admission is O(1): the
  first version counted by scanning the store on every new record (12 s of
  event loop to fill 20,000 records, ~1 ms per record at the end; 0.2 s now).

  When full: the Kademlia spec sets no capacity, and ADD_PROVIDER has no
  answer to refuse with, so a record that does not fit is dropped and the
  stream goes on (rust-libp2p's memory store likewise keeps its records and
  ignores new providers when full). A provider refreshing a record it holds
  keeps it, without addresses when the new ones do not fit: the spec lets a
  node store no addresses at all, only the provider's peer ID. Our own
  records are never refused. Under ``scripts/dht_flood.py`` (60 s, 200
  identities, 16 at once) the whole server's peak RSS went from 73 to 93 MB.

* ``PeerStore._enforce_peer_limit`` (issue 9, the soak): past ``max_peers``
  (1000) entries upstream evicts entries without addresses first, then the
  oldest, and our own entry is both: it holds only our keys (and, from the
  DHT, addresses inserted first). Then ``host.get_public_key()`` raised in
  the next identify handler and the exception ended the process: the
  15-minute soak's relay exited 1 ("PeerStoreError: 'peer ID not found'")
  after ~4,000 peers. Ours never evicts an entry holding a private key:
  that is this host.

The rest of what the DHT server keeps for a peer's input (issue 9):

* PUT_VALUE: no record namespace is registered (``_libp2p_impl.new_kad_dht``),
  so every PUT_VALUE fails validation and its stream is reset -- the spec's
  answer to a record that is not stored (no echo), as rust-libp2p does when
  its store refuses one. The value store stays empty
  (tests/discovery/test_inprocess.py); upstream's own bound would have been
  50,000 values of up to 1 MB, each eviction a scan of all of them.
* ``BasicHost.get_addrs`` (issue 10): upstream strips every address from
  its first ``/p2p/`` and appends ours, so a relay reservation's
  ``/ip4/R/tcp/P/p2p/<relay>/p2p-circuit`` went out in identify and in our
  signed peer record as ``/ip4/R/tcp/P/p2p/<us>``: the relay's own address
  under our ID. Peers dialled the relay for us and failed Noise
  ("PeerIDMismatchesPubkey", logged as ``failed to upgrade security``).
  Ours keeps circuit addresses whole and appends ``/p2p/<us>`` after
  ``/p2p-circuit``.
* The routing table: k-buckets of 20, at most 256, servers only
  (``_libp2p_patches.kad_servers_only``).
* Streams: 12 served at once (upstream), 4 per peer, a request of at most
  64 KiB, 10 s idle (above), a 256 KiB receive window (``_libp2p_speed`` P7).
* py-libp2p's ADD_PROVIDER rate limit (10 per peer per 10 s) keeps one
  entry per peer seen in the last 10 s, pruned once past 200.

``MultiselectCommunicator.read`` (issue 10, found with lazy multistream):
upstream decodes a protocol name as UTF-8 and lets ``UnicodeDecodeError``
escape the listener's negotiation, which catches only multistream errors:
the exception ended the connection's stream-handling task and, through
py-libp2p's nurseries, the host. One stream from any peer with a protocol
name that is not UTF-8 (or a lazy dialer's request bytes read as the next
proposal after an "na") stopped a node. Ours makes it the multistream error
it is: that stream is refused, nothing else happens.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import trio
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.protocol_muxer.exceptions import MultiselectCommunicatorError

from . import _libp2p_provider_table as _table
from ._libp2p_identify import record_addrs
from ._libp2p_kad_streams import KAD_SOURCE
from ._libp2p_originals import ORIGINALS as _ORIGINALS
from ._libp2p_rcmgr import manager_of
from ._trio_race import first_of
from .rcmgr import ResourceLimitExceeded

logger = logging.getLogger(__name__)

__all__ = [
    "inbound_until_closed",
    "bounded_add_provider",
    "bounded_signed_record",
    "reset_dropping_buffer",
    "peer_limit_keeps_self",
]

#: Seconds an inbound connection's Noise + yamux handshake may take.
HANDSHAKE_TIMEOUT = 15.0

#: Signed peer records (a request's senderRecord, a provider's signedRecord) over this size are not stored.
SIGNED_RECORD_BYTES = 4096
#: Nor those with more addresses than this (go-libp2p's AutoNAT and our discovery keep 16 per peer).
SIGNED_RECORD_ADDRS = 16


async def _wait_closed(muxed: Any, swarm: Any) -> None:
    """Until ``muxed`` shuts down or closes, or the swarm stops; whichever is first."""
    waits = [getattr(muxed, name, None) for name in ("event_closed", "event_shutting_down")]
    events = [e for e in waits if isinstance(e, trio.Event)]
    if not events:  # not yamux: keep upstream's barrier
        await swarm.manager.wait_finished()
        return
    await first_of(*(e.wait for e in events), swarm.manager.wait_finished)


def _ip_of(maddr: Any) -> str | None:
    for proto in ("ip4", "ip6"):
        try:
            return str(maddr.value_for_protocol(proto))
        except Exception:  # noqa: BLE001, S112 - not this family, or no address
            continue
    return None


async def _dialer_speaks_first(read_write_closer: Any) -> None:
    """Say nothing on an accepted connection until the dialer has spoken.

    Upstream's listener sends its multistream header as soon as it accepts.
    Every dialer (py, go, js, rust) sends its own header first without
    waiting for ours, and our accept comes after its connect completed, so
    waiting costs no round trip. It matters for a hole punch whose SYN
    lands on the peer's listener instead of crossing the peer's SYN: the
    punching side, in the spec's server role, hears the peer's first bytes
    to tell a simultaneous open (the peer speaks as the Noise client) from
    a listener (silent: then it takes the client role itself). A listener
    that spoke first made both ends servers, and the round died after the
    handshake timeout (the loopback DCUtR test, about 1 run in 6 under load).
    """
    stream = getattr(read_write_closer, "stream", None)
    sock = getattr(stream, "socket", None)
    if sock is not None:
        await trio.lowlevel.wait_readable(sock)


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
    manager = manager_of(self)
    try:
        scope = manager.open_connection(_ip_of(remote_maddr)) if manager is not None else None
    except ResourceLimitExceeded as exc:
        logger.debug("refusing a connection from %s: %s", remote_maddr, exc)
        with contextlib.suppress(Exception):
            await read_write_closer.close()
        return
    try:
        raw_conn = RawConnection(read_write_closer, False)
        muxed = None
        # A stranger that starts a handshake and stalls holds a transient
        # slot: only for HANDSHAKE_TIMEOUT.
        with trio.move_on_after(HANDSHAKE_TIMEOUT):
            try:
                await _dialer_speaks_first(read_write_closer)
                muxed = await self.upgrade_inbound_raw_conn(raw_conn, maddr)
            except Exception as exc:  # noqa: BLE001 - a stranger's failed handshake is routine
                logger.debug("inbound connection from %s failed: %s", remote_maddr, exc)
        if muxed is None:
            with contextlib.suppress(Exception), trio.CancelScope(shield=True):
                await raw_conn.close()
            return
        if scope is not None:
            try:
                scope.set_peer(str(muxed.peer_id))
            except ResourceLimitExceeded as exc:
                logger.debug("refusing a connection from %s: %s", muxed.peer_id, exc)
                with contextlib.suppress(Exception), trio.CancelScope(shield=True):
                    await muxed.close()
                return
        # The barrier upstream keeps (trio's serve_listeners closes the socket
        # when this handler returns), but only while the connection lives.
        await _wait_closed(muxed, self)
    finally:
        if scope is not None:
            scope.close()


async def reset_dropping_buffer(self: Any) -> None:
    """``YamuxStream.reset`` that also drops what the peer sent and we had not read.

    Upstream keeps a reset stream's unread data (and the stream's entry) for
    60 s in case it is read; after our own reset it never is.
    """
    await _ORIGINALS["yamux_reset_drops_buffer"](self)
    conn = self.conn
    async with conn.streams_lock:
        buffer = conn.stream_buffers.get(self.stream_id)
        if buffer and conn.streams.get(self.stream_id) is self:
            buffer.clear()
            conn._finalize_stream_locked(self, fully_closed=True)


# -- signed peer records in KAD requests ------------------------------------------


def bounded_signed_record(msg: Any, host: Any, peer_id: Any = None) -> bool:
    """``maybe_consume_signed_record`` as the KAD handler calls it, for records of bounded size.

    A record over ``SIGNED_RECORD_BYTES`` or with more than
    ``SIGNED_RECORD_ADDRS`` addresses is not stored and the request is
    served as if it carried none (``True``): go and js send no such field.
    """
    name = "senderRecord" if "senderRecord" in msg.DESCRIPTOR.fields_by_name else "signedRecord"
    if msg.HasField(name):
        raw = bytes(getattr(msg, name))
        addrs = record_addrs(raw)
        if len(raw) > SIGNED_RECORD_BYTES or (addrs is not None and addrs > SIGNED_RECORD_ADDRS):
            logger.debug("kad: signed peer record of %d bytes, %s addresses: not stored", len(raw), addrs)
            return True
    return bool(_ORIGINALS["kad_signed_record_bounds"](msg, host, peer_id))


# -- provider records -------------------------------------------------------------


def bounded_add_provider(self: Any, key: bytes, provider: Any) -> None:
    """``ProviderStore.add_provider`` within the provider-record bounds (O(1) per call).

    A new record that does not fit is ignored (ADD_PROVIDER has no answer to
    tell the sender); a provider refreshing a record it holds is kept, without
    addresses if its new ones do not fit (the spec lets a node store no
    addresses). Our own records are never refused. Per key, one source holds
    a few records at most and a full key makes room for a newcomer
    (``_KeyRecords.room_for``).
    """
    from libp2p.peer.peerinfo import PeerInfo

    if not provider or not provider.peer_id:
        return
    table = _table.provider_table(self)
    peer = str(provider.peer_id)
    addrs = _table.kept_addrs(provider.addrs)
    size = len(key) + sum(len(a.to_bytes()) for a in addrs)
    source = KAD_SOURCE.get()
    current = table.get(key)
    if current is not None and peer in current:
        if table.bytes - current.size_of(peer) + size > _table.PROVIDER_BYTES:
            addrs = []
    elif provider.peer_id != self.local_peer_id:
        why = table.refusal(peer, size)
        if why is None and current is not None:
            room, victim = current.room_for(source, keep=str(self.local_peer_id))
            if not room:
                why = f"its source already holds {_table.PROVIDERS_PER_SOURCE} records of this key"
            elif victim is not None:
                logger.debug("provider record of %s ends to make room for %s", victim, peer)
                del current[victim]
        if why is not None:
            logger.debug("provider record of %s not stored: %s", peer, why)
            return
    _ORIGINALS["kad_provider_bounds"](self, key, PeerInfo(provider.peer_id, addrs))
    stored = table.get(key)
    if stored is not None:
        stored.note_source(peer, source)


def peer_limit_keeps_self(self: Any) -> None:
    """``PeerStore._enforce_peer_limit`` that never evicts our own entry, and
    evicts the peers we are connected to last.

    Same order as upstream (entries without addresses, then expired ones,
    then the oldest), over every entry except those holding a private key:
    only the host's own entry has one, and without it the host cannot sign
    or answer identify. Upstream's order ignores connections: on a node
    that met ~1,000 other peers, its relay's entry (among the oldest) went
    while connected, and with it the addresses and protocols AutoRelay,
    DCUtR and the DHT read (a long-uptime review, stop 43).
    """
    if len(self.peer_data_map) <= self.max_peers:
        return
    to_evict = len(self.peer_data_map) - self.max_peers
    connections = getattr(self, "_p2ps_connections", {})

    def evict_priority(item: tuple[Any, Any]) -> tuple[bool, bool, bool]:
        peer_id, data = item
        return (not connections.get(peer_id), not data.get_addrs(), data.is_expired())

    others = [item for item in self.peer_data_map.items() if getattr(item[1], "privkey", None) is None]
    for peer_id, _ in sorted(others, key=evict_priority, reverse=True)[:to_evict]:
        self.peer_record_map.pop(peer_id, None)
        del self.peer_data_map[peer_id]


async def mss_read_text(self: Any) -> str:
    """``MultiselectCommunicator.read`` whose bad UTF-8 is a multistream error."""
    try:
        return await _ORIGINALS["mss_read_text"](self)  # type: ignore[no-any-return]
    except UnicodeDecodeError as error:
        raise MultiselectCommunicatorError("a protocol name that is not UTF-8") from error
