"""AutoNAT server bounds through real processes: what one host may hold or ask for.

A server process with small limits (2 streams per peer and 3 per IP,
2 dial-backs in flight, 4 requests per IP per window); the clients are this
test, each identity its own host on 127.0.0.1:

* a peer's third open request stream is reset at once, while another peer
  is answered;
* a fresh identity from an address already holding 3 streams is reset at
  once (identities cost nothing; the address bounds them together);
* with both dial-back slots held by dials that hang (a listener that never
  speaks Noise), a third request is refused at once ("busy"), not queued;
* the fifth request from the same IP in one window is refused, whatever the
  identity.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
import trio

from p2pshare.node.autonat.wire import PROTOCOL_ID, Dial, DialResponse, ResponseStatus, encode_dial, read_message
from p2pshare.node.host import Host, LibP2PByteStream, StreamError, open_host
from p2pshare.node.identity import generate_identity
from p2pshare.node.natinfo.addrs import encode_addr
from tests.harness import PeerProcess, python_module

pytestmark = pytest.mark.slow
DIAL_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, str]]:
    proc: PeerProcess = python_module(
        "tests.autonat._server_main",
        "--dial-private",
        *(
            "--dial-timeout",
            str(DIAL_TIMEOUT),
            "--max-jobs",
            "2",
            "--per-ip-max",
            "4",
            "--max-streams-per-peer",
            "2",
            "--max-streams-per-ip",
            "3",
        ),
        name="autonat-bounded",
    )
    try:
        info = proc.json(timeout=60)
        yield info["peer"], info["addrs"][0]
    finally:
        proc.stop()


@asynccontextmanager
async def _client(server: tuple[str, str]) -> AsyncIterator[Host]:
    async with open_host(generate_identity()) as host:
        await host.connect(server[0], [server[1]], timeout=5)
        yield host


async def _request(host: Host, server: tuple[str, str], addrs: list[str]) -> LibP2PByteStream:
    stream = await host.open_stream(server[0], PROTOCOL_ID)
    await stream.write(encode_dial(Dial(host.peer_id_bytes, tuple(encode_addr(a) for a in addrs))))
    return stream


async def _answer(stream: LibP2PByteStream) -> DialResponse:
    msg = await read_message(stream.read)
    assert isinstance(msg, DialResponse)
    return msg


async def test_one_host_cannot_hold_or_spend_the_server(server: tuple[str, str]) -> None:
    async with _client(server) as greedy:
        held = [await greedy.open_stream(server[0], PROTOCOL_ID) for _ in range(2)]  # say nothing
        await trio.sleep(0.3)
        with trio.fail_after(2), pytest.raises((StreamError, EOFError)):  # reset at once, not after 10 s
            await _answer(await _request(greedy, server, greedy.listen_addrs()))
        async with _client(server) as honest:  # request 1 of 4 from this IP: the IP's third stream
            with trio.fail_after(10):
                ok = await _answer(await _request(honest, server, honest.listen_addrs()))
            assert ok.status == ResponseStatus.OK, ok
        async with _client(server) as second, _client(server) as fresh:
            held.append(await second.open_stream(server[0], PROTOCOL_ID))  # the IP's third held stream
            await trio.sleep(0.3)
            with trio.fail_after(2), pytest.raises((StreamError, EOFError)):  # a new identity, the same IP
                await _answer(await _request(fresh, server, fresh.listen_addrs()))
            for stream in held:
                await stream.reset()

    # A listener that accepts and never speaks: each dial-back to it hangs until DIAL_TIMEOUT.
    mute = trio.socket.socket()
    await mute.bind(("127.0.0.1", 0))
    mute.listen(16)
    hang = f"/ip4/127.0.0.1/tcp/{mute.getsockname()[1]}"
    try:
        async with _client(server) as a, _client(server) as b, _client(server) as c:
            hanging = [await _request(a, server, [hang]), await _request(b, server, [hang])]  # requests 2, 3
            await trio.sleep(0.5)
            started = trio.current_time()
            with trio.fail_after(2):
                busy = await _answer(await _request(c, server, c.listen_addrs()))
            assert busy.status == ResponseStatus.E_DIAL_REFUSED and busy.text == "busy", busy
            assert trio.current_time() - started < 1.0
            with trio.fail_after(DIAL_TIMEOUT + 5):
                for stream in hanging:
                    failed = await _answer(stream)
                    assert failed.status == ResponseStatus.E_DIAL_ERROR, failed
    finally:
        mute.close()

    async with _client(server) as d, _client(server) as e:
        with trio.fail_after(10):
            assert (await _answer(await _request(d, server, d.listen_addrs()))).status == ResponseStatus.OK  # 4
            refused = await _answer(await _request(e, server, e.listen_addrs()))  # 5th from 127.0.0.1
        assert refused.status == ResponseStatus.E_DIAL_REFUSED and refused.text == "too many dials", refused
