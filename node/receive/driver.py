"""The receive session's trio driver: performs what :mod:`.core` decides.

Each operation the core asks for is one await here (probe the NAT, reach the
sharer, wait for hole punching, run one transfer); its outcome goes back to
the core with the current time. Nothing here decides whether to retry,
wait or give up.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from p2pshare import sharecode
from p2pshare.node.circuit.client import RelayClient
from p2pshare.node.errors import LocalNodeError, PeerUnreachableError
from p2pshare.node.events import ConnectionPath, NodeEvent, Waiting
from p2pshare.node.host import Host
from p2pshare.node.ping import PING_PROTOCOL, measure_rtt
from p2pshare.node.reach import Reacher
from p2pshare.node.receive.core import (
    Action,
    Emit,
    Fail,
    Finish,
    Input,
    Probe,
    Reach,
    Reached,
    ReachFailed,
    ReceiveResult,
    ReceiveSession,
    Sleep,
    StreamOpenFailed,
    TimerFired,
    Transfer,
    TransferDone,
    TransferFailed,
    TransferMoved,
    TransferTimedOut,
    UpgradeWaitEnded,
    WaitUpgrade,
    probe_targets,
)
from p2pshare.node.traversal import Traversal
from p2pshare.transfer import PROTOCOL_ID, ResumeMemo, fetch
from p2pshare.transfer.errors import BusyError, TransferError, cannot_create_output
from p2pshare.transfer.events import TransferEvent
from p2pshare.transfer.store import Conflict, Need

if TYPE_CHECKING:
    from p2pshare.transfer._trio_fetch import Approve, Destination
    from p2pshare.transfer.manifest import Manifest

log = logging.getLogger(__name__)

RTT_TIMEOUT = 2.0  # the ping in the Connected event is informative only


class ReceiveDriver:
    """Runs one :class:`ReceiveSession` against the node's host and services."""

    def __init__(
        self,
        *,
        host: Host,
        relay: RelayClient,
        traversal: Traversal,
        reacher: Reacher,
        emit: Callable[[NodeEvent], None],
    ) -> None:
        self.host = host
        self.relay = relay
        self.traversal = traversal
        self.reacher = reacher
        self.emit = emit
        self.approve: Approve | None = None
        self.conflict = Conflict.REFUSE
        self.destination: Destination | None = None
        self.memo = ResumeMemo()  # what this run verified on disk: a reconnect does not re-hash it

    async def run(
        self,
        parsed: sharecode.ShareCode | sharecode.LegacyCode,
        output_dir: Path,
        timeout: float,
        approve: Approve | None = None,
        conflict: Conflict = Conflict.REFUSE,
        destination: Destination | None = None,
    ) -> ReceiveResult:
        self.approve = approve
        self.conflict = conflict
        self.destination = destination
        self.memo = ResumeMemo()
        addresses = parsed.addresses if isinstance(parsed, sharecode.ShareCode) else ()
        nat_known = self.traversal.nat is not None
        session = ReceiveSession(
            timeout=timeout,
            probe=probe_targets(addresses, nat_known),
            learn_mapping=not nat_known and self.traversal.can_probe(),
            stay_relayed=self.reacher.force_relay,
        )
        actions = session.start(trio.current_time())
        end: Finish | Fail | None = None
        # The probe runs here, beside the session; cancelled when it ends. Its
        # end leaves the nursery before it is acted on (raising inside would
        # wrap the error in an exception group).
        async with trio.open_nursery() as background:
            while end is None:
                operation: Action | None = None
                for action in actions:
                    if isinstance(action, Emit):
                        self.emit(action.event)
                    elif isinstance(action, Probe):
                        background.start_soon(self._probe, action)
                    elif isinstance(action, Finish | Fail):
                        end = action
                        break
                    else:
                        operation = action
                if end is not None:
                    break
                assert operation is not None, "the receive core gave no next step"
                log.debug("receive: %s -> %s", session.state.value, operation)
                waiting = _waiting_for(operation, trio.current_time(), session.last_error)
                if waiting is not None:
                    self.emit(Waiting(waiting))
                try:
                    outcome = await self._perform(operation, session, parsed, output_dir)
                except Exception as exc:  # noqa: BLE001 - raised below, outside the nursery
                    end = Fail(exc)
                    break
                actions = session.handle(outcome, trio.current_time())
            background.cancel_scope.cancel()
        if isinstance(end, Fail):
            raise end.error
        assert end is not None
        return end.result

    async def _probe(self, op: Probe) -> None:
        with trio.move_on_after(op.timeout):
            await self.traversal.probe(list(op.relays))

    async def _perform(
        self,
        op: Action,
        session: ReceiveSession,
        parsed: sharecode.ShareCode | sharecode.LegacyCode,
        output_dir: Path,
    ) -> Input:
        if isinstance(op, Reach):
            if op.avoid_limited and session.peer_id is not None:
                # The limited circuit (if the relay left it open) must not
                # satisfy the next reach: drop it, and skip its relay.
                self.reacher.note_limited(session.peer_id)
                if self._path(session.peer_id) is ConnectionPath.RELAYED:
                    await self.host.disconnect(session.peer_id)
            try:
                peer_id = await self.reacher.reach_until(parsed, op.deadline, op.last_error, fresh=op.avoid_limited)
            except PeerUnreachableError as exc:
                return ReachFailed(exc)
            path = self._path(peer_id)
            rtt = await self._rtt(peer_id)
            limit = self.relay.circuit_limit(peer_id) if path is ConnectionPath.RELAYED else None
            return Reached(peer_id, path, rtt, limit)
        if isinstance(op, WaitUpgrade):
            started = trio.current_time()
            found = await self.traversal.wait_direct(op.peer_id, op.timeout)
            return UpgradeWaitEnded(_as_path(found), trio.current_time() - started)
        if isinstance(op, Sleep):
            await trio.sleep_until(op.until)
            return TimerFired()
        if isinstance(op, Transfer):
            return await self._transfer(op, session, parsed, output_dir)
        raise AssertionError(f"not an operation: {op!r}")

    async def _transfer(
        self,
        op: Transfer,
        session: ReceiveSession,
        parsed: sharecode.ShareCode | sharecode.LegacyCode,
        output_dir: Path,
    ) -> Input:
        """One stream, one fetch; relayed, raced against an upgrade to a direct path."""
        try:
            stream = await self.host.open_stream(op.peer_id, PROTOCOL_ID)
        except (OSError, ConnectionError) as exc:
            return StreamOpenFailed(exc)

        # The caller's deadline is a cancel scope around the fetch; progress moves it.
        deadline = trio.CancelScope(deadline=op.deadline)

        def on_transfer_event(event: TransferEvent) -> None:
            for action in session.transfer_event(event, trio.current_time()):
                assert isinstance(action, Emit)
                self.emit(action.event)
            if deadline.deadline != session.deadline:  # trio re-files a scope even for the same value
                deadline.deadline = session.deadline

        async def approve(manifest: Manifest, needed: Need) -> None:
            """A person reading the list is not a stalled sharer: the clock stops meanwhile."""
            if self.approve is None:
                return
            deadline.deadline = math.inf
            try:
                await self.approve(manifest, needed)
            finally:
                session.waited(trio.current_time())
                deadline.deadline = session.deadline

        moved: TransferMoved | None = None
        outcome: Input | None = None
        try:
            with deadline:
                async with trio.open_nursery() as nursery:
                    if op.watch_upgrade:

                        async def watch_upgrade() -> None:
                            nonlocal moved
                            started = trio.current_time()
                            found = await self.traversal.wait_direct(op.peer_id, math.inf, until_failure=False)
                            moved = TransferMoved(_as_path(found), trio.current_time() - started)
                            nursery.cancel_scope.cancel()

                        nursery.start_soon(watch_upgrade)
                    # Caught here, not around the nursery: trio would wrap it in a group.
                    try:
                        result = await fetch(
                            stream,
                            key=parsed.encryption_key,
                            share_code=parsed.share_code,
                            output_dir=output_dir,
                            local_peer_id=self.host.peer_id_bytes,
                            remote_peer_id=stream.remote_peer_id_bytes,
                            on_event=on_transfer_event,
                            approve=approve,
                            conflict=self.conflict,
                            destination=self.destination,
                            memo=self.memo,
                        )
                        outcome = TransferDone(result)
                    except TransferError as exc:
                        if exc.retryable:
                            log.info("transfer interrupted (%s); reconnecting", exc)
                        upgraded = self.traversal.upgrade(op.peer_id) is not None
                        outcome = TransferFailed(exc, exc.retryable, upgraded)
                    nursery.cancel_scope.cancel()
        finally:
            with contextlib.suppress(Exception):
                await stream.reset()
        if deadline.cancelled_caught and outcome is None:
            return TransferTimedOut()
        if outcome is None:
            assert moved is not None  # only the upgrade watcher cancels an unfinished fetch
            return moved
        return outcome

    def _path(self, peer_id: str) -> ConnectionPath:
        path = _as_path(self.host.connection_path(peer_id)) or ConnectionPath.DIRECT
        up = self.traversal.upgrade(peer_id)
        if path is ConnectionPath.DIRECT and up is not None and up.method == "hole-punch":
            return ConnectionPath.HOLE_PUNCHED
        return path

    async def _rtt(self, peer_id: str) -> float | None:
        with trio.move_on_after(RTT_TIMEOUT):
            try:
                stream = await self.host.open_stream(peer_id, PING_PROTOCOL)
                try:
                    return round(await measure_rtt(stream), 3)
                finally:
                    with contextlib.suppress(Exception):
                        await stream.reset()
            except Exception:  # noqa: BLE001 - RTT is informative only
                return None
        return None


