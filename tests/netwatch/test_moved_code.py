"""When ``share`` prints a new code: its direct addresses moved (pure part)."""

from __future__ import annotations

import secrets

from p2pshare.node.cmd_share import moved_code
from p2pshare.sharecode import MAX_ADDRESSES, ShareCode

PEER = "12D3KooWSfuRtAWXzAjfn76A3mCgEPbedVGJwX4Yzo5nzWEFFBsk"
RELAY = "/ip4/203.0.113.5/tcp/4001/p2p/12D3KooWSfra665jR4fg4bnzKYN2q6V3ZnUn2Jh9sNTLaarkcpPk/p2p-circuit"


def _code(*addrs: str) -> ShareCode:
    return ShareCode(peer_id=PEER, addresses=addrs, encryption_key=secrets.token_bytes(32), share_code="RF976G79JFMS")


def test_a_new_direct_address_gives_a_code_naming_it() -> None:
    old = _code("/ip4/192.168.1.20/tcp/4242")
    new = moved_code(old, ["/ip4/10.8.0.7/tcp/4242", RELAY])
    assert new is not None
    assert [a.split("/p2p/")[0] for a in new.addresses][0] == "/ip4/10.8.0.7/tcp/4242"
    assert (new.encryption_key, new.share_code, new.peer_id) == (old.encryption_key, old.share_code, old.peer_id)


def test_relays_alone_coming_or_going_give_no_new_code() -> None:
    old = _code("/ip4/192.168.1.20/tcp/4242")
    assert moved_code(old, ["/ip4/192.168.1.20/tcp/4242", RELAY]) is None
    with_relay = _code("/ip4/192.168.1.20/tcp/4242", RELAY)
    assert moved_code(with_relay, ["/ip4/192.168.1.20/tcp/4242"]) is None


def test_no_direct_address_left_or_an_invalid_list_gives_none() -> None:
    old = _code("/ip4/192.168.1.20/tcp/4242")
    assert moved_code(old, []) is None  # offline: nothing to hand out
    assert moved_code(old, [RELAY]) is None
    many = [f"/ip4/10.0.{i // 250}.{i % 250 + 1}/tcp/4242" for i in range(MAX_ADDRESSES + 1)]
    assert moved_code(old, many) is None  # too many for a code
