"""Every malformed code is one ShareCodeError line that never shows the key."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pshare.sharecode import HUMAN_ALPHABET, ShareCode, ShareCodeError, parse_code

from .ids import OTHER, PEER, RELAY
from .strategies import json_values

KEY = bytes(range(200, 232))
KEY_B64 = base64.b64encode(KEY).decode()
SECRETS = (
    KEY_B64,
    KEY_B64.rstrip("="),
    base64.urlsafe_b64encode(KEY).decode().rstrip("="),
    KEY.hex(),
    KEY.hex().upper(),
)
VALID: dict[str, Any] = {
    "version": 1,
    "peer_id": PEER,
    "addresses": ["/ip4/203.0.113.9/tcp/4001"],
    "encryption_key": KEY_B64,
    "share_code": "ABCDEFGH",
}


def b64(raw: bytes | str) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def code(**changes: Any) -> str:
    """The valid object with fields replaced (or removed when the value is DROP)."""
    obj = {k: v for k, v in {**VALID, **changes}.items() if v is not DROP}
    return b64(json.dumps(obj))


DROP = object()


def nested(depth: int) -> object:
    """A value ``depth`` lists deep (``nested(1) == [0]``)."""
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


BAD_MULTI = "bad multiaddr #1 "

CORPUS: list[tuple[str, str]] = [
    ("", "share code is empty"),
    (" \n\t\r\n ", "share code is empty"),
    ("A" * 16385, "code too long: 16385 characters (at most 16384)"),
    ("abc$def", "code is not base64 (bad character at position 4)"),
    ("abc.def", "code is not base64 (bad character at position 4)"),
    ("Zm9v\u00e9", "code is not base64 (bad character at position 5)"),
    ("A", "code is not base64 (impossible length; truncated?)"),
    ("QUJD" * 3 + "Q", "code is not base64 (impossible length; truncated?)"),
    ("QQ===", "code is not base64 (too much '=' padding)"),
    ("QQ=Q", "code is not base64 (bad character at position 3)"),
    (b64(b"\xff\xfe{}"), "not a share code: it does not decode to text"),
    (b64("hello"), "not JSON: Expecting value at character 0"),
    (b64(""), "share code is empty"),
    (b64('{"version":1'), "the code ends too early: it looks cut off after 16 characters"),
    (b64('{"version":1} x'), "2 characters too many at the end: the code itself ends after 18 characters"),
    (b64('{"version":1} x') + "Q", "3 characters too many at the end: the code itself ends after 18 characters"),
    (b64("[1] x"), "not JSON: Extra data at character 4"),
    (b64('{"addresses":["/ip4/192.'), "the code ends too early: it looks cut off after 32 characters"),
    (
        "H9F9WYXCWJ6R",
        "H9F9WYXCWJ6R is the share's tag, not a code to receive with"
        " (the short code looks like 1234-word-word-word, the long one is ~300 characters)",
    ),
    (
        "h9f9-wycx-wj6r",
        "h9f9-wycx-wj6r is the share's tag, not a code to receive with"
        " (the short code looks like 1234-word-word-word, the long one is ~300 characters)",
    ),
    (b64('{"version":1,"version":1}'), "not JSON: duplicate field 'version'"),
    (b64('{"version":NaN}'), "not JSON: NaN is not allowed"),
    (b64('{"x":-Infinity}'), "not JSON: -Infinity is not allowed"),
    (b64("[" * 5000 + "]" * 5000), "not JSON: unsupported number or nesting"),
    (b64('{"version":' + "9" * 5000 + "}"), "not JSON: unsupported number or nesting"),
    (b64("[1]"), "JSON is not an object (got array)"),
    (b64('"text"'), "JSON is not an object (got string)"),
    (b64("42"), "JSON is not an object (got integer)"),
    (b64("null"), "JSON is not an object (got null)"),
    (b64("{}"), "missing field version"),
    (code(version=DROP), "missing field version"),
    (code(version="1"), "field version has wrong type: expected integer, got string"),
    (code(version=1.0), "field version has wrong type: expected integer, got float"),
    (code(version=True), "field version has wrong type: expected integer, got boolean"),
    (code(version=2), "unknown version 2 (this program reads version 1)"),
    (code(version=0), "unknown version 0 (this program reads version 1)"),
    (code(version=10**30), "unknown version (huge) (this program reads version 1)"),
    (code(peer_id=DROP), "missing field peer_id"),
    (code(peer_id=None), "field peer_id has wrong type: expected string, got null"),
    (code(peer_id="12D3KooW0000"), "bad peer ID: not base58btc"),
    (code(peer_id=PEER[:-3]), "bad peer ID: identity multihash has a bad length"),
    (code(encryption_key=DROP), "missing field encryption_key"),
    (
        code(encryption_key=list(KEY)),
        "field encryption_key has wrong type: expected string, got array",
    ),
    (code(encryption_key=KEY.hex()), "encryption key is 48 bytes, expected 32"),
    (
        code(encryption_key=KEY.hex() + "!"),
        "field encryption_key is not standard base64",
    ),
    (
        code(encryption_key=KEY_B64.rstrip("=")),
        "field encryption_key is not standard base64",
    ),
    (
        code(encryption_key=base64.urlsafe_b64encode(b"\xfb" * 32).decode()),
        "field encryption_key is not standard base64",
    ),
    (code(encryption_key=" " + KEY_B64), "field encryption_key is not standard base64"),
    (
        code(encryption_key=base64.b64encode(KEY[:31]).decode()),
        "encryption key is 31 bytes, expected 32",
    ),
    (
        code(encryption_key=base64.b64encode(KEY + b"!").decode()),
        "encryption key is 33 bytes, expected 32",
    ),
    (code(encryption_key=""), "encryption key is 0 bytes, expected 32"),
    (code(share_code=DROP), "missing field share_code"),
    (
        code(share_code=12345678),
        "field share_code has wrong type: expected string, got integer",
    ),
    (code(share_code="ABCDEFG"), "share code is 7 characters, expected 8 to 64"),
    (
        code(share_code="ABCDEFG0"),
        f"share code has a character outside {HUMAN_ALPHABET} at position 8",
    ),
    (code(addresses=DROP), "missing field addresses"),
    (
        code(addresses={"a": 1}),
        "field addresses has wrong type: expected array, got object",
    ),
    (
        code(addresses=["/ip4/1.2.3.4/tcp/1"] * 33),
        "too many addresses: 33 (at most 32)",
    ),
    (code(addresses=[7]), BAD_MULTI.rstrip() + ": expected a string, got int"),
    (
        code(addresses=["/ip4/1.2.3.4/tcp/1", "x" * 1025]),
        "bad multiaddr #2: too long (1025 characters, at most 1024)",
    ),
    (
        code(addresses=["/ip4/0.0.0.0/tcp/4001"]),
        BAD_MULTI + "'/ip4/0.0.0.0/tcp/4001': unspecified address 0.0.0.0",
    ),
    (
        code(addresses=["/ip6/::/udp/1/quic-v1"]),
        BAD_MULTI + "'/ip6/::/udp/1/quic-v1': unspecified address ::",
    ),
    (
        code(addresses=["/ip4/1.2.3.4/tcp/1/ws"]),
        BAD_MULTI + "'/ip4/1.2.3.4/tcp/1/ws': unsupported protocol 'ws' (want p2p or p2p-circuit)",
    ),
    (
        code(addresses=[f"/ip4/1.2.3.4/tcp/1/p2p/{OTHER}"]),
        BAD_MULTI + f"'/ip4/1.2.3.4/tcp/1/p2p/{OTHER}': /p2p/ peer ID differs from the code's peer_id",
    ),
    (
        code(addresses=[f"/ip4/1.2.3.4/tcp/1/p2p/{RELAY}/p2p-circuit/p2p/{OTHER}"]),
        BAD_MULTI
        + f"'/ip4/1.2.3.4/tcp/1/p2p/{RELAY}/p2p-cir...': peer ID after p2p-circuit differs from the code's peer_id",
    ),
    (
        code(addresses=["/ip4/1.2.3.4/tcp/1\n"]),
        BAD_MULTI + "'/ip4/1.2.3.4/tcp/1\\n': port must be 1-65535, got '1\\n'",
    ),
    (code(x=nested(17)), "field 'x' is nested too deeply (at most 16)"),
    (b64(json.dumps(VALID)[:-1] + ',"x":1e400}'), "field 'x' is not a finite number"),
    (
        b64(json.dumps({**VALID, "\n" * 100: 1})[:-1] + ',"y":-1e400}'),
        "field 'y' is not a finite number",
    ),
    (
        b64(json.dumps(VALID)[:-1] + ',"a\\nb\\r":1e400}'),
        "field 'a\\nb\\r' is not a finite number",
    ),
    (
        code(**{"k" * 200: nested(17)}),
        "field '" + "k" * 77 + "...' is nested too deeply (at most 16)",
    ),
]


@pytest.mark.parametrize(("text", "message"), CORPUS, ids=[m[:50] for _, m in CORPUS])
def test_corpus(text: str, message: str) -> None:
    with pytest.raises(ShareCodeError) as info:
        parse_code(text)
    got = str(info.value)
    assert isinstance(info.value, ValueError)
    assert got == message
    assert "\n" not in got and "\r" not in got


def test_corpus_never_shows_the_key() -> None:
    # Separate from the exact messages, so a leak is named as such.
    for text, _ in CORPUS:
        with pytest.raises(ShareCodeError) as info:
            parse_code(text)
        for secret in SECRETS:
            assert secret not in str(info.value)


def test_valid_base_object_parses() -> None:
    """Guard: the corpus is malformed only by its changes."""
    parsed = parse_code(code())
    assert isinstance(parsed, ShareCode) and parsed.encryption_key == KEY


def test_nesting_bound_is_inclusive() -> None:
    parsed = parse_code(code(x=nested(16)))
    assert isinstance(parsed, ShareCode) and "x" in parsed.extra


def test_legacy_detection_by_colon() -> None:
    with pytest.raises(ShareCodeError, match="^legacy code: expected CODE:KEY:IP:PORT$"):
        parse_code(code()[:10] + ":" + code()[10:])


def test_non_text() -> None:
    with pytest.raises(ShareCodeError, match="^share code must be text, got bytes$"):
        parse_code(code().encode())  # type: ignore[arg-type]


def _only_share_code_errors(text: str) -> None:
    try:
        parse_code(text)
    except ShareCodeError as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message
        for secret in SECRETS:
            assert secret not in message


@given(st.text(max_size=300))
def test_fuzz_text(text: str) -> None:
    _only_share_code_errors(text)


@given(st.binary(max_size=300))
def test_fuzz_base64_of_bytes(raw: bytes) -> None:
    _only_share_code_errors(b64(raw))


@given(
    st.dictionaries(st.sampled_from([*VALID, "x"]), json_values, max_size=6),
    st.booleans(),
)
def test_fuzz_json_fields(changes: dict[str, Any], keep_rest: bool) -> None:
    obj = {**VALID, **changes} if keep_rest else changes
    _only_share_code_errors(b64(json.dumps(obj)))


@settings(max_examples=200)
@given(st.data())
def test_fuzz_mutations_of_a_valid_code(data: st.DataObject) -> None:
    text = list(code())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text) - 1))
        text[i] = data.draw(st.sampled_from("AZaz09-_+/=: \n"))
    _only_share_code_errors("".join(text))


@pytest.mark.parametrize("tail", ["x", "xy", "xyz", "A", "thanks", "0" * 9])
def test_characters_typed_after_a_whole_code_are_counted(tail: str) -> None:
    # Appended characters only complete the code's last base64 group: the
    # code still decodes whole, then stray bytes. Not "cut off", not "truncated".
    whole = code()
    parse_code(whole)
    with pytest.raises(ShareCodeError) as err:
        parse_code(whole + tail)
    many = "character" if len(tail) == 1 else "characters"
    assert (
        str(err.value) == f"{len(tail)} {many} too many at the end: the code itself ends after {len(whole)} characters"
    )


def test_a_code_cut_short_is_still_called_cut_off() -> None:
    whole = code()
    for cut in (2, 3, 9):
        with pytest.raises(ShareCodeError) as err:
            parse_code(whole[:-cut])
        assert "too many" not in str(err.value)
        assert "cut off" in str(err.value) or "truncated" in str(err.value), str(err.value)
