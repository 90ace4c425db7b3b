"""Speed patches to py-libp2p 0.8.1's Noise + yamux stream path.

Every patch keeps the wire format byte-for-byte compatible (other
implementations see ordinary Noise messages and yamux frames) and keeps
yamux flow control: data is only sent against window credit, and credit is
only granted for data the application has consumed.

Measured on loopback (scripts/bench_stream), stock py-libp2p spends its time
on per-message overhead, not on crypto: ~6 socket reads and ~8 copies per
Noise message, a WINDOW_UPDATE frame (an extra Noise message each way) after
every application read, and a writer that polls every 10 ms once the send
window is empty.

Each patch below names the upstream function it replaces and why. The
upstream source of every replaced function is fingerprinted (SHA-256 of its
source): if py-libp2p changes, that patch is skipped with a warning (stock
behaviour is kept) and ``tests/node/test_libp2p_patches.py`` fails.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import struct
import sys
from collections.abc import Callable
from typing import Any

import trio
from cryptography.exceptions import InvalidTag
from libp2p.identity.identify import identify as identify_mod
from libp2p.io import utils as io_utils
from libp2p.io.exceptions import ConnectionClosedError, IncompleteReadError
from libp2p.kad_dht.kad_dht import KadDHT
from libp2p.network.config import RetryConfig
from libp2p.network.swarm import Swarm
from libp2p.security import secure_session
from libp2p.security.noise import io as noise_io
from libp2p.stream_muxer import exceptions as mux_exc
from libp2p.stream_muxer.yamux import yamux
from noise import state as noise_state  # type: ignore[import-untyped]
from noise.connection import NoiseConnection  # type: ignore[import-untyped]
from noise.exceptions import NoiseInvalidMessage  # type: ignore[import-untyped]

from . import _libp2p_fixes as _fixes

__all__ = [
    "apply",
    "is_applied",
    "write_piece",
    "PATCHES",
    "INSTANCE_PATCHES",
    "upstream_fingerprint",
    "RECV_WINDOW",
    "no_dial_retries",
    "kad_servers_only",
]

logger = logging.getLogger(__name__)

# Bytes pulled from the socket per read under Noise (many messages at once).
READ_CHUNK = 256 * 1024
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
_WINDOW_POLL = 0.25  # re-check close/reset while waiting for credit

_applied = False
_UPSTREAM_TRANSPORT_DECRYPT = noise_io.NoiseTransportReadWriter.decrypt


# -- P1: buffered Noise reads ------------------------------------------------
# Upstream NoiseTransportReadWriter.read_msg does read_exactly(2) then
# read_exactly(len) on the socket: several recv() calls per message, then
# copies the ciphertext because noise.NoiseConnection.decrypt only takes
# bytes. We read up to READ_CHUNK bytes at once, cut as many messages from it
# as it holds, and decrypt each in place with the session's CipherState (the
# exact call NoiseConnection.decrypt makes, same error on a bad tag).


async def _noise_read_msg(self: Any, prefix_encoded: bool = False) -> bytes:
    buf: bytearray | None = self.__dict__.get("_p2ps_rbuf")
    if buf is None:
        buf = self._p2ps_rbuf = bytearray()
    conn = self.read_writer.read_write_closer
    while True:
        if len(buf) >= 2:
            size = (buf[0] << 8) | buf[1]
            if len(buf) >= 2 + size:
                break
            want = 2 + size - len(buf)
        else:
            want = 2 - len(buf)
        data = await conn.read(max(want, READ_CHUNK))
        if not data:
            # Same numbers as upstream's read_exactly of the length or body.
            expected, got = (2, len(buf)) if len(buf) < 2 else (size, len(buf) - 2)
            raise IncompleteReadError(
                f"Connection closed during read operation: expected {expected} bytes but received {got} bytes",
                expected_bytes=expected,
                received_bytes=got,
            )
        buf += data
    skip = 2 + (len(self.prefix) if prefix_encoded else 0)
    cipher = _direct_decrypt(self)
    if cipher is None:
        body = bytes(buf[skip : 2 + size])
        del buf[: 2 + size]  # consumed even if it fails to decrypt, as upstream
        return bytes(self.decrypt(body))
    try:
        # The cipher takes the buffer as it is; noise.NoiseConnection.decrypt
        # would insist on a bytes copy (and then make exactly this call).
        with memoryview(buf) as view, view[skip : 2 + size] as body_view:
            return bytes(cipher.decrypt_with_ad(None, body_view))
    except InvalidTag:
        raise NoiseInvalidMessage("Failed authentication of message") from None
    finally:
        del buf[: 2 + size]


def _direct_decrypt(rw: Any) -> Any:
    """The session's receiving CipherState, if decrypting through it is exact."""
    state = rw.noise_state
    if type(state) is not NoiseConnection or not state.handshake_finished:
        return None
    if type(rw).decrypt is not _UPSTREAM_TRANSPORT_DECRYPT:
        return None
    cipher = state.noise_protocol.cipher_state_decrypt
    return cipher if cipher is not None and cipher.has_key() else None


