"""The pure state machines driven against each other in memory (no I/O)."""

from __future__ import annotations

import hashlib
import os

import pytest

from p2pshare.transfer import crypto, wire
from p2pshare.transfer.errors import AuthenticationError, IntegrityError, ProtocolError, UnknownShareError
from p2pshare.transfer.manifest import FileEntry, Manifest, make_manifest
from p2pshare.transfer.receiver import ChunkArrived, EndOfChunks, HandshakeComplete, ManifestReady, ReceiverProtocol
from p2pshare.transfer.receiver import State as RState
from p2pshare.transfer.sharer import ReceiverAuthenticated, ReceiverDone, ShareMaterial, SharerProtocol, WantReceived

CS = 64 * 1024
S_ID, R_ID = b"sharer-id", b"receiver-id"


def content() -> list[bytes]:
    return [os.urandom(CS * 2 + 5), b"", os.urandom(10)]


def manifest_for(datas: list[bytes]) -> Manifest:
    files = []
    for i, data in enumerate(datas):
        chunks = tuple(hashlib.sha256(data[o : o + CS]).digest() for o in range(0, len(data), CS))
        files.append(FileEntry(f"f{i}", len(data), hashlib.sha256(data).digest(), chunks))
    return make_manifest(name="t", description="", sharer=None, chunk_size=CS, files=files, dirs=["d"])


class Pair:
    def __init__(self, key: bytes, receiver_keys: crypto.ShareKeys | None = None) -> None:
        self.datas = content()
        self.material = ShareMaterial.build(crypto.ShareKeys.derive(key), manifest_for(self.datas))
        shares = {self.material.keys.share_id: self.material}
        self.s = SharerProtocol(shares.get, local_peer_id=S_ID, remote_peer_id=R_ID)
        self.r = ReceiverProtocol(receiver_keys or self.material.keys, local_peer_id=R_ID, remote_peer_id=S_ID)

    def r_to_s(self) -> list[object]:
        return list(self.s.receive_data(self.r.data_to_send()))

    def s_to_r(self) -> list[object]:
        return list(self.r.receive_data(self.s.data_to_send()))

    def handshake(self) -> Manifest:
        self.r.initiate()
        assert self.r_to_s() == []  # HELLO -> CHALLENGE
        assert self.s_to_r() == []  # CHALLENGE -> PROOF
        assert self.r_to_s() == [ReceiverAuthenticated(self.material.keys.share_id)]
        events = self.s_to_r()
        assert events[0] == HandshakeComplete()
        assert isinstance(events[1], ManifestReady)
        return events[1].manifest

    def chunk_frame(self, index: int, *, as_index: int | None = None, flip: bool = False) -> bytes:
        m = self.material.manifest
        f, c = m.locate(index)
        data = self.datas[f][c * CS : (c + 1) * CS]
        nonce, ct = self.material.cipher.seal(f, c, c == len(m.files[f].chunk_hashes) - 1, data)
        if flip:
            ct = bytes([ct[0] ^ 1]) + ct[1:]
        return wire.chunk_frame(index if as_index is None else as_index, nonce, ct)


def test_happy_path() -> None:
    p = Pair(os.urandom(32))
    manifest = p.handshake()
    assert manifest == p.material.manifest
    p.r.send_want([(0, manifest.total_chunks)])
    assert p.r_to_s() == [WantReceived(((0, 4),))]
    frames = b"".join(p.chunk_frame(i) for i in range(4))
    events = p.r.receive_data(frames)
    assert [type(e) for e in events] == [ChunkArrived] * 4
    assert p.r.cipher is not None
    got: dict[int, bytes] = {}
    for e in events:
        assert isinstance(e, ChunkArrived)
        got.setdefault(e.file_index, b"")
        got[e.file_index] += p.r.cipher.open(e.file_index, e.chunk_index, e.is_last, e.nonce, e.ciphertext)
    assert got == {0: p.datas[0], 2: p.datas[2]}
    p.s.send_end()
    assert p.s_to_r() == [EndOfChunks()]
    p.r.send_done()
    assert p.r_to_s() == [ReceiverDone()]


