"""node._libp2p_patches: upstream unchanged, same behaviour, same wire format.

Per patch: (1) the upstream code it replaces or relies on still has the
source we studied (fails when py-libp2p changes); (2) the patched function
behaves like the upstream one on the same input (run side by side on fakes);
(3) patched hosts interoperate with each other and with an UNPATCHED
py-libp2p host in another process (tests/node/test_host.py covers 32 MiB both
ways against it too), and flow control still holds a writer back.
"""

from __future__ import annotations

import hashlib
import os
import random
from typing import Any

import pytest
import trio
import trio.testing
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.io import utils as io_utils
from libp2p.io.exceptions import ConnectionClosedError, IncompleteReadError
from libp2p.security.noise import io as noise_io
from libp2p.security.secure_session import SecureSession
from libp2p.stream_muxer.yamux import yamux

from p2pshare.node import _libp2p_patches as P
from p2pshare.node import _libp2p_speed as S
from p2pshare.node import _libp2p_yamux_rx as R
from p2pshare.node._libp2p_conn import StreamError
from p2pshare.node._libp2p_fixes import peer_limit_keeps_self
from p2pshare.node._libp2p_noise_cipher import direct_decrypt
from p2pshare.node.host import open_host
from tests.node import _peer
from tests.node._fake_session import fake_session
from tests.node.conftest import Peer

P.apply()
TAG = b"T" * 16


@pytest.mark.parametrize("name", sorted(P.PATCHES))
def test_upstream_code_is_the_code_we_patched(name: str) -> None:
    # Function by function, and by the studied files' digests (what apply()
    # checks at start-up): both must say unchanged, so the table is right.
    assert P.changed_upstream(name, by_file=False) == [], f"py-libp2p changed under patch {name}: review it"
    assert P.changed_upstream(name) == []


@pytest.mark.parametrize("name", sorted(P.PATCHES))
def test_patch_is_applied_once(name: str) -> None:
    owner, attr, replacement, _ = P.PATCHES[name]
    assert getattr(owner, attr) is replacement
    P.apply()
    assert getattr(owner, attr) is replacement
    assert P._upstream(owner, attr) is not replacement
    assert isinstance(yamux.YamuxStream.__dict__["send_window"], property)
    assert isinstance(yamux.YamuxStream.__dict__["closed"], property)


# -- fakes ---------------------------------------------------------------------


class FakeRaw:
    """A raw connection handing out ``data`` in random-sized reads."""

    def __init__(self, data: bytes, seed: int) -> None:
        self.data = data
        self.pos = 0
        self.rng = random.Random(seed)
        self.out = bytearray()
        self.writes = 0

    async def read(self, n: int | None = None) -> bytes:
        size = self.rng.choice([1, 2, 3, 7, 100, 65537, 300_000])
        size = min(size, n if n is not None else size, len(self.data) - self.pos)
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    async def write(self, data: bytes) -> None:
        self.out += data
        self.writes += 1


class FakeNoiseState:
    def encrypt(self, data: bytes) -> bytes:
        assert isinstance(data, bytes) and len(data) <= 65535
        return bytes(reversed(data)) + TAG

    def decrypt(self, data: bytes) -> bytes:
        assert isinstance(data, bytes) and data.endswith(TAG)
        return bytes(reversed(data[:-16]))


def _frame(msgs: list[bytes]) -> bytes:
    out = bytearray()
    for m in msgs:
        ct = FakeNoiseState().encrypt(m)
        out += len(ct).to_bytes(2, "big") + ct
    return bytes(out)


def _rw(raw: FakeRaw) -> Any:
    return noise_io.NoiseTransportReadWriter(raw, FakeNoiseState())  # type: ignore[arg-type]


async def _drain(fn: Any, *args: Any) -> tuple[list[bytes], str]:
    out: list[bytes] = []
    for _ in range(10_000):
        try:
            out.append(await fn(*args))
        except (IncompleteReadError, ConnectionClosedError) as e:
            return out, f"{type(e).__name__}:{getattr(e, 'received_bytes', '')}"
    raise AssertionError("did not end")


