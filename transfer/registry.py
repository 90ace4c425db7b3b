"""The shares a node serves, keyed by share ID (no I/O, no trio)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from p2pshare.transfer.crypto import ShareKeys
from p2pshare.transfer.errors import UnavailableReason
from p2pshare.transfer.scan import HashProgress, PreparedShare
from p2pshare.transfer.sharer import PendingShare, ShareMaterial

#: Seconds between reported failures of streams whose peer never proved the key.
STRANGER_REPORT_INTERVAL = 10.0
#: Seconds a receiver may hold a session slot after its key proof without
#: asking for data (a person reading the list, or a peer that never will)
#: before a newcomer that finds every slot taken gets it instead. Holders
#: of the key took all 64 slots that way for the 600 s idle timeout, and an
#: honest ``get`` said "the transfer stalled" (a hostile-peer review, stop
#: 44). Receivers that transfer are never displaced.
LISTING_GRACE = 30.0
#: Send buffers one receiver holds at most: one being filled, one being
#: written, the rest queued (``_trio_serve.PIPELINE_DEPTH``).
MAX_BATCHES = 4


@dataclass(frozen=True)
class ServedShare:
    prepared: PreparedShare
    material: ShareMaterial = field(repr=False)

    @property
    def share_id(self) -> bytes:
        return self.material.keys.share_id


#: Seconds from a stop for a receiver to read ERROR STOPPED, which queues
#: behind the data in flight (up to a yamux window, read at the receiver's
#: link and disk speed): the 2 s of any goodbye let a relayed receiver at
#: 2 MiB/s miss it and retry until its --timeout (a README walk-through,
#: stop 45). ``Node.stop_sharing`` waits as long.
STOP_NOTICE_SECONDS = 10.0


class ShareRegistry:
    """Maps share IDs to served shares and counts receivers that finished.

    Used from one event loop; ``completed`` lets ``share --once`` stop after
    the first receiver that confirmed a full, verified transfer. It also
    remembers the files of a share that stopped matching their manifest, so
    every later session says so right after the manifest instead of reading
    (and hashing) them again.
    """

    def __init__(
        self,
        max_sessions: int = 64,
        max_handshakes: int = 256,
        max_handshakes_per_peer: int = 8,
        max_handshakes_per_source: int = 32,
        batch_memory: int = 48 << 20,
        max_sessions_per_peer: int = 4,
        max_sessions_per_source: int = 16,
    ) -> None:
        self._shares: dict[bytes, ServedShare] = {}
        #: Shares whose code is out and whose manifest is still being hashed.
        self._pending: dict[bytes, tuple[PendingShare, HashProgress]] = {}
        self._completed: dict[bytes, int] = {}
        self._unavailable: dict[bytes, dict[int, UnavailableReason]] = {}
        #: Sessions of each share whose receiver proved the key and that
        #: have not ended: a sharer that stops waits (bounded) until each
        #: has told its receiver so (``_trio_serve.sessions_ended``).
        self._live: dict[bytes, int] = {}
        #: Called (no arguments) after a share is served, withdrawn or its
        #: preparation failed: sessions waiting for a manifest add a wake-up
        #: here instead of polling (``_trio_serve``). Each must not raise.
        self.listeners: set[Callable[[], None]] = set()
        self.max_sessions = max_sessions
        self.active_sessions = 0
        # The key proof is no licence to take every slot: 9 identities x 8
        # streams that proved the key and then read nothing held all 64 (and
        # ~11 MB of sharer memory each) and shut honest receivers out (a
        # hostile-peer review). A receiver needs one session, a household a few.
        self.max_sessions_per_peer = max_sessions_per_peer
        self.max_sessions_per_source = max_sessions_per_source
        self._sessions: dict[bytes, int] = {}
        self._session_sources: dict[str, int] = {}
        #: Sessions with a slot that have not sent WANT: token -> (since,
        #: evict). Insertion order is age order (``since`` is the clock at
        #: insertion), so the oldest is first.
        self._listing: dict[object, tuple[float, Callable[[], None]]] = {}
        # Before the key proof a stream costs little (small frames, a short
        # timeout) and gets its own, larger budget: a peer that only knows
        # our address cannot take the session slots receivers need.
        self.max_handshakes = max_handshakes
        self.max_handshakes_per_peer = max_handshakes_per_peer
        # Peer IDs cost nothing to make: one address (an IPv6 /64) held all
        # the slots through 32 identities and shut a real receiver out.
        # Per source, then, too (relayed peers: the relay bounds its circuits).
        self.max_handshakes_per_source = max_handshakes_per_source
        self._handshakes: dict[bytes, int] = {}
        self._handshake_sources: dict[str, int] = {}
        self.active_handshakes = 0
        self._stranger_said = -math.inf  # when a failure before the key proof was last reported
        # Send buffers of all receivers together: one receiver pipelines up
        # to MAX_BATCHES; many share this memory (12 at 4 each held 343 MB).
        self.batch_memory = batch_memory

    def report_stranger(self, now: float) -> bool:
        """Whether to report (not just log) a stream that failed before its
        peer proved the key: one every :data:`STRANGER_REPORT_INTERVAL`
        seconds. Anyone who knows our address can fail at will: reported
        each time, it was an endless stream of lines on the sharer's output."""
        if now - self._stranger_said < STRANGER_REPORT_INTERVAL:
            return False
        self._stranger_said = now
        return True

    def try_begin_handshake(self, peer: bytes, source: str | None = None) -> bool:
        """Claim a pre-authentication slot for ``peer`` coming from ``source``
        (its address group; None: unknown): total, per-peer and per-source caps."""
        room = self.active_handshakes < self.max_handshakes
        caps = (self.max_handshakes_per_peer, self.max_handshakes_per_source)
        if not _take(self._handshakes, self._handshake_sources, peer, source, caps, room):
            return False
        self.active_handshakes += 1
        return True

    def end_handshake(self, peer: bytes, source: str | None = None) -> None:
        _give(self._handshakes, self._handshake_sources, peer, source)
        self.active_handshakes -= 1

    def try_acquire(self, peer: bytes = b"", source: str | None = None, now: float | None = None) -> bool:
        """Claim a session slot after the key proof (bounds memory and
        threads): total, per-peer and per-source (its address group) caps.

        With every slot taken and ``now`` given, a newcomer within its caps
        displaces the session that has waited longest, at least
        :data:`LISTING_GRACE`, without asking for data (its ``evict`` is
        called, which must give its slot back at once)."""
        caps = (self.max_sessions_per_peer, self.max_sessions_per_source)
        if self.active_sessions >= self.max_sessions and now is not None and self._listing:
            token, (since, evict) = next(iter(self._listing.items()))
            if now - since >= LISTING_GRACE and _within(self._sessions, self._session_sources, peer, source, caps):
                del self._listing[token]
                evict()
        room = self.active_sessions < self.max_sessions
        if not _take(self._sessions, self._session_sources, peer, source, caps, room):
            return False
        self.active_sessions += 1
        return True

    def batches_per_session(self, capacity: int) -> int:
        """Send buffers of ``capacity`` bytes one receiver may hold now: its
        share of ``batch_memory`` among the active sessions, at least one
        (every receiver progresses) and at most :data:`MAX_BATCHES`."""
        fair = self.batch_memory // (max(capacity, 1) * max(self.active_sessions, 1))
        return max(1, min(MAX_BATCHES, fair))

    def release(self, peer: bytes = b"", source: str | None = None) -> None:
        _give(self._sessions, self._session_sources, peer, source)
        self.active_sessions -= 1

    def listing(self, token: object, since: float, evict: Callable[[], None]) -> None:
        """A session that holds a slot waits for its receiver's WANT (see
        ``try_acquire``); ``listed`` when it comes or the session ends."""
        self._listing[token] = (since, evict)

    def listed(self, token: object) -> None:
        self._listing.pop(token, None)

    def add(self, prepared: PreparedShare, key: bytes | None = None, share_code: str | None = None) -> bytes:
        """Serve ``prepared`` under ``key`` (default: the key it was built with)."""
        key = key if key is not None else prepared.key
        if key is None:
            raise ValueError("a share key is needed to serve a share")
        keys = ShareKeys.derive(key, share_code)
        self._pending.pop(keys.share_id, None)
        self._shares[keys.share_id] = ServedShare(prepared, ShareMaterial.build(keys, prepared.manifest))
        self._completed.setdefault(keys.share_id, 0)
        self._unavailable.pop(keys.share_id, None)  # a new manifest: its files match again
        self.changed()
        return keys.share_id

    def add_pending(self, key: bytes, share_code: str | None, progress: HashProgress) -> bytes:
        """Answer for a share still being hashed: receivers that prove the
        key hear PREPARING with ``progress`` until ``add`` (or its failure)."""
        keys = ShareKeys.derive(key, share_code)
        self._pending[keys.share_id] = (PendingShare(keys), progress)
        self._completed.setdefault(keys.share_id, 0)
        return keys.share_id

    def preparing(self, share_id: bytes) -> HashProgress | None:
        """The hashing progress of a pending share (None once served or gone)."""
        entry = self._pending.get(share_id)
        return entry[1] if entry is not None else None

    def remove(self, share_id: bytes) -> None:
        """Stop serving ``share_id``; nothing of it is kept (a node that
        shares and withdraws for months keeps no entry per share it had)."""
        self._pending.pop(share_id, None)
        self._shares.pop(share_id, None)
        self._unavailable.pop(share_id, None)
        self._completed.pop(share_id, None)
        self.changed()

    def withdrawn(self, share_id: bytes) -> bool:
        """Neither served nor being prepared: the sharer stopped sharing it."""
        return share_id not in self._shares and share_id not in self._pending

    def session_began(self, share_id: bytes) -> None:
        self._live[share_id] = self._live.get(share_id, 0) + 1

    def session_ended(self, share_id: bytes) -> None:
        _drop_one(self._live, share_id)
        self.changed()

    def live_sessions(self, share_id: bytes) -> int:
        """Sessions of ``share_id`` past the key proof that have not ended."""
        return self._live.get(share_id, 0)

    def changed(self) -> None:
        """Tell the listeners that a share's state changed (also called by
        the preparation when it fails: its ``HashProgress`` says how)."""
        for listener in tuple(self.listeners):
            listener()

    def mark_unavailable(self, share_id: bytes, file_index: int, reason: UnavailableReason) -> bool:
        """Remember that a file of the share no longer matches; True the first time."""
        if share_id not in self._shares:
            return False
        marked = self._unavailable.setdefault(share_id, {})
        if file_index in marked:
            return False
        marked[file_index] = reason
        return True

    def unavailable(self, share_id: bytes) -> Mapping[int, UnavailableReason]:
        """The files of the share it stopped serving (file index -> why)."""
        return dict(self._unavailable.get(share_id, {}))

    def get(self, share_id: bytes) -> ServedShare | None:
        return self._shares.get(share_id)

    def material(self, share_id: bytes) -> ShareMaterial | PendingShare | None:
        served = self._shares.get(share_id)
        if served is not None:
            return served.material
        entry = self._pending.get(share_id)
        return entry[0] if entry is not None else None

    def __len__(self) -> int:
        return len(self._shares) + len(self._pending)

    def record_completed(self, share_id: bytes) -> int:
        """Count a receiver that finished; not once the share was withdrawn."""
        if share_id not in self._completed:
            return 0
        self._completed[share_id] += 1
        return self._completed[share_id]

    def completed(self, share_id: bytes) -> int:
        """How many receivers finished this share."""
        return self._completed.get(share_id, 0)


