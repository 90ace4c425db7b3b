"""A sharer that holds the key and changes its story between attempts:
``python -m tests.hostile.switching_sharer MODE``.

Prints a v1 share code (its peer ID, a loopback address, a random key) as
the first line of stdout. It runs the real handshake and key proof
(``SharerProtocol``), so every manifest it sends is sealed with the share
key and authenticates; what it abuses is ``get``'s trust across attempts
(found by a hostile-peer review, stop 42):

* ``switch``: the first stream offers one small file ("holiday photo");
  after the receiver's WANT it resets the stream, and every later stream
  offers 20 other files (``surprise/*.sh``) and serves them.
* ``text-then-files``: the first stream offers a text share (printed, never
  asked about), then resets; later streams offer 5 files and serve them.
* ``prepare-forever``: says it is still hashing (PREPARING), one more byte
  of a 2**63-byte total every 0.2 s, and never sends a manifest.
* ``chunk-per-attempt``: one 4 MiB file in 64 KiB chunks: the first stream
  sends all but 12 chunks, then each stream sends one chunk and resets, then
  the last sends the rest (``get`` re-hashed everything at each attempt).
* ``new-share-per-attempt``: each stream offers another 2-chunk share,
  sends one chunk and resets: progress each time, so ``--timeout`` never
  ran out (a hostile-peer review, stop 44: 111 attempts in 25 s).
"""

from __future__ import annotations

import hashlib
import os
import sys

import trio

from p2pshare import sharecode
from p2pshare.node.host import LibP2PByteStream, open_host
from p2pshare.node.identity import generate_identity
from p2pshare.node.textshare import TEXT_MARK
from p2pshare.transfer import crypto, wire
from p2pshare.transfer.manifest import FileEntry, make_manifest
from p2pshare.transfer.sharer import (
    PendingShare,
    ReceiverAuthenticated,
    ReceiverDone,
    ShareMaterial,
    SharerProtocol,
    WantReceived,
)
from tests.hostile.sharer import serve_forever

CHUNK = 1 << 16
#: One attempt's share: its material, each file's bytes, and how many chunks
#: to send after the receiver's WANT before resetting the stream (None: all).
Plan = tuple[ShareMaterial, list[bytes], int | None]


def _share(
    keys: crypto.ShareKeys, name: str, description: str, files: dict[str, bytes]
) -> tuple[ShareMaterial, list[bytes]]:
    entries = [
        FileEntry(
            path,
            len(data),
            hashlib.sha256(data).digest(),
            tuple(hashlib.sha256(data[i : i + CHUNK]).digest() for i in range(0, len(data), CHUNK)),
        )
        for path, data in files.items()
    ]
    manifest = make_manifest(name=name, description=description, sharer=None, chunk_size=CHUNK, files=entries, dirs=())
    return ShareMaterial.build(keys, manifest), list(files.values())


def _plans(mode: str, keys: crypto.ShareKeys) -> list[Plan]:
    others = {f"surprise/file{i:02d}.sh": b"echo %d\n" % i for i in range(20)}
    if mode == "switch":
        first = _share(keys, "holiday photo", "", {"photo.jpg": b"x" * 1000})
        return [(*first, 0), (*_share(keys, "something else", "", others), None)]
    if mode == "text-then-files":
        first = _share(keys, "text", TEXT_MARK, {"text.txt": b"hello\n"})
        five = dict(list(others.items())[:5])
        return [(*first, 0), (*_share(keys, "files", "", five), None)]
    if mode == "prepare-forever":
        return [(*_share(keys, "x", "", {"a.txt": b"a"}), None)]
    if mode == "new-share-per-attempt":  # every attempt "progresses" (one chunk) on another share
        return [(*_share(keys, f"share {i}", "", {"a.bin": os.urandom(2 * CHUNK)}), 1) for i in range(200)]
    if mode == "chunk-per-attempt":
        big = _share(keys, "big", "", {"big.bin": os.urandom(64 * CHUNK)})
        return [(*big, 64 - 12), *[(*big, 1)] * 12, (*big, None)]
    raise SystemExit(f"unknown mode {mode}")


async def _prepare_forever(proto: SharerProtocol, stream: LibP2PByteStream) -> None:
    done = 0
    while True:
        done += 1
        proto.preparing(done, 1 << 63)
        await stream.write(proto.data_to_send())
        await trio.sleep(0.2)


async def _serve(plan: Plan, stream: LibP2PByteStream, local: bytes, mode: str) -> None:
    material, datas, send_before_reset = plan
    served = PendingShare(material.keys) if mode == "prepare-forever" else material
    proto = SharerProtocol(
        lambda sid: served if sid == material.keys.share_id else None,
        local_peer_id=local,
        remote_peer_id=stream.remote_peer_id_bytes,
    )
    manifest = material.manifest
    while True:
        data = await stream.read(1 << 16)
        if not data:
            return
        events = proto.receive_data(data)
        await stream.write(proto.data_to_send())
        for ev in events:
            if isinstance(ev, ReceiverAuthenticated) and mode == "prepare-forever":
                await _prepare_forever(proto, stream)
            if isinstance(ev, WantReceived):
                for sent, g in enumerate(proto.chunks_to_send(ev.ranges)):
                    if sent == send_before_reset:
                        break
                    fi, ci = manifest.locate(g)
                    is_last = ci == len(manifest.files[fi].chunk_hashes) - 1
                    nonce, sealed = material.cipher.seal(fi, ci, is_last, datas[fi][ci * CHUNK : (ci + 1) * CHUNK])
                    await stream.write(wire.chunk_frame(g, nonce, sealed))
                if send_before_reset is not None:
                    await trio.sleep(0.2)  # the chunks are read before the reset
                    await stream.reset()
                    return
                proto.send_end()
                await stream.write(proto.data_to_send())
            if isinstance(ev, ReceiverDone):
                await stream.close_write()
                return


async def main(mode: str) -> None:
    key, human = os.urandom(32), sharecode.new_human_code()
    plans = _plans(mode, crypto.ShareKeys.derive(key, human))
    attempts = [0]
    async with open_host(generate_identity(), ["/ip4/127.0.0.1/tcp/0"]) as host:

        async def handler(stream: LibP2PByteStream) -> None:
            plan = plans[min(attempts[0], len(plans) - 1)]
            attempts[0] += 1
            try:
                await _serve(plan, stream, host.peer_id_bytes, mode)
            except Exception:  # noqa: BLE001 - the receiver hung up or refused us: expected
                return
            finally:
                with trio.CancelScope(shield=True):
                    await stream.reset()

        await serve_forever(host, handler, key, human)


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
