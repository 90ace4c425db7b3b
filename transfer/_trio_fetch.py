"""Receiver runner: drive ``ReceiverProtocol`` and ``Store`` over a ByteStream.

The event loop reads the stream and feeds the pure protocol. Chunks go
through two stages, each taking every batch that arrived meanwhile: stage 1
decrypts (AES-GCM), checks the chunk's SHA-256 and feeds the whole-file
one, in the event-loop thread; stage 2 writes verified chunks and moves a
file into place once its whole-file hash matched, in a worker thread (one
hop per batch). AES-GCM, hashlib and pwrite release the GIL, so the writes
overlap the rest (one thread doing all of it was the bottleneck: ~0.7 s
wall per 256 MiB, much of it in pwrite).

Why stage 1 has no thread of its own (issue 12): it did, and on two cores
it spent most of its time waiting, not working. A 1 GiB ``get`` kept it
busy ~2.0 s for ~0.85 s of AES and SHA-256: each batch's hop and each
re-take of the GIL after a C call waited for a core that the event loop,
the writer and the sharer were using. Done in the event-loop thread, the
same work took 1.05-1.5 s of it; connect -> done went from 2.24-2.27 to
1.99 s and the receiver's CPU from 2.59-2.66 to 2.44 s (medians of 7 runs
alternated with the two commits before), and its peak RSS from ~103 to
~86 MB. The price is a ceiling on one core's speed (~1.6 s of CPU per
GiB: ~650 MB/s here), far above any link between two machines this tool
serves; a batch (at most ``PIPELINE_BYTES`` and one ``DATA_READ_SIZE``
read, 10 MiB) holds the event loop ~15 ms.
Hashing in the write thread instead was worse (connect -> done 2.31 ->
3.00 s), as was AES-GCM's streaming interface here (2.24 -> 2.33 s), and
SHA-256 in a helper process over shared ``memfd`` buffers (stop 46: 379 and
418 MB/s with it, 417 and 434 without, 1 GiB, medians of 3 alternated): both
ends already keep the two cores ~86 % busy, so moved work only waits.

Memory is bounded in bytes (``PIPELINE_BYTES`` received and not yet
through stage 2, plus one read), not in chunks.

When the sharer stops serving a file (FILE_UNAVAILABLE), the other files
are still received, verified and put in place; the result names the files
that did not arrive, and their verified parts stay in ``.p2pshare-partial``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import trio

from p2pshare.transfer import crypto, wire
from p2pshare.transfer._resume_memo import ResumeMemo
from p2pshare.transfer._trio_io import TaskGroup, await_eof, goodbye, read_pieces_some, read_some, write_all
from p2pshare.transfer.errors import (
    BusyError,
    ConflictError,
    DeclinedError,
    IntegrityError,
    LocalError,
    NoSpaceError,
    OutputBusyError,
    OutputError,
    ShareKeyError,
    StreamEndedError,
    TransferError,
    UnavailableFile,
    cannot_create_output,
    cannot_write,
)
from p2pshare.transfer.events import (
    Authenticated,
    FilesCompleted,
    FileUnavailable,
    ManifestReceived,
    Progress,
    SharerPreparing,
    TransferCompleted,
    TransferEvent,
)
from p2pshare.transfer.gathered import Joiner
from p2pshare.transfer.manifest import Manifest, name_warnings
from p2pshare.transfer.receiver import (
    ChunkArrived,
    EndOfChunks,
    FileNotServed,
    HandshakeComplete,
    ManifestReady,
    ReceiverProtocol,
)
from p2pshare.transfer.receiver import SharerPreparing as _Preparing
from p2pshare.transfer.store import Conflict, Need, Store, Verified
from p2pshare.transfer.stream import ByteStream

log = logging.getLogger(__name__)

T = TypeVar("T")
#: Received but not yet stored bytes before the reader stops reading (the
#: transport's window then holds the sharer back). 8 MiB keeps both stages
#: fed (A/B, same machine and run: ~225 vs ~185 MB/s with 4 MiB; receiver
#: peak RSS ~150-165 MB, the same for 256 MiB and 2 GiB).
PIPELINE_BYTES = 8 << 20
#: Read size while chunks flow. Measured (A/B, same sharer): 1-2 MiB reads
#: beat draining the whole 16 MiB transport window at once (~135 vs ~170
#: MB/s): huge reads mean huge fresh allocations and longer stalls.
DATA_READ_SIZE = 2 << 20
PROGRESS_INTERVAL = 0.1

#: Called with the verified manifest and what it still needs on disk,
#: before anything is written; raises (``DeclinedError``, ``NoSpaceError``) to refuse.
Approve = Callable[[Manifest, Need], Awaitable[None]]
#: Picks the directory a verified manifest is received into (instead of ``output_dir``).
Destination = Callable[[Manifest], Path]


@dataclass(frozen=True)
class FetchResult:
    manifest: Manifest = field(repr=False)
    output_dir: Path
    files: int
    total_bytes: int
    bytes_received: int  # plaintext bytes received in this session
    already_had_bytes: int  # verified bytes found on disk at start
    seconds: float
    #: Files the sharer stopped serving and that are not here (the rest are).
    unavailable: tuple[UnavailableFile, ...] = ()
    #: (manifest path, the name it was saved under) for files saved beside another (--rename).
    renamed: tuple[tuple[str, str], ...] = ()


def _verify_batch(
    store: Store, cipher: crypto.ChunkCipher, joiner: Joiner, batch: list[ChunkArrived]
) -> tuple[list[Verified], int]:
    """Stage 1 (event-loop thread): authenticate (GCM) and hash-check a batch.

    Returns the chunks for stage 2 and the plaintext bytes received (also
    counting chunks not needed because their file was already complete).
    ``joiner``: this stage's buffer for a chunk that arrived in pieces."""
    out: list[Verified] = []
    nbytes = 0
    for c in batch:
        # Large files: decrypted straight into an aligned buffer that the
        # writer writes around the page cache (``transfer._direct``).
        size = len(c.ciphertext) - crypto.TAG_BYTES
        block = store.block_for(c.file_index) if size > 0 else None
        try:
            if block is None:
                plain: bytes | memoryview = cipher.open(c.file_index, c.chunk_index, c.is_last, c.nonce, c.ciphertext)
            else:
                plain = memoryview(block)[:size]
                cipher.open_into(c.file_index, c.chunk_index, c.is_last, c.nonce, c.ciphertext, plain, joiner)
        except crypto.DecryptError:
            raise IntegrityError(f"chunk {c.index} failed authentication (tampered or corrupted)") from None
        nbytes += len(plain)
        verified = store.verify_chunk(c.file_index, c.chunk_index, plain, block=block)  # both SHA-256s
        if verified is not None:
            out.append(verified)
        else:
            store.give_block(block)
    return out, nbytes


