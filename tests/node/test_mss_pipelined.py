"""Pipelined multistream-select (patch ``mss_pipelined``): one round trip, same answers.

Upstream's dialer waits for the listener's header before it names a
protocol; ours sends both at once. Run against upstream's own listener
(``Multiselect.negotiate``) over an in-memory stream that records the order
of reads and writes, with upstream's client side by side. The real wire is
covered by the interop tests (an unpatched py-libp2p process, js-libp2p).
Laziness (one protocol offered: no wait at all) is off here; its tests are
in ``test_mss_lazy.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from libp2p.custom_types import TProtocol
from libp2p.protocol_muxer.exceptions import MultiselectClientError
from libp2p.protocol_muxer.multiselect import Multiselect
from libp2p.protocol_muxer.multiselect_client import MultiselectClient
from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator
from libp2p.utils import encode_delim

from p2pshare.node import _libp2p_patches as P
from p2pshare.node._libp2p_originals import ORIGINALS
from p2pshare.node._libp2p_speed import LAZY_OFF

from ._memory_pipe import RecordedPipe

P.apply()


async def _negotiate(select: Any, wanted: list[str], served: list[str]) -> tuple[Any, list[str], Any]:
    """(what the dialer got, its op log, what the listener chose); errors are returned."""
    LAZY_OFF.set(True)
    a, b = trio.testing.memory_stream_pair()
    log: list[str] = []
    listener = Multiselect({p: None for p in served})  # type: ignore[misc]
    got: dict[str, Any] = {}

    async def listen() -> None:
        try:
            got["listener"] = (await listener.negotiate(MultiselectCommunicator(RecordedPipe(b, [])), 5))[0]
        except Exception as e:  # noqa: BLE001 - recorded, compared below
            got["listener"] = e

    async with trio.open_nursery() as nursery:
        nursery.start_soon(listen)
        try:
            got["dialer"] = await select(MultiselectClient(), wanted, MultiselectCommunicator(RecordedPipe(a, log)), 5)
        except MultiselectClientError as e:
            got["dialer"] = e
        await a.aclose()
    return got["dialer"], log, got.get("listener")


UPSTREAM = ORIGINALS["mss_pipelined"]
OURS = MultiselectClient.select_one_of


def test_the_patch_is_ours() -> None:
    assert OURS is not UPSTREAM and OURS.__module__.endswith("_libp2p_speed")


async def test_first_choice_costs_one_round_trip_not_two() -> None:
    got, log, chose = await _negotiate(OURS, ["/noise"], ["/noise"])
    assert got == "/noise" and chose == "/noise"
    assert log == ["w", "r"]  # header and protocol in one write, then the answers
    got, log, chose = await _negotiate(UPSTREAM, ["/noise"], ["/noise"])
    assert got == "/noise" and log == ["w", "r", "w", "r"]  # upstream waits between


@pytest.mark.parametrize(
    "wanted,served",
    [
        (["/yamux/1.0.0", "/mplex/6.7.0"], ["/mplex/6.7.0"]),  # first refused ("na"), second taken
        (["/a", "/b", "/c"], ["/c", "/x"]),
        (["/a"], ["/b"]),  # nothing in common
        (["/a", "/b"], []),
    ],
)
async def test_same_choice_as_upstream(wanted: list[str], served: list[str]) -> None:
    ours, _, _ = await _negotiate(OURS, wanted, served)
    theirs, _, _ = await _negotiate(UPSTREAM, wanted, served)
    if isinstance(theirs, Exception):
        assert isinstance(ours, MultiselectClientError) and "not supported" in str(ours), ours
    else:
        assert ours == theirs


async def test_a_listener_that_speaks_something_else_is_an_error() -> None:
    LAZY_OFF.set(True)
    a, b = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:

        async def garbage() -> None:
            await b.send_all(encode_delim(b"/not-multistream/9\n"[:-1]) + encode_delim(b"/noise"))

        nursery.start_soon(garbage)
        with pytest.raises(MultiselectClientError, match="protocol ID mismatch"):
            await OURS(MultiselectClient(), [TProtocol("/noise")], MultiselectCommunicator(RecordedPipe(a, [])), 5)


async def test_a_silent_listener_times_out_within_the_negotiate_timeout() -> None:
    LAZY_OFF.set(True)
    a, _b = trio.testing.memory_stream_pair()
    with trio.fail_after(3):
        with pytest.raises(MultiselectClientError, match="timed out after 1s"):
            await OURS(MultiselectClient(), [TProtocol("/noise")], MultiselectCommunicator(RecordedPipe(a, [])), 1)
