"""Copy-paste wrappers around a code are stripped; the code itself never changes."""

from __future__ import annotations

import pytest

from p2pshare.sharecode.pasted import unwrap_pasted

CODE = "eyJhZGRyZXNzZXMiOlsiL2lwNC8xMjcuMC4wLjEvdGNwLzMzNDA5Il0-_x"


@pytest.mark.parametrize(
    "pasted",
    [
        CODE,
        f"  {CODE}\n",
        f"'{CODE}'",
        f'"{CODE}"',
        f"“{CODE}”",
        f"<{CODE}>",
        f"`{CODE}`",
        f"```\n{CODE}\n```",
        f"{CODE}.",
        f"'<{CODE}>'.",
        f"p2pshare get {CODE}",
        f"p2pshare get '{CODE}'",
    ],
)
def test_wrappers_are_stripped(pasted: str) -> None:
    assert unwrap_pasted(pasted) == CODE


@pytest.mark.parametrize("code", ["4127-guitar-ocean-velvet", "ABCD1234:00ff:127.0.0.1:80", CODE])
def test_valid_codes_pass_unchanged(code: str) -> None:
    assert unwrap_pasted(code) == code
