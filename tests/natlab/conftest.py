"""Shared helpers for the NAT lab tests: run ``scripts/natlab``, skip when it can't."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NATLAB = REPO / "scripts" / "natlab"
FAKE = Path(__file__).with_name("fake_p2pshare.py")
# The FAKE product (plain sockets), run by the same interpreter as the tests.
FAKE_CMD = f"{sys.executable} {FAKE}"

sys.path.insert(0, str(REPO / "scripts"))
from natlab_lib import netns  # noqa: E402


def natlab(
    *args: str, timeout: float = 120, python: str = sys.executable, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, str(NATLAB), *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def leftovers(prefix: str) -> list[str]:
    """Namespaces, root-namespace links and marker files that carry ``prefix``."""
    found = [n for n in netns.list_namespaces() if n.startswith(prefix)]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=False).stdout
    found += [ln for ln in links.splitlines() if prefix in ln]
    if (netns.MARKER_DIR / prefix).exists():
        found.append(f"marker {prefix}")
    return found


def fresh_prefix() -> str:
    for _ in range(50):
        prefix = "nl" + secrets.token_hex(2)
        if not leftovers(prefix):
            return prefix
    raise RuntimeError("no free prefix")


@pytest.fixture(scope="session")
def lab_ok() -> None:
    """Skip (with the reason printed by -ra) unless root with working netns + nft."""
    why = netns.preflight()
    if why is None:
        why = netns.check_netns()
    if why is not None:
        pytest.skip(why)


@pytest.fixture
def prefix(lab_ok: None) -> Iterator[str]:
    """A free run prefix; whatever the test leaves under it is removed afterwards."""
    p = fresh_prefix()
    yield p
    netns.delete_prefix(p)
