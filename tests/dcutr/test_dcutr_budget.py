"""DCUtR's bounds on the dialing a peer can make us do (pure, fake time)."""

from __future__ import annotations

import pytest

from p2pshare.node.dcutr.budget import DialBudget, RoundBudget
from p2pshare.node.dcutr.policy import PunchConfig


def test_round_budget_bounds_rounds_per_peer_and_in_all() -> None:
    b = RoundBudget(per_window=5, per_peer=3, window=60.0)
    assert all(b.allow("p1", t) for t in (0.0, 1.0, 2.0))
    assert not b.allow("p1", 3.0)  # the peer's three rounds this minute are used
    assert b.allow("p2", 3.0) and b.allow("p3", 4.0)
    assert not b.allow("p4", 5.0)  # five rounds in all
    assert not b.allow("p2", 59.9)
    assert b.allow("p4", 60.0)  # the first round has aged out ...
    assert not b.allow("p1", 60.5)  # ... but p1 still has two in the window
    assert b.allow("p1", 61.0)


def test_round_budget_does_not_count_refused_rounds() -> None:
    b = RoundBudget(per_window=10, per_peer=1, window=10.0)
    assert b.allow("p1", 0.0)
    for t in range(1, 10):
        assert not b.allow("p1", float(t))  # a peer that keeps asking gains nothing ...
    assert b.allow("p1", 10.0)  # ... and loses nothing: one round a window


def test_honest_initiator_fits_the_default_answer_budget() -> None:
    """Our own initiator's worst upgrade: every fresh round, every
    "peer unready" exchange (5) and the empty CONNECT."""
    cfg = PunchConfig()
    b = RoundBudget(cfg.answer_per_minute, cfg.answer_per_peer)
    assert all(b.allow("honest", i * 0.3) for i in range(max(cfg.rounds, cfg.fresh_rounds) + 5 + 1))


def test_dial_budget_caps_each_target_and_the_round() -> None:
    b = DialBudget(per_target=3, per_round=5)
    assert [b.take("a") for _ in range(4)] == [True, True, True, False]
    assert [b.take("b") for _ in range(3)] == [True, True, False]  # the round's five are spent
    assert not b.take("c")
    assert b.spent == 5 and b.counts == {"a": 3, "b": 2}


def test_default_caps_bound_a_round_and_a_minute() -> None:
    """8 targets x 400 re-dials made one CONNECT+SYNC worth ~3,200 SYNs, and
    rounds had no limit. A target keeps 400 (two RST-answering NATs need
    crossing SYNs); a round is capped at that in all."""
    cfg = PunchConfig()
    b = DialBudget(cfg.max_dials_per_target, cfg.max_dials_per_round)
    sent = sum(b.take(t) for _ in range(1000) for t in range(8))
    assert sent == cfg.max_dials_per_round <= 400
    assert cfg.answer_per_minute * cfg.max_dials_per_round <= 12_000  # the birthday easy side's bound


@pytest.mark.parametrize(
    "bad",
    [
        {"max_dials_per_target": 0},
        {"max_dials_per_round": 0},
        {"answer_per_peer": 0},
        {"answer_per_minute": 0},
    ],
)
def test_config_refuses_empty_budgets(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        PunchConfig(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("args", [(0, 1), (1, 0)])
def test_budgets_refuse_nonsense(args: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        DialBudget(*args)
    with pytest.raises(ValueError):
        RoundBudget(*args)
