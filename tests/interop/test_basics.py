"""py-libp2p ↔ js-libp2p: TCP + Noise + yamux connections, identify, ping.

Each test runs in both directions where the protocol has two: the py host in
this process (trio), the js peer as a separate Node 22 process.
"""

from __future__ import annotations

import multiaddr
import pytest
import trio
from libp2p.crypto.serialization import deserialize_public_key
from libp2p.host.ping import PingService
from libp2p.identity.identify.identify import ID as IDENTIFY_ID
from libp2p.identity.identify.pb.identify_pb2 import Identify
from libp2p.peer.id import ID
from libp2p.utils.varint import read_length_prefixed_protobuf

from ._pyhost import connect, open_py_host, p2p_addrs
from .conftest import JsPeerFactory

pytestmark = pytest.mark.interop

PING = "/ipfs/ping/1.0.0"
IDENTIFY = "/ipfs/id/1.0.0"


def _ip_port(addr: str) -> tuple[str, int]:
    """('127.0.0.1', 4001) from '/ip4/127.0.0.1/tcp/4001[/p2p/...]'."""
    parts = addr.split("/")
    assert parts[1] == "ip4" and parts[3] == "tcp", addr
    return parts[2], int(parts[4])


def _py_view_of(host: object, peer: ID) -> tuple[str, int]:
    """The remote (ip, port) of py's single connection to ``peer``."""
    conns = host.get_network().get_connections(peer)  # type: ignore[attr-defined]
    assert len(conns) == 1, conns
    remote = conns[0].muxed_conn.secured_conn.get_remote_address()
    assert remote is not None
    return str(remote[0]), int(remote[1])


async def _js_view_of(js: object, peer: ID) -> tuple[str, int]:
    """The remote (ip, port) of js's connections to ``peer`` (must be one)."""
    conns = [c for c in (await js.call("peers"))["peers"] if c["peer_id"] == str(peer)]  # type: ignore[attr-defined]
    assert len(conns) == 1, conns
    return _ip_port(conns[0]["remote_addr"])


async def _wait_identified(host: object, peer: ID, timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not host.get_peerstore().get_protocols(peer):  # type: ignore[attr-defined]
            await trio.sleep(0.02)


async def test_connect_py_dials_js(js_peer: JsPeerFactory) -> None:
    js = await js_peer()
    async with open_py_host() as host:
        peer = await connect(host, js.addr)
        assert str(peer) == js.peer_id
        assert peer in host.get_connected_peers()
        js_ip, js_port = _py_view_of(host, peer)
        assert (js_ip, js_port) == _ip_port(js.addr)
        # js sees an inbound connection from py's ephemeral port.
        js_side = [c for c in (await js.call("peers"))["peers"] if c["peer_id"] == str(host.get_id())]
        assert [c["direction"] for c in js_side] == ["inbound"]


async def test_connect_js_dials_py(js_peer: JsPeerFactory) -> None:
    js = await js_peer()
    async with open_py_host() as host:
        res = await js.call("dial", addr=p2p_addrs(host)[0])
        assert res["peer_id"] == str(host.get_id())
        with trio.fail_after(5):
            while ID.from_base58(js.peer_id) not in host.get_connected_peers():
                await trio.sleep(0.02)
        assert _ip_port(res["remote_addr"]) == _ip_port(p2p_addrs(host)[0])


async def test_identify_js_asks_py(js_peer: JsPeerFactory) -> None:
    """js sees py's protocols, listen address and the address py observes js at."""
    js = await js_peer()
    async with open_py_host() as host:
        await js.call("dial", addr=p2p_addrs(host)[0])
        res = await js.call("identify", peer_id=str(host.get_id()))
        assert res["peer_id"] == str(host.get_id())
        assert {IDENTIFY, PING} <= set(res["protocols"])
        listen = {_ip_port(a) for a in res["listen_addrs"]}
        assert _ip_port(p2p_addrs(host)[0]) in listen
        # py must report js's real source address: the one py's socket sees.
        assert res["observed_addr"] is not None
        observed = _ip_port(res["observed_addr"])
        assert observed == _py_view_of(host, ID.from_base58(js.peer_id))


async def test_identify_py_asks_js(js_peer: JsPeerFactory) -> None:
    """py reads js's identify message off the wire and checks every field it uses."""
    js = await js_peer()
    async with open_py_host() as host:
        peer = await connect(host, js.addr)
        # py identifies every new connection by itself; js allows only one
        # inbound identify stream per connection and resets a second,
        # concurrent one. Let py's own identify finish first.
        await _wait_identified(host, peer)
        stream = await host.new_stream(peer, [IDENTIFY_ID])
        with trio.fail_after(5):
            raw = await read_length_prefixed_protobuf(stream, use_varint_format=True, max_length=65536)
        await stream.close()
        msg = Identify()
        msg.ParseFromString(raw)
        assert {IDENTIFY, PING} <= set(msg.protocols)
        key = deserialize_public_key(msg.public_key)
        assert str(ID.from_pubkey(key)) == js.peer_id
        listen = {_ip_port(str(multiaddr.Multiaddr(a))) for a in msg.listen_addrs}
        assert _ip_port(js.addr) in listen
        assert msg.HasField("observed_addr")
        observed = _ip_port(str(multiaddr.Multiaddr(msg.observed_addr)))
        assert observed == await _js_view_of(js, host.get_id())


async def test_ping_py_pings_js(js_peer: JsPeerFactory) -> None:
    js = await js_peer()
    async with open_py_host() as host:
        peer = await connect(host, js.addr)
        with trio.fail_after(10):
            rtts = await PingService(host).ping(peer, ping_amt=3)
        assert len(rtts) == 3
        # ms, whole: 0 is normal on loopback. A wrong pong raises ValueError.
        assert all(0 <= r < 5000 for r in rtts)


async def test_ping_js_pings_py(js_peer: JsPeerFactory) -> None:
    js = await js_peer()
    async with open_py_host() as host:
        res = await js.call("ping", addr=p2p_addrs(host)[0])
        assert 0 <= res["rtt_ms"] < 5000
