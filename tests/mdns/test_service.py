"""The trio side without the network: waiting for a peer, and no LAN = no socket."""

from __future__ import annotations

import trio

from p2pshare.node.mdns import core, wire
from p2pshare.node.mdns.core import Found, MdnsCore
from p2pshare.node.mdns.service import Mdns, serve_mdns

A = "12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
B = "12D3KooWBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"


def _answer(peer: str, addr: str) -> bytes:
    name = f"{'n' * 40}.{core.SERVICE}"
    ptr = wire.Record(core.SERVICE, wire.RecordType.PTR, 120, target=name)
    txt = wire.Record(name, wire.RecordType.TXT, 120, texts=(f"dnsaddr={addr}/p2p/{peer}".encode(),))
    return wire.encode(wire.Message(flags=wire.FLAG_RESPONSE, answers=(ptr,), additionals=(txt,)))


async def test_wait_addrs_wakes_when_an_answer_names_the_peer() -> None:
    mdns = Mdns(MdnsCore(B, lambda: [], trio.current_time()))
    got: list[list[str]] = []

    async def waiter() -> None:
        got.append(await mdns.wait_addrs(A, timeout=30))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.sleep(0.1)
        assert got == []
        mdns.core.on_packet(_answer(A, "/ip4/10.9.8.7/tcp/4001"), trio.current_time())
        mdns.learned()
    assert got == [["/ip4/10.9.8.7/tcp/4001"]]  # without /p2p/: as codes carry them


async def test_wait_addrs_gives_up_after_its_timeout() -> None:
    mdns = Mdns(MdnsCore(B, lambda: [], trio.current_time()))
    with trio.fail_after(5):
        assert await mdns.wait_addrs(A, timeout=0.05) == []


async def test_no_lan_address_opens_no_socket() -> None:
    found: list[Found] = []

    async def on_found(f: Found) -> None:
        found.append(f)

    async with trio.open_nursery() as nursery:
        mdns = await nursery.start(serve_mdns, A, lambda: ["/ip4/127.0.0.1/tcp/1", "/ip4/203.0.113.9/tcp/1"], on_found)
    assert isinstance(mdns, Mdns) and mdns.interfaces == []
