"""The share manifest: what files a share holds and how to verify them.

The manifest travels encrypted, as canonical JSON (sorted keys, no spaces,
UTF-8). ``decode`` is strict — exact key sets, exact types, bounded sizes,
the path rules of ``transfer.paths`` — because its input comes from the
sharer, who may be hostile. ``digest()`` hashes the canonical encoding and is
bound into every chunk's AAD, so chunks cannot move between share versions.

Chunks are numbered globally across files in manifest order; ``locate`` maps
a global index back to (file index, chunk index).
"""

from __future__ import annotations

import bisect
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from p2pshare.errors import P2PShareError
from p2pshare.transfer import paths
from p2pshare.transfer.paths import PathRuleError, check_tree

MANIFEST_VERSION = 1
MIN_CHUNK_SIZE = 64 * 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024
DEFAULT_CHUNK_SIZE = 1024 * 1024
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_NAME_CHARS = 255
MAX_DESCRIPTION_CHARS = 4096
MAX_FILE_SIZE = 1 << 62
#: Chunk hashes in one manifest. Each costs ~100 bytes once decoded, so this
#: bounds a hostile manifest's memory (1M hashes took 1.7 GB) while a share
#: of up to 256 GiB keeps 1 MiB chunks and 4 TiB fits with 16 MiB chunks
#: (``chunk_size_for`` picks the size).
MAX_TOTAL_CHUNKS = 1 << 18
EMPTY_SHA256 = hashlib.sha256(b"").digest()


class ManifestError(P2PShareError, ValueError):
    """The manifest is malformed or unsafe; the message says which rule.

    Neither local nor remote by itself: the receiver turns it into a
    ``ProtocolError`` (the peer's manifest), the scanner into a ``SourceError``.
    """


