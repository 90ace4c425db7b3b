"""``p2pshare get``: reach the sharer, fetch, verify, print one summary line."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from p2pshare import sharecode
from p2pshare.errors import Terminated
from p2pshare.node._output import Reporter, human_bytes
from p2pshare.sharecode.short import ShortCode, looks_like_short_code, parse_short_code


@dataclass(frozen=True)
class GetOptions:
    """What ``p2pshare get`` was asked to do (built by ``p2pshare.cli``)."""

    code: str
    output: Path = Path(".")
    timeout: float = 60.0
    listen: tuple[str, ...] = ()
    identity: Path | None = None
    relays: tuple[str, ...] = ()
    bootstrap: tuple[str, ...] = ()
    no_default_bootstrap: bool = False
    force_relay: bool = False
    json: bool = False


AnyCode = sharecode.ShareCode | sharecode.LegacyCode | ShortCode


def parse_any_code(text: str) -> AnyCode:
    """A short code (it starts with a digit), a v1 code or a legacy one."""
    if looks_like_short_code(text):
        return parse_short_code(text)
    return sharecode.parse_code(text)


def run_get(opts: GetOptions, reporter: Reporter) -> int:
    code = parse_any_code(opts.code)  # bad codes (unknown words too) fail before slow imports
    return trio.run(_get, opts, reporter, code)


async def _get(opts: GetOptions, reporter: Reporter, code: AnyCode) -> int:
    from p2pshare.node.api import Node, NodeConfig
    from p2pshare.node.events import Connected, NodeEvent, PathUpgraded
    from p2pshare.transfer.errors import sanitize_text
    from p2pshare.transfer.events import FileUnavailable, ManifestReceived, Progress, TransferCompleted

    output = opts.output
    summary: dict[str, Any] = {}

    def on_event(event: NodeEvent) -> None:
        if isinstance(event, Connected):
            rtt = f", rtt {event.rtt_ms:.1f} ms" if event.rtt_ms is not None else ""
            reporter.event("connected", peer_id=event.peer_id, path=event.path.value, rtt_ms=event.rtt_ms)
            reporter.say(f"Connected to {event.peer_id} ({event.path}{rtt})")
        elif isinstance(event, PathUpgraded):
            reporter.event("upgraded", peer_id=event.peer_id, path=event.path.value, seconds=event.seconds)
            reporter.say(f"Upgraded the relayed connection: now {event.path} (after {event.seconds:.2f} s)")
        elif isinstance(event, ManifestReceived):
            m = event.manifest
            have = f", {human_bytes(event.already_have_bytes)} already here" if event.already_have_bytes else ""
            reporter.event(
                "manifest", name=m.name, files=len(m.files), total=m.total_bytes, already_have=event.already_have_bytes
            )
            reporter.say(f"Receiving {m.name!r}: {len(m.files)} file(s), {human_bytes(m.total_bytes)}{have}")
            for warning in event.warnings:  # misleading names: received, but said
                reporter.warning(warning)
        elif isinstance(event, Progress):
            reporter.progress(event.bytes_verified, event.total_bytes)
        elif isinstance(event, FileUnavailable):
            reporter.event("file_unavailable", path=event.path, reason=event.reason.label)
            shown = sanitize_text(event.path)  # the sharer's name for it: one printable line
            reporter.say(f"The sharer stopped serving {shown} ({event.reason.text}); receiving the rest")
        elif isinstance(event, TransferCompleted):
            summary.update(files=event.files, bytes=event.bytes, seconds=event.seconds)

    # The receiver uses a fresh identity unless told otherwise: two downloads
    # at once never collide, and receivers are not linkable across shares.
    from p2pshare.node.config import data_home, load_network_config

    net = load_network_config(
        data_home(),
        bootstrap=list(opts.bootstrap),
        relays=list(opts.relays),
        no_default_bootstrap=opts.no_default_bootstrap,
    )
    config = NodeConfig(
        identity_path=opts.identity,
        listen_addrs=list(opts.listen) or ["/ip4/0.0.0.0/tcp/0"],
        relays=net.relays,
        force_relay=opts.force_relay,
        bootstrap=net.bootstrap,
        peers_file=net.peers_file,
        autorelay=False,  # a receiver dials out; it needs no relay of its own
    )
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            terminated = False

            async def stop_on_sigterm() -> None:
                nonlocal terminated
                async for _ in signals:
                    terminated = True
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(stop_on_sigterm)
            async with Node(config, on_event=on_event) as node:
                if isinstance(code, ShortCode):
                    reporter.event("short_code_lookup", number=code.number)
                    reporter.say(f"Looking up short code {code.redacted} in the DHT…")
                    code = await node.resolve_short_code(code, timeout=opts.timeout)
                await node.start_receiving(code, output, timeout=opts.timeout)
            nursery.cancel_scope.cancel()
    if terminated:
        raise Terminated("terminated; run the same command again to resume")
    seconds = float(summary.get("seconds") or 0.0)
    nbytes = int(summary.get("bytes") or 0)
    rate = nbytes / seconds / 1e6 if seconds > 0 else 0.0
    reporter.event(
        "done",
        files=summary.get("files"),
        bytes=nbytes,
        seconds=round(seconds, 3),
        mb_per_s=round(rate, 1),
        output=str(output),
    )
    reporter.result(
        f"Received {summary.get('files')} file(s), {human_bytes(nbytes)} in {seconds:.1f} s "
        f"({rate:.1f} MB/s) into {output}, all verified"
    )
    return 0
