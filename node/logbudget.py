"""How many warnings a long-lived process prints (pure: no trio, no logging).

Most warnings a node prints are caused by someone else: a peer that sends a
malformed HOP message, a reservation the relay refuses, a handler that
fails on a peer's bad stream. Each costs the peer one stream and the node
one line on stderr, so a single hostile connection could make a community
relay write ~700 lines a second (measured: 1,000 malformed HOP messages in
1.4 s, 1,000 lines, 128 kB) until its journal or disk was full, and bury
the lines its operator needs. A person reading a ``share`` sees the same
retry warning once a minute for as long as a relay stays down.

The budget bounds both, per kind of message (its logger and template, so
warnings that differ only in the peer ID count as one kind):

* ``burst`` lines of a kind are shown at once, then one per ``interval``
  seconds (a token bucket per kind);
* the first line past the burst is still shown, marked as the point from
  which its kind is limited (:attr:`Admit.limiting`), so nothing goes quiet
  without saying so; the next line shown says how many were not
  (:attr:`Admit.suppressed`);
* all kinds together share ``total_burst`` lines and one per
  ``total_interval`` seconds, so many kinds cannot add up to a flood;
* at most ``max_kinds`` kinds are remembered (least recently seen ones are
  forgotten), so messages with peer-chosen text cannot grow the table.

``now`` is any monotonic clock in seconds; the caller passes it in.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

__all__ = ["Admit", "LogBudget", "HIDE", "limited_note", "suppressed_note"]


@dataclass(frozen=True)
class Admit:
    """What to do with one line: show it or not, and what to add to it."""

    show: bool
    #: Lines of this kind not shown since the last one that was.
    suppressed: int = 0
    #: This is the first line past the burst: say that its kind is limited now.
    limiting: bool = False


#: The verdict for a line that is not shown.
HIDE = Admit(False)
_SHOW = Admit(True)


@dataclass
class _Bucket:
    tokens: float
    updated: float
    suppressed: int = 0
    limited: bool = False  # the "limited from now on" note was shown


class _TokenBucket:
    def __init__(self, burst: int, interval: float) -> None:
        self.burst = float(burst)
        self.burst, self.interval = burst, interval

    def refill(self, b: _Bucket, now: float) -> None:
        if now > b.updated:
            b.tokens = min(self.burst, b.tokens + (now - b.updated) / self.interval)
        b.updated = max(b.updated, now)


class LogBudget:
    """Decides, line by line, which warnings are shown (see the module doc)."""

    def __init__(
        self,
        *,
        burst: int = 5,
        interval: float = 60.0,
        total_burst: int = 50,
        total_interval: float = 1.0,
        max_kinds: int = 256,
    ) -> None:
        if burst < 1 or total_burst < 1 or interval <= 0 or total_interval <= 0 or max_kinds < 1:
            raise ValueError("budgets must be positive")
        self.burst, self.interval = burst, interval
        self._kind = _TokenBucket(burst, interval)
        self._all = _TokenBucket(total_burst, total_interval)
        self._total: _Bucket | None = None
        self._kinds: OrderedDict[Hashable, _Bucket] = OrderedDict()
        self.max_kinds = max_kinds

    def admit(self, kind: Hashable, now: float) -> Admit:
        """Show this line of ``kind`` at ``now``, or count it as not shown."""
        b = self._kinds.get(kind)
        if b is None:
            b = self._kinds[kind] = _Bucket(self._kind.burst, now)
            if len(self._kinds) > self.max_kinds:
                self._kinds.popitem(last=False)
        else:
            self._kinds.move_to_end(kind)
            self._kind.refill(b, now)
        if self._total is None:
            self._total = _Bucket(self._all.burst, now)
        total = self._total
        self._all.refill(total, now)
        if b.tokens >= self._kind.burst:
            b.limited = False  # quiet long enough for a whole burst: a new episode
        has_own = b.tokens >= 1.0
        if total.tokens < 1.0 or (not has_own and b.limited):
            b.suppressed += 1
            return HIDE
        total.tokens -= 1.0
        if not has_own:
            b.limited = True
            return Admit(True, limiting=True)
        b.tokens -= 1.0
        hidden, b.suppressed = b.suppressed, 0
        return Admit(True, suppressed=hidden) if hidden else _SHOW


def limited_note(interval: float) -> str:
    """What a line past the burst adds: its kind is limited from now on."""
    return f" [repeated: more like this are shown at most once {_every(interval)}]"


def suppressed_note(count: int) -> str:
    """What the next line shown adds about those that were not."""
    return f" [{count} more like this not shown]"


def _every(interval: float) -> str:
    if interval == 60.0:
        return "a minute"
    if interval == 1.0:
        return "a second"
    return f"every {interval:g} s"
