"""What a hostile peer can make a real ``p2pshare relay`` print is bounded.

Before the budget, each malformed HOP message cost the peer one stream and
the relay one warning line: 1,000 messages in 1.4 s made 1,000 lines
(128 kB), so one connection could fill a community relay's journal or disk.
"""

from __future__ import annotations

import json
from pathlib import Path

from p2pshare.node.logbudget import LogBudget, limited_note
from tests.cli.helpers import Proc, run_module
from tests.cli.test_relayed import start_relay

FLOOD = 300


def test_a_peer_flooding_malformed_hop_messages_gets_a_few_lines(tmp_path: Path, procs: list[Proc]) -> None:
    relay_addr = start_relay(tmp_path, procs)
    relay = procs[-1]
    res = run_module("tests.hostile.hop_flood", relay_addr, str(FLOOD), home=tmp_path / "flooder")
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout)["streams"] == FLOOD
    assert relay.popen.poll() is None, "the relay must survive the flood"
    lines = [ln for ln in relay.stderr_tail(1 << 20).splitlines() if "malformed HOP message" in ln]
    burst = LogBudget().burst
    # The burst, then one line that says the rest are limited; nothing else.
    assert len(lines) == burst + 1, lines[:10]
    assert all(ln.startswith("p2pshare: warning: relay: malformed HOP message from ") for ln in lines)
    assert lines[-1].endswith(limited_note(LogBudget().interval))
