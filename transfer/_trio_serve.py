"""Sharer runner: serve one inbound stream with ``SharerProtocol``.

A producer task reads, verifies and seals chunks in a worker thread and
hands whole frames through a small bounded channel to the writer, so disk,
hashing and AES overlap with the stream write while at most a few batches
(``BATCH_BYTES`` each, written with one ``write``) are in memory. A watcher reads the stream meanwhile (an ERROR or EOF from the
receiver stops the send at once) and waits for DONE at the end. A shared
file that changed on disk is not served any more (this session, and the
registry tells every later one at once), and the other files still go out.

``serve_transfer`` never raises (except cancellation): an exception escaping
a py-libp2p stream handler breaks the whole connection.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import trio

from p2pshare.transfer import ranges, wire
from p2pshare.transfer._trio_io import (
    GOODBYE_SECONDS,
    TaskGroup,
    await_eof,
    goodbye,
    read_some,
    reset_quietly,
    write_buffer,
    write_frames,
)
from p2pshare.transfer.errors import SourceChangedError, StreamEndedError, TransferError
from p2pshare.transfer.events import (
    ReceiverConnected,
    ReceiverFailed,
    ReceiverFinished,
    ReceiverProgress,
    StoppedServingFile,
    TransferEvent,
)
from p2pshare.transfer.registry import MAX_BATCHES, STOP_NOTICE_SECONDS, ServedShare, ShareRegistry
from p2pshare.transfer.sharer import ReceiverAuthenticated, ReceiverDone, SharerProtocol, WantReceived
from p2pshare.transfer.source import ChunkReader, frames_capacity, produce_frames
from p2pshare.transfer.stream import BufferStream

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Sealed batches waiting for the stream: a receiver's MAX_BATCHES less the
#: one being sealed and the one being written.
PIPELINE_DEPTH = MAX_BATCHES - 2
BATCH_BYTES = 4 << 20
HANDSHAKE_TIMEOUT = 30.0
#: A receiver that stops reading chunks for this long is cut: it holds a
#: session slot and a few batches of memory while it stalls.
WRITE_STALL_TIMEOUT = 30.0
#: Seconds between ReceiverProgress events for one receiver (the sharer's display).
RECEIVER_PROGRESS_INTERVAL = 0.5
#: While the share is still hashed: how often to tell the receiver how far it got.
PREPARING_INTERVAL = 0.5


async def serve_transfer(
    stream: BufferStream,
    *,
    registry: ShareRegistry,
    local_peer_id: bytes,
    remote_peer_id: bytes,
    on_event: Callable[[TransferEvent], None] | None = None,
    idle_timeout: float = 600.0,
    remote_source: str | None = None,
) -> None:
    """Serve one receiver on ``stream``; logs and resets on any failure.
    ``remote_source``: the receiver's address group, for the registry's
    per-source cap on streams that have not proved the key yet."""

    def emit(event: TransferEvent) -> None:
        if on_event is None:
            return
        try:
            on_event(event)
        except Exception:
            log.exception("transfer event handler failed")

    if not registry.try_begin_handshake(remote_peer_id, remote_source):
        # Unauthenticated and over budget: nothing is owed to this peer.
        log.info("too many handshakes: refusing a stream from %s", remote_peer_id.hex()[:16])
        await reset_quietly(stream)
        return
    session = _Session(stream, registry, local_peer_id, remote_peer_id, emit, idle_timeout)
    session.source = remote_source
    try:
        await session.run()
    except _Busy:
        log.info("busy: refusing a transfer from %s", remote_peer_id.hex()[:16])
        await goodbye(stream, session.proto.data_to_send())
        await await_eof(stream)
        await reset_quietly(stream)
    except _Stopped:
        # Between frames: the receiver reads STOPPED and ends instead of
        # retrying until its --timeout; the node waits (bounded) for this.
        log.info("told %s that the share stopped", remote_peer_id.hex()[:16])
        # Said first: a receiver that does not read holds the goodbye until
        # the node's close cancels it, and a cancelled handler says nothing.
        emit(_cut_by_the_stop(remote_peer_id, session))
        session.proto.send_error(wire.ErrorCode.STOPPED, "the sharer stopped sharing")
        # Up to STOP_NOTICE_SECONDS from the stop, unshielded: the node's
        # close (the grace over, or a second Ctrl-C: "quits now") ends it.
        until = min(session.stop_seen, trio.current_time()) + STOP_NOTICE_SECONDS  # inf: withdrawn before it looked
        await goodbye(
            stream, session.proto.data_to_send(), max(GOODBYE_SECONDS, until - trio.current_time()), shield=False
        )
        await await_eof(stream, max(GOODBYE_SECONDS, until - trio.current_time()), shield=False)
        await reset_quietly(stream)
    except TransferError as exc:
        if isinstance(exc, SourceChangedError):
            log.warning("stopped serving %s: %s", remote_peer_id.hex()[:16], exc)
            session.proto.send_error(wire.ErrorCode.SOURCE_CHANGED, "source changed")
        else:
            log.info("transfer to %s failed: %s", remote_peer_id.hex()[:16], exc)
        # Before its WANT, a session's failure is said at most every few
        # seconds, as a stranger's is: the key proof alone is cheap to repeat.
        if session.wanted or registry.report_stranger(trio.current_time()):
            ended = exc.detail if isinstance(exc, StreamEndedError) else None
            emit(ReceiverFailed(remote_peer_id, session.share_id, str(exc), ended))
        await goodbye(stream, session.proto.data_to_send())
        if not isinstance(exc, StreamEndedError):
            await await_eof(stream)  # let the receiver read our ERROR first
        await reset_quietly(stream)
    except Exception as exc:
        log.exception("transfer handler crashed")
        session.proto.send_error(wire.ErrorCode.INTERNAL, "internal error")
        emit(ReceiverFailed(remote_peer_id, session.share_id, f"internal error: {type(exc).__name__}"))
        await goodbye(stream, session.proto.data_to_send())
        await reset_quietly(stream)
    except BaseException:
        if session.share_id is not None and session.stopping:
            # Withdrawn, the grace over, and the node closing cancelled a
            # session that was still sending (a receiver that does not read
            # blocks the write that would have failed): the sharer says so.
            emit(_cut_by_the_stop(remote_peer_id, session))
        await reset_quietly(stream)  # cancelled: tell the peer, then propagate
        raise
    finally:
        session.release()


#: Slowest reading a receiver may do while the sharer writes to it (bytes/s).
MIN_READ_RATE = 64 * 1024
#: Bytes of protocol output (a manifest) handed to the stream at a time.
OUT_PIECE = 256 * 1024


def _write_deadline(idle_timeout: float, size: int) -> float:
    """How long one write of ``size`` bytes may take: the write stall
    timeout, longer for a large manifest on a slow link, never past the
    idle timeout. Writes to the receiver waited the idle timeout (600 s)
    before: a receiver with the key that proved it and then read nothing
    held its session slot that long (a hostile-peer review)."""
    return min(idle_timeout, max(WRITE_STALL_TIMEOUT, size / MIN_READ_RATE))


def _cut_by_the_stop(remote_peer_id: bytes, session: _Session) -> ReceiverFailed:
    """A receiver that proved the key and did not finish before the share stopped."""
    return ReceiverFailed(remote_peer_id, session.share_id, "cut off by the stop", "cut off by the stop")


class _Busy(Exception):
    """Authenticated, but every session slot is taken (BUSY is queued)."""


class _Stopped(Exception):
    """The sharer stopped sharing this session's share (ERROR STOPPED is due)."""