# -- P2: one socket write per Noise batch -------------------------------------
# Upstream BaseNoiseMsgReadWriter.write_msg encrypts each <=65519-byte chunk,
# prefixes its length (a copy) and writes it with its own send() call. We
# encrypt every chunk of the buffer and send them with one write.


async def _noise_write_msg(self: Any, msg: bytes, prefix_encoded: bool = False) -> None:
    if prefix_encoded:
        await _ORIGINALS["noise_write_msg"](self, msg, prefix_encoded)
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


# -- P4: read_exactly without copying a complete first read -------------------
# Upstream libp2p.io.utils.read_exactly always copies into a bytearray and
# back to bytes, even when the first read already returned n bytes (the
# usual case for yamux headers and bodies). Same semantics otherwise.


async def _read_exactly(reader: Any, n: int, retry_count: int = io_utils.DEFAULT_RETRY_READ_COUNT) -> bytes:
    first = await reader.read(n)
    if len(first) == n:
        return bytes(first)
    buffer = bytearray(first)
    for _ in range(retry_count):
        if len(buffer) >= n:
            return bytes(buffer)
        buffer.extend(await reader.read(n - len(buffer)))
    if len(buffer) >= n:
        return bytes(buffer)
    raise IncompleteReadError(
        f"Connection closed during read operation: expected {n} bytes but received {len(buffer)} bytes",
        expected_bytes=n,
        received_bytes=len(buffer),
    )


# -- P5: no deadline for a frame body that is already here --------------------
# Upstream Yamux._read_data_body wraps every DATA body read in
# trio.fail_after (a cancel scope per frame, ~10% of the receive path). When
# the decrypted body is already buffered in the session (the usual case) no
# wait can happen, so we read it directly; otherwise upstream runs.


async def _read_data_body(self: Any, length: int) -> bytes:
    conn = self.secured_conn
    d = getattr(conn, "__dict__", {})
    cur = d.get("_p2ps_cur")
    if cur is not None and len(cur) - d.get("_p2ps_pos", 0) >= length:
        return await _read_exactly(conn, length)
    return await _ORIGINALS["yamux_read_body"](self, length)  # type: ignore[no-any-return]


# -- P6: yamux stream writes in batches, woken by window updates -------------
# Upstream YamuxStream.write sends one <=64 KiB frame per lock round trip
# (its header+payload then re-split by Noise into a full and a tiny message)
# and, with an empty send window, sleeps in 10 ms steps and fails after 5 s.
# We send up to WRITE_BATCH bytes of frames that each fill exactly one Noise
# message in one connection write, and wait on an event that is set whenever
# the send window grows. ``send_window`` becomes a property to raise it.


def _get_send_window(self: Any) -> int:
    d = self.__dict__
    return int(d["_p2ps_send_window"] if "_p2ps_send_window" in d else d.get("send_window", 0))


def _set_send_window(self: Any, value: int) -> None:
    old = self.__dict__.get("_p2ps_send_window", 0)
    self.__dict__["_p2ps_send_window"] = value
    if value > old:
        event = self.__dict__.get("_p2ps_window_event")
        if event is not None:
            event.set()


async def _wait_for_window(stream: Any) -> None:
    with trio.move_on_after(WINDOW_STALL_TIMEOUT) as stall:
        while stream.send_window <= 0 and not stream.closed:
            event = stream._p2ps_window_event = trio.Event()
            with trio.move_on_after(_WINDOW_POLL):
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


