"""The root of every p2pshare error, and its branches.

One tree, so a caller (the CLI above all) decides what a failure means by
asking which branch it is on, never by knowing every module's classes:

- :class:`LocalError`: this side's fault — bad input (a code, a path, a flag,
  a config or identity file) or a local resource (unwritable output, a port
  that cannot be bound). Running again unchanged fails the same way.
- :class:`RemoteError`: the peer's or the network's — unreachable, refused,
  failed to authenticate, data that does not verify, relay limits.
- :class:`ProtocolViolation` (a remote error): a peer sent bytes that break
  a protocol. Every wire codec's error derives from it.

Concrete classes live beside the code that raises them and may also derive
from a domain base (``TransferError``, ``HostError``) and from a builtin
their callers relied on before (``ValueError``, ``OSError``,
``ConnectionError``). Exit codes are not attributes here: the CLI maps
branches to exit codes in one table (``p2pshare.cli.EXIT_CODES``).

Pure: imports nothing of ours, so every package may import it.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["P2PShareError", "LocalError", "RemoteError", "ProtocolViolation", "Terminated"]


class P2PShareError(Exception):
    """Base of every error of ours; ``str(err)`` is one line meant for the user."""

    #: True when running the same command again may succeed (and resume).
    retryable: ClassVar[bool] = False

    def __init__(self, message: str = "") -> None:
        # Guarantee the one-line contract even if a raiser slips up (peer text,
        # wrapped library messages).
        super().__init__(" ".join(str(message).split()))

    def details(self) -> dict[str, object]:
        """Facts a script needs beside the message (JSON-safe), for the
        ``--json`` error event; most errors have none."""
        return {}


class LocalError(P2PShareError):
    """Something on this side: usage, paths, identity, config, output, listen."""


class RemoteError(P2PShareError):
    """Something on the network side: the peer, a relay, the path to them."""


class ProtocolViolation(RemoteError):
    """A peer sent bytes that break the protocol (malformed, oversized, out of place)."""


class Terminated(P2PShareError):
    """We were told to stop (SIGTERM) before the work was done."""


class Interrupted(P2PShareError):
    """Ctrl-C (SIGINT) before the work was done, taken as a message (exit 130).

    ``get`` receives SIGINT through trio's signal receiver and cancels its
    work, instead of letting trio raise ``KeyboardInterrupt`` in whatever
    task runs at that instant: where that lands depends on timing, and in
    one CI run ``get`` went on dialling for 20 s after SIGINT.
    """
