"""A file the sharer stops serving, in the pure cores (no I/O, no trio).

The sharer's walk of the WANT and the receiver's expected chunks follow one
rule (``session.wanted_chunks``): after FILE_UNAVAILABLE neither side sends
nor expects that file's chunks, and the session goes on with the others.
"""

from __future__ import annotations

import os
import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_protocol import Pair

from p2pshare.transfer import crypto, wire
from p2pshare.transfer.errors import IntegrityError, ProtocolError, UnavailableReason
from p2pshare.transfer.manifest import EMPTY_SHA256, FileEntry, Manifest, make_manifest
from p2pshare.transfer.receiver import ChunkArrived, EndOfChunks, FileNotServed, HandshakeComplete, ManifestReady
from p2pshare.transfer.registry import ShareRegistry
from p2pshare.transfer.scan import build_manifest
from p2pshare.transfer.session import walk_wanted, wanted_chunks
from p2pshare.transfer.sharer import WantReceived

CHANGED = UnavailableReason.CHANGED
REMOVED = UnavailableReason.REMOVED
# Pair's share: f0 = global chunks 0-2, f1 empty (no chunks), f2 = chunk 3.


def sending(p: Pair, want: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    p.handshake()
    p.r.send_want(want)
    (ev,) = p.r_to_s()
    assert isinstance(ev, WantReceived)
    return ev.ranges


def notice(file_index: int, reason: UnavailableReason = CHANGED) -> bytes:
    return wire.encode(wire.FileUnavailable(file_index, reason))


# -- the shared rule ---------------------------------------------------------------


def test_wanted_chunks_skips_whole_files() -> None:
    cs = 64 * 1024
    sizes = [3 * cs, 0, 2 * cs, cs + 1, 10]  # global chunks: f0 0-2, f2 3-4, f3 5-6, f4 7
    files = [
        FileEntry(f"f{i}", n, bytes(32) if n else EMPTY_SHA256, (bytes(32),) * -(-n // cs)) for i, n in enumerate(sizes)
    ]
    m = make_manifest(name="t", description="", sharer=None, chunk_size=cs, files=files, dirs=[])
    want = [(1, 4), (5, 8)]
    assert list(wanted_chunks(want, m, set())) == [1, 2, 3, 5, 6, 7]
    assert list(wanted_chunks(want, m, {0, 3})) == [3, 7]
    assert list(wanted_chunks(want, m, {1})) == [1, 2, 3, 5, 6, 7]  # an empty file has no chunks to skip
    skip: set[int] = set()
    walk = wanted_chunks([(0, 8)], m, skip)
    assert [next(walk), next(walk)] == [0, 1]
    skip.add(0)  # marked during the walk: the rest of the file is skipped at once
    skip.add(3)
    assert list(walk) == [3, 4, 7]


def _lookup_per_chunk(want: list[tuple[int, int]], m: Manifest, unavailable: set[int]) -> object:
    """The rule as it was written first: ``locate`` every chunk (the reference)."""
    for start, end in want:
        g = start
        while g < end:
            f, c = m.locate(g)
            if f in unavailable:
                g = m.first_chunk(f) + len(m.files[f].chunk_hashes)
                continue
            yield g, f, c
            g += 1


def _steps(walk: object, unavailable: set[int], marks: dict[int, int]) -> list[object]:
    """Every step of ``walk``: a chunk's place, or the error that ended it;
    before step k, file ``marks[k]`` is marked unavailable."""
    out: list[object] = []
    it = iter(walk)  # type: ignore[call-overload]
    for k in range(10_000):
        if k in marks:
            unavailable.add(marks[k])
        try:
            out.append(next(it))
        except StopIteration:
            return out
        except IndexError as exc:
            return [*out, f"IndexError: {exc}"]
    raise AssertionError("the walk did not end")


@given(counts=st.lists(st.integers(0, 3), min_size=1, max_size=8), data=st.data())
def test_the_walk_is_a_lookup_per_chunk(counts: list[int], data: st.DataObject) -> None:
    """``walk_wanted`` moves a cursor instead of looking every chunk up
    (issue 12); chunk for chunk, error for error, it must be the rule's
    walk: files without chunks, ranges past the end, files marked before
    the walk and during it."""
    cs = 64 * 1024
    files = [
        FileEntry(f"f{i}", (n - 1) * cs + 1 if n else 0, bytes(32) if n else EMPTY_SHA256, (bytes(32),) * n)
        for i, n in enumerate(counts)
    ]
    m = make_manifest(name="t", description="", sharer=None, chunk_size=cs, files=files, dirs=[])
    top = m.total_chunks + 2
    bounds = data.draw(st.lists(st.integers(0, top), max_size=6))
    want = [(a, b) for a, b in zip(bounds[::2], bounds[1::2], strict=False)]  # empty and reversed ranges too
    before = data.draw(st.sets(st.integers(0, len(files) - 1)))
    marks = data.draw(st.dictionaries(st.integers(0, top), st.integers(0, len(files) - 1), max_size=3))
    runs = []
    for walk in (walk_wanted, _lookup_per_chunk, wanted_chunks):
        unavailable = set(before)  # the walk's own set, marked as it goes
        runs.append(_steps(walk(want, m, unavailable), unavailable, marks))
    got, reference, plain = runs
    assert got == reference
    assert plain == [step[0] if isinstance(step, tuple) else step for step in got]


# -- sharer -----------------------------------------------------------------------


def test_sharer_leaves_out_a_file_marked_while_sending() -> None:
    p = Pair(os.urandom(32))
    want = sending(p, [(0, 4)])
    walk = p.s.chunks_to_send(want)
    assert next(walk) == 0
    assert p.s.file_unavailable(0, CHANGED) is True
    assert p.s.file_unavailable(0, CHANGED) is False  # said once per session
    assert list(walk) == [3]
    assert p.s.data_to_send() == notice(0)
    assert p.s.unavailable == {0: CHANGED}


def test_sharer_says_known_unavailable_files_right_behind_the_manifest() -> None:
    p = Pair(os.urandom(32))
    p.r.initiate()
    p.r_to_s()
    p.s_to_r()
    p.r_to_s()  # proof accepted: ACCEPT and MANIFEST are queued
    p.s.file_unavailable(2, REMOVED)
    events = p.s_to_r()
    assert [type(e) for e in events] == [HandshakeComplete, ManifestReady, FileNotServed]
    assert events[-1] == FileNotServed(2, REMOVED)
    # The receiver leaves the file out of its WANT; the sharer would skip it anyway.
    assert p.r.plan_want([(0, 4)]) == [(0, 3)]
    p.r.send_want([(0, 4)])  # coarsened WANTs may still cover it
    (want,) = p.r_to_s()
    assert isinstance(want, WantReceived)
    assert list(p.s.chunks_to_send(want.ranges)) == [0, 1, 2]


def test_sharer_file_unavailable_needs_the_manifest_sent_and_a_real_file() -> None:
    p = Pair(os.urandom(32))
    with pytest.raises(RuntimeError, match="await-hello"):
        p.s.file_unavailable(0, CHANGED)
    sending(p, [(0, 4)])
    with pytest.raises(ValueError, match="no file 3"):
        p.s.file_unavailable(3, CHANGED)


# -- receiver ---------------------------------------------------------------------


def test_receiver_stops_expecting_the_file_and_accepts_end_without_it() -> None:
    p = Pair(os.urandom(32))
    sending(p, [(0, 4)])
    events = p.r.receive_data(p.chunk_frame(0) + notice(0) + p.chunk_frame(3))
    assert [type(e) for e in events] == [ChunkArrived, FileNotServed, ChunkArrived]
    assert events[1] == FileNotServed(0, CHANGED)
    assert p.r.unavailable == {0: CHANGED}
    p.s.state = p.s.state.SENDING
    p.s.send_end()
    assert p.s_to_r() == [EndOfChunks()]


def test_receiver_notice_for_the_last_wanted_file_ends_the_expected_chunks() -> None:
    p = Pair(os.urandom(32))
    sending(p, [(0, 4)])
    p.r.receive_data(b"".join(p.chunk_frame(i) for i in range(3)))
    assert p.r.receive_data(notice(2)) == [FileNotServed(2, CHANGED)]
    p.s.state = p.s.state.SENDING
    p.s.send_end()
    assert p.s_to_r() == [EndOfChunks()]


def test_receiver_rejects_a_chunk_of_a_file_said_unavailable() -> None:
    p = Pair(os.urandom(32))
    sending(p, [(0, 4)])
    p.r.receive_data(p.chunk_frame(0) + notice(0))
    with pytest.raises(IntegrityError, match="out of order"):
        p.r.receive_data(p.chunk_frame(1))


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        (lambda p: notice(3), "not in the manifest"),
        (lambda p: notice(2**32 - 1), "not in the manifest"),
        (lambda p: notice(2) + notice(2, REMOVED), "twice"),
    ],
)
def test_receiver_rejects_bad_notices(frames: object, match: str) -> None:
    p = Pair(os.urandom(32))
    sending(p, [(0, 4)])
    with pytest.raises(ProtocolError, match=match):
        p.r.receive_data(frames(p))  # type: ignore[operator]
    assert p.r.failed and p.r.data_to_send()[0] == wire.MsgType.ERROR


def test_receiver_rejects_a_notice_before_the_manifest_or_after_end() -> None:
    p = Pair(os.urandom(32))
    p.r.initiate()
    with pytest.raises(ProtocolError, match="before MANIFEST"):
        p.r.receive_data(notice(0))
    p = Pair(os.urandom(32))
    sending(p, [(3, 4)])
    p.r.receive_data(p.chunk_frame(3))
    p.s.state = p.s.state.SENDING
    p.s.send_end()
    p.s_to_r()
    with pytest.raises(ProtocolError, match="unexpected FileUnavailable"):
        p.r.receive_data(notice(0))


# -- registry ---------------------------------------------------------------------


def test_registry_remembers_unavailable_files_per_share_until_shared_anew(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    (root / "a.bin").write_bytes(os.urandom(1000))
    key = secrets.token_bytes(32)
    registry = ShareRegistry()
    prepared = build_manifest([root / "a.bin"], name="t", key=key)
    sid = registry.add(prepared)
    assert registry.unavailable(sid) == {}
    assert registry.mark_unavailable(sid, 0, CHANGED) is True
    assert registry.mark_unavailable(sid, 0, REMOVED) is False  # the first reason stays
    assert registry.unavailable(sid) == {0: CHANGED}
    assert registry.mark_unavailable(crypto.ShareKeys.derive(os.urandom(32)).share_id, 0, CHANGED) is False
    assert registry.add(prepared) == sid  # shared anew (hashed again): its files match again
    assert registry.unavailable(sid) == {}
    registry.mark_unavailable(sid, 0, CHANGED)
    registry.remove(sid)
    assert registry.unavailable(sid) == {}
