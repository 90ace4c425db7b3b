"""Speed patches to py-libp2p 0.8.1's Noise + yamux stream path and to multistream-select's
round trips (replacement functions).

Registered, fingerprinted and applied in ``_libp2p_patches.PATCHES``; the
why of each is in that module's docstring and beside each function here.
Every replacement keeps the wire format byte-for-byte and keeps yamux flow
control.
"""

from __future__ import annotations

import contextvars
import logging
import struct
from typing import Any

import trio
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from libp2p.abc import INetStream
from libp2p.io.exceptions import ConnectionClosedError, IOException
from libp2p.io.trio import TrioTCPStream
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.network.stream.exceptions import StreamError
from libp2p.protocol_muxer import exceptions as mss_exc
from libp2p.protocol_muxer import multiselect_client as mss_client
from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator
from libp2p.security.noise import io as noise_io
from libp2p.stream_muxer import exceptions as mux_exc
from libp2p.stream_muxer.yamux import yamux
from libp2p.utils import encode_delim
from noise.backends.default.ciphers import ChaCha20Cipher  # type: ignore[import-untyped]
from noise.constants import MAX_NONCE  # type: ignore[import-untyped]
from noise.exceptions import NoiseMaxNonceError  # type: ignore[import-untyped]

from ._libp2p_noise_cipher import session_cipher
from ._libp2p_originals import ORIGINALS as _ORIGINALS
from ._libp2p_rcmgr import window_target

logger = logging.getLogger(__name__)

# Plaintext per Noise transport message (65535 minus the 16-byte tag).
NOISE_MAX_PLAINTEXT: int = int(noise_io.MAX_PLAINTEXT_LENGTH)
# A yamux DATA frame (12-byte header + payload) that fills one Noise message.
FRAME_PAYLOAD: int = NOISE_MAX_PLAINTEXT - int(yamux.HEADER_SIZE)
# Most bytes one stream write hands to the connection under its write lock.
WRITE_BATCH = 1 << 20
# Receive window we grant per stream (upstream's autotune ceiling, reached at
# once); credit is re-granted once half of it has been consumed (go-yamux).
RECV_WINDOW = yamux.MAX_WINDOW_SIZE
# A writer blocked on an empty send window gives up after this long. Upstream
# gives up after 5 s, which kills transfers whose reader pauses briefly.
WINDOW_STALL_TIMEOUT = 120.0

# -- P1: buffered Noise reads are in ``_libp2p_noise_rx``. ------------------


# -- P2: one socket write per Noise batch -------------------------------------
# Upstream BaseNoiseMsgReadWriter.write_msg encrypts each <=65519-byte chunk,
# prefixes its length (a copy) and writes it with its own send() call. We
# encrypt every chunk of the buffer and send them with one write. With the
# session's ChaCha20-Poly1305 state at hand (the exact calls the noise
# library makes: nonce 4 zero bytes + n little-endian, n += 1) each chunk is
# sealed from a view of ``msg`` straight into its place in the output
# buffer: no slice copy, no join copy (issue 12: ~0.2 s of the sender's CPU
# per GiB). Over plain TCP the output buffer is reused for a later batch
# (a small shared pool, below): the socket write has sent it all when it
# returns.

_NONCE_PAD = bytes(4)
_TAG = 16
_POOL_MAX = 4
# Pooled buffers hold any batch from 64 KiB to a sealed WRITE_BATCH of frames
# (a relay's writes vary in size: an exact-size pool missed, and every write
# paid for a fresh zeroed megabyte); smaller ones are allocated exactly.
_POOL_MIN = 64 << 10
_POOLED = 2 * WRITE_BATCH
_WBUF_POOL: list[bytearray] = []


def _direct_encrypt(rw: Any) -> Any:
    """The session's sending CipherState, if sealing through its AEAD is exact."""
    cs = session_cipher(rw, sending=True)
    if cs is None or type(cs.cipher) is not ChaCha20Cipher:
        return None
    return cs if type(getattr(cs.cipher, "cipher", None)) is ChaCha20Poly1305 else None


