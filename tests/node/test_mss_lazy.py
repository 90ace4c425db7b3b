"""Lazy multistream-select (patch ``mss_pipelined``, P9): one protocol offered, no wait.

The dialer writes the header and its protocol and returns at once; the
listener's two answers are checked on the first read of the connection or
stream, before any of the protocol's own bytes are handed over. Run against
upstream's own listener (``Multiselect.negotiate``) over an in-memory stream.
The real wire: ``tests/interop`` (an unpatched py-libp2p process, js-libp2p)
and every test that dials.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamError
from libp2p.protocol_muxer.exceptions import MultiselectClientError
from libp2p.protocol_muxer.multiselect import Multiselect
from libp2p.protocol_muxer.multiselect_client import MultiselectClient
from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator
from libp2p.utils import encode_delim

from p2pshare.node import _libp2p_patches as P
from p2pshare.node._libp2p_speed import LazyNegotiationFailed

from ._memory_pipe import RecordedPipe

P.apply()


async def _select(pipe: RecordedPipe, protocol: str = "/noise", timeout: int = 5) -> Any:
    return await MultiselectClient().select_one_of([TProtocol(protocol)], MultiselectCommunicator(pipe), timeout)


async def test_returns_before_any_answer_and_checks_them_on_the_first_read() -> None:
    a, b = trio.testing.memory_stream_pair()
    dialer = RecordedPipe(a)
    with trio.fail_after(2):
        assert await _select(dialer) == "/noise"  # nobody listens yet: no wait
    assert dialer.log == ["w"]
    await dialer.write(b"hello")  # the protocol's first bytes ride right behind

    chosen: list[Any] = []

    async def listen() -> None:
        listener = RecordedPipe(b)
        proto, _ = await Multiselect({TProtocol("/noise"): None}).negotiate(MultiselectCommunicator(listener), 5)
        chosen.append(proto)
        assert await listener.read(5) == b"hello"  # left for the protocol, not eaten by negotiation
        await listener.write(b"world")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(listen)
        with trio.fail_after(5):
            got = b""
            while len(got) < 5:
                got += await dialer.read(5 - len(got))
    assert chosen == ["/noise"] and got == b"world"
    assert "read" not in dialer.__dict__  # the check ran once and is gone


@pytest.mark.parametrize("served", [["/other"], []])
async def test_a_refused_protocol_fails_the_first_read(served: list[str]) -> None:
    a, b = trio.testing.memory_stream_pair()
    dialer = RecordedPipe(a)
    assert await _select(dialer, "/p2pshare/x") == "/p2pshare/x"

    async def listen() -> None:
        try:
            await Multiselect({TProtocol(p): None for p in served}).negotiate(
                MultiselectCommunicator(RecordedPipe(b)), 2
            )
        except Exception:  # noqa: BLE001 - the listener's side of a refusal is not under test
            pass

    async with trio.open_nursery() as nursery:
        nursery.start_soon(listen)
        with trio.fail_after(5), pytest.raises(LazyNegotiationFailed, match="not supported: /p2pshare/x") as info:
            await dialer.read(10)
    # The upgrader catches multistream errors, stream readers stream errors.
    assert isinstance(info.value, MultiselectClientError) and isinstance(info.value, StreamError)


async def test_a_listener_that_speaks_something_else_fails_the_first_read() -> None:
    a, b = trio.testing.memory_stream_pair()
    dialer = RecordedPipe(a)
    await _select(dialer)
    await b.send_all(encode_delim(b"/not-multistream/9") + encode_delim(b"/noise"))
    with trio.fail_after(5), pytest.raises(LazyNegotiationFailed, match="protocol ID mismatch"):
        await dialer.read(10)


async def test_a_silent_listener_fails_the_first_read_within_the_negotiate_timeout() -> None:
    a, _b = trio.testing.memory_stream_pair()
    dialer = RecordedPipe(a)
    await _select(dialer, timeout=1)
    with trio.fail_after(3), pytest.raises(LazyNegotiationFailed, match="no answer to /noise within 1s"):
        await dialer.read(10)


async def test_a_closed_connection_fails_the_first_read() -> None:
    a, b = trio.testing.memory_stream_pair()
    dialer = RecordedPipe(a)
    await _select(dialer)
    await b.aclose()
    with trio.fail_after(3), pytest.raises(LazyNegotiationFailed, match=r"no answer to /noise: \S"):
        await dialer.read(10)


async def test_two_protocols_offered_are_negotiated_before_returning() -> None:
    a, b = trio.testing.memory_stream_pair()
    dialer = RecordedPipe(a)

    async def listen() -> None:
        await Multiselect({TProtocol("/b"): None}).negotiate(MultiselectCommunicator(RecordedPipe(b)), 5)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(listen)
        comm = MultiselectCommunicator(dialer)
        with trio.fail_after(5):
            assert await MultiselectClient().select_one_of([TProtocol("/a"), TProtocol("/b")], comm, 5) == "/b"
    assert "read" not in dialer.__dict__
