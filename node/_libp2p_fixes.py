"""Correctness and robustness fixes to py-libp2p 0.8.1 internals.

Replacement functions only; they are registered, fingerprinted and applied
with the speed patches in ``_libp2p_patches.PATCHES`` (one registry, one
``apply``), and tested in ``tests/node/test_libp2p_patches.py``.

* ``Swarm._do_handle_inbound_connection`` (issue 9, finding 1): upstream
  keeps each inbound connection's handler -- and with it one slot of the
  swarm's inbound ``CapacityLimiter`` -- alive until the *swarm* stops
  (``await self.manager.wait_finished()``), not until the connection
  closes. After ``max_connections`` inbound connections in a process's
  lifetime, closed or not, every new one is refused: a relay or a
  long-lived node wedged for good within minutes of ordinary traffic.
  Ours waits until the connection itself is closed (or the swarm stops).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import trio
from libp2p.network.connection.raw_connection import RawConnection

logger = logging.getLogger(__name__)

__all__ = ["inbound_until_closed"]


async def _wait_closed(muxed: Any, swarm: Any) -> None:
    """Until ``muxed`` shuts down or closes, or the swarm stops; whichever is first."""
    waits = [getattr(muxed, name, None) for name in ("event_closed", "event_shutting_down")]
    events = [e for e in waits if isinstance(e, trio.Event)]
    if not events:  # not yamux: keep upstream's barrier
        await swarm.manager.wait_finished()
        return
    async with trio.open_nursery() as nursery:

        async def first(wait: Any) -> None:
            await wait()
            nursery.cancel_scope.cancel()

        for event in events:
            nursery.start_soon(first, event.wait)
        nursery.start_soon(first, swarm.manager.wait_finished)


async def inbound_until_closed(self: Any, read_write_closer: Any, maddr: Any, failure_event: Any) -> None:
    """``Swarm._do_handle_inbound_connection`` that gives the slot back on close.

    Same steps as upstream for TCP (connection gate, secure + mux upgrade,
    failure metrics); the pre-multiplexed branch (QUIC, WebTransport) is not
    loaded by p2pshare (the lean import stubs QUIC out).
    """
    remote_maddr = self._build_remote_multiaddr(read_write_closer)
    if remote_maddr is not None and not await self.connection_gate.is_allowed(remote_maddr):
        with contextlib.suppress(Exception):
            await read_write_closer.close()
            failure_event.conn_incoming_error = True
            if self.metric_send_channel is not None:
                await self.metric_send_channel.send(failure_event)
        return
    raw_conn = RawConnection(read_write_closer, False)
    try:
        muxed = await self.upgrade_inbound_raw_conn(raw_conn, maddr)
    except Exception as exc:  # noqa: BLE001 - a stranger's failed handshake is routine
        logger.debug("inbound connection from %s failed: %s", remote_maddr, exc)
        with contextlib.suppress(Exception):
            await raw_conn.close()
        return
    # The barrier upstream keeps (trio's serve_listeners closes the socket
    # when this handler returns), but only while the connection lives.
    await _wait_closed(muxed, self)
