"""``p2pshare``: a thin command line over ``p2pshare.node.api.Node``.

Exit codes (:class:`ExitCode`): 0 success; 2 bad input; 3 sharer not found
or unreachable in time; 4 authentication or integrity failure; 5 the share
does not fit in the output directory (nothing written); 6 the receiver
declined the share at the prompt (nothing written); 130
interrupted (SIGINT); 143 terminated (SIGTERM); 1 internal error. They are
decided here only, from the error's class (:data:`EXIT_CODES`): the errors
themselves say what went wrong, not how a program should exit.
Every error is one line on stderr (and an ``error`` event with ``--json``).
Slow imports (py-libp2p takes ~1 s) happen only after the input is checked.
"""

from __future__ import annotations

import argparse
import enum
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn, assert_never

from p2pshare import sharecode
from p2pshare._cli_args import PROG, code_tries, duration, help_for, option_before_command, positive_float
from p2pshare._fdlimit import raise_fd_limit
from p2pshare.errors import Interrupted, LocalError, P2PShareError, ProtocolViolation, RemoteError, Terminated
from p2pshare.node import _libp2p_lean_import
from p2pshare.node._output import Reporter
from p2pshare.node._stderr_log import setup_logging
from p2pshare.node.cmd_get import GetOptions
from p2pshare.node.cmd_node import NodeOptions, add_node_parser
from p2pshare.node.cmd_share import ShareOptions
from p2pshare.node.identity import identity_file_arg
from p2pshare.node.plain import plain_message
from p2pshare.relay.cmd import RelayOptions, add_relay_parser
from p2pshare.sharecode.pasted import unwrap_pasted
from p2pshare.transfer.errors import AuthenticationError, DeclinedError, IntegrityError, NoSpaceError


class ExitCode(enum.IntEnum):
    OK = 0
    INTERNAL = 1
    BAD_INPUT = 2
    UNREACHABLE = 3
    AUTH_OR_INTEGRITY = 4
    NO_SPACE = 5
    DECLINED = 6
    INTERRUPTED = 130
    TERMINATED = 128 + signal.SIGTERM


#: Error class -> exit code. The first row the error is an instance of wins,
#: so narrower classes come before their branch; anything else is internal.
EXIT_CODES: Final[tuple[tuple[type[BaseException], ExitCode], ...]] = (
    (KeyboardInterrupt, ExitCode.INTERRUPTED),
    (Interrupted, ExitCode.INTERRUPTED),
    (Terminated, ExitCode.TERMINATED),
    (NoSpaceError, ExitCode.NO_SPACE),
    (DeclinedError, ExitCode.DECLINED),
    (LocalError, ExitCode.BAD_INPUT),
    (AuthenticationError, ExitCode.AUTH_OR_INTEGRITY),
    (IntegrityError, ExitCode.AUTH_OR_INTEGRITY),
    (ProtocolViolation, ExitCode.AUTH_OR_INTEGRITY),
    (RemoteError, ExitCode.UNREACHABLE),
)


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code an error ends the CLI with (:data:`EXIT_CODES`)."""
    for cls, code in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return ExitCode.INTERNAL


@dataclass(frozen=True)
class CodeShowOptions:
    """What ``p2pshare code show`` was asked to do."""

    code: str
    reveal_key: bool = False


CommandOptions = CodeShowOptions | ShareOptions | GetOptions | NodeOptions | RelayOptions


MAIN_EXAMPLES = """examples:
  p2pshare share ~/photos            # prints a code; keep it running
  p2pshare get CODE                  # on the other machine: shows the files, asks, downloads
  p2pshare share --help              # more examples per command"""

SHARE_EXAMPLES = """examples:
  p2pshare share ~/photos report.pdf           # several paths, one code
  p2pshare share ~/photos --sharer Ann --once  # your name shown; stop after one receiver
  p2pshare share ~/photos --new-code           # a new code instead of the earlier one
  p2pshare share ~/photos --qr                 # also a QR code of it, for a phone
  p2pshare share --text "door code 4711"       # a text; get prints it
  echo secret | p2pshare share --text -        # the text from stdin
  p2pshare share ~/photos --json | head -1     # the code as JSON, for scripts"""

