"""How much dialing a peer may make us do for it (pure).

Why: a hole-punching round makes us send SYNs to addresses the peer only
claims, so any peer could aim us at a third party. Two bounds:

* :class:`RoundBudget`: rounds we answer per ``window``, from all peers
  together and from one peer; a refused round costs a reset stream.
* :class:`DialBudget`: SYNs in one round, per target and in all. A refused
  SYN (RST) is re-dialed, as two NATs that both answer strangers with RST
  connect only when SYNs cross in flight; but a closed port on a third
  party refuses every time too, so the re-dials are capped (go-libp2p and
  rust-libp2p dial each address once per attempt, three attempts).
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["RoundBudget", "DialBudget"]


class RoundBudget:
    """Rounds answered per ``window`` seconds: ``per_window`` from all peers,
    ``per_peer`` from one. Now in, decision out; an allowed round is counted."""

    def __init__(self, per_window: int, per_peer: int, window: float = 60.0) -> None:
        if per_window < 1 or per_peer < 1 or window <= 0:
            raise ValueError("need per_window >= 1, per_peer >= 1, window > 0")
        self._all: list[tuple[float, str]] = []  # at most per_window entries
        self._per_window = per_window
        self._per_peer = per_peer
        self.window = window

    def allow(self, peer_id: str, now: float) -> bool:
        """Whether to answer ``peer_id``'s round now."""
        self._all = [(t, p) for t, p in self._all if now - t < self.window]
        if len(self._all) >= self._per_window or sum(p == peer_id for _, p in self._all) >= self._per_peer:
            return False
        self._all.append((now, peer_id))
        return True


class DialBudget:
    """SYNs of one round: at most ``per_target`` to each target and
    ``per_round`` in all. :meth:`take` before each dial."""

    def __init__(self, per_target: int, per_round: int) -> None:
        if per_target < 1 or per_round < 1:
            raise ValueError("need per_target >= 1 and per_round >= 1")
        self.per_target = per_target
        self.per_round = per_round
        self.counts: dict[Hashable, int] = {}
        self.spent = 0

    def take(self, target: Hashable) -> bool:
        """Whether one more SYN to ``target`` may leave; if so it is counted."""
        n = self.counts.get(target, 0)
        if n >= self.per_target or self.spent >= self.per_round:
            return False
        self.counts[target] = n + 1
        self.spent += 1
        return True
