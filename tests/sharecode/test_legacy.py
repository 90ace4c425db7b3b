from __future__ import annotations

import base64
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pshare.sharecode import HUMAN_ALPHABET, LegacyCode, ShareCodeError, describe, parse_code

KEY = bytes(range(100, 132))
HEX = KEY.hex()
B64 = base64.b64encode(KEY).decode()
B64URL = base64.urlsafe_b64encode(KEY).decode().rstrip("=")


@pytest.mark.parametrize(
    "text",
    [
        f"ABCD2345:{HEX}:192.168.1.5:4000",
        f"abcd-2345:{HEX.upper()}:192.168.1.5:4000",
        f"ABCD2345:{B64}:192.168.1.5:4000",
        f"ABCD2345:{B64URL}:192.168.1.5:4000",
        f"  ABCD2345:{B64[:20]}\n{B64[20:]}:192.168.1.5:4000 \r\n",
    ],
)
def test_key_forms(text: str) -> None:
    code = parse_code(text)
    assert code == LegacyCode(share_code="ABCD2345", encryption_key=KEY, host="192.168.1.5", port=4000)
    assert code.encode() == f"ABCD2345:{HEX}:192.168.1.5:4000"
    assert code.multiaddr() == "/ip4/192.168.1.5/tcp/4000"


def test_ipv6() -> None:
    code = parse_code(f"ABCD2345:{HEX}:[2001:DB8:0::1]:65535")
    assert isinstance(code, LegacyCode)
    assert code.host == "2001:db8::1" and code.port == 65535
    assert code.encode() == f"ABCD2345:{HEX}:[2001:db8::1]:65535"
    assert code.multiaddr() == "/ip6/2001:db8::1/tcp/65535"
    assert parse_code(code.encode()) == code


def test_describe_and_repr_hide_the_key() -> None:
    code = parse_code(f"ABCD2345:{HEX}:[::1]:1")
    assert HEX not in repr(code) and str(KEY) not in repr(code)
    shown = describe(code)
    assert shown == {
        "format": "legacy",
        "share_code": "ABCD2345",
        "host": "::1",
        "port": 1,
        "addresses": ["/ip6/::1/tcp/1"],
        "encryption_key": "<redacted>",
    }
    assert describe(code, reveal_key=True)["encryption_key"] == HEX