# -- behaviour next to upstream -------------------------------------------------

MSGS = [b"", b"a", os.urandom(65519), os.urandom(12), os.urandom(40_000), b"z" * 3]


@pytest.mark.parametrize("seed", range(4))
async def test_noise_read_msg_matches_upstream(seed: int) -> None:
    wire = _frame(MSGS * 3)
    for tail in (b"", b"\x00", wire[:100]):  # clean EOF, EOF mid-length, mid-body
        upstream = P._upstream(noise_io.NoiseTransportReadWriter, "read_msg")
        rw_up, rw_ours = _rw(FakeRaw(wire + tail, seed)), _rw(FakeRaw(wire + tail, seed))
        got_up, end_up = await _drain(upstream, rw_up)
        got_ours, end_ours = await _drain(rw_ours.read_msg)
        assert got_ours == got_up and got_up[: len(MSGS) * 3] == MSGS * 3
        assert end_ours == end_up and end_up.startswith("IncompleteReadError")
        assert end_ours.endswith(":0") == (tail == b"")  # a clean close is recognisable


@pytest.mark.parametrize("size", [0, 1, 65519, 65520, 200_000, (1 << 20) + 5])
async def test_noise_write_msg_same_bytes_fewer_writes(size: int) -> None:
    msg = os.urandom(size)
    up_raw, our_raw = FakeRaw(b"", 0), FakeRaw(b"", 0)
    await P._upstream(noise_io.NoiseTransportReadWriter, "write_msg")(_rw(up_raw), msg)
    await _rw(our_raw).write_msg(msg)
    assert bytes(our_raw.out) == bytes(up_raw.out)
    assert our_raw.writes == 1


def _noise_pair() -> tuple[Any, Any]:
    """Two real noise-library sessions after an XX handshake (libp2p's suite)."""
    from noise.connection import Keypair, NoiseConnection

    name = b"Noise_XX_25519_ChaChaPoly_SHA256"
    a, b = NoiseConnection.from_name(name), NoiseConnection.from_name(name)
    for conn, initiator in ((a, True), (b, False)):
        conn.set_as_initiator() if initiator else conn.set_as_responder()
        conn.set_keypair_from_private_bytes(Keypair.STATIC, os.urandom(32))
        conn.start_handshake()
    b.read_message(a.write_message())
    a.read_message(b.write_message())
    b.read_message(a.write_message())
    assert a.handshake_finished and b.handshake_finished
    return a, b


def _sealed_reader(msgs: list[bytes], tamper: bool, seed: int) -> Any:
    """A transport reader over ``msgs`` sealed by a real Noise session (the
    last one's tag flipped if ``tamper``), handed out in random-sized reads."""
    sender, receiver = _noise_pair()
    wire = bytearray()
    for m in msgs:
        ct = sender.encrypt(m)
        wire += len(ct).to_bytes(2, "big") + ct
    if tamper:
        wire[-3] ^= 1  # inside the last message's tag
    return noise_io.NoiseTransportReadWriter(FakeRaw(bytes(wire), seed), receiver)  # type: ignore[arg-type]


@pytest.mark.parametrize("tamper", [False, True])
async def test_noise_read_msg_real_cipher(tamper: bool) -> None:
    from noise.exceptions import NoiseInvalidMessage

    msgs = [os.urandom(n) for n in (0, 1, 65519, 500, 65519, 7)]
    outs = []
    for fn in (P._upstream(noise_io.NoiseTransportReadWriter, "read_msg"), P._noise_read_msg):
        rw = _sealed_reader(msgs, tamper, seed=1)
        assert direct_decrypt(rw) is not None  # real sessions take the fast path
        got: list[Any] = []
        try:
            for _ in msgs:
                got.append(await fn(rw))
        except NoiseInvalidMessage:
            got.append("invalid")
        outs.append(got)
    assert outs[0] == outs[1] == (msgs[:-1] + ["invalid"] if tamper else msgs)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tamper", [False, True])
