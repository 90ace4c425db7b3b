"""How the node turns "the interfaces changed" into an event, a new DHT
advertisement and an AutoNAT re-check (the wiring only: addresses,
discovery and traversal are stand-ins; the real kernel and CLI are in
``test_service.py``)."""

from __future__ import annotations

from p2pshare.node.api import Node
from p2pshare.node.events import AddressesChanged, NodeEvent, ReachabilityChanged


class _Traversal:
    def __init__(self) -> None:
        self.rechecks = 0

    def interfaces_changed(self) -> None:
        self.rechecks += 1


class _Discovery:
    def __init__(self) -> None:
        self.readvertised = 0

    def addresses_changed(self) -> None:
        self.readvertised += 1


def _node(addrs: list[str]) -> tuple[Node, list[NodeEvent], _Discovery, list[str]]:
    """A node whose addresses, discovery and traversal are stand-ins."""
    events: list[NodeEvent] = []
    node = Node(on_event=events.append)
    current = list(addrs)
    node.addresses = lambda: list(current)  # type: ignore[method-assign]
    disc = _Discovery()
    node._discovery = disc  # type: ignore[assignment]
    node._traversal = _Traversal()  # type: ignore[assignment]
    return node, events, disc, current


def test_nothing_is_said_before_the_node_is_up() -> None:
    node, events, disc, _ = _node(["/ip4/10.0.0.2/tcp/1"])
    node._interfaces_changed()
    assert events == [] and disc.readvertised == 0
    assert node._traversal.rechecks == 0  # type: ignore[attr-defined]


def test_a_change_is_told_once_and_readvertised() -> None:
    node, events, disc, current = _node(["/ip4/10.0.0.2/tcp/1"])
    node._addrs_said = tuple(current)
    node._interfaces_changed()  # the kernel spoke, nothing of ours changed (another namespace's route, say)
    assert events == [] and disc.readvertised == 0 and node._traversal.rechecks == 0  # type: ignore[attr-defined]
    current.append("/ip4/100.64.1.9/tcp/1")
    node._interfaces_changed()
    node._interfaces_changed()
    assert events == [AddressesChanged(("/ip4/10.0.0.2/tcp/1", "/ip4/100.64.1.9/tcp/1"))]
    assert disc.readvertised == 1
    assert node._traversal.rechecks == 1  # type: ignore[attr-defined]  # AutoNAT asks again


def test_a_verdict_that_changes_the_list_is_told() -> None:
    """Confirmed public: the relayed addresses leave ``addresses()``."""
    node, events, disc, current = _node(["/ip4/198.51.100.7/tcp/1", "/ip4/203.0.113.1/tcp/1/p2p-circuit"])
    node._addrs_said = tuple(current)
    current.pop()
    verdict = ReachabilityChanged("public", True, ("/ip4/198.51.100.7/tcp/1",))
    node._emit(verdict)
    assert events == [verdict, AddressesChanged(("/ip4/198.51.100.7/tcp/1",))]
