"""Small wording fixes of code errors (a usability review, stop 44)."""

from __future__ import annotations

import base64

import pytest

from p2pshare.sharecode import legacy, v1
from p2pshare.sharecode.errors import ShareCodeError


def test_a_json_error_says_at_once() -> None:
    code = base64.urlsafe_b64encode(b'{"a\x01":1}').decode().rstrip("=")
    with pytest.raises(ShareCodeError) as err:
        v1.parse_v1(code)
    assert str(err.value) == "not JSON: Invalid control character at character 3"  # was "… at at character 3"


def test_one_byte_is_one_byte() -> None:
    with pytest.raises(ShareCodeError) as err:
        legacy.parse_legacy("ABCD:AQ:1.2.3.4:80")
    assert str(err.value) == "legacy code: KEY is 1 byte, expected 32"