def test_partial_want() -> None:
    p = Pair(os.urandom(32))
    p.handshake()
    p.r.send_want([(1, 2), (3, 4)])
    assert p.r_to_s() == [WantReceived(((1, 2), (3, 4)))]
    with pytest.raises(IntegrityError, match="out of order"):
        p.r.receive_data(p.chunk_frame(3))
    assert p.r.failed


def test_wrong_key_looks_like_unknown_share() -> None:
    p = Pair(os.urandom(32), receiver_keys=crypto.ShareKeys.derive(os.urandom(32)))
    p.r.initiate()
    with pytest.raises(UnknownShareError):
        p.r_to_s()
    with pytest.raises(UnknownShareError):
        p.s_to_r()


def test_receiver_without_key_fails_auth_and_learns_nothing() -> None:
    real = os.urandom(32)
    share_id = crypto.ShareKeys.derive(real).share_id
    fake = crypto.ShareKeys(share_id, os.urandom(32), os.urandom(32))  # knows the ID, not the key
    p = Pair(real, receiver_keys=fake)
    p.r.initiate()
    p.r_to_s()
    p.s_to_r()
    with pytest.raises(AuthenticationError):
        p.r_to_s()
    out = p.s.data_to_send()
    assert out[0] == wire.MsgType.ERROR  # only an ERROR frame: no ACCEPT, no manifest
    with pytest.raises(AuthenticationError):
        p.r.receive_data(out)


def test_sharer_without_key_is_rejected_before_the_manifest() -> None:
    """Legacy codes carry no peer ID: the sharer must prove it holds the key."""
    real = os.urandom(32)
    keys = crypto.ShareKeys.derive(real)
    p = Pair(real)
    impostor = ShareMaterial.build(crypto.ShareKeys(keys.share_id, os.urandom(32), keys.data_key), p.material.manifest)
    p.s = SharerProtocol({keys.share_id: impostor}.get, local_peer_id=S_ID, remote_peer_id=R_ID)
    p.r.initiate()
    p.r_to_s()
    p.s_to_r()
    with pytest.raises(AuthenticationError):
        p.r_to_s()  # the impostor cannot check our proof either...
    p2 = Pair(real)
    p2.s = SharerProtocol({keys.share_id: impostor}.get, local_peer_id=S_ID, remote_peer_id=R_ID)
    # ...so give it our valid proof by skipping its check: feed ACCEPT with a bad MAC + a manifest.
    p2.r.initiate()
    p2.r_to_s()
    p2.s_to_r()
    p2.r.data_to_send()
    nonce, ct = crypto.seal_manifest(keys, p.material.manifest_bytes)
    forged = wire.encode(wire.Accept(os.urandom(32))) + wire.encode(wire.ManifestMsg(nonce, ct))
    with pytest.raises(AuthenticationError):
        p2.r.receive_data(forged)
    assert p2.r.manifest is None


def test_proof_replayed_with_another_peer_id_fails() -> None:
    key = os.urandom(32)
    keys = crypto.ShareKeys.derive(key)
    material = ShareMaterial.build(keys, manifest_for(content()))
    lookup = {keys.share_id: material}.get
    nonce_r, nonce_s = os.urandom(32), os.urandom(32)
    # A genuine receiver R talks to S; an eavesdropping relay records its PROOF.
    r = ReceiverProtocol(keys, local_peer_id=R_ID, remote_peer_id=S_ID, nonce=nonce_r)
    s = SharerProtocol(lookup, local_peer_id=S_ID, remote_peer_id=R_ID, nonce=nonce_s)
    r.initiate()
    s.receive_data(r.data_to_send())
    r.receive_data(s.data_to_send())
    proof_frame = r.data_to_send()
    # The attacker (another peer ID) opens its own session and even gets the same
    # nonces: the replayed proof still fails because it binds R's peer ID.
    s2 = SharerProtocol(lookup, local_peer_id=S_ID, remote_peer_id=b"attacker", nonce=nonce_s)
    s2.receive_data(wire.encode(wire.Hello(keys.share_id, nonce_r)))
    with pytest.raises(AuthenticationError):
        s2.receive_data(proof_frame)
    # Sanity: the same proof is accepted in the session it was made for.
    assert s.receive_data(proof_frame) == [ReceiverAuthenticated(keys.share_id)]