def _waiting_for(op: Action, now: float, last_error: Exception | None = None) -> str | None:
    """The status line for an operation that may take a while (None: the
    progress bar speaks); ``last_error``: why the last attempt ended."""
    if isinstance(op, Reach):
        left = max(0.0, op.deadline - now)
        if op.avoid_limited:
            return "The relay limits what it carries; looking for one that carries data…"
        if op.last_error is not None:
            return f"Reconnecting to the sharer (up to {left:.0f} s)…"
        return f"Looking for the sharer (up to {left:.0f} s)…"
    if isinstance(op, WaitUpgrade):
        return f"Connected through a relay; trying for a direct path (up to {op.timeout:.0f} s)…"
    if isinstance(op, Sleep):
        if isinstance(last_error, BusyError):  # said "The connection dropped" (a hostile-peer review)
            return "The sharer is busy (too many transfers at once); trying again…"
        return "The connection dropped; reconnecting…"
    return None


def _as_path(path: str | None) -> ConnectionPath | None:
    return None if path is None else ConnectionPath(path)


def check_output_dir(output_dir: Path) -> None:
    """Make ``output_dir`` (and its parents) or say in one line why not,
    before any peer is dialled."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LocalNodeError(cannot_create_output(output_dir, exc)) from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise LocalNodeError(f"output directory {output_dir} is not writable")