async def test_take_ready_msg_interleaves_with_read_msg_as_one_reader(seed: int, tamper: bool) -> None:
    """P10 takes whole messages with ``take_ready_msg`` (no await) and
    awaits P1 otherwise: the messages, the nonces, an empty message and a
    bad tag come out exactly as from upstream's reader alone."""
    from noise.exceptions import NoiseInvalidMessage

    from p2pshare.node._libp2p_noise_rx import take_ready_msg

    P.apply()  # read_msg is P1, whose state take_ready_msg shares
    rng = random.Random(seed)
    msgs = [os.urandom(rng.choice([0, 1, 17, 500, 65519])) for _ in range(40)]
    rw = _sealed_reader(msgs, tamper, seed)
    got: list[Any] = []
    taken = 0
    try:
        for _ in msgs:
            msg = take_ready_msg(rw)
            if msg is None:
                msg = await rw.read_msg()
            else:
                taken += 1
            got.append(msg)
    except NoiseInvalidMessage:
        got.append("invalid")
    assert got == (msgs[:-1] + ["invalid"] if tamper else msgs)
    assert taken > 0  # the reads hold whole messages often enough to test both paths


@pytest.mark.parametrize("seed", range(6))
async def test_session_read_matches_upstream(seed: int) -> None:
    rng = random.Random(seed)
    msgs = [os.urandom(rng.choice([1, 12, 100, 65519, 70_000])) for _ in range(30)]
    sizes = [rng.choice([None, 1, 12, 65507, 65519, 100_000]) for _ in range(80)]
    upstream = P._upstream(SecureSession, "read")
    a, b = fake_session(msgs), fake_session(msgs)
    for n in sizes:
        outcomes = []
        for s, fn in ((a, upstream), (b, P._session_read)):
            try:
                outcomes.append(await fn(s, n))
            except ConnectionClosedError:
                outcomes.append("closed")
        assert outcomes[0] == outcomes[1]
    assert await P._session_read(b, 0) == b""


@pytest.mark.parametrize("seed", range(3))
async def test_read_exactly_matches_upstream(seed: int) -> None:
    data = os.urandom(300_000)
    up, ours = FakeRaw(data, seed), FakeRaw(data, seed)
    for n in [12, 65507, 1, 100_000, 200_000]:
        results = []
        for reader in (up, ours):
            fn = io_utils.read_exactly if reader is up else yamux.read_exactly
            try:
                results.append(await fn(reader, n))
            except IncompleteReadError as e:
                results.append((e.expected_bytes, e.received_bytes))
        assert results[0] == results[1]
    # A reader with no muxer linked (see test_yamux_rx.py) reads as upstream does.
    assert yamux.read_exactly is R.next_frame_header and io_utils.read_exactly is not R.next_frame_header


def test_send_window_property_wakes_writer() -> None:
    s = yamux.YamuxStream.__new__(yamux.YamuxStream)
    s.send_window = 5
    assert s.send_window == 5 and s.__dict__["_p2ps_send_window"] == 5
    event = s._p2ps_window_event = trio.Event()
    s.send_window -= 5
    assert not event.is_set()
    s.send_window += 100
    assert event.is_set() and s.send_window == 100


def test_closed_property_wakes_writer() -> None:
    s = yamux.YamuxStream.__new__(yamux.YamuxStream)
    assert s.closed is False  # a stream that never set it reads as open
    event = s._p2ps_window_event = trio.Event()
    s.closed = False
    assert not event.is_set() and s.closed is False
    s.closed = True
    assert event.is_set() and s.closed is True


@pytest.mark.parametrize("how", ["credit", "closed"])
async def test_writer_waiting_for_credit_wakes_without_a_timer(how: str) -> None:
    """A writer blocked on an empty send window is woken by the event alone:
    no clock advances here, so a timer-driven re-check would still be
    asleep when every task is blocked."""
    s = yamux.YamuxStream.__new__(yamux.YamuxStream)
    s.send_window = 0
    s.closed = False
    done = trio.Event()

    async def waiter() -> None:
        await S._wait_for_window(s)
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert not done.is_set()
        if how == "credit":
            s.send_window += 1
        else:
            s.closed = True
        await trio.testing.wait_all_tasks_blocked()
        assert done.is_set()


