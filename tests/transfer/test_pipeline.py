"""The receive pipeline (two store stages in two threads, byte budget) and
the sharer's sealed-in-place batches."""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

import pytest
import trio
from test_runners import run_pair
from xfer_helpers import make_tree, run_past_fifo, snapshot, write_file

from p2pshare.transfer import _trio_fetch, crypto, ranges, wire
from p2pshare.transfer.errors import IntegrityError, UnavailableReason
from p2pshare.transfer.scan import PreparedShare, build_manifest
from p2pshare.transfer.sharer import ShareMaterial
from p2pshare.transfer.source import ChunkReader, frames_capacity, produce_frames
from p2pshare.transfer.store import Store, Verified

CS = 64 * 1024
SID = b"\x02" * 16


def chunk(p: PreparedShare, g: int) -> tuple[int, int, bytes]:
    f, c = p.manifest.locate(g)
    with open(p.sources[f], "rb") as fh:
        fh.seek(c * p.manifest.chunk_size)
        return f, c, fh.read(p.manifest.chunk_size)


def tree(tmp_path: Path) -> PreparedShare:
    top = make_tree(tmp_path / "src")
    for i in range(5):  # several multi-chunk files: stage 1 runs ahead into the next file
        write_file(top / "many" / f"f{i}.bin", 3 * CS + 17 * i)
    return build_manifest([top], name="t", chunk_size=CS)


