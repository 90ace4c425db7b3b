"""Peers in separate processes for the node tests (started once per session)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import PeerProcess, python_module, stop_all

BIG = 32 << 20


class Peer:
    """``python -m tests.node._peer ARGS``: its first line is its info."""

    def __init__(self, *args: str) -> None:
        self.proc: PeerProcess = python_module("tests.node._peer", *args, name=f"node-peer-{'-'.join(args[:3])}")
        self._info: dict[str, Any] | None = None

    @property
    def info(self) -> dict[str, Any]:
        if self._info is None:
            self._info = self.proc.json(timeout=60)
        return self._info

    @property
    def peer_id(self) -> str:
        return str(self.info["peer"])

    @property
    def addrs(self) -> list[str]:
        return list(self.info["addrs"])

    def stop(self) -> None:
        self.proc.stop(grace=10)


def _peers(*specs: tuple[str, ...]) -> Iterator[list[Peer]]:
    # Start all at once: each needs ~1 s to import libp2p.
    peers = [Peer(*spec) for spec in specs]
    try:
        for p in peers:
            p.info  # noqa: B018 - waits for the peer to report
        yield peers
    finally:
        stop_all([p.proc for p in peers])


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
