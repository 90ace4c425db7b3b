"""The receive session's decisions, pure (no trio, no py-libp2p), aioquic style.

The driver feeds the core what happened (an *input*: the sharer was reached,
the upgrade wait ended, the transfer failed, a timer fired) together with
``now`` (monotonic seconds); the core answers with *actions*: events to emit
and at most one operation for the driver to perform next (probe, reach, wait
for an upgrade, transfer, sleep), or the end (``Finish`` / ``Fail``). Keeping
the choices here lets unit tests walk every transition with fake time, where
the trio driver could only be exercised through real processes and NATs.

The rules (the ``Node`` always had them; one is new):

* While dialling, learn our NAT mapping (for at most ``PROBE_WAIT`` s), so
  hole punching can announce it: from the code's relays, and (issue 10)
  from the node's bootstrap peers when the code names no relay (a sharer
  found through the DHT, on relays it chose itself). Without it our CONNECT
  carried only a LAN address and every punch round was refused. The probe
  runs beside the dial (``Probe`` is background work, not the one
  operation): a DCUtR round that starts first waits for it, and the
  receiver no longer spends the probe's round trips before its first dial.
* On a relayed connection wait up to ``UPGRADE_WAIT`` s (``UPGRADE_WAIT_LIMITED``
  when the relay limits the circuit, which cannot carry a file) for hole
  punching before the transfer starts; a transfer that still runs relayed
  watches for an upgrade and moves to the direct path when one appears
  (verified data is kept, the next stream fetches only what is missing).
* A retryable failure is retried after ``RETRY_DELAY`` until ``timeout`` s
  pass without progress; an attempt that made progress restarts that clock.
* When a limited relay cut the circuit and no direct path exists, reach the
  sharer once more through a relay that carries data (``Reach.avoid_limited``:
  the sharer's current addresses from the DHT, circuits through relays that
  limited us left out; issue 10). When that finds only limited relays, or
  none, fail with :class:`RelayLimitedError` saying so in one line (retrying
  a limited relay would be cut again at the same point).
* New: every retry and every wait respects the deadline. Before, a retryable
  failure on a connection that stayed open (BUSY, a reset stream) was retried
  without looking at the deadline, as re-reaching a connected peer succeeds at
  once (issue 9, finding 2).
* New (issue 12): a sharer still hashing answers PREPARING (``SharerPreparing``)
  before its manifest. That is a wait, not a failure: it is shown, and each
  report of *more* bytes hashed counts as progress (the deadline moves to
  ``now + timeout``), so a 10 GiB share being hashed is not given up on; a
  sharer that repeats the same figure gets no more time.
* New: a transfer that ends with files the sharer stopped serving (they
  changed on its side) fails at once with :class:`FilesUnavailableError`
  naming them, after every other file arrived. It is not retried: the
  sharer remembers those files and would say the same at once (issue 9,
  "changed source").
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from p2pshare.node.circuit.wire import Limit
from p2pshare.node.errors import PeerUnreachableError, RelayLimitedError
from p2pshare.node.events import Connected, ConnectionPath, NodeEvent, PathUpgraded
from p2pshare.node.receive.preparing import PreparingWatch
from p2pshare.sharecode.multiaddrs import is_circuit, relay_part
from p2pshare.transfer.errors import FilesUnavailableError
from p2pshare.transfer.events import ManifestReceived, Progress, SharerPreparing, TransferEvent

if TYPE_CHECKING:
    from p2pshare.transfer._trio_fetch import FetchResult

__all__ = [
    "PROBE_WAIT",
    "UPGRADE_WAIT",
    "UPGRADE_WAIT_LIMITED",
    "RETRY_DELAY",
    "MAX_ATTEMPTS",
    "State",
    "ReceiveResult",
    "ReceiveSession",
    "probe_targets",
    "limit_text",
    "limited_message",
    "no_data_relay_message",
    # inputs
    "Reached",
    "ReachFailed",
    "UpgradeWaitEnded",
    "StreamOpenFailed",
    "TransferDone",
    "TransferMoved",
    "TransferFailed",
    "TransferTimedOut",
    "TimerFired",
    "Input",
    # actions
    "Emit",
    "Probe",
    "Reach",
    "WaitUpgrade",
    "Transfer",
    "Sleep",
    "Finish",
    "Fail",
    "Action",
]

PROBE_WAIT = 3.0  # seconds a receiver spends learning its NAT mapping from the code's relays
UPGRADE_WAIT = 4.0  # seconds a relayed receiver waits for hole punching before it starts (failures end it early; a later upgrade still moves the transfer)
UPGRADE_WAIT_LIMITED = 15.0  # ... when the relay limits the circuit (it cannot carry the data)
RETRY_DELAY = 0.2  # seconds between a failed attempt and the next one
MAX_ATTEMPTS = 10_000  # a last bound on reconnects, should time never run out


class State(enum.Enum):
    REACHING = "reaching"  # dialling the sharer (the code, the DHT, relays)
    WAITING_UPGRADE = "waiting-upgrade"  # relayed: giving hole punching a moment
    TRANSFERRING = "transferring"
    SWITCHING_PATH = "switching-path"  # a direct path appeared: re-reaching over it
    BACKING_OFF = "backing-off"  # an attempt failed; the next one waits a little
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class ReceiveResult:
    """What ``Node.start_receiving`` returns."""

    peer_id: str  # the sharer that delivered
    path: ConnectionPath  # the path the last (successful) attempt ran on
    attempts: int  # streams opened to the sharer, the successful one included
    transfer: FetchResult


# -- inputs: what happened ---------------------------------------------------


@dataclass(frozen=True)
class Reached:
    peer_id: str
    path: ConnectionPath
    rtt_ms: float | None
    limit: Limit | None  # the relay's limit on a relayed circuit (None: unlimited or not relayed)


@dataclass(frozen=True)
class ReachFailed:
    error: Exception  # the dialler gave up at the deadline


@dataclass(frozen=True)
class UpgradeWaitEnded:
    path: ConnectionPath | None  # None: no direct path in time (or DCUtR gave up)
    seconds: float


@dataclass(frozen=True)
class StreamOpenFailed:
    error: Exception


@dataclass(frozen=True)
class TransferDone:
    result: FetchResult


@dataclass(frozen=True)
class TransferMoved:
    """A direct path appeared while the transfer ran relayed; the driver stopped it."""

    path: ConnectionPath | None
    seconds: float  # from the start of the transfer to the upgrade


@dataclass(frozen=True)
class TransferFailed:
    error: Exception
    retryable: bool
    upgraded: bool  # a direct path to the peer exists (DCUtR or a direct dial)


@dataclass(frozen=True)
class TransferTimedOut:
    """The transfer's deadline (:attr:`Transfer.deadline`, moved by progress) passed; the driver stopped it."""


