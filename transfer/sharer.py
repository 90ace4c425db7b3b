"""The sharer's side of the transfer protocol as a pure state machine.

Like ``receiver``: ``receive_data`` in, events out, ``data_to_send`` for the
bytes to write. The machine looks the requested share up through a callback,
answers an unknown share with ERROR (so a peer without the key learns only
whether the share exists), verifies the receiver's proof in constant time,
and only then reveals the sharer's proof and the encrypted manifest. Chunks
are sealed outside the machine (``ShareMaterial.cipher``, thread-safe) so the
runner can read, hash and encrypt them off the event loop.

A file that no longer matches the manifest costs only that file: the runner
reports it with ``file_unavailable``, the machine queues FILE_UNAVAILABLE
and ``chunks_to_send`` leaves the file's remaining chunks out, so the
receiver still gets everything else it asked for.

A share still being hashed (``PendingShare``: the code is out before the
manifest exists) is served up to ACCEPT; the machine then waits in
AWAIT_MATERIAL while the runner queues PREPARING with ``preparing`` and
hands over the finished material with ``material_ready``.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from p2pshare.transfer import crypto, ranges, wire
from p2pshare.transfer.errors import (
    AuthenticationError,
    ProtocolError,
    TransferError,
    UnavailableReason,
    UnknownShareError,
)
from p2pshare.transfer.manifest import Manifest
from p2pshare.transfer.receiver import error_for
from p2pshare.transfer.session import SessionCore, wanted_chunks


@dataclass(frozen=True)
class ShareMaterial:
    """What the sharer needs to serve one share; built once per share."""

    keys: crypto.ShareKeys
    manifest: Manifest
    manifest_bytes: bytes = field(repr=False)
    digest: bytes
    cipher: crypto.ChunkCipher = field(repr=False, compare=False)

    @functools.cached_property
    def manifest_frame(self) -> bytes:
        """The MANIFEST frame, sealed once for every receiver: its AAD names
        only the share, so each receiver may get the same nonce and bytes.
        Sealed per session, each receiver that proved the key and read
        nothing more held its own copy (~11 MB for 40,000 files; a
        hostile-peer review)."""
        nonce, ciphertext = crypto.seal_manifest(self.keys, self.manifest_bytes)
        return wire.encode(wire.ManifestMsg(nonce, ciphertext))

    @classmethod
    def build(cls, keys: crypto.ShareKeys, manifest: Manifest) -> ShareMaterial:
        encoded = manifest.encode()
        digest = hashlib.sha256(encoded).digest()
        return cls(keys, manifest, encoded, digest, crypto.ChunkCipher(keys, digest))


@dataclass(frozen=True)
class PendingShare:
    """A share whose manifest is still being built: its keys suffice to
    prove the key both ways, the manifest follows (``material_ready``)."""

    keys: crypto.ShareKeys


class State(enum.Enum):
    AWAIT_HELLO = "await-hello"
    AWAIT_PROOF = "await-proof"
    AWAIT_MATERIAL = "await-material"
    AWAIT_WANT = "await-want"
    SENDING = "sending"
    AWAIT_DONE = "await-done"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class ReceiverAuthenticated:
    share_id: bytes


@dataclass(frozen=True)
class WantReceived:
    ranges: Sequence[ranges.Range]


@dataclass(frozen=True)
class ReceiverDone:
    pass


SharerEvent = ReceiverAuthenticated | WantReceived | ReceiverDone
Lookup = Callable[[bytes], ShareMaterial | PendingShare | None]


class SharerProtocol(SessionCore["SharerEvent"]):
    """One inbound session: serve whichever share the receiver proves it holds."""

    _DONE = State.DONE
    _FAILED = State.FAILED

    def __init__(
        self,
        lookup: Lookup,
        *,
        local_peer_id: bytes,
        remote_peer_id: bytes,
        nonce: bytes | None = None,
    ) -> None:
        self._lookup = lookup
        self._local = local_peer_id
        self._remote = remote_peer_id
        self._nonce_s = nonce if nonce is not None else os.urandom(crypto.NONCE_BYTES)
        self._nonce_r = b""
        super().__init__(wire.FrameDecoder(wire.TO_SHARER, wire.SHARER_ORDER))
        self.state: State = State.AWAIT_HELLO
        self.share: ShareMaterial | None = None
        self._keys: crypto.ShareKeys | None = None
        #: Files this session no longer serves (file index -> why), each said once.
        self.unavailable: dict[int, UnavailableReason] = {}

    def file_unavailable(self, file_index: int, reason: UnavailableReason) -> bool:
        """Stop serving one file in this session: queue FILE_UNAVAILABLE for it.

        Allowed once the manifest is out (the index means nothing before it):
        right after the proof for files already known to be gone, or while
        sending, between batches. Returns False if it was already said.
        """
        if self.state not in (State.AWAIT_WANT, State.SENDING):
            raise RuntimeError(f"not allowed in state {self.state.value}")
        assert self.share is not None
        if not 0 <= file_index < len(self.share.manifest.files):
            raise ValueError(f"no file {file_index} in the manifest")
        if file_index in self.unavailable:
            return False
        self.unavailable[file_index] = reason
        self._out.append(wire.encode(wire.FileUnavailable(file_index, reason)))
        return True

    def chunks_to_send(self, want: Sequence[ranges.Range]) -> Iterator[int]:
        """The chunks to read and send for ``want``, in order, skipping every
        file this session stopped serving (also one marked during the walk)."""
        assert self.share is not None
        return wanted_chunks(want, self.share.manifest, self.unavailable)

    def send_end(self) -> None:
        """Queue END after the last wanted chunk was written."""
        self._require(State.SENDING)
        self._out.append(wire.encode(wire.End()))
        self.state = State.AWAIT_DONE

    def _error_code(self, exc: TransferError) -> wire.ErrorCode:
        if isinstance(exc, UnknownShareError):
            return wire.ErrorCode.UNKNOWN_SHARE
        return super()._error_code(exc)

    def _handle(self, msg: wire.Message) -> list[SharerEvent]:
        if isinstance(msg, wire.Error):
            self.state = State.FAILED
            raise error_for(msg)
        if isinstance(msg, wire.Hello) and self.state is State.AWAIT_HELLO:
            if msg.version != wire.PROTOCOL_VERSION:
                raise ProtocolError(f"unsupported protocol version {msg.version}")
            share = self._lookup(msg.share_id)
            if share is None:
                raise UnknownShareError("unknown share")
            self._keys = share.keys
            self.share = share if isinstance(share, ShareMaterial) else None
            self._nonce_r = msg.nonce
            self._out.append(wire.encode(wire.Challenge(self._nonce_s)))
            self.state = State.AWAIT_PROOF
            return []
        if isinstance(msg, wire.Proof) and self.state is State.AWAIT_PROOF:
            return [self._on_proof(msg)]
        if isinstance(msg, wire.Want) and self.state is State.AWAIT_WANT:
            assert self.share is not None
            try:
                ranges.check_ranges(msg.ranges, self.share.manifest.total_chunks)
            except ValueError as exc:
                raise ProtocolError(f"bad WANT: {exc}") from None
            self.state = State.SENDING
            return [WantReceived(msg.ranges)]
        if isinstance(msg, wire.Done) and self.state is State.AWAIT_DONE:
            self.state = State.DONE
            return [ReceiverDone()]
        raise ProtocolError(f"unexpected {type(msg).__name__} message in state {self.state.value}")

    def preparing(self, done: int, total: int) -> None:
        """Queue PREPARING: the manifest is not built yet (``done`` of ``total`` bytes hashed)."""
        self._require(State.AWAIT_MATERIAL)
        self._out.append(wire.encode(wire.Preparing(min(done, total), total)))

    def material_ready(self, material: ShareMaterial) -> None:
        """The pending share's manifest is built: queue it, then wait for WANT."""
        self._require(State.AWAIT_MATERIAL)
        assert self._keys is not None
        if material.keys.share_id != self._keys.share_id:
            raise ValueError("material of another share")
        self.share = material
        self._send_manifest(material)

    @property
    def waiting_for_material(self) -> bool:
        return self.state is State.AWAIT_MATERIAL

    def _send_manifest(self, share: ShareMaterial) -> None:
        self._out.append(share.manifest_frame)
        self.state = State.AWAIT_WANT

    def refuse_busy(self) -> None:
        """After ``ReceiverAuthenticated``, when no session slot is free.

        Drops the queued ACCEPT and MANIFEST (a manifest can be 40 MiB) and
        answers BUSY instead; the receiver retries."""
        self._out.clear()
        self.send_error(wire.ErrorCode.BUSY, "too many transfers at once; try again later")

    def _on_proof(self, msg: wire.Proof) -> ReceiverAuthenticated:
        keys = self._keys
        assert keys is not None

        def mac(sharer: bool) -> bytes:
            return crypto.proof(
                keys,
                sharer=sharer,
                nonce_r=self._nonce_r,
                nonce_s=self._nonce_s,
                sharer_peer_id=self._local,
                receiver_peer_id=self._remote,
            )

        expect = mac(False)
        if not crypto.proofs_equal(expect, msg.mac):
            raise AuthenticationError("receiver failed to prove it holds the share key")
        self._out.append(wire.encode(wire.Accept(mac(True))))
        if self.share is None:
            self.state = State.AWAIT_MATERIAL  # the runner sends PREPARING, then the manifest
        else:
            self._send_manifest(self.share)
        return ReceiverAuthenticated(keys.share_id)
