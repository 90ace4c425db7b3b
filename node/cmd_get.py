"""``p2pshare get``: reach the sharer, show what it shares, ask, fetch, verify.

Before anything is written the receiver sees the share (name, sharer, file
count, size, the first files) and the free space; a share that cannot fit
is refused (exit 5), and a person at a terminal is asked y/N unless
``--yes`` (exit 6 on no). The decisions are :mod:`p2pshare.node.consent`'s;
this module only measures, prints and reads the answer.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import trio

from p2pshare import sharecode
from p2pshare.errors import Interrupted, Terminated
from p2pshare.node import consent
from p2pshare.node._output import Reporter, human_bytes
from p2pshare.node.errors import PeerUnreachableError
from p2pshare.node.online import OFFLINE, OFFLINE_UNREACHABLE, has_route
from p2pshare.node.progress import format_count, format_seconds
from p2pshare.node.textshare import is_text_share, printable
from p2pshare.sharecode.pasted import unwrap_pasted
from p2pshare.transfer import leftovers
from p2pshare.transfer.paths import PARTIAL_DIR_NAME

if TYPE_CHECKING:
    from p2pshare.transfer.manifest import Manifest
    from p2pshare.transfer.store import Need
from p2pshare.sharecode.short import ShortCode, looks_like_short_code, parse_short_code

log = logging.getLogger(__name__)


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
    no_mdns: bool = False  # no local discovery (mDNS)
    force_relay: bool = False
    json: bool = False
    yes: bool = False  # receive without asking (the fit check still applies)
    on_conflict: str = "refuse"  # a file there with other content: refuse, overwrite or rename


AnyCode = sharecode.ShareCode | sharecode.LegacyCode | ShortCode


def parse_any_code(text: str) -> AnyCode:
    """A short code (it starts with a digit), a v1 code or a legacy one."""
    if looks_like_short_code(text):
        return parse_short_code(text)
    return sharecode.parse_code(text)


def run_get(opts: GetOptions, reporter: Reporter) -> int:
    code = parse_any_code(unwrap_pasted(opts.code))  # bad codes (unknown words too) fail before slow imports
    made = _missing_dirs(opts.output)  # what this run will create, the output first
    text_dir: list[Path] = []  # where a text share is received (see ``destination``)
    try:
        return trio.run(_get, opts, reporter, code, text_dir)
    finally:
        # Refused, interrupted at the prompt, unreachable, or a text (printed,
        # never a file): a directory this run created and left empty goes too.
        # rmdir removes only an empty one, so verified data kept for a resume
        # (.p2pshare-partial) stays.
        for directory in made:  # up to the first that is not empty (or not ours)
            try:
                directory.rmdir()
            except OSError:
                break
        for d in text_dir:
            shutil.rmtree(d, ignore_errors=True)


async def _get(opts: GetOptions, reporter: Reporter, code: AnyCode, text_dir: list[Path]) -> int:
    from p2pshare.node.api import Node, NodeConfig
    from p2pshare.node.events import Connected, NodeEvent, PathUpgraded, Waiting
    from p2pshare.transfer.errors import DeclinedError, IntegrityError, NoSpaceError, sanitize_text
    from p2pshare.transfer.events import (
        FilesCompleted,
        FileUnavailable,
        ManifestReceived,
        Progress,
        SharerPreparing,
        TransferCompleted,
    )
    from p2pshare.transfer.store import Conflict

    output = opts.output
    summary: dict[str, Any] = {}
    paths: list[str] = []
    dirs: list[str] = []  # named in the last line when no file is shared
    text_file: list[str] = []  # a text share's one file: printed, then removed
    approved: Manifest | None = None  # the share the person (or --yes) accepted
    changes = [0]  # times a reconnect offered another share than the one accepted
    # Only a person at a terminal is asked; --json is for programs.
    ask_on = None if opts.json else _question_stream()
    interactive = ask_on is not None

    async def approve(manifest: Manifest, needed: Need) -> None:
        """Show the share, refuse it if it cannot fit, ask unless --yes. A
        reconnect to the share accepted is not asked again; one that offers
        another (a sharer may seal any manifest with the key) is."""
        nonlocal approved
        again = approved is not None and manifest == approved
        text_file[:] = [manifest.files[0].path] if _is_text(manifest) else []  # printed, not stored
        first = [(sanitize_text(f.path), f.size) for f in manifest.files[: consent.SHOWN_FILES]]
        sharer = sanitize_text(manifest.sharer) if manifest.sharer else None
        share = consent.summary_of(
            sanitize_text(manifest.name),
            sharer,
            first,
            needed.bytes,
            file_count=len(manifest.files),
            total_bytes=manifest.total_bytes,
            description="" if _is_text(manifest) else _safe_lines(manifest.description),
            # Not on a reconnect to the share accepted: nothing is shown then.
            hidden=((), 0)
            if again
            else consent.hidden_tops((f.path for f in manifest.files), manifest.dirs, sanitize_text),
            dir_count=manifest.dir_count,
            here_bytes=needed.here,
        )
        free = _free_bytes(output)
        decision = consent.decide(share, free, assume_yes=opts.yes or again, interactive=interactive)
        if decision is consent.Decision.NO_SPACE:
            assert free is not None
            raise NoSpaceError(consent.no_space_message(share, free, str(output)))
        if again:
            return  # a reconnect: the person already said yes to this share
        if approved is not None:
            changes[0] += 1
            if changes[0] > MAX_SHARE_CHANGES:
                raise IntegrityError(
                    f"the sharer offered {changes[0] + 1} different shares under this code in one run; "
                    "stopped (each one's progress kept --timeout from running out)"
                )
            reporter.warning("after the reconnect the sharer offers another share than the one accepted")
        if text_file:
            approved = manifest  # a text is printed, not stored: no question
            return
        warning = consent.hidden_warning(share)
        if warning and opts.json:
            reporter.warning(warning)  # a program is told too (describe's lines are for people)
        for line in consent.describe(share, free):
            reporter.say(line)
            if decision is consent.Decision.ASK and ask_on is not sys.stderr:
                print(line, file=ask_on, flush=True)  # stderr goes to a log: the person reads it here
        if decision is consent.Decision.ASK:
            answer = await trio.to_thread.run_sync(  # type: ignore[call-arg]
                reporter.ask, consent.prompt_text(str(output.absolute())), ask_on, abandon_on_cancel=True
            )
            if not consent.parse_answer(answer):
                raise DeclinedError(
                    "not received: you declined the share; nothing was written"
                    if approved is None
                    else "not received: you declined the other share the sharer now offers; nothing of it was written"
                )
        elif not opts.yes and not opts.json:
            reporter.say("(receiving without asking: not run at a terminal; --yes skips this note)")
        approved = manifest

    shown_preparing = [-1]  # the last percentage said
    unavailable_said = [0]  # files the sharer stopped serving, so far

    def on_event(event: NodeEvent) -> None:
        if isinstance(event, Waiting):
            reporter.status(event.what)  # for people only: --json's first event stays `connected`
        elif isinstance(event, Connected):
            rtt = f", rtt {event.rtt_ms:.1f} ms" if event.rtt_ms is not None else ""
            reporter.event("connected", peer_id=event.peer_id, path=event.path.value, rtt_ms=event.rtt_ms)
            reporter.say(f"Connected to the sharer …{event.peer_id[-8:]} ({event.path}{rtt})")
            reporter.status("Connected; waiting for the list of files…")
        elif isinstance(event, PathUpgraded):
            reporter.event("upgraded", peer_id=event.peer_id, path=event.path.value, seconds=event.seconds)
            reporter.say(f"Upgraded the relayed connection: now {event.path} (after {event.seconds:.2f} s)")
        elif isinstance(event, SharerPreparing):
            reporter.event("preparing", done=event.done, total=event.total, percent=event.percent)
            # On a terminal every change redraws one line; in a log, a line per 10 %.
            step = 1 if reporter.bar is not None else 10
            if shown_preparing[0] < 0 or event.percent // step != shown_preparing[0] // step:
                shown_preparing[0] = event.percent
                reporter.status(f"The sharer is preparing: {event.percent}% (hashing its files; then the list comes)")
        elif isinstance(event, ManifestReceived):
            m = event.manifest
            have = f", {human_bytes(event.already_have_bytes)} already here" if event.already_have_bytes else ""
            paths[:] = [f.path for f in m.files]
            dirs[:] = m.dirs
            summary.update(already=event.already_have_bytes)
            if reporter.json_mode:  # every file: built only for --json (a manifest may list a million)
                reporter.event(
                    "manifest",
                    name=m.name,
                    sharer=m.sharer,
                    description="" if _is_text(m) else m.description,
                    files=len(m.files),
                    total=m.total_bytes,
                    already_have=event.already_have_bytes,
                    entries=[{"path": f.path, "size": f.size} for f in m.files],
                )
            if reporter.bar is not None and len(m.files) <= MAX_NAMED_FILES:
                reporter.files([(f.path, f.size) for f in m.files])  # sanitized when drawn
            if not text_file and (event.already_have_bytes or approved is None):  # else just listed
                reporter.say(
                    f"Receiving {sanitize_text(m.name)!r}: {format_count(len(m.files), 'file')}, {human_bytes(m.total_bytes)}{have}"
                )
            for warning in event.warnings:  # misleading names: received, but said
                reporter.warning(warning)
        elif isinstance(event, Progress):
            reporter.progress(event.bytes_verified, event.total_bytes)
        elif isinstance(event, FileUnavailable):
            reporter.event("file_unavailable", path=event.path, reason=event.reason.label)
            unavailable_said[0] += 1  # a line each for the first few: 20,000 notices were 20,000 lines
            if unavailable_said[0] <= SHOWN_UNAVAILABLE:
                shown = sanitize_text(event.path)  # the sharer's name for it: one printable line
                reporter.say(f"The sharer stopped serving {shown} ({event.reason.text}); receiving the rest")
            elif unavailable_said[0] == SHOWN_UNAVAILABLE + 1:
                reporter.say("The sharer stopped serving more files; the last line names how many")
        elif isinstance(event, TransferCompleted):
            summary.update(files=event.files, bytes=event.bytes, seconds=event.seconds)
        elif isinstance(event, FilesCompleted):
            summary.update(placed=True)

    # The receiver uses a fresh identity unless told otherwise: two downloads
    # at once never collide, and receivers are not linkable across shares.
    from p2pshare.node.config import data_home, load_network_config

    net = load_network_config(
        data_home(),
        bootstrap=list(opts.bootstrap),
        relays=list(opts.relays),
        no_default_bootstrap=opts.no_default_bootstrap,
        no_mdns=opts.no_mdns or opts.force_relay,  # a LAN peer met by mDNS would be dialled direct
    )
    for warning in net.warnings:
        reporter.warning(warning)
    config = NodeConfig(
        identity_path=opts.identity,
        listen_addrs=list(opts.listen) or ["/ip4/0.0.0.0/tcp/0"],
        relays=net.relays,  # for its NAT mapping; it reserves no slot on them (see NodeConfig.reserve)
        reserve=False,
        force_relay=opts.force_relay,
        bootstrap=net.bootstrap,
        peers_file=net.peers_file,
        mdns=net.mdns,
        autorelay=False,  # a receiver dials out; it needs no relay of its own
    )

    def destination(manifest: Manifest) -> Path:
        """A text share is received into a private temporary directory, never
        ``output``: the sharer names its one file, unasked, and it is printed
        and removed. In ``output`` it could meet a file of the receiver's of
        that name (overwritten with --overwrite; printed and deleted as if it
        were the text when identical, or when the text was renamed beside it)."""
        if not _is_text(manifest):
            return output
        if not text_dir:
            text_dir.append(Path(tempfile.mkdtemp(prefix="p2pshare-text-")))
        return text_dir[0]

    # Both signals are messages to this task, which cancels the work: the
    # cancel reaches every task, and nothing waits for a deadline. (trio's
    # own SIGINT handling raises KeyboardInterrupt in whatever task runs at
    # that instant: where it lands depends on timing, and in one CI run
    # ``get`` went on dialling for 20 s after SIGINT, until SIGTERM.)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            stopped_by: list[int] = []

            async def stop_on_signal() -> None:
                async for signum in signals:
                    stopped_by.append(signum)
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(stop_on_signal)
            reporter.status("Starting…")
            if not has_route():
                reporter.warning(f"{OFFLINE}; still trying: a sharer on the same network can be reached")
            async with Node(config, on_event=on_event) as node:
                try:
                    if isinstance(code, ShortCode):
                        reporter.event("short_code_lookup", number=code.number)
                        reporter.say(f"Looking up short code {code.redacted} in the DHT…")
                        from p2pshare.node.shortcode.search import RoundEnd

                        short = code

                        def looking_again(end: RoundEnd, left: float) -> None:
                            reporter.event("short_code_retry", why=end.value, seconds_left=round(left, 1))
                            yet = "could not reach a" if end is RoundEnd.UNREACHABLE else "found no"
                            reporter.status(
                                f"Short code {short.redacted}: {yet} sharer yet; looking again (up to {left:.0f} s)…"
                            )

                        code = await node.resolve_short_code(code, timeout=opts.timeout, on_retry=looking_again)
                    result = await node.start_receiving(
                        code,
                        output,
                        timeout=opts.timeout,
                        approve=approve,
                        conflict=Conflict(opts.on_conflict),
                        destination=destination,
                    )
                except PeerUnreachableError as exc:
                    if has_route():
                        raise
                    # The chain stays in the message (--json, -v); people see the first sentence.
                    raise PeerUnreachableError(f"{OFFLINE_UNREACHABLE} (what was tried: {exc})") from None
            nursery.cancel_scope.cancel()
    if stopped_by:
        # Before the person (or --yes) accepted the share, nothing was asked for yet.
        then = "run the same command again to resume" if approved is not None else "nothing was received"
        if stopped_by[0] == signal.SIGINT:
            raise Interrupted(f"interrupted; {then}")
        raise Terminated(f"terminated; {then}")
    if text_file:
        return _print_text(text_dir[0] / text_file[0], reporter)
    for path, name in result.transfer.renamed:
        reporter.event("renamed", path=path, saved_as=name)
        reporter.say(f"{sanitize_text(path)} exists with other content: saved as {sanitize_text(name)!r} beside it")
    seconds = float(summary.get("seconds") or 0.0)
    nbytes = int(summary.get("bytes") or 0)
    rate = nbytes / seconds if seconds > 0 else 0.0
    already = int(summary.get("already") or 0)
    placed = bool(summary.get("placed"))  # put in place by this run (maybe from an earlier run's data)
    was_here = bool(already and not nbytes and not placed)
    saved = consent.saved_paths(paths, result.transfer.renamed)
    where, saved_to = consent.landing(output, saved, dirs, here=was_here)
    reporter.event(
        "done",
        files=summary.get("files"),
        bytes=nbytes,
        already_had=already,
        seconds=round(seconds, 3),
        mb_per_s=round(rate / 1e6, 1),
        output=str(output),
        saved_to=str(saved_to),
    )
    files = format_count(int(summary.get("files") or 0), "file")
    if was_here:  # "Received 0 B (0 B/s)" read as a failure
        reporter.result(f"Already here: {files}, {human_bytes(already)} {where}, all verified; nothing to receive")
    elif already and not nbytes:  # placed now (--rename after a refusal, say): not "Already here"
        reporter.result(
            f"Finished {files}, {human_bytes(already)} {where}, all verified; the data came in an earlier run"
        )
    else:
        resumed = f"; {human_bytes(already)} were already here" if already else ""
        reporter.result(
            f"Received {files}, {human_bytes(nbytes)} in {format_seconds(seconds)} "
            f"({human_bytes(rate)}/s) {where}, all verified{resumed}"
        )
    _mention_forgotten(output, reporter)
    return 0


def _mention_forgotten(output: Path, reporter: Reporter) -> None:
    """Say so when downloads left unfinished long ago hold space in ``output``."""
    from p2pshare.transfer.errors import sanitize_text

    old = leftovers.forgotten(leftovers.scan(output), time.time())
    if old is None:
        return
    where = output / PARTIAL_DIR_NAME
    reporter.event("forgotten_downloads", downloads=old.downloads, bytes=old.size, path=str(where))
    reporter.say(
        f"note: {sanitize_text(str(where))} holds {human_bytes(old.size)} from {format_count(old.downloads, 'download')} "
        "left unfinished for over a week; run the same get again to resume, or delete what you no longer want there"
    )


def _question_stream() -> TextIO | None:
    """Where a person at a terminal is asked: stderr when it is the terminal;
    else (``2>log``, ``2>&1 | tee log``) the controlling terminal, as ssh and
    sudo ask; nowhere when stdin is not a terminal (scripts proceed). Asked
    into a redirected stderr, the question was never seen and ``get`` waited."""
    if not sys.stdin.isatty():
        return None
    if sys.stderr.isatty():
        return sys.stderr
    try:
        return open("/dev/tty", "w", encoding="utf-8", errors="replace")  # noqa: SIM115 - lives as long as the process
    except OSError:
        return None


def _missing_dirs(output: Path) -> list[Path]:
    """``output`` and its parents that do not exist yet, ``output`` first."""
    missing: list[Path] = []
    path = output.absolute()
    while not os.path.lexists(path) and path.parent != path:
        missing.append(path)
        path = path.parent
    return missing


def _safe_lines(text: str) -> str:
    """``text`` with each line made safe to print (its line breaks kept)."""
    from p2pshare.transfer.errors import sanitize_text

    return "\n".join(sanitize_text(line) for line in text.splitlines())


#: Reconnects that may offer another share than the one accepted (a sharer
#: that changed its files and shared them again under the same code). A
#: hostile sharer offered a new share each time, with one chunk of progress,
#: and ``--timeout`` never ran out (a hostile-peer review, stop 44).
MAX_SHARE_CHANGES = 3
#: Files the sharer stopped serving named a line each as it happens (the
#: final error names a few and counts all); ``--json`` has an event for each.
SHOWN_UNAVAILABLE = 5


def _is_text(manifest: Manifest) -> bool:
    """A text share: one small file and no directory. A sealed manifest
    marked as text with 1,020 deep ``dirs`` had ~130,000 directories made
    in a temporary directory without a question (a hostile-peer review,
    stop 44); with directories it is a share like any other, and asked."""
    return not manifest.dirs and is_text_share(manifest.description, [(f.path, f.size) for f in manifest.files[:2]])


def _print_text(path: Path, reporter: Reporter) -> int:
    """Print a received text (stdout) and remove its file: the text was the point, not a file."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    finally:
        path.unlink(missing_ok=True)
    reporter.event("text", text=text)
    reporter.result(printable(text.removesuffix("\n")))
    return 0


#: Up to this many files the progress line names the large one being received.
MAX_NAMED_FILES = 10_000


def _free_bytes(output: Path) -> int | None:
    """Free bytes at ``output`` (created by then), None if it cannot be measured."""
    try:
        return shutil.disk_usage(output).free
    except OSError:
        return None
