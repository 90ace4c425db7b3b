"""node._libp2p_fixes: the DHT server's state stays bounded, counted in O(1).

Provider records (``bounded_add_provider`` over a :class:`ProviderTable`):
the counts stay exact through every path py-libp2p adds or expires records
by, admission never scans the store, each bound refuses what it should, and
the bounds together stay under ``PROVIDER_MEMORY_MB`` of Python objects.
"""

from __future__ import annotations

import contextlib
import gc
import os
import random
import time
import tracemalloc
from typing import Any

import pytest
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.kad_dht.provider_store import PROVIDER_RECORD_EXPIRATION_INTERVAL, ProviderStore
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr

from p2pshare.node import _libp2p_fixes as F
from p2pshare.node import _libp2p_kad_streams as K
from p2pshare.node import _libp2p_patches as P
from p2pshare.node import _libp2p_provider_table as T
from p2pshare.node.rcmgr.kad_streams import PER_PEER, TOTAL
from tests.discovery._kad import signed_record

P.apply()

PEERS = [ID.from_pubkey(create_new_key_pair().public_key) for _ in range(6)]
LOCAL = ID.from_pubkey(create_new_key_pair().public_key)


class _Host:
    def get_id(self) -> ID:
        return LOCAL


def _store() -> Any:
    return ProviderStore(_Host())  # type: ignore[arg-type]


def _addrs(n: int, size: int = 0) -> list[Multiaddr]:
    """``n`` addresses; with ``size``, ``/unix/`` ones of ``size`` bytes or one more."""
    if not size:
        return [Multiaddr(f"/ip4/10.0.0.{i % 250}/tcp/{4001 + i}") for i in range(n)]
    return [Multiaddr(f"/unix/{'a' * (size - 8)}{i:04d}") for i in range(n)]


def _recount(store: Any) -> tuple[int, int, dict[str, int]]:
    """(records, bytes, keys per peer) by scanning the store, as the old code did."""
    records, size, per_peer = 0, 0, {}
    for key, recs in store.providers.items():
        for peer, rec in recs.items():
            records += 1
            size += len(key) + sum(len(a.to_bytes()) for a in rec.provider_info.addrs)
            per_peer[peer] = per_peer.get(peer, 0) + 1
    return records, size, per_peer


def _check_counts(store: Any) -> None:
    table = T.provider_table(store)
    records, size, per_peer = _recount(store)
    assert (table.records, table.bytes) == (records, size)
    assert {p: table.keys_of(p) for p in per_peer} == per_peer
    assert sum(per_peer.values()) == records


def test_counts_stay_exact_through_every_upstream_path() -> None:
    """Adds, refreshes, py-libp2p's own expiry in get_providers and
    cleanup_expired, our drop (``pop``): the kept totals equal a recount."""
    rng = random.Random(9)
    store = _store()
    keys = [os.urandom(34) for _ in range(12)]
    for step in range(600):
        op = rng.random()
        key = rng.choice(keys)
        if op < 0.6:
            store.add_provider(key, PeerInfo(rng.choice(PEERS), _addrs(rng.randint(1, 12))))
        elif op < 0.7:
            store.get_providers(key)
        elif op < 0.8:
            recs = store.providers.get(key)
            if recs:
                recs.pop(next(iter(recs)), None)
        elif op < 0.9:  # age a few records past expiry, then let upstream expire them
            for recs in store.providers.values():
                for rec in recs.values():
                    if rng.random() < 0.2:
                        rec.timestamp -= PROVIDER_RECORD_EXPIRATION_INTERVAL + 1
            (store.get_providers if rng.random() < 0.5 else lambda _k: store.cleanup_expired())(key)
        else:
            store.cleanup_expired()
        if step % 25 == 0:
            _check_counts(store)
    _check_counts(store)
    assert T.provider_table(store).records > 0


