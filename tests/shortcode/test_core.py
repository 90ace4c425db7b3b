"""The short-code exchange, in-process: right and wrong words, replays,
the attempt limit, expiry, and the binding to both peers."""

from __future__ import annotations

import os

import pytest

from p2pshare import sharecode
from p2pshare.node.shortcode.core import (
    CodeRefusedError,
    Offer,
    ReceiverSession,
    SharerSession,
    WrongWordsError,
)
from p2pshare.node.shortcode.wire import MsgType, Refusal, ShortCodeMsg, WireError, decode, encode
from p2pshare.sharecode.short import ShortCode

SHARER_PEER = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
SHARER = sharecode.peer_id_to_bytes(SHARER_PEER)
RECEIVER = b"\x00\x24receiver-peer-id-bytes-for-tests"
CODE = ShortCode(4127, ("acid", "zoom", "yoga"))
FULL = sharecode.ShareCode(SHARER_PEER, ("/ip4/127.0.0.1/tcp/4001",), os.urandom(32), sharecode.new_human_code())


def _offer(tries: int = 3, expires_at: float = 100.0) -> Offer:
    return Offer(CODE, FULL.encode().encode(), tries, expires_at)


def _wire(msg: ShortCodeMsg) -> ShortCodeMsg:
    """Every message crosses the codec, as on a stream."""
    framed = encode(msg)
    return decode(framed[1:] if framed[0] < 0x80 else framed[2:])


def _run(offer: Offer, words: ShortCode, now: float = 0.0) -> tuple[SharerSession | Refusal, sharecode.ShareCode]:
    """One full attempt; raises what the receiver raises."""
    rx = ReceiverSession(words, receiver_id=RECEIVER, sharer_id=SHARER)
    opened = offer.open(now, sharer_id=SHARER, receiver_id=RECEIVER)
    if isinstance(opened, Refusal):
        rx.hello()
        rx.on_reply(_wire(ShortCodeMsg(MsgType.REFUSED, reason=opened)), sharer_peer_id=SHARER_PEER)
        raise AssertionError("a refusal must raise")
    reply = opened.on_hello(_wire(rx.hello()))
    got = rx.on_reply(_wire(reply), sharer_peer_id=SHARER_PEER)
    assert opened.on_confirm(_wire(rx.confirm()))
    return opened, got


def test_right_words_hand_over_the_full_code_and_cost_no_try() -> None:
    offer = _offer()
    for _ in range(5):  # a short code serves several receivers until it expires
        _, got = _run(offer, CODE)
        assert got == FULL
    assert offer.failures == 0 and offer.claims == 5 and offer.tries_left == 3


def test_wrong_words_fail_and_count() -> None:
    offer = _offer()
    wrong = ShortCode(4127, ("acid", "zoom", "yodel"))
    rx = ReceiverSession(wrong, receiver_id=RECEIVER, sharer_id=SHARER)
    session = offer.open(0.0, sharer_id=SHARER, receiver_id=RECEIVER)
    assert isinstance(session, SharerSession)
    reply = session.on_hello(rx.hello())
    with pytest.raises(WrongWordsError) as err:
        rx.on_reply(reply, sharer_peer_id=SHARER_PEER)
    assert "yodel" not in str(err.value) and "4127-…" in str(err.value)
    assert offer.failures == 1 and offer.tries_left == 2
    # The reply is all a wrong guesser gets: the code is not in it in clear.
    assert FULL.encode().encode() not in reply.box and FULL.encryption_key not in reply.box


def test_attempt_limit_then_refusal_even_for_the_right_words() -> None:
    offer = _offer(tries=3)
    wrong = ShortCode(4127, ("acid", "zoom", "yodel"))
    for _ in range(3):
        with pytest.raises(WrongWordsError):
            _run(offer, wrong)
    with pytest.raises(CodeRefusedError) as err:
        _run(offer, CODE)
    assert err.value.reason is Refusal.TOO_MANY_FAILURES
    assert "too many wrong tries" in str(err.value)


def test_a_thousand_guesses_cost_a_thousand_online_attempts_and_only_tries_run_a_pake() -> None:
    offer = _offer(tries=3)
    pakes = refused = 0
    for i in range(1000):
        opened = offer.open(float(i) / 100, sharer_id=SHARER, receiver_id=RECEIVER)
        if isinstance(opened, Refusal):
            refused += 1
            continue
        pakes += 1
        guess = ShortCode(4127, ("acid", "zoom", sharecode.short.wordlist()[i]))
        rx = ReceiverSession(guess, receiver_id=RECEIVER, sharer_id=SHARER)
        with pytest.raises(WrongWordsError):
            rx.on_reply(opened.on_hello(rx.hello()), sharer_peer_id=SHARER_PEER)
    assert (pakes, refused) == (3, 997)


def test_sessions_in_flight_count_so_parallel_guesses_are_bounded() -> None:
    offer = _offer(tries=3)
    opened = [offer.open(0.0, sharer_id=SHARER, receiver_id=RECEIVER) for _ in range(10)]
    assert sum(isinstance(o, SharerSession) for o in opened) == 3
    assert opened[3:] == [Refusal.TOO_MANY_FAILURES] * 7


