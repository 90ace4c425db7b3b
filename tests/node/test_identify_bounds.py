"""What a peer's identify message can make us keep is bounded (``_libp2p_identify``).

The pure trim on real ``Identify`` messages, then two real hosts: a peer
pushing 1 MB of protocol names, and one pushing 60 kB of them, leave at
most ``MAX_PROTOCOLS`` names in the other's peerstore, while an ordinary
identify is kept whole.
"""

from __future__ import annotations

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.identity.identify.pb.identify_pb2 import Identify

from p2pshare.node import _libp2p_identify as B
from p2pshare.node.host import open_host
from tests.hostile.identify_flood import PUSH, _addr, _varint, message


def _msg(protocols: int = 5, addrs: int = 3) -> Identify:
    msg = Identify()
    msg.protocols.extend(f"/p/{i}" for i in range(protocols))
    msg.listen_addrs.extend(_addr(i) for i in range(addrs))
    msg.agent_version = "test"
    return msg


def test_an_ordinary_message_is_kept_whole() -> None:
    msg = _msg()
    before = msg.SerializeToString()
    assert B.bounded(msg) is msg
    assert msg.SerializeToString() == before


def test_names_and_addresses_are_capped_and_oversized_ones_dropped() -> None:
    msg = _msg(protocols=B.MAX_PROTOCOLS + 30, addrs=B.MAX_ADDRS + 10)
    msg.protocols.insert(0, "/" + "n" * B.MAX_NAME_BYTES)  # too long: dropped, not counted
    msg.listen_addrs.insert(0, b"\x04" * (B.MAX_ADDR_BYTES + 1))
    kept = B.bounded(msg)
    assert kept is not None
    assert list(kept.protocols) == [f"/p/{i}" for i in range(B.MAX_PROTOCOLS)]
    assert list(kept.listen_addrs) == [_addr(i) for i in range(B.MAX_ADDRS)]


def test_a_message_over_the_limit_is_ignored_whole() -> None:
    msg = Identify()
    msg.protocols.extend(f"/x/{i:08d}" for i in range(B.MAX_MESSAGE_BYTES // 12 + 1))
    assert msg.ByteSize() > B.MAX_MESSAGE_BYTES
    assert B.bounded(msg) is None


@pytest.mark.parametrize(("addrs", "kept"), [(4, True), (B.MAX_ADDRS + 1, False)])
def test_a_signed_record_with_too_many_addresses_is_dropped(addrs: int, kept: bool) -> None:
    record, _ = message("record", addrs * 12, create_new_key_pair())
    msg = Identify()
    msg.ParseFromString(record)
    assert msg.HasField("signedPeerRecord")
    assert (B.record_addrs(bytes(msg.signedPeerRecord)) or 0) >= addrs
    msg.listen_addrs.append(_addr(1))
    out = B.bounded(msg)
    assert out is not None and out.HasField("signedPeerRecord") is kept
    assert list(out.listen_addrs) == [_addr(1)]  # the listen addresses stand either way


def test_an_oversized_signed_record_is_dropped() -> None:
    msg = Identify()
    msg.signedPeerRecord = b"\x0a" * (B.MAX_RECORD_BYTES + 1)
    out = B.bounded(msg)
    assert out is not None and not out.HasField("signedPeerRecord")


@pytest.mark.parametrize(("size", "stored"), [(1_000_000, 0), (60_000, B.MAX_PROTOCOLS)])
async def test_a_real_push_of_many_names_leaves_a_bounded_number(size: int, stored: int) -> None:
    async with open_host(create_new_key_pair(), ["/ip4/127.0.0.1/tcp/0"]) as victim:
        addr = f"{victim.listen_addrs()[0]}/p2p/{victim.peer_id}"
        key_pair = create_new_key_pair()
        async with open_host(key_pair, []) as pusher:
            await pusher.connect(victim.peer_id, [addr], timeout=10)
            with trio.fail_after(10):  # the ordinary identify on connect is kept whole
                while not victim.peer_protocols(pusher.peer_id):
                    await trio.sleep(0.02)
            body, entries = message("protocols", size, key_pair)
            assert entries > B.MAX_PROTOCOLS
            stream = await pusher.open_stream(victim.peer_id, PUSH)
            await stream.write(_varint(len(body)) + body)
            await stream.close_write()
            with trio.move_on_after(5):
                await stream.read(1)  # the handler closes its side once it has stored the message
            names = victim.peer_protocols(pusher.peer_id)
            if stored:
                assert names == {f"/x/{i:08d}" for i in range(stored)}
            else:  # ignored whole: what the connect's identify said stands
                assert names and not any(n.startswith("/x/") for n in names)
