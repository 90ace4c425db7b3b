"""Peers remembered between runs: a small JSON file of recently good DHT peers.

The next run bootstraps from them as well as from the configured bootstrap
list, so a node still joins when the bootstrap peers are down or were
disabled. The file is bounded (``MAX_PEERS`` peers, ``MAX_ADDRS`` addresses
each, ``MAX_FILE_BYTES`` read), written atomically (temporary file, fsync,
rename) and read leniently: a damaged file or entry is skipped with one log
line, never an error. Blocking file I/O; no trio.

Format::

    {"version": 1, "peers": [{"peer_id": "12D3...", "addrs": ["/ip4/..."],
                              "last_ok": 1700000000.0}, ...]}
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .peers import MAX_ADDR_CHARS, normalize_addr

__all__ = [
    "MAX_AGE",
    "MAX_PEERS",
    "RememberedPeer",
    "load_peers_file",
    "merge_remembered",
    "remembers_peers",
    "save_peers_file",
]

logger = logging.getLogger(__name__)

VERSION = 1
MAX_PEERS = 32
MAX_ADDRS = 8
MAX_FILE_BYTES = 64 * 1024
MAX_AGE = 30 * 24 * 3600.0  # a peer not seen for a month is dropped
_MAX_PEER_ID_CHARS = 128


@dataclass(frozen=True)
class RememberedPeer:
    """A peer that answered a Kademlia RPC at ``last_ok`` (Unix time)."""

    peer_id: str
    addrs: tuple[str, ...]
    last_ok: float


def _clean(peer_id: object, addrs: object, last_ok: object) -> RememberedPeer | None:
    if not isinstance(peer_id, str) or not 0 < len(peer_id) <= _MAX_PEER_ID_CHARS:
        return None
    if not peer_id.isalnum():
        return None
    if not isinstance(addrs, list) or isinstance(last_ok, bool):
        return None
    if not isinstance(last_ok, (int, float)) or last_ok != last_ok:  # NaN
        return None
    good: list[str] = []
    for a in addrs[: 4 * MAX_ADDRS]:
        if isinstance(a, str) and len(a) <= MAX_ADDR_CHARS:
            norm = normalize_addr(a, peer_id)
            if norm is not None and norm not in good:
                good.append(norm)
    if not good:
        return None
    return RememberedPeer(peer_id, tuple(good[:MAX_ADDRS]), float(last_ok))


def merge_remembered(
    old: Iterable[RememberedPeer], new: Iterable[RememberedPeer], *, now: float
) -> list[RememberedPeer]:
    """Newest entry per peer, at most ``MAX_PEERS``, most recent first, none too old."""
    best: dict[str, RememberedPeer] = {}
    for p in [*old, *new]:
        if now - p.last_ok > MAX_AGE:
            continue
        cur = best.get(p.peer_id)
        if cur is None or p.last_ok >= cur.last_ok:
            best[p.peer_id] = p
    ranked = sorted(best.values(), key=lambda p: p.last_ok, reverse=True)
    return ranked[:MAX_PEERS]


def remembers_peers(path: Path | None) -> bool:
    """Whether ``path`` holds peers to join the DHT through. A missing,
    empty or damaged file holds none: a sharer with no bootstrap node and
    no mDNS printed a short code that nobody could find (found by a
    usability review). Quiet: the load that uses the file says what is
    wrong with it, once."""
    return path is not None and bool(_read_peers(path)[0])


def load_peers_file(path: Path) -> list[RememberedPeer]:
    """Entries of ``path``; ``[]`` (and one log line) if missing or damaged."""
    peers, problem = _read_peers(path)
    if problem is not None:
        logger.warning("%s", problem)
    return peers


def _read_peers(path: Path) -> tuple[list[RememberedPeer], str | None]:
    """The usable entries of ``path``, and what is wrong with the file (None
    when nothing is, or when it is missing: a first run has none)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return [], None
    except OSError as e:
        return [], f"cannot read peers file {path}: {e.strerror or e}"
    if len(data) > MAX_FILE_BYTES:
        return [], f"ignoring peers file {path}: larger than {MAX_FILE_BYTES} bytes"
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return [], f"ignoring peers file {path}: not JSON"
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        return [], f"ignoring peers file {path}: unknown format"
    raw = doc.get("peers")
    if not isinstance(raw, list):
        return [], f"ignoring peers file {path}: no peer list"
    out: list[RememberedPeer] = []
    for entry in raw[: 4 * MAX_PEERS]:
        if isinstance(entry, dict):
            peer = _clean(entry.get("peer_id"), entry.get("addrs"), entry.get("last_ok"))
            if peer is not None:
                out.append(peer)
    return out, None


def save_peers_file(path: Path, peers: Iterable[RememberedPeer]) -> None:
    """Write ``peers`` (bounded) atomically; raises ``OSError`` on failure."""
    entries = [
        {"peer_id": p.peer_id, "addrs": list(p.addrs[:MAX_ADDRS]), "last_ok": p.last_ok}
        for p in list(peers)[:MAX_PEERS]
    ]
    body = json.dumps({"version": VERSION, "peers": entries}, indent=1).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".peers-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
