"""DNS messages as mDNS (RFC 6762) carries them: just what libp2p discovery needs.

Everything here reads bytes that anyone on the LAN can send, so every length
and count is checked against a fixed bound *before* it is used: a packet is
at most :data:`MAX_PACKET` bytes, a name at most :data:`MAX_NAME` bytes with
at most :data:`MAX_POINTER_JUMPS` compression pointers (a pointer loop ends
there), a message holds at most :data:`MAX_RECORDS` records, and only PTR
and TXT data are decoded (other types are skipped by their length). A bad
packet raises :class:`WireError` and costs nothing beyond its own bytes.
Encoding writes uncompressed names: our messages are small.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from p2pshare.errors import ProtocolViolation

__all__ = [
    "CLASS_IN",
    "FLAG_RESPONSE",
    "MAX_PACKET",
    "Message",
    "Question",
    "Record",
    "RecordType",
    "WireError",
    "decode",
    "encode",
]

MAX_PACKET = 9000  # RFC 6762 §17: a multicast DNS message never exceeds 9000 bytes
MAX_NAME = 255  # RFC 1035: a name's wire form, labels and lengths included
MAX_LABEL = 63
MAX_POINTER_JUMPS = 16  # more than any honest name needs; ends pointer loops
MAX_QUESTIONS = 16
MAX_RECORDS = 64  # answers + authorities + additionals together
MAX_TXT_STRINGS = 32  # character-strings read from one TXT record

CLASS_IN = 1
_CLASS_MASK = 0x7FFF  # the top bit is mDNS's cache-flush / unicast-response bit
FLAG_RESPONSE = 0x8400  # QR (response) + AA (authoritative), as RFC 6762 §18 asks
_HEADER = struct.Struct("!HHHHHH")
_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength


class WireError(ProtocolViolation, ValueError):
    """A packet that is not a DNS message we accept (a peer's bad bytes, so a protocol violation)."""


class RecordType(enum.IntEnum):
    """The record types we read; others are skipped."""

    PTR = 12
    TXT = 16
    ANY = 255


@dataclass(frozen=True)
class Question:
    name: str  # lower-case, dot-separated, no trailing dot
    qtype: int


@dataclass(frozen=True)
class Record:
    """One resource record; ``target`` for PTR, ``texts`` for TXT."""

    name: str
    rtype: int
    ttl: int
    target: str = ""
    texts: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class Message:
    flags: int = 0
    questions: tuple[Question, ...] = ()
    answers: tuple[Record, ...] = ()
    additionals: tuple[Record, ...] = ()

    @property
    def is_response(self) -> bool:
        return bool(self.flags & 0x8000)


# -- decoding -------------------------------------------------------------


def _name(buf: bytes, pos: int) -> tuple[str, int]:
    """Read a (possibly compressed) name at ``pos``: (name, position after it)."""
    labels: list[str] = []
    total = 0
    jumps = 0
    end = -1  # where reading resumes after the first pointer
    while True:
        if pos >= len(buf):
            raise WireError("name runs past the packet")
        length = buf[pos]
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(buf):
                raise WireError("truncated name pointer")
            jumps += 1
            if jumps > MAX_POINTER_JUMPS:
                raise WireError("too many name pointers")
            if end < 0:
                end = pos + 2
            target = ((length & 0x3F) << 8) | buf[pos + 1]
            if target >= pos:
                raise WireError("name pointer does not point backwards")
            pos = target
            continue
        if length & 0xC0:
            raise WireError("unknown label type")
        pos += 1
        if length == 0:
            break
        total += length + 1
        if total > MAX_NAME:
            raise WireError("name too long")
        if pos + length > len(buf):
            raise WireError("label runs past the packet")
        raw = buf[pos : pos + length]
        pos += length
        try:
            labels.append(raw.decode("utf-8").lower())
        except UnicodeDecodeError:
            raise WireError("label is not UTF-8") from None
    return ".".join(labels), (end if end >= 0 else pos)


def _texts(rdata: bytes) -> tuple[bytes, ...]:
    out: list[bytes] = []
    pos = 0
    while pos < len(rdata):
        if len(out) >= MAX_TXT_STRINGS:
            raise WireError("too many TXT strings")
        length = rdata[pos]
        pos += 1
        if pos + length > len(rdata):
            raise WireError("TXT string runs past its record")
        out.append(rdata[pos : pos + length])
        pos += length
    return tuple(out)


def _record(buf: bytes, pos: int) -> tuple[Record | None, int]:
    name, pos = _name(buf, pos)
    if pos + _FIXED.size > len(buf):
        raise WireError("truncated record header")
    rtype, rclass, ttl, rdlength = _FIXED.unpack_from(buf, pos)
    pos += _FIXED.size
    if pos + rdlength > len(buf):
        raise WireError("record data runs past the packet")
    start, pos = pos, pos + rdlength
    if rclass & _CLASS_MASK != CLASS_IN:
        return None, pos
    if rtype == RecordType.PTR:
        target, after = _name(buf, start)
        if after != pos:
            raise WireError("PTR data length does not match its name")
        return Record(name, rtype, ttl, target=target), pos
    if rtype == RecordType.TXT:
        return Record(name, rtype, ttl, texts=_texts(buf[start:pos])), pos
    return None, pos  # a type we do not use: skipped by its length


def decode(buf: bytes) -> Message:
    """Parse one DNS message; :class:`WireError` for anything out of bounds."""
    if len(buf) > MAX_PACKET:
        raise WireError("packet too large")
    if len(buf) < _HEADER.size:
        raise WireError("packet shorter than a DNS header")
    _id, flags, qd, an, ns, ar = _HEADER.unpack_from(buf, 0)
    if flags & 0x7800:
        raise WireError("not a standard query or response")
    if qd > MAX_QUESTIONS or an + ns + ar > MAX_RECORDS:
        raise WireError("too many questions or records")
    pos = _HEADER.size
    questions: list[Question] = []
    for _ in range(qd):
        name, pos = _name(buf, pos)
        if pos + 4 > len(buf):
            raise WireError("truncated question")
        qtype, qclass = struct.unpack_from("!HH", buf, pos)
        pos += 4
        if qclass & _CLASS_MASK in (CLASS_IN, 255):
            questions.append(Question(name, qtype))
    sections: list[list[Record]] = [[], [], []]
    for section, count in zip(sections, (an, ns, ar), strict=True):
        for _ in range(count):
            rec, pos = _record(buf, pos)
            if rec is not None:
                section.append(rec)
    return Message(flags, tuple(questions), tuple(sections[0]), tuple(sections[2]))


# -- encoding -------------------------------------------------------------


def _encode_name(name: str) -> bytes:
    out = bytearray()
    for label in name.split(".") if name else []:
        raw = label.encode("utf-8")
        if not raw or len(raw) > MAX_LABEL:
            raise WireError(f"bad label in {name[:80]!r}")
        out += bytes([len(raw)]) + raw
    out.append(0)
    if len(out) > MAX_NAME:
        raise WireError("name too long")
    return bytes(out)


def _encode_record(rec: Record) -> bytes:
    if rec.rtype == RecordType.PTR:
        rdata = _encode_name(rec.target)
    elif rec.rtype == RecordType.TXT:
        parts = bytearray()
        for text in rec.texts:
            if len(text) > 255:
                raise WireError("TXT string longer than 255 bytes")
            parts += bytes([len(text)]) + text
        rdata = bytes(parts)
    else:
        raise WireError(f"cannot encode record type {rec.rtype}")
    return _encode_name(rec.name) + _FIXED.pack(rec.rtype, CLASS_IN, rec.ttl, len(rdata)) + rdata


def encode(msg: Message) -> bytes:
    """The message's wire form (ID 0, as mDNS uses); WireError past MAX_PACKET."""
    out = bytearray(_HEADER.pack(0, msg.flags, len(msg.questions), len(msg.answers), 0, len(msg.additionals)))
    for q in msg.questions:
        out += _encode_name(q.name) + struct.pack("!HH", q.qtype, CLASS_IN)
    for rec in (*msg.answers, *msg.additionals):
        out += _encode_record(rec)
    if len(out) > MAX_PACKET:
        raise WireError("message too large")
    return bytes(out)
