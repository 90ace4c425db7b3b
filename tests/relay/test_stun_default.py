"""Where ``p2pshare relay`` opens its STUN responder by default."""

from __future__ import annotations

from p2pshare.relay.cmd import stun_ip_for


def test_the_stun_responder_listens_where_the_relay_was_told_to() -> None:
    """A relay told to listen on loopback opened the STUN ports (3478,
    3479) on every interface. Found by a usability review."""
    assert stun_ip_for(("/ip4/127.0.0.1/tcp/0",)) == "127.0.0.1"
    assert stun_ip_for(("/ip4/198.51.100.1/tcp/4001", "/ip6/::1/tcp/4001")) == "198.51.100.1"
    assert stun_ip_for(("/ip4/0.0.0.0/tcp/4001",)) == "0.0.0.0"
    assert stun_ip_for(("/ip4/127.0.0.1/tcp/1", "/ip4/198.51.100.1/tcp/1")) == "0.0.0.0"  # two: all
    assert stun_ip_for(("/ip6/::1/tcp/4001",)) == "0.0.0.0"
