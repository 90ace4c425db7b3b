"""PREPARING: a sharer that printed its code before its manifest exists (issue 12).

The pure machines against each other in memory: the key is proved both
ways without a manifest, PREPARING frames follow ACCEPT, the manifest comes
when the material is ready, and the receiver refuses PREPARING from a peer
that has not proved the key.
"""

from __future__ import annotations

import os

import pytest

from p2pshare.transfer import crypto, wire
from p2pshare.transfer.errors import ProtocolError
from p2pshare.transfer.receiver import HandshakeComplete, ManifestReady, ReceiverProtocol, SharerPreparing
from p2pshare.transfer.sharer import PendingShare, ReceiverAuthenticated, ShareMaterial, SharerProtocol
from p2pshare.transfer.sharer import State as SState
from tests.transfer.test_protocol import R_ID, S_ID, content, manifest_for


class PendingPair:
    def __init__(self) -> None:
        keys = crypto.ShareKeys.derive(os.urandom(32))
        self.material = ShareMaterial.build(keys, manifest_for(content()))
        self.shares: dict[bytes, ShareMaterial | PendingShare] = {keys.share_id: PendingShare(keys)}
        self.s = SharerProtocol(self.shares.get, local_peer_id=S_ID, remote_peer_id=R_ID)
        self.r = ReceiverProtocol(keys, local_peer_id=R_ID, remote_peer_id=S_ID)

    def r_to_s(self) -> list[object]:
        return list(self.s.receive_data(self.r.data_to_send()))

    def s_to_r(self) -> list[object]:
        return list(self.r.receive_data(self.s.data_to_send()))

    def authenticated(self) -> PendingPair:
        """HELLO, CHALLENGE, PROOF: the sharer now waits for its material."""
        self.r.initiate()
        self.r_to_s()
        self.s_to_r()
        self.r_to_s()
        return self


def test_wire_roundtrip_and_bounds() -> None:
    frame = wire.encode(wire.Preparing(3, 10))
    dec = wire.FrameDecoder(wire.TO_RECEIVER)
    assert dec.feed(frame) == [wire.Preparing(3, 10)]
    with pytest.raises(ProtocolError, match="more done"):
        wire.FrameDecoder(wire.TO_RECEIVER).feed(wire.frame(wire.MsgType.PREPARING, b"\0" * 7 + b"\2" + b"\0" * 8))
    with pytest.raises(ProtocolError, match="malformed"):
        wire.FrameDecoder(wire.TO_RECEIVER).feed(wire.frame(wire.MsgType.PREPARING, b"\0" * 15))
    with pytest.raises(ProtocolError, match="unexpected"):  # never to the sharer
        wire.FrameDecoder(wire.TO_SHARER).feed(frame)


def test_preparing_before_accept_is_refused() -> None:
    """Only a peer that proved the key may say how far its hashing got."""
    dec = wire.FrameDecoder(wire.TO_RECEIVER, wire.RECEIVER_ORDER)
    with pytest.raises(ProtocolError, match="PREPARING message before ACCEPT"):
        dec.feed(wire.encode(wire.Preparing(0, 1)))


def test_pending_share_proves_the_key_then_prepares_then_serves() -> None:
    p = PendingPair()
    p.r.initiate()
    assert p.r_to_s() == []
    assert p.s_to_r() == []
    assert p.r_to_s() == [ReceiverAuthenticated(p.material.keys.share_id)]
    assert p.s.waiting_for_material and p.s.state is SState.AWAIT_MATERIAL
    assert p.s_to_r() == [HandshakeComplete()]  # ACCEPT only: no manifest yet
    p.s.preparing(10, 100)
    p.s.preparing(50, 100)
    assert p.s_to_r() == [SharerPreparing(10, 100), SharerPreparing(50, 100)]
    p.s.material_ready(p.material)
    assert not p.s.waiting_for_material
    events = p.s_to_r()
    assert len(events) == 1 and isinstance(events[0], ManifestReady)
    assert events[0].manifest == p.material.manifest


def test_preparing_is_clamped_and_only_while_waiting() -> None:
    p = PendingPair().authenticated()
    p.s.preparing(200, 100)  # a racing counter never says more than all
    p.s_to_r()
    p.s.material_ready(p.material)
    with pytest.raises(RuntimeError):
        p.s.preparing(1, 2)
    with pytest.raises(RuntimeError):
        p.s.material_ready(p.material)


def test_material_of_another_share_is_refused() -> None:
    p = PendingPair().authenticated()
    other = ShareMaterial.build(crypto.ShareKeys.derive(os.urandom(32)), p.material.manifest)
    with pytest.raises(ValueError, match="another share"):
        p.s.material_ready(other)


def test_preparing_after_the_manifest_is_a_protocol_error() -> None:
    p = PendingPair().authenticated()
    p.s.material_ready(p.material)
    p.s_to_r()
    with pytest.raises(ProtocolError, match="unexpected Preparing"):
        p.r.receive_data(wire.encode(wire.Preparing(1, 2)))
