"""node.host against peers in other processes (real TCP, Noise, yamux)."""

from __future__ import annotations

import hashlib
import os
import socket

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair

from p2pshare.node.dialfail import DialFailure, DialFailureKind, describe
from p2pshare.node.host import DialError, ListenError, ProtocolRefused, StreamError, open_host
from tests.node import _peer
from tests.node.conftest import BIG, Peer


async def _read_all(stream: object, limit: int = 1 << 30) -> bytes:
    out = bytearray()
    while chunk := await stream.read(1 << 20):  # type: ignore[attr-defined]
        out += chunk
        assert len(out) <= limit
    return bytes(out)


async def test_connect_echo_and_metadata(peer_procs: dict[str, Peer]) -> None:
    peer = peer_procs["ours"]
    async with open_host(create_new_key_pair()) as host:
        with trio.fail_after(5):
            await host.connect(peer.peer_id, peer.addrs, timeout=5)
        assert host.connection_path(peer.peer_id) == "direct"
        stream = await host.open_stream(peer.peer_id, _peer.ECHO)
        assert stream.remote_peer_id == peer.peer_id
        assert len(stream.remote_peer_id_bytes) > 30
        msg = os.urandom(200_000)
        async with trio.open_nursery() as n:

            async def send() -> None:
                await stream.write(msg)
                await stream.close_write()

            n.start_soon(send)
            with trio.fail_after(10):
                assert await _read_all(stream) == msg


@pytest.mark.parametrize("which", ["ours", "stock"])
async def test_large_payload_integrity_both_ways(peer_procs: dict[str, Peer], which: str) -> None:
    # "stock" is py-libp2p without our patches: the wire format is unchanged.
    peer = peer_procs[which]
    payload = os.urandom(BIG)
    async with open_host(create_new_key_pair()) as host:
        await host.connect(peer.peer_id, peer.addrs, timeout=5)
        with trio.fail_after(30):
            up = await host.open_stream(peer.peer_id, _peer.SHA)
            await up.write(payload)
            await up.close_write()
            reply = (await _read_all(up, 200)).decode()
            assert reply == f"{BIG} {hashlib.sha256(payload).hexdigest()}"
            down = await host.open_stream(peer.peer_id, f"{_peer.SEND}/{BIG}")
            await down.close_write()
            got = await _read_all(down)
            assert hashlib.sha256(got).digest() == hashlib.sha256(_peer.pattern(BIG)).digest()


async def test_connect_unknown_learns_peer_id(peer_procs: dict[str, Peer]) -> None:
    peer = peer_procs["ours"]
    async with open_host(create_new_key_pair()) as host:
        with trio.fail_after(5):
            assert await host.connect_unknown(peer.addrs[0], timeout=5) == peer.peer_id
            stream = await host.open_stream(peer.peer_id, _peer.ECHO)
            await stream.write(b"legacy")
            await stream.close_write()
            assert await _read_all(stream) == b"legacy"
            # A second call reuses the connection and still answers.
            assert await host.connect_unknown(peer.addrs[0], timeout=5) == peer.peer_id


async def test_failing_handler_does_not_break_the_connection(peer_procs: dict[str, Peer]) -> None:
    peer = peer_procs["ours"]
    async with open_host(create_new_key_pair()) as host:
        await host.connect(peer.peer_id, peer.addrs, timeout=5)
        for _ in range(3):
            with trio.fail_after(3):  # upstream would hang ~10 s here
                # The reset may beat the protocol confirmation: either way
                # it surfaces as a StreamError.
                with pytest.raises(StreamError):
                    boom = await host.open_stream(peer.peer_id, _peer.BOOM)
                    await _read_all(boom)
                echo = await host.open_stream(peer.peer_id, _peer.ECHO)
                await echo.write(b"still fine")
                await echo.close_write()
                assert await _read_all(echo) == b"still fine"


@pytest.mark.parametrize("which", ["plaintext", "secio"])
async def test_insecure_peers_are_refused(peer_procs: dict[str, Peer], which: str) -> None:
    peer = peer_procs[which]
    async with open_host(create_new_key_pair()) as host:
        with trio.fail_after(5):
            with pytest.raises(DialError):
                await host.connect(peer.peer_id, peer.addrs, timeout=4)
            with pytest.raises(DialError):
                await host.connect_unknown(peer.addrs[0], timeout=4)
        assert not host.is_connected(peer.peer_id)


@pytest.mark.parametrize("which", ["ours", "stock"])
async def test_another_peer_at_the_address_is_named_so(peer_procs: dict[str, Peer], which: str) -> None:
    """A ``/p2p/`` peer ID that is not the one listening there (a typo, or a
    node that moved) reads as that, not as a failed security handshake."""
    from libp2p.peer.id import ID

    peer = peer_procs[which]
    wrong = ID.from_pubkey(create_new_key_pair().public_key).to_base58()
    async with open_host(create_new_key_pair()) as host:
        with trio.fail_after(5), pytest.raises(DialError) as err:
            await host.connect(wrong, peer.addrs[:1], timeout=4)
    assert [f.kind for f in err.value.failures] == [DialFailureKind.WRONG_PEER]
    assert describe(err.value) == f"a different peer answers at {peer.addrs[0]}; check the peer ID after /p2p/"


