"""A receiver that connects while the share is still hashed waits on the
registry's change notices, not on a timer: it gets the manifest, or the
reason there is none, as soon as the sharer knows it.

``PREPARING_INTERVAL`` is made an hour here, so only a wake-up by the
registry can end the wait within the test's 30 s."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from xfer_helpers import RECEIVER_ID, SHARER_ID, make_tree, snapshot, stream_pair

from p2pshare.transfer import ShareRegistry, _trio_serve, build_manifest, fetch, serve_transfer
from p2pshare.transfer.crypto import ShareKeys
from p2pshare.transfer.errors import RemoteError, SharerStoppedError, SourceChangedError, TransferError
from p2pshare.transfer.events import SharerPreparing, TransferEvent
from p2pshare.transfer.scan import HashProgress, PreparedShare

CS = 64 * 1024


@pytest.fixture(autouse=True)
def _no_timer_wakeups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_trio_serve, "PREPARING_INTERVAL", 3600.0)


async def _early_receiver(
    tmp_path: Path, then: Callable[[ShareRegistry, PreparedShare, bytes, HashProgress], None]
) -> tuple[object, Path, PreparedShare]:
    """A receiver connects while the share is pending; once it heard
    PREPARING, ``then`` changes the registry. Returns (result or error, out, share)."""
    key = secrets.token_bytes(32)
    prepared = build_manifest([make_tree(tmp_path / "src")], name="t", chunk_size=CS, key=key)
    registry = ShareRegistry()
    progress = HashProgress(100)
    registry.add_pending(key, None, progress)
    heard = trio.Event()
    out = tmp_path / "out"
    r, s = stream_pair()
    outcome: object = None

    def on_event(event: TransferEvent) -> None:
        if isinstance(event, SharerPreparing):
            heard.set()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: serve_transfer(s, registry=registry, local_peer_id=SHARER_ID, remote_peer_id=RECEIVER_ID)
            )

            async def change() -> None:
                await heard.wait()
                then(registry, prepared, key, progress)

            nursery.start_soon(change)
            try:
                outcome = await fetch(
                    r, key=key, output_dir=out, local_peer_id=RECEIVER_ID, remote_peer_id=SHARER_ID, on_event=on_event
                )
            except (RemoteError, TransferError) as exc:
                outcome = exc
            await r.reset()
    return outcome, out, prepared


async def test_the_manifest_goes_out_as_soon_as_the_share_is_served(tmp_path: Path) -> None:
    def serve(registry: ShareRegistry, prepared: PreparedShare, key: bytes, _p: HashProgress) -> None:
        registry.add(prepared, key)

    result, out, _ = await _early_receiver(tmp_path, serve)
    assert not isinstance(result, Exception), result
    assert snapshot(out) == snapshot(tmp_path / "src")


async def test_a_failed_preparation_is_told_at_once(tmp_path: Path) -> None:
    def fail(registry: ShareRegistry, _s: PreparedShare, _k: bytes, progress: HashProgress) -> None:
        progress.failed = "tree/big.bin changed while it was hashed"
        registry.changed()

    result, _, _ = await _early_receiver(tmp_path, fail)
    assert isinstance(result, SourceChangedError), result


async def test_a_share_withdrawn_while_prepared_ends_the_wait(tmp_path: Path) -> None:
    def withdraw(registry: ShareRegistry, _s: PreparedShare, key: bytes, _p: HashProgress) -> None:
        registry.remove(ShareKeys.derive(key, None).share_id)

    result, _, _ = await _early_receiver(tmp_path, withdraw)
    assert isinstance(result, SharerStoppedError), result


def test_the_registry_tells_its_listeners_and_forgets_removed_ones() -> None:
    registry = ShareRegistry()
    calls: list[str] = []

    def listener() -> None:
        calls.append("x")

    registry.listeners.add(listener)
    key = secrets.token_bytes(32)
    sid = registry.add_pending(key, None, HashProgress(1))
    registry.remove(sid)
    registry.changed()
    assert calls == ["x", "x"]
    registry.listeners.discard(listener)
    registry.changed()
    assert calls == ["x", "x"]


def test_a_removed_share_leaves_nothing_in_the_registry() -> None:
    """A node that shares and withdraws for months keeps no count per share it had."""
    registry = ShareRegistry()
    for _ in range(100):
        sid = registry.add_pending(secrets.token_bytes(32), None, HashProgress(1))
        assert registry.record_completed(sid) == 1
        registry.remove(sid)
        assert registry.record_completed(sid) == 0  # a session ending late counts nothing
    assert len(registry) == 0 and registry._completed == {}
