"""The command line's argument types and usage-error hints (split from
``cli``, which builds the parser and runs the commands)."""

from __future__ import annotations

import argparse
import math

PROG = "p2pshare"


def code_tries(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 20:
        raise argparse.ArgumentTypeError("must be 1 to 20")
    return value


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def duration(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``1h``, ``1h30m``: seconds, at most a day."""
    import re

    spelled = text.strip().lower()
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)([smh]?))+", spelled)
    if not parts:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (like 90s, 10m, 1h)")
    seconds = sum(float(n) * _UNITS[u or "s"] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smh]?)", spelled))
    if not 1 <= seconds <= 24 * 3600:
        raise argparse.ArgumentTypeError("must be 1s to 24h")
    return seconds


#: The longest ``get --timeout``: "inf" or 1e308 were taken and printed as
#: "up to inf s" or a 309-digit number (a usability review, stop 44).
MAX_TIMEOUT = 7 * 24 * 3600.0


def positive_float(text: str) -> float:
    """Seconds (``90``, ``2.5``) or a duration as ``--code-ttl`` takes it (``90s``, ``10m``)."""
    try:
        value = float(text)
    except ValueError:
        if text.strip()[-1:].lower() in _UNITS:
            return duration(text)
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (seconds, or 90s, 10m, 1h)") from None
    if math.isnan(value):
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    if value > MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"at most {MAX_TIMEOUT:.0f} s (7 days)")
    return value


def help_for(parser: argparse.ArgumentParser, prog: str, args: list[str]) -> str:
    """Whose ``--help`` to point at: argparse reports flags a command does
    not know (``relay --bogus``) from the top-level parser, whose help does
    not list them; the command's help does."""
    if prog != PROG:
        return prog
    commands = next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})
    command = next((a for a in args if not a.startswith("-")), None)
    return f"{PROG} {command}" if command in commands else prog


def option_before_command(parser: argparse.ArgumentParser, args: list[str]) -> tuple[str, str] | None:
    """(option, command) for an option of the command written before it
    (``p2pshare --json get X`` said "unrecognized arguments: --json (see
    p2pshare get --help)", whose help lists --json: a usability review)."""
    commands = next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    at = next((i for i, a in enumerate(args) if a in commands), None)
    if at is None:
        return None
    known = commands[args[at]]._option_string_actions
    option = next((a.split("=", 1)[0] for a in args[:at] if a.split("=", 1)[0] in known), None)
    return (option, args[at]) if option and option not in parser._option_string_actions else None


__all__ = ["MAX_TIMEOUT", "PROG", "code_tries", "duration", "help_for", "option_before_command", "positive_float"]