async def sessions_ended(registry: ShareRegistry, share_id: bytes) -> None:
    """Return once no session of ``share_id`` past the key proof is left
    (each ends after its receiver read its last frame or went away). Woken
    by the registry, not by polling; the caller bounds the wait."""
    wake = _Wake()
    registry.listeners.add(wake)
    try:
        while True:
            wake.arm()
            if not registry.live_sessions(share_id):
                return
            await wake.event.wait()
    finally:
        registry.listeners.discard(wake)


class _Session:
    def __init__(
        self,
        stream: BufferStream,
        registry: ShareRegistry,
        local: bytes,
        remote: bytes,
        emit: Callable[[TransferEvent], None],
        idle_timeout: float,
    ) -> None:
        self.stream = stream
        self.registry = registry
        self.remote = remote
        self.emit = emit
        self.timeout = idle_timeout
        self.proto = SharerProtocol(registry.material, local_peer_id=local, remote_peer_id=remote)
        self.share_id: bytes | None = None
        self.wanted = False  # the receiver asked for data (WANT): it is a transfer, not a probe
        self.bytes_sent = 0  # on the wire: framing and tags included
        #: The file bytes the receiver asked for (its WANT); reports cap at it,
        #: so a 4 B file is "4 B sent", not the 45 B its frame took.
        self.bytes_asked: int | None = None
        self.watch_scope = trio.CancelScope()
        self._handshaking = True  # holds a pre-authentication slot
        self.source: str | None = None  # the address group that slot counts against
        self._slot = False  # holds a session slot
        self._live = False  # counted in the registry's sessions of share_id
        #: The sharer stopped sharing our share; the wait in ``_waiting`` (one
        #: that loses nothing when cancelled) is cancelled to say so.
        self.stopping = False
        self.stop_seen = math.inf  # when (trio's clock) this session heard of the stop
        self.evicted = False  # a newcomer took our slot while we waited for WANT (``LISTING_GRACE``)
        self._waiting: trio.CancelScope | None = None

    def _authenticated(self) -> None:
        """Trade the pre-authentication slot for a session slot (or BUSY)."""
        self.registry.end_handshake(self.remote, self.source)
        self._handshaking = False
        if not self.registry.try_acquire(self.remote, self.source, trio.current_time()):
            self.proto.refuse_busy()
            raise _Busy
        self._slot = True
        self.registry.listing(self, trio.current_time(), self._evict)

    def _evict(self) -> None:
        """Our slot to a newcomer now (before WANT); BUSY at the next wait."""
        self.registry.release(self.remote, self.source)
        self._slot, self.evicted = False, True
        if self._waiting is not None:
            self._waiting.cancel()

    def _attach(self, share_id: bytes) -> None:
        """The receiver proved the key for ``share_id``: count the session,
        and hear when the share is withdrawn."""
        self.share_id = share_id
        self.registry.session_began(share_id)
        self._live = True
        self.registry.listeners.add(self._on_change)

    def _on_change(self) -> None:
        if not self.stopping and self.share_id is not None and self.registry.withdrawn(self.share_id):
            self.stopping = True
            self.stop_seen = trio.current_time()
            if self._waiting is not None:
                self._waiting.cancel()

    async def _unless_stopped(self, wait: Callable[[], Awaitable[_T]]) -> _T:
        """``await wait()``, or :class:`_Stopped` once the share is withdrawn.
        Only for waits that lose nothing when cancelled (a read, a channel's
        next batch): a frame half written cannot be followed by ERROR."""
        with trio.CancelScope() as scope:
            self._waiting = scope
            try:
                if not self.stopping and not self.evicted:
                    return await wait()
            finally:
                self._waiting = None
        if self.evicted and not self.stopping:
            self.proto.refuse_busy()  # the receiver retries, as at any BUSY
            raise _Busy
        raise _Stopped

    async def _send_out(self) -> None:
        """Write what the protocol queued, in pieces, within
        ``_write_deadline``: a receiver that reads nothing holds one piece
        of ours (and the kernel's buffer), not a whole 40 MiB manifest
        sealed and queued for it (a hostile-peer review)."""
        frames = self.proto.frames_to_send()
        limit = _write_deadline(self.timeout, sum(map(len, frames)))
        await write_frames(self.stream, frames, limit, "receiver", OUT_PIECE)

    def release(self) -> None:
        self.registry.listed(self)
        if self._live:
            assert self.share_id is not None
            self.registry.listeners.discard(self._on_change)
            self._live = False
            self.registry.session_ended(self.share_id)
        if self._handshaking:
            self.registry.end_handshake(self.remote, self.source)
            self._handshaking = False
        if self._slot:
            self.registry.release(self.remote, self.source)
            self._slot = False

    async def run(self) -> None:
        start = trio.current_time()
        want: Sequence[ranges.Range] | None = None
        served: ServedShare | None = None
        proof_due = start + min(self.timeout, HANDSHAKE_TIMEOUT)
        while want is None:
            # Short patience until the peer proves the key, for the whole
            # handshake (per read, a byte now and then held a handshake slot
            # and an unfinished frame for ever); then long, as the receiver
            # may be re-hashing partial files before it sends WANT.
            with trio.move_on_at(proof_due if self.share_id is None else math.inf) as handshake:
                data = await self._unless_stopped(lambda: read_some(self.stream, self.timeout, "receiver"))
            if handshake.cancelled_caught:
                raise StreamEndedError(f"the receiver did not prove the key within {HANDSHAKE_TIMEOUT:.0f} s")
            if not data:
                raise StreamEndedError("the receiver closed the connection")
            for ev in self.proto.receive_data(data):
                if isinstance(ev, ReceiverAuthenticated):
                    self._authenticated()
                    self._attach(ev.share_id)
                    if self.proto.waiting_for_material:
                        await self._await_material(ev.share_id)
                    served = self.registry.get(ev.share_id)  # same tick as the lookup: present
                    if served is None:
                        raise _Stopped
                    # Right behind the manifest, before the receiver plans its WANT.
                    for file_index, reason in self.registry.unavailable(ev.share_id).items():
                        self.proto.file_unavailable(file_index, reason)
                elif isinstance(ev, WantReceived):
                    if self.evicted:  # the read was done before the eviction could cancel it
                        self.proto.refuse_busy()
                        raise _Busy
                    want, self.wanted = ev.ranges, True
                    self.registry.listed(self)  # transferring: never displaced
                    start = trio.current_time()  # from the receiver's yes, not from its prompt
                    # Said once the receiver asks for data, not at its proof: a peer
                    # with the key that proved it and hung up, in a loop, put two
                    # lines per try on the sharer's output (a hostile-peer review).
                    self.emit(ReceiverConnected(self.remote, self.share_id or b""))
            await self._send_out()
        assert self.share_id is not None and served is not None
        prepared = served.prepared
        reader = ChunkReader(prepared.manifest, prepared.sources, prepared.identities)
        try:
            await TaskGroup().run(lambda: self._send(reader, want), self._watch)
        finally:
            reader.close()
        self.registry.record_completed(self.share_id)
        await goodbye(self.stream, b"")
        sent = self.bytes_sent if self.bytes_asked is None else min(self.bytes_sent, self.bytes_asked)
        self.emit(ReceiverFinished(self.remote, self.share_id, sent, trio.current_time() - start))

    async def _await_material(self, share_id: bytes) -> None:
        """The code went out before hashing ended: tell the receiver how far
        it got (PREPARING, every ``PREPARING_INTERVAL``) until the manifest
        exists, then queue it. Woken by the registry when the share is
        served, withdrawn or fails, not by polling it."""
        wake = _Wake()
        self.registry.listeners.add(wake)
        try:
            last = -math.inf
            while True:
                wake.arm()  # before looking: a change after the look still wakes us
                served = self.registry.get(share_id)
                if served is not None:
                    self.proto.material_ready(served.material)
                    return
                progress = self.registry.preparing(share_id)
                if progress is None:
                    raise _Stopped  # withdrawn while it was being prepared
                if progress.failed is not None:
                    raise SourceChangedError(progress.failed)
                now = trio.current_time()
                if now - last >= PREPARING_INTERVAL:
                    last = now
                    self.proto.preparing(progress.done, progress.total)
                    await self._send_out()
                with trio.move_on_at(last + PREPARING_INTERVAL):
                    await wake.event.wait()
        finally:
            self.registry.listeners.discard(wake)

    async def _send(self, reader: ChunkReader, want: Sequence[ranges.Range]) -> None:
        material = self.proto.share
        assert material is not None
        indices = self.proto.chunks_to_send(want)
        send, recv = trio.open_memory_channel[memoryview](PIPELINE_DEPTH)
        # Batch buffers, reused once written (a fresh 4 MiB per batch paid
        # for its first touch every time); more are made while all are busy,
        # up to this receiver's share of the batch memory.
        capacity = frames_capacity(material.manifest, BATCH_BYTES)
        free: list[bytearray] = []
        held = 0  # buffers of this receiver (filling, queued, writing or free)
        returned: trio.Event | None = None  # set when the writer is done with one

        async def next_buffer() -> bytearray:
            """A free buffer, a new one within our share of the batch memory,
            else the next one the writer is done with."""
            nonlocal held, returned
            while not free:
                if held < self.registry.batches_per_session(capacity):
                    held += 1
                    return bytearray(capacity)
                returned = trio.Event()
                await returned.wait()
            return free.pop()

        async def producer() -> None:
            finished = False
            while not finished:
                out = await next_buffer()
                blob, finished, failed = await trio.to_thread.run_sync(
                    produce_frames, reader, material.cipher, indices, BATCH_BYTES, out
                )
                if blob:
                    await send.send(blob)
                else:
                    free.append(out)
                if failed is not None:
                    # Behind the chunks before it, ahead of any later one; the
                    # next batch (not yet started) skips the file.
                    await send.send(memoryview(self._stop_serving(failed)))
            # Close only on success: after a failure the writer must not see
            # a clean end of chunks and send END.
            await send.aclose()

        manifest = material.manifest
        # Whole chunks asked for: the last chunk of a file may be shorter, so cap at the share's size.
        asked = min(ranges.count(want) * manifest.chunk_size, manifest.total_bytes)
        self.bytes_asked = asked
        assert self.share_id is not None
        share_id = self.share_id

        async def writer() -> None:
            nonlocal held
            last = trio.current_time()
            with recv:
                while True:
                    try:
                        blob = await self._unless_stopped(recv.receive)
                    except trio.EndOfChannel:
                        break
                    await write_buffer(self.stream, blob, min(self.timeout, WRITE_STALL_TIMEOUT), "receiver")
                    self.bytes_sent += len(blob)
                    owner = blob.obj
                    blob.release()
                    if type(owner) is bytearray:  # written: the stream copied or sealed it
                        if held > self.registry.batches_per_session(capacity):
                            held -= 1  # more receivers now: our share shrank
                        else:
                            free.append(owner)
                        if returned is not None:
                            returned.set()
                    del blob, owner  # not held while waiting for the next batch
                    now = trio.current_time()
                    if now - last >= RECEIVER_PROGRESS_INTERVAL:
                        last = now
                        self.emit(ReceiverProgress(self.remote, share_id, min(self.bytes_sent, asked), asked))
            self.proto.send_end()
            await self._send_out()
            # While chunks flow the receiver is silent; after END it must answer.
            self.watch_scope.deadline = trio.current_time() + self.timeout

        await TaskGroup().run(producer, writer)

    def _stop_serving(self, exc: SourceChangedError) -> bytes:
        """Stop serving the file ``exc`` names, here and in later sessions; the notice to send."""
        if exc.file_index is None:
            raise exc  # not pinned to one file: the whole session ends with SOURCE_CHANGED
        assert self.share_id is not None and self.proto.share is not None
        self.proto.file_unavailable(exc.file_index, exc.reason)
        if self.registry.mark_unavailable(self.share_id, exc.file_index, exc.reason):
            path = self.proto.share.manifest.files[exc.file_index].path
            log.info("stopped serving %s: %s", path, exc)  # said to people by the event
            self.emit(StoppedServingFile(self.share_id, path, exc.reason, str(exc)))
        return self.proto.data_to_send()

    async def _watch(self) -> None:
        """Read while sending: only ERROR (abort) or, after END, DONE may come."""
        with self.watch_scope:
            while True:
                data = await read_some(self.stream, float("inf"), "receiver")
                if not data:
                    raise StreamEndedError("the receiver closed the connection")
                if any(isinstance(ev, ReceiverDone) for ev in self.proto.receive_data(data)):
                    return
        raise StreamEndedError(f"the receiver did not confirm within {self.timeout:.0f} s")


class _Wake:
    """A registry listener that sets the event of the current wait."""

    def __init__(self) -> None:
        self.event = trio.Event()

    def arm(self) -> None:
        self.event = trio.Event()

    def __call__(self) -> None:
        self.event.set()