def test_an_aborted_attempt_counts() -> None:
    offer = _offer(tries=3)
    rx = ReceiverSession(CODE, receiver_id=RECEIVER, sharer_id=SHARER)
    session = offer.open(0.0, sharer_id=SHARER, receiver_id=RECEIVER)
    assert isinstance(session, SharerSession)
    rx.on_reply(session.on_hello(rx.hello()), sharer_peer_id=SHARER_PEER)
    # The receiver opened the box but never confirmed (it hung up): counted.
    assert offer.failures == 1


def test_expiry() -> None:
    offer = _offer(expires_at=100.0)
    _run(offer, CODE, now=99.9)
    with pytest.raises(CodeRefusedError) as err:
        _run(offer, CODE, now=100.0)
    assert err.value.reason is Refusal.EXPIRED and "expired" in str(err.value)
    assert offer.failures == 0  # a refused attempt runs no PAKE and counts nothing


def test_replayed_hello_gets_a_fresh_key_and_burns_a_try() -> None:
    offer = _offer()
    rx = ReceiverSession(CODE, receiver_id=RECEIVER, sharer_id=SHARER)
    hello = rx.hello()
    first = offer.open(0.0, sharer_id=SHARER, receiver_id=RECEIVER)
    assert isinstance(first, SharerSession)
    reply1 = first.on_hello(hello)
    rx.on_reply(reply1, sharer_peer_id=SHARER_PEER)
    assert first.on_confirm(rx.confirm())
    # An eavesdropper replays the HELLO: the sharer answers with a new Y*, so
    # the replayer (who has no x) cannot open it; and it costs one try.
    again = offer.open(1.0, sharer_id=SHARER, receiver_id=RECEIVER)
    assert isinstance(again, SharerSession)
    reply2 = again.on_hello(hello)
    assert reply2.pake != reply1.pake and reply2.box != reply1.box
    assert not again.on_confirm(rx.confirm())  # the old confirmation does not fit the new session
    assert offer.failures == 1


def test_replayed_reply_does_not_open_for_another_receiver_session() -> None:
    offer = _offer()
    rx1 = ReceiverSession(CODE, receiver_id=RECEIVER, sharer_id=SHARER)
    session = offer.open(0.0, sharer_id=SHARER, receiver_id=RECEIVER)
    assert isinstance(session, SharerSession)
    reply = session.on_hello(rx1.hello())
    rx2 = ReceiverSession(CODE, receiver_id=RECEIVER, sharer_id=SHARER)
    rx2.hello()
    with pytest.raises(WrongWordsError):
        rx2.on_reply(reply, sharer_peer_id=SHARER_PEER)


def test_key_is_bound_to_both_peer_ids() -> None:
    offer = _offer()
    # The receiver believes it talks to another peer (a relay in the middle
    # forwarding messages): same words, different identities, no key.
    other = sharecode.peer_id_to_bytes("12D3KooWL97ZVnsm6V3TjSvaUyya1iozr9Zihs7wGs5L6QrDPSky")
    rx = ReceiverSession(CODE, receiver_id=RECEIVER, sharer_id=other)
    session = offer.open(0.0, sharer_id=SHARER, receiver_id=RECEIVER)
    assert isinstance(session, SharerSession)
    with pytest.raises(WrongWordsError):
        rx.on_reply(session.on_hello(rx.hello()), sharer_peer_id=SHARER_PEER)


def test_sealed_code_must_name_the_peer_we_talk_to() -> None:
    offer = _offer()
    rx = ReceiverSession(CODE, receiver_id=RECEIVER, sharer_id=SHARER)
    session = offer.open(0.0, sharer_id=SHARER, receiver_id=RECEIVER)
    assert isinstance(session, SharerSession)
    with pytest.raises(WireError, match="another peer"):
        rx.on_reply(session.on_hello(rx.hello()), sharer_peer_id="12D3KooWL97ZVnsm6V3TjSvaUyya1iozr9Zihs7wGs5L6QrDPSky")


def test_out_of_order_messages_are_protocol_violations() -> None:
    offer = _offer()
    rx = ReceiverSession(CODE, receiver_id=RECEIVER, sharer_id=SHARER)
    session = offer.open(0.0, sharer_id=SHARER, receiver_id=RECEIVER)
    assert isinstance(session, SharerSession)
    with pytest.raises(WireError):
        session.on_confirm(ShortCodeMsg(MsgType.CONFIRM, mac=bytes(32)))
    hello = rx.hello()
    session.on_hello(hello)
    with pytest.raises(WireError):
        session.on_hello(hello)  # a session answers once
    with pytest.raises(WireError):
        rx.on_reply(ShortCodeMsg(MsgType.HELLO, pake=hello.pake), sharer_peer_id=SHARER_PEER)


def test_garbage_point_is_a_protocol_violation_and_still_counts() -> None:
    offer = _offer()
    session = offer.open(0.0, sharer_id=SHARER, receiver_id=RECEIVER)
    assert isinstance(session, SharerSession)
    with pytest.raises(WireError):
        session.on_hello(ShortCodeMsg(MsgType.HELLO, pake=b"A" + b"\xff" * 32))
    assert offer.failures == 1


def test_deterministic_with_injected_entropy() -> None:
    def fixed(n: int) -> bytes:
        return bytes(range(n))

    a = ReceiverSession(CODE, receiver_id=RECEIVER, sharer_id=SHARER, entropy=fixed).hello()
    b = ReceiverSession(CODE, receiver_id=RECEIVER, sharer_id=SHARER, entropy=fixed).hello()
    assert a == b