async def _asked_while_watching(
    stream: ByteStream, proto: ReceiverProtocol, ask: Callable[[], Awaitable[None]], early: list[FileNotServed]
) -> None:
    """``ask()`` (the consent question, maybe minutes at a terminal) while
    the stream is read: a sharer that stops meanwhile says ERROR STOPPED,
    and that ends the question and ``get`` at once ("the sharer stopped
    sharing", exit 3). Unread, it was lost when the sharer went: the
    person answered ``y`` and ``get`` then retried for its whole
    ``--timeout`` (a README walk-through, stop 45). Reads lose nothing
    when cancelled; a stream that breaks meanwhile is left to the transfer,
    which meets it after the answer (and reconnects). So is BUSY (our
    session slot went to a newcomer while the person read: stop 46): said
    after the answer, so that ``get`` reconnects with the share accepted;
    ending the question then left its thread reading the person's answer
    for nobody, and the question asked again after the reconnect waited
    for another line."""
    watching = trio.CancelScope()
    busy: list[BusyError] = []

    async def asking() -> None:
        await ask()
        watching.cancel()

    async def watch() -> None:
        with watching:
            while True:
                try:
                    data = await read_some(stream, math.inf, "sharer")
                except StreamEndedError:
                    data = b""
                if not data:
                    await trio.sleep_forever()  # nothing more will come: the answer decides
                try:
                    events = proto.receive_data(data)  # ERROR STOPPED raises SharerStoppedError
                except BusyError as exc:
                    busy.append(exc)
                    await trio.sleep_forever()
                for ev in events:
                    if isinstance(ev, FileNotServed):
                        early.append(ev)

    await TaskGroup().run(asking, watch)
    if busy:
        raise busy[0]


