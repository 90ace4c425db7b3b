"""Shares remembered across restarts of the sharer.

Sharing the same paths again gives the same key, human code and (when free)
the same listen port, so a code handed out earlier keeps working after the
sharer was stopped or killed, and receivers resume instead of starting over.
Records live in ``<data dir>/shares/`` with mode 0600: they hold keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from p2pshare.node.errors import LocalNodeError

#: What a record may name as its identity: a plain file in the data directory.
_IDENTITY_NAME = re.compile(r"identity(-[0-9]{1,3})?\.key")


@dataclass(frozen=True)
class ShareRecord:
    key: bytes
    human_code: str
    port: int | None
    #: The identity file (a name in the data directory) the share ran as:
    #: its codes name that peer, so sharing again prefers it.
    identity: str | None = None
    #: The short code last offered and when it ends (``time.time()``):
    #: sharing again within its life offers it again (``share_short``).
    short_code: str | None = None
    short_expires: float | None = None


def _record_path(home: Path, paths: list[Path], name: str) -> Path:
    ident = json.dumps([str(p) for p in paths] + [name]).encode()
    return home / "shares" / (hashlib.sha256(ident).hexdigest()[:32] + ".json")


def load_record(home: Path, paths: list[Path], name: str) -> ShareRecord | None:
    """The stored record for exactly these paths and name, or None."""
    path = _record_path(home, paths, name)
    try:
        raw = json.loads(path.read_text())
        key = base64.b64decode(raw["key"], validate=True)
        code = raw["human_code"]
        port = raw.get("port")
        if len(key) != 32 or not isinstance(code, str):
            return None
        if port is not None and not (isinstance(port, int) and 0 < port < 65536):
            port = None
        identity = raw.get("identity")
        if not (isinstance(identity, str) and _IDENTITY_NAME.fullmatch(identity)):
            identity = None
        short, expires = raw.get("short_code"), raw.get("short_expires")
        if not (isinstance(short, str) and isinstance(expires, (int, float))):
            short, expires = None, None
        return ShareRecord(key, code, port, identity, short, None if expires is None else float(expires))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_record(home: Path, paths: list[Path], name: str, record: ShareRecord) -> None:
    """Write atomically with mode 0600 (the file holds the share key).

    A data directory we cannot write is a local problem the user must fix
    (``LocalNodeError``), not an internal error.
    """
    path = _record_path(home, paths, name)
    try:
        _write_record(path, paths, name, record)
    except OSError as exc:
        raise LocalNodeError(f"cannot save the share record {path}: {exc.strerror or exc}") from None


def _write_record(path: Path, paths: list[Path], name: str, record: ShareRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = json.dumps(
        {
            "key": base64.b64encode(record.key).decode(),
            "human_code": record.human_code,
            "port": record.port,
            "identity": record.identity,
            "paths": [str(p) for p in paths],
            "name": name,
            "short_code": record.short_code,
            "short_expires": record.short_expires,
        }
    ).encode()
    tmp = path.with_name(path.name + f".{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def forget_record(home: Path, paths: list[Path], name: str) -> None:
    try:
        _record_path(home, paths, name).unlink()
    except FileNotFoundError:
        pass


#: A record not written (shared again) for this long is deleted: it holds a
#: share key, and a code not handed out again in months is not waited for.
RECORD_MAX_AGE = 90 * 86400.0
#: A ``.tmp`` file this old was left by a write a crash cut short.
_TMP_MAX_AGE = 3600.0
#: Entries looked at per prune (a data directory is not a filing cabinet).
_PRUNE_SCAN = 10_000


def prune_records(home: Path, now: float | None = None) -> int:
    """Delete share records last written more than :data:`RECORD_MAX_AGE`
    ago and ``.tmp`` leftovers; returns how many went. Best effort: the
    share goes on whatever fails here.

    Records used to stay for ever, each with the key of a share long
    stopped (a long-uptime review, stop 43). Sharing the same paths writes
    the record again, so a share still in use keeps its code."""
    now = time.time() if now is None else now
    gone = 0
    try:
        with os.scandir(home / "shares") as entries:
            for count, entry in enumerate(entries):
                if count >= _PRUNE_SCAN:
                    break
                name = entry.name
                limit = _TMP_MAX_AGE if name.endswith(".tmp") else RECORD_MAX_AGE
                if not (name.endswith(".json") or name.endswith(".tmp")) or not entry.is_file(follow_symlinks=False):
                    continue
                try:
                    if now - entry.stat(follow_symlinks=False).st_mtime > limit:
                        os.unlink(entry.path)
                        gone += 1
                except OSError:
                    continue
    except OSError:
        return gone
    return gone


async def keep_record_fresh(home: Path, paths: list[Path], name: str) -> None:
    """While a share runs, mark its record used once a day: ``prune_records``
    goes by that time, and a share running for more than 90 days would lose
    its record (and code, at its next start) to another ``share``."""
    import trio

    path = _record_path(home, paths, name)
    while True:
        await trio.sleep(86400)
        try:
            os.utime(path)
        except OSError:
            pass  # gone or not ours to touch: the share goes on