@dataclass(frozen=True)
class TimerFired:
    """The driver slept until the time of the last :class:`Sleep`."""


Input = (
    Reached
    | ReachFailed
    | UpgradeWaitEnded
    | StreamOpenFailed
    | TransferDone
    | TransferMoved
    | TransferFailed
    | TransferTimedOut
    | TimerFired
)


# -- actions: what to do -----------------------------------------------------


@dataclass(frozen=True)
class Emit:
    event: NodeEvent


@dataclass(frozen=True)
class Probe:
    """Background work: start it and go on (it ends by itself within ``timeout``)."""

    relays: tuple[str, ...]  # relay multiaddrs (the code's circuit addrs without /p2p-circuit); may be empty
    timeout: float


@dataclass(frozen=True)
class Reach:
    deadline: float
    last_error: Exception | None  # said in the message should the dial fail
    #: Only through relays that carry data: drop our limited circuit, skip
    #: relays that limited a circuit, ask the DHT for the sharer's addresses.
    avoid_limited: bool = False


@dataclass(frozen=True)
class WaitUpgrade:
    peer_id: str
    timeout: float


@dataclass(frozen=True)
class Transfer:
    peer_id: str
    path: ConnectionPath
    watch_upgrade: bool  # relayed: move to a direct path as soon as one appears
    #: Stop the transfer at this time, unless progress moves it (see ``ReceiveSession.deadline``
    #: after each ``transfer_event``): a sharer that stalls, trickles or never answers cannot
    #: hold ``get`` past ``--timeout`` (issue 9, finding 2).
    deadline: float


@dataclass(frozen=True)
class Sleep:
    until: float  # then feed TimerFired


@dataclass(frozen=True)
class Finish:
    result: ReceiveResult


@dataclass(frozen=True)
class Fail:
    error: Exception


Action = Emit | Probe | Reach | WaitUpgrade | Transfer | Sleep | Finish | Fail


def probe_targets(addresses: Sequence[str], nat_known: bool) -> tuple[str, ...]:
    """The relays to learn our NAT mapping from: those the code's circuit
    addresses go through, unless the mapping is known already."""
    if nat_known:
        return ()
    return tuple(dict.fromkeys(relay_part(a) for a in addresses if is_circuit(a)))


def limited_message(limit: Limit) -> str:
    return (
        f"the relay cut the connection: it limits each relayed connection to {limit_text(limit)}, "
        "and no direct path (hole punching) could be made; the data received so far is kept — "
        "ask the sharer to use a relay without such limits (e.g. `p2pshare relay`)"
    )


def no_data_relay_message(limit: Limit) -> str:
    """One line: the sharer is reachable only through relays that cannot carry the data."""
    return (
        f"no relay that carries data reaches the sharer: its relays cap each connection at {limit_text(limit)} "
        "and hole punching found no direct path; the data received so far is kept — the sharer can run "
        "`p2pshare relay` on a public host and share with `--relay`, or someone can run `p2pshare node` there"
    )