def _write_batch(store: Store, batch: list[Verified]) -> list[str]:
    """Stage 2 (another worker thread): write; check and move finished files."""
    return store.write_batch(batch)


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
    approve: Approve | None = None,
    conflict: Conflict = Conflict.REFUSE,
    destination: Destination | None = None,
    memo: ResumeMemo | None = None,
) -> FetchResult:
    """Fetch the share ``key`` names into ``output_dir``, resuming what is there.

    Raises ``transfer.errors.TransferError`` subclasses; verified data of an
    interrupted transfer stays in ``.p2pshare-partial`` for the next run.
    Files the sharer stopped serving do not fail the fetch: the others are
    finished and ``FetchResult.unavailable`` names them. ``approve`` sees
    the manifest before anything is written and may refuse it (the consent
    prompt and the fit check of ``get``); ``conflict`` says what to do with
    a file that exists with other content. ``destination``, if given, picks
    the directory from the verified manifest before anything is looked at
    or written there (``get`` receives a text share into a private
    temporary directory: the sharer names its file, so it must never meet
    the receiver's files). ``memo``: one per run, given to each attempt,
    so a reconnect does not re-hash what this run wrote (``_resume_memo``).
    """
    emit = on_event or (lambda _e: None)
    try:
        keys = crypto.ShareKeys.derive(key, share_code)
    except ValueError as exc:
        raise ShareKeyError(str(exc)) from None
    proto = ReceiverProtocol(keys, local_peer_id=local_peer_id, remote_peer_id=remote_peer_id)
    start = trio.current_time()
    store: Store | None = None
    try:
        proto.initiate()
        await write_all(stream, proto.data_to_send(), idle_timeout, "sharer")
        manifest: Manifest | None = None
        early: list[FileNotServed] = []  # notices that came with the manifest
        while manifest is None:
            data = await read_some(stream, idle_timeout, "sharer")
            if not data:
                raise StreamEndedError("the sharer closed the connection")
            # Off the event loop: decoding and checking a manifest of up to
            # 40 MiB (JSON, hashes, the path tree) takes CPU seconds.
            for ev in await trio.to_thread.run_sync(proto.receive_data, data):
                if isinstance(ev, HandshakeComplete):
                    emit(Authenticated(remote_peer_id))
                elif isinstance(ev, _Preparing):
                    emit(SharerPreparing(ev.done, ev.total))
                elif isinstance(ev, ManifestReady):
                    manifest = ev.manifest
                elif isinstance(ev, FileNotServed):
                    early.append(ev)
            await write_all(stream, proto.data_to_send(), idle_timeout, "sharer")
        if destination is not None:
            output_dir = destination(manifest)
        store = await _disk(output_dir, _open_store, output_dir, manifest, keys.share_id, conflict, memo)
        needed = await _disk(output_dir, store.assess)
        if approve is not None:
            await _asked_while_watching(stream, proto, lambda: approve(manifest, needed), early)
            start = trio.current_time()  # the time a person took to answer is not transfer time
        plan = await _disk(output_dir, store.prepare)
        # Asked for first: the sharer sends while the list is checked and shown
        # (100,000 names: ~0.1 s of warnings and, with --json, of listing).
        proto.send_want(proto.plan_want(plan.missing))
        await write_all(stream, proto.data_to_send(), idle_timeout, "sharer")
        warnings = await trio.to_thread.run_sync(name_warnings, manifest)
        emit(ManifestReceived(manifest, plan.already_have_bytes, warnings))
        if plan.completed:
            emit(FilesCompleted(tuple(plan.completed)))
        opened = store

        def not_served(ev: FileNotServed) -> None:
            # A file already here (resumed, or complete before the notice) is not lost.
            if not opened.is_complete(ev.file_index):
                emit(FileUnavailable(opened.manifest.files[ev.file_index].path, ev.reason))

        for ev in early:
            not_served(ev)
        received = await _receive(stream, proto, store, emit, plan.already_have_bytes, idle_timeout, not_served)
        lost = {i: why for i, why in proto.unavailable.items() if not store.is_complete(i)}
        await _disk(output_dir, store.finish, frozenset(lost))
        proto.send_done()
        await goodbye(stream, proto.data_to_send())
        await await_eof(stream)  # the sharer has read DONE once it closes its side
        seconds = trio.current_time() - start
        if not lost:
            emit(Progress(manifest.total_bytes, manifest.total_bytes))
        emit(TransferCompleted(len(manifest.files) - len(lost), received, seconds))
        return FetchResult(
            manifest=manifest,
            output_dir=output_dir,
            files=len(manifest.files),
            total_bytes=manifest.total_bytes,
            bytes_received=received,
            already_had_bytes=plan.already_have_bytes,
            seconds=seconds,
            unavailable=tuple(UnavailableFile(manifest.files[i].path, why) for i, why in sorted(lost.items())),
            renamed=tuple((manifest.files[i].path, name) for i, name in sorted(store.final_names.items())),
        )
    except TransferError as exc:
        if isinstance(exc, LocalError):
            proto.send_error(wire.ErrorCode.INTERNAL, told_sharer(exc))
        elif isinstance(exc, IntegrityError):
            proto.send_error(wire.ErrorCode.PROTOCOL, str(exc))
        await goodbye(stream, proto.data_to_send())
        if not isinstance(exc, StreamEndedError):
            await await_eof(stream)
        raise
    finally:
        if store is not None:
            store.close()