def chunk_count(size: int, chunk_size: int) -> int:
    return -(-size // chunk_size)


def chunk_size_for(sizes: list[int], preferred: int = DEFAULT_CHUNK_SIZE) -> int:
    """The smallest power-of-two chunk size from ``preferred`` up that keeps
    the share within ``MAX_TOTAL_CHUNKS`` (``MAX_CHUNK_SIZE`` if none does;
    ``make_manifest`` then refuses the share with a clear message)."""
    size = preferred
    while size < MAX_CHUNK_SIZE and sum(chunk_count(s, size) for s in sizes) > MAX_TOTAL_CHUNKS:
        size *= 2
    return size


@dataclass(frozen=True)
class FileEntry:
    """One regular file: relative POSIX path, size and hashes."""

    path: str
    size: int
    sha256: bytes = field(repr=False)
    chunk_hashes: tuple[bytes, ...] = field(repr=False)


@dataclass(frozen=True)
class Manifest:
    """A validated manifest. Construct through ``make_manifest`` or ``decode``."""

    name: str
    description: str
    sharer: str | None
    chunk_size: int
    files: tuple[FileEntry, ...] = field(repr=False)
    dirs: tuple[str, ...] = field(repr=False)
    _first_chunk: tuple[int, ...] = field(default=(), repr=False, compare=False)

    @property
    def total_chunks(self) -> int:
        return self._first_chunk[-1] if self._first_chunk else 0

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def first_chunk(self, file_index: int) -> int:
        """Global index of the first chunk of ``files[file_index]``."""
        return self._first_chunk[file_index]

    def locate(self, global_index: int) -> tuple[int, int]:
        """Map a global chunk index to (file index, chunk index in that file)."""
        if not 0 <= global_index < self.total_chunks:
            raise IndexError("chunk index out of range")
        file_index = bisect.bisect_right(self._first_chunk, global_index) - 1
        return file_index, global_index - self._first_chunk[file_index]

    def chunk_length(self, file_index: int, chunk_index: int) -> int:
        entry = self.files[file_index]
        return min(self.chunk_size, entry.size - chunk_index * self.chunk_size)

    def encode(self) -> bytes:
        """Canonical encoding; equal manifests encode to equal bytes."""
        obj: dict[str, Any] = {
            "version": MANIFEST_VERSION,
            "name": self.name,
            "description": self.description,
            "sharer": self.sharer,
            "chunk_size": self.chunk_size,
            "dirs": list(self.dirs),
            "files": [
                {
                    "path": f.path,
                    "size": f.size,
                    "sha256": f.sha256.hex(),
                    "chunks": b"".join(f.chunk_hashes).hex(),
                }
                for f in self.files
            ],
        }
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def digest(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()


#: Name warnings listed one by one; more are summed up in one line.
MAX_NAME_WARNINGS = 20


def name_warnings(manifest: Manifest) -> tuple[str, ...]:
    """Warnings for names that may mislead the receiver (see ``paths.name_warnings``)."""
    out: list[str] = []
    extra = 0
    for path in (*(f.path for f in manifest.files), *manifest.dirs):
        found = paths.name_warnings(path)
        if len(out) + len(found) > MAX_NAME_WARNINGS:
            extra += len(found)
        else:
            out.extend(found)
    if extra:
        out.append(f"... and {extra} more names with lookalike or invisible characters")
    return tuple(out)


def make_manifest(
    *,
    name: str,
    description: str,
    sharer: str | None,
    chunk_size: int,
    files: tuple[FileEntry, ...] | list[FileEntry],
    dirs: tuple[str, ...] | list[str],
) -> Manifest:
    """Validate every rule and build a ``Manifest`` (raises ``ManifestError``)."""
    _check_text(name, "name", MAX_NAME_CHARS, allow_newlines=False)
    _check_text(description, "description", MAX_DESCRIPTION_CHARS, allow_newlines=True)
    if sharer is not None:
        _check_text(sharer, "sharer", MAX_NAME_CHARS, allow_newlines=False)
    if (
        type(chunk_size) is not int
        or not (MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE)
        or chunk_size & (chunk_size - 1)
    ):
        raise ManifestError("chunk_size must be a power of two from 64 KiB to 16 MiB")
    files = tuple(files)
    dirs = tuple(dirs)
    firsts = [0]
    for f in files:
        _check_file(f, chunk_size)
        firsts.append(firsts[-1] + len(f.chunk_hashes))
        if firsts[-1] > MAX_TOTAL_CHUNKS:
            raise ManifestError(f"more than {MAX_TOTAL_CHUNKS} chunks (the share is too large for one manifest)")
    try:
        check_tree((f.path for f in files), dirs)
    except PathRuleError as exc:
        raise ManifestError(f"unsafe path in manifest: {exc}") from None
    return Manifest(name, description, sharer, chunk_size, files, dirs, tuple(firsts))


def _check_text(value: object, what: str, limit: int, *, allow_newlines: bool) -> None:
    if not isinstance(value, str):
        raise ManifestError(f"{what} is not a string")
    if len(value) > limit:
        raise ManifestError(f"{what} is longer than {limit} characters")
    allowed = "\n\t" if allow_newlines else ""
    for ch in value:
        code = ord(ch)
        if (code < 0x20 or 0x7F <= code < 0xA0 or 0xD800 <= code < 0xE000) and ch not in allowed:
            raise ManifestError(f"{what} contains a control character or invalid Unicode")


def _check_file(f: FileEntry, chunk_size: int) -> None:
    if type(f.size) is not int or not 0 <= f.size <= MAX_FILE_SIZE:
        raise ManifestError("file size out of range")
    if not isinstance(f.sha256, bytes) or len(f.sha256) != 32:
        raise ManifestError("file sha256 must be 32 bytes")
    if len(f.chunk_hashes) != chunk_count(f.size, chunk_size):
        raise ManifestError("chunk count does not match the file size")
    if any(not isinstance(h, bytes) or len(h) != 32 for h in f.chunk_hashes):
        raise ManifestError("chunk hash must be 32 bytes")
    if f.size == 0 and f.sha256 != EMPTY_SHA256:
        raise ManifestError("empty file with a non-empty hash")


_TOP_KEYS = {"version", "name", "description", "sharer", "chunk_size", "dirs", "files"}
_FILE_KEYS = {"path", "size", "sha256", "chunks"}


def _hex(value: object, length: int, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * length:
        raise ManifestError(f"{what} has the wrong length")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ManifestError(f"{what} is not hex") from None
    if raw.hex() != value:  # lower-case only: one canonical spelling
        raise ManifestError(f"{what} is not lower-case hex")
    return raw


def decode(data: bytes) -> Manifest:
    """Parse and validate a manifest received from a peer."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError("manifest too large")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ManifestError("manifest is not valid JSON") from None
    if not isinstance(obj, dict) or set(obj) != _TOP_KEYS:
        raise ManifestError("manifest has missing or unknown fields")
    if obj["version"] != MANIFEST_VERSION or type(obj["version"]) is not int:
        raise ManifestError("unsupported manifest version")
    raw_files, raw_dirs = obj["files"], obj["dirs"]
    if not isinstance(raw_files, list) or not isinstance(raw_dirs, list):
        raise ManifestError("files and dirs must be lists")
    if len(raw_files) + len(raw_dirs) > paths.MAX_ENTRIES:
        raise ManifestError("too many entries")
    if not all(isinstance(d, str) for d in raw_dirs):
        raise ManifestError("directory path is not a string")
    files = []
    total_chunks = 0
    for item in raw_files:
        if not isinstance(item, dict) or set(item) != _FILE_KEYS:
            raise ManifestError("file entry has missing or unknown fields")
        if not isinstance(item["path"], str):
            raise ManifestError("file path is not a string")
        size = item["size"]
        if type(size) is not int:
            raise ManifestError("file size is not an integer")
        chunks_hex = item["chunks"]
        if not isinstance(chunks_hex, str) or len(chunks_hex) % 64:
            raise ManifestError("chunk hashes have the wrong length")
        total_chunks += len(chunks_hex) // 64
        if total_chunks > MAX_TOTAL_CHUNKS:  # before the hashes are decoded
            raise ManifestError(f"more than {MAX_TOTAL_CHUNKS} chunks (the share is too large for one manifest)")
        raw_chunks = _hex(chunks_hex, len(chunks_hex) // 2, "chunk hashes")
        hashes = tuple(raw_chunks[i : i + 32] for i in range(0, len(raw_chunks), 32))
        files.append(FileEntry(item["path"], size, _hex(item["sha256"], 32, "file sha256"), hashes))
    return make_manifest(
        name=obj["name"],
        description=obj["description"],
        sharer=obj["sharer"],
        chunk_size=obj["chunk_size"],
        files=files,
        dirs=raw_dirs,
    )
