"""One Kademlia RPC over our host: dial if needed, one request, one answer.

Requests and answers are varint-framed protobuf messages on a fresh
``/ipfs/kad/1.0.0`` stream. We read through ``node.host``'s byte stream
(which turns a clean end of stream into ``b""``) and half-close when done,
so neither side sees a spurious error.
"""

from __future__ import annotations

import logging

import trio

from p2pshare.errors import RemoteError
from p2pshare.node import _libp2p_records as records
from p2pshare.node.host import Host, HostError, LibP2PByteStream

from . import wire
from .peers import is_dialable_tcp, normalize_addr

__all__ = ["PROTOCOL_ID", "RpcError", "KadClient"]

logger = logging.getLogger(__name__)

PROTOCOL_ID = "/ipfs/kad/1.0.0"
_READ_CHUNK = 64 * 1024
# Waiting for a server's ADD_PROVIDER echo (py-libp2p sends one, go and js
# just read on until our end of stream): a WAN round trip with room to spare.
_ADD_PROVIDER_LINGER = 1.5


class RpcError(RemoteError):
    """The RPC failed: unreachable peer, broken stream, bad answer (one line)."""


async def _read_frame(stream: LibP2PByteStream) -> bytes:
    """One length-prefixed answer. The bytes gather in a ``bytearray``, not
    with ``bytes +=``, which copies what came so far at each read: a server
    dribbling a 200 KiB answer one byte per read cost 0.89 s of CPU, 0.29 s
    now (the reads themselves; a hostile-peer review, stop 43)."""
    buf = bytearray()
    while True:
        head = wire.decode_varint_prefix(bytes(buf[:10]))
        if head is not None:
            length, start = head
            if len(buf) >= start + length:
                return bytes(buf[start : start + length])
            want = start + length - len(buf)
        else:
            want = 1
        chunk = await stream.read(min(_READ_CHUNK, max(want, 1)))
        if not chunk:
            raise RpcError("stream ended before a full answer")
        buf += chunk


class KadClient:
    """Sends RPCs from ``host``; every call is bounded by ``timeout``."""

    def __init__(self, host: Host, *, timeout: float) -> None:
        self.host = host
        self.timeout = timeout

    def sender_record(self) -> bytes | None:
        """Our signed peer record (py-libp2p servers learn our addresses from it).

        Left out while the host advertises a wildcard (``0.0.0.0``) address:
        a record *replaces* the addresses a server knows for us, and one
        holding only ``0.0.0.0`` would make us unfindable.
        """
        if any(normalize_addr(str(a), self.host.peer_id) is None for a in self.host.advertised_addrs()):
            return None
        try:
            return self.host.signed_peer_record()
        except Exception as e:  # never fail an RPC over an optional field
            logger.debug("no signed peer record: %s", e)
            return None

    async def _open(self, peer_id: str, addrs: list[str]) -> LibP2PByteStream:
        if not self.host.is_connected(peer_id):
            dialable = [a for a in addrs if is_dialable_tcp(a)]
            if not dialable:
                raise RpcError(f"no dialable address for {peer_id}")
            await self.host.connect(peer_id, dialable, timeout=self.timeout)
        return await self.host.open_stream(peer_id, PROTOCOL_ID)

    async def request(
        self,
        peer_id: str,
        addrs: list[str],
        request: bytes,
        *,
        expect: int,
        sender: bytes,
        verify_for: bytes | None = None,
    ) -> wire.Answer:
        """Send ``request`` (a frame) and parse the one answer."""
        stream: LibP2PByteStream | None = None
        clean = False
        try:
            with trio.fail_after(self.timeout):
                stream = await self._open(peer_id, addrs)
                await stream.write(request)
                payload = await _read_frame(stream)
            clean = True
            answer = wire.parse_answer(payload, expect=expect, sender=sender, verify_for=verify_for)
        except trio.TooSlowError:
            raise RpcError(f"{peer_id} did not answer within {self.timeout:g}s") from None
        except (HostError, wire.WireError, RpcError) as e:
            raise RpcError(str(e)) from None
        except Exception as e:  # py-libp2p raises many kinds; report one line
            raise RpcError(f"{type(e).__name__}: {e}"[:300]) from None
        finally:
            if stream is not None:
                await _close(stream, clean)
        return answer

    async def find_node(
        self, peer_id: str, addrs: list[str], sender: bytes, key: bytes, *, verify_for: bytes | None = None
    ) -> wire.Answer:
        req = wire.find_node_request(key, self.sender_record())
        return await self.request(
            peer_id, addrs, req, expect=records.KadMessage.FIND_NODE, sender=sender, verify_for=verify_for
        )

    async def get_providers(self, peer_id: str, addrs: list[str], sender: bytes, key: bytes) -> wire.Answer:
        req = wire.get_providers_request(key, self.sender_record())
        return await self.request(peer_id, addrs, req, expect=records.KadMessage.GET_PROVIDERS, sender=sender)

    async def add_provider(
        self, peer_id: str, addrs: list[str], key: bytes, self_id: bytes, my_addrs: list[str]
    ) -> None:
        """Store our provider record at ``peer_id``; raises ``RpcError`` if not sent.

        Success means the record was written and the server echoed it (as
        py-libp2p does), ended the stream, or said nothing for a moment (as
        go and js do); a reset means it refused (rate limit, bad key).
        """
        req = wire.add_provider_request(key, self_id, my_addrs, self.sender_record())
        stream: LibP2PByteStream | None = None
        clean = False
        try:
            with trio.fail_after(self.timeout):
                stream = await self._open(peer_id, addrs)
                await stream.write(req)
            # py-libp2p echoes at once, then resets the stream when it reads
            # our end of stream (and its yamux may drop an echo that a reset
            # overtakes), so wait for the echo before half-closing; go and
            # js answer nothing and wait for our end of stream instead.
            with trio.move_on_after(_ADD_PROVIDER_LINGER):
                await stream.read(_READ_CHUNK)  # echo, or b"" at end of stream
            clean = True
        except trio.TooSlowError:
            raise RpcError(f"{peer_id} did not take the record within {self.timeout:g}s") from None
        except HostError as e:
            raise RpcError(str(e)) from None
        except Exception as e:
            raise RpcError(f"{type(e).__name__}: {e}"[:300]) from None
        finally:
            if stream is not None:
                await _close(stream, clean)


async def _close(stream: LibP2PByteStream, clean: bool) -> None:
    """Half-close after a full exchange, reset otherwise; bounded even when cancelled."""
    with trio.CancelScope(shield=True), trio.move_on_after(0.5):
        if clean:
            try:
                await stream.close_write()
                return
            except Exception:
                pass
        await stream.reset()
