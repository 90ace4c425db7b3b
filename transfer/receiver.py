"""The receiver's side of the transfer protocol as a pure state machine.

Bytes go in through ``receive_data``, events come out, and bytes to send
accumulate for ``data_to_send`` (the h11/aioquic pattern). Chunks are not
decrypted here: ``ChunkArrived`` carries everything needed to open the chunk
with ``cipher`` in a worker thread. The machine enforces order — the
sharer's proof is verified before the manifest is read, chunks must arrive
exactly in the order requested, and END is only accepted once every
requested chunk has arrived. Failures raise ``transfer.errors`` after
queueing an ERROR frame for the peer.

FILE_UNAVAILABLE (after the manifest) takes one file out of the session:
its remaining chunks are no longer expected, END is accepted without them,
and ``FileNotServed`` tells the runner, which finishes the other files.

PREPARING (between ACCEPT and MANIFEST) is ``SharerPreparing``: the sharer
printed its code before it finished hashing; the runner waits and says so.
"""

from __future__ import annotations

import enum
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from p2pshare.transfer import crypto, ranges, wire
from p2pshare.transfer.errors import (
    AuthenticationError,
    BusyError,
    IntegrityError,
    PeerReportedError,
    ProtocolError,
    SharerStoppedError,
    SourceChangedError,
    TransferError,
    UnavailableReason,
    UnknownShareError,
)
from p2pshare.transfer.manifest import Manifest, ManifestError
from p2pshare.transfer.manifest import parse as parse_manifest
from p2pshare.transfer.manifest import validate as validate_manifest
from p2pshare.transfer.session import SessionCore, walk_wanted, wanted_chunks


class State(enum.Enum):
    IDLE = "idle"
    AWAIT_CHALLENGE = "await-challenge"
    AWAIT_ACCEPT = "await-accept"
    AWAIT_MANIFEST = "await-manifest"
    MANIFEST_READY = "manifest-ready"
    RECEIVING = "receiving"
    ENDED = "ended"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class HandshakeComplete:
    """The sharer proved it holds the share key."""


@dataclass(frozen=True)
class ManifestReady:
    manifest: Manifest


@dataclass(frozen=True)
class ChunkArrived:
    """A chunk in the expected position; still encrypted."""

    index: int
    file_index: int
    chunk_index: int
    is_last: bool
    nonce: bytes
    ciphertext: crypto.Body  # one buffer, or the pieces it arrived in


@dataclass(frozen=True)
class EndOfChunks:
    """Every requested chunk arrived and the sharer sent END."""


@dataclass(frozen=True)
class FileNotServed:
    """The sharer stopped serving this file; its chunks will not come."""

    file_index: int
    reason: UnavailableReason


@dataclass(frozen=True)
class SharerPreparing:
    """The sharer is still hashing (``done`` of ``total`` bytes); the manifest follows."""

    done: int
    total: int


ReceiverEvent = SharerPreparing | HandshakeComplete | ManifestReady | ChunkArrived | EndOfChunks | FileNotServed


def error_for(msg: wire.Error) -> TransferError:
    """Map a peer's ERROR frame to the exception we raise."""
    text = msg.message or "no details"
    codes: dict[int, type[TransferError]] = {
        wire.ErrorCode.UNKNOWN_SHARE: UnknownShareError,
        wire.ErrorCode.AUTH_FAILED: AuthenticationError,
        wire.ErrorCode.SOURCE_CHANGED: SourceChangedError,
        wire.ErrorCode.PROTOCOL: ProtocolError,
        wire.ErrorCode.BUSY: BusyError,
        wire.ErrorCode.STOPPED: SharerStoppedError,
    }
    # Complete sentences for the codes that need no detail from the peer.
    fixed: dict[int, str] = {
        wire.ErrorCode.UNKNOWN_SHARE: "the sharer does not serve this share (wrong or expired code?)",
        wire.ErrorCode.AUTH_FAILED: "the sharer refused the code's key: the code is wrong or mistyped; copy the whole code again",
        wire.ErrorCode.SOURCE_CHANGED: "the shared files changed on the sharer's side; the sharer must share them again",
        wire.ErrorCode.STOPPED: SharerStoppedError.MESSAGE,
    }
    cls = codes.get(msg.code, PeerReportedError)
    if msg.code in fixed:
        return cls(fixed[msg.code])
    prefix = "the sharer is busy" if msg.code == wire.ErrorCode.BUSY else "the peer reported an error"
    return cls(f"{prefix}: {text}")