# -- on real connections ----------------------------------------------------------


async def test_interop_with_unpatched_process(peer_procs: dict[str, Peer]) -> None:
    peer = peer_procs["stock"]
    assert peer.info["patched"] is False  # really stock py-libp2p over there
    async with open_host(create_new_key_pair()) as host:
        await host.connect(peer.peer_id, peer.addrs, timeout=5)
        with trio.fail_after(20):
            # many small writes, then large ones: every framing path
            s = await host.open_stream(peer.peer_id, _peer.SHA)
            sent = hashlib.sha256()
            total = 0
            for size in [1, 2, 11, 12, 13, 65506, 65507, 65508, 131_014, 1 << 20, 3 << 20]:
                data = os.urandom(size)
                await s.write(data)
                sent.update(data)
                total += size
            await s.close_write()
            reply = b""
            while chunk := await s.read(100):
                reply += chunk
            assert reply.decode() == f"{total} {sent.hexdigest()}"


async def test_a_reset_ends_a_write_waiting_for_credit(peer_procs: dict[str, Peer]) -> None:
    """The peer reads nothing, so our writes fill the stream's window (the
    stock peer grants a few MiB) and wait for credit; then the peer resets
    the stream. The write must fail
    at once (the reset sets ``closed``, which wakes it), not wait out
    WINDOW_STALL_TIMEOUT."""
    assert S.WINDOW_STALL_TIMEOUT >= 60
    peer = peer_procs["stock"]
    async with open_host(create_new_key_pair()) as host:
        await host.connect(peer.peer_id, peer.addrs, timeout=5)
        s = await host.open_stream(peer.peer_id, _peer.STALL)
        piece = os.urandom(1 << 20)
        written = 0
        with trio.fail_after(20), pytest.raises(StreamError, match="StreamReset"):
            while written < 64 << 20:  # the peer's receive window is far smaller
                await s.write(piece)
                written += len(piece)


async def test_buffers_are_written_whole_and_arrive_intact(peer_procs: dict[str, Peer]) -> None:
    """``LibP2PByteStream.write`` hands bytearray/memoryview batches (the
    sharer's sealed-in-place frames) to the patched yamux writer as they are;
    a stock peer reads exactly those bytes."""
    peer = peer_procs["stock"]
    async with open_host(create_new_key_pair()) as host:
        await host.connect(peer.peer_id, peer.addrs, timeout=5)
        with trio.fail_after(20):
            s = await host.open_stream(peer.peer_id, _peer.SHA)
            sent = hashlib.sha256()
            total = 0
            big = bytearray(os.urandom(3 << 20))
            for data in (bytearray(b"x" * 13), memoryview(big)[5 : (2 << 20) + 77], big, memoryview(b"tail")):
                await s.write(data)
                sent.update(data)
                total += len(data)
            await s.close_write()
            reply = b""
            while chunk := await s.read(100):
                reply += chunk
            assert reply.decode() == f"{total} {sent.hexdigest()}"


