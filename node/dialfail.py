"""Why a dial failed, kept per address (pure: no trio, no py-libp2p).

A failed dial used to become one string per address, joined: ``could not
reach 12D3…: /ip4/127.0.0.1/tcp/1: SwarmException: fail to open connection
to peer 12D3… (ExceptionGroup: all attempts to connect to 127.0.0.1:1
failed (1 sub-exception))``. A person reading that about their ``--relay``
needs four words of it: "connection refused at /ip4/127.0.0.1/tcp/1". So
:class:`DialFailure` keeps each address's failure with its
:class:`DialFailureKind`, read from the exception chain (the errno of the
socket error inside py-libp2p's exception groups, a timeout, a failed
handshake), and :func:`summary` says them in one line. The whole chain
stays in :attr:`DialFailure.detail` for ``-v``.
"""

from __future__ import annotations

import enum
import errno
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from p2pshare.node.plain import plain_message

__all__ = ["DialFailure", "DialFailureKind", "classify", "describe", "summary"]


class DialFailureKind(enum.Enum):
    """What went wrong at one address; the value is how a person reads it."""

    REFUSED = "connection refused"
    TIMED_OUT = "no answer"
    UNREACHABLE = "no route"
    RESET = "connection reset"
    HANDSHAKE = "security handshake failed"
    #: The Noise handshake proved another key than the ``/p2p/`` peer ID
    #: names: a typo in the ID, or another node now on that address.
    WRONG_PEER = "a different peer answers"
    OTHER = "failed"


@dataclass(frozen=True)
class DialFailure:
    """One address that was dialled and did not connect."""

    addr: str
    kind: DialFailureKind
    #: The exception chain in one line (for ``-v`` and ``--json``).
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind.value} at {self.addr}"


_BY_ERRNO = {
    errno.ECONNREFUSED: DialFailureKind.REFUSED,
    errno.ETIMEDOUT: DialFailureKind.TIMED_OUT,
    errno.EHOSTUNREACH: DialFailureKind.UNREACHABLE,
    errno.ENETUNREACH: DialFailureKind.UNREACHABLE,
    errno.EADDRNOTAVAIL: DialFailureKind.UNREACHABLE,
    errno.ECONNRESET: DialFailureKind.RESET,
    errno.EPIPE: DialFailureKind.RESET,
    errno.ECONNABORTED: DialFailureKind.RESET,
}
#: Exceptions looked at in one chain (causes, contexts, group members).
_MAX_WALK = 32


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and the members of exception groups."""
    todo: list[BaseException] = [exc]
    seen: set[int] = set()
    while todo and len(seen) < _MAX_WALK:
        cur = todo.pop(0)
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        yield cur
        if isinstance(cur, BaseExceptionGroup):
            todo.extend(cur.exceptions)
        todo.extend(e for e in (cur.__cause__, cur.__context__) if e is not None)


def classify(exc: BaseException) -> DialFailureKind:
    """The kind of a dial's failure, from the first telling exception in its chain."""
    named = DialFailureKind.OTHER
    for cur in _chain(exc):
        if isinstance(cur, OSError) and cur.errno in _BY_ERRNO:
            return _BY_ERRNO[cur.errno]  # the socket's own word beats any wrapper's
        name = type(cur).__name__
        if name == "PeerIDMismatchesPubkey":  # py-libp2p's Noise, under its handshake wrappers
            return DialFailureKind.WRONG_PEER
        if named is DialFailureKind.OTHER:
            if isinstance(cur, TimeoutError) or name == "TooSlowError":
                named = DialFailureKind.TIMED_OUT
            elif "Handshake" in name or "Noise" in name or "Secur" in name:
                named = DialFailureKind.HANDSHAKE
    return named


def summary(failures: Sequence[DialFailure], most: int = 2, *, typed_id: bool = True) -> str:
    """The failures in one line: the first ``most`` addresses, then a count;
    where another peer answered, what to check (``typed_id``: only when a
    person gave the peer ID; not for a relay the node found itself)."""
    if not failures:
        return "no address answered"
    head = "; ".join(str(f) for f in failures[:most])
    rest = len(failures) - most
    line = f"{head} (and {rest} more address{'es' if rest > 1 else ''})" if rest > 0 else head
    if typed_id and any(f.kind is DialFailureKind.WRONG_PEER for f in failures):
        line += "; check the peer ID after /p2p/"
    return line


def describe(exc: BaseException, *, typed_id: bool = True) -> str:
    """One line for a person about a failed dial (its typed failures) or
    another failure on the way (a refusal's own words, a timeout);
    ``typed_id`` as for :func:`summary`."""
    failures: Sequence[DialFailure] = getattr(exc, "failures", ())
    if failures:
        return summary(failures, typed_id=typed_id)
    text = str(exc).strip()
    if not text:
        kind = classify(exc)
        return "no answer in time" if kind is DialFailureKind.TIMED_OUT else type(exc).__name__
    return plain_message(text) or text
