"""fetch / serve_transfer end to end over trio memory streams."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
import trio
from xfer_helpers import RECEIVER_ID, SHARER_ID, MemByteStream, make_tree, snapshot, stream_pair

from p2pshare.cli import exit_code_for
from p2pshare.transfer import PROTOCOL_ID, FetchResult, ShareRegistry, build_manifest, fetch, serve_transfer
from p2pshare.transfer._trio_fetch import Approve
from p2pshare.transfer.errors import (
    BusyError,
    LocalError,
    OutputError,
    RemoteError,
    StreamEndedError,
    UnavailableFile,
    UnavailableReason,
    UnknownShareError,
)
from p2pshare.transfer.events import (
    Authenticated,
    FilesCompleted,
    FileUnavailable,
    ManifestReceived,
    Progress,
    ReceiverConnected,
    ReceiverFailed,
    ReceiverFinished,
    StoppedServingFile,
    TransferCompleted,
    TransferEvent,
)
from p2pshare.transfer.scan import PreparedShare
from p2pshare.transfer.source import ChunkReader

CS = 64 * 1024


def share(tmp_path: Path) -> tuple[PreparedShare, bytes, ShareRegistry]:
    key = secrets.token_bytes(32)
    prepared = build_manifest([make_tree(tmp_path / "src")], name="t", chunk_size=CS, key=key)
    registry = ShareRegistry()
    registry.add(prepared)
    return prepared, key, registry


async def run_pair(
    registry: ShareRegistry,
    key: bytes,
    out: Path,
    *,
    cut_sharer_after: int | None = None,
    events: list[TransferEvent] | None = None,
    sharer_events: list[TransferEvent] | None = None,
    approve: Approve | None = None,
) -> tuple[object, MemByteStream]:
    """Run serve_transfer and fetch against each other; return (result or exception, receiver end)."""
    r, s = stream_pair(cut_sharer_after)
    outcome: object = None
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: serve_transfer(
                    s,
                    registry=registry,
                    local_peer_id=SHARER_ID,
                    remote_peer_id=RECEIVER_ID,
                    on_event=sharer_events.append if sharer_events is not None else None,
                )
            )
            try:
                outcome = await fetch(
                    r,
                    key=key,
                    output_dir=out,
                    local_peer_id=RECEIVER_ID,
                    remote_peer_id=SHARER_ID,
                    on_event=events.append if events is not None else None,
                    approve=approve,
                )
            except RemoteError as exc:
                outcome = exc
            except LocalError as exc:
                outcome = exc
            await r.reset()
    return outcome, r


async def test_many_small_files_complete_in_batched_events(tmp_path: Path) -> None:
    """Small files arrive many to a read and are written many to a batch:
    each is said complete exactly once, in far fewer events than files."""
    top = tmp_path / "src" / "many"
    top.mkdir(parents=True)
    for i in range(300):
        (top / f"f{i:03d}.txt").write_bytes(secrets.token_bytes(50 + i))
    key = secrets.token_bytes(32)
    prepared = build_manifest([top], name="many", chunk_size=CS, key=key)
    registry = ShareRegistry()
    registry.add(prepared)
    events: list[TransferEvent] = []
    result, _ = await run_pair(registry, key, tmp_path / "out", events=events)
    assert not isinstance(result, Exception), result
    completed = [e.paths for e in events if isinstance(e, FilesCompleted)]
    assert all(completed)
    assert sorted(p for paths in completed for p in paths) == sorted(f.path for f in prepared.manifest.files)
    assert len(completed) < 300 // 4, len(completed)


def test_protocol_id() -> None:
    assert PROTOCOL_ID == "/p2pshare/transfer/1.0.0"


async def test_full_tree(tmp_path: Path) -> None:
    prepared, key, registry = share(tmp_path)
    events: list[TransferEvent] = []
    sharer_events: list[TransferEvent] = []
    result, _ = await run_pair(registry, key, tmp_path / "out", events=events, sharer_events=sharer_events)
    assert not isinstance(result, Exception), result
    assert snapshot(tmp_path / "out") == snapshot(tmp_path / "src")
    assert (tmp_path / "out" / "tree" / "empty-dir").is_dir()
    assert (tmp_path / "out" / "tree" / "empty.txt").read_bytes() == b""
    assert not (tmp_path / "out" / ".p2pshare-partial").exists()
    m = prepared.manifest
    assert result.bytes_received == m.total_bytes and result.already_had_bytes == 0  # type: ignore[attr-defined]
    kinds = [type(e) for e in events]
    assert kinds[:2] == [Authenticated, ManifestReceived]
    assert kinds[-1] is TransferCompleted
    completed = [e.paths for e in events if isinstance(e, FilesCompleted)]
    assert all(completed)  # never an empty event
    assert sorted(p for paths in completed for p in paths) == sorted(f.path for f in m.files)  # each once
    last_progress = [e for e in events if isinstance(e, Progress)][-1]
    assert last_progress.bytes_verified == last_progress.total_bytes == m.total_bytes
    assert [type(e) for e in sharer_events] == [ReceiverConnected, ReceiverFinished]
    assert registry.completed(prepared.share_id) == 1


async def test_resume_after_cut(tmp_path: Path) -> None:
    prepared, key, registry = share(tmp_path)
    out = tmp_path / "out"
    total = prepared.manifest.total_bytes
    result, _ = await run_pair(registry, key, out, cut_sharer_after=2 * 1024 * 1024)
    assert isinstance(result, StreamEndedError), result
    assert result.retryable and "run the same command again" in str(result)
    assert not (out / "tree" / "big.bin").exists()  # never a complete-looking file
    assert any((out / ".p2pshare-partial").iterdir())
    events: list[TransferEvent] = []
    result2, r2 = await run_pair(registry, key, out, events=events)
    assert not isinstance(result2, Exception), result2
    assert snapshot(out) == snapshot(tmp_path / "src")
    assert 0 < result2.bytes_received < total  # type: ignore[attr-defined]
    assert r2.read_bytes < total
    manifest_event = next(e for e in events if isinstance(e, ManifestReceived))
    assert manifest_event.already_have_bytes == total - result2.bytes_received  # type: ignore[attr-defined]
    assert registry.completed(prepared.share_id) == 1
    # A third run finds everything in place and transfers nothing.
    result3, _ = await run_pair(registry, key, out)
    assert result3.bytes_received == 0  # type: ignore[attr-defined]


def _partial_dir(out: Path, prepared: PreparedShare) -> Path:
    return out / ".p2pshare-partial" / prepared.share_id.hex()


@pytest.mark.parametrize("victim", ["tree/big.bin", "tree/sub/exact.bin"])  # mid-share, and the last file
async def test_changed_file_costs_only_that_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, victim: str) -> None:
    prepared, key, registry = share(tmp_path)
    m = prepared.manifest
    index = next(i for i, f in enumerate(m.files) if f.path == victim)
    with open(prepared.sources[index], "r+b") as fh:
        fh.seek(CS + 5)  # its second chunk: the first one still goes out
        fh.write(b"changed!")
    out = tmp_path / "out"
    events: list[TransferEvent] = []
    sharer_events: list[TransferEvent] = []
    result, _ = await run_pair(registry, key, out, events=events, sharer_events=sharer_events)
    assert isinstance(result, FetchResult), result
    gone = UnavailableFile(victim, UnavailableReason.CHANGED)
    assert result.unavailable == (gone,) and result.files == len(m.files)
    want = snapshot(tmp_path / "src")
    del want[victim]
    assert snapshot(out) == want  # every other file, byte for byte; the changed one not in place
    assert (_partial_dir(out, prepared) / str(index)).stat().st_size >= CS  # its verified part, kept
    assert FileUnavailable(victim, UnavailableReason.CHANGED) in events
    assert [type(e) for e in sharer_events] == [ReceiverConnected, StoppedServingFile, ReceiverFinished]
    stopped = sharer_events[1]
    assert isinstance(stopped, StoppedServingFile) and stopped.path == victim and "changed" in stopped.detail
    assert registry.unavailable(prepared.share_id) == {index: UnavailableReason.CHANGED}
    assert registry.completed(prepared.share_id) == 1  # the receiver confirmed all it could get

    # Again: the sharer says so at once, without reading the file again, and
    # the receiver (with everything else in place) fetches nothing.
    read_files: list[int] = []
    real_read = ChunkReader.read

    def counting_read(self: ChunkReader, global_index: int) -> tuple[int, int, bool, bytes]:
        read_files.append(m.locate(global_index)[0])
        return real_read(self, global_index)

    monkeypatch.setattr(ChunkReader, "read", counting_read)
    events.clear()
    sharer_events.clear()
    again, _ = await run_pair(registry, key, out, events=events, sharer_events=sharer_events)
    assert isinstance(again, FetchResult) and again.unavailable == (gone,), again
    assert again.bytes_received == 0 and index not in read_files
    assert FileUnavailable(victim, UnavailableReason.CHANGED) in events
    assert [type(e) for e in sharer_events] == [ReceiverConnected, ReceiverFinished]  # said once per share
    assert snapshot(out) == want


async def test_removed_file_is_named_and_the_rest_arrives(tmp_path: Path) -> None:
    prepared, key, registry = share(tmp_path)
    (tmp_path / "src" / "tree" / "sub" / "deeper" / "small.bin").unlink()
    result, _ = await run_pair(registry, key, tmp_path / "out")
    assert isinstance(result, FetchResult), result
    assert result.unavailable == (UnavailableFile("tree/sub/deeper/small.bin", UnavailableReason.REMOVED),)
    assert snapshot(tmp_path / "out") == snapshot(tmp_path / "src")  # small.bin is gone from both


async def test_a_file_completed_before_the_notice_is_not_lost(tmp_path: Path) -> None:
    """Unavailable on the sharer, already here: the receiver has the file, so nothing is missing."""
    prepared, key, registry = share(tmp_path)
    out = tmp_path / "out"
    assert isinstance((await run_pair(registry, key, out))[0], FetchResult)
    registry.mark_unavailable(prepared.share_id, 0, UnavailableReason.CHANGED)
    events: list[TransferEvent] = []
    result, _ = await run_pair(registry, key, out, events=events)
    assert isinstance(result, FetchResult) and result.unavailable == (), result
    assert not any(isinstance(e, FileUnavailable) for e in events)
    assert not (out / ".p2pshare-partial").exists()


async def test_two_receivers_at_once(tmp_path: Path) -> None:
    prepared, key, registry = share(tmp_path)
    results: list[object] = []

    async def one(name: str) -> None:
        results.append((await run_pair(registry, key, tmp_path / name))[0])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(one, "out1")
        nursery.start_soon(one, "out2")
    assert not any(isinstance(r, Exception) for r in results), results
    assert snapshot(tmp_path / "out1") == snapshot(tmp_path / "out2") == snapshot(tmp_path / "src")
    assert registry.completed(prepared.share_id) == 2


async def test_wrong_key(tmp_path: Path) -> None:
    _, _, registry = share(tmp_path)
    sharer_events: list[TransferEvent] = []
    result, _ = await run_pair(registry, secrets.token_bytes(32), tmp_path / "out", sharer_events=sharer_events)
    assert isinstance(result, UnknownShareError), result
    assert exit_code_for(result) == 3
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    assert isinstance(sharer_events[-1], ReceiverFailed)


async def test_removed_share(tmp_path: Path) -> None:
    prepared, key, registry = share(tmp_path)
    registry.remove(prepared.share_id)
    result, _ = await run_pair(registry, key, tmp_path / "out")
    assert isinstance(result, UnknownShareError)


async def test_output_conflict(tmp_path: Path) -> None:
    _, key, registry = share(tmp_path)
    out = tmp_path / "out"
    (out / "tree").mkdir(parents=True)
    (out / "tree" / "big.bin").write_bytes(b"precious")
    result, _ = await run_pair(registry, key, out)
    assert isinstance(result, OutputError) and exit_code_for(result) == 2
    assert "refusing to overwrite" in str(result)
    assert (out / "tree" / "big.bin").read_bytes() == b"precious"


async def test_bad_key_length_is_local_error(tmp_path: Path) -> None:
    r, _ = stream_pair()
    with pytest.raises(LocalError):
        await fetch(r, key=b"short", output_dir=tmp_path, local_peer_id=b"a", remote_peer_id=b"b")


@pytest.mark.parametrize(
    "garbage", [b"", b"\x07\xff\xff\xff\xff", os.urandom(300), b"\x01\x00\x00\x00\x31" + b"x" * 49]
)
async def test_sharer_survives_garbage(tmp_path: Path, garbage: bytes) -> None:
    _, _, registry = share(tmp_path)
    r, s = stream_pair()
    sharer_events: list[TransferEvent] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: serve_transfer(
                    s,
                    registry=registry,
                    local_peer_id=SHARER_ID,
                    remote_peer_id=RECEIVER_ID,
                    on_event=sharer_events.append,
                )
            )
            await r.write(garbage)
            await r.close_write()
            while await r.read(1 << 16):  # the sharer answers (maybe ERROR) and closes
                pass
    assert isinstance(sharer_events[-1], ReceiverFailed)


async def test_busy_sharer(tmp_path: Path) -> None:
    _, key, registry = share(tmp_path)
    registry.max_sessions = 0
    result, _ = await run_pair(registry, key, tmp_path / "out")
    assert isinstance(result, BusyError) and result.retryable
    assert registry.active_sessions == 0
    registry.max_sessions = 1
    result, _ = await run_pair(registry, key, tmp_path / "out")
    assert not isinstance(result, Exception)
    assert registry.active_sessions == 0


async def test_output_is_a_file(tmp_path: Path) -> None:
    _, key, registry = share(tmp_path)
    (tmp_path / "out").write_bytes(b"")
    result, _ = await run_pair(registry, key, tmp_path / "out")
    assert isinstance(result, OutputError) and exit_code_for(result) == 2


async def test_silent_sharer_times_out(tmp_path: Path) -> None:
    r, _s = stream_pair()  # nobody serves the other end
    with trio.fail_after(5), pytest.raises(StreamEndedError, match="stopped responding"):
        await fetch(
            r,
            key=secrets.token_bytes(32),
            output_dir=tmp_path,
            local_peer_id=b"a",
            remote_peer_id=b"b",
            idle_timeout=0.2,
        )


async def test_share_of_only_empty_things(tmp_path: Path) -> None:
    (tmp_path / "src" / "d" / "e").mkdir(parents=True)
    (tmp_path / "src" / "d" / "z").write_bytes(b"")
    key = secrets.token_bytes(32)
    registry = ShareRegistry()
    registry.add(build_manifest([tmp_path / "src" / "d"], name="t", key=key))
    result, _ = await run_pair(registry, key, tmp_path / "out")
    assert not isinstance(result, Exception), result
    assert snapshot(tmp_path / "out") == {"d": None, "d/e": None, "d/z": b""}
