"""Shared helpers: in-process hosts and raw HOP/STOP exchanges."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial

import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID

from p2pshare.node.circuit.hop import RelayServer, serve_relay
from p2pshare.node.circuit.limits import RelayLimits
from p2pshare.node.circuit.wire import (
    HOP_PROTOCOL_ID,
    STOP_PROTOCOL_ID,
    HopMessage,
    HopType,
    Peer,
    Status,
    StopMessage,
    StopType,
    encode_hop,
    encode_stop,
    read_hop,
    read_stop,
)
from p2pshare.node.host import Host, LibP2PByteStream, open_host

LOOP = "/ip4/127.0.0.1/tcp/0"


@asynccontextmanager
async def relay_and_hosts(n: int, **limits: int) -> AsyncIterator[tuple[Host, RelayServer, list[Host]]]:
    keys = create_new_key_pair()
    async with AsyncExitStack() as stack:
        relay = await stack.enter_async_context(open_host(keys, [LOOP]))
        nursery = await stack.enter_async_context(trio.open_nursery())
        server = await nursery.start(partial(serve_relay, relay, RelayLimits(**limits), private_key=keys.private_key))
        hosts = [await stack.enter_async_context(open_host(create_new_key_pair(), [LOOP])) for _ in range(n)]
        yield relay, server, hosts
        nursery.cancel_scope.cancel()


async def hop(host: Host, relay: Host, msg: HopMessage) -> tuple[HopMessage, LibP2PByteStream]:
    await host.connect(relay.peer_id, relay.listen_addrs(), timeout=5)
    s = await host.open_stream(relay.peer_id, HOP_PROTOCOL_ID)
    await s.write(encode_hop(msg))
    with trio.fail_after(5):
        return await read_hop(s.read), s


async def reserve(host: Host, relay: Host) -> HopMessage:
    answer, s = await hop(host, relay, HopMessage(HopType.RESERVE))
    await s.close_write()
    return answer


async def connect(host: Host, relay: Host, target: Host) -> tuple[HopMessage, LibP2PByteStream]:
    return await hop(host, relay, HopMessage(HopType.CONNECT, peer=Peer(target.peer_id_bytes)))


class RawTarget:
    """A STOP handler without the libp2p upgrade: accepts, records, answers the
    circuit's bytes with ``"<n> <sha256>"`` at EOF (or records a reset)."""

    def __init__(self, host: Host) -> None:
        self.connects: list[StopMessage] = []
        self.results: list[str] = []
        self.done = trio.Event()
        host.set_stream_handler(STOP_PROTOCOL_ID, self.handle)

    async def handle(self, s: LibP2PByteStream) -> None:
        self.connects.append(await read_stop(s.read))
        await s.write(encode_stop(StopMessage(StopType.STATUS, status=Status.OK)))
        h, n = hashlib.sha256(), 0
        try:
            while data := await s.read(1 << 20):
                h.update(data)
                n += len(data)
        except Exception:
            self.results.append(f"reset after {n}")
            self.done.set()
            raise
        self.results.append(f"{n} {h.hexdigest()}")
        self.done.set()
        await s.write(self.results[-1].encode())


def pid_bytes(peer_id: str) -> bytes:
    return bytes(ID.from_base58(peer_id).to_bytes())
