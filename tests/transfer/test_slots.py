"""Session slots under a flood (issue 9, finding 5), with real runners over memory streams.

Slots used to be taken before HELLO: 64 silent streams from anyone who
knew the sharer's address made every receiver wait for BUSY. Now a stream
gets a cheap pre-authentication slot (total and per-peer caps, a short
timeout) and a session slot only once it proved the key; a receiver that
stops reading is cut after ``WRITE_STALL_TIMEOUT``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from test_runners import run_pair, share
from xfer_helpers import SHARER_ID, MemByteStream, stream_pair

from p2pshare.transfer import _trio_serve, fetch, serve_transfer, wire
from p2pshare.transfer.events import ReceiverFailed, TransferEvent
from p2pshare.transfer.registry import ShareRegistry


async def _silent_streams(nursery: trio.Nursery, registry: ShareRegistry, peers: list[bytes]) -> list[object]:
    """Open one stream per entry of ``peers`` that never says anything."""
    ends = []
    for peer in peers:
        r, s = stream_pair()
        ends.append(r)
        nursery.start_soon(
            lambda s=s, peer=peer: serve_transfer(s, registry=registry, local_peer_id=SHARER_ID, remote_peer_id=peer)
        )
    await trio.testing.wait_all_tasks_blocked()
    return ends


async def test_silent_strangers_do_not_take_the_receivers_slots(tmp_path: Path) -> None:
    _, key, registry = share(tmp_path)
    registry.max_sessions = 2
    async with trio.open_nursery() as nursery:
        # 100 silent streams from 25 peers (4 each): more than the old 64 slots.
        await _silent_streams(nursery, registry, [b"stranger-%d" % (i % 25) for i in range(100)])
        assert registry.active_handshakes == 100 and registry.active_sessions == 0
        result, _ = await run_pair(registry, key, tmp_path / "out")
        assert not isinstance(result, Exception), result
        nursery.cancel_scope.cancel()
    assert registry.active_handshakes == 0 and registry.active_sessions == 0


async def test_handshake_budget_is_capped_per_peer_and_in_total(tmp_path: Path) -> None:
    _, _, registry = share(tmp_path)
    registry.max_handshakes, registry.max_handshakes_per_peer = 10, 3
    async with trio.open_nursery() as nursery:
        ends = await _silent_streams(nursery, registry, [b"greedy"] * 5)
        assert registry.active_handshakes == 3
        refused = 0
        for end in ends:  # over the per-peer cap: reset at once, nothing sent; the others wait for HELLO
            with trio.move_on_after(0.3):
                try:
                    got = await end.read(100)  # type: ignore[attr-defined]
                except ConnectionResetError:
                    got = b""
                assert got == b""
                refused += 1
        assert refused == 2
        await _silent_streams(nursery, registry, [b"other-%d" % i for i in range(10)])
        assert registry.active_handshakes == 10
        nursery.cancel_scope.cancel()
    assert registry.active_handshakes == 0


async def test_silent_stranger_is_dropped_after_the_handshake_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_trio_serve, "HANDSHAKE_TIMEOUT", 0.2)
    _, _, registry = share(tmp_path)
    async with trio.open_nursery() as nursery:
        await _silent_streams(nursery, registry, [b"quiet"])
        with trio.fail_after(5):
            while registry.active_handshakes:
                await trio.sleep(0.05)
    assert registry.active_sessions == 0


async def test_a_stranger_trickling_bytes_is_dropped_at_the_handshake_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handshake timeout held per read: a stranger that sent a byte now
    and then (a WANT header, then its body slowly) kept its handshake slot,
    and the frame it never finished, for ever. Now the whole handshake has
    one deadline, and a WANT before the PROOF is refused from its header."""
    import struct

    monkeypatch.setattr(_trio_serve, "HANDSHAKE_TIMEOUT", 0.5)
    _, _, registry = share(tmp_path)
    events: list[TransferEvent] = []
    r, s = stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: serve_transfer(
                s, registry=registry, local_peer_id=SHARER_ID, remote_peer_id=b"slow", on_event=events.append
            )
        )
        await trio.testing.wait_all_tasks_blocked()
        assert registry.active_handshakes == 1
        hello = wire.encode(wire.Hello(b"\x00" * 16, b"\x01" * 32))
        with trio.fail_after(5):
            try:
                for byte in hello:  # a byte every 0.1 s: each read well inside the timeout
                    await r.write(bytes([byte]))
                    await trio.sleep(0.1)
                    if not registry.active_handshakes:
                        break
                else:
                    raise AssertionError("the whole HELLO went in: trickle slower")
            except (ConnectionError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            while registry.active_handshakes:
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert any(isinstance(e, ReceiverFailed) and "did not prove the key" in e.reason for e in events), events
    header = struct.pack(">BI", wire.MsgType.WANT, 1 << 20)
    decoder = wire.FrameDecoder(wire.TO_SHARER, wire.SHARER_ORDER)
    with pytest.raises(wire.ProtocolError, match="WANT message before PROOF"):
        decoder.feed(header + b"x" * 1000)
    assert decoder.buffered <= len(header)


async def test_strangers_failures_are_reported_at_most_every_few_seconds(tmp_path: Path) -> None:
    """Anyone who knows the sharer's address can fail a stream at will (a
    HELLO for an unknown share): each was a line on the sharer's output."""
    _, _, registry = share(tmp_path)
    events: list[TransferEvent] = []
    for i in range(20):
        r, s = stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda s=s, i=i: serve_transfer(
                    s, registry=registry, local_peer_id=SHARER_ID, remote_peer_id=b"spam-%d" % i, on_event=events.append
                )
            )
            await r.write(wire.encode(wire.Hello(b"\x00" * 16, b"\x01" * 32)))
            await r.close_write()
            with trio.fail_after(5):
                while await r.read(1 << 16):
                    pass
    failed = [e for e in events if isinstance(e, ReceiverFailed)]
    assert len(failed) == 1 and failed[0].share_id is None, failed