def _seal_all(cs: Any, msg: Any, out: bytearray | memoryview) -> None:
    """Seal ``msg`` in Noise messages of at most NOISE_MAX_PLAINTEXT bytes,
    each with its 2-byte length, into ``out`` (exactly their size)."""
    aead = cs.cipher.cipher
    with memoryview(msg) as src, memoryview(out) as dst:
        pos = 0
        for off in range(0, max(len(src), 1), NOISE_MAX_PLAINTEXT):
            piece = src[off : off + NOISE_MAX_PLAINTEXT]
            size = len(piece) + _TAG
            if cs.n == MAX_NONCE:
                raise NoiseMaxNonceError("Nonce has depleted!")
            dst[pos : pos + 2] = size.to_bytes(2, "big")
            aead.encrypt_into(_NONCE_PAD + cs.n.to_bytes(8, "little"), piece, None, dst[pos + 2 : pos + 2 + size])
            cs.n += 1
            piece.release()
            pos += 2 + size


def _sealed_size(size: int) -> int:
    return size + max(1, -(-size // NOISE_MAX_PLAINTEXT)) * (2 + _TAG)


async def _noise_write_msg(self: Any, msg: bytes, prefix_encoded: bool = False) -> None:
    if prefix_encoded:
        await _ORIGINALS["noise_write_msg"](self, msg, prefix_encoded)
        return
    cs = _direct_encrypt(self)
    if cs is not None:
        conn = self.read_writer.read_write_closer
        total = _sealed_size(len(msg))
        reuse = (
            _POOL_MIN <= total <= _POOLED
            and type(conn) is RawConnection
            and type(getattr(conn, "stream", None)) is TrioTCPStream
        )
        if not reuse:
            out = bytearray(total)
            _seal_all(cs, msg, out)
            await conn.write(out)
            return
        pooled = _WBUF_POOL.pop() if _WBUF_POOL else bytearray(_POOLED)
        with memoryview(pooled) as whole, whole[:total] as out_view:
            _seal_all(cs, msg, out_view)
            await conn.write(out_view)
        if len(_WBUF_POOL) < _POOL_MAX:
            _WBUF_POOL.append(pooled)
        return
    parts: list[bytes] = []
    if len(msg) <= NOISE_MAX_PLAINTEXT:
        chunks = [bytes(msg)]
    else:
        chunks = [msg[i : i + NOISE_MAX_PLAINTEXT] for i in range(0, len(msg), NOISE_MAX_PLAINTEXT)]
    for chunk in chunks:
        ciphertext = self.encrypt(chunk)  # the noise library insists on bytes
        parts.append(len(ciphertext).to_bytes(2, "big"))
        parts.append(ciphertext)
    await self.read_writer.read_write_closer.write(b"".join(parts))


# -- P3: SecureSession.read without the copy chain ---------------------------
# Upstream keeps leftover plaintext in a BytesIO and rebuilds every result in
# a bytearray (about four copies per message). We keep the current message
# and an offset, and return it without copying when it is read whole.


async def _session_read(self: Any, n: int | None = None) -> bytes:
    if n == 0:
        return b""
    cur: bytes = self.__dict__.get("_p2ps_cur", b"")
    pos: int = self.__dict__.get("_p2ps_pos", 0)
    avail = len(cur) - pos
    if n is None and avail:
        self._p2ps_cur, self._p2ps_pos = b"", 0
        return cur[pos:] if pos else cur
    if n is None:
        msg = await self.conn.read_msg()
        if msg == b"":
            raise ConnectionClosedError("Connection closed")
        return bytes(msg)
    if avail >= n:
        out = cur if (pos == 0 and n == len(cur)) else cur[pos : pos + n]
        pos += n
        self._p2ps_cur, self._p2ps_pos = (b"", 0) if pos == len(cur) else (cur, pos)
        return out
    self._p2ps_cur, self._p2ps_pos = b"", 0
    if not avail:
        msg = bytes(await self.conn.read_msg())
        if msg == b"":
            raise ConnectionClosedError("Connection closed")
        if len(msg) >= n:
            if len(msg) > n:
                self._p2ps_cur, self._p2ps_pos = msg, n
                return msg[:n]
            return msg
        parts = bytearray(msg)
    else:
        parts = bytearray(cur[pos:])
    while len(parts) < n:
        msg = await self.conn.read_msg()
        if msg == b"":
            return bytes(parts)  # upstream: partial data at EOF
        need = n - len(parts)
        if len(msg) > need:
            parts += msg[:need]
            self._p2ps_cur, self._p2ps_pos = msg, need
        else:
            parts += msg
    return bytes(parts)


# -- P4, P5, P10: the yamux receive path is in ``_libp2p_yamux_rx``. ------------


# -- P6: yamux stream writes in batches, woken by window updates -------------
# Upstream YamuxStream.write sends one <=64 KiB frame per lock round trip
# (its header+payload then re-split by Noise into a full and a tiny message)
# and, with an empty send window, sleeps in 10 ms steps and fails after 5 s.
# We send up to WRITE_BATCH bytes of frames that each fill exactly one Noise
# message in one connection write, and wait on an event that is set whenever
# the send window grows or the stream closes. ``send_window`` and ``closed``
# become properties to raise it: every path that ends a stream (close, reset,
# an RST or FIN from the peer, the connection's shutdown or failure) sets
# ``closed``, so a writer waiting for credit needs no timer to notice.


def _get_send_window(self: Any) -> int:
    d = self.__dict__
    return int(d["_p2ps_send_window"] if "_p2ps_send_window" in d else d.get("send_window", 0))


def _wake_writer(stream: Any) -> None:
    """Set the event a writer waiting for credit sleeps on, if one does."""
    event = stream.__dict__.get("_p2ps_window_event")
    if event is not None:
        event.set()


def _set_send_window(self: Any, value: int) -> None:
    old = self.__dict__.get("_p2ps_send_window", 0)
    self.__dict__["_p2ps_send_window"] = value
    if value > old:
        _wake_writer(self)


def _get_closed(self: Any) -> bool:
    d = self.__dict__
    return bool(d["_p2ps_closed"] if "_p2ps_closed" in d else d.get("closed", False))


def _set_closed(self: Any, value: bool) -> None:
    self.__dict__["_p2ps_closed"] = value
    if value:
        _wake_writer(self)


async def _wait_for_window(stream: Any) -> None:
    with trio.move_on_after(WINDOW_STALL_TIMEOUT) as stall:
        while stream.send_window <= 0 and not stream.closed:
            # Set by ``_set_send_window`` when credit arrives, by
            # ``_set_closed`` when the stream ends; nothing can run between
            # the check above and this line.
            event = stream._p2ps_window_event = trio.Event()
            await event.wait()
    if stall.cancelled_caught:
        raise mux_exc.MuxedStreamError(f"Timed out waiting for window update after {WINDOW_STALL_TIMEOUT:g} seconds.")


async def _yamux_write(self: Any, data: bytes) -> None:
    if self.send_closed:
        raise mux_exc.MuxedStreamError("Stream is closed for sending")
    pack = struct.Struct(yamux.YAMUX_HEADER_FORMAT).pack
    with memoryview(data) as view:
        total = len(view)
        sent = 0
        async with self.rw_lock.write_lock():
            while sent < total:
                if self.send_closed:
                    raise mux_exc.MuxedStreamError("Stream is closed for sending")
                async with self.window_lock:
                    if self.closed:
                        raise mux_exc.MuxedStreamError("Stream is closed")
                    allowed = min(self.send_window, total - sent, WRITE_BATCH)
                    if allowed > 0:
                        self.send_window -= allowed
                if allowed <= 0:
                    self._zero_window_waits += 1
                    await _wait_for_window(self)
                    continue
                parts: list[bytes | memoryview] = []
                end = sent + allowed
                for off in range(sent, end, FRAME_PAYLOAD):
                    size = min(FRAME_PAYLOAD, end - off)
                    parts.append(pack(0, yamux.TYPE_DATA, 0, self.stream_id, size))
                    parts.append(view[off : off + size])
                await self.conn._write_frame(b"".join(parts))
                sent = end


# -- P7: go-yamux window updates ----------------------------------------------
# Upstream YamuxStream._auto_tune_and_send_window_update sends a WINDOW_UPDATE
# after nearly every read (its "release on read" mode): one more Noise message
# each way per read. Like go-yamux, we grant credit up to RECV_WINDOW minus
# what is still buffered, and only once that delta reaches half the window.
# Only streams that carry our protocols' bulk data get RECV_WINDOW:
# ``LibP2PByteStream.start_bulk`` marks them (``_p2ps_bulk``): streams we open
# at once, a handler's stream only when its protocol starts moving bulk data
# (a relay's circuit once spliced, a STOP stream once it carries the relayed
# connection). The others -- py-libp2p's KAD server, identify, ping, our own
# request/answer handlers, and every stream while its protocol is negotiated
# -- keep yamux's initial 256 KiB, so a peer cannot park 16 MiB of unread
# requests per stream in a server that reads a few KiB at a time (issue 9),
# nor book 16 MiB of a protocol's memory budget per idle stream.


async def _window_update(self: Any, *, bytes_read: int = 0) -> None:
    limit = RECV_WINDOW if self.__dict__.get("_p2ps_bulk") else int(yamux.DEFAULT_WINDOW_SIZE)
    async with self.window_lock:
        # Our own protocols' streams may grow past 256 KiB (py-libp2p's own
        # handlers never do), and an inbound one only with memory reserved.
        window = window_target(self, limit)
        self.target_recv_window = window
        buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
        delta = window - (self.recv_window + buffered)
        if delta < window // 2:
            return
        self.recv_window += delta
        self._pending_recv_release = 0
    await self.send_window_update(delta, skip_lock=True)


# -- P8: pipelined multistream-select -----------------------------------------
# Upstream MultiselectClient.select_one_of writes "/multistream/1.0.0", waits
# for the listener's header, then writes the protocol and waits again: two
# round trips per negotiation. A connection negotiates twice (security, muxer)
# and every stream once, so a relayed first byte paid ~6 extra RTTs (issue
# 10: ~1 s at 80 ms per hop). The spec lets the dialer send its header and
# first choice at once (go-libp2p's dialers do); the listener's answers come
# back in one round trip. Later choices, after an "na", go one at a time as
# upstream does. Same messages on the wire, same errors.


class ProtocolsRefused(mss_exc.MultiselectClientError):
    """The listener answered "na" to each protocol offered; the façade reads
    ``refused_protocol`` (the first offered) to say so."""

    def __init__(self, message: str, protocol: str) -> None:
        super().__init__(message)
        self.refused_protocol = protocol


async def _select_one_of(
    self: Any, protocols: Any, communicator: Any, negotiate_timeout: int = mss_client.DEFAULT_NEGOTIATE_TIMEOUT
) -> Any:
    wanted = list(protocols)
    if not wanted:
        return await _ORIGINALS["mss_pipelined"](self, protocols, communicator, negotiate_timeout)
    if len(wanted) == 1 and wanted[0] and _lazy_allowed(communicator, wanted[0]):
        await _write_pipelined(communicator, (mss_client.MULTISELECT_PROTOCOL_ID, wanted[0]))
        _defer_answers(communicator, wanted[0], negotiate_timeout)
        return wanted[0]
    first = wanted[0]
    first_str = first if first is not None else ""
    with trio.move_on_after(negotiate_timeout):
        await _write_pipelined(communicator, (mss_client.MULTISELECT_PROTOCOL_ID, first_str))
        hello = await _read_mss(communicator, "handshake")
        if hello != mss_client.MULTISELECT_PROTOCOL_ID:
            raise mss_exc.MultiselectClientError(
                f"multiselect protocol ID mismatch: expected {mss_client.MULTISELECT_PROTOCOL_ID}, got {hello!r}"
            )
        response = await _read_mss(communicator, "protocol")
        if response == mss_client.MULTISELECT_PROTOCOL_ID:  # a peer that restarted its handshake (upstream: once)
            response = await _read_mss(communicator, "protocol")
        if response == first_str:
            return first
        if response != mss_client.PROTOCOL_NOT_FOUND_MSG:
            raise mss_exc.MultiselectClientError(
                f"unrecognized response: {response!r}, expected {first_str!r} or "
                f"{mss_client.PROTOCOL_NOT_FOUND_MSG!r}, protocol={first}"
            )
        refused = [f"protocol not supported: {first}, response={response!r}"]
        for protocol in wanted[1:]:
            try:
                return await self.try_select(communicator, protocol)
            except mss_exc.ProtocolNotSupportedError as error:
                refused.append(str(error))
        raise ProtocolsRefused(
            f"protocols not supported: tried {wanted}, timeout={negotiate_timeout}s. Last error: {refused[-1]}",
            first_str,
        )
    raise mss_exc.MultiselectClientError(f"response timed out after {negotiate_timeout}s, protocols tried: {wanted}")


# -- P9: lazy multistream-select ----------------------------------------------
# With one protocol to offer there is nothing to choose: like go-libp2p's and
# js-libp2p's lazy dialers, we send the header and the protocol and go on at
# once (the Noise handshake, yamux, a stream's first request ride right
# behind), and check the listener's two answers on the first read. A
# connection saves two round trips (security, muxer), a stream one: on a
# relayed then hole-punched first byte at 170 ms RTT, that is most of a
# second. A listener that says "na" -- or anything else -- fails that first
# read with ``LazyNegotiationFailed`` (a multistream error to the upgrader, a
# stream error to stream readers), as it would have failed the open.


class LazyNegotiationFailed(mss_exc.MultiselectClientError, StreamError):
    """The listener refused (or never confirmed) a protocol we already used."""


class LazyProtocolRefused(LazyNegotiationFailed):
    """The listener answered that it does not speak the protocol; the façade
    reads ``refused_protocol`` to say so (``_libp2p_conn.ProtocolRefused``)."""

    def __init__(self, protocol: str, answer: str) -> None:
        super().__init__(f"protocol not supported: {protocol}, response={answer!r}")
        self.refused_protocol = protocol


# A connection's negotiations are lazy (one security protocol, Noise; one
# muxer, yamux); a stream's only when the façade opens it and names its
# protocol here (its callers treat a failed first read like a failed open),
# so py-libp2p's own streams keep upstream's behaviour. LAZY_OFF turns
# laziness off altogether (the pipelined path's tests).
LAZY_STREAM: contextvars.ContextVar[str | None] = contextvars.ContextVar("p2ps_lazy_stream", default=None)
LAZY_OFF: contextvars.ContextVar[bool] = contextvars.ContextVar("p2ps_lazy_off", default=False)


def _lazy_allowed(communicator: Any, protocol: str) -> bool:
    if LAZY_OFF.get() or not isinstance(communicator, MultiselectCommunicator):
        return False
    rw = communicator.read_writer
    if not hasattr(rw, "__dict__") or "read" in rw.__dict__:
        return False
    return not isinstance(rw, INetStream) or LAZY_STREAM.get() == protocol


def _defer_answers(communicator: Any, protocol: str, timeout: float) -> None:
    """Make the first read of ``communicator.read_writer`` consume and check
    the listener's header and protocol echo, then read as asked."""
    rw = communicator.read_writer

    async def first_read(*args: Any, **kwargs: Any) -> Any:
        rw.__dict__.pop("read", None)  # from now on the class's read, also for the checks
        await _check_answers(communicator, protocol, timeout)
        return await rw.read(*args, **kwargs)

    rw.read = first_read


async def _check_answers(communicator: Any, protocol: str, timeout: float) -> None:
    try:
        with trio.fail_after(timeout):
            hello = await communicator.read()
            if hello != mss_client.MULTISELECT_PROTOCOL_ID:
                raise LazyNegotiationFailed(f"multiselect protocol ID mismatch: got {hello!r}")
            answer = await communicator.read()
            if answer == mss_client.MULTISELECT_PROTOCOL_ID:  # a listener that restarted its handshake
                answer = await communicator.read()
    except trio.TooSlowError:
        raise LazyNegotiationFailed(f"no answer to {protocol} within {timeout}s") from None
    except mss_exc.MultiselectCommunicatorError as error:
        cause = error.__cause__ or error
        raise LazyNegotiationFailed(f"no answer to {protocol}: {str(cause) or type(cause).__name__}") from error
    if answer == mss_client.PROTOCOL_NOT_FOUND_MSG:
        raise LazyProtocolRefused(protocol, answer)
    if answer != protocol:
        raise LazyNegotiationFailed(f"unexpected answer to {protocol}: {answer!r}")


async def _write_pipelined(communicator: Any, messages: tuple[str, ...]) -> None:
    """The messages in one write (one segment, one Noise message) when the
    communicator is upstream's; else one write each, still without waiting."""
    try:
        if isinstance(communicator, MultiselectCommunicator):
            await communicator.read_writer.write(b"".join(encode_delim(m.encode()) for m in messages))
        else:
            for m in messages:
                await communicator.write(m)
    except (mss_exc.MultiselectCommunicatorError, IOException, AssertionError, ValueError) as error:
        raise mss_exc.MultiselectClientError(f"handshake write failed: {error}") from error


async def _read_mss(communicator: Any, what: str) -> str:
    try:
        return str(await communicator.read())
    except mss_exc.MultiselectCommunicatorError as error:
        raise mss_exc.MultiselectClientError(f"{what} read failed: {error}") from error


# -- registry -----------------------------------------------------------------