async def test_stock_writer_gets_bytes_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the batching writer, buffers go out as ``bytes`` pieces of one
    yamux frame each (what stock yamux and Noise accept)."""
    from p2pshare.node.host import LibP2PByteStream

    class FakeNetStream:
        class muxed_conn:  # noqa: N801 - mimics the attribute
            class peer_id:  # noqa: N801
                @staticmethod
                def to_base58() -> str:
                    return "peer"

                @staticmethod
                def to_bytes() -> bytes:
                    return b"peer"

        def __init__(self) -> None:
            self.writes: list[object] = []

        def get_protocol(self) -> str:
            return "/t"

        async def write(self, data: object) -> None:
            self.writes.append(data)

    monkeypatch.setattr(P, "write_piece", lambda: P.FRAME_PAYLOAD)
    fake = FakeNetStream()
    stream = LibP2PByteStream(fake)  # type: ignore[arg-type]
    payload = os.urandom(3 * P.FRAME_PAYLOAD + 5)
    await stream.write(bytearray(payload))
    await stream.write(memoryview(payload)[:10])
    assert all(type(w) is bytes for w in fake.writes)
    assert [len(w) for w in fake.writes] == [P.FRAME_PAYLOAD] * 3 + [5, 10]  # type: ignore[arg-type]
    assert b"".join(fake.writes) == payload + payload[:10]  # type: ignore[arg-type]


async def test_flow_control_holds_a_writer_until_the_reader_reads() -> None:
    released = trio.Event()
    received = hashlib.sha256()
    payload = os.urandom(P.RECV_WINDOW + (8 << 20))

    done = trio.Event()

    async def slow_reader(stream: Any) -> None:
        await released.wait()
        while data := await stream.read(1 << 20):
            received.update(data)
        done.set()

    async with open_host(create_new_key_pair()) as a, open_host(create_new_key_pair()) as b:
        b.set_stream_handler("/t/slow", slow_reader)
        await a.connect(b.peer_id, b.listen_addrs(), timeout=5)
        stream = await a.open_stream(b.peer_id, "/t/slow")
        written = 0

        async def writer() -> None:
            nonlocal written
            for i in range(0, len(payload), 65536):
                await stream.write(payload[i : i + 65536])
                written = i + 65536
            await stream.close_write()

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer)
                await trio.sleep(1.0)
                # The handler has not read its data, so the writer got no
                # credit beyond the window granted when the stream opened.
                assert 0 < written <= P.RECV_WINDOW + yamux.DEFAULT_WINDOW_SIZE
                stuck = written
                await trio.sleep(0.3)
                assert written == stuck < len(payload)
                released.set()
            await done.wait()
        assert received.digest() == hashlib.sha256(payload).digest()


class _FakeConn:
    def __init__(self, addr: str) -> None:
        self._addr = addr

    def get_transport_addresses(self) -> list[object]:
        from multiaddr import Multiaddr

        return [Multiaddr(self._addr)]


class _FakeNetwork:
    def __init__(self, conns: dict[object, list[_FakeConn]]) -> None:
        self.connections = conns


class _FakeHost:
    def __init__(self, conns: dict[object, list[_FakeConn]]) -> None:
        self._net = _FakeNetwork(conns)

    def get_network(self) -> _FakeNetwork:
        return self._net


def test_identify_reports_no_ip_less_observed_addr_on_relayed_connections() -> None:
    """Upstream puts an IP-less circuit address in identify's observedAddr on
    a relayed connection (js-libp2p then aborts identify); ours reports the
    direct fallback only."""
    from libp2p.identity.identify import identify as identify_mod

    relay = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
    circuit = f"/p2p/{relay}/p2p-circuit"
    host = _FakeHost({"peer": [_FakeConn(circuit)]})
    upstream = P._ORIGINALS["identify_observed_addr"]
    assert str(upstream(host, "peer", None)) == circuit  # the behaviour we replace
    assert identify_mod._prefer_circuit_addr(host, "peer", None) is None
    marker = object()
    assert identify_mod._prefer_circuit_addr(host, "peer", marker) is marker


def _store_with_others(max_peers: int, own: bool) -> tuple[Any, Any]:
    """A PeerStore holding (when ``own``) a host's key pair first, then peers
    of every eviction class: no addresses, expired, live; in a fixed order."""
    from libp2p.peer.id import ID
    from libp2p.peer.peerstore import PeerStore
    from multiaddr import Multiaddr

    store = PeerStore(max_peers=1000)  # filled first, limited after
    me = None
    if own:
        keys = create_new_key_pair()
        me = ID.from_pubkey(keys.public_key)
        store.add_key_pair(me, keys)
    for i in range(3 * max_peers):
        pid = ID(hashlib.sha256(b"peer%d" % i).digest())
        if i % 3 == 0:
            store.add_protocols(pid, ["/ipfs/ping/1.0.0"])  # no addresses
        else:
            store.add_addrs(pid, [Multiaddr(f"/ip4/127.0.0.1/tcp/{1000 + i}")], 3600)
            if i % 3 == 1:
                store.peer_data_map[pid].last_identified -= 7200  # expired
    store.max_peers = max_peers
    return store, me


def test_peerstore_limit_evicts_others_as_upstream_does() -> None:
    upstream = S._ORIGINALS["peerstore_keeps_self"]
    a, _ = _store_with_others(7, own=False)
    b, _ = _store_with_others(7, own=False)
    upstream(a)
    peer_limit_keeps_self(b)
    assert list(a.peer_data_map) == list(b.peer_data_map) and len(a.peer_data_map) == 7


def test_peerstore_limit_never_evicts_the_host_itself() -> None:
    """Upstream evicts our own entry (keys, no addresses) among the first:
    the soak's relay then died in identify after ~4,000 peers."""
    upstream = S._ORIGINALS["peerstore_keeps_self"]
    a, me = _store_with_others(7, own=True)
    upstream(a)
    assert me not in a.peer_data_map  # the behaviour we replace
    b, me = _store_with_others(7, own=True)
    peer_limit_keeps_self(b)
    assert me in b.peer_data_map and len(b.peer_data_map) == 7
    assert b.pubkey(me) is not None and b.privkey(me) is not None


