"""Wire messages and framing of ``/p2pshare/transfer/1.0.0``.

Every frame is ``type (u8) | length (u32, big-endian) | body``. Each type has
a strict maximum body size and a fixed layout; a decoder only accepts the
types its role may receive, so a receiver never buffers a 40 MiB "manifest"
sent to a sharer. Anything unknown, oversize or malformed is a
``ProtocolError``.

Bodies (R = receiver, S = sharer)::

    HELLO      R->S  version u8 | share_id 16 | nonce_r 32
    CHALLENGE  S->R  nonce_s 32
    PROOF      R->S  mac_r 32
    ACCEPT     S->R  mac_s 32
    MANIFEST   S->R  gcm nonce 12 | ciphertext+tag (<= 40 MiB)
    WANT       R->S  count u32 | count x (start u64 | end u64)
    CHUNK      S->R  global index u64 | gcm nonce 12 | ciphertext+tag
    END        S->R  (empty)
    DONE       R->S  (empty)
    ERROR      both  code u8 | UTF-8 message (<= 200 chars)
    FILE_UNAVAILABLE  S->R  file index u32 | reason u8 (``UnavailableReason``)
    PREPARING  S->R  bytes hashed u64 | bytes to hash u64

FILE_UNAVAILABLE tells the receiver, after the manifest and before any later
CHUNK, that the sharer stopped serving one file (it changed on disk): the
session goes on with the other files instead of ending, and neither side
expects that file's chunks from then on.

PREPARING (after ACCEPT, before MANIFEST, repeated) says the sharer printed
its code before it finished hashing: the share key (all the code commits
to) needs no hash, the manifest does. The receiver waits and shows the
percentage instead of failing; the MANIFEST follows once hashing is done.
It comes only after ACCEPT, so only a peer that proved the key learns it.

ERROR STOPPED (code 7) is the sharer's last frame when it stops sharing
while a receiver that proved the key is waiting or receiving: sent between
frames, never inside one, so the receiver reads it as such and ends at
once instead of retrying a sharer that chose to go. A receiver that knows
no code 7 reports "the peer reported an error" with its text.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from p2pshare.transfer.crypto import GCM_NONCE_BYTES, MAC_BYTES, NONCE_BYTES, SHARE_ID_BYTES, TAG_BYTES, Body
from p2pshare.transfer.errors import MAX_MESSAGE_CHARS, ProtocolError, UnavailableReason, sanitize_text
from p2pshare.transfer.gathered import Gathered, Piece, add_piece
from p2pshare.transfer.manifest import MAX_CHUNK_SIZE, MAX_MANIFEST_BYTES
from p2pshare.transfer.ranges import PackedRanges

PROTOCOL_VERSION = 1
HEADER = struct.Struct(">BI")
HEADER_BYTES = HEADER.size
MAX_WANT_RANGES = 1 << 16
CHUNK_OVERHEAD = 8 + GCM_NONCE_BYTES + TAG_BYTES  # index + nonce + tag
_U64 = struct.Struct(">Q")
_RANGE = struct.Struct(">QQ")
_UNAVAILABLE = struct.Struct(">IB")
#: A kept view costs ~200 bytes of objects: only slices this large are kept
#: as views (so a body fed in slivers is copied, not a million views).
_MIN_VIEW = 4096
#: The decoder's fast path: a header and a CHUNK's index, nonce and tag.
_WHOLE_CHUNK_MIN = HEADER_BYTES + CHUNK_OVERHEAD


class MsgType(IntEnum):
    HELLO = 1
    CHALLENGE = 2
    PROOF = 3
    ACCEPT = 4
    MANIFEST = 5
    WANT = 6
    CHUNK = 7
    END = 8
    DONE = 9
    ERROR = 10
    FILE_UNAVAILABLE = 11
    PREPARING = 12


_CHUNK_RAW = int(MsgType.CHUNK)


class ErrorCode(IntEnum):
    UNKNOWN_SHARE = 1
    AUTH_FAILED = 2
    SOURCE_CHANGED = 3
    PROTOCOL = 4
    BUSY = 5
    INTERNAL = 6
    STOPPED = 7  # the sharer stopped sharing (older receivers: "the peer reported an error")


@dataclass(frozen=True)
class Hello:
    share_id: bytes
    nonce: bytes
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Challenge:
    nonce: bytes


@dataclass(frozen=True)
class Proof:
    mac: bytes


@dataclass(frozen=True)
class Accept:
    mac: bytes


@dataclass(frozen=True)
class ManifestMsg:
    nonce: bytes
    #: ciphertext + tag. From the decoder: its own buffer, which the
    #: receiver clears once decrypted (a manifest is not held twice).
    ciphertext: bytes | bytearray


@dataclass(frozen=True)
class Want:
    ranges: Sequence[tuple[int, int]]


@dataclass(frozen=True)
class Chunk:
    index: int
    nonce: bytes
    #: ciphertext + tag. From the decoder: the pieces it arrived in when
    #: there are several (``Gathered``), else one buffer.
    ciphertext: Body


@dataclass(frozen=True)
class End:
    pass


@dataclass(frozen=True)
class Done:
    pass


@dataclass(frozen=True)
class Error:
    code: int
    message: str


@dataclass(frozen=True)
class FileUnavailable:
    file_index: int
    reason: UnavailableReason


@dataclass(frozen=True)
class Preparing:
    done: int
    total: int


Message = (
    Hello | Challenge | Proof | Accept | ManifestMsg | Want | Chunk | End | Done | Error | FileUnavailable | Preparing
)

MAX_ERROR_BODY = 1 + 4 * MAX_MESSAGE_CHARS
#: Largest body per type (CHUNK is tightened per manifest with ``set_chunk_size``).
MAX_BODY: dict[MsgType, int] = {
    MsgType.HELLO: 1 + SHARE_ID_BYTES + NONCE_BYTES,
    MsgType.CHALLENGE: NONCE_BYTES,
    MsgType.PROOF: MAC_BYTES,
    MsgType.ACCEPT: MAC_BYTES,
    MsgType.MANIFEST: GCM_NONCE_BYTES + MAX_MANIFEST_BYTES + TAG_BYTES,
    MsgType.WANT: 4 + _RANGE.size * MAX_WANT_RANGES,
    MsgType.CHUNK: MAX_CHUNK_SIZE + CHUNK_OVERHEAD,
    MsgType.END: 0,
    MsgType.DONE: 0,
    MsgType.ERROR: MAX_ERROR_BODY,
    MsgType.FILE_UNAVAILABLE: _UNAVAILABLE.size,
    MsgType.PREPARING: _RANGE.size,
}
TO_SHARER = frozenset({MsgType.HELLO, MsgType.PROOF, MsgType.WANT, MsgType.DONE, MsgType.ERROR})
TO_RECEIVER = frozenset(
    {
        MsgType.CHALLENGE,
        MsgType.ACCEPT,
        MsgType.MANIFEST,
        MsgType.CHUNK,
        MsgType.END,
        MsgType.ERROR,
        MsgType.FILE_UNAVAILABLE,
        MsgType.PREPARING,
    }
)
#: The receiver's decoder takes the large frames only after the sharer's
#: ACCEPT: before it proved the key, a peer gets no 40 MiB of our memory.
#: A file index means nothing before the manifest that numbers the files.
RECEIVER_ORDER = {
    MsgType.MANIFEST: MsgType.ACCEPT,
    MsgType.CHUNK: MsgType.ACCEPT,
    MsgType.FILE_UNAVAILABLE: MsgType.MANIFEST,
    MsgType.PREPARING: MsgType.ACCEPT,
}
#: The sharer's decoder takes WANT (up to 1 MiB) and DONE only after the
#: receiver's PROOF: before it, a stranger parks no large frame with us.
SHARER_ORDER = {MsgType.WANT: MsgType.PROOF, MsgType.DONE: MsgType.PROOF}
#: Refused from the header when it comes again: a second manifest would
#: otherwise hold up to 40 MiB, outside the transfer's byte budget, until
#: the receiver's state machine saw it whole.
RECEIVER_ONCE = frozenset({MsgType.MANIFEST})


def frame(kind: MsgType, *body: bytes | bytearray) -> bytes:
    return b"".join((HEADER.pack(kind, sum(len(b) for b in body)), *body))


def chunk_frame_parts(index: int, nonce: bytes, ciphertext: bytes | bytearray) -> tuple[bytes | bytearray, ...]:
    """The pieces of a CHUNK frame, for one join of many frames (hot path)."""
    return (HEADER.pack(MsgType.CHUNK, 8 + len(nonce) + len(ciphertext)), _U64.pack(index), nonce, ciphertext)


def chunk_frame_head(index: int, nonce: bytes, ciphertext_len: int) -> bytes:
    """Everything of a CHUNK frame before its ciphertext (to seal in place after it)."""
    return HEADER.pack(MsgType.CHUNK, 8 + len(nonce) + ciphertext_len) + _U64.pack(index) + nonce


def chunk_frame(index: int, nonce: bytes, ciphertext: bytes | bytearray) -> bytes:
    return b"".join(chunk_frame_parts(index, nonce, ciphertext))


def encode(msg: Message) -> bytes:
    if isinstance(msg, Hello):
        return frame(MsgType.HELLO, bytes([msg.version]), msg.share_id, msg.nonce)
    if isinstance(msg, Challenge):
        return frame(MsgType.CHALLENGE, msg.nonce)
    if isinstance(msg, Proof):
        return frame(MsgType.PROOF, msg.mac)
    if isinstance(msg, Accept):
        return frame(MsgType.ACCEPT, msg.mac)
    if isinstance(msg, ManifestMsg):
        return frame(MsgType.MANIFEST, msg.nonce, msg.ciphertext)
    if isinstance(msg, Want):
        parts = [struct.pack(">I", len(msg.ranges))]
        parts.extend(_RANGE.pack(a, b) for a, b in msg.ranges)
        return frame(MsgType.WANT, *parts)
    if isinstance(msg, Chunk):
        body = msg.ciphertext
        return chunk_frame(msg.index, msg.nonce, bytes(body) if isinstance(body, (Gathered, memoryview)) else body)
    if isinstance(msg, End):
        return frame(MsgType.END)
    if isinstance(msg, Done):
        return frame(MsgType.DONE)
    if isinstance(msg, FileUnavailable):
        return frame(MsgType.FILE_UNAVAILABLE, _UNAVAILABLE.pack(msg.file_index, msg.reason))
    if isinstance(msg, Preparing):
        return frame(MsgType.PREPARING, _RANGE.pack(msg.done, msg.total))
    text = sanitize_text(msg.message)[:MAX_MESSAGE_CHARS].encode("utf-8")
    return frame(MsgType.ERROR, bytes([msg.code]), text)


def parse_manifest(body: bytearray) -> ManifestMsg:
    """``parse`` for the decoder's own MANIFEST buffer: the nonce is cut off
    in place (at the front of a bytearray, O(1)), the rest is the ciphertext."""
    if len(body) < GCM_NONCE_BYTES + TAG_BYTES:
        raise ProtocolError("malformed MANIFEST message")
    nonce = bytes(body[:GCM_NONCE_BYTES])
    del body[:GCM_NONCE_BYTES]
    return ManifestMsg(nonce, body)


def _exact(body: bytes, n: int, what: str) -> None:
    if len(body) != n:
        raise ProtocolError(f"malformed {what} message")


def parse(kind: MsgType, body: bytes) -> Message:
    """Decode one frame body of a known type (sizes already bounded)."""
    if kind is MsgType.HELLO:
        _exact(body, MAX_BODY[kind], "HELLO")
        return Hello(share_id=body[1 : 1 + SHARE_ID_BYTES], nonce=body[1 + SHARE_ID_BYTES :], version=body[0])
    if kind is MsgType.CHALLENGE:
        _exact(body, NONCE_BYTES, "CHALLENGE")
        return Challenge(body)
    if kind is MsgType.PROOF:
        _exact(body, MAC_BYTES, "PROOF")
        return Proof(body)
    if kind is MsgType.ACCEPT:
        _exact(body, MAC_BYTES, "ACCEPT")
        return Accept(body)
    if kind is MsgType.MANIFEST:
        if len(body) < GCM_NONCE_BYTES + TAG_BYTES:
            raise ProtocolError("malformed MANIFEST message")
        return ManifestMsg(body[:GCM_NONCE_BYTES], body[GCM_NONCE_BYTES:])
    if kind is MsgType.WANT:
        if len(body) < 4:
            raise ProtocolError("malformed WANT message")
        (count,) = struct.unpack_from(">I", body)
        _exact(body, 4 + _RANGE.size * count, "WANT")
        return Want(PackedRanges(bytes(body[4:])))
    if kind is MsgType.CHUNK:
        if len(body) < CHUNK_OVERHEAD:
            raise ProtocolError("malformed CHUNK message")
        return Chunk(_U64.unpack_from(body)[0], body[8:20], body[20:])
    if kind is MsgType.END:
        return End()
    if kind is MsgType.DONE:
        return Done()
    if kind is MsgType.FILE_UNAVAILABLE:
        _exact(body, _UNAVAILABLE.size, "FILE_UNAVAILABLE")
        file_index, raw_reason = _UNAVAILABLE.unpack(body)
        try:
            reason = UnavailableReason(raw_reason)
        except ValueError:
            raise ProtocolError(f"unknown FILE_UNAVAILABLE reason {raw_reason}") from None
        return FileUnavailable(file_index, reason)
    if kind is MsgType.PREPARING:
        _exact(body, _RANGE.size, "PREPARING")
        done, total = _RANGE.unpack(body)
        if done > total:
            raise ProtocolError("malformed PREPARING message: more done than there is")
        return Preparing(done, total)
    if len(body) < 1:
        raise ProtocolError("malformed ERROR message")
    text = body[1:].decode("utf-8", errors="replace")
    return Error(code=body[0], message=sanitize_text(text))


class FrameDecoder:
    """Incremental decoder: ``feed(bytes) -> [Message]``.

    Holds at most one partial frame; a header announcing a body larger than
    its type allows is rejected before the body is buffered. A CHUNK body is
    kept as the pieces it was fed in (``Gathered``; one piece is handed out
    alone): a slice of fed ``bytes`` of at least 4 KiB and 3/4 of that
    object is kept as a view, with no copy (the hot path: each 64 KiB yamux frame of a
    1 MiB chunk); anything else is copied once, into buffers of ~64 KiB.
    A MANIFEST body grows in place as it arrives (only what the sharer sent
    is held) and is handed out as that buffer, not copied.
    """

    def __init__(
        self,
        accept: frozenset[MsgType],
        after: dict[MsgType, MsgType] | None = None,
        once: frozenset[MsgType] = frozenset(),
    ) -> None:
        self._accept = accept
        self._after = dict(after or {})  # kind -> the kind that must have come first
        self._once = once  # kinds that may come at most once
        self._seen: set[MsgType] = set()
        self._limits = dict(MAX_BODY)
        self._buf = bytearray()  # header, CHUNK prefix, or a whole small body
        self._need: tuple[MsgType, int] | None = None
        self._parts: list[Piece] | None = None  # the CHUNK being filled
        self._body_len = 0
        self._filled = 0
        self._chunk_head: tuple[int, bytes] = (0, b"")

    def set_chunk_size(self, chunk_size: int) -> None:
        """Tighten the CHUNK limit once the manifest's chunk size is known."""
        self._limits[MsgType.CHUNK] = chunk_size + CHUNK_OVERHEAD

    def _chunk_order_ok(self) -> bool:
        first = self._after.get(MsgType.CHUNK)
        return first is None or first in self._seen

    @property
    def buffered(self) -> int:
        return len(self._buf) + (self._filled if self._parts is not None else 0)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        return self.feed_all((data,))

    def feed_all(self, pieces: Iterable[bytes | bytearray | memoryview]) -> list[Message]:
        """``feed`` each piece in order (a scatter read's result)."""
        out: list[Message] = []
        for piece in pieces:
            with memoryview(piece) as view:
                self._feed(view, out)
        return out

    def _feed(self, view: memoryview, out: list[Message]) -> None:
        buf = self._buf
        pos, end = 0, len(view)
        # Views may be kept only of immutable bytes, and only when they are
        # most of what they pin.
        owner = len(view.obj) if type(view.obj) is bytes else 1 << 62
        while True:
            parts = self._parts
            if parts is not None:
                take = min(self._body_len - self._filled, end - pos)
                if not take:
                    return
                add_piece(parts, view[pos : pos + take], keep=take >= _MIN_VIEW and take * 4 >= owner * 3)
                self._filled += take
                pos += take
                if self._filled < self._body_len:
                    return
                self._parts = None
                body: Body = parts[0] if len(parts) == 1 else Gathered(parts)
                out.append(Chunk(self._chunk_head[0], self._chunk_head[1], body))
                continue
            if self._need is None:
                if not buf and end - pos >= _WHOLE_CHUNK_MIN:
                    # A whole CHUNK in this piece, nothing buffered: one
                    # unpack and one copy (many small files, issue 12), and
                    # every check of the general path below.
                    raw_kind, length = HEADER.unpack_from(view, pos)
                    if (
                        raw_kind == _CHUNK_RAW
                        and CHUNK_OVERHEAD <= length <= self._limits[MsgType.CHUNK]
                        and end - pos >= HEADER_BYTES + length
                        and MsgType.CHUNK in self._accept
                        and self._chunk_order_ok()
                    ):
                        head = pos + HEADER_BYTES
                        body_at = head + CHUNK_OVERHEAD - TAG_BYTES
                        pos = head + length
                        take = pos - body_at
                        body = view[body_at:pos]
                        out.append(
                            Chunk(
                                _U64.unpack_from(view, head)[0],
                                bytes(view[head + 8 : body_at]),
                                body if take >= _MIN_VIEW and take * 4 >= owner * 3 else bytes(body),
                            )
                        )
                        continue
                if len(buf) < HEADER_BYTES:
                    take = min(HEADER_BYTES - len(buf), end - pos)
                    buf += view[pos : pos + take]
                    pos += take
                    if len(buf) < HEADER_BYTES:
                        return
                raw_kind, length = HEADER.unpack_from(buf)
                try:
                    kind = MsgType(raw_kind)
                except ValueError:
                    raise ProtocolError(f"unknown message type {raw_kind}") from None
                if kind not in self._accept:
                    raise ProtocolError(f"unexpected message type {kind.name}")
                first = self._after.get(kind)
                if first is not None and first not in self._seen:
                    raise ProtocolError(f"{kind.name} message before {first.name}")
                if length > self._limits[kind]:
                    raise ProtocolError(f"{kind.name} message too large ({length} bytes)")
                if kind in self._once and kind in self._seen:
                    raise ProtocolError(f"a second {kind.name} message")
                buf.clear()
                self._need = (kind, length)
            kind, length = self._need
            is_chunk = kind is MsgType.CHUNK and length >= CHUNK_OVERHEAD
            want = CHUNK_OVERHEAD - TAG_BYTES if is_chunk else length  # CHUNK: index + nonce first
            if len(buf) < want:
                take = min(want - len(buf), end - pos)
                buf += view[pos : pos + take]
                pos += take
                if len(buf) < want:
                    return
            self._need = None
            if is_chunk:
                self._chunk_head = (_U64.unpack_from(buf)[0], bytes(buf[8:20]))
                buf.clear()
                self._parts = []
                self._body_len = length - want  # bounded by the CHUNK limit above
                self._filled = 0
                continue
            if kind is MsgType.MANIFEST:
                # Handed over as is, not copied: a manifest is tens of MB.
                self._buf = bytearray()
                out.append(parse_manifest(buf))
                buf = self._buf
            else:
                body_bytes = bytes(buf)
                buf.clear()
                out.append(parse(kind, body_bytes))
            self._seen.add(kind)