class ReceiverProtocol(SessionCore["ReceiverEvent"]):
    """One fetch of one share over one stream."""

    _DONE = State.DONE
    _FAILED = State.FAILED

    def __init__(
        self,
        keys: crypto.ShareKeys,
        *,
        local_peer_id: bytes,
        remote_peer_id: bytes,
        nonce: bytes | None = None,
    ) -> None:
        self.keys = keys
        self._local = local_peer_id
        self._remote = remote_peer_id
        self._nonce_r = nonce if nonce is not None else os.urandom(crypto.NONCE_BYTES)
        self._nonce_s = b""
        super().__init__(wire.FrameDecoder(wire.TO_RECEIVER, wire.RECEIVER_ORDER, wire.RECEIVER_ONCE))
        self.state: State = State.IDLE
        self.manifest: Manifest | None = None
        self.cipher: crypto.ChunkCipher | None = None
        #: The wanted chunks still to come, each with its place (``walk_wanted``).
        self._expected: Iterator[tuple[int, int, int]] = iter(())
        self._next: tuple[int, int, int] | None = None
        #: Files the sharer said it no longer serves (file index -> why).
        self.unavailable: dict[int, UnavailableReason] = {}

    # -- outgoing --------------------------------------------------------------
    def initiate(self) -> None:
        """Queue HELLO."""
        self._require(State.IDLE)
        self._out.append(wire.encode(wire.Hello(self.keys.share_id, self._nonce_r)))
        self.state = State.AWAIT_CHALLENGE

    def plan_want(self, missing: list[ranges.Range]) -> list[ranges.Range]:
        """What to ask for: ``missing`` less the files the sharer already said
        it no longer serves, coarsened to at most ``wire.MAX_WANT_RANGES``."""
        assert self.manifest is not None
        if self.unavailable:
            missing = ranges.to_ranges(wanted_chunks(missing, self.manifest, self.unavailable))
        return ranges.coarsen(missing, wire.MAX_WANT_RANGES)

    def send_want(self, wanted: list[ranges.Range]) -> None:
        """Ask for these global chunk ranges (at most ``wire.MAX_WANT_RANGES``).

        Chunks of unavailable files are not expected even where ``wanted``
        covers them (coarsening may): the sharer leaves them out too."""
        self._require(State.MANIFEST_READY)
        assert self.manifest is not None
        ranges.check_ranges(wanted, self.manifest.total_chunks)
        if len(wanted) > wire.MAX_WANT_RANGES:
            raise ValueError("too many ranges; coarsen them first")
        self._out.append(wire.encode(wire.Want(tuple(wanted))))
        self._expected = walk_wanted(wanted, self.manifest, self.unavailable)
        self._next = next(self._expected, None)
        self.state = State.RECEIVING

    def send_done(self) -> None:
        """Queue DONE, once every chunk was verified and stored."""
        self._require(State.ENDED)
        self._out.append(wire.encode(wire.Done()))
        self.state = State.DONE

    # -- incoming --------------------------------------------------------------
    def _handle(self, msg: wire.Message) -> list[ReceiverEvent]:
        if isinstance(msg, wire.Error):
            self.state = State.FAILED
            raise error_for(msg)
        if isinstance(msg, wire.Chunk):
            return [self._on_chunk(msg)]
        if isinstance(msg, wire.FileUnavailable):
            return [self._on_unavailable(msg)]
        if isinstance(msg, wire.Challenge) and self.state is State.AWAIT_CHALLENGE:
            self._nonce_s = msg.nonce
            mac = crypto.proof(
                self.keys,
                sharer=False,
                nonce_r=self._nonce_r,
                nonce_s=msg.nonce,
                sharer_peer_id=self._remote,
                receiver_peer_id=self._local,
            )
            self._out.append(wire.encode(wire.Proof(mac)))
            self.state = State.AWAIT_ACCEPT
            return []
        if isinstance(msg, wire.Accept) and self.state is State.AWAIT_ACCEPT:
            expect = crypto.proof(
                self.keys,
                sharer=True,
                nonce_r=self._nonce_r,
                nonce_s=self._nonce_s,
                sharer_peer_id=self._remote,
                receiver_peer_id=self._local,
            )
            if not crypto.proofs_equal(expect, msg.mac):
                raise AuthenticationError("the peer could not prove it holds the share key")
            self.state = State.AWAIT_MANIFEST
            return [HandshakeComplete()]
        if isinstance(msg, wire.Preparing) and self.state is State.AWAIT_MANIFEST:
            return [SharerPreparing(msg.done, msg.total)]
        if isinstance(msg, wire.ManifestMsg) and self.state is State.AWAIT_MANIFEST:
            return [self._on_manifest(msg)]
        if isinstance(msg, wire.End) and self.state is State.RECEIVING:
            if self._next is not None:
                raise IntegrityError(f"the sharer ended the transfer early (chunk {self._next[0]} missing)")
            self.state = State.ENDED
            return [EndOfChunks()]
        raise ProtocolError(f"unexpected {type(msg).__name__} message in state {self.state.value}")

    def _on_manifest(self, msg: wire.ManifestMsg) -> ManifestReady:
        try:
            plain = crypto.open_manifest(self.keys, msg.nonce, msg.ciphertext)
        except crypto.DecryptError:
            raise IntegrityError("the manifest failed authentication") from None
        finally:
            if isinstance(msg.ciphertext, bytearray):
                msg.ciphertext.clear()  # the decoder's buffer: freed before decoding, not after
        # The digest bound into every chunk's AAD: of the bytes the sharer
        # sent and sealed (its canonical encoding), not of our re-encoding
        # of them (issue 12: 0.2 s per 100,000 files, for the same value).
        digest = hashlib.sha256(plain).digest()
        try:
            parsed = parse_manifest(plain)
            del plain  # not held while the tree is checked
            manifest = validate_manifest(parsed)
            del parsed
        except ManifestError as exc:
            raise ProtocolError(f"bad manifest: {exc}") from None
        self.manifest = manifest
        self.cipher = crypto.ChunkCipher(self.keys, digest)
        self._decoder.set_chunk_size(manifest.chunk_size)
        self.state = State.MANIFEST_READY
        return ManifestReady(manifest)

    def _on_unavailable(self, msg: wire.FileUnavailable) -> FileNotServed:
        if self.state not in (State.MANIFEST_READY, State.RECEIVING):
            raise ProtocolError(f"unexpected FileUnavailable message in state {self.state.value}")
        assert self.manifest is not None
        if msg.file_index >= len(self.manifest.files):
            raise ProtocolError(f"FILE_UNAVAILABLE names file {msg.file_index}, not in the manifest")
        if msg.file_index in self.unavailable:
            raise ProtocolError(f"FILE_UNAVAILABLE for file {msg.file_index} twice")
        self.unavailable[msg.file_index] = msg.reason
        # The chunk we wait for may be the file's next one: move past the
        # whole file (the expected walk skips unavailable files).
        if self._next is not None and self._next[1] == msg.file_index:
            self._next = next(self._expected, None)
        return FileNotServed(msg.file_index, msg.reason)

    def _on_chunk(self, msg: wire.Chunk) -> ChunkArrived:
        if self.state is not State.RECEIVING:
            raise ProtocolError(f"unexpected chunk in state {self.state.value}")
        if self._next is None:
            raise IntegrityError(f"chunk {msg.index} was not requested")
        expected, file_index, chunk_index = self._next  # its place: no lookup per chunk (issue 12)
        if msg.index != expected:
            raise IntegrityError(f"chunk {msg.index} arrived out of order (expected {expected})")
        assert self.manifest is not None
        length = self.manifest.chunk_length(file_index, chunk_index)
        if len(msg.ciphertext) != length + crypto.TAG_BYTES:
            raise IntegrityError(f"chunk {msg.index} has the wrong length")
        self._next = next(self._expected, None)
        is_last = chunk_index == len(self.manifest.files[file_index].chunk_hashes) - 1
        return ChunkArrived(msg.index, file_index, chunk_index, is_last, msg.nonce, msg.ciphertext)