def test_peerstore_limit_evicts_connected_peers_last() -> None:
    """A long-uptime review (stop 43): upstream's order ignores
    connections, so a node's relay (one of its oldest entries) could be
    evicted while connected, with the addresses and protocols we read."""
    store, _ = _store_with_others(7, own=False)
    oldest = list(store.peer_data_map)[:4]  # with and without addresses, expired or not
    store._p2ps_connections = {pid: ["a connection"] for pid in oldest}
    peer_limit_keeps_self(store)
    assert len(store.peer_data_map) == 7 and all(pid in store.peer_data_map for pid in oldest)


async def test_a_hosts_peerstore_knows_its_connections() -> None:
    from p2pshare.node.host import open_host

    async with open_host(create_new_key_pair()) as a, open_host(create_new_key_pair()) as b:
        await a.connect(b.peer_id, b.listen_addrs(), timeout=5)
        store = a.libp2p.get_peerstore()
        assert store._p2ps_connections is a.libp2p.get_network().connections
        assert store._p2ps_connections.get(b.libp2p.get_id())


async def test_host_answers_identify_after_more_peers_than_the_peerstore_holds() -> None:
    """The crash itself: a host whose peerstore overflowed still answers
    identify (upstream raised in the handler and the process exited)."""
    from libp2p.peer.id import ID
    from multiaddr import Multiaddr

    async with open_host(create_new_key_pair()) as a, open_host(create_new_key_pair()) as b:
        store: Any = a.libp2p.get_peerstore()
        for i in range(store.max_peers + 1):
            pid = ID(hashlib.sha256(b"other%d" % i).digest())
            store.add_addrs(pid, [Multiaddr(f"/ip4/127.0.0.1/tcp/{1000 + i % 60000}")], 3600)
        assert len(store.peer_ids()) == store.max_peers
        await b.connect(a.peer_id, a.listen_addrs(), timeout=5)
        stream = await b.open_stream(a.peer_id, "/ipfs/id/1.0.0")
        with trio.fail_after(5):
            reply = await stream.read(1 << 16)
        assert reply and a.libp2p.get_public_key() is not None


