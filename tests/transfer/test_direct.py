"""Large received files are written around the page cache (``O_DIRECT``) from
reused aligned buffers; a file system that refuses gets buffered writes."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from xfer_helpers import write_file

from p2pshare.transfer import _direct
from p2pshare.transfer.crypto import ChunkCipher, DecryptError, ShareKeys
from p2pshare.transfer.scan import PreparedShare, build_manifest
from p2pshare.transfer.store import Store

CS = 1 << 20
SID = b"\x02" * 16

pytestmark = pytest.mark.skipif(not _direct.O_DIRECT, reason="no O_DIRECT on this platform")


@pytest.fixture
def prepared(tmp_path: Path) -> PreparedShare:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(3 * CS + 12345))  # every chunk differs; the last is not aligned
    write_file(src / "small.bin", 5000, seed=4)  # below MIN_FILE: buffered
    return build_manifest([src], name="t", chunk_size=CS)


def _store_all(store: Store, p: PreparedShare, spy: list[tuple[int, bool]]) -> None:
    """Every chunk through the two stages as the receiver runs them: into an
    aligned block when the store offers one, else as ``bytes``."""
    m = p.manifest
    for g in range(m.total_chunks):
        f, c = m.locate(g)
        with open(p.sources[f], "rb") as fh:
            fh.seek(c * CS)
            data = fh.read(CS)
        block = store.block_for(f)
        plain: bytes | memoryview = data
        if block is not None:
            plain = memoryview(block)[: len(data)]
            plain[:] = data
        verified = store.verify_chunk(f, c, plain, block=block)
        assert verified is not None
        store.write_verified(verified)
        spy.append((f, block is not None))


def _receive_all(tmp_path: Path, prepared: PreparedShare) -> list[tuple[int, bool]]:
    """Store the whole share under ``tmp_path/out``, check it matches the
    source, and return (file index, written from a block) per chunk."""
    out = tmp_path / "out"
    out.mkdir()
    store = Store(out, prepared.manifest, SID)
    store.prepare()
    used: list[tuple[int, bool]] = []
    _store_all(store, prepared, used)
    store.finish()
    store.close()
    for name in ("big.bin", "small.bin"):
        assert (out / "src" / name).read_bytes() == (tmp_path / "src" / name).read_bytes()
    return used


def _direct_flag(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & _direct.O_DIRECT)


def test_large_file_written_direct_and_exact(tmp_path: Path, prepared: PreparedShare, monkeypatch: Any) -> None:
    seen: list[bool] = []
    real_write_block = _direct.write_block

    def spy_write_block(fd: int, block: Any, length: int, offset: int) -> bool:
        seen.append(_direct_flag(fd))
        return real_write_block(fd, block, length, offset)

    monkeypatch.setattr(_direct, "write_block", spy_write_block)
    used = _receive_all(tmp_path, prepared)
    big = prepared.manifest.files[[f.path for f in prepared.manifest.files].index("src/big.bin")]
    assert {f for f, direct in used if direct} == {prepared.manifest.files.index(big)}  # not the small file
    assert seen == [True] * 4  # every chunk of big.bin, on an O_DIRECT descriptor
    assert (tmp_path / "out" / "src" / "big.bin").stat().st_size == 3 * CS + 12345  # the padding is cut


def test_write_block_pads_with_zeros(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        assert _direct.set_direct(fd, True) and _direct_flag(fd)
        block = _direct.BlockPool(CS).take()
        block[:] = b"\xff" * len(block)  # what an earlier chunk left there
        block[:10] = b"0123456789"
        assert _direct.write_block(fd, block, 10, 0)
        assert _direct.set_direct(fd, False) and not _direct_flag(fd)
        assert os.pread(fd, 8192, 0) == b"0123456789" + bytes(_direct.ALIGN - 10)
        with pytest.raises(ValueError):
            _direct.write_block(fd, block, 10, 100)  # an unaligned offset is a caller's bug
    finally:
        os.close(fd)


def test_refused_direct_write_falls_back_to_buffered(tmp_path: Path, prepared: PreparedShare, monkeypatch: Any) -> None:
    """A file system that accepts O_DIRECT on the descriptor but refuses the
    write (EINVAL): that chunk and every later one are written buffered."""
    calls = {"n": 0}
    real_pwrite = os.pwrite

    def refusing_pwrite(fd: int, data: Any, offset: int) -> int:
        if _direct_flag(fd):
            calls["n"] += 1
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(_direct.os, "pwrite", refusing_pwrite)
    used = _receive_all(tmp_path, prepared)
    assert calls["n"] == 1  # tried once, then never again
    assert sum(direct for _f, direct in used) == 1  # no more blocks handed out after the refusal


def test_refused_fcntl_means_buffered(tmp_path: Path, prepared: PreparedShare, monkeypatch: Any) -> None:
    monkeypatch.setattr(_direct, "set_direct", lambda fd, on: not on)
    assert sum(direct for _f, direct in _receive_all(tmp_path, prepared)) == 1  # the refusal is learned once


def test_resume_truncates_a_padded_partial_file(tmp_path: Path, prepared: PreparedShare) -> None:
    """Killed between the padded last write and the truncate: the partial
    file is longer than the file; the resume scan keeps every chunk."""
    m = prepared.manifest
    index = [f.path for f in m.files].index("src/big.bin")
    entry = m.files[index]
    out = tmp_path / "out"
    part_dir = out / ".p2pshare-partial" / SID.hex()
    part_dir.mkdir(parents=True)
    data = (tmp_path / "src" / "big.bin").read_bytes()
    (part_dir / str(index)).write_bytes(data + bytes(_direct.align_up(len(data)) - len(data)))
    store = Store(out, m, SID)
    plan = store.prepare()
    assert entry.path in plan.completed and plan.already_have_bytes == entry.size
    store.close()
    assert (out / "src" / "big.bin").read_bytes() == data


def test_open_into_writes_the_plaintext_in_place() -> None:
    keys = ShareKeys.derive(os.urandom(32))
    cipher = ChunkCipher(keys, hashlib.sha256(b"manifest").digest())
    plain = os.urandom(70_000)
    nonce, sealed = cipher.seal(1, 2, False, plain)
    block = _direct.BlockPool(CS).take()
    view = memoryview(block)[: len(plain)]
    cipher.open_into(1, 2, False, nonce, sealed, view)
    assert bytes(view) == plain
    with pytest.raises(DecryptError):
        cipher.open_into(1, 3, False, nonce, sealed, view)  # another position: another AAD


def test_pool_reuses_and_bounds() -> None:
    pool = _direct.BlockPool(CS + 1)
    assert pool.size == CS + _direct.ALIGN
    first = pool.take()
    pool.give(first)
    assert pool.take() is first
    blocks = [pool.take() for _ in range(_direct.POOL_KEEP + 5)]
    for b in blocks:
        pool.give(b)
    assert len(pool._free) == _direct.POOL_KEEP
