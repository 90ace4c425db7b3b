"""A hostile sharer (hand-built frames, it holds the key) or a tampering path."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
from xfer_helpers import RECEIVER_ID, SHARER_ID, MemByteStream, make_tree, stream_pair

from p2pshare.cli import exit_code_for
from p2pshare.transfer import ShareRegistry, build_manifest, crypto, fetch, serve_transfer, wire
from p2pshare.transfer.errors import IntegrityError, OutputError, ProtocolError, StreamEndedError, TransferError

CS = 64 * 1024


class EvilSharer:
    """Speaks the protocol correctly up to the manifest, then misbehaves."""

    def __init__(self, stream: MemByteStream, key: bytes) -> None:
        self.s = stream
        self.keys = crypto.ShareKeys.derive(key)
        self.dec = wire.FrameDecoder(wire.TO_SHARER)
        self.pending: list[wire.Message] = []

    async def recv(self) -> wire.Message | None:
        while not self.pending:
            data = await self.s.read(1 << 16)
            if not data:
                return None
            self.pending.extend(self.dec.feed(data))
        return self.pending.pop(0)

    async def handshake(self, manifest_json: bytes) -> None:
        hello = await self.recv()
        assert isinstance(hello, wire.Hello)
        nonce_s = os.urandom(32)
        await self.s.write(wire.encode(wire.Challenge(nonce_s)))
        assert isinstance(await self.recv(), wire.Proof)
        mac = crypto.proof(
            self.keys,
            sharer=True,
            nonce_r=hello.nonce,
            nonce_s=nonce_s,
            sharer_peer_id=SHARER_ID,
            receiver_peer_id=RECEIVER_ID,
        )
        nonce, ct = crypto.seal_manifest(self.keys, manifest_json)
        await self.s.write(wire.encode(wire.Accept(mac)) + wire.encode(wire.ManifestMsg(nonce, ct)))

    def chunk(self, digest: bytes, index: int, file_index: int, chunk_index: int, is_last: bool, data: bytes) -> bytes:
        nonce, ct = crypto.ChunkCipher(self.keys, digest).seal(file_index, chunk_index, is_last, data)
        return wire.chunk_frame(index, nonce, ct)


def manifest_json(files: list[tuple[str, bytes]], dirs: list[str] | None = None) -> bytes:
    """Hand-built JSON, bypassing every check the real encoder applies."""
    entries = []
    for path, data in files:
        chunks = b"".join(hashlib.sha256(data[o : o + CS]).digest() for o in range(0, len(data), CS))
        entries.append(
            {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "chunks": chunks.hex()}
        )
    obj = {
        "version": 1,
        "name": "evil",
        "description": "",
        "sharer": None,
        "chunk_size": CS,
        "dirs": dirs or [],
        "files": entries,
    }
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


async def against_evil(tmp_path: Path, behave: Callable[[EvilSharer, bytes], Awaitable[None]]) -> TransferError | None:
    key = secrets.token_bytes(32)
    r, s = stream_pair()
    evil = EvilSharer(s, key)
    caught: TransferError | None = None

    async def run_evil() -> None:
        await behave(evil, key)
        await evil.s.close_write()  # like a real peer after ERROR: lets the receiver finish at once

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_evil)
            try:
                await fetch(
                    r, key=key, output_dir=tmp_path / "out", local_peer_id=RECEIVER_ID, remote_peer_id=SHARER_ID
                )
            except TransferError as exc:
                caught = exc
            await r.reset()
            nursery.cancel_scope.cancel()
    return caught


def all_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


@pytest.mark.parametrize(
    "path",
    [
        "../escaped",
        "a/../../escaped",
        "/ABS/escaped",
        "sub/../../escaped",
        "..",
        ".p2pshare-partial/0",
        "x\\..\\escaped",
    ],
)
async def test_path_traversal_rejected(tmp_path: Path, path: str) -> None:
    path = path.replace("/ABS", str(tmp_path))

    async def behave(evil: EvilSharer, key: bytes) -> None:
        await evil.handshake(manifest_json([(path, b"pwned")]))
        await evil.recv()

    before = all_files(tmp_path)
    err = await against_evil(tmp_path, behave)
    assert isinstance(err, ProtocolError) and "unsafe path" in str(err)
    assert exit_code_for(err) == 4
    assert all_files(tmp_path) - before <= {"out"}  # nothing written anywhere (output dir may be created)
    assert not (tmp_path / "escaped").exists()


async def test_symlink_in_output_pointing_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    os.symlink(outside, tmp_path / "out" / "link")
    data = os.urandom(1000)

    async def behave(evil: EvilSharer, key: bytes) -> None:
        m = manifest_json([("link/x", data)], ["link"])
        await evil.handshake(m)
        want = await evil.recv()
        if isinstance(want, wire.Want):  # (it should never get this far)
            await evil.s.write(evil.chunk(hashlib.sha256(m).digest(), 0, 0, 0, True, data) + wire.encode(wire.End()))
            await evil.recv()

    err = await against_evil(tmp_path, behave)
    assert isinstance(err, OutputError) and exit_code_for(err) == 2
    assert list(outside.iterdir()) == []


async def test_real_sharer_cannot_write_through_output_symlink(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    registry = ShareRegistry()
    registry.add(build_manifest([make_tree(tmp_path / "src")], name="t", chunk_size=CS, key=key))
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out" / "tree").mkdir(parents=True)
    os.symlink(outside, tmp_path / "out" / "tree" / "sub")
    r, s = stream_pair()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: serve_transfer(s, registry=registry, local_peer_id=SHARER_ID, remote_peer_id=RECEIVER_ID)
            )
            with pytest.raises(OutputError):
                await fetch(
                    r, key=key, output_dir=tmp_path / "out", local_peer_id=RECEIVER_ID, remote_peer_id=SHARER_ID
                )
    assert list(outside.iterdir()) == []


def _two_chunk_file() -> tuple[bytes, bytes, bytes]:
    data = os.urandom(CS + 100)
    m = manifest_json([("f", data)])
    return data, m, hashlib.sha256(m).digest()


@pytest.mark.parametrize("attack", ["reorder", "duplicate", "early_end", "swap_flag", "oversize", "eof"])
async def test_bad_chunk_streams(tmp_path: Path, attack: str) -> None:
    data, m, digest = _two_chunk_file()

    async def behave(evil: EvilSharer, key: bytes) -> None:
        await evil.handshake(m)
        assert isinstance(await evil.recv(), wire.Want)
        c0 = evil.chunk(digest, 0, 0, 0, False, data[:CS])
        c1 = evil.chunk(digest, 1, 0, 1, True, data[CS:])
        frames = {
            "reorder": c1 + c0,
            "duplicate": c0 + c0 + c1,
            "early_end": c0 + wire.encode(wire.End()),
            # chunk 0 claims to be the file's last chunk: AAD mismatch
            "swap_flag": evil.chunk(digest, 0, 0, 0, True, data[:CS]) + c1,
            "oversize": wire.chunk_frame(0, b"n" * 12, b"x" * (CS + 17)),
            "eof": c0,
        }[attack]
        await evil.s.write(frames + (b"" if attack in ("early_end", "eof") else wire.encode(wire.End())))
        if attack != "eof":
            await evil.recv()

    err = await against_evil(tmp_path, behave)
    assert err is not None
    expected = {"oversize": ProtocolError, "eof": StreamEndedError}.get(attack, IntegrityError)
    assert isinstance(err, expected), err
    assert not (tmp_path / "out" / "f").exists()


async def test_inconsistent_manifest_whole_hash(tmp_path: Path) -> None:
    """Chunks that pass AES-GCM but disagree with the manifest never become a file."""
    data = os.urandom(CS + 100)
    m = manifest_json([("f", data)])
    digest = hashlib.sha256(m).digest()
    other = os.urandom(CS)

    async def behave(evil: EvilSharer, key: bytes) -> None:
        await evil.handshake(m)
        await evil.recv()
        await evil.s.write(
            evil.chunk(digest, 0, 0, 0, False, other)
            + evil.chunk(digest, 1, 0, 1, True, data[CS:])
            + wire.encode(wire.End())
        )
        await evil.recv()

    err = await against_evil(tmp_path, behave)
    assert isinstance(err, IntegrityError)
    assert not (tmp_path / "out" / "f").exists()
    # Caught at the chunk itself (its SHA-256 is checked on live data, not
    # only the whole file at the end), before anything was written.
    assert "chunk 0" in str(err) and "does not match its hash" in str(err), err
    partial = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert all(other not in p.read_bytes() for p in partial)


class FlippingStream(MemByteStream):
    """Flips one bit at a given offset of everything read (a tampering relay)."""

    def __init__(self, inner: MemByteStream, offset: int) -> None:
        super().__init__(inner._s)
        self.offset = offset

    async def read(self, max_bytes: int) -> bytes:
        start = self.read_bytes
        data = await super().read(max_bytes)
        if start <= self.offset < start + len(data):
            i = self.offset - start
            data = data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1 :]
        return data


async def test_tampering_in_flight(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    registry = ShareRegistry()
    registry.add(build_manifest([make_tree(tmp_path / "src")], name="t", chunk_size=CS, key=key))
    r, s = stream_pair()
    flipping = FlippingStream(r, 1_000_000)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: serve_transfer(s, registry=registry, local_peer_id=SHARER_ID, remote_peer_id=RECEIVER_ID)
            )
            with pytest.raises(IntegrityError):
                await fetch(
                    flipping, key=key, output_dir=tmp_path / "out", local_peer_id=RECEIVER_ID, remote_peer_id=SHARER_ID
                )
    assert not (tmp_path / "out" / "tree" / "big.bin").exists()
