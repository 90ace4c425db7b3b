"""Receiver runner: drive ``ReceiverProtocol`` and ``Store`` over a ByteStream.

The event loop only reads the stream and feeds the pure protocol; chunks go
through a small bounded channel to one writer task that decrypts, hashes and
writes them in a worker thread (AES-GCM, hashlib and pwrite off the loop),
so reading the next megabyte overlaps with storing the last one while memory
stays bounded to a few chunks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import trio

from transfer import crypto, ranges, wire
from transfer._trio_io import TaskGroup, await_eof, goodbye, read_some, write_all
from transfer.errors import (
    IntegrityError,
    LocalError,
    OutputError,
    StreamEndedError,
    TransferError,
)
from transfer.events import (
    Authenticated,
    FileCompleted,
    ManifestReceived,
    Progress,
    TransferCompleted,
    TransferEvent,
)
from transfer.manifest import Manifest
from transfer.receiver import ChunkArrived, EndOfChunks, HandshakeComplete, ManifestReady, ReceiverProtocol
from transfer.store import Store
from transfer.stream import ByteStream

log = logging.getLogger("p2pshare.transfer")

T = TypeVar("T")
PIPELINE_DEPTH = 4  # batches (each at most one read's worth of chunks) in flight
PROGRESS_INTERVAL = 0.1


@dataclass(frozen=True)
class FetchResult:
    manifest: Manifest = field(repr=False)
    output_dir: Path
    files: int
    total_bytes: int
    bytes_received: int  # plaintext bytes received in this session
    already_had_bytes: int  # verified bytes found on disk at start
    seconds: float


def _store_batch(store: Store, cipher: crypto.ChunkCipher, batch: list[ChunkArrived]) -> tuple[list[str], int]:
    """Worker thread: open, verify and write a batch of chunks."""
    done: list[str] = []
    nbytes = 0
    for c in batch:
        try:
            plain = cipher.open(c.file_index, c.chunk_index, c.is_last, c.nonce, c.ciphertext)
        except crypto.DecryptError:
            raise IntegrityError(f"chunk {c.index} failed authentication (tampered or corrupted)") from None
        path = store.write_chunk(c.file_index, c.chunk_index, plain, verify=False)
        nbytes += len(plain)
        if path is not None:
            done.append(path)
    return done, nbytes


async def fetch(
    stream: ByteStream,
    *,
    key: bytes,
    output_dir: Path,
    local_peer_id: bytes,
    share_code: str | None = None,
    remote_peer_id: bytes,
    on_event: Callable[[TransferEvent], None] | None = None,
    idle_timeout: float = 120.0,
) -> FetchResult:
    """Fetch the share ``key`` names into ``output_dir``, resuming what is there.

    Raises ``transfer.errors.TransferError`` subclasses; verified data of an
    interrupted transfer stays in ``.p2pshare-partial`` for the next run.
    """
    emit = on_event or (lambda _e: None)
    try:
        keys = crypto.ShareKeys.derive(key, share_code)
    except ValueError as exc:
        raise LocalError(str(exc)) from None
    proto = ReceiverProtocol(keys, local_peer_id=local_peer_id, remote_peer_id=remote_peer_id)
    start = trio.current_time()
    store: Store | None = None
    try:
        proto.initiate()
        await write_all(stream, proto.data_to_send(), idle_timeout, "sharer")
        manifest: Manifest | None = None
        while manifest is None:
            data = await read_some(stream, idle_timeout, "sharer")
            if not data:
                raise StreamEndedError("the sharer closed the connection")
            for ev in proto.receive_data(data):
                if isinstance(ev, HandshakeComplete):
                    emit(Authenticated(remote_peer_id))
                elif isinstance(ev, ManifestReady):
                    manifest = ev.manifest
            await write_all(stream, proto.data_to_send(), idle_timeout, "sharer")
        store = await _disk(output_dir, _open_store, output_dir, manifest, keys.share_id)
        plan = await _disk(output_dir, store.prepare)
        emit(ManifestReceived(manifest, plan.already_have_bytes))
        for path in plan.completed:
            emit(FileCompleted(path))
        proto.send_want(ranges.coarsen(plan.missing, wire.MAX_WANT_RANGES))
        await write_all(stream, proto.data_to_send(), idle_timeout, "sharer")
        received = await _receive(stream, proto, store, emit, plan.already_have_bytes, idle_timeout)
        await _disk(output_dir, store.finish)
        proto.send_done()
        await goodbye(stream, proto.data_to_send())
        await await_eof(stream)  # the sharer has read DONE once it closes its side
        seconds = trio.current_time() - start
        emit(Progress(manifest.total_bytes, manifest.total_bytes))
        emit(TransferCompleted(len(manifest.files), received, seconds))
        return FetchResult(
            manifest=manifest,
            output_dir=output_dir,
            files=len(manifest.files),
            total_bytes=manifest.total_bytes,
            bytes_received=received,
            already_had_bytes=plan.already_have_bytes,
            seconds=seconds,
        )
    except TransferError as exc:
        if isinstance(exc, LocalError):
            proto.send_error(wire.ErrorCode.INTERNAL, "the receiver cannot write the files")
        elif isinstance(exc, IntegrityError):
            proto.send_error(wire.ErrorCode.PROTOCOL, str(exc))
        await goodbye(stream, proto.data_to_send())
        if not isinstance(exc, StreamEndedError):
            await await_eof(stream)
        raise
    finally:
        if store is not None:
            store.close()


async def _disk(where: Path, fn: Callable[..., T], *args: Any) -> T:
    """Run blocking store work in a thread; an unexpected OSError is an OutputError."""
    try:
        return await trio.to_thread.run_sync(fn, *args)
    except OSError as exc:
        raise OutputError(f"cannot write into {where}: {exc.strerror or exc}") from None


def _open_store(output_dir: Path, manifest: Manifest, share_id: bytes) -> Store:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output directory {output_dir}: {exc.strerror or exc}") from None
    return Store(output_dir, manifest, share_id)


async def _receive(
    stream: ByteStream,
    proto: ReceiverProtocol,
    store: Store,
    emit: Callable[[TransferEvent], None],
    verified: int,
    idle_timeout: float,
) -> int:
    """Read chunks until END while a writer task stores them; return bytes received."""
    assert proto.cipher is not None and proto.manifest is not None
    cipher, total = proto.cipher, proto.manifest.total_bytes
    send, recv = trio.open_memory_channel[list[ChunkArrived]](PIPELINE_DEPTH)
    received = 0
    lost: list[StreamEndedError] = []

    async def reader() -> None:
        async with send:
            while True:
                try:
                    data = await read_some(stream, idle_timeout, "sharer")
                    if not data:
                        raise StreamEndedError("the sharer closed the connection")
                except StreamEndedError as exc:
                    lost.append(exc)  # let the writer store what already arrived, for resume
                    return
                events = proto.receive_data(data)
                batch = [e for e in events if isinstance(e, ChunkArrived)]
                if batch:
                    try:
                        await send.send(batch)
                    except trio.BrokenResourceError:
                        return  # the writer failed; its error is the one to report
                if any(isinstance(e, EndOfChunks) for e in events):
                    return

    async def writer() -> None:
        nonlocal received, verified
        last = trio.current_time()
        with recv:  # closed synchronously: a failure here is recorded first
            async for batch in recv:
                done, nbytes = await _disk(store.output_dir, _store_batch, store, cipher, batch)
                received += nbytes
                verified += nbytes
                for path in done:
                    emit(FileCompleted(path))
                now = trio.current_time()
                if now - last >= PROGRESS_INTERVAL:
                    last = now
                    emit(Progress(min(verified, total), total))

    await TaskGroup().run(reader, writer)
    if lost:
        raise lost[0]
    return received