def test_an_existing_store_is_converted_once() -> None:
    store = _store()
    store.providers = {}
    P._upstream(ProviderStore, "add_provider")(store, b"k1", PeerInfo(PEERS[0], _addrs(2)))
    assert not isinstance(store.providers, T.ProviderTable)
    store.add_provider(b"k2", PeerInfo(PEERS[0], _addrs(3)))
    assert isinstance(store.providers, T.ProviderTable)
    _check_counts(store)
    assert T.provider_table(store).keys_of(str(PEERS[0])) == 2


def test_admission_never_scans_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store()
    for i in range(300):
        store.add_provider(os.urandom(34), PeerInfo(PEERS[i % len(PEERS)], _addrs(3)))

    def scan(*_: Any) -> Any:
        raise AssertionError("the store was scanned")

    for name in ("__iter__", "values", "items", "keys"):
        monkeypatch.setattr(T.ProviderTable, name, scan)
    before = T.provider_table(store).records
    store.add_provider(os.urandom(34), PeerInfo(PEERS[0], _addrs(3)))
    store.add_provider(os.urandom(34), PeerInfo(PEERS[1], _addrs(3)))
    assert T.provider_table(store).records == before + 2


def test_addresses_are_trimmed_by_count_and_size() -> None:
    store = _store()
    long = _addrs(3, size=T.PROVIDER_ADDR_BYTES + 40)
    assert all(len(a.to_bytes()) > T.PROVIDER_ADDR_BYTES for a in long)
    store.add_provider(b"k", PeerInfo(PEERS[0], long + _addrs(20)))
    (got,) = store.get_providers(b"k")
    assert got.addrs == _addrs(T.PROVIDER_ADDRS)


def test_keys_per_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(T, "PROVIDER_KEYS_PER_PEER", 5)
    store = _store()
    keys = [os.urandom(34) for _ in range(7)]
    for key in keys:
        store.add_provider(key, PeerInfo(PEERS[0], _addrs(1)))
        store.add_provider(key, PeerInfo(PEERS[1], _addrs(1)))
    table = T.provider_table(store)
    assert table.keys_of(str(PEERS[0])) == table.keys_of(str(PEERS[1])) == 5
    store.add_provider(keys[0], PeerInfo(PEERS[0], _addrs(2)))  # a refresh is not a new key
    assert len(store.get_providers(keys[0])[0].addrs) == 2
    store.providers[keys[1]].pop(str(PEERS[0]))  # one expires: room for one more
    store.add_provider(keys[6], PeerInfo(PEERS[0], _addrs(1)))
    assert table.keys_of(str(PEERS[0])) == 5 and store.get_providers(keys[6])


def _fresh_peers(n: int) -> list[ID]:
    return [ID.from_pubkey(create_new_key_pair().public_key) for _ in range(n)]


def test_providers_made_ahead_of_a_sharer_do_not_keep_it_out() -> None:
    """A hostile-peer review (stop 43): 20 throwaway identities advertised a
    short code's key before its sharer did; py-libp2p keeps the first 20
    providers of a key and ignored the sharer's record. A full key now takes
    a newcomer in place of the oldest record (of the source holding most)."""
    store = _store()
    key = os.urandom(34)
    fakes = _fresh_peers(T.PROVIDERS_PER_KEY)
    for i, fake in enumerate(fakes):
        store.add_provider(key, PeerInfo(fake, _addrs(1)))
        store.providers[key][str(fake)].timestamp -= 100 - i  # the first made is the oldest
    sharer = _fresh_peers(1)[0]
    store.add_provider(key, PeerInfo(sharer, _addrs(2)))
    got = {str(info.peer_id) for info in store.get_providers(key)}
    assert str(sharer) in got and str(fakes[0]) not in got and len(got) == T.PROVIDERS_PER_KEY
    _check_counts(store)


