"""Local discovery through the real CLI: two hosts on one bridge, no bootstrap.

``share`` on one host and ``get`` on the other, with no bootstrap node and
``P2PSHARE_NO_DEFAULT_BOOTSTRAP=1``; then a stale code (the sharer restarted
on another port): a control getter with ``--no-mdns`` must fail, and the
getter with mDNS must find the sharer (mDNS + the LAN's DHT) and receive it;
and a short code (number found in the LAN's DHT, words through the PAKE).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from natlab_lib.lan import run_lan
from natlab_lib.scenario import DEFAULT_PRODUCT

pytestmark = pytest.mark.natlab


@pytest.fixture(scope="module")
def product(lab_ok: None) -> str:
    if not DEFAULT_PRODUCT.exists():
        pytest.skip(f"no product at {DEFAULT_PRODUCT}")
    return str(DEFAULT_PRODUCT)


@pytest.mark.parametrize("variant", ["direct", "short", "stale", "moved", "offline"])
def test_lan_without_bootstrap(product: str, prefix: str, variant: str, tmp_path: Path) -> None:
    (res,) = run_lan([product], tmp_path, variants=[variant], prefix=prefix, runs=1)
    print(json.dumps(res.metrics))
    assert res.passed, f"{res.reasons}; logs in {tmp_path / variant}"
