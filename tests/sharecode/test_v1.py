from __future__ import annotations

import base64
import dataclasses
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiaddr import Multiaddr

from p2pshare.sharecode import ShareCode, ShareCodeError, describe, parse_code

from .ids import PEER, RELAY
from .strategies import addresses_for, share_code_kwargs

KEY = bytes(range(32))
ADDRS = (
    "/ip4/203.0.113.7/tcp/4001",
    f"/ip6/2001:db8::5/udp/4001/quic-v1/p2p/{PEER}",
    f"/dns4/relay.example.org/tcp/4001/p2p/{RELAY}/p2p-circuit/p2p/{PEER}",
)


def make(**overrides: Any) -> ShareCode:
    fields: dict[str, Any] = {
        "peer_id": PEER,
        "addresses": ADDRS,
        "encryption_key": KEY,
        "share_code": "ABCD-EFGH-JKMN",
    }
    fields.update(overrides)
    return ShareCode(**fields)


def test_encoding_is_compact_sorted_urlsafe() -> None:
    code = make(extra={"zeta": 1, "alpha": [1, 2]})
    text = code.encode()
    assert re.fullmatch(r"[A-Za-z0-9_-]+", text)
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    obj = json.loads(raw)
    assert raw == json.dumps(obj, sort_keys=True, separators=(",", ":"))
    assert obj == {
        "addresses": list(ADDRS),
        "alpha": [1, 2],
        "encryption_key": base64.b64encode(KEY).decode(),
        "peer_id": PEER,
        "share_code": "ABCDEFGHJKMN",
        "version": 1,
        "zeta": 1,
    }


@given(share_code_kwargs())
def test_round_trip(kwargs: dict[str, Any]) -> None:
    code = ShareCode(**kwargs)
    text = code.encode()
    parsed = parse_code(text)
    assert parsed == code
    assert parsed.encode() == text
    assert hash(parsed) == hash(code)


@given(share_code_kwargs(), st.data())
def test_paste_tolerance(kwargs: dict[str, Any], data: st.DataObject) -> None:
    code = ShareCode(**kwargs)
    text = code.encode()
    if data.draw(st.booleans(), "standard alphabet"):
        text = text.replace("-", "+").replace("_", "/")
    if data.draw(st.booleans(), "padded"):
        text += "=" * (-len(text) % 4)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=5), "cuts"))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    seps = data.draw(
        st.lists(
            st.sampled_from([" ", "\n", "\r\n", "\t", "  \n "]),
            min_size=len(pieces) - 1,
            max_size=len(pieces) - 1,
        )
    )
    mangled = pieces[0] + "".join(s + p for s, p in zip(seps, pieces[1:], strict=True))
    assert parse_code(f"\n  {mangled} \n") == code


def test_std_and_padding_explicitly() -> None:
    code = make(extra={"note": "??>>"})  # makes '+' '/' likely in the std form
    text = code.encode()
    std = base64.b64encode(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))).decode()
    assert parse_code(std) == code
    assert parse_code(std.rstrip("=")) == code
    assert parse_code("\r\n".join(std[i : i + 64] for i in range(0, len(std), 64))) == code


def test_extra_fields_are_kept_and_frozen() -> None:
    code = make(extra={"future": {"list": [1, {"x": None}], "n": 1.5}})
    parsed = parse_code(code.encode())
    assert isinstance(parsed, ShareCode)
    assert parsed.extra == {"future": {"list": (1, {"x": None}), "n": 1.5}}
    with pytest.raises(TypeError):
        parsed.extra["new"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        parsed.extra["future"]["n"] = 2  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.peer_id = RELAY  # type: ignore[misc]
    assert describe(parsed)["extra"] == {"future": {"list": [1, {"x": None}], "n": 1.5}}
    assert {parsed, code} == {code}


def test_caller_cannot_mutate_through_extra() -> None:
    extra: dict[str, object] = {"a": [1]}
    code = make(extra=extra)
    extra["a"] = [2]
    extra["b"] = 1
    assert code.extra == {"a": (1,)}


def test_normalises_on_construction() -> None:
    code = make(addresses=["/ip6/2001:DB8:0:0::5/tcp/1"], share_code="abcd-efgh")
    assert code.addresses == ("/ip6/2001:db8::5/tcp/1",)
    assert code.share_code == "ABCDEFGH"


def test_with_addresses() -> None:
    code = make()
    moved = code.with_addresses(iter(["/ip4/198.51.100.1/tcp/9"]))
    assert moved.addresses == ("/ip4/198.51.100.1/tcp/9",)
    assert dataclasses.replace(moved, addresses=code.addresses) == code
    assert code.with_addresses([]).addresses == ()
    with pytest.raises(
        ShareCodeError,
        match=r"^bad multiaddr #2 '/ip4/0.0.0.0/tcp/1': unspecified address 0.0.0.0$",
    ):
        code.with_addresses(["/ip4/1.2.3.4/tcp/1", "/ip4/0.0.0.0/tcp/1"])


def test_repr_and_describe_hide_the_key() -> None:
    code = make()
    secrets = [base64.b64encode(KEY).decode(), KEY.hex(), repr(KEY)]
    for secret in secrets:
        assert secret not in repr(code)
        assert secret not in str(describe(code))
    shown = describe(code)
    assert shown == {
        "format": "v1",
        "version": 1,
        "peer_id": PEER,
        "addresses": list(ADDRS),
        "share_code": "ABCDEFGHJKMN",
        "encryption_key": "<redacted>",
        "extra": {},
    }
    json.dumps(shown)
    assert describe(code, reveal_key=True)["encryption_key"] == base64.b64encode(KEY).decode()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"version": 2}, "unknown version 2 (this program reads version 1)"),
        ({"version": True}, "field version has wrong type: expected integer"),
        ({"peer_id": "not-a-peer"}, "bad peer ID: not base58btc"),
        ({"encryption_key": KEY[:31]}, "encryption key is 31 bytes, expected 32"),
        ({"encryption_key": KEY.hex()}, "encryption key must be bytes, got str"),
        (
            {"addresses": "/ip4/1.2.3.4/tcp/1"},
            "field addresses has wrong type: expected a list, got str",
        ),
        (
            {"addresses": ["/ip4/1.2.3.4/tcp/1"] * 33},
            "too many addresses: 33 (at most 32)",
        ),
        ({"extra": {"peer_id": 1}}, "extra field 'peer_id' clashes with a known field"),
        ({"extra": {"x": float("nan")}}, "field 'x' is not a finite number"),
        ({"extra": {"x": b"1"}}, "field 'x' has wrong type: bytes is not JSON"),
        ({"extra": {"x": {1: 2}}}, "field 'x' has a non-string key"),
        (
            {"extra": {"x": "y" * 17000}},
            "code too long: 23290 characters (at most 16384)",
        ),
    ],
)
def test_constructor_validates(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ShareCodeError) as info:
        make(**overrides)
    assert str(info.value) == message


@given(st.data())
def test_generated_addresses_validate(data: st.DataObject) -> None:
    addr = data.draw(addresses_for(PEER))
    # Canonical spelling is the multiaddr library's (IPv4-in-IPv6 differs).
    assert make(addresses=[addr]).addresses == (str(Multiaddr(addr)),)
