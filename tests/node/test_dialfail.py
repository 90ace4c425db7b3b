"""Typed dial failures: the kind read from an exception chain, and the one
line a person reads (pure core: ``node.dialfail``)."""

from __future__ import annotations

import errno

import pytest

from p2pshare.node.dialfail import DialFailure, DialFailureKind, classify, describe, summary

K = DialFailureKind


class SwarmException(Exception):
    pass


class HandshakeFailure(Exception):
    pass


class PeerIDMismatchesPubkey(HandshakeFailure):  # py-libp2p's Noise names it so
    pass


class SecurityUpgradeFailure(Exception):
    pass


class TooSlowError(Exception):  # trio's name; the core does not import trio
    pass


def wrapped(inner: BaseException) -> BaseException:
    """As py-libp2p raises it: a SwarmException whose cause is a group of attempts."""
    group = ExceptionGroup("all attempts to connect to 127.0.0.1:1 failed", [inner])  # type: ignore[type-var]
    try:
        raise SwarmException("fail to open connection to peer 12D3Koo") from group
    except SwarmException as e:
        return e


@pytest.mark.parametrize(
    ("inner", "kind"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), K.REFUSED),
        (OSError(errno.EHOSTUNREACH, "No route to host"), K.UNREACHABLE),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), K.UNREACHABLE),
        (ConnectionResetError(errno.ECONNRESET, "reset"), K.RESET),
        (TimeoutError(), K.TIMED_OUT),
        (TooSlowError(), K.TIMED_OUT),
        (HandshakeFailure("bad signature"), K.HANDSHAKE),
        (PeerIDMismatchesPubkey("peer id does not correspond to the received pubkey"), K.WRONG_PEER),
        (ValueError("something else"), K.OTHER),
        (OSError(errno.ENOENT, "odd"), K.OTHER),
    ],
)
def test_the_kind_comes_from_inside_the_chain(inner: Exception, kind: DialFailureKind) -> None:
    assert classify(wrapped(inner)) is kind
    assert classify(inner) is kind


def test_the_socket_error_beats_a_wrapper_that_looks_like_a_timeout() -> None:
    try:
        raise TimeoutError("gave up") from ConnectionRefusedError(errno.ECONNREFUSED, "refused")
    except TimeoutError as e:
        assert classify(e) is K.REFUSED


def test_a_cyclic_or_endless_chain_is_walked_a_bounded_amount() -> None:
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert classify(a) is K.OTHER
    deep: BaseException = ConnectionRefusedError(errno.ECONNREFUSED, "refused")
    for i in range(100):
        deep = ExceptionGroup(f"level {i}", [deep])  # type: ignore[type-var]
    assert classify(deep) is K.OTHER  # past the walk's bound: not found, no hang


def test_summary_names_two_addresses_then_counts() -> None:
    fs = [DialFailure(f"/ip4/10.0.0.{i}/tcp/4001", K.REFUSED if i % 2 else K.TIMED_OUT) for i in range(1, 5)]
    assert summary(fs[:1]) == "connection refused at /ip4/10.0.0.1/tcp/4001"
    assert summary(fs) == (
        "connection refused at /ip4/10.0.0.1/tcp/4001; no answer at /ip4/10.0.0.2/tcp/4001 (and 2 more addresses)"
    )
    assert summary(fs[:3]).endswith("(and 1 more address)")
    assert summary([]) == "no address answered"


class FakeDialError(Exception):
    def __init__(self, message: str, failures: tuple[DialFailure, ...]) -> None:
        super().__init__(message)
        self.failures = failures


def test_describe_prefers_the_typed_failures_then_plain_words() -> None:
    typed = FakeDialError(
        "could not reach 12D3: /ip4/…: SwarmException: …", (DialFailure("/ip4/1.2.3.4/tcp/1", K.REFUSED),)
    )
    assert describe(typed) == "connection refused at /ip4/1.2.3.4/tcp/1"
    assert describe(TooSlowError()) == "no answer in time"
    assert describe(ValueError("the relay refused: RESERVATION_REFUSED")) == "the relay refused: RESERVATION_REFUSED"
    assert describe(KeyError()) == "KeyError"


def test_another_peer_answering_is_told_apart_from_a_failed_handshake() -> None:
    """py-libp2p wraps the mismatch in a security-upgrade failure whose name
    alone reads as a handshake failure; the mismatch inside decides."""
    try:
        try:
            raise PeerIDMismatchesPubkey("remote_peer=12D3KooWA, pubkey peer=12D3KooWB")
        except PeerIDMismatchesPubkey as inner:
            raise SecurityUpgradeFailure("handshake failed when upgrading to secure connection") from inner
    except SecurityUpgradeFailure as e:
        assert classify(wrapped(e)) is K.WRONG_PEER
    line = summary([DialFailure("/ip4/127.0.0.1/tcp/4001", K.WRONG_PEER)])
    assert line == "a different peer answers at /ip4/127.0.0.1/tcp/4001; check the peer ID after /p2p/"
    assert "check the peer ID" not in summary([DialFailure("/ip4/127.0.0.1/tcp/4001", K.HANDSHAKE)])
    # A relay the node found in the DHT: nobody typed an ID to check.
    found = summary([DialFailure("/ip4/127.0.0.1/tcp/4001", K.WRONG_PEER)], typed_id=False)
    assert found == "a different peer answers at /ip4/127.0.0.1/tcp/4001"