async def _window_update(self: Any, *, bytes_read: int = 0) -> None:
    async with self.window_lock:
        self.target_recv_window = RECV_WINDOW
        buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
        delta = RECV_WINDOW - (self.recv_window + buffered)
        if delta < RECV_WINDOW // 2:
            return
        self.recv_window += delta
        self._pending_recv_release = 0
    await self.send_window_update(delta, skip_lock=True)


# -- registry -----------------------------------------------------------------


# name -> (owner, attribute, replacement, sha256 of the upstream source)
def _observed_addr_on_relay(host: Any, peer_id: Any, fallback: Any) -> Any:
    """Identify: report no observed address on a relayed connection.

    Upstream reports ``/p2p/<relay>/p2p-circuit/p2p/<peer>`` there: no IP,
    so js-libp2p throws on it and abandons identify (it then never learns
    our protocols and never starts DCUtR or AutoNAT with us). The spec's
    observedAddr is the transport address the peer was seen at; over a
    relay there is none to report, and the field is optional. ``fallback``
    is what upstream reports for a direct connection (None when relayed).
    """
    return fallback


PATCHES: dict[str, tuple[Any, str, Any, str]] = {
    # Robustness (``_libp2p_fixes``): the inbound slot is given back when the
    # connection closes, not when the swarm stops (issue 9, finding 1).
    "swarm_inbound_slot": (
        Swarm,
        "_do_handle_inbound_connection",
        _fixes.inbound_until_closed,
        "c22fdfd5289f671c6ca1d2141200153d74bd1b81c873259215d3f2f5b91bc782",
    ),
    "identify_observed_addr": (
        identify_mod,
        "_prefer_circuit_addr",
        _observed_addr_on_relay,
        "cd2e84381c98376a1ebf9526285f22087a764ff1377a1634a686e5fb99d2b2b9",
    ),
    "noise_read_msg": (
        noise_io.NoiseTransportReadWriter,
        "read_msg",
        _noise_read_msg,
        "b2fa218c135c82c09e8741282b92839f70c7275c05a78f23bfa30c7bd67ddf85",
    ),
    "noise_write_msg": (
        noise_io.NoiseTransportReadWriter,
        "write_msg",
        _noise_write_msg,
        "00818920318f86aa35a975a694953d4afb06267afe15922ee8447c6f10875330",
    ),
    "session_read": (
        secure_session.SecureSession,
        "read",
        _session_read,
        "eeba14a89cf12325917fe19497a1bfc3c7c04b377947255a62bacbe854d65338",
    ),
    "yamux_read_exactly": (
        yamux,
        "read_exactly",
        _read_exactly,
        "ae12723eff6b556d340497cf6b4a7c0b54ca2eb23c940ffcfe375dfb7e8cd9c1",
    ),
    "yamux_read_body": (
        yamux.Yamux,
        "_read_data_body",
        _read_data_body,
        "54cc06c91ba6ee159e0eefaf4802b3111fdce60fe1de566e267127c5fb2e0c41",
    ),
    "yamux_write": (
        yamux.YamuxStream,
        "write",
        _yamux_write,
        "d87f74dfb53ab194e7907a44c7400ce2f7e64f8cde63b5840af83772b17547af",
    ),
    "yamux_window_update": (
        yamux.YamuxStream,
        "_auto_tune_and_send_window_update",
        _window_update,
        "6ebcbd822fe7f996efbc9efd5dceea1e8d0d729380a807eb7e4aa81cf79ca036",
    ),
}

