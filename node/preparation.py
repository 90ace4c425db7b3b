"""Listing and hashing a share after its code is out (issue 12).

The code commits only to the share key, the human code and the addresses;
nothing in it depends on the files. So ``Node.start_sharing`` registers the
share as pending, starts ``prepare`` and returns the code: ``prepare``
lists the paths (``scan_paths``) and then hashes them in worker threads
(hashlib releases the GIL: every core works) and serves the manifest. A
receiver that connects early is told PREPARING with the percentage instead
of an error.

``start_sharing`` waits up to ``SCAN_WAIT`` for the listing, so a bad input
in a tree of ordinary size (an unreadable folder, two paths of one name,
too many entries) still fails before a code exists; a tree whose listing
takes longer (hundreds of thousands of files: ~0.7 s per 100,000 here)
gets its code at once, and a failure of its listing is reported like a
failure of hashing.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import trio

from p2pshare.transfer.errors import SourceError
from p2pshare.transfer.paths import MAX_ENTRIES
from p2pshare.transfer.registry import ShareRegistry
from p2pshare.transfer.scan import HashProgress, PreparedShare, Scan, hash_scan, scan_paths

log = logging.getLogger(__name__)

#: Tests only: a hashed share is not served until this file exists, so a
#: test can connect a receiver while the share is certainly still preparing
#: (an ordering to assert on, not a race against the hashing speed).
HOLD_ENV = "P2PSHARE_TEST_HOLD_PREPARED"
#: Tests only: the listing ends only once this file exists (a code printed
#: while the listing is under way, in order, not by timing).
HOLD_SCAN_ENV = "P2PSHARE_TEST_HOLD_SCAN"

#: Seconds ``start_sharing`` waits for the listing before it returns the
#: code anyway (with the process start, the code is out within ~1 s).
SCAN_WAIT = 0.25


@dataclass
class Preparation:
    """One share's listing and hashing: ``scanned`` is set when the listing
    ended (``scan`` set, or ``error``), ``ready`` when the share is served or
    failed."""

    paths: tuple[Path, ...]
    progress: HashProgress
    scan: Scan | None = field(default=None, repr=False)
    scanned: trio.Event = field(default_factory=trio.Event)
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
    """List ``prep.paths``, hash them and serve the share; a failure is kept
    in ``prep.error`` (and answered to waiting receivers), never raised into
    the node."""
    start = trio.current_time()
    try:
        scan = prep.scan  # listed already when a large tree's entries were counted
        if scan is None:
            listed: Scan = await trio.to_thread.run_sync(  # type: ignore[call-arg]  # trio-typing predates the name
                _scan, prep.paths, abandon_on_cancel=True
            )
            scan = prep.scan = listed
        prep.progress.total = scan.total_bytes
        prep.scanned.set()
        prepared = await trio.to_thread.run_sync(  # type: ignore[call-arg]
            lambda: hash_scan(
                scan,
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
        # Info, not a warning: whoever started the share reports the error
        # (``share`` ends with it; ``Node.share`` raises it or keeps it in
        # ``prep.error``), and a warning here said it a second time.
        log.info("cannot serve the share: %s", exc)
        prep.progress.failed = str(exc)
        prep.error = exc
        registry.changed()  # receivers waiting for the manifest hear why at once
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
        prep.scanned.set()
        prep.ready.set()


def names_over_limit(paths: tuple[Path, ...], limit: int = MAX_ENTRIES) -> bool:
    """More than ``limit`` names under ``paths`` (a bound on the entries a
    scan finds: it only skips)? Names only, no ``stat``, and it stops at the
    bound: ~0.07 s for 100,000 files here, ~0.1 s at most for any tree, so
    a share over the limit is still refused before its code. Unreadable
    folders are left to the scan, which names them."""
    count, stack = 0, [str(p) for p in paths]
    while stack:
        count += 1
        top = stack.pop()
        try:
            with os.scandir(top) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    else:
                        count += 1
                    if count > limit:
                        return True
        except OSError:
            continue  # a file (given as a path), or unreadable: the scan says which
    return count > limit


def _scan(paths: tuple[Path, ...]) -> Scan:
    hold = os.environ.get(HOLD_SCAN_ENV)
    while hold and not os.path.exists(hold):
        time.sleep(0.05)
    return scan_paths(paths)
