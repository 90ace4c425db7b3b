"""``address_to_give``: the address a relay or node tells others to use."""

from __future__ import annotations

from p2pshare.sharecode.multiaddrs import address_to_give


def test_a_public_address_comes_first_and_dns_counts_as_public() -> None:
    lo, lan, pub = "/ip4/127.0.0.1/tcp/1", "/ip4/10.0.0.2/tcp/1", "/ip4/198.51.100.7/tcp/1"
    assert address_to_give([lo, lan, pub]) == (pub, True)
    assert address_to_give(["/dns4/relay.example/tcp/4001", lo]) == ("/dns4/relay.example/tcp/4001", True)
    assert address_to_give([lo, lan]) == (lo, False)
    assert address_to_give([]) == (None, False)