async def test_receiver_that_stops_reading_is_cut_and_frees_its_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_trio_serve, "WRITE_STALL_TIMEOUT", 0.3)
    _, key, registry = share(tmp_path)
    events: list[TransferEvent] = []
    a, b = trio.testing.lockstep_stream_pair()  # a write waits for the reader, like a transport window
    r, s = MemByteStream(a), MemByteStream(b)

    class Stalling:
        """A real receiver until the first chunk arrives; then it never reads again."""

        def __init__(self) -> None:
            self.seen = 0

        async def read(self, n: int) -> bytes:
            if self.seen > 200_000:
                await trio.sleep_forever()
            data = await r.read(n)
            self.seen += len(data)
            return data

        async def write(self, data: bytes) -> None:
            await r.write(data)

        async def close_write(self) -> None:
            await r.close_write()

        async def reset(self) -> None:
            await r.reset()

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:

            async def receive() -> None:
                await fetch(
                    Stalling(),
                    key=key,
                    output_dir=tmp_path / "out",
                    local_peer_id=b"stalling",
                    remote_peer_id=SHARER_ID,
                    idle_timeout=60,
                )

            nursery.start_soon(receive)
            await serve_transfer(
                s, registry=registry, local_peer_id=SHARER_ID, remote_peer_id=b"stalling", on_event=events.append
            )
            nursery.cancel_scope.cancel()
    assert registry.active_sessions == 0
    failed = [e for e in events if isinstance(e, ReceiverFailed)]
    assert failed and "stopped reading" in failed[-1].reason, events


def test_busy_after_the_proof_sends_no_manifest() -> None:
    from p2pshare.transfer.sharer import SharerProtocol

    registry = ShareRegistry()
    proto = SharerProtocol(registry.material, local_peer_id=b"s", remote_peer_id=b"r")
    proto._out.append(b"ACCEPT+MANIFEST")  # what _on_proof queues
    proto.refuse_busy()
    (msg,) = wire.FrameDecoder(wire.TO_RECEIVER).feed(proto.data_to_send())
    assert isinstance(msg, wire.Error) and msg.code == wire.ErrorCode.BUSY
    assert proto.failed


def test_handshakes_are_capped_per_source_too() -> None:
    """Peer IDs cost nothing: one address (the registry is told its group)
    may not hold more than ``max_handshakes_per_source`` through many IDs."""
    from p2pshare.transfer.registry import ShareRegistry

    reg = ShareRegistry(max_handshakes=100, max_handshakes_per_peer=2, max_handshakes_per_source=5)
    taken = [reg.try_begin_handshake(bytes([i]) * 32, "198.51.100.7") for i in range(10)]
    assert taken == [True] * 5 + [False] * 5
    assert reg.try_begin_handshake(b"x" * 32, "203.0.113.9")  # another source still gets in
    assert reg.try_begin_handshake(b"y" * 32, None)  # unknown source: per-peer and total caps only
    reg.end_handshake(bytes([0]) * 32, "198.51.100.7")
    assert reg.try_begin_handshake(b"z" * 32, "198.51.100.7")
    for i in range(1, 5):
        reg.end_handshake(bytes([i]) * 32, "198.51.100.7")
    reg.end_handshake(b"z" * 32, "198.51.100.7")
    assert reg._handshake_sources == {"203.0.113.9": 1}  # empty sources leave the table