def told_sharer(exc: LocalError) -> str:
    """Why the receiver stops, for the sharer: the kind of local failure,
    never its text (that names the receiver's own paths)."""
    if isinstance(exc, DeclinedError):
        return "the receiver declined the share"
    if isinstance(exc, ConflictError):
        # Found before the person is asked: "other files at these names" let
        # a sharer probe which names a receiver's directory holds (a
        # hostile-peer review, stop 44).
        return "the receiver did not take the share"
    if isinstance(exc, OutputBusyError):
        return "the receiver is already receiving this share into the same place"
    if isinstance(exc, NoSpaceError):
        return "the receiver has no room for the files"
    if isinstance(exc, OutputError):
        return "the receiver cannot write the files"
    return "the receiver stopped because of a problem on its side"


@contextmanager
def _output_errors(where: Path) -> Iterator[None]:
    """Store work on ``where``: an unexpected OSError is an OutputError."""
    try:
        yield
    except OSError as exc:
        raise cannot_write(f"into {where}", exc) from None


async def _disk(where: Path, fn: Callable[..., T], *args: Any) -> T:
    """Run blocking store work in a thread, under ``_output_errors``."""
    with _output_errors(where):
        return await trio.to_thread.run_sync(fn, *args)


def _open_store(
    output_dir: Path, manifest: Manifest, share_id: bytes, conflict: Conflict, memo: ResumeMemo | None
) -> Store:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(cannot_create_output(output_dir, exc)) from None
    store = Store(output_dir, manifest, share_id, conflict)
    if memo is not None:
        store.use_memo(memo)
    return store


