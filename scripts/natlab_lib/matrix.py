"""Every ordered (sharer, receiver) pair of profiles, judged against EXPECT.

EXPECT is the one table of what each cell must achieve, so a change in the
product that loses a direct or hole-punched path shows up as a failure:

- ``direct``: must connect and the path must be ``direct`` (the sharer is
  reachable: public, or on the receiver's own LAN);
- ``punch``: must end on a non-relayed path (direct, hole-punched, or a
  relayed start followed by ``upgraded``): the lab facts say a timed TCP
  simultaneous open gets through these NATs;
- ``relay``: must connect; relaying is allowed (two symmetric NATs: neither
  mapping can be predicted). A symmetric NAT facing any endpoint-independent
  one is ``punch``: birthday port probing (node/dcutr/birthday.py) finds a
  direct path (10/10 runs in each such cell, 2026-12-03).

Every cell must also exit 0, report ``done`` and deliver a byte-identical file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .profiles import SAME_LAN, SIDE_PROFILES
from .scenario import CellResult, run_scenario

# Sharer in rows, receiver in columns: P public, F firewall, C cone,
# R cone-rst, S symmetric, D double.
_COLS = ("public", "firewall", "cone", "cone-rst", "symmetric", "double")
_ROWS = {
    "public": ("direct", "direct", "direct", "direct", "direct", "direct"),
    "firewall": ("punch", "punch", "punch", "punch", "punch", "punch"),
    "cone": ("punch", "punch", "punch", "punch", "punch", "punch"),
    "cone-rst": ("punch", "punch", "punch", "punch", "punch", "punch"),
    "symmetric": ("punch", "punch", "punch", "punch", "relay", "punch"),
    "double": ("punch", "punch", "punch", "punch", "punch", "punch"),
}
EXPECT: dict[tuple[str, str], str] = {
    (s, r): level for s, row in _ROWS.items() for r, level in zip(_COLS, row, strict=True)
}
EXPECT[(SAME_LAN, SAME_LAN)] = "direct"


def cells(profiles: list[str]) -> list[tuple[str, str]]:
    """Ordered pairs of the side profiles chosen, then same-lan if chosen."""
    sides = [p for p in SIDE_PROFILES if p in profiles]
    pairs = [(s, r) for s in sides for r in sides]
    if SAME_LAN in profiles:
        pairs.append((SAME_LAN, SAME_LAN))
    return pairs


def judge(res: CellResult) -> list[str]:
    """Reasons the cell failed its expectation; empty when it passed."""
    level = EXPECT[(res.sharer, res.receiver)]
    reasons: list[str] = []
    if not res.connected:
        reasons.append("did not connect" + (f": {res.error}" if res.error else ""))
    if res.exit_code != 0:
        reasons.append(f"getter exit code {res.exit_code}")
    if res.sharer_exit is not None:
        reasons.append(f"sharer exited early with code {res.sharer_exit}")
    if res.total_s is None:
        reasons.append("no 'done' event")
    if not res.verified:
        reasons.append("file missing or not byte-identical")
    if res.connected:
        final = res.upgraded_path if res.upgraded else res.path
        if level == "direct" and res.path != "direct":
            reasons.append(f"path {res.path}, must be direct")
        elif level == "punch" and final not in ("direct", "hole-punched"):
            reasons.append(f"path {res.path} (upgraded: {res.upgraded}), must not stay relayed")
    return reasons


def run_cell(product: list[str], sharer: str, receiver: str, out: Path, **kw: object) -> CellResult:
    """Run and judge one cell; its logs and result.json go to ``out/cells/S__R``."""
    logdir = out / "cells" / f"{sharer}__{receiver}"
    res = run_scenario(product, sharer, receiver, logdir, **kw)  # type: ignore[arg-type]
    res.expect = EXPECT[(sharer, receiver)]
    res.reasons = judge(res)
    res.passed = not res.reasons
    (logdir / "result.json").write_text(json.dumps(vars(res), indent=1) + "\n")
    return res


def _f(x: float | None, fmt: str = "{:.2f}") -> str:
    return "–" if x is None else fmt.format(x)


def render(results: list[CellResult]) -> str:
    head = (
        "| sharer | receiver | expect | connected | path | upgraded (s) | connect s "
        "| TTFB s | total s | MiB/s | verified | result |"
    )
    rows = [head, "|" + "---|" * 12]
    for r in results:
        up = f"yes ({_f(r.upgrade_s)})" if r.upgraded else "no"
        verdict = "pass" if r.passed else "FAIL: " + "; ".join(r.reasons)
        rows.append(
            f"| {r.sharer} | {r.receiver} | {r.expect} | {'yes' if r.connected else 'no'} "
            f"| {r.path or '–'} | {up} | {_f(r.connect_s)} | {_f(r.ttfb_s)} "
            f"| {_f(r.total_s)} | {_f(r.throughput_mib_s)} "
            f"| {'yes' if r.verified else 'no'} | {verdict.replace('|', '/')} |"
        )
    return "\n".join(rows) + "\n"


def write_outputs(out: Path, results: list[CellResult], meta: dict[str, object]) -> None:
    passed = sum(r.passed for r in results)
    summary = {"passed": passed, "failed": len(results) - passed, **meta, "cells": [vars(r) for r in results]}
    (out / "matrix.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "matrix.md").write_text(
        "# NAT lab matrix\n\n" + render(results) + f"\n{passed} passed, {len(results) - passed} failed\n"
    )


def run_matrix(
    product: list[str],
    profiles: list[str],
    out: Path,
    *,
    size: int,
    timeout: float,
    use_relay: bool,
    prefix: str | None = None,
) -> list[CellResult]:
    """Run every cell, rewriting the outputs after each so a Ctrl-C keeps them."""
    out.mkdir(parents=True, exist_ok=True)
    results: list[CellResult] = []
    meta: dict[str, object] = {"product": product, "size": size, "relay": use_relay, "profiles": profiles}
    todo = cells(profiles)
    for i, (s, r) in enumerate(todo, 1):
        res = run_cell(product, s, r, out, size=size, timeout=timeout, use_relay=use_relay, prefix=prefix)
        results.append(res)
        write_outputs(out, results, meta)
        mark = "pass" if res.passed else "FAIL " + "; ".join(res.reasons)
        print(f"natlab: [{i}/{len(todo)}] {s} -> {r}: {mark}", file=sys.stderr, flush=True)
    return results
