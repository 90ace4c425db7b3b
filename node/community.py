"""The community relay: a public p2pshare node relays transfers for others (issue 10).

Public libp2p relays (go, js, rust defaults) cut every circuit at 128 KiB
or 2 minutes: enough to hole-punch through, never enough to carry a file.
When punching cannot work (a symmetric NAT on one side, a firewall), a
transfer needs a relay that carries data. A p2pshare node that AutoNAT
confirms public serves relay v2 for others with limits suited to file
transfer (:class:`~p2pshare.node.circuit.limits.RelayLimits`: counts of
reservations and circuits, and, when set, per-circuit rate and total
bandwidth caps) and advertises itself in the DHT under
:data:`~p2pshare.node.autorelay.COMMUNITY_RELAY_KEY`, where NATed nodes'
AutoRelay looks for relays that carry data.

Modes: ``auto`` serves while AutoNAT confirms the node public (the default
of ``p2pshare node``), ``on`` serves regardless (a relay operator who
knows), ``off`` never (the default of ``share``).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

import trio

from p2pshare.node.autorelay import COMMUNITY_RELAY_KEY
from p2pshare.node.circuit.hop import serve_relay
from p2pshare.node.circuit.limits import RelayLimits
from p2pshare.node.discovery import Discovery
from p2pshare.node.events import RelayServiceChanged
from p2pshare.node.host import Host

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from p2pshare.node.host import PrivateKey

logger = logging.getLogger(__name__)

__all__ = ["RelayServiceMode", "serve_community_relay", "advertise_community_relay"]


class RelayServiceMode(enum.Enum):
    OFF = "off"
    AUTO = "auto"
    ON = "on"


async def serve_community_relay(
    host: Host,
    *,
    mode: RelayServiceMode,
    limits: RelayLimits,
    private_key: PrivateKey | None,
    discovery: Discovery | None,
    is_public: Callable[[], bool],
    reachability_changed: Callable[[], Awaitable[None]],
    emit: Callable[[RelayServiceChanged], None],
    task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve relay v2 for others whenever ``mode`` (and reachability) says so, until cancelled."""
    task_status.started()
    if mode is RelayServiceMode.OFF:
        return
    while True:
        if mode is RelayServiceMode.AUTO:
            while not is_public():
                await reachability_changed()
        reason = "configured on" if mode is RelayServiceMode.ON else "AutoNAT confirmed this node public"
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve_relay, host, limits, private_key=private_key))
            if discovery is not None:
                nursery.start_soon(advertise_community_relay, discovery)
            logger.info("community relay: serving (%s)", reason)
            emit(RelayServiceChanged(True, reason))
            if mode is RelayServiceMode.ON:
                await trio.sleep_forever()
            while is_public():
                await reachability_changed()
            nursery.cancel_scope.cancel()
        if discovery is not None:
            discovery.withdraw(COMMUNITY_RELAY_KEY)
        logger.info("community relay: stopped (no longer confirmed public)")
        emit(RelayServiceChanged(False, "no longer confirmed public"))


async def advertise_community_relay(discovery: Discovery) -> None:
    """Put (and keep) our provider record under the community relay key."""
    try:
        stored = await discovery.advertise(COMMUNITY_RELAY_KEY)
        logger.info("community relay: advertised to %d DHT peers", stored)
    except Exception as e:  # noqa: BLE001 - the DHT is best effort; the relay still serves
        logger.warning("community relay: could not advertise in the DHT: %s", e)