async def test_circuit_addresses_are_announced_as_circuit_addresses() -> None:
    """Upstream announced a reservation's ``.../p2p/<relay>/p2p-circuit`` as
    ``.../p2p/<us>``: the relay's own address under our ID, which peers then
    dialled for us (Noise: peer ID mismatch; issue 10). Ours keeps it whole."""
    async with open_host(create_new_key_pair()) as relay, open_host(create_new_key_pair()) as host:
        circuit = f"/ip4/203.0.113.10/tcp/4001/p2p/{relay.peer_id}/p2p-circuit"
        host.announce_also([circuit, f"{circuit}/p2p/{relay.peer_id}"])  # the second names another target
        upstream = [str(a) for a in P._ORIGINALS["host_addrs_keep_circuits"](host.libp2p)]
        assert f"/ip4/203.0.113.10/tcp/4001/p2p/{host.peer_id}" in upstream  # the behaviour we replace
        addrs = host.advertised_addrs()
        assert f"{circuit}/p2p/{host.peer_id}" in addrs
        assert not any(a.startswith("/ip4/203.0.113.10/") and "p2p-circuit" not in a for a in addrs)
        assert not any(a.endswith(f"/p2p/{relay.peer_id}") for a in addrs)
        listen = [a for a in addrs if "p2p-circuit" not in a]
        assert listen and all(a.endswith(f"/p2p/{host.peer_id}") for a in listen)


# -- instance patches (one object, not a class) --------------------------------


@pytest.mark.parametrize("name", sorted(P.INSTANCE_PATCHES))
def test_upstream_code_is_the_code_an_instance_patch_relies_on(name: str) -> None:
    assert P.changed_instance_upstream(name, by_file=False) == [], f"py-libp2p changed under instance patch {name}"
    assert P.changed_instance_upstream(name) == []


async def test_hosts_dial_without_hidden_retries() -> None:
    """Upstream retries a failed dial 3 times with backoff (seconds per
    unreachable address); our hosts fail at once and let the dial race decide."""
    from libp2p.network.config import RetryConfig

    assert RetryConfig().max_retries > 0  # the behaviour we replace
    async with open_host(create_new_key_pair()) as host:
        network: Any = host.libp2p.get_network()
        assert network.retry_config.max_retries == 0


async def test_kad_routing_table_admits_only_servers_from_inbound_rpcs() -> None:
    """Upstream's inbound handler adds every peer that queries us, clients
    too; the patched ``add_peer`` of our DHT admits only peers whose
    protocols include Kademlia, and says so to ``on_added``."""
    from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
    from libp2p.peer.id import ID
    from multiaddr import Multiaddr

    kad = "/ipfs/kad/1.0.0"
    async with open_host(create_new_key_pair()) as host:
        stock = KadDHT(host.libp2p, DHTMode.SERVER, enable_random_walk=False)
        dht = KadDHT(host.libp2p, DHTMode.SERVER, enable_random_walk=False)
        added: list[int] = []
        assert P.kad_servers_only(dht, host.libp2p, kad, on_added=lambda: added.append(1))
        assert "add_peer" in dht.__dict__ and "add_peer" not in stock.__dict__
        store = host.libp2p.get_peerstore()
        server, client = (ID.from_pubkey(create_new_key_pair().public_key) for _ in range(2))
        for pid in (server, client):
            store.add_addrs(pid, [Multiaddr("/ip4/127.0.0.1/tcp/1")], 3600)
        store.add_protocols(server, [kad])
        store.add_protocols(client, ["/ipfs/ping/1.0.0"])
        # as the inbound handler calls it
        assert await stock.add_peer(client, skip_server_mode_check=True)  # upstream admits a client
        assert not await dht.add_peer(client, skip_server_mode_check=True)
        assert added == []
        assert await dht.add_peer(server, skip_server_mode_check=True)
        assert added == [1]
        assert dht.routing_table.peer_in_table(server) and not dht.routing_table.peer_in_table(client)


async def test_stopped_auto_connector_keeps_no_record_per_disconnected_peer() -> None:
    """Upstream records every disconnected peer for the auto-connector and
    prunes the record only in the connector's loop, which our hosts stop:
    one entry per peer ever met, for good. Ours record nothing."""
    from libp2p.network.auto_connector import AutoConnector

    async with open_host(create_new_key_pair()) as server:
        connector: Any = server.libp2p.get_network().auto_connector
        for _ in range(3):
            async with open_host(create_new_key_pair()) as client:
                await client.connect(server.peer_id, server.listen_addrs(), timeout=5)
                with trio.fail_after(5):
                    while not server.is_connected(client.peer_id):
                        await trio.sleep(0.01)
            with trio.fail_after(5):
                while server.is_connected(client.peer_id):
                    await trio.sleep(0.01)
        await trio.sleep(0.1)  # the swarm's disconnect notification runs after the close
        assert connector._recent_disconnects == {}
        AutoConnector.record_disconnect(connector, server.libp2p.get_id())  # the behaviour we replace
        assert len(connector._recent_disconnects) == 1