# Upstream code a patch relies on without replacing it (attributes it reads,
# callers whose expectations it meets): patch name -> ((owner, attr, sha256)).
_YS, _YC = yamux.YamuxStream, yamux.Yamux
DEPENDS: dict[str, tuple[tuple[Any, str, str], ...]] = {
    "swarm_inbound_slot": (
        # Holds the inbound limiter around our call and releases it when we return.
        (Swarm, "_handle_inbound_connection", "0800fdf9770ed8e691e13b474d972f431755db1dc0a843bb8fa5ecc6f561441c"),
        # Upgrades, adds the connection to the swarm, returns the muxed connection.
        (Swarm, "upgrade_inbound_raw_conn", "e24c4285f494767af5707012ad36680c5c34fca838697d0bd955446d2b8670e8"),
        # Set the events we wait on.
        (_YC, "close", "d80b27e69ccd1b899351598a89a6fc0cec1028be08c357c8e461ce820b9698ea"),
        (_YC, "_cleanup_on_error", "4fed61a999a34989b7d5e7bdd28069dd24e5f01142b7bb06c936cbf07a0fac6b"),
    ),
    "noise_read_msg": (
        (
            noise_io.BaseNoiseMsgReadWriter,
            "__init__",
            "e6b51bace4fa3dda4a04e7367a9d40f2658344a4320ae477ff4a34afb6246d98",
        ),
        (NoiseConnection, "decrypt", "dbc62074807476314bf31be5bb5d8ffa9bf77f0779e99a9c23cb80154c97c016"),
        (
            noise_state.CipherState,
            "decrypt_with_ad",
            "1493b737bc5cf71f1979b2bb36f356dd459de35f1fbb576de7d7a4c71938b6c4",
        ),
        (
            noise_io.NoiseTransportReadWriter,
            "decrypt",
            "d9d398b4d8b92c753c410265cfb7b5d710b913446be61047609779bd34f1951c",
        ),
    ),
    "noise_write_msg": (
        (
            noise_io.NoiseTransportReadWriter,
            "encrypt",
            "c03978a143638cd3cfe64d2a8e8c58d404e8013151cce47b8058b66131423a5e",
        ),
    ),
    "session_read": (
        (secure_session.SecureSession, "write", "0298b065574caeda5be72116ddcd44d5c9065b28c768841fca81895cf912e9a9"),
    ),
    "yamux_read_body": (
        (_YC, "handle_incoming", "ad15ff6943feac206c7abfbf77f2142a64bb5edbe9085e3ccdda371736abdc7b"),
        (secure_session.SecureSession, "read", "eeba14a89cf12325917fe19497a1bfc3c7c04b377947255a62bacbe854d65338"),
    ),
    "yamux_read_exactly": (
        (_YC, "_read_data_body", "54cc06c91ba6ee159e0eefaf4802b3111fdce60fe1de566e267127c5fb2e0c41"),
    ),
    "yamux_write": (
        (_YS, "__init__", "ab24c0709285d573f546dc1100b25ed0b8162e72df750004c0c103729256449b"),
        (_YC, "handle_incoming", "ad15ff6943feac206c7abfbf77f2142a64bb5edbe9085e3ccdda371736abdc7b"),
        (_YC, "_write_frame", "16ff969cdd0d2b1b296bf1b1765471239ce96e18c8b00784ef77a2fb808c4d5b"),
    ),
    "yamux_window_update": (
        (_YS, "read", "ca585f2199fd4e83cc1ceffe0b28c0d2c176c0af426ce6fe0c155d79038bd9e9"),
        (_YC, "read_stream", "d07c99299384666ddcec8f96a18caf56c71aa957197dd68a99a84c806844310d"),
        (_YS, "send_window_update", "f76fe6e67077b4a3bf26cc3bc469047002367bb028353548c070cb121e27a3f4"),
        (_YC, "handle_incoming", "ad15ff6943feac206c7abfbf77f2142a64bb5edbe9085e3ccdda371736abdc7b"),
    ),
}

_ORIGINALS: dict[str, Any] = {}


def upstream_fingerprint(obj: Any) -> str:
    """SHA-256 of an upstream function's source (what the patch assumes)."""
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()


def _upstream(owner: Any, attr: str) -> Any:
    """The upstream object at ``owner.attr``, even if we replaced it."""
    for name, (o, a, _, _) in PATCHES.items():
        if o is owner and a == attr and name in _ORIGINALS:
            return _ORIGINALS[name]
    return getattr(owner, attr)


def changed_upstream(name: str) -> list[str]:
    """Upstream functions patch ``name`` relies on whose source changed."""
    owner, attr, _, expected = PATCHES[name]
    checks = [(owner, attr, expected), *DEPENDS.get(name, ())]
    return [f"{getattr(o, '__name__', o)}.{a}" for o, a, sha in checks if upstream_fingerprint(_upstream(o, a)) != sha]


