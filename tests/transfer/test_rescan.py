"""``chunks_match``: chunks on disk checked against their hashes, in order,
in two threads, with a bounded number read ahead."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from p2pshare.transfer import _rescan
from p2pshare.transfer._rescan import AHEAD, MIN_PARALLEL, chunks_match

CS = 4096


def _file(tmp_path: Path, n: int) -> tuple[int, list[tuple[int, int, bytes]]]:
    data = os.urandom(n * CS - 100)  # a short last chunk
    path = tmp_path / "f"
    path.write_bytes(data)
    chunks = []
    for c in range(n):
        piece = data[c * CS : (c + 1) * CS]
        chunks.append((len(piece), c * CS, hashlib.sha256(piece).digest()))
    return os.open(path, os.O_RDONLY), chunks


@pytest.mark.parametrize("n", [1, MIN_PARALLEL - 1, MIN_PARALLEL, 40])
def test_each_chunk_is_answered_in_order(tmp_path: Path, n: int) -> None:
    fd, chunks = _file(tmp_path, n)
    try:
        assert list(chunks_match(fd, chunks, n)) == [True] * n
        bad = {0, n // 2, n - 1}
        wrong = [(length, off, bytes(32) if c in bad else h) for c, (length, off, h) in enumerate(chunks)]
        assert list(chunks_match(fd, wrong, n)) == [c not in bad for c in range(n)]
    finally:
        os.close(fd)


def test_a_chunk_past_the_end_of_the_file_does_not_match(tmp_path: Path) -> None:
    fd, chunks = _file(tmp_path, 8)
    try:
        length, off, h = chunks[-1]
        longer = [*chunks[:-1], (length + 100, off, h)]  # the file was cut short
        assert list(chunks_match(fd, longer, 8)) == [True] * 7 + [False]
    finally:
        os.close(fd)


def test_reads_ahead_at_most_ahead_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fd, chunks = _file(tmp_path, 40)
    started: list[int] = []
    real = _rescan._matches

    def counting(fd: int, length: int, offset: int, expected: bytes) -> bool:
        started.append(offset)
        return real(fd, length, offset, expected)

    monkeypatch.setattr(_rescan, "_matches", counting)
    try:
        answers = chunks_match(fd, chunks, 40)
        for taken in range(1, 11):
            assert next(answers)
            assert len(started) <= taken + AHEAD
        answers.close()  # a caller that stops early (all() at a mismatch)
    finally:
        os.close(fd)
    assert len(started) <= 10 + AHEAD


def test_a_read_error_reaches_the_caller(tmp_path: Path) -> None:
    fd, chunks = _file(tmp_path, 8)
    os.close(fd)  # a closed descriptor: EBADF in the worker
    with pytest.raises(OSError):
        list(chunks_match(fd, chunks, 8))
