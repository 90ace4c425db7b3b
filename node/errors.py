"""Errors of the node layer, each with the CLI exit code it maps to.

Local errors are the user's or this machine's (bad input, unwritable output);
remote errors come from the network or the peer. Every message is one line.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3
EXIT_AUTH_OR_INTEGRITY = 4
EXIT_INTERRUPTED = 130


class NodeError(Exception):
    """Base: ``str(err)`` is one line meant for the user."""

    exit_code = EXIT_BAD_INPUT


class LocalNodeError(NodeError):
    """Something on this side: usage, paths, identity, listen address."""

    exit_code = EXIT_BAD_INPUT


class RemoteNodeError(NodeError):
    """Something on the network side."""

    exit_code = EXIT_UNREACHABLE


class PeerUnreachableError(RemoteNodeError):
    """The sharer could not be found or reached in time."""

    exit_code = EXIT_UNREACHABLE


class RelayLimitedError(RemoteNodeError):
    """Only a limited relayed connection reaches the sharer, and it was cut."""

    exit_code = EXIT_UNREACHABLE