def apply() -> None:
    """Apply every patch whose upstream code is unchanged (idempotent)."""
    global _applied
    if _applied:
        return
    for name, (owner, attr, replacement, _) in PATCHES.items():
        changed = changed_upstream(name)
        if changed:
            logger.warning("py-libp2p changed (%s): patch %s not applied", ", ".join(changed), name)
            continue
        _ORIGINALS[name] = getattr(owner, attr)
        if name == "yamux_write":
            # The window lives under our name in each stream; this property
            # sets the writer's wake-up event whenever the window grows.
            window = property(_get_send_window, _set_send_window)
            setattr(yamux.YamuxStream, "send_window", window)  # noqa: B010 - mypy sees an int attribute
        setattr(owner, attr, replacement)
    _applied = True


def write_piece() -> int:
    """Most bytes per ``INetStream.write`` call that suit the active yamux writer.

    The batching writer (P6) frames any buffer itself, WRITE_BATCH bytes per
    lock round trip over a memoryview: hand it the whole buffer (splitting
    it in the adapter only costs copies and per-write overhead). Stock yamux
    needs pieces that make one frame that fits one Noise message.
    """
    if "yamux_write" in _ORIGINALS:
        return sys.maxsize
    return FRAME_PAYLOAD


def is_applied() -> bool:
    """True once :func:`apply` has run in this process."""
    return _applied


# -- instance patches -----------------------------------------------------------
# Patches to one object (a host's swarm, a KadDHT) rather than to a class.
# name -> the upstream code each relies on: ((owner, attribute, sha256), ...).
# When that code changed, the object is left stock (one warning) and
# tests/node/test_libp2p_patches.py fails.
INSTANCE_PATCHES: dict[str, tuple[tuple[Any, str, str], ...]] = {
    # Swarm.retry_config is read only by _dial_with_retry.
    "no_dial_retries": (
        (Swarm, "_dial_with_retry", "bd2025f00c84dddb6edaebd5555399123c0dbd99a46f8aca930809c2636fb418"),
    ),
    # KadDHT.add_peer's only caller is the inbound handler, _do_handle_stream.
    "kad_servers_only": (
        (KadDHT, "add_peer", "6a2b045848b918ec5f9bd9458167f94bfaac7530d22636b6911e286c896672b2"),
        (KadDHT, "_do_handle_stream", "5bbaed4d3cdf488c3c63e54f8434bd2de8c0b5050b800cc94ee623fc8e0c63b4"),
    ),
}


def changed_instance_upstream(name: str) -> list[str]:
    """Upstream functions instance patch ``name`` relies on whose source changed."""
    return [f"{o.__name__}.{a}" for o, a, sha in INSTANCE_PATCHES[name] if upstream_fingerprint(getattr(o, a)) != sha]


def _instance_patch_ok(name: str) -> bool:
    changed = changed_instance_upstream(name)
    if changed:
        logger.warning("py-libp2p changed (%s): patch %s not applied", ", ".join(changed), name)
    return not changed


def no_dial_retries(network: Any) -> bool:
    """No hidden retry backoff on dials: our dial race and the callers'
    timeouts decide (upstream retries a failed dial 3 times, up to ~7 s)."""
    if not _instance_patch_ok("no_dial_retries"):
        return False
    network.retry_config = RetryConfig(max_retries=0)
    return True


def kad_servers_only(dht: Any, host: Any, kad_protocol: str, on_added: Callable[[], None] | None = None) -> bool:
    """Admit only Kademlia servers to ``dht``'s routing table from inbound RPCs.

    py-libp2p adds every peer that queries us to the routing table, DHT
    clients too; the Kademlia spec (and go/js) admit only peers that serve
    the protocol. In 0.8.1 the inbound handler is ``KadDHT.add_peer``'s only
    caller; our own lookups use ``routing_table.add_peer`` directly.
    ``on_added`` is called after every peer added this way.
    """
    if not _instance_patch_ok("kad_servers_only"):
        return False

    async def add_inbound(peer_id: Any, *, skip_server_mode_check: bool = False) -> bool:
        try:
            protocols = host.get_peerstore().get_protocols(peer_id)
        except Exception:  # noqa: BLE001 - unknown peer: not a server we know of
            return False
        if kad_protocol not in protocols:
            return False
        added = bool(await dht.routing_table.add_peer(peer_id))
        if added and on_added is not None:
            on_added()
        return added

    dht.add_peer = add_inbound
    return True