BAD = [
    ("ABCD2345:KEY", "legacy code: expected CODE:KEY:IP:PORT"),
    ("ABCD2345:", "legacy code: expected CODE:KEY:IP:PORT"),
    (f"ABCD2345:{HEX}:1.2.3.4", "legacy code: expected CODE:KEY:IP:PORT"),
    (
        f"ABCD2345:{HEX}:::1:80",
        "legacy code: an IPv6 address must be in brackets: [IP]:PORT",
    ),
    (
        f"ABCD2345:{HEX}:[::1:80",
        "legacy code: expected CODE:KEY:IP:PORT with IPv6 as [IP]:PORT",
    ),
    (
        f"ABCD2345:{HEX}:[::1]80",
        "legacy code: expected CODE:KEY:IP:PORT with IPv6 as [IP]:PORT",
    ),
    (f"ABCD2345:{HEX}:[1.2.3.4]:80", "legacy code: only IPv6 addresses go in brackets"),
    (
        f"ABCD2345:{HEX}:0.0.0.0:80",
        "legacy code: unspecified address 0.0.0.0 is not reachable",
    ),
    (f"ABCD2345:{HEX}:[::]:80", "legacy code: unspecified address :: is not reachable"),
    (f"ABCD2345:{HEX}:[fe80::1%eth0]:80", "legacy code: IPv6 zone IDs are not allowed"),
    (
        f"ABCD2345:{HEX}:example.com:80",
        "legacy code: 'example.com' is not an IP address",
    ),
    (f"ABCD2345:{HEX}:01.2.3.4:80", "legacy code: '01.2.3.4' is not an IP address"),
    (f"ABCD2345:{HEX}:1.2.3.4:0", "legacy code: port 0 is not in 1-65535"),
    (f"ABCD2345:{HEX}:1.2.3.4:65536", "legacy code: port 65536 is not in 1-65535"),
    (f"ABCD2345:{HEX}:1.2.3.4:", "legacy code: PORT must be a number 1-65535"),
    (f"ABCD2345:{HEX}:1.2.3.4:+80", "legacy code: PORT must be a number 1-65535"),
    (f"ABCD2345:{HEX}:1.2.3.4:123456", "legacy code: PORT must be a number 1-65535"),
    (
        f"ABCD2345:{HEX[:-1]}g:1.2.3.4:80",
        "legacy code: KEY is 64 characters but not hex",
    ),
    (
        f"ABCD2345:{HEX[:-2]}:1.2.3.4:80",
        "legacy code: KEY has 62 hex digits, expected 64",
    ),
    (f"ABCD2345:{HEX}00:1.2.3.4:80", "legacy code: KEY has 66 hex digits, expected 64"),
    (
        f"ABCD2345:{B64[:-4]}x:1.2.3.4:80",
        "legacy code: KEY is not base64 (impossible length; truncated?)",
    ),
    (f"ABCD2345:{B64[:-4]}:1.2.3.4:80", "legacy code: KEY is 30 bytes, expected 32"),
    (
        f"ABCD2345:{B64}AAAA:1.2.3.4:80",
        "legacy code: KEY is not base64 (bad character at position 44)",
    ),
    (
        f"ABCD2345:{B64[:-1]}AAAA:1.2.3.4:80",
        "legacy code: KEY is 35 bytes, expected 32",
    ),
    (
        f"ABCD2345:{B64[:-1]}!:1.2.3.4:80",
        "legacy code: KEY is not base64 (bad character at position 44)",
    ),
    (
        f"ABCO2345:{HEX}:1.2.3.4:80",
        f"share code has a character outside {HUMAN_ALPHABET} at position 4",
    ),
    (f"ABC:{HEX}:1.2.3.4:80", "share code is 3 characters, expected 8 to 64"),
    (f":{HEX}:1.2.3.4:80", "share code is 0 characters, expected 8 to 64"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad(text: str, message: str) -> None:
    with pytest.raises(ShareCodeError) as info:
        parse_code(text)
    assert str(info.value) == message
    for secret in (HEX, HEX.upper(), B64, B64URL, B64[:30]):
        assert secret not in str(info.value)


def test_constructor_validates() -> None:
    with pytest.raises(ShareCodeError, match="^legacy code: port must be an integer, got bool$"):
        LegacyCode(share_code="ABCD2345", encryption_key=KEY, host="::1", port=True)
    with pytest.raises(ShareCodeError, match="^encryption key must be bytes, got str$"):
        LegacyCode(share_code="ABCD2345", encryption_key=HEX, host="::1", port=1)  # type: ignore[arg-type]


ips = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).filter(lambda ip: not ip.is_unspecified)


@given(
    code=st.text(alphabet=HUMAN_ALPHABET, min_size=8, max_size=64),
    key=st.binary(min_size=32, max_size=32),
    ip=ips,
    port=st.integers(1, 65535),
    key_form=st.sampled_from(["hex", "HEX", "b64", "b64url"]),
)
def test_round_trip(
    code: str,
    key: bytes,
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
    port: int,
    key_form: str,
) -> None:
    legacy = LegacyCode(share_code=code.lower(), encryption_key=key, host=str(ip), port=port)
    assert legacy.share_code == code
    assert parse_code(legacy.encode()) == legacy
    key_text = {
        "hex": key.hex(),
        "HEX": key.hex().upper(),
        "b64": base64.b64encode(key).decode(),
        "b64url": base64.urlsafe_b64encode(key).decode().rstrip("="),
    }[key_form]
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    assert parse_code(f"{code}:{key_text}:{host}:{port}") == legacy
    assert legacy.multiaddr() == f"/ip{ip.version}/{ip}/tcp/{port}"
