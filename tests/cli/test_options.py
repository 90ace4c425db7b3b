"""The CLI turns a parsed Namespace into one typed options object per command."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pshare.cli import CodeShowOptions, build_parser, command_options
from p2pshare.errors import LocalError
from p2pshare.node.cmd_get import GetOptions
from p2pshare.node.cmd_node import NodeOptions
from p2pshare.node.cmd_share import ShareOptions
from p2pshare.relay.cmd import RelayOptions

RELAY = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"


def options(*argv: str) -> object:
    return command_options(build_parser().parse_args(list(argv)))


def test_share_options() -> None:
    opts = options("share", "a", "b", "--name", "N", "--relay", RELAY, "--once", "--json", "--bootstrap", "/x")
    assert opts == ShareOptions(
        paths=(Path("a"), Path("b")), name="N", relays=(RELAY,), bootstrap=("/x",), once=True, json=True
    )


def test_get_options() -> None:
    opts = options("get", "CODE", "-o", "out", "--timeout", "5", "--force-relay", "--identity", "k")
    assert opts == GetOptions(code="CODE", output=Path("out"), timeout=5.0, force_relay=True, identity=Path("k"))
    assert options("get", "CODE") == GetOptions(code="CODE")


def test_code_node_relay_options() -> None:
    assert options("code", "show", "C", "--reveal-key") == CodeShowOptions(code="C", reveal_key=True)
    assert options("node", "--dht-server", "--listen", "/l") == NodeOptions(listen=("/l",), dht_server=True)
    relay = options("relay", "--circuit-data", "128KiB", "--announce", "/ip4/203.0.113.7/tcp/4001")
    assert isinstance(relay, RelayOptions)
    assert relay.limits.circuit_data == 128 * 1024 and relay.announce == ("/ip4/203.0.113.7/tcp/4001",)
    assert relay.listen == ()
    relay = options("relay", "--max-circuits-per-peer", "2", "--max-circuits-per-ip", "3", "--circuit-idle", "0")
    assert isinstance(relay, RelayOptions)
    assert (relay.limits.max_circuits_per_peer, relay.limits.max_circuits_per_ip) == (2, 3)
    assert relay.limits.circuit_idle == 0


def test_impossible_relay_limits_are_bad_input() -> None:
    ns = build_parser().parse_args(["relay"])
    ns.max_reservations = 0  # argparse refuses this; RelayLimits checks again
    with pytest.raises(LocalError, match="must be at least 1"):
        command_options(ns)
