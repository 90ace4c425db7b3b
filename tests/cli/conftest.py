from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import Proc, free_port, start


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """Every process a test starts is killed at teardown, pass or fail."""
    started: list[Proc] = []
    yield started
    for p in started:
        p.close()


@pytest.fixture
def sharer(tmp_path: Path, procs: list[Proc]) -> Callable[..., tuple[Proc, dict[str, Any]]]:
    """Start ``p2pshare share --json`` on loopback; return the process and its `shared` event."""

    def _start(
        *paths: Path, home: Path | None = None, port: int | None = None, extra: tuple[str, ...] = ()
    ) -> tuple[Proc, dict[str, Any]]:
        home = home or tmp_path / "sharer-home"
        listen = f"/ip4/127.0.0.1/tcp/{port if port is not None else free_port()}"
        p = start(["share", *map(str, paths), "--json", "--listen", listen, *extra], home)
        procs.append(p)
        first = next(p.events(timeout=60))
        assert first["event"] == "shared", first
        return p, first

    return _start
