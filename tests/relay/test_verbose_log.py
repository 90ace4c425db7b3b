"""A real ``p2pshare relay -v`` against a peer that refreshes its reservation
as fast as it can: the info lines it causes are bounded (each RESERVE logs
one; unbounded, a peer could fill a long-running relay's journal)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from p2pshare.node.circuit.wire import HOP_PROTOCOL_ID, HopMessage, HopType, Status, encode_hop, read_hop
from p2pshare.node.host import open_host
from p2pshare.node.identity import generate_identity
from tests.cli.helpers import loopback_relay

pytestmark = pytest.mark.slow

RESERVES = 300


async def test_a_peer_refreshing_its_reservation_cannot_flood_the_verbose_log(tmp_path: Path) -> None:
    relay, server, addr = loopback_relay(tmp_path / "relay-home", "-v")
    try:
        async with open_host(generate_identity(), ["/ip4/127.0.0.1/tcp/0"]) as host:
            await host.connect(server, [addr], timeout=10)
            with trio.fail_after(60):
                for _ in range(RESERVES):
                    stream = await host.open_stream(server, HOP_PROTOCOL_ID)
                    await stream.write(encode_hop(HopMessage(HopType.RESERVE)))
                    answer = await read_hop(stream.read)
                    assert answer.status == Status.OK  # every refresh is granted: only the log is bounded
                    await stream.close_write()
    finally:
        relay.close()
    said = relay.stderr_path.read_text(errors="replace").splitlines()
    reserves = [line for line in said if "reservation for" in line]
    # 30 at once, then one a second (the refreshes took a few seconds).
    assert 30 <= len(reserves) <= 60, len(reserves)
    assert any("[repeated: more like this are shown at most once a second]" in line for line in reserves)
