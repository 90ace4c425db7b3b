"""A flood of idle connections to a real relay's STUN responder costs it a
bounded number of descriptors (``tests/natinfo/test_stun_admission.py``
has the responder's rules; 20,000 such connections took the old relay to
its descriptor limit)."""

from __future__ import annotations

import errno
import resource
import socket
import time
from pathlib import Path

import pytest

from p2pshare.node.natinfo import _trio_stun
from tests.cli.helpers import Proc
from tests.cli.test_relayed import start_relay


def _fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def test_a_real_relay_keeps_its_descriptors_under_a_flood_of_idle_stun_connections(
    tmp_path: Path, procs: list[Proc]
) -> None:
    port = _trio_stun.DEFAULT_PORTS[0]
    with socket.socket() as probe:  # the relay's STUN ports are fixed: they must be free
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            pytest.skip(f"port {port} is in use on this machine")
    start_relay(tmp_path, procs)
    relay = procs[-1]
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        pass  # the responder is up (the relay starts it before it prints its address)
    before = _fds(relay.popen.pid)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 3000
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, want + 500)), hard))
    socks: list[socket.socket] = []
    try:
        for _ in range(want):
            s = socket.socket()
            try:
                s.connect(("127.0.0.1", port))
            except OSError as e:  # the backlog is full for a moment: the relay is closing them
                s.close()
                if e.errno not in (errno.ECONNREFUSED, errno.EAGAIN, errno.ETIMEDOUT):
                    raise
                continue
            socks.append(s)
        time.sleep(1.0)
        held = _fds(relay.popen.pid) - before
        assert held <= _trio_stun._MAX_CONNS_PER_IP + 8, f"the relay holds {held} more descriptors"
        assert relay.popen.poll() is None
    finally:
        for s in socks:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