def test_a_file_that_differs_from_the_studied_one_is_fingerprinted_function_by_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from p2pshare.node import _libp2p_fingerprint as F

    target = yamux.Yamux.read_stream
    assert F.file_is_studied(target)
    real = F.source_sha256(target)
    monkeypatch.setitem(F.STUDIED_FILES, "libp2p/stream_muxer/yamux/yamux.py", "0" * 64)
    assert not F.file_is_studied(target)
    assert F.unchanged(target, real) and not F.unchanged(target, "1" * 64)
    assert not F.file_is_studied(len)  # a builtin has no file: never trusted by file


@pytest.mark.parametrize("sizes", [[0, 1, 65519], [65520, 200_000], [(1 << 20) + 5, 3, 1 << 20]])
async def test_noise_write_msg_real_cipher_seals_in_place_and_keeps_the_nonce_sequence(sizes: list[int]) -> None:
    """P2's direct path (sealing views of the message into one buffer) gives
    Noise messages the peer opens in order, interleaved with upstream's own
    writes on the same session (the nonce sequence is shared)."""
    sender, receiver = _noise_pair()
    raw = FakeRaw(b"", 0)
    rw = noise_io.NoiseTransportReadWriter(raw, sender)  # type: ignore[arg-type]
    assert S._direct_encrypt(rw) is not None
    upstream = P._upstream(noise_io.NoiseTransportReadWriter, "write_msg")
    msgs = [os.urandom(n) for n in sizes]
    for i, m in enumerate(msgs):
        await (upstream(rw, m) if i % 2 else rw.write_msg(m))
    wire = bytes(raw.out)
    got = bytearray()
    pos = 0
    while pos < len(wire):
        n = int.from_bytes(wire[pos : pos + 2], "big")
        got += receiver.decrypt(wire[pos + 2 : pos + 2 + n])
        pos += 2 + n
    assert bytes(got) == b"".join(msgs)


async def test_noise_write_msg_reuses_its_buffer_only_over_tcp_after_the_send() -> None:
    """Over a real TCP-like socket the sealed batch's buffer goes back to a
    small pool once sent; the next batch of any size from 64 KiB to a sealed
    WRITE_BATCH reuses it, and the peer still reads every byte right."""
    from libp2p.io.trio import TrioTCPStream
    from libp2p.network.connection.raw_connection import RawConnection

    sender, receiver = _noise_pair()
    a, b = trio.socket.socketpair()
    left, right = trio.SocketStream(a), trio.SocketStream(b)
    rw = noise_io.NoiseTransportReadWriter(RawConnection(TrioTCPStream(left), True), sender)  # type: ignore[arg-type]
    S._WBUF_POOL.clear()
    msgs = [os.urandom(n) for n in (300_000, 70_000, S.WRITE_BATCH + 200)]
    got = bytearray()

    async def read_all() -> None:
        wire = bytearray()
        while len(wire) < sum(S._sealed_size(len(m)) for m in msgs):
            wire += await right.receive_some(1 << 20)
        pos = 0
        while pos < len(wire):
            n = int.from_bytes(wire[pos : pos + 2], "big")
            got.extend(receiver.decrypt(bytes(wire[pos + 2 : pos + 2 + n])))
            pos += 2 + n

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_all)
        pooled = []
        for m in msgs:
            await rw.write_msg(m)
            pooled.append(S._WBUF_POOL[0])
    assert pooled[0] is pooled[1] is pooled[2] and len(S._WBUF_POOL) == 1
    assert bytes(got) == b"".join(msgs)
    S._WBUF_POOL.clear()
    await left.aclose()
    await right.aclose()