def test_sessions_after_the_proof_are_capped_per_peer_and_per_source() -> None:
    """9 identities x 8 streams that proved the key and then read nothing
    held all 64 session slots (a hostile-peer review): the proof is no
    licence to take them all."""
    from p2pshare.transfer.registry import ShareRegistry

    reg = ShareRegistry(max_sessions=64, max_sessions_per_peer=4, max_sessions_per_source=16)
    taken = [reg.try_acquire(bytes([i // 8]) * 32, "198.51.100.7") for i in range(72)]
    assert sum(taken) == 16  # the source's cap; each identity 4 of its 8
    assert taken[:8] == [True] * 4 + [False] * 4
    assert reg.try_acquire(b"honest" * 6, "203.0.113.9")  # a receiver elsewhere still gets in
    reg.release(bytes([0]) * 32, "198.51.100.7")
    assert reg.try_acquire(bytes([9]) * 32, "198.51.100.7")
    assert reg.active_sessions == 17


def test_the_manifest_is_sealed_once_for_every_receiver(tmp_path: Path) -> None:
    """Each session sealed its own copy: ~11 MB of sharer memory per
    receiver that proved the key and read nothing more (40,000 files)."""
    import secrets

    from xfer_helpers import make_tree

    from p2pshare.transfer import build_manifest, crypto
    from p2pshare.transfer.sharer import ShareMaterial

    key = secrets.token_bytes(32)
    prepared = build_manifest([make_tree(tmp_path / "src")], name="t", chunk_size=64 * 1024, key=key)
    keys = crypto.ShareKeys.derive(key, None)
    material = ShareMaterial.build(keys, prepared.manifest)
    assert material.manifest_frame is material.manifest_frame
    (msg,) = wire.FrameDecoder(wire.TO_RECEIVER).feed(material.manifest_frame)
    assert isinstance(msg, wire.ManifestMsg)
    assert crypto.open_manifest(keys, msg.nonce, msg.ciphertext) == material.manifest_bytes


async def test_a_key_holder_proving_and_hanging_up_in_a_loop_is_not_a_flood(tmp_path: Path) -> None:
    """2,000 sessions that proved the key and hung up put 4,005 lines on the
    sharer's output ("Receiver … connected", "Receiver … stopped: …"), a
    hostile-peer review found. A session is "connected" once it asks for
    data (WANT); before that its failure is said at most every few seconds."""
    from p2pshare.transfer.errors import DeclinedError
    from p2pshare.transfer.events import ReceiverConnected
    from p2pshare.transfer.manifest import Manifest

    _, key, registry = share(tmp_path)
    sharer_events: list[TransferEvent] = []

    async def decline(_m: Manifest, _needed: int) -> None:
        raise DeclinedError("no")

    for i in range(20):
        outcome, _ = await run_pair(registry, key, tmp_path / f"out{i}", sharer_events=sharer_events, approve=decline)
        assert isinstance(outcome, DeclinedError), outcome
    assert not [e for e in sharer_events if isinstance(e, ReceiverConnected)], sharer_events
    assert len([e for e in sharer_events if isinstance(e, ReceiverFailed)]) <= 2, sharer_events


def test_a_newcomer_displaces_the_longest_wait_for_want_past_the_grace() -> None:
    """Holders of the key took all 64 slots by proving it and never asking
    for data (a hostile-peer review, stop 44). With every slot taken, a
    newcomer gets the slot of the session that has waited longest for its
    WANT, once that wait passed ``LISTING_GRACE``; never a transferring one."""
    from p2pshare.transfer.registry import LISTING_GRACE, ShareRegistry

    reg = ShareRegistry(max_sessions=3, max_sessions_per_peer=1, max_sessions_per_source=16)
    evicted: list[str] = []

    def holder(name: str, since: float, *, wants: bool = False) -> None:
        peer = name.encode().ljust(32, b".")
        assert reg.try_acquire(peer, "198.51.100.7", since)
        reg.listing(name, since, lambda: (evicted.append(name), reg.release(peer, "198.51.100.7")))
        if wants:
            reg.listed(name)  # it asked for data: a transfer

    holder("transferring", 0.0, wants=True)
    holder("idle-a", 1.0)
    holder("idle-b", 2.0)
    assert not reg.try_acquire(b"honest".ljust(32), "203.0.113.9", 1.0 + LISTING_GRACE - 0.1)  # within the grace
    assert not reg.try_acquire(b"idle-a".ljust(32, b"."), "198.51.100.7", 100.0)  # over its own cap: displaces no one
    assert evicted == []
    assert reg.try_acquire(b"honest".ljust(32), "203.0.113.9", 1.0 + LISTING_GRACE)
    assert evicted == ["idle-a"] and reg.active_sessions == 3
    assert not reg.try_acquire(b"second".ljust(32), None, 2.0 + LISTING_GRACE - 0.1)  # idle-b: not yet
    assert reg.try_acquire(b"second".ljust(32), None, 2.0 + LISTING_GRACE)
    assert evicted == ["idle-a", "idle-b"]
    assert not reg.try_acquire(b"third".ljust(32), None, 1000.0)  # only the transfer and the newcomers are left
    assert evicted == ["idle-a", "idle-b"]


async def test_receivers_that_never_ask_for_data_give_their_slots_to_a_newcomer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real receivers that proved the key sit at their question (an
    ``approve`` that never returns) and hold both slots: a third receiver
    gets BUSY until they waited the grace, then gets the share."""
    from p2pshare.transfer import registry as registry_module
    from p2pshare.transfer.errors import BusyError
    from p2pshare.transfer.manifest import Manifest

    monkeypatch.setattr(registry_module, "LISTING_GRACE", 0.5)
    _, key, registry = share(tmp_path)
    registry.max_sessions = 2
    asked = trio.Semaphore(0)

    async def never_answers(_m: Manifest, _needed: object) -> None:
        asked.release()
        await trio.sleep_forever()

    outcomes: list[object] = []

    async def idle(i: int) -> None:
        outcome, _ = await run_pair(registry, key, tmp_path / f"idle{i}", approve=never_answers)  # type: ignore[arg-type]
        outcomes.append(outcome)

    async with trio.open_nursery() as nursery:
        for i in range(2):
            nursery.start_soon(idle, i)
        for _ in range(2):
            await asked.acquire()
        assert registry.active_sessions == 2
        early, _ = await run_pair(registry, key, tmp_path / "early")
        assert isinstance(early, BusyError), early  # within the grace: the slots stay theirs
        await trio.sleep(0.6)
        result, _ = await run_pair(registry, key, tmp_path / "out")
        assert not isinstance(result, Exception), result
        got = (tmp_path / "out" / "tree" / "big.bin").read_bytes()
        assert got == (tmp_path / "src" / "tree" / "big.bin").read_bytes()
        assert registry.active_sessions == 1  # the newcomer's slot given back; one holder keeps its own
        assert outcomes == []  # the displaced one hears BUSY after its answer, which never comes
        nursery.cancel_scope.cancel()
    assert registry.active_sessions == 0


async def test_a_receiver_displaced_at_its_question_hears_busy_after_the_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BUSY that arrives while the person reads the list does not cut the
    question: cut, its thread went on reading the person's answer for
    nobody, and the question asked again after the reconnect waited for
    another line. The fetch says BUSY after the answer (``get`` then
    reconnects with the share accepted, and does not ask again)."""
    from p2pshare.transfer import registry as registry_module
    from p2pshare.transfer.errors import BusyError
    from p2pshare.transfer.manifest import Manifest

    monkeypatch.setattr(registry_module, "LISTING_GRACE", 0.0)
    _, key, registry = share(tmp_path)
    registry.max_sessions = 1
    at_question, displaced = trio.Event(), trio.Event()
    answered: list[bool] = []
    outcomes: list[object] = []

    async def slow_person(_m: Manifest, _needed: object) -> None:
        at_question.set()
        await displaced.wait()  # the newcomer took our slot meanwhile
        await trio.sleep(0.2)
        answered.append(True)

    async def holder() -> None:
        outcome, _ = await run_pair(registry, key, tmp_path / "slow", approve=slow_person)  # type: ignore[arg-type]
        outcomes.append(outcome)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(holder)
        await at_question.wait()
        result, _ = await run_pair(registry, key, tmp_path / "out")
        assert not isinstance(result, Exception), result
        displaced.set()
    assert answered == [True], "the question was cut"
    assert len(outcomes) == 1 and isinstance(outcomes[0], BusyError), outcomes