def test_tampered_manifest() -> None:
    p = Pair(os.urandom(32))
    p.r.initiate()
    p.r_to_s()
    p.s_to_r()
    p.r_to_s()
    out = bytearray(p.s.data_to_send())
    out[-1] ^= 1
    with pytest.raises(IntegrityError, match="manifest"):
        p.r.receive_data(bytes(out))


def test_chunk_integrity_checks() -> None:
    p = Pair(os.urandom(32))
    p.handshake()
    p.r.send_want([(0, 4)])
    p.r_to_s()
    with pytest.raises(IntegrityError, match="out of order"):
        p.r.receive_data(p.chunk_frame(1))
    p = Pair(os.urandom(32))
    p.handshake()
    p.r.send_want([(0, 1)])
    p.r_to_s()
    (ev,) = p.r.receive_data(p.chunk_frame(0, flip=True))
    assert isinstance(ev, ChunkArrived) and p.r.cipher is not None
    with pytest.raises(crypto.DecryptError):
        p.r.cipher.open(ev.file_index, ev.chunk_index, ev.is_last, ev.nonce, ev.ciphertext)
    with pytest.raises(IntegrityError, match="not requested"):
        p.r.receive_data(p.chunk_frame(1))


def test_chunk_relabelled_to_another_index_fails_to_open() -> None:
    p = Pair(os.urandom(32))
    p.handshake()
    p.r.send_want([(1, 2)])
    p.r_to_s()
    # chunk 0's data sent claiming to be chunk 1 (same length: both full chunks)
    (ev,) = p.r.receive_data(p.chunk_frame(0, as_index=1))
    assert isinstance(ev, ChunkArrived) and p.r.cipher is not None
    with pytest.raises(crypto.DecryptError):
        p.r.cipher.open(ev.file_index, ev.chunk_index, ev.is_last, ev.nonce, ev.ciphertext)


def test_early_end_is_truncation() -> None:
    p = Pair(os.urandom(32))
    p.handshake()
    p.r.send_want([(0, 4)])
    p.r_to_s()
    p.r.receive_data(p.chunk_frame(0))
    p.s.state = p.s.state.SENDING
    p.s.send_end()
    with pytest.raises(IntegrityError, match="ended the transfer early"):
        p.s_to_r()


@pytest.mark.parametrize("ranges", [[(0, 5)], [(2, 3), (1, 2)], [(0, 2), (1, 3)], [(1, 1)]])
def test_bad_want_ranges(ranges: list[tuple[int, int]]) -> None:
    p = Pair(os.urandom(32))
    p.handshake()
    frame = wire.encode(wire.Want(tuple(ranges)))
    with pytest.raises(ProtocolError, match="bad WANT"):
        p.s.receive_data(frame)
    assert p.s.data_to_send()[0] == wire.MsgType.ERROR


def test_out_of_order_messages_are_protocol_errors() -> None:
    p = Pair(os.urandom(32))
    p.r.initiate()
    p.r_to_s()
    with pytest.raises(ProtocolError, match="unexpected Accept"):
        p.r.receive_data(wire.encode(wire.Accept(b"x" * 32)))
    p = Pair(os.urandom(32))
    with pytest.raises(ProtocolError, match="unexpected Proof"):
        p.s.receive_data(wire.encode(wire.Proof(b"x" * 32)))
    p = Pair(os.urandom(32))
    p.handshake()
    with pytest.raises(ProtocolError, match="unexpected chunk"):
        p.r.receive_data(p.chunk_frame(0))


def test_bad_version() -> None:
    p = Pair(os.urandom(32))
    hello = wire.encode(wire.Hello(p.material.keys.share_id, b"n" * 32, version=9))
    with pytest.raises(ProtocolError, match="version"):
        p.s.receive_data(hello)


def test_error_frames_map_to_exceptions() -> None:
    p = Pair(os.urandom(32))
    p.r.initiate()
    p.r.data_to_send()
    with pytest.raises(IntegrityError, match="changed"):
        p.r.receive_data(wire.encode(wire.Error(wire.ErrorCode.SOURCE_CHANGED, "x")))
    assert p.r.state is RState.FAILED
    assert p.r.data_to_send() == b""  # no ERROR answered to an ERROR
