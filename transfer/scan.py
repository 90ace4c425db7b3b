"""Build a manifest from local paths (sharer side, blocking I/O).

Walks the given files and directories (empty directories are kept), skips
symlinks, special files and names a receiver could not safely create (each
reported as a warning), and hashes every file in fixed-size reads on a small
thread pool — hashlib releases the GIL, so hashing uses every core while
memory stays at one buffer per worker. Call it in a thread from async code.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from p2pshare.transfer.crypto import share_id_for
from p2pshare.transfer.errors import SourceError
from p2pshare.transfer.manifest import (
    DEFAULT_CHUNK_SIZE,
    FileEntry,
    Manifest,
    ManifestError,
    chunk_size_for,
    make_manifest,
)
from p2pshare.transfer.paths import MAX_PATH_BYTES, PathRuleError, check_component, fold


@dataclass(frozen=True)
class PreparedShare:
    """A manifest plus where each of its files lives on this machine."""

    manifest: Manifest
    sources: tuple[Path, ...]  # aligned with manifest.files
    warnings: tuple[str, ...] = ()
    key: bytes | None = field(default=None, repr=False)

    @property
    def share_id(self) -> bytes:
        if self.key is None:
            raise ValueError("this share was prepared without a key")
        return share_id_for(self.key)


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _walk(top: Path, rel: str, files: list[tuple[str, Path, int]], dirs: list[str], warnings: list[str]) -> None:
    """Depth-first, sorted, without recursion (trees may be deep)."""
    stack: list[tuple[Path, str]] = [(top, rel)]
    while stack:
        path, rel_dir = stack.pop()
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            raise SourceError(f"cannot read directory {path}: {_describe(exc)}") from None
        folded: set[str] = set()
        subdirs: list[tuple[Path, str]] = []
        for entry in entries:
            child = Path(entry.path)
            try:
                check_component(entry.name)
            except PathRuleError as exc:
                warnings.append(f"skipped {child}: {exc}")
                continue
            rel_child = f"{rel_dir}/{entry.name}"
            if len(rel_child.encode("utf-8")) > MAX_PATH_BYTES:
                warnings.append(f"skipped {child}: path too long")
                continue
            key = fold(entry.name)
            if key in folded:
                warnings.append(f"skipped {child}: name differs from another only in case or Unicode form")
                continue
            folded.add(key)
            try:
                if entry.is_symlink():
                    warnings.append(f"skipped symlink {child}")
                elif entry.is_dir(follow_symlinks=False):
                    dirs.append(rel_child)
                    subdirs.append((child, rel_child))
                elif entry.is_file(follow_symlinks=False):
                    files.append((rel_child, child, entry.stat(follow_symlinks=False).st_size))
                else:
                    warnings.append(f"skipped special file {child}")
            except OSError as exc:
                raise SourceError(f"cannot read {child}: {_describe(exc)}") from None
        stack.extend(reversed(subdirs))


def _hash_file(path: Path, size: int, chunk_size: int) -> tuple[bytes, tuple[bytes, ...]]:
    whole = hashlib.sha256()
    chunks: list[bytes] = []
    buf = bytearray(min(chunk_size, max(size, 1)))
    view = memoryview(buf)
    total = 0
    try:
        with open(path, "rb", buffering=0) as fh:
            while True:
                n = 0
                while n < len(buf):  # fill a whole chunk (short reads happen)
                    got = fh.readinto(view[n:])
                    if not got:
                        break
                    n += got
                if n == 0:
                    break
                piece = view[:n]
                whole.update(piece)
                chunks.append(hashlib.sha256(piece).digest())
                total += n
                if n < len(buf):
                    break
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {_describe(exc)}") from None
    if total != size:
        raise SourceError(f"{path} changed while it was being read")
    return whole.digest(), tuple(chunks)


def _bounded_map(
    pool: ThreadPoolExecutor, items: Sequence[tuple[str, Path, int]], chunk_size: int, window: int
) -> Iterator[tuple[bytes, tuple[bytes, ...]]]:
    """``pool.map`` that keeps at most ``window`` futures alive (1M files)."""
    pending: list[Future[tuple[bytes, tuple[bytes, ...]]]] = []
    it = iter(items)
    for _, path, size in it:
        pending.append(pool.submit(_hash_file, path, size, chunk_size))
        if len(pending) >= window:
            yield pending.pop(0).result()
    for fut in pending:
        yield fut.result()


def build_manifest(
    paths: Iterable[Path | str],
    *,
    name: str,
    description: str = "",
    sharer: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    key: bytes | None = None,
    workers: int | None = None,
) -> PreparedShare:
    """Scan and hash ``paths`` into a ``PreparedShare``.

    Top-level entry names are the basenames of ``paths``; an explicitly given
    symlink is followed (the user named it), symlinks inside directories are
    skipped. Raises ``SourceError`` (one line) for missing/unreadable input.
    """
    files: list[tuple[str, Path, int]] = []
    dirs: list[str] = []
    warnings: list[str] = []
    top_names: set[str] = set()
    given = [Path(p) for p in paths]
    if not given:
        raise SourceError("nothing to share: no paths given")
    for path in given:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise SourceError(f"{path}: no such file or directory") from None
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {_describe(exc)}") from None
        top = path.name or Path(os.path.abspath(path)).name
        if not top:
            raise SourceError(f"cannot share {path}: it has no name (filesystem root?)")
        try:
            check_component(top)
        except PathRuleError as exc:
            raise SourceError(f"cannot share {path}: {exc}") from None
        if fold(top) in top_names:
            raise SourceError(f"two paths to share have the same name {top!r}")
        top_names.add(fold(top))
        if stat.S_ISREG(st.st_mode):
            if not os.access(path, os.R_OK):
                raise SourceError(f"cannot read {path}: permission denied")
            files.append((top, path.absolute(), st.st_size))
        elif stat.S_ISDIR(st.st_mode):
            dirs.append(top)
            _walk(path.absolute(), top, files, dirs, warnings)
        else:
            raise SourceError(f"cannot share {path}: not a regular file or directory")
    chunk_size = chunk_size_for([size for _, _, size in files], chunk_size)
    n_workers = workers or min(4, os.cpu_count() or 1)
    entries: list[FileEntry] = []
    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="p2pshare-hash") as pool:
        for (rel, _, size), (sha, chunk_hashes) in zip(
            files, _bounded_map(pool, files, chunk_size, 4 * n_workers), strict=True
        ):
            entries.append(FileEntry(rel, size, sha, chunk_hashes))
    try:
        manifest = make_manifest(
            name=name, description=description, sharer=sharer, chunk_size=chunk_size, files=entries, dirs=dirs
        )
    except ManifestError as exc:
        raise SourceError(f"cannot share these paths: {exc}") from None
    return PreparedShare(manifest, tuple(src for _, src, _ in files), tuple(warnings), key)