def test_one_source_holds_few_providers_of_a_key() -> None:
    """Records count per source (the address an ADD_PROVIDER came from, set
    by the KAD stream handler): one host's many identities hold at most
    PROVIDERS_PER_SOURCE records of a key, and when the key is full the
    source holding the most gives way first."""
    store = _store()
    key = os.urandom(34)
    token = K.KAD_SOURCE.set("203.0.113.7")
    try:
        for peer in _fresh_peers(5):
            store.add_provider(key, PeerInfo(peer, _addrs(1)))
    finally:
        K.KAD_SOURCE.reset(token)
    assert len(store.get_providers(key)) == T.PROVIDERS_PER_SOURCE
    for i, peer in enumerate(_fresh_peers(T.PROVIDERS_PER_KEY - T.PROVIDERS_PER_SOURCE)):
        token = K.KAD_SOURCE.set(f"198.51.100.{i}")
        try:
            store.add_provider(key, PeerInfo(peer, _addrs(1)))
        finally:
            K.KAD_SOURCE.reset(token)
    assert len(store.providers[key]) == T.PROVIDERS_PER_KEY
    crowded = set(list(store.providers[key])[: T.PROVIDERS_PER_SOURCE])  # the first source's two
    token = K.KAD_SOURCE.set("192.0.2.99")
    try:
        newcomer = _fresh_peers(1)[0]
        store.add_provider(key, PeerInfo(newcomer, _addrs(1)))
    finally:
        K.KAD_SOURCE.reset(token)
    kept = set(store.providers[key])
    assert str(newcomer) in kept and len(crowded - kept) == 1  # one of the crowded source's records went
    _check_counts(store)


async def test_a_real_server_stores_the_sharer_after_20_fake_providers() -> None:
    """The review's attack through real hosts: 20 identities send
    ADD_PROVIDER for a key, then the sharer; GET_PROVIDERS names the sharer."""
    import trio

    from p2pshare.node.discovery._rpc import KadClient
    from p2pshare.node.host import open_host

    key = b"\x12\x20" + os.urandom(32)
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(open_host(create_new_key_pair()))
        server.new_kad_dht(server_mode=True, protocol=KAD)
        addrs = server.listen_addrs()
        hosts = [await stack.enter_async_context(open_host(create_new_key_pair())) for _ in range(21)]
        for host in hosts:  # one at a time: a burst of handshakes from one address is refused
            await host.connect(server.peer_id, addrs, timeout=5)

        async def advertise(host: Any) -> None:
            client = KadClient(host, timeout=5)
            await client.add_provider(server.peer_id, addrs, key, host.peer_id_bytes, host.listen_addrs())

        async with trio.open_nursery() as nursery:  # 20 fakes, then the sharer
            for fake in hosts[:-1]:
                nursery.start_soon(advertise, fake)
        host = hosts[-1]
        await advertise(host)
        client = KadClient(host, timeout=5)
        with trio.fail_after(10):
            while True:
                answer = await client.get_providers(server.peer_id, addrs, host.peer_id_bytes, key)
                if host.peer_id_bytes in {p.peer_id for p in answer.providers}:
                    break
                await trio.sleep(0.1)


def test_records_in_all_and_our_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(T, "PROVIDER_RECORDS", 10)
    store = _store()
    for i in range(15):
        store.add_provider(os.urandom(34), PeerInfo(PEERS[i % len(PEERS)], _addrs(1)))
    table = T.provider_table(store)
    assert table.records == 10
    store.add_provider(b"mine", PeerInfo(LOCAL, _addrs(1)))  # our own record is never refused
    assert table.records == 11 and store.get_providers(b"mine")


def test_bytes_in_all_and_refresh_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(T, "PROVIDER_BYTES", 4000)
    store = _store()
    big = _addrs(T.PROVIDER_ADDRS, size=200)
    for i in range(6):
        store.add_provider(bytes([i]) * 34, PeerInfo(PEERS[i], big))
    table = T.provider_table(store)
    assert table.records == 2 and table.bytes <= 4000  # ~1.6 KB each
    store.add_provider(bytes([9]) * 34, PeerInfo(PEERS[3], _addrs(1)))  # a small one still fits
    assert table.records == 3
    # The store is full: a provider refreshing its record keeps it, without addresses.
    store.add_provider(bytes([9]) * 34, PeerInfo(PEERS[3], big))
    (got,) = store.get_providers(bytes([9]) * 34)
    assert got.addrs == [] and table.bytes <= 4000
    _check_counts(store)


