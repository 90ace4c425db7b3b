"""``bind_failure``: the kernel's reason a listen address cannot be bound;
``listen_problem``: that, or why it is no listen address of ours at all."""

from __future__ import annotations

import socket

import pytest

from p2pshare.node.bindcheck import bind_failure, listen_problem


def test_a_taken_port_and_a_foreign_address_are_named() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert bind_failure(f"/ip4/127.0.0.1/tcp/{port}") == (
            "Address already in use (another program or p2pshare listens there: pick another port, or /tcp/0 for any)"
        )
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


@pytest.mark.parametrize(
    ("addr", "problem"),
    [
        ("/ip4/127.0.0.1/tcp/0", None),
        ("/ip6/::1/tcp/0", None),
        ("/ip4/127.0.0.1/udp/0/quic-v1", "only TCP listen addresses are supported"),
        ("/ip4/127.0.0.1/tcp/0/ws", "only TCP listen addresses are supported"),
        ("/dns4/localhost/tcp/0", "not a listen address"),
        ("foo", "not a listen address"),
        ("/ip4/::1/tcp/0", "::1 is not an ip4 address"),
        ("/ip4/300.1.1.1/tcp/0", "is not an IP address"),
        ("/ip4/127.0.0.1/tcp/70000", "bad port"),
        ("/ip4/127.0.0.1/tcp/x", "bad port"),
        ("/ip4/192.0.2.1/tcp/0", "Cannot assign requested address"),  # the kernel's word
    ],
)
def test_what_is_no_listen_address_of_ours_is_named(addr: str, problem: str | None) -> None:
    """QUIC and WebSocket listen addresses ended in an internal error (the
    transports are not loaded); a bad one said "bad listen address" alone."""
    got = listen_problem(addr)
    assert got == problem if problem is None else (got is not None and problem in got)
