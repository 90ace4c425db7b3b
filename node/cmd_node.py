"""``p2pshare node``: a long-lived peer — DHT, AutoNAT, relay client and
hole punching — that prints its ID, reachability and addresses as they change."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from p2pshare.node._output import Reporter
from p2pshare.node.identity import identity_file_arg
from p2pshare.node.stop_signals import stop_signals

if TYPE_CHECKING:
    from p2pshare.node.events import NodeEvent


@dataclass(frozen=True)
class NodeOptions:
    """What ``p2pshare node`` was asked to do."""

    listen: tuple[str, ...] = ()
    identity: Path | None = None
    relays: tuple[str, ...] = ()
    bootstrap: tuple[str, ...] = ()
    no_default_bootstrap: bool = False
    no_mdns: bool = False  # no local discovery (mDNS)
    dht_server: bool = False
    relay_service: str = "auto"
    json: bool = False

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> NodeOptions:
        """Read what :func:`add_node_parser` defined: its ``dest`` names live here only."""
        return cls(
            listen=tuple(ns.listen or ()),
            identity=ns.identity,
            relays=tuple(ns.relay),
            bootstrap=tuple(ns.bootstrap),
            no_default_bootstrap=ns.no_default_bootstrap,
            no_mdns=ns.no_mdns,
            dht_server=ns.dht_server,
            relay_service=ns.relay_service,
            json=ns.json,
        )


NODE_EXAMPLES = """examples:
  p2pshare node                                  # peer ID and addresses, then what changes
  p2pshare node --relay /ip4/203.0.113.7/tcp/4001/p2p/12D3KooW...   # hold a slot on this relay
  p2pshare node --dht-server --relay-service on  # a public machine: help others (DHT, relay)
  p2pshare node --json                           # JSON lines: node, addresses, reachability, nat
exit codes: 0 stopped by Ctrl-C or SIGTERM, 1 internal error, 2 bad input"""


def add_node_parser(sub: Any) -> argparse.ArgumentParser:
    n: argparse.ArgumentParser = sub.add_parser(
        "node",
        help="run a long-lived peer (DHT, AutoNAT, relay client, hole punching)",
        description="Run a peer until Ctrl-C: it joins the DHT, learns whether it is reachable\n"
        "(AutoNAT), holds a relay slot when it is not, and turns relayed connections\n"
        "into direct ones by hole punching. The first line on stdout is its peer ID\n"
        "and addresses; later lines say what changed.",
        epilog=NODE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    n.add_argument(
        "--listen", action="append", metavar="MULTIADDR", help="listen address (repeatable; default /ip4/0.0.0.0/tcp/0)"
    )
    n.add_argument("--identity", type=identity_file_arg, metavar="FILE", help="identity key file")
    n.add_argument(
        "--relay",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="circuit relay to reserve a slot on (repeatable)",
    )
    n.add_argument(
        "--bootstrap", action="append", default=[], metavar="MULTIADDR", help="DHT bootstrap peer (repeatable)"
    )
    n.add_argument("--no-default-bootstrap", action="store_true", help="do not join the public libp2p DHT")
    n.add_argument("--no-mdns", action="store_true", help="no local discovery of peers on the LAN (mDNS)")
    n.add_argument(
        "--dht-server", action="store_true", help="answer other peers' DHT queries (only for publicly reachable nodes)"
    )
    n.add_argument(
        "--relay-service",
        choices=("off", "auto", "on"),
        default="auto",
        help="relay transfers for others (a community relay): auto = while AutoNAT confirms this node public",
    )
    n.add_argument("--json", action="store_true", help="JSON lines on stdout")
    return n


def run_node(opts: NodeOptions, reporter: Reporter) -> int:
    return trio.run(_serve, opts, reporter)


def _say_traversal(reporter: Reporter, ev: NodeEvent) -> None:
    from p2pshare.node.dcutr.policy import Upgraded, UpgradeFailed
    from p2pshare.node.events import AddressesChanged, NatDiscovered, ReachabilityChanged, RelayServiceChanged

    if isinstance(ev, AddressesChanged):
        reporter.event("addresses", addrs=list(ev.addrs))
        reporter.result("addresses: " + " ".join(ev.addrs))
    elif isinstance(ev, RelayServiceChanged):
        reporter.event("relay_service", serving=ev.serving, reason=ev.reason)
        reporter.result(f"relay service: {'serving' if ev.serving else 'stopped'} ({ev.reason})")
    elif isinstance(ev, ReachabilityChanged):
        reporter.event("reachability", reachability=ev.reachability, confirmed=ev.confirmed, addrs=list(ev.addrs))
        note = "" if ev.confirmed else " (one server only: unconfirmed)"
        reporter.result(f"reachability: {ev.reachability}{note}")
    elif isinstance(ev, NatDiscovered):
        reporter.event("nat", mapping=ev.mapping, public=ev.public, punchable=ev.punchable)
        reporter.result(
            f"nat: mapping {ev.mapping}, mapped to {ev.public or 'unknown'}, "
            f"hole punching {'possible' if ev.punchable else 'unlikely'}"
        )
    elif isinstance(ev, Upgraded):
        reporter.event("upgraded", peer_id=ev.peer_id, method=ev.method, seconds=round(ev.elapsed, 3))
        reporter.result(f"upgraded: {ev.peer_id} now direct ({ev.method}, {ev.elapsed:.2f} s)")
    elif isinstance(ev, UpgradeFailed):
        reporter.event("upgrade_failed", peer_id=ev.peer_id, reason=ev.reason)


def _say_how_to_reach(reporter: Reporter, peer_id: str, addrs: Sequence[str]) -> None:
    """A whole address (``/p2p/`` and all) ready to paste into another
    peer's ``--bootstrap`` or ``--relay``, a public one first: the first
    line's bare peer ID and addresses were refused there as they are."""
    from p2pshare.sharecode.multiaddrs import address_to_give

    best, _ = address_to_give(addrs)
    where = f"; its address for other peers: {best}/p2p/{peer_id}" if best else ""
    reporter.say(f"Node running (Ctrl-C stops it){where}")


