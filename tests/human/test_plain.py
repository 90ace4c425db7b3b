"""Error lines a person can act on: short, with the next step; details with -v."""

from __future__ import annotations

import pytest

from p2pshare.node.plain import MAX_PLAIN_CHARS, plain_message

NESTED = (
    "could not reach the sharer: direct: could not reach 12D3KooWHmbK2nwTXjHSKYE7KAjdYmDjQg4CXb5pPdjLmq6j8RkF: "
    "/ip4/127.0.0.1/tcp/33409: SwarmException: fail to open connection to peer 12D3KooWHmbK2nwTXjHSKYE7KAjdYmDjQg4CXb5"
    "pPdjLmq6j8RkF (ExceptionGroup: all attempts to connect to 127.0.0.1:33409 failed (1 sub-exception))"
)


def test_a_gone_sharer_is_one_short_line_with_a_next_step() -> None:
    short = plain_message(NESTED)
    assert short is not None and len(short) < 200
    assert "Exception" not in short and "12D3" not in short
    assert short.startswith("could not reach the sharer") and "try again" in short


def test_another_peer_at_the_sharers_address_is_named() -> None:
    """The code names a peer, and another answers there (found by review:
    this read "nothing answered at its addresses")."""
    wrong = NESTED.replace(
        "(ExceptionGroup: all attempts",
        "(PeerIDMismatchesPubkey: peer id does not correspond to the received pubkey: all attempts",
    )
    short = plain_message(wrong)
    assert short is not None and "another peer answers at its address" in short and "nothing answered" not in short


def test_the_dht_is_named_when_it_was_asked() -> None:
    short = plain_message("could not reach the sharer: the DHT knows no peer serving this share")
    assert short is not None and "in the DHT" in short


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        ("lost the sharer (reset) and could not reach it again: x; run the same command again", "resume"),
        (
            "the sharer made no progress for 60 s (TimeoutError: ...); run the same command again",
            "no verified data from the sharer for 60 s",
        ),
    ],
)
def test_known_chains(message: str, fragment: str) -> None:
    short = plain_message(message)
    assert short is not None and fragment in short and "TimeoutError" not in short


def test_short_plain_messages_are_left_alone() -> None:
    assert plain_message("output directory /x is not writable") is None


def test_long_plain_messages_are_kept_whole() -> None:
    files = "2 of 9 files received into out; not received: " + ", ".join(f"d/f{i}.bin (changed)" for i in range(7))
    assert plain_message(files) is None


def test_nested_unknown_chains_are_cut_to_their_first_clause() -> None:
    assert plain_message("relay said no: OSError: [Errno 111] refused") == "relay said no"
    assert len(plain_message("y" * 400 + " OSError: z") or "") == MAX_PLAIN_CHARS


def test_offline_is_said_without_the_chain_that_stays_in_the_message() -> None:
    from p2pshare.node.online import OFFLINE_UNREACHABLE

    message = f"{OFFLINE_UNREACHABLE} (what was tried: could not reach the sharer: direct: SwarmException: ...)"
    assert plain_message(message) == OFFLINE_UNREACHABLE


def test_a_short_codes_unreachable_sharer_says_what_to_do() -> None:
    """It said "found a sharer of short code 8841-… but could not reach it
    (-v for details)": no next step (a README walk-through, stop 45)."""
    short = plain_message(
        "found a sharer of short code 8841-… but could not reach it: could not reach the sharer: direct: "
        "could not reach 12D3KooW…: /ip4/127.0.0.1/tcp/4000: SwarmException: fail to open connection"
    )
    assert short == (
        "found a sharer of short code 8841-… but could not reach it; it may have stopped sharing or be offline — "
        "ask the sharer to keep `p2pshare share` running, and try again"
    )