@pytest.mark.parametrize("which", ["ours", "stock"])
async def test_a_protocol_the_peer_does_not_speak_is_named(peer_procs: dict[str, Peer], which: str) -> None:
    """Waiting for the answer, the peer's "na" is a ProtocolRefused at the
    open; lazily it comes at the first read (as a refusal when the "na" is
    read before the reset the peer sends after it, else as a reset)."""
    peer = peer_procs[which]
    async with open_host(create_new_key_pair()) as host:
        await host.connect(peer.peer_id, peer.addrs, timeout=5)
        with trio.fail_after(5), pytest.raises(ProtocolRefused) as refused:
            await host.open_stream(peer.peer_id, "/p2pshare/test/nope/1.0.0", lazy=False)
        assert str(refused.value) == f"{peer.peer_id} does not speak /p2pshare/test/nope/1.0.0"
        lazy = await host.open_stream(peer.peer_id, "/p2pshare/test/nope/1.0.0")
        await lazy.write(b"\x05hello")
        with trio.fail_after(5), pytest.raises(StreamError):
            await lazy.read(10)
        # The connection survives the refusals.
        echo = await host.open_stream(peer.peer_id, _peer.ECHO)
        await echo.write(b"still here")
        await echo.close_write()
        assert await _read_all(echo) == b"still here"


async def test_listen_addrs_are_concrete() -> None:
    async with open_host(create_new_key_pair(), ["/ip4/0.0.0.0/tcp/0"]) as host:
        addrs = host.listen_addrs()
        assert addrs and "/ip4/127.0.0.1/tcp/" in addrs[0]
        assert all("0.0.0.0" not in a and not a.endswith("/tcp/0") for a in addrs)


async def test_unreachable_and_bad_input_are_clear() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    other = create_new_key_pair()
    from libp2p.peer.id import ID

    other_id = ID.from_pubkey(other.public_key).to_base58()
    async with open_host(create_new_key_pair()) as host:
        with trio.fail_after(5):
            with pytest.raises(DialError, match="could not reach") as refused:
                await host.connect(other_id, [f"/ip4/127.0.0.1/tcp/{port}"], timeout=3)
            # Kept per address and typed, from inside py-libp2p's exception group.
            assert refused.value.failures == (
                DialFailure(f"/ip4/127.0.0.1/tcp/{port}", DialFailureKind.REFUSED, refused.value.failures[0].detail),
            )
            assert describe(refused.value) == f"connection refused at /ip4/127.0.0.1/tcp/{port}"
            with pytest.raises(DialError, match="bad peer ID"):
                await host.connect("not-a-peer", ["/ip4/127.0.0.1/tcp/1"], timeout=1)
            with pytest.raises(DialError, match="bad multiaddr"):
                await host.connect(other_id, ["/ip4/nope"], timeout=1)
            with socket.socket() as mute:  # accepts TCP, never speaks
                mute.bind(("127.0.0.1", 0))
                mute.listen()
                mute_addr = f"/ip4/127.0.0.1/tcp/{mute.getsockname()[1]}"
                with pytest.raises(DialError, match="within") as mute_err:
                    await host.connect(other_id, [mute_addr], timeout=0.5)
                assert [(f.addr, f.kind) for f in mute_err.value.failures] == [(mute_addr, DialFailureKind.TIMED_OUT)]
                with pytest.raises(DialError, match="within"):
                    await host.connect_unknown(mute_addr, timeout=0.5)


async def test_close_releases_listener_even_on_cancel() -> None:
    with trio.CancelScope() as cs:
        async with open_host(create_new_key_pair()) as host:
            port = int(host.listen_addrs()[0].rsplit("/", 1)[1])
            cs.cancel()
            await trio.sleep(1)
    assert cs.cancelled_caught
    with socket.socket() as s:  # the port is free again
        s.bind(("127.0.0.1", port))
    with pytest.raises(ListenError):
        async with open_host(create_new_key_pair(), ["/ip4/127.0.0.1/tcp/x"]):
            pass


async def test_errors_leave_open_host_unwrapped() -> None:
    # py-libp2p runs the body in its nurseries; callers still get plain errors.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on /ip4/127.0.0.1/tcp/{port}: Address already in use"):
            async with open_host(create_new_key_pair(), [f"/ip4/127.0.0.1/tcp/{port}"]):
                pass
    with pytest.raises(KeyError) as e:
        async with open_host(create_new_key_pair()):
            raise KeyError("mine")
    assert e.value.args == ("mine",)


async def test_listener_says_nothing_until_the_dialer_has_spoken() -> None:
    """A hole punch whose SYN lands on the peer's listener tells it from a
    simultaneous open by the listener's silence (``_dialer_speaks_first``);
    once the dialer sends its multistream header, the listener answers."""
    header = b"\x13/multistream/1.0.0\n"
    async with open_host(create_new_key_pair()) as host:
        port = int(host.listen_addrs()[0].split("/tcp/")[1].split("/")[0])
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                with trio.move_on_after(1.0) as silent:
                    early = await stream.receive_some(100)
                assert silent.cancelled_caught, f"the listener spoke first: {early!r}"
                await stream.send_all(header)
                got = b""
                while len(got) < len(header):
                    got += await stream.receive_some(100)
                assert got.startswith(header)


async def test_a_port_another_host_listens_on_is_refused() -> None:
    """py-libp2p listens with SO_REUSEPORT, so a second p2pshare process on
    the same fixed port listened too, silently, and the kernel split the
    incoming connections between the two at random."""
    async with open_host(create_new_key_pair()) as first:
        taken = next(a for a in first.listen_addrs() if "/tcp/" in a).split("/p2p/")[0]
        with pytest.raises(ListenError, match=f"cannot listen on {taken}: Address already in use"):
            async with open_host(create_new_key_pair(), [taken]):
                pass
