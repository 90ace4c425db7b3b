"""Errors of the node layer, placed on the branches of ``p2pshare.errors``.

Local errors are the user's or this machine's (bad input, unwritable output);
remote errors come from the network or the peer. Every message is one line.
The CLI maps the branches to exit codes (``p2pshare.cli.EXIT_CODES``).
"""

from __future__ import annotations

from p2pshare.errors import LocalError, RemoteError

__all__ = ["LocalNodeError", "PeerUnreachableError", "RelayLimitedError"]


class LocalNodeError(LocalError):
    """Something on this side: usage, paths, identity, listen address."""


class PeerUnreachableError(RemoteError):
    """The sharer could not be found or reached in time."""


class RelayLimitedError(RemoteError):
    """Only a limited relayed connection reaches the sharer, and it was cut."""