_K = TypeVar("_K", bytes, str)


def _take(
    peers: dict[bytes, int], sources: dict[str, int], peer: bytes, source: str | None, caps: tuple[int, int], room: bool
) -> bool:
    """Count one more slot of ``peer`` from ``source`` (None: unknown) if
    there is ``room`` and neither is at its cap (per peer, per source)."""
    if not room or not _within(peers, sources, peer, source, caps):
        return False
    peers[peer] = peers.get(peer, 0) + 1
    if source is not None:
        sources[source] = sources.get(source, 0) + 1
    return True


def _within(
    peers: dict[bytes, int], sources: dict[str, int], peer: bytes, source: str | None, caps: tuple[int, int]
) -> bool:
    """Whether one more slot of ``peer`` from ``source`` stays within both caps."""
    return peers.get(peer, 0) < caps[0] and (source is None or sources.get(source, 0) < caps[1])


def _give(peers: dict[bytes, int], sources: dict[str, int], peer: bytes, source: str | None) -> None:
    _drop_one(peers, peer)
    if source is not None:
        _drop_one(sources, source)


def _drop_one(counts: dict[_K, int], key: _K) -> None:
    """One fewer for ``key``; keys at zero leave the table (it stays bounded)."""
    held = counts.get(key, 0) - 1
    if held > 0:
        counts[key] = held
    else:
        counts.pop(key, None)