def limit_text(limit: Limit) -> str:
    """``128 KiB / 2 min``. js-libp2p sends its duration in milliseconds
    (120000 for its 2 minutes); a whole number of thousands that large is read so."""
    caps = []
    if limit.data:
        caps.append(f"{limit.data / 1024:g} KiB" if limit.data < 1 << 20 else f"{limit.data / (1 << 20):g} MiB")
    if limit.duration:
        seconds = limit.duration // 1000 if limit.duration >= 10_000 and limit.duration % 1000 == 0 else limit.duration
        caps.append(f"{seconds / 60:g} min" if seconds % 60 == 0 else f"{seconds} s")
    return " / ".join(caps) or "a limit"


class ReceiveSession:
    """One ``start_receiving``: feed it inputs, perform its actions.

    ``start(now)`` gives the first actions; after performing the operation
    among them, call ``handle(outcome, now)``. Transfer events go through
    ``transfer_event`` (it notes progress and re-emits them).
    """

    def __init__(
        self, *, timeout: float, probe: Sequence[str] = (), learn_mapping: bool = False, stay_relayed: bool = False
    ) -> None:
        """``probe``: the code's relays to learn our mapping from; ``learn_mapping``:
        the mapping is unknown and the node has other peers to learn it from;
        ``stay_relayed`` (``get --force-relay``, for testing relays): the bytes
        cross the relay even when a hole punch opens a direct path."""
        self.timeout = timeout
        self.stay_relayed = stay_relayed
        self.state = State.REACHING
        self.deadline = 0.0
        self.attempts = 0
        self.peer_id: str | None = None
        self.path: ConnectionPath | None = None
        self.last_error: Exception | None = None
        self._probe = tuple(probe)
        self._learn = learn_mapping
        self._limit: Limit | None = None
        self._seeking_data = False  # reaching again, through a relay that carries data
        self._progressed = False  # in the current attempt
        self._preparing = PreparingWatch()  # the sharer's hashing, as it says

    # -- entry points --------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        self.deadline = now + self.timeout
        probe: list[Action] = []
        if self._probe or self._learn:
            probe.append(Probe(self._probe, self._bounded(PROBE_WAIT, now)))
        return [*probe, *self._reach()]

    def transfer_event(self, event: TransferEvent, now: float | None = None) -> list[Action]:
        """Note a transfer event; progress at ``now`` (verified bytes, or another
        whole percent hashed: ``preparing``) moves the deadline to ``now + timeout``."""
        if isinstance(event, Progress):
            self._progressed = True
            if now is not None:
                self.deadline = max(self.deadline, now + self.timeout)
        elif isinstance(event, (SharerPreparing, ManifestReceived)):
            if self._preparing.moved_on(event) and now is not None:
                self.deadline = max(self.deadline, now + self.timeout)
        return [Emit(event)]

    def waited(self, now: float) -> None:
        """The receiver waited for its person (the consent prompt): the
        sharer gets a whole ``timeout`` again from ``now``."""
        self.deadline = max(self.deadline, now + self.timeout)

    def handle(self, outcome: Input, now: float) -> list[Action]:
        if self.state in (State.DONE, State.FAILED):
            raise RuntimeError(f"the receive session has ended ({self.state.value})")
        if isinstance(outcome, Reached) and self.state in (State.REACHING, State.SWITCHING_PATH):
            return self._on_reached(outcome, now)
        if isinstance(outcome, ReachFailed) and self.state in (State.REACHING, State.SWITCHING_PATH):
            if self._seeking_data and self._limit is not None:
                return self._fail(RelayLimitedError(no_data_relay_message(self._limit)))
            return self._fail(outcome.error)
        if isinstance(outcome, UpgradeWaitEnded) and self.state is State.WAITING_UPGRADE:
            return self._on_upgrade_wait(outcome)
        if self.state is State.TRANSFERRING:
            if isinstance(outcome, TransferDone):
                return self._on_done(outcome)
            if isinstance(outcome, StreamOpenFailed):
                self.last_error = outcome.error
                return self._retry(now)
            if isinstance(outcome, TransferMoved):
                return self._on_moved(outcome, now)
            if isinstance(outcome, TransferFailed):
                return self._on_failed(outcome, now)
            if isinstance(outcome, TransferTimedOut):
                if self._limit is not None:  # on a relay that cannot carry the data, and no direct path came
                    return self._seek_data_relay(self._limit)
                if (stalled := self._preparing.stalled(self.timeout)) is not None:
                    return self._fail(stalled)
                self.last_error = TimeoutError(f"no verified data arrived for {self.timeout:g} s")
                return self._out_of_time()
        if isinstance(outcome, TimerFired) and self.state is State.BACKING_OFF:
            if now >= self.deadline:
                return self._out_of_time()
            return self._reach()
        raise RuntimeError(f"unexpected {type(outcome).__name__} while {self.state.value}")

    # -- transitions ---------------------------------------------------------

    def _bounded(self, wait: float, now: float) -> float:
        return min(wait, max(0.0, self.deadline - now))

    def _reach(self) -> list[Action]:
        if self.attempts >= MAX_ATTEMPTS:
            return self._fail(
                PeerUnreachableError("gave up after too many reconnects; run the same command again to resume")
            )
        if self.state is not State.SWITCHING_PATH:
            self.state = State.REACHING
        return [Reach(self.deadline, self.last_error, avoid_limited=self._seeking_data)]

    def _seek_data_relay(self, limit: Limit) -> list[Action]:
        """A limited relay cut us (or would) with no direct path: once, reach
        the sharer through a relay that carries data; then give up, saying why."""
        if self._seeking_data:
            return self._fail(RelayLimitedError(no_data_relay_message(limit)))
        self._seeking_data = True
        self.last_error = RelayLimitedError(limited_message(limit))
        self.state = State.REACHING
        return self._reach()

    def _on_reached(self, r: Reached, now: float) -> list[Action]:
        self.peer_id = r.peer_id
        self.path = r.path
        self.state = State.REACHING
        out: list[Action] = [Emit(Connected(peer_id=r.peer_id, path=r.path, rtt_ms=r.rtt_ms))]
        if r.path is ConnectionPath.RELAYED:
            if self._seeking_data and r.limit is not None:
                return [*out, *self._fail(RelayLimitedError(no_data_relay_message(r.limit)))]
            self._limit = r.limit
            if self.stay_relayed:
                return [*out, *self._transfer()]
            self.state = State.WAITING_UPGRADE
            wait = UPGRADE_WAIT_LIMITED if r.limit is not None else UPGRADE_WAIT
            return [*out, WaitUpgrade(r.peer_id, self._bounded(wait, now))]
        self._limit = None
        return [*out, *self._transfer()]

    def _on_upgrade_wait(self, w: UpgradeWaitEnded) -> list[Action]:
        assert self.peer_id is not None
        if w.path is None:
            return self._transfer()
        self.path = w.path
        self._limit = None  # the transfer runs direct: the relay's limit no longer applies
        return [Emit(PathUpgraded(self.peer_id, w.path, round(w.seconds, 3))), *self._transfer()]

    def _transfer(self) -> list[Action]:
        assert self.peer_id is not None and self.path is not None
        self.state = State.TRANSFERRING
        self.attempts += 1
        self._preparing.attempt_started()
        self._progressed = False
        return [
            Transfer(
                self.peer_id,
                self.path,
                watch_upgrade=self.path is ConnectionPath.RELAYED and not self.stay_relayed,
                deadline=self.deadline,
            )
        ]

    def _on_done(self, d: TransferDone) -> list[Action]:
        assert self.peer_id is not None and self.path is not None
        result = d.result
        if result.unavailable:
            return self._fail(
                FilesUnavailableError(
                    files=result.files, output_dir=str(result.output_dir), unavailable=result.unavailable
                )
            )
        self.state = State.DONE
        return [Finish(ReceiveResult(self.peer_id, self.path, self.attempts, result))]

    def _on_moved(self, m: TransferMoved, now: float) -> list[Action]:
        assert self.peer_id is not None
        if self._progressed:
            self.deadline = now + self.timeout
        path = m.path or ConnectionPath.DIRECT
        self.state = State.SWITCHING_PATH
        return [Emit(PathUpgraded(self.peer_id, path, round(m.seconds, 3))), *self._reach()]

    def _on_failed(self, f: TransferFailed, now: float) -> list[Action]:
        if not f.retryable:
            return self._fail(f.error)
        if self._limit is not None and not f.upgraded:
            if self._progressed:
                self.deadline = now + self.timeout
            return self._seek_data_relay(self._limit)
        self.last_error = f.error
        if self._progressed:
            self.deadline = now + self.timeout
        return self._retry(now)

    def _retry(self, now: float) -> list[Action]:
        if now + RETRY_DELAY >= self.deadline:
            return self._out_of_time()
        self.state = State.BACKING_OFF
        return [Sleep(now + RETRY_DELAY)]

    def _out_of_time(self) -> list[Action]:
        why = f" ({self.last_error})" if self.last_error is not None else ""
        return self._fail(
            PeerUnreachableError(
                f"the sharer made no progress for {self.timeout:g} s{why}; run the same command again to resume"
            )
        )

    def _fail(self, error: Exception) -> list[Action]:
        self.state = State.FAILED
        return [Fail(error)]