class _Budget:
    """Bytes handed from the reader to the stages and not yet stored.

    Waiters park until bytes come back, every one of them woken then (an
    event re-armed per wait would wake only the last waiter if there were
    ever two)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiting = trio.lowlevel.ParkingLot()

    async def wait_for_room(self) -> None:
        while self.used >= self.limit:
            await self._waiting.park()

    def take(self, n: int) -> None:
        self.used += n

    def give_back(self, n: int) -> None:
        self.used -= n
        self._waiting.unpark_all()


async def _receive(
    stream: ByteStream,
    proto: ReceiverProtocol,
    store: Store,
    emit: Callable[[TransferEvent], None],
    verified: int,
    idle_timeout: float,
    not_served: Callable[[FileNotServed], None],
) -> int:
    """Read chunks until END while the two stages store them; return bytes received."""
    assert proto.cipher is not None and proto.manifest is not None
    cipher, total = proto.cipher, proto.manifest.total_bytes
    # Unbounded in count, bounded in bytes by ``budget`` (taken when read,
    # given back after stage 2).
    send, recv = trio.open_memory_channel[list[ChunkArrived]](float("inf"))
    # (stage-1 output, ciphertext bytes to give back, plaintext bytes received)
    send_verified, recv_verified = trio.open_memory_channel[tuple[list[Verified], int, int]](float("inf"))
    budget = _Budget(PIPELINE_BYTES)
    joiner = Joiner()  # stage 1's: one batch at a time
    received = 0
    lost: list[StreamEndedError] = []

    async def reader() -> None:
        async with send:
            while True:
                await budget.wait_for_room()
                try:
                    data = await read_pieces_some(stream, idle_timeout, "sharer", DATA_READ_SIZE)
                    if not data:
                        raise StreamEndedError("the sharer closed the connection")
                except StreamEndedError as exc:
                    lost.append(exc)  # let the stages store what already arrived, for resume
                    return
                events = proto.receive_data(data)
                del data
                for ev in events:
                    if isinstance(ev, FileNotServed):
                        not_served(ev)
                batch = [e for e in events if isinstance(e, ChunkArrived)]
                if batch:
                    budget.take(sum(len(c.ciphertext) for c in batch))
                    try:
                        send.send_nowait(batch)
                    except trio.BrokenResourceError:
                        return  # a stage failed; its error is the one to report
                if any(isinstance(e, EndOfChunks) for e in events):
                    return

    async def verifier() -> None:
        async with send_verified:
            with recv:  # closed synchronously: a failure here is recorded first
                async for first in recv:
                    batch = list(first)
                    while True:  # everything that arrived meanwhile: one thread hop
                        try:
                            batch.extend(recv.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                    with _output_errors(store.output_dir):  # here, not in a thread: see the module's docstring
                        chunks, nbytes = _verify_batch(store, cipher, joiner, batch)
                    await trio.lowlevel.checkpoint()  # the reader and the writer run between batches
                    taken = sum(len(c.ciphertext) for c in batch)
                    del batch, first  # ciphertext freed; plaintext travels on
                    try:
                        send_verified.send_nowait((chunks, taken, nbytes))
                    except trio.BrokenResourceError:
                        return  # the writer failed; its error is the one to report
                    del chunks

    async def writer() -> None:
        nonlocal received, verified
        last = -math.inf  # the first verified bytes are shown at once
        with recv_verified:
            async for first, taken, nbytes in recv_verified:
                chunks = list(first)
                while True:
                    try:
                        more, more_taken, more_bytes = recv_verified.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    chunks.extend(more)
                    taken += more_taken
                    nbytes += more_bytes
                done = await _disk(store.output_dir, _write_batch, store, chunks)
                del chunks, first
                budget.give_back(taken)
                received += nbytes
                verified += nbytes
                if done:
                    emit(FilesCompleted(tuple(done)))
                now = trio.current_time()
                if now - last >= PROGRESS_INTERVAL:
                    last = now
                    emit(Progress(min(verified, total), total))

    await TaskGroup().run(reader, verifier, writer)
    if lost:
        raise lost[0]
    return received