def run_stages_in_threads(store: Store, p: PreparedShare, indices: list[int]) -> list[str]:
    """Stage 1 and stage 2 in two real threads at once, joined by a queue."""
    import queue

    q: queue.Queue[Verified | None] = queue.Queue()
    done: list[str] = []
    errors: list[BaseException] = []

    def stage1() -> None:
        try:
            for g in indices:
                v = store.verify_chunk(*chunk(p, g))
                if v is not None:
                    q.put(v)
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            q.put(None)

    def stage2() -> None:
        try:
            while (v := q.get()) is not None:
                if (path := store.write_verified(v)) is not None:
                    done.append(path)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=stage1), threading.Thread(target=stage2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    return done


def test_two_stages_in_two_threads_with_resume(tmp_path: Path) -> None:
    p = tree(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    total = p.manifest.total_chunks
    store = Store(out, p.manifest, SID)
    first = store.prepare().completed  # the empty file
    first += run_stages_in_threads(store, p, list(range(0, total // 2)))
    store.close()  # interrupted: what was written stays for resume
    store = Store(out, p.manifest, SID)
    plan = store.prepare()
    assert plan.already_have_bytes > 0
    # Coarsened WANT: ask for everything again, so chunks of complete files come too.
    rest = run_stages_in_threads(store, p, list(range(total)))
    store.finish()
    store.close()
    assert snapshot(out) == snapshot(tmp_path / "src")
    assert sorted(first + plan.completed + rest) == sorted(f.path for f in p.manifest.files)


def test_a_chunk_is_written_only_after_its_hash_matched(tmp_path: Path) -> None:
    p = tree(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    store = Store(out, p.manifest, SID)
    store.prepare()
    f, c, data = chunk(p, 1)
    with pytest.raises(IntegrityError, match="does not match its hash"):
        store.verify_chunk(f, c, b"\x00" * len(data))
    store.close()
    part = out / ".p2pshare-partial" / SID.hex() / str(f)
    assert not part.exists() or part.read_bytes()[c * CS : (c + 1) * CS].strip(b"\x00") == b""


def test_whole_file_hash_is_checked_before_the_rename(tmp_path: Path) -> None:
    p = tree(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    store = Store(out, p.manifest, SID)
    store.prepare()
    entry = p.manifest.files[0]
    n = len(entry.chunk_hashes)
    for g in range(n):
        f, c, data = chunk(p, g)
        if g == 1:  # passes the (skipped) chunk check, poisons the whole-file hash
            data = b"\x00" * len(data)
        v = store.verify_chunk(f, c, data, verify=g != 1)
        assert v is not None and (v.final is not None) == (g == n - 1)
        if g < n - 1:
            assert store.write_verified(v) is None
    with pytest.raises(IntegrityError, match="whole-file hash"):
        store.write_verified(v)
    store.close()
    assert not (out / entry.path).exists()


def test_chunks_of_a_complete_file_are_skipped(tmp_path: Path) -> None:
    p = tree(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    store = Store(out, p.manifest, SID)
    store.prepare()
    n = len(p.manifest.files[0].chunk_hashes)
    run_stages_in_threads(store, p, list(range(n)))
    assert store.verify_chunk(*chunk(p, 0)) is None  # re-sent after the file completed
    with pytest.raises(IntegrityError):  # but still checked
        store.verify_chunk(0, 0, b"junk")
    store.close()


async def test_reader_stops_while_the_write_stage_is_blocked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Backpressure: with stage 2 stuck, the receiver reads at most its byte
    budget plus one read (and whatever the transport buffers), then waits."""
    top = tmp_path / "src"
    write_file(top / "big.bin", 12 << 20)
    key = secrets.token_bytes(32)
    p = build_manifest([top], name="t", chunk_size=CS, key=key)
    from p2pshare.transfer import ShareRegistry

    registry = ShareRegistry()
    registry.add(p)
    monkeypatch.setattr(_trio_fetch, "PIPELINE_BYTES", 1 << 20)
    monkeypatch.setattr(_trio_fetch, "DATA_READ_SIZE", 256 * 1024)
    gate = threading.Event()
    original = Store.write_verified

    def blocked(self: Store, v: Verified) -> str | None:
        if not gate.wait(20):
            raise AssertionError("never released")
        return original(self, v)

    monkeypatch.setattr(Store, "write_verified", blocked)
    seen: list[int] = []

    async def watch(receiver_end: list[object]) -> None:
        await trio.sleep(1.0)
        stream = receiver_end[0]
        first = stream.read_bytes  # type: ignore[attr-defined]
        await trio.sleep(0.3)
        seen.extend([first, stream.read_bytes])  # type: ignore[attr-defined]
        gate.set()

    import xfer_helpers

    ends: list[object] = []
    real_pair = xfer_helpers.stream_pair

    def spy_pair(cut: int | None = None) -> tuple[xfer_helpers.MemByteStream, xfer_helpers.MemByteStream]:
        r, s = real_pair(cut)
        ends.append(r)
        return r, s

    import test_runners

    monkeypatch.setattr(test_runners, "stream_pair", spy_pair)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch, ends)
        try:
            result, _ = await run_pair(registry, key, tmp_path / "out")
        finally:
            gate.set()
    assert not isinstance(result, Exception), result
    assert (tmp_path / "out" / "src" / "big.bin").read_bytes() == (top / "big.bin").read_bytes()
    first, later = seen
    assert first == later, "the reader kept reading while nothing was stored"
    # budget + one read + one chunk frame in flight in the decoder + handshake
    assert first <= (1 << 20) + 256 * 1024 + CS + 64 * 1024
    assert first < (12 << 20) // 2


def test_produce_frames_seals_in_place(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    p = build_manifest([make_tree(tmp_path / "src")], name="t", chunk_size=CS, key=key)
    material = ShareMaterial.build(crypto.ShareKeys.derive(key), p.manifest)
    reader = ChunkReader(p.manifest, p.sources)
    indices = ranges.iter_ranges([(0, p.manifest.total_chunks)])
    decoder = wire.FrameDecoder(wire.TO_RECEIVER)
    decoder.set_chunk_size(CS)
    got: dict[int, bytes] = {}
    batches = 0
    for _ in range(100):
        blob, finished, failed = produce_frames(reader, material.cipher, indices, 3 * CS)
        assert isinstance(blob, memoryview) and failed is None
        if not finished:
            assert len(blob) >= 3 * CS  # a batch fills its budget
        batches += 1
        for msg in decoder.feed(blob):
            assert isinstance(msg, wire.Chunk)
            f, c = p.manifest.locate(msg.index)
            last = c == len(p.manifest.files[f].chunk_hashes) - 1
            got[msg.index] = material.cipher.open(f, c, last, msg.nonce, msg.ciphertext)
        if finished:
            break
    reader.close()
    assert batches > 1 and decoder.buffered == 0
    assert sorted(got) == list(range(p.manifest.total_chunks))
    assert all(got[g] == chunk(p, g)[2] for g in got)


def _decode_indices(blob: bytearray) -> list[int]:
    decoder = wire.FrameDecoder(wire.TO_RECEIVER)
    return [msg.index for msg in decoder.feed(blob) if isinstance(msg, wire.Chunk)]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("rewrite", UnavailableReason.CHANGED),
        ("truncate", UnavailableReason.CHANGED),
        ("remove", UnavailableReason.REMOVED),
    ],
)
def test_produce_frames_ends_a_batch_at_a_changed_file(tmp_path: Path, damage: str, reason: UnavailableReason) -> None:
    """The chunks before the changed one go out; the error names its file and why."""
    key = secrets.token_bytes(32)
    p = tree(tmp_path)
    material = ShareMaterial.build(crypto.ShareKeys.derive(key), p.manifest)
    victim = next(i for i, f in enumerate(p.manifest.files) if f.path.endswith("many/f2.bin"))
    path = Path(p.sources[victim])
    if damage == "rewrite":
        with open(path, "r+b") as fh:
            fh.seek(CS + 3)  # its second chunk
            fh.write(b"changed")
    elif damage == "truncate":
        os.truncate(path, CS + 3)
    else:
        path.unlink()
    first = p.manifest.first_chunk(victim)
    bad = first + (1 if damage != "remove" else 0)
    reader = ChunkReader(p.manifest, p.sources)
    indices = ranges.iter_ranges([(0, p.manifest.total_chunks)])
    blob, finished, failed = produce_frames(reader, material.cipher, indices, 1 << 30)
    assert not finished and failed is not None
    assert failed.file_index == victim and failed.reason is reason
    assert _decode_indices(blob) == list(range(bad))
    assert next(indices) == bad + 1  # the failed chunk was taken: the caller skips the rest of its file
    reader.close()


def test_a_file_swapped_for_a_fifo_is_unavailable_not_a_hang(tmp_path: Path) -> None:
    """Serving opens without blocking: a FIFO where a shared file was (no
    writer) cannot be read at an offset, so its file is unavailable,
    instead of the open holding the worker thread."""
    key = secrets.token_bytes(32)
    p = tree(tmp_path)
    material = ShareMaterial.build(crypto.ShareKeys.derive(key), p.manifest)
    victim = next(i for i, f in enumerate(p.manifest.files) if f.path.endswith("many/f2.bin"))
    path = Path(p.sources[victim])
    path.unlink()
    os.mkfifo(path)
    reader = ChunkReader(p.manifest, p.sources, p.identities)
    indices = ranges.iter_ranges([(0, p.manifest.total_chunks)])
    hung, outcome = run_past_fifo(lambda: produce_frames(reader, material.cipher, indices, 1 << 30), path)
    reader.close()
    assert not hung, "serving blocked on a FIFO"
    assert isinstance(outcome, tuple)
    blob, finished, failed = outcome
    assert not finished and failed is not None
    assert failed.file_index == victim and failed.reason is UnavailableReason.UNREADABLE
    assert _decode_indices(blob) == list(range(p.manifest.first_chunk(victim)))


def test_seal_into_needs_the_exact_size_and_opens_like_seal() -> None:
    keys = crypto.ShareKeys.derive(secrets.token_bytes(32))
    cipher = crypto.ChunkCipher(keys, b"d" * 32)
    data = os.urandom(1000)
    buf = bytearray(2000)
    with memoryview(buf) as view:
        nonce = cipher.seal_into(1, 2, True, data, view[10 : 10 + len(data) + crypto.TAG_BYTES])
        with pytest.raises(ValueError):
            cipher.seal_into(1, 2, True, data, view[: len(data)])  # no room for the tag
    sealed = bytes(buf[10 : 10 + len(data) + crypto.TAG_BYTES])
    assert cipher.open(1, 2, True, nonce, sealed) == data
    with pytest.raises(crypto.DecryptError):
        cipher.open(1, 2, False, nonce, sealed)  # position is authenticated


def test_checked_chunks_need_no_second_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every chunk checked against the authenticated manifest: the file is
    final after one SHA-256 pass over its bytes — no whole-file hash (a
    second pass over the same bytes, issue 12), no reading it back."""
    import hashlib
    import types

    from p2pshare.transfer import store as store_mod

    hashed = [0]

    class Counting:
        def __init__(self, data: bytes | memoryview = b"") -> None:
            self._h = hashlib.sha256()
            self.update(data)

        def update(self, data: bytes | memoryview) -> None:
            hashed[0] += len(data)
            self._h.update(data)

        def digest(self) -> bytes:
            return self._h.digest()

    p = tree(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    store = Store(out, p.manifest, SID)
    store.prepare()
    monkeypatch.setattr(store_mod, "hashlib", types.SimpleNamespace(sha256=Counting))
    entry = p.manifest.files[0]
    for g in range(len(entry.chunk_hashes)):
        v = store.verify_chunk(*chunk(p, g))
        assert v is not None
        done = store.write_verified(v)
    assert done == entry.path
    store.close()
    assert hashed[0] == entry.size
    assert (out / entry.path).read_bytes() == Path(p.sources[0]).read_bytes()


def test_the_sharer_hashes_no_chunk_of_an_unchanged_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the files' identities the reader checks ``fstat``, not SHA-256;
    once a file changed, its chunks are hashed again and a changed one is refused."""
    from p2pshare.transfer import source as source_mod
    from p2pshare.transfer.errors import SourceChangedError

    p = tree(tmp_path)
    assert p.identities is not None
    reader = ChunkReader(p.manifest, p.sources, p.identities)
    real = source_mod.hashlib.sha256
    calls = [0]

    def counting(data: bytes = b"") -> object:
        calls[0] += 1
        return real(data)

    monkeypatch.setattr(source_mod.hashlib, "sha256", counting)
    n = len(p.manifest.files[0].chunk_hashes)
    for g in range(n):
        reader.read(g)
    assert calls[0] == 0
    with open(p.sources[0], "r+b") as fh:
        fh.seek(CS + 1)
        fh.write(b"edited")
    reader.read(0)  # unchanged chunk of a changed file: hashed, still served
    assert calls[0] == 1
    with pytest.raises(SourceChangedError, match="changed since it was shared"):
        reader.read(1)
    reader.close()


def test_produce_frames_reuses_the_buffers_it_is_given(tmp_path: Path) -> None:
    """A batch is sealed into the caller's buffer and every chunk is read into
    the reader's one buffer: no fresh memory per batch or per chunk."""
    key = secrets.token_bytes(32)
    p = build_manifest([make_tree(tmp_path / "src")], name="t", chunk_size=CS, key=key)
    material = ShareMaterial.build(crypto.ShareKeys.derive(key), p.manifest)
    reader = ChunkReader(p.manifest, p.sources)
    views = [reader.read_view(g)[3] for g in range(2)]
    assert views[0].obj is views[1].obj  # the reader's own buffer, every time
    for v in views:
        v.release()
    indices = ranges.iter_ranges([(0, p.manifest.total_chunks)])
    out = bytearray(frames_capacity(p.manifest, 2 * CS))
    got: list[int] = []
    finished = False
    while not finished:
        blob, finished, failed = produce_frames(reader, material.cipher, indices, 2 * CS, out)
        assert failed is None and blob.obj is out
        got.extend(_decode_indices(bytearray(blob)))  # consumed before the next batch overwrites it
        blob.release()
    reader.close()
    assert got == list(range(p.manifest.total_chunks))


async def test_the_byte_budget_wakes_every_waiter() -> None:
    """Two tasks waiting for room both go on once bytes come back."""
    import trio.testing

    budget = _trio_fetch._Budget(10)
    budget.take(10)
    woken: list[int] = []

    async def waiter(n: int) -> None:
        await budget.wait_for_room()
        woken.append(n)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter, 1)
            nursery.start_soon(waiter, 2)
            await trio.testing.wait_all_tasks_blocked()
            assert woken == []
            budget.give_back(4)
    assert sorted(woken) == [1, 2]


async def test_a_buffer_that_cannot_be_had_in_stage_1_is_an_output_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stage 1 runs in the event-loop thread: an OSError there (no memory
    for a chunk's aligned buffer) still ends the transfer as the one-line
    OutputError a thread's did, and no file appears as if complete."""
    import errno

    from p2pshare.transfer import ShareRegistry, _direct
    from p2pshare.transfer.errors import OutputError

    top = tmp_path / "src"
    write_file(top / "big.bin", 2 << 20)  # large enough to go direct (MIN_FILE)
    key = secrets.token_bytes(32)
    registry = ShareRegistry()
    registry.add(build_manifest([top], name="t", chunk_size=CS, key=key))

    def no_memory(self: _direct.BlockPool) -> object:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(_direct.BlockPool, "take", no_memory)
    out = tmp_path / "out"
    result, _ = await run_pair(registry, key, out)
    assert isinstance(result, OutputError), result
    assert str(result) == f"cannot write into {out}: Cannot allocate memory", str(result)
    assert not (out / "src" / "big.bin").exists()