async def _serve(opts: NodeOptions, reporter: Reporter) -> int:
    from p2pshare.node.api import Node, NodeConfig
    from p2pshare.node.autonat.client import AutoNATConfig
    from p2pshare.node.community import RelayServiceMode
    from p2pshare.node.config import data_home, load_network_config
    from p2pshare.node.identity import IDENTITY_FILE_NAME, identity_slots

    home = data_home()
    net = load_network_config(
        home,
        bootstrap=list(opts.bootstrap),
        relays=list(opts.relays),
        no_default_bootstrap=opts.no_default_bootstrap,
        no_mdns=opts.no_mdns,
    )
    base = home / IDENTITY_FILE_NAME
    config = NodeConfig(
        identity_path=opts.identity or base,
        # Another process (a share) holds the usual identity: run as another
        # peer rather than as the same one in two places (said below).
        identity_fallbacks=() if opts.identity else identity_slots(base),
        listen_addrs=list(opts.listen) or ["/ip4/0.0.0.0/tcp/0"],
        relays=net.relays,
        bootstrap=net.bootstrap,
        peers_file=net.peers_file,
        mdns=net.mdns,
        dht_server=opts.dht_server,
        autonat=AutoNATConfig(),
        autonat_server=True,
        relay_service=RelayServiceMode(opts.relay_service),
    )
    with stop_signals() as signals:
        # The node's line comes first: events wait until it is out.
        held: list[NodeEvent] = []
        async with Node(config, on_event=held.append) as node:
            addrs = node.addresses()
            reporter.event("node", peer_id=node.peer_id, addrs=addrs)
            reporter.result(" ".join([node.peer_id, *addrs]))
            for warning in net.warnings:
                reporter.warning(warning)
            if node.identity_path is not None and node.identity_path != config.identity_path:
                reporter.warning(
                    f"{config.identity_path} is held by another running p2pshare process: this node runs as "
                    f"another peer ({node.identity_path.name}), not its usual peer ID"
                )
            _say_how_to_reach(reporter, node.peer_id, addrs)
            for ev in held:
                _say_traversal(reporter, ev)
            node.on_event = lambda ev: _say_traversal(reporter, ev)  # addresses too: no polling
            await signals.received(1)
            node.on_event = lambda ev: None  # the listeners closing are no news ("addresses:" before "stopped")
    reporter.event("stopped")
    reporter.say("Node stopped.")
    return 0
