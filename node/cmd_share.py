"""``p2pshare share``: print the code first, then serve until told to stop."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from p2pshare.node import share_short
from p2pshare.node._output import Reporter, SendingDisplay, human_bytes
from p2pshare.node.errors import LocalNodeError
from p2pshare.node.online import OFFLINE, has_route
from p2pshare.node.progress import format_count, format_seconds
from p2pshare.node.share_input import check_paths, check_shown_text
from p2pshare.node.stop_signals import StopSignals, stop_signals

if TYPE_CHECKING:
    from collections.abc import Sequence

    from p2pshare.node.api import Node, ShareInfo
    from p2pshare.node.events import NodeEvent
    from p2pshare.node.shortcode import ShortCodeEvent
    from p2pshare.sharecode import ShareCode

from p2pshare.node.identity import IDENTITY_FILE_NAME, identity_slots
from p2pshare.node.shares_db import (
    ShareRecord,
    forget_record,
    keep_record_fresh,
    load_record,
    prune_records,
    save_record,
)
from p2pshare.node.textshare import TEXT_MARK
from p2pshare.sharecode.multiaddrs import first_tcp_port, is_circuit


@dataclass(frozen=True)
class ShareOptions:
    """What ``p2pshare share`` was asked to do (built by ``p2pshare.cli``)."""

    paths: tuple[Path, ...]
    name: str | None = None
    description: str = ""
    sharer: str = ""
    listen: tuple[str, ...] = ()
    identity: Path | None = None
    relays: tuple[str, ...] = ()
    bootstrap: tuple[str, ...] = ()
    no_default_bootstrap: bool = False
    no_mdns: bool = False  # no local discovery (mDNS)
    once: bool = False
    new_code: bool = False
    relay_service: str = "off"  # relay for others: off, auto (when confirmed public), on
    autorelay: bool = True  # also reserve on relays the node finds (not only --relay)
    code_tries: int = 3  # failed short-code attempts before the short code is refused
    code_ttl: float = 3600.0  # seconds the short code is valid
    json: bool = False
    qr: bool = False  # also print the code as a terminal QR code (stderr)
    text: str | None = None  # share this text instead of paths ("-": read stdin)


def run_share(opts: ShareOptions, reporter: Reporter) -> int:
    from p2pshare.node.config import data_home

    if opts.text is not None:
        return _share_text(opts, reporter)
    paths = check_paths(list(opts.paths))
    check_shown_text(opts.name, opts.description, opts.sharer)
    home = data_home()
    name = opts.name or ""
    record = None if opts.new_code else load_record(home, paths, name)
    if opts.listen:
        listen, fallback = list(opts.listen), None
    else:
        port = record.port if record and record.port else 0
        listen = [f"/ip4/0.0.0.0/tcp/{port}"]
        fallback = ["/ip4/0.0.0.0/tcp/0"] if port else None
    return trio.run(_serve, opts, reporter, paths, home, name, record, listen, fallback)


def _share_text(opts: ShareOptions, reporter: Reporter) -> int:
    """Write the text into a private temporary file, share it marked as text, remove it after."""
    import os
    import secrets
    import shutil
    import sys
    import tempfile

    from p2pshare.node.textshare import MAX_TEXT_BYTES, TEXT_MARK

    assert opts.text is not None
    # Bytes, at most one over the limit: ``yes | share --text -`` grew to
    # 3.3 GB before the limit was checked, and input that is not UTF-8 was an
    # internal error (a usability review, stop 44).
    data = sys.stdin.buffer.read(MAX_TEXT_BYTES + 1) if opts.text == "-" else os.fsencode(opts.text)
    if not data:
        raise LocalNodeError("the text to send is empty")
    if len(data) > MAX_TEXT_BYTES:
        raise LocalNodeError(f"the text is over {MAX_TEXT_BYTES} bytes; share it as a file")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise LocalNodeError("the text is not UTF-8; share it as a file") from None
    folder = Path(tempfile.mkdtemp(prefix="p2pshare-text-"))  # mode 0700: ours alone
    try:
        path = folder / f"message-{secrets.token_hex(4)}.txt"
        path.write_bytes(data)
        # A new code every time: nothing to resume, and no share record to keep.
        text_opts = dataclasses.replace(
            opts, paths=(path,), name=opts.name or "text", description=TEXT_MARK, new_code=True
        )
        return run_share(dataclasses.replace(text_opts, text=None), reporter)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def _serve(
    opts: ShareOptions,
    reporter: Reporter,
    paths: list[Path],
    home: Path,
    name: str,
    record: ShareRecord | None,
    listen: list[str],
    fallback: list[str] | None,
) -> int:
    from p2pshare.node.api import Node, NodeConfig
    from p2pshare.node.autonat.client import AutoNATConfig
    from p2pshare.node.community import RelayServiceMode
    from p2pshare.node.config import load_network_config
    from p2pshare.node.events import AddressesChanged
    from p2pshare.transfer.events import (
        ReceiverConnected,
        ReceiverFailed,
        ReceiverFinished,
        ReceiverProgress,
        StoppedServingFile,
    )

    # The identity it ran as before (its codes name that peer), else the
    # usual one; another one when a running process holds it (two processes
    # as one peer: a relay reaches only one of them).
    base = home / IDENTITY_FILE_NAME
    wanted = home / record.identity if record is not None and record.identity else base
    identity = opts.identity or wanted
    fallbacks = () if opts.identity else identity_slots(base)
    done_receivers = 0
    kept_record: list[ShareRecord | None] = [None]  # as saved: a short code that dies leaves it
    stopping = False  # set once the share stops: receivers still running are cut off by it
    finished = trio.Event()
    shown: ShareCode | None = None  # the last code printed (a newer one when the machine moved)
    by_dht = False  # receivers can look the sharer up (a moved sharer is found there)

    # The code must be the first line of stdout: NAT events wait until it is out.
    held: list[NodeEvent] | None = []

    receivers = SendingDisplay(reporter)

    def on_event(event: NodeEvent) -> None:
        nonlocal done_receivers, shown
        if isinstance(event, ReceiverProgress):
            peer = _b58(event.peer)
            reporter.event("receiver_progress", peer_id=peer, bytes=event.bytes_sent, total=event.total_bytes)
            receivers.update(peer, event.bytes_sent, event.total_bytes)
        elif isinstance(event, ReceiverConnected):
            peer = _b58(event.peer)
            reporter.event("receiver_connected", peer_id=peer)
            reporter.say(f"Receiver …{peer[-8:]} connected")
        elif isinstance(event, ReceiverFinished):
            peer = _b58(event.peer)
            reporter.event("receiver_done", peer_id=peer, bytes=event.bytes_sent, seconds=round(event.seconds, 3))
            rate = event.bytes_sent / event.seconds if event.seconds > 0 else 0.0
            receivers.remove(peer)
            reporter.say(
                f"Receiver …{peer[-8:]} finished ({human_bytes(event.bytes_sent)} sent "
                f"in {format_seconds(event.seconds)}, {human_bytes(rate)}/s)"
            )
            done_receivers += 1
            if opts.once:
                finished.set()
        elif isinstance(event, StoppedServingFile):
            reporter.event("file_unavailable", path=event.path, reason=event.reason.label, detail=event.detail)
            reporter.say(
                f"Stopped serving {event.path}: {event.detail}; receivers still get the other files "
                "(share again to serve its new content)"
            )
        elif isinstance(event, ReceiverFailed):
            peer = _b58(event.peer)
            reporter.event("receiver_failed", peer_id=peer, reason=event.reason)
            receivers.remove(peer)
            # A connection that ended early: the receiver's own advice ("run the same command again") is not ours.
            if event.ended is None:
                reporter.say(f"Receiver …{peer[-8:]} stopped: {event.reason}")
            elif stopping and event.share_id is not None:  # cut by our stop, not a stranger
                reporter.say(f"Receiver …{peer[-8:]} did not finish before the stop; it resumes when you share again")
            else:
                why = f"{event.ended} before the transfer finished"
                reporter.say(f"Receiver …{peer[-8:]} stopped: {why} (it can resume with the same code)")
        elif held is not None:
            held.append(event)
        elif isinstance(event, AddressesChanged) and shown is not None and (moved := moved_code(shown, event.addrs)):
            shown = moved
            reporter.event("addresses", addrs=list(event.addrs), code=moved.encode())
            reporter.say(
                "This machine's addresses changed (another network?). Receivers with the code above still find it "
                "through the DHT; one that cannot needs this code, which names the new addresses:"
                if by_dht
                else "This machine's addresses changed (another network?): the code above names the old ones. "
                "Give receivers this code:"
            )
            reporter.say(moved.encode())  # stderr: stdout keeps its one line, the first code
        else:
            _report_traversal(reporter, event)

    def on_short_event(event: ShortCodeEvent) -> None:
        if share_short.report(reporter, event, opts.code_tries) and kept_record[0] is not None:
            save_record(home, paths, name, dataclasses.replace(kept_record[0], short_code=None, short_expires=None))

    net = load_network_config(
        home,
        bootstrap=list(opts.bootstrap),
        relays=list(opts.relays),
        no_default_bootstrap=opts.no_default_bootstrap,
        no_mdns=opts.no_mdns,
    )
    config = NodeConfig(
        # Servers: the relays, and peers met that serve AutoNAT (AutoRelay).
        autonat=AutoNATConfig(),
        relay_service=RelayServiceMode(opts.relay_service),
        autorelay=opts.autorelay,
        autonat_server=True,
        identity_path=identity,
        identity_fallbacks=fallbacks,
        listen_addrs=listen,
        fallback_listen_addrs=fallback,
        relays=net.relays,
        bootstrap=net.bootstrap,
        peers_file=net.peers_file,
        mdns=net.mdns,
    )
    with stop_signals() as signals:
        async with Node(config, on_event=on_event) as node:
            info = await node.start_sharing(
                name or None,
                opts.description,
                paths,
                opts.sharer or None,
                key=record.key if record else None,
                human_code=record.human_code if record else None,
                hash_cache=None if opts.description == TEXT_MARK else home / "hash-cache",
            )
            port = first_tcp_port(node.addresses())
            used = node.identity_path
            stand_in = used if record is not None and used is not None and used != identity else None  # busy
            kept = share_short.reusable(record, time.time())  # the last run's short code, if it lasts
            offer = (
                node.offer_short_code(
                    info,
                    tries=opts.code_tries,
                    ttl=kept[1] if kept else opts.code_ttl,
                    on_event=on_short_event,
                    code=kept[0] if kept else None,
                )
                if node.uses_dht
                else None
            )
            if opts.description != TEXT_MARK and stand_in is None:  # a text share is new each time
                as_id = used.name if used is not None and not opts.identity and used.parent == home else None
                short = (str(offer.code), time.time() + (kept[1] if kept else opts.code_ttl)) if offer else (None, None)
                saved = ShareRecord(info.code.encryption_key, info.code.share_code, port, as_id, *short)
                save_record(home, paths, name, saved)
                kept_record[0] = saved
                await trio.to_thread.run_sync(prune_records, home)
            code = info.encode()
            legacy = info.legacy.encode() if info.legacy else None
            reporter.event(
                "shared",
                code=code,
                legacy_code=legacy,
                share_code=info.code.share_code,
                reused=record is not None,
                peer_id=node.peer_id,
                addresses=list(info.code.addresses),
                short_code=str(offer.code) if offer else None,
                short_code_tries=opts.code_tries if offer else None,
                short_code_ttl=round(kept[1] if kept else opts.code_ttl) if offer else None,
            )
            reporter.result(code)
            shown = info.code
            by_dht = node.uses_dht
            if offer is not None:
                reporter.say(
                    f"Short code: {offer.code} (found through the DHT; valid for {human_duration(opts.code_ttl)}, "
                    f"refused after {opts.code_tries} wrong {'try' if opts.code_tries == 1 else 'tries'})"
                )
            else:
                reporter.say("No short code: it is found through the DHT, and this node uses none (--bootstrap)")
            if opts.qr:
                reporter.qr(code)
            for ev in held or ():
                _report_traversal(reporter, ev)
            held = None
            for warning in net.warnings:
                reporter.warning(warning)
            if not has_route():
                reporter.warning(f"{OFFLINE}: receivers on other machines cannot reach it until it is connected")

            async def report_listing() -> None:
                """What was shared, once listed (a large tree: after the code)."""
                prep = info.preparation
                if not prep.scanned.is_set():
                    reporter.status("Listing the files (receivers can connect and wait)…")
                    await prep.scanned.wait()
                if prep.scan is None:
                    return  # the listing failed: said when the preparation ends
                for warning in prep.scan.warnings:
                    reporter.warning(warning)
                reporter.say(
                    f"Sharing {format_count(len(prep.scan.files), 'file')}, {human_bytes(prep.scan.total_bytes)}, "
                    f"as {name or (paths[0].name if len(paths) == 1 else 'shared files')!r} "
                    f"(code {info.code.share_code}); peer {node.peer_id}"
                )
                if stand_in is not None:
                    reporter.warning(
                        f"{identity.name} is held by another running p2pshare process, so this share runs as "
                        f"another peer ({stand_in.name}): codes handed out before name the other peer; give the code above"
                    )
                elif record is not None:
                    reporter.say(
                        "Reusing the code of an earlier share of these paths, so receivers can resume "
                        "(--new-code gives a new one)"
                    )
                if legacy:
                    reporter.say(f"Legacy code (direct address only): {legacy}")
                either = " (or the short code)" if offer is not None else ""
                reporter.say(f"Send the code above{either} to the receiver. Ctrl-C stops sharing.")

            async with trio.open_nursery() as nursery:

                async def stop_on_signal() -> None:
                    await signals.received(1)  # one that came while the node started counts too
                    nursery.cancel_scope.cancel()

                async def stop_when_done() -> None:
                    await finished.wait()
                    nursery.cancel_scope.cancel()

                async def report_ready(info: ShareInfo, reporter: Reporter) -> None:
                    await report_listing()
                    await _report_preparation(info, reporter)
                    if info.preparation.error is not None:
                        nursery.cancel_scope.cancel()  # nothing to serve: say why and exit

                if opts.description != TEXT_MARK:  # a share running for months keeps its record
                    nursery.start_soon(keep_record_fresh, home, paths, name)
                nursery.start_soon(stop_on_signal)
                nursery.start_soon(stop_when_done)
                nursery.start_soon(report_ready, info, reporter)
            stopping = True
            await _stop_sharing(node, info, signals, reporter)
            if info.preparation.error is not None:
                raise info.preparation.error
    reporter.event("stopped", receivers_completed=done_receivers)
    reporter.say("Stopped sharing.")
    return 0


async def _stop_sharing(node: Node, info: ShareInfo, signals: StopSignals, reporter: Reporter) -> None:
    """Withdraw the share and give its receivers ``STOP_GRACE`` to hear it;
    a Ctrl-C (or SIGTERM) meanwhile, the second one when a signal stopped
    the share, ends that wait at once: a person who presses it again wants
    out now, not after a receiver that does not read."""
    from p2pshare.node.api import STOP_GRACE  # loaded by now: the node runs

    # A signal stopped the share (any signal does): the second one quits;
    # else (--once done) the first. Counted from the start, not from now.
    quit_at = 2 if signals.count else 1
    waiting = node.registry.live_sessions(info.share_id)  # no checkpoint before stop_sharing counts them too
    if waiting:
        reporter.event("stopping", receivers=waiting)
        reporter.status(
            f"Stopping: telling {format_count(waiting, 'receiver')} (up to {STOP_GRACE:.0f} s; Ctrl-C again quits now)"
        )
    async with trio.open_nursery() as nursery:

        async def on_signal() -> None:
            await signals.received(quit_at)
            nursery.cancel_scope.cancel()

        nursery.start_soon(on_signal)
        await node.stop_sharing(info)
        nursery.cancel_scope.cancel()


async def _report_preparation(info: ShareInfo, reporter: Reporter) -> None:
    """Say when hashing (after the code) is done; on a terminal, how far it got."""
    prep = info.preparation
    with trio.move_on_after(0.3):  # a small share: no "preparing" line at all
        await prep.ready.wait()
    if not prep.ready.is_set():
        reporter.status("Preparing (hashing the files; receivers can connect and wait)…")
    while not prep.ready.is_set():
        with trio.move_on_after(1.0):
            await prep.ready.wait()
        p = prep.progress
        if not prep.ready.is_set() and p.total:
            reporter.event("preparing", done=p.done, total=p.total)
    if prep.error is not None:
        return
    p = prep.progress
    assert prep.scan is not None  # hashed, so listed
    n = len(prep.scan.files)
    reporter.event("ready", seconds=round(prep.seconds, 3), cached_files=p.cached_files, files=n)
    cached = f", {p.cached_files} unchanged since the last share" if p.cached_files else ""
    reporter.say(f"Ready: {format_count(n, 'file')} hashed in {format_seconds(prep.seconds)}{cached}")


def moved_code(code: ShareCode, addrs: Sequence[str]) -> ShareCode | None:
    """``code`` naming ``addrs`` when this machine's direct addresses are
    not the ones ``code`` names (it moved to another network), else None.

    Relayed addresses alone changing gives no new code: a receiver finds
    the relay through the DHT, and a reservation that comes and goes would
    print code after code. None as well when no direct address is left (the
    machine is offline: nothing to hand out) or the addresses make no valid
    code (too many)."""
    from p2pshare.sharecode import ShareCodeError

    try:
        new = code.with_addresses(addrs)
    except ShareCodeError:
        return None
    direct = {a for a in new.addresses if not is_circuit(a)}
    if not direct or direct == {a for a in code.addresses if not is_circuit(a)}:
        return None
    return new


def _report_traversal(reporter: Reporter, ev: NodeEvent) -> None:
    """Sharer-side NAT facts as JSON events (and a human line on upgrades)."""
    from p2pshare.node.dcutr.policy import Upgraded, UpgradeFailed
    from p2pshare.node.events import (
        AddressesChanged,
        NatDiscovered,
        ReachabilityChanged,
        RelaysChanged,
        RelayServiceChanged,
    )

    if isinstance(ev, AddressesChanged):
        reporter.event("addresses", addrs=list(ev.addrs))
    elif isinstance(ev, NatDiscovered):
        reporter.event("nat", mapping=ev.mapping, public=ev.public, punchable=ev.punchable)
    elif isinstance(ev, ReachabilityChanged):
        reporter.event("reachability", reachability=ev.reachability, confirmed=ev.confirmed, addrs=list(ev.addrs))
    elif isinstance(ev, RelaysChanged):
        reporter.event("relays", addrs=list(ev.addrs))
    elif isinstance(ev, RelayServiceChanged):
        reporter.event("relay_service", serving=ev.serving, reason=ev.reason)
        reporter.say(f"{'Relaying' if ev.serving else 'Stopped relaying'} for others ({ev.reason})")
    elif isinstance(ev, Upgraded):
        reporter.event("upgraded", peer_id=ev.peer_id, method=ev.method, seconds=round(ev.elapsed, 3))
        reporter.say(f"Connection to …{ev.peer_id[-8:]} upgraded to direct ({ev.method})")
    elif isinstance(ev, UpgradeFailed):
        reporter.event("upgrade_failed", peer_id=ev.peer_id, reason=ev.reason)


def human_duration(seconds: float) -> str:
    """``3600`` -> ``1h``, ``90`` -> ``1m30s``: how the flags spell it."""
    total = round(seconds)
    parts = [(total // 3600, "h"), (total % 3600 // 60, "m"), (total % 60, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n) or "0s"


def _b58(peer: bytes) -> str:
    import base58

    return base58.b58encode(peer).decode()


__all__ = ["ShareOptions", "run_share", "check_paths", "forget_record"]
