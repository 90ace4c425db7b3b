"""A sharer that stalls on purpose: ``python -m tests.hostile.sharer MODE``.

Prints a v1 share code (its peer ID, a loopback address, a random key) as
the first line of stdout, then serves the transfer protocol badly:

* ``silent``: accepts each stream and never says anything (no CHALLENGE);
* ``busy``: answers every HELLO with ERROR BUSY, forever;
* ``trickle``: sends its CHALLENGE one byte every 0.5 s;
* ``hangup``: reads the HELLO, then resets the stream, every time.

Used by tests/cli/test_deadlines.py: ``get --timeout`` must hold against
each (issue 9, finding 2).

Any name of ``tests.hostile.manifest_attacks.ATTACKS`` is a mode too: the
sharer holds the key, so it runs the real handshake (``SharerProtocol``, the
real key proof) and then sends that attack's manifest, sealed with the share
key, or the frames the attack names (issue 9, finding 3). The manifest is
built before the code is printed, so its cost is not on the receiver's clock.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from p2pshare import sharecode
from p2pshare.node.host import LibP2PByteStream, open_host
from p2pshare.node.identity import generate_identity
from p2pshare.transfer import PROTOCOL_ID, crypto, wire
from p2pshare.transfer.manifest import MAX_CHUNK_SIZE, decode, make_manifest
from p2pshare.transfer.sharer import ReceiverAuthenticated, ShareMaterial, SharerProtocol, WantReceived
from tests.hostile.manifest_attacks import ATTACKS, Attack


async def _serve(mode: str, stream: LibP2PByteStream) -> None:
    if mode == "silent":
        await trio.sleep_forever()
    if mode == "busy":
        await stream.read(1 << 16)
        await stream.write(wire.encode(wire.Error(wire.ErrorCode.BUSY, "busy, try again later")))
        await stream.close_write()
        return
    if mode == "trickle":
        for byte in wire.encode(wire.Challenge(os.urandom(32))):
            await stream.write(bytes([byte]))
            await trio.sleep(0.5)
        await trio.sleep_forever()
    if mode == "hangup":
        await stream.read(1 << 16)
        await stream.reset()
        return
    raise SystemExit(f"unknown mode {mode}")


def _material(attack: Attack, keys: crypto.ShareKeys) -> ShareMaterial:
    """The share as ``SharerProtocol`` serves it, with the attack's bytes as
    the manifest (the parsed manifest only matters to check the WANT)."""
    plain = attack.build()
    try:
        parsed = decode(plain) if attack.then else None
    except ValueError:
        parsed = None
    if parsed is None:
        parsed = make_manifest(name="x", description="", sharer=None, chunk_size=1 << 16, files=(), dirs=())
    digest = hashlib.sha256(plain).digest()
    return ShareMaterial(keys, parsed, plain, digest, crypto.ChunkCipher(keys, digest))


def _rewrite(attack: Attack, out: bytes) -> bytes:
    """ACCEPT and MANIFEST as queued; for ``garbage``/``overlong`` another MANIFEST frame."""
    if attack.frame == "sealed":
        return out
    accept = out[: wire.HEADER_BYTES + crypto.MAC_BYTES]
    limit = wire.MAX_BODY[wire.MsgType.MANIFEST]
    if attack.frame == "garbage":
        return accept + wire.frame(wire.MsgType.MANIFEST, os.urandom(limit))
    assert attack.frame == "overlong"
    return accept + wire.HEADER.pack(wire.MsgType.MANIFEST, limit + 1) + os.urandom(limit + 1)


def _chunks(then: str, material: ShareMaterial) -> list[bytes]:
    """CHUNK frames: 1,024 of the manifest's chunk size for an index never
    requested, or one of ``MAX_CHUNK_SIZE`` (over this manifest's limit)."""
    if then == "oversize":
        return [wire.chunk_frame(0, os.urandom(12), os.urandom(MAX_CHUNK_SIZE + crypto.TAG_BYTES))]
    size = material.manifest.chunk_size + crypto.TAG_BYTES
    return [wire.chunk_frame(material.manifest.total_chunks + 7, os.urandom(12), os.urandom(size)) for _ in range(1024)]


async def _serve_attack(attack: Attack, material: ShareMaterial, stream: LibP2PByteStream, local: bytes) -> None:
    proto = SharerProtocol(
        lambda sid: material if sid == material.keys.share_id else None,
        local_peer_id=local,
        remote_peer_id=stream.remote_peer_id_bytes,
    )
    while True:
        data = await stream.read(1 << 16)
        if not data:
            return
        try:
            events = proto.receive_data(data)
        except Exception:  # noqa: BLE001 - the receiver refused us: what we wanted to see
            await stream.write(proto.data_to_send())
            return
        out = proto.data_to_send()
        if any(isinstance(ev, ReceiverAuthenticated) for ev in events):
            out = _rewrite(attack, out)
            if attack.then == "early":
                out += b"".join(_chunks("unrequested", material))
        await stream.write(out)
        if any(isinstance(ev, WantReceived) for ev in events) and attack.then in ("unrequested", "oversize"):
            for blob in _chunks(attack.then, material):
                await stream.write(blob)


async def main(mode: str) -> None:
    attack = ATTACKS.get(mode)
    key, human = os.urandom(32), sharecode.new_human_code()
    material = _material(attack, crypto.ShareKeys.derive(key, human)) if attack is not None else None
    async with open_host(generate_identity(), ["/ip4/127.0.0.1/tcp/0"]) as host:

        async def handler(stream: LibP2PByteStream) -> None:
            try:
                if attack is None or material is None:
                    await _serve(mode, stream)
                    return
                try:
                    await _serve_attack(attack, material, stream, host.peer_id_bytes)
                except Exception:  # noqa: BLE001 - the receiver hung up on us: expected
                    return
            finally:
                with trio.CancelScope(shield=True):
                    await stream.reset()

        await serve_forever(host, handler, key, human)


async def serve_forever(
    host: Any, handler: Callable[[LibP2PByteStream], Awaitable[None]], key: bytes, human: str
) -> None:
    """Serve the transfer protocol with ``handler`` and print the share code
    (this host's loopback address, ``key``, ``human``) as stdout's first line."""
    host.set_stream_handler(PROTOCOL_ID, handler)
    addrs = tuple(a for a in host.listen_addrs() if a.startswith("/ip4/127.0.0.1/"))
    code = sharecode.ShareCode(peer_id=host.peer_id, addresses=addrs, encryption_key=key, share_code=human)
    print(code.encode(), flush=True)
    await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
