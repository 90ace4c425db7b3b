"""DCUtR round schedule (pure): when to dial, how many rounds, when to give up.

The trio service (:mod:`node.dcutr._trio_service`) does the I/O; these
machines make every decision, in the aioquic style: the driver feeds what
happened and the time (``now``), and gets back the next action, whose
absolute times are the timers to wait for. No trio, no py-libp2p.

Initiator (B, :class:`InitiatorSchedule`)::

    start ──► DialDirect (peer has public addrs) ──► Finish(Upgraded "unilateral")
      │             │ nothing
      ▼             ▼
    Exchange(n) ◄─────────────┐  (round n: CONNECT/SYNC over the relay)
      │ exchanged             │ round lost, rounds left
      ▼                       │
    Punch(n, dial_at, until) ─┘ ──► Finish(Upgraded "hole-punch")
      │ exchange failed / rounds used up
      ▼
    Finish(UpgradeFailed)

Rounds from the listen port: ``rounds`` of ``round_window``. Rounds from a
fresh port each (port-preserving NAT): up to ``fresh_rounds`` short ones
(see :meth:`PunchConfig.window`). An exchange that fails ends the upgrade
only when the relayed connection is gone or a direct one exists; otherwise
the next round is tried. An exchange lost because the peer offered nothing
dialable (it is still learning its public mapping: a receiver that has just
reached a relay asks it by identify) costs no round of the budget: the next
one waits :data:`UNREADY_WAITS` (at most :data:`UNREADY_TRIES` such
exchanges). Without the wait all 20 fresh-port rounds were spent in 0.16 s
before the peer knew its address (natlab limited js-cone, 1 run in 3).

Responder (A, :class:`ResponderRounds`): it learns of a lost round only
from its own dials, and the initiator normally starts the next round at
once; it reports a failure only when no new round started within
``NEXT_ROUND_GRACE`` of the last loss.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from p2pshare.node.dcutr.policy import PunchConfig, Ready, Role, Upgraded, UpgradeFailed

__all__ = [
    "DialDirect",
    "Exchange",
    "Punch",
    "Finish",
    "Action",
    "InitiatorSchedule",
    "ResponderRounds",
    "NEXT_ROUND_GRACE",
    "LATE_ARRIVAL",
    "LATE_ARRIVAL_FRESH",
    "UNREADY_WAITS",
    "UNREADY_TRIES",
]

LATE_ARRIVAL = 0.5  # after our dials stop, how long a peer's dial to our listener may still land
LATE_ARRIVAL_FRESH = 0.1  # ... on a fresh port nothing listens long: only a crossing SYN can still finish
NEXT_ROUND_GRACE = 1.5  # a responder round's failure is final when no new round starts by then
# Waits before the next exchange when the peer offered nothing dialable: each
# below NEXT_ROUND_GRACE, so the peer (responder) keeps waiting for the next.
UNREADY_WAITS = (0.25, 0.5, 1.0, 1.0, 1.0)
UNREADY_TRIES = len(UNREADY_WAITS)


@dataclass(frozen=True)
class DialDirect:
    """Dial the peer's public addresses directly; report by :meth:`InitiatorSchedule.direct_done`."""

    until: float


@dataclass(frozen=True)
class Exchange:
    """At ``at`` (0: at once), take a round port, run CONNECT/SYNC over the relay;
    report by :meth:`~InitiatorSchedule.exchanged` or :meth:`~InitiatorSchedule.exchange_failed`."""

    round_no: int
    at: float = 0.0


@dataclass(frozen=True)
class Punch:
    """Dial ``ready.targets`` from ``dial_at`` until ``until``; a crossing
    connection may still land until ``late_until``. Report by :meth:`punched`."""

    round_no: int
    dial_at: float
    until: float
    late_until: float


@dataclass(frozen=True)
class Finish:
    event: Upgraded | UpgradeFailed


Action = DialDirect | Exchange | Punch | Finish


def punch_times(cfg: PunchConfig, ready: Ready, fresh: bool, now: float) -> tuple[float, float, float]:
    """(dial_at, until, late_until) of one round, for either role."""
    dial_at = max(now, ready.dial_at)
    until = dial_at + cfg.window(fresh, ready.rtt)
    return dial_at, until, until + (LATE_ARRIVAL_FRESH if fresh else LATE_ARRIVAL)


class _Phase(str, enum.Enum):
    NEW = "new"
    DIRECT = "direct"
    EXCHANGE = "exchange"
    PUNCH = "punch"
    DONE = "done"


