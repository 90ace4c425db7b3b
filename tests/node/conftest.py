"""Peers in separate processes for the node tests (started once per session)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIG = 32 << 20


class Peer:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.node._peer", *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._info: dict[str, Any] | None = None

    @property
    def info(self) -> dict[str, Any]:
        if self._info is None:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"peer process died (exit {self.proc.wait()})")
            self._info = json.loads(line)
        return self._info

    @property
    def peer_id(self) -> str:
        return str(self.info["peer"])

    @property
    def addrs(self) -> list[str]:
        return list(self.info["addrs"])

    def stop(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
            self.proc.wait()


def _peers(*specs: tuple[str, ...]) -> Iterator[list[Peer]]:
    # Start all at once: each needs ~1 s to import libp2p.
    peers = [Peer(*spec) for spec in specs]
    try:
        for p in peers:
            p.info  # noqa: B018 - waits for the peer to report
        yield peers
    finally:
        for p in peers:
            p.stop()


@pytest.fixture(scope="session")
def peer_procs() -> Iterator[dict[str, Peer]]:
    names = ["ours", "stock", "plaintext", "secio"]
    specs = [
        ("ours", "--send", str(BIG)),
        ("stock", "--sec", "noise", "--send", str(BIG)),
        ("stock", "--sec", "plaintext"),
        ("stock", "--sec", "secio"),
    ]
    for peers in _peers(*specs):
        yield dict(zip(names, peers, strict=True))
