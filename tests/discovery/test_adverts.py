"""When each advertised key is provided again (pure core: ``discovery.adverts``)."""

from __future__ import annotations

import math

from p2pshare.node.discovery.adverts import MIN_READVERTISE, RETRY_FIRST, AdvertSchedule

K1, K2 = b"k" * 32, b"j" * 32
HOUR = 3600.0


def test_a_round_that_stored_is_refreshed_after_the_interval() -> None:
    s = AdvertSchedule(HOUR)
    s.add(K1, 0.0)
    assert s.due(0.0) == [] and s.next_due() == math.inf  # its first round runs now
    s.done(K1, stored=3, now=10.0, jitter=0.95)
    assert s.next_due() == 10.0 + 0.95 * HOUR
    assert s.due(10.0 + 0.95 * HOUR) == [K1]


def test_a_round_that_reached_nobody_is_retried_sooner_and_backs_off() -> None:
    s = AdvertSchedule(HOUR)
    s.add(K1, 0.0)
    delays = []
    now = 0.0
    for _ in range(10):
        s.done(K1, stored=0, now=now, jitter=1.0)
        delays.append(s.next_due() - now)
        now = s.next_due()
        assert s.start(K1, now)
    assert delays[:4] == [RETRY_FIRST, 2 * RETRY_FIRST, 4 * RETRY_FIRST, 8 * RETRY_FIRST]
    assert max(delays) == HOUR  # never longer than the interval
    s.done(K1, stored=1, now=now, jitter=1.0)
    now = s.next_due()
    assert s.start(K1, now)
    s.done(K1, stored=0, now=now, jitter=1.0)
    assert s.next_due() - now == RETRY_FIRST  # a success reset the backoff


def test_new_addresses_bring_every_key_forward_but_not_too_often() -> None:
    s = AdvertSchedule(HOUR)
    for k in (K1, K2):
        s.add(k, 0.0)
        s.done(k, stored=5, now=1.0, jitter=1.0)
    s.addresses_changed(2.0)
    assert s.next_due() == MIN_READVERTISE  # last sent at 0: not before 5 s
    s.addresses_changed(100.0)
    assert sorted(s.due(100.0)) == sorted([K1, K2])


def test_addresses_that_change_during_a_round_redo_it_once_it_ends() -> None:
    s = AdvertSchedule(HOUR)
    s.add(K1, 0.0)
    s.done(K1, stored=5, now=1.0, jitter=1.0)
    assert s.start(K1, 50.0)
    s.addresses_changed(51.0)  # the round under way sends the old addresses
    assert s.next_due() == math.inf  # nothing starts beside the running round
    s.done(K1, stored=5, now=52.0, jitter=1.0)
    assert s.next_due() == 55.0  # again, 5 s after that round began
    assert s.start(K1, 55.0)
    s.done(K1, stored=5, now=56.0, jitter=1.0)
    assert s.next_due() == 56.0 + HOUR  # clean now


def test_a_withdrawn_key_is_gone_even_mid_round() -> None:
    s = AdvertSchedule(HOUR)
    s.add(K1, 0.0)
    s.remove(K1)
    s.done(K1, stored=5, now=1.0, jitter=1.0)  # the round that was running ends
    assert len(s) == 0 and K1 not in s and not s.start(K1, 2.0) and s.next_due() == math.inf