class InitiatorSchedule:
    """One upgrade attempt of the initiator for ``peer_id``."""

    def __init__(self, peer_id: str, cfg: PunchConfig, now: float) -> None:
        self.peer_id = peer_id
        self.cfg = cfg
        self.started = now
        self.round_no = 0
        self.phase = _Phase.NEW
        self._fresh = False
        self._ready: Ready | None = None
        self._reason = "no round ran"
        self._unready = 0  # exchanges lost to a peer that offered nothing dialable

    # -- inputs --------------------------------------------------------------

    def start(self, now: float, *, already_direct: bool, public_addrs: bool) -> Action:
        self._expect(_Phase.NEW)
        if already_direct:
            return self._finish(Upgraded(self.peer_id, Role.INITIATOR.value, "already-direct", 0.0, 0, 0, None, ""))
        if public_addrs and self.cfg.unilateral_timeout > 0:
            self.phase = _Phase.DIRECT
            return DialDirect(now + self.cfg.unilateral_timeout)
        return self._next_round(now)

    def direct_done(self, now: float, addr: str | None) -> Action:
        self._expect(_Phase.DIRECT)
        if addr is not None:
            return self._finish(
                Upgraded(self.peer_id, Role.INITIATOR.value, "unilateral", now - self.started, 0, 1, None, addr)
            )
        return self._next_round(now)

    def exchanged(self, now: float, ready: Ready, *, fresh: bool) -> Action:
        self._expect(_Phase.EXCHANGE)
        self._fresh = fresh
        self._ready = ready
        self.phase = _Phase.PUNCH
        return Punch(self.round_no, *punch_times(self.cfg, ready, fresh, now))

    def exchange_failed(
        self, now: float, reason: str, *, fresh: bool, give_up: bool, peer_unready: bool = False
    ) -> Action:
        """``give_up``: the relayed connection is gone or a direct one exists;
        ``peer_unready``: the peer's CONNECT had no address we can dial."""
        self._expect(_Phase.EXCHANGE)
        self._fresh = fresh
        self._reason = f"round {self.round_no}: {reason}"
        if give_up or (peer_unready and self._unready >= UNREADY_TRIES):
            return self._fail(now)
        if peer_unready:
            self._unready += 1
            return self._next_round(now, at=now + UNREADY_WAITS[self._unready - 1])
        return self._next_round(now)

    def punched(self, now: float, won: tuple[str, int] | None) -> Action:
        """``won``: (address, dials) of the direct connection, or None."""
        self._expect(_Phase.PUNCH)
        if won is not None:
            rtt = self._ready.rtt if self._ready is not None else None
            return self._finish(
                Upgraded(
                    self.peer_id,
                    Role.INITIATOR.value,
                    "hole-punch",
                    now - self.started,
                    self.round_no,
                    won[1],
                    rtt,
                    won[0],
                )
            )
        self._reason = f"no direct connection after {self.round_no} round(s)"
        return self._next_round(now)

    # -- transitions ---------------------------------------------------------

    def rounds_allowed(self) -> int:
        """Rounds this upgrade may run, given the last round's port kind."""
        return max(self.cfg.rounds, self.cfg.fresh_rounds) if self._fresh else self.cfg.rounds

    def _next_round(self, now: float, at: float = 0.0) -> Action:
        if self.round_no - self._unready >= self.rounds_allowed():
            return self._fail(now)
        self.round_no += 1
        self.phase = _Phase.EXCHANGE
        return Exchange(self.round_no, at)

    def _fail(self, now: float) -> Action:
        return self._finish(
            UpgradeFailed(self.peer_id, Role.INITIATOR.value, now - self.started, self.round_no, self._reason)
        )

    def _finish(self, event: Upgraded | UpgradeFailed) -> Finish:
        self.phase = _Phase.DONE
        return Finish(event)

    def _expect(self, phase: _Phase) -> None:
        if self.phase is not phase:
            raise RuntimeError(f"dcutr schedule: input for {phase.value} while {self.phase.value}")


@dataclass
class _PeerRounds:
    started: int = 0  # rounds answered in the current upgrade
    fail_at: float | None = None  # report the failure then, unless a round starts
    failure: UpgradeFailed | None = None


class ResponderRounds:
    """The responder's view of every peer's rounds: when a lost round is final."""

    def __init__(self, max_peers: int = 32) -> None:
        self._peers: dict[str, _PeerRounds] = {}
        self._max = max_peers

    def _entry(self, peer_id: str, started: int) -> _PeerRounds:
        """The peer's entry; a new one evicts the oldest when the table is full
        (on every path that adds one, or a peer evicted mid-round and added
        back by :meth:`round_lost` would grow the table past its cap)."""
        st = self._peers.get(peer_id)
        if st is None:
            if len(self._peers) >= self._max:
                self._peers.pop(next(iter(self._peers)))
            st = self._peers[peer_id] = _PeerRounds(started=started)
        return st

    def __len__(self) -> int:
        return len(self._peers)

    def round_started(self, peer_id: str, now: float) -> int:
        """A CONNECT arrived: a new round (any pending failure is off). Returns its number."""
        st = self._entry(peer_id, 0)
        st.started += 1
        st.fail_at, st.failure = None, None
        return st.started

    def round_won(self, peer_id: str) -> None:
        self._peers.pop(peer_id, None)

    def forget(self, peer_id: str) -> None:
        """The peer's rounds are over (it has nothing to announce): no timer."""
        self._peers.pop(peer_id, None)

    def round_lost(self, peer_id: str, now: float, event: UpgradeFailed) -> float:
        """Our round failed; returns the time to call :meth:`due` (the timer)."""
        st = self._entry(peer_id, 1)
        st.fail_at = now + NEXT_ROUND_GRACE
        st.failure = UpgradeFailed(event.peer_id, event.role, event.elapsed, st.started, event.reason)
        return st.fail_at

    def due(self, peer_id: str, now: float, *, direct: bool) -> UpgradeFailed | None:
        """The failure to report now, if no round started since and no direct
        connection exists; forgets the peer either way once due."""
        st = self._peers.get(peer_id)
        if st is None or st.fail_at is None or st.failure is None or now < st.fail_at:
            return None
        del self._peers[peer_id]
        return None if direct else st.failure