GET_EXAMPLES = """examples:
  p2pshare get CODE                  # into the current directory, after you say yes
  p2pshare get CODE -o ~/Downloads   # into another directory
  p2pshare get CODE --yes            # no question (a share that does not fit is still refused)
  p2pshare get CODE --rename         # a file there with other content: keep it, save 'a (1).txt'
  p2pshare get CODE --overwrite      # ... or replace it
  p2pshare get CODE --json           # JSON lines: manifest (every file), progress, done
exit codes: 0 ok, 1 internal error, 2 bad input, 3 sharer not reachable or
stopped sharing, 4 authentication or integrity, 5 does not fit (nothing
written), 6 declined (nothing written), 130 interrupted, 143 terminated
(130 and 143: run the same command again to resume)"""


class UsageError(LocalError):
    """A command line argparse refused: ``main`` reports it like every other error."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # "the following arguments are required: command" told a person who
        # typed only `p2pshare` nothing of what to type (a README walk-through).
        if message == "the following arguments are required: command":
            message = "say what to do: share, get, code, node or relay"
        elif message == "the following arguments are required: show":
            message = "say what to do: show CODE"
        raise UsageError(message, self.prog)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Share files with anyone by handing over a code.",
        epilog=MAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
    p.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser(
        "share",
        help="share files and directories; prints the code first",
        description="Share files and directories until Ctrl-C; the code is the first line on stdout.",
        epilog=SHARE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("paths", nargs="*", metavar="PATH", type=Path)
    s.add_argument("--text", metavar="TEXT", help="send this text instead of files ('-': read it from stdin)")
    s.add_argument("--name", help="name shown to receivers")
    s.add_argument("--description", default="", help="description shown to receivers")
    s.add_argument("--sharer", default="", help="your name, shown to receivers")
    s.add_argument("--listen", action="append", metavar="MULTIADDR", help="listen address (repeatable)")
    s.add_argument("--identity", type=identity_file_arg, metavar="FILE", help="identity key file")
    s.add_argument(
        "--relay",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="circuit relay to reserve a slot on (repeatable; /p2p/<id> required)",
    )
    _add_network_flags(s)
    s.add_argument("--once", action="store_true", help="exit after one receiver has completed")
    s.add_argument(
        "--no-autorelay",
        action="store_true",
        help="reserve only on the relays given (--relay, relays =), never on relays found by the node",
    )
    s.add_argument(
        "--relay-service",
        choices=("off", "auto", "on"),
        default="off",
        help="relay transfers for others: auto = while AutoNAT confirms this node public (default off)",
    )
    s.add_argument(
        "--new-code", action="store_true", help="do not reuse the code of an earlier share of the same paths"
    )
    s.add_argument(
        "--code-tries",
        type=code_tries,
        default=3,
        metavar="N",
        help="refuse the short code after N failed attempts (default 3, at most 20)",
    )
    s.add_argument(
        "--code-ttl",
        type=duration,
        default=3600.0,
        metavar="DURATION",
        help="the short code expires after DURATION: 90s, 10m, 1h (default 1h, at most 24h)",
    )
    s.add_argument("--json", action="store_true", help="JSON lines on stdout")
    s.add_argument("--qr", action="store_true", help="also show the code as a QR code (stderr), for a phone")

    g = sub.add_parser(
        "get",
        help="download what a code shares",
        description="Show what a code shares, ask, then download and verify it (resumes if run again).",
        epilog=GET_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g.add_argument("code", metavar="CODE", help="the code: short (4127-guitar-ocean-velvet) or long")
    g.add_argument("-o", "--output", type=Path, default=Path("."), metavar="DIR", help="output directory (default .)")
    g.add_argument(
        "--timeout",
        type=positive_float,
        default=60.0,
        metavar="DURATION",
        help="give up when the sharer cannot be reached (or stalls) this long: 90, 90s, 10m (default 60 s)",
    )
    g.add_argument("--listen", action="append", metavar="MULTIADDR", help="listen address (repeatable)")
    g.add_argument("--identity", type=identity_file_arg, metavar="FILE", help="identity key file")
    g.add_argument(
        "--relay", action="append", default=[], metavar="MULTIADDR", help="circuit relay to use (repeatable)"
    )
    _add_network_flags(g)
    g.add_argument(
        "--force-relay",
        action="store_true",
        help="reach the sharer only through relays and keep the transfer there: no hole punching, "
        "no mDNS (for testing relays)",
    )
    g.add_argument("--json", action="store_true", help="JSON lines on stdout")
    conflicts = g.add_mutually_exclusive_group()
    conflicts.add_argument(
        "--overwrite",
        dest="on_conflict",
        action="store_const",
        const="overwrite",
        default="refuse",
        help="replace files that exist with other content (once the new one verified)",
    )
    conflicts.add_argument(
        "--rename",
        dest="on_conflict",
        action="store_const",
        const="rename",
        help="keep files that exist with other content; save the new ones as 'name (1).ext'",
    )
    g.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="receive without asking (a share that does not fit is still refused)",
    )

    c = sub.add_parser("code", help="inspect share codes")
    csub = c.add_subparsers(dest="code_command", metavar="show", required=True, parser_class=_Parser)
    cs = csub.add_parser(
        "show",
        help="print the decoded fields of a code as JSON",
        epilog="example:\n  p2pshare code show eyJhZGRy...   # peer, addresses; the key stays <redacted>",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cs.add_argument("code", metavar="CODE")
    cs.add_argument("--reveal-key", action="store_true", help="include the encryption key")
    add_relay_parser(sub)
    add_node_parser(sub)
    for command in [*sub.choices.values(), cs]:  # -v after the subcommand too
        command.add_argument("-v", "--verbose", dest="verbose_after", action="count", default=0, help=argparse.SUPPRESS)
    return p


def _add_network_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bootstrap",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="DHT bootstrap peer (repeatable); adds to the config file and defaults",
    )
    p.add_argument(
        "--no-default-bootstrap",
        action="store_true",
        help="do not join the public libp2p DHT (a closed group of your own nodes)",
    )
    p.add_argument(
        "--no-mdns",
        action="store_true",
        help="no local discovery: do not announce or look for peers on the LAN (mDNS)",
    )


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("p2pshare")
    except Exception:  # noqa: BLE001 - running from a source tree
        return "0+unknown"


def command_options(ns: argparse.Namespace) -> CommandOptions:
    """The one place a parsed ``Namespace`` becomes typed options; the
    ``node`` and ``relay`` commands read the flags their own parsers define."""
    if ns.command == "code":
        return CodeShowOptions(code=ns.code, reveal_key=ns.reveal_key)
    if ns.command == "share":
        return ShareOptions(
            paths=tuple(ns.paths),
            name=ns.name,
            description=ns.description,
            sharer=ns.sharer,
            listen=tuple(ns.listen or ()),
            identity=ns.identity,
            relays=tuple(ns.relay),
            bootstrap=tuple(ns.bootstrap),
            no_default_bootstrap=ns.no_default_bootstrap,
            no_mdns=ns.no_mdns,
            once=ns.once,
            new_code=ns.new_code,
            relay_service=ns.relay_service,
            autorelay=not ns.no_autorelay,
            code_tries=ns.code_tries,
            code_ttl=ns.code_ttl,
            json=ns.json,
            qr=ns.qr,
            text=ns.text,
        )
    if ns.command == "get":
        return GetOptions(
            code=ns.code,
            output=ns.output,
            timeout=ns.timeout,
            listen=tuple(ns.listen or ()),
            identity=ns.identity,
            relays=tuple(ns.relay),
            bootstrap=tuple(ns.bootstrap),
            no_default_bootstrap=ns.no_default_bootstrap,
            no_mdns=ns.no_mdns,
            force_relay=ns.force_relay,
            json=ns.json,
            yes=ns.yes,
            on_conflict=ns.on_conflict,
        )
    if ns.command == "node":
        return NodeOptions.from_namespace(ns)
    if ns.command == "relay":
        return RelayOptions.from_namespace(ns)
    raise AssertionError(f"unhandled command {ns.command}")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        ns = parser.parse_args(args)
        if ns.command == "share" and bool(ns.paths) == (ns.text is not None):
            raise UsageError(
                "share takes PATH... or --text, not both"
                if ns.paths
                else "share needs what to share: PATH... or --text TEXT",
                f"{PROG} share",
            )
    except UsageError as exc:  # one line, as every error (and the error event a --json caller reads)
        reporter = Reporter(json_mode="--json" in args)
        dashed = next((a for a in args if a.startswith("-") and a not in ("-", "--") and os.path.lexists(a)), None)
        hint = f"; a path that starts with -: put -- before it (-- {dashed})" if dashed else ""
        early = option_before_command(parser, args)
        if early and not hint:  # `p2pshare --json get X`: the flag is the command's
            hint = f"; {early[0]} goes after the command: {PROG} {early[1]} {early[0]} …"
        reporter.error(f"{exc}{hint} (see {help_for(parser, exc.prog, args)} --help)", ExitCode.BAD_INPUT)
        return int(ExitCode.BAD_INPUT)
    verbose = ns.verbose + getattr(ns, "verbose_after", 0)
    setup_logging(verbose, json_out=sys.stdout if getattr(ns, "json", False) else None)
    _libp2p_lean_import.install()  # before any command imports py-libp2p
    raise_fd_limit()
    reporter = Reporter(json_mode=bool(getattr(ns, "json", False)))
    try:
        return _dispatch(command_options(ns), reporter)
    except BaseException as exc:  # noqa: BLE001 - mapped to one line and an exit code
        leaf = _leaf(exc)
        if isinstance(leaf, (SystemExit, GeneratorExit)):
            raise
        return _report(leaf, reporter, verbose)
    finally:
        reporter.flush()  # --json warnings held for a first event that never came


def _dispatch(opts: CommandOptions, reporter: Reporter) -> int:
    match opts:
        case CodeShowOptions():
            return _cmd_code_show(opts)
        case ShareOptions():
            from p2pshare.node.cmd_share import run_share

            return run_share(opts, reporter)
        case GetOptions():
            from p2pshare.node.cmd_get import run_get

            return run_get(opts, reporter)
        case NodeOptions():
            from p2pshare.node.cmd_node import run_node

            return run_node(opts, reporter)
        case RelayOptions():
            from p2pshare.relay.cmd import run_relay

            return run_relay(opts, reporter)
    assert_never(opts)


def _leaf(exc: BaseException) -> BaseException:
    """trio wraps errors from nurseries in groups: find the one that matters."""
    while isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions if not _is_cancel(e)] or list(exc.exceptions)
        # Prefer an error we know how to explain over a secondary one.
        known = [e for e in inner if isinstance(_leaf(e), P2PShareError)]
        exc = (known or inner)[0]
    return exc


def _is_cancel(exc: BaseException) -> bool:
    import trio

    return isinstance(exc, trio.Cancelled)


def _report(exc: BaseException, reporter: Reporter, verbose: int = 0) -> int:
    code = exit_code_for(exc)
    details = exc.details() if isinstance(exc, P2PShareError) else {}
    if code is ExitCode.INTERNAL:
        logging.getLogger("p2pshare").debug("internal error", exc_info=exc)
        message = f"internal error: {type(exc).__name__}: {exc} (run with -vv for details)"
    elif isinstance(exc, KeyboardInterrupt):
        message = "interrupted"
    elif isinstance(exc, sharecode.ShortCodeError):
        message = f"bad short code: {exc}; check it with the sharer, or use the long code"
    elif isinstance(exc, sharecode.ShareCodeError):
        message = f"bad share code: {exc}; copy the whole code that `p2pshare share` printed first"
    else:
        message = str(exc)
    short = None if verbose else plain_message(message)
    # A short line for people; the whole message stays in the JSON event and with -v.
    reporter.error(message, code, human=f"{short} (-v for details)" if short else None, **details)
    return code


def _cmd_code_show(opts: CodeShowOptions) -> int:
    text = unwrap_pasted(opts.code)
    if sharecode.looks_like_short_code(text):
        short = sharecode.parse_short_code(text)  # checked offline: digits, word count, word list
        words = "-".join(short.words) if opts.reveal_key else sharecode.REDACTED
        fields: dict[str, object] = {"format": "short", "number": short.number, "words": words}
        print(json.dumps(fields, indent=2, sort_keys=True))
        return ExitCode.OK
    code = sharecode.parse_code(text)
    print(json.dumps(sharecode.describe(code, reveal_key=opts.reveal_key), indent=2, sort_keys=True))
    return ExitCode.OK
