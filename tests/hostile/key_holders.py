"""``python -m tests.hostile.key_holders CODE N PER OUT HOLD``: ``N`` fresh
peer identities each open ``PER`` transfer streams to the sharer named by
``CODE``, prove the key (they hold the code: receivers the sharer gave it
to), take the list and never ask for data: every one sits at its
question, as a real ``get`` whose person never answers, holding one of the
sharer's session slots. Once every stream reached its question, or failed,
prints ``{"at_question": Q, "busy": B, "failed": F}``; ends after ``HOLD``
seconds."""

from __future__ import annotations

import json
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import trio
from libp2p.crypto.ed25519 import create_new_key_pair

from p2pshare.node.host import open_host
from p2pshare.sharecode.parse import parse_code
from p2pshare.transfer import PROTOCOL_ID, fetch
from p2pshare.transfer.errors import BusyError


async def main(code: str, n: int, per: int, out: str, hold: float) -> None:
    target = parse_code(code)
    peer, addrs = target.peer_id, list(target.addresses)  # type: ignore[union-attr]
    counts = {"at_question": 0, "busy": 0, "failed": 0}
    settled = trio.Semaphore(0)

    async def hold_one(host, i: int) -> None:  # type: ignore[no-untyped-def]
        async def never_answer(_manifest: object, _needed: object) -> None:
            counts["at_question"] += 1
            settled.release()
            await trio.sleep_forever()

        try:
            stream = await host.open_stream(peer, PROTOCOL_ID)
            await fetch(
                stream,
                key=target.encryption_key,  # type: ignore[union-attr]
                share_code=target.share_code,  # type: ignore[union-attr]
                output_dir=Path(out) / str(i),
                local_peer_id=host.peer_id_bytes,
                remote_peer_id=stream.remote_peer_id_bytes,
                approve=never_answer,  # type: ignore[arg-type]
                idle_timeout=600,
            )
        except BusyError:
            counts["busy"] += 1
            settled.release()
        except Exception:
            counts["failed"] += 1
            settled.release()

    async with AsyncExitStack() as stack, trio.open_nursery() as nursery:
        for h in range(n):
            host = await stack.enter_async_context(open_host(create_new_key_pair(), ["/ip4/127.0.0.1/tcp/0"]))
            await host.connect(peer, addrs, timeout=10)
            for s in range(per):
                nursery.start_soon(hold_one, host, h * per + s)
        with trio.move_on_after(60):
            for _ in range(n * per):
                await settled.acquire()
        print(json.dumps(counts), flush=True)
        await trio.sleep(hold)
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))