@pytest.mark.slow
def test_full_store_stays_under_the_stated_memory() -> None:
    """The worst case of both bounds: PROVIDER_RECORDS records, each with
    PROVIDER_ADDRS addresses, as many address bytes as PROVIDER_BYTES allows."""
    per_addr = (T.PROVIDER_BYTES // T.PROVIDER_RECORDS - 34) // T.PROVIDER_ADDRS
    pattern = _addrs(1, size=per_addr)[0].to_bytes()  # ends in 4 ASCII digits
    peers = [ID.from_pubkey(create_new_key_pair().public_key) for _ in range(T.PROVIDER_RECORDS // 200 + 1)]
    store = _store()
    gc.collect()
    tracemalloc.start()
    try:
        started = time.perf_counter()
        for i in range(T.PROVIDER_RECORDS + 500):
            addrs = [Multiaddr(pattern[:-4] + b"%04d" % ((i * 8 + j) % 10_000)) for j in range(8)]
            store.add_provider(os.urandom(34), PeerInfo(peers[i // 200 % len(peers)], addrs))
        elapsed = time.perf_counter() - started
        gc.collect()
        used = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    table = T.provider_table(store)
    assert table.records == T.PROVIDER_RECORDS and table.bytes > T.PROVIDER_BYTES * 0.9
    print(f"{table.records} records, {table.bytes} bytes: {used / 1e6:.1f} MB in {elapsed:.1f} s")
    assert used < T.PROVIDER_MEMORY_MB * 1e6, f"{used / 1e6:.1f} MB"
    assert elapsed < 30  # O(1) each: a scan per record made this minutes


# -- inbound KAD streams ----------------------------------------------------------

KAD = "/ipfs/kad/1.0.0"


class _Wire:
    """A stream that hands out ``data`` and records what is written."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = data
        self.read_upto = 0
        self.written: list[bytes] = []

    async def read(self, n: int | None = None) -> bytes:
        n = len(self.data) if n is None else n
        chunk = self.data[self.read_upto : self.read_upto + n]
        self.read_upto += len(chunk)
        return chunk

    async def write(self, data: bytes) -> None:
        self.written.append(bytes(data))


async def test_request_over_the_cap_fails_on_its_length_before_its_body() -> None:
    from libp2p.io.exceptions import MessageTooLarge
    from libp2p.utils.varint import encode_uvarint, read_varint_prefixed_bytes_limited

    ok = encode_uvarint(K.KAD_REQUEST_BYTES) + b"a" * K.KAD_REQUEST_BYTES
    over = encode_uvarint(K.KAD_REQUEST_BYTES + 1) + b"b" * 100
    wire = _Wire(ok + encode_uvarint(3) + b"xyz" + over)
    guarded = K._GuardedKadStream(wire, lambda: None)
    read = read_varint_prefixed_bytes_limited  # how the handler reads, with its 4 MiB limit
    assert await read(guarded, 4 << 20) == b"a" * K.KAD_REQUEST_BYTES
    assert await read(guarded, 4 << 20) == b"xyz"
    with pytest.raises(MessageTooLarge):
        await read(guarded, 4 << 20)
    assert wire.read_upto == len(ok) + 4 + 3  # the length only, none of the body


async def test_answers_pass_add_provider_answers_are_dropped_each_counts() -> None:
    from libp2p.kad_dht.pb.kademlia_pb2 import Message
    from libp2p.utils.varint import encode_uvarint

    wire = _Wire()
    answers: list[int] = []
    guarded = K._GuardedKadStream(wire, lambda: answers.append(1))
    for kind in (Message.ADD_PROVIDER, Message.FIND_NODE, Message.ADD_PROVIDER, Message.GET_PROVIDERS):
        body = Message(type=kind, key=b"k").SerializeToString()
        await guarded.write(encode_uvarint(len(body)))
        await guarded.write(body)
    assert len(answers) == 4
    assert [Message.FromString(w[1:]).type for w in wire.written] == [Message.FIND_NODE, Message.GET_PROVIDERS]


async def _answer_or_end(stream: Any, timeout: float) -> bytes | None:
    """The next answer on ``stream``; None when the server ends or resets it."""
    import trio

    from p2pshare.node.host import StreamError
    from p2pshare.node.pbwire import try_unframe

    buf = b""
    with trio.fail_after(timeout):
        while True:
            got = try_unframe(buf, 1 << 20)
            if got is not None:
                return got[0]
            try:
                part = await stream.read(65536)
            except StreamError:
                return None
            if not part:
                return None
            buf += part


def _find_node() -> bytes:
    from p2pshare.node.discovery import wire

    return wire.find_node_request(b"\x00\x24" + os.urandom(36))


def _body(framed: bytes) -> bytes:
    from p2pshare.node.pbwire import try_unframe

    got = try_unframe(framed, 1 << 20)
    assert got is not None
    return got[0]


async def test_kad_server_streams_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real server: a request over the cap is reset at its length; an idle
    stream is reset after KAD_STREAM_IDLE, one that keeps asking is not; a
    peer's extra stream is reset at once while other peers are served."""
    import trio

    from p2pshare.node.host import StreamError, open_host
    from p2pshare.node.pbwire import field_bytes, frame

    monkeypatch.setattr(K, "KAD_STREAM_IDLE", 1.0)
    async with open_host(create_new_key_pair()) as server, open_host(create_new_key_pair()) as client:
        server.new_kad_dht(server_mode=True, protocol=KAD)
        await client.connect(server.peer_id, server.listen_addrs(), timeout=5)

        big = await client.open_stream(server.peer_id, KAD)
        padded = _body(_find_node()) + field_bytes(30, b"x" * (K.KAD_REQUEST_BYTES - 200))  # unknown field: ignored
        await big.write(frame(padded))
        assert await _answer_or_end(big, 5) is not None  # under the cap: answered
        await big.write(frame(b"\x08\x04" + b"y" * K.KAD_REQUEST_BYTES)[:4])  # only the length of one over it
        started = trio.current_time()
        assert await _answer_or_end(big, 5) is None
        assert trio.current_time() - started < 0.5  # not after the idle deadline

        idle, busy = await client.open_stream(server.peer_id, KAD), await client.open_stream(server.peer_id, KAD)
        for _ in range(4):  # 2 s of requests 0.5 s apart: each answer moves the deadline
            await busy.write(_find_node())
            assert await _answer_or_end(busy, 5) is not None
            await trio.sleep(0.5)
        assert await _answer_or_end(idle, 5) is None  # reset ~1 s after it opened
        await busy.reset()

        monkeypatch.setattr(K, "KAD_STREAM_IDLE", 30.0)
        held = [await client.open_stream(server.peer_id, KAD) for _ in range(PER_PEER)]
        await trio.sleep(0.3)  # the server has taken them all up
        extra = await client.open_stream(server.peer_id, KAD)
        with contextlib.suppress(StreamError):  # may be reset before we write
            await extra.write(_find_node())
        assert await _answer_or_end(extra, 5) is None
        async with open_host(create_new_key_pair()) as other:
            await other.connect(server.peer_id, server.listen_addrs(), timeout=5)
            stream = await other.open_stream(server.peer_id, KAD)
            await stream.write(_find_node())
            assert await _answer_or_end(stream, 5) is not None
        await held[0].write(_find_node())  # the held streams are served
        assert await _answer_or_end(held[0], 5) is not None
        for s in held:
            await s.reset()


async def test_idle_streams_of_many_identities_do_not_shut_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hostile-peer review (stop 43): 3 identities held py-libp2p's 12
    stream slots with a request every 8 s each, and every honest request was
    reset for as long as they liked. Here enough identities fill the whole
    table and keep their streams alive; an honest peer is still served, in
    place of the attackers' longest-waiting stream, and never of a stream at
    work."""
    import trio

    from p2pshare.node.host import StreamError, open_host

    monkeypatch.setattr(K, "KAD_STREAM_IDLE", 30.0)
    attackers = TOTAL // PER_PEER
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(open_host(create_new_key_pair()))
        server.new_kad_dht(server_mode=True, protocol=KAD)
        held = []
        for _ in range(attackers):
            bad = await stack.enter_async_context(open_host(create_new_key_pair()))
            await bad.connect(server.peer_id, server.listen_addrs(), timeout=5)
            for _ in range(PER_PEER):
                stream = await bad.open_stream(server.peer_id, KAD)
                await stream.write(_find_node())  # answered: each waits for its next request
                assert await _answer_or_end(stream, 5) is not None
                held.append(stream)
        honest = await stack.enter_async_context(open_host(create_new_key_pair()))
        await honest.connect(server.peer_id, server.listen_addrs(), timeout=5)
        for _ in range(3):
            stream = await honest.open_stream(server.peer_id, KAD)
            await stream.write(_find_node())
            assert await _answer_or_end(stream, 5) is not None, "an honest request was refused"
            await stream.reset()
        ended = 0
        for stream in held:  # the first ones opened waited longest: they made room
            with contextlib.suppress(StreamError):
                await stream.write(_find_node())
            ended += await _answer_or_end(stream, 5) is None
            await trio.sleep(0)
        assert 1 <= ended <= 3, ended


# -- signed peer records in KAD requests -------------------------------------------


class _StoreHost:
    def __init__(self) -> None:
        from libp2p.peer.peerstore import PeerStore

        self.store = PeerStore()

    def get_peerstore(self) -> Any:
        return self.store


@pytest.mark.parametrize("where", ["senderRecord", "signedRecord"])
def test_signed_records_are_stored_only_when_small(where: str) -> None:
    from libp2p.kad_dht.kad_dht import maybe_consume_signed_record
    from libp2p.kad_dht.pb.kademlia_pb2 import Message

    assert maybe_consume_signed_record is F.bounded_signed_record
    cases = {  # addresses -> stored?
        "few": (_addrs(3), True),
        "many": (_addrs(F.SIGNED_RECORD_ADDRS + 1), False),
        "large": (_addrs(F.SIGNED_RECORD_ADDRS, size=F.SIGNED_RECORD_BYTES // 12), False),
    }
    for name, (addrs, stored) in cases.items():
        key_pair = create_new_key_pair()
        peer = ID.from_pubkey(key_pair.public_key)
        host = _StoreHost()
        raw = signed_record(key_pair, [a.to_bytes() for a in addrs])
        if where == "senderRecord":
            msg: Any = Message(type=Message.FIND_NODE, senderRecord=raw)
        else:
            msg = Message.Peer(id=peer.to_bytes(), signedRecord=raw)
        assert F.bounded_signed_record(msg, host, peer if where == "senderRecord" else None), name
        assert (host.store.get_peer_record(peer) is not None) is stored, name
        kept = host.store.peer_info(peer).addrs if host.store.has_peer(peer) else []
        assert len(kept) == (len(addrs) if stored else 0), name
    # A record upstream cannot read is upstream's to refuse, as before.
    assert not F.bounded_signed_record(Message(type=Message.FIND_NODE, senderRecord=b"\xff" * 10), _StoreHost(), None)


# -- yamux: what a peer can park in our buffers ---------------------------------------


async def test_py_libp2p_handlers_keep_the_small_window_and_a_reset_frees_the_buffer() -> None:
    """A stream served by a py-libp2p handler (the KAD server's kind; no
    LibP2PByteStream) never grants more than yamux's initial 256 KiB, so a
    writer stalls there; when we reset it, its unread data is dropped at
    once (upstream kept it, and the stream's entry, for 60 s)."""
    import trio
    from libp2p.custom_types import TProtocol
    from libp2p.stream_muxer.yamux import yamux

    from p2pshare.node.host import open_host

    served: dict[str, Any] = {}
    done = trio.Event()

    async def raw_handler(net_stream: Any) -> None:
        served["stream"] = net_stream
        await net_stream.read(1)  # a read: any window update goes out now
        await done.wait()

    async with open_host(create_new_key_pair()) as server, open_host(create_new_key_pair()) as client:
        server.libp2p.set_stream_handler(TProtocol("/t/raw"), raw_handler)
        await client.connect(server.peer_id, server.listen_addrs(), timeout=5)
        stream = await client.open_stream(server.peer_id, "/t/raw")
        written = 0
        with trio.move_on_after(1.5):
            while True:
                await stream.write(b"x" * 65536)
                written += 65536
        assert 0 < written <= 2 * yamux.DEFAULT_WINDOW_SIZE
        muxed = served["stream"].muxed_stream
        conn, sid = muxed.conn, muxed.stream_id
        assert len(conn.stream_buffers[sid]) > yamux.DEFAULT_WINDOW_SIZE // 2
        await served["stream"].reset()
        assert sid not in conn.stream_buffers and sid not in conn.streams
        done.set()


def test_provider_records_keep_no_loopback_beside_other_addresses() -> None:
    """Issue 10: our DHT server handed out a remote sharer's 127.0.0.1."""
    import multiaddr

    from p2pshare.node._libp2p_provider_table import kept_addrs

    mixed = [
        multiaddr.Multiaddr(a) for a in ("/ip4/127.0.0.1/tcp/1", "/ip4/169.254.0.9/tcp/2", "/ip4/100.64.1.2/tcp/4001")
    ]
    assert [str(a) for a in kept_addrs(mixed)] == ["/ip4/100.64.1.2/tcp/4001"]
    local = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/1")]
    assert [str(a) for a in kept_addrs(local)] == ["/ip4/127.0.0.1/tcp/1"]  # a peer on this host only


async def test_requests_the_server_never_answers_do_not_pin_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    """A review of the admission (stop 43): a stream counted "at work" from
    its request until its answer, and py-libp2p sends nothing for a message
    type it does not know (proto3 enums are open): identities that filled
    the table with such requests made it refuse every newcomer again. A
    stream whose handler reads its next request is waiting, answered or not."""
    import trio

    from p2pshare.node.host import StreamError, open_host
    from p2pshare.node.pbwire import frame

    monkeypatch.setattr(K, "KAD_STREAM_IDLE", 30.0)
    unknown = frame(b"\x08\x07")  # type 7: no such message
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(open_host(create_new_key_pair()))
        server.new_kad_dht(server_mode=True, protocol=KAD)
        held = []
        for _ in range(TOTAL // PER_PEER):
            bad = await stack.enter_async_context(open_host(create_new_key_pair()))
            await bad.connect(server.peer_id, server.listen_addrs(), timeout=5)
            for _ in range(PER_PEER):
                stream = await bad.open_stream(server.peer_id, KAD)
                await stream.write(unknown)
                held.append(stream)
        await trio.sleep(0.5)  # every request read, none answered
        honest = await stack.enter_async_context(open_host(create_new_key_pair()))
        await honest.connect(server.peer_id, server.listen_addrs(), timeout=5)
        stream = await honest.open_stream(server.peer_id, KAD)
        with contextlib.suppress(StreamError):
            await stream.write(_find_node())
        assert await _answer_or_end(stream, 5) is not None, "an honest request was refused"
