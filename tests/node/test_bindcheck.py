"""``bind_failure``: the kernel's reason a listen address cannot be bound."""

from __future__ import annotations

import socket

from p2pshare.node.bindcheck import bind_failure


def test_a_taken_port_and_a_foreign_address_are_named() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert bind_failure(f"/ip4/127.0.0.1/tcp/{port}") == "Address already in use"
    assert bind_failure(f"/ip4/127.0.0.1/tcp/{port}") is None  # free again: bindable
    assert bind_failure("/ip4/192.0.2.1/tcp/0") == "Cannot assign requested address"


def test_other_addresses_are_not_probed() -> None:
    for addr in (
        "/ip4/127.0.0.1/udp/1/quic-v1",
        "/dns4/example.com/tcp/1",
        "/ip4/300.1.1.1/tcp/1",
        "ip4/127.0.0.1/tcp/1",
    ):
        assert bind_failure(addr) is None, addr
    assert bind_failure("/ip4/127.0.0.1/tcp/70000") is None
