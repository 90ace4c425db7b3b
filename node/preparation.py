"""Hashing a share after its code is out (issue 12).

The code commits only to the share key, the human code and the addresses;
nothing in it depends on the files' hashes. So ``Node.start_sharing`` scans
the paths (fast; every bad input fails there, before a code exists),
registers the share as pending and returns; ``prepare`` hashes in worker
threads meanwhile (hashlib releases the GIL: every core works) and then
serves the manifest. A receiver that connects early is told PREPARING with
the percentage instead of an error.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import trio

from p2pshare.transfer.errors import SourceError
from p2pshare.transfer.registry import ShareRegistry
from p2pshare.transfer.scan import HashProgress, PreparedShare, Scan, hash_scan

log = logging.getLogger(__name__)

#: Tests only: a hashed share is not served until this file exists, so a
#: test can connect a receiver while the share is certainly still preparing
#: (an ordering to assert on, not a race against the hashing speed).
HOLD_ENV = "P2PSHARE_TEST_HOLD_PREPARED"


@dataclass
class Preparation:
    """One share's hashing: ``ready`` is set when it is served or failed."""

    scan: Scan = field(repr=False)
    progress: HashProgress
    ready: trio.Event = field(default_factory=trio.Event)
    prepared: PreparedShare | None = field(default=None, repr=False)
    error: SourceError | None = None
    seconds: float = 0.0


async def prepare(
    prep: Preparation,
    registry: ShareRegistry,
    *,
    key: bytes,
    human_code: str,
    name: str,
    description: str,
    sharer: str,
    cache: Path | None,
) -> None:
    """Hash ``prep.scan`` and serve it; a failure is kept in ``prep.error``
    (and answered to waiting receivers), never raised into the node."""
    start = trio.current_time()
    try:
        prepared = await trio.to_thread.run_sync(  # type: ignore[call-arg]  # trio-typing predates the name
            lambda: hash_scan(
                prep.scan,
                name=name,
                description=description,
                sharer=sharer,
                key=key,
                progress=prep.progress,
                cache=cache,
            ),
            abandon_on_cancel=True,
        )
    except SourceError as exc:
        log.warning("cannot serve the share: %s", exc)
        prep.progress.failed = str(exc)
        prep.error = exc
    else:
        hold = os.environ.get(HOLD_ENV)
        while hold and not os.path.exists(hold):
            await trio.sleep(0.05)
        prep.prepared = prepared
        if not prep.progress.stop:  # else stop_sharing withdrew it meanwhile
            registry.add(prepared, key, human_code)
    finally:
        prep.progress.stop = True  # cancelled: the threads stop at their next chunk
        prep.seconds = trio.current_time() - start
        prep.ready.set()
