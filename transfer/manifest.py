"""The share manifest: what files a share holds and how to verify them.

The manifest travels encrypted, as canonical JSON (sorted keys, no spaces,
UTF-8). ``decode`` is strict — exact key sets, exact types, bounded sizes,
the path rules of ``transfer.paths`` — because its input comes from the
sharer, who may be hostile. The SHA-256 of the encoding (``digest()``; the
receiver hashes the bytes it received, the same for what our sharer sends) is
bound into every chunk's AAD, so chunks cannot move between share versions.

Chunks are numbered globally across files in manifest order; ``locate`` maps
a global index back to (file index, chunk index).
"""

from __future__ import annotations

import binascii
import bisect
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from p2pshare.transfer import paths
from p2pshare.transfer._manifest_json import ManifestError as ManifestError  # re-exported: its public home
from p2pshare.transfer._manifest_json import PathBudget, parse_dirs
from p2pshare.transfer._manifest_json import loads as _json
from p2pshare.transfer.paths import PathRuleError, check_tree

MANIFEST_VERSION = 1
MIN_CHUNK_SIZE = 64 * 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024
DEFAULT_CHUNK_SIZE = 1024 * 1024
#: What the other caps let a real share need, in canonical JSON: every
#: chunk hash (``MAX_TOTAL_CHUNKS`` x 64 hex digits = 16 MiB) and, for each
#: of ``paths.MAX_ENTRIES`` (131,072) entries, 127 bytes of keys, file hash,
#: size and punctuation plus 65 bytes of path on average (24 MiB): 40 MiB.
#: 100,000 small files (issue 12: one chunk hash each, 6.1 MiB) leave 33.9
#: MiB, 227 bytes of path per file. The whole ``get`` process must stay
#: under 200 MB against any manifest (issue 9), and a frame at this cap is
#: held twice for a moment (ciphertext and plaintext): it was 64 MiB, and a
#: frame of garbage at 64 MiB alone took the receiver to 221 MB.
MAX_MANIFEST_BYTES = 40 * 1024 * 1024
MAX_NAME_CHARS = 255
MAX_DESCRIPTION_CHARS = 4096
MAX_FILE_SIZE = 1 << 62
#: Chunk hashes in one manifest. Each costs ~100 bytes once decoded, so this
#: bounds a hostile manifest's memory (1M hashes took 1.7 GB) while a share
#: of up to 256 GiB keeps 1 MiB chunks and 4 TiB fits with 16 MiB chunks
#: (``chunk_size_for`` picks the size).
MAX_TOTAL_CHUNKS = 1 << 18
EMPTY_SHA256 = hashlib.sha256(b"").digest()


def chunk_count(size: int, chunk_size: int) -> int:
    return -(-size // chunk_size)


#: A small share is cut into about this many chunks (down to
#: ``MIN_CHUNK_SIZE``) rather than into 1 MiB ones. A chunk is the unit the
#: receiver verifies, so the first verified byte waits for one whole chunk
#: to cross a fresh connection still in TCP slow start: at 170 ms RTT, 1 MiB
#: takes ~7 round trips and 64 KiB ~3 (issue 10). From 256 MiB on, shares keep
#: ``DEFAULT_CHUNK_SIZE``, where the cost per chunk starts to count (issue 12);
#: below it, 256 chunks cost next to nothing.
SMALL_SHARE_CHUNKS = 256


def chunk_size_for(sizes: list[int], preferred: int | None = None) -> int:
    """The smallest power-of-two chunk size from ``preferred`` up that keeps
    the share within ``MAX_TOTAL_CHUNKS`` (``MAX_CHUNK_SIZE`` if none does;
    ``make_manifest`` then refuses the share with a clear message).

    Without ``preferred``: ``DEFAULT_CHUNK_SIZE``, or less for a share under
    ``SMALL_SHARE_CHUNKS`` of them (see there)."""
    if preferred is None:
        total = sum(sizes)
        preferred = MIN_CHUNK_SIZE
        while preferred < DEFAULT_CHUNK_SIZE and total > preferred * SMALL_SHARE_CHUNKS:
            preferred *= 2
    size = preferred
    while size < MAX_CHUNK_SIZE and sum(chunk_count(s, size) for s in sizes) > MAX_TOTAL_CHUNKS:
        size *= 2
    return size


@dataclass(frozen=True, slots=True)
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
    #: Directories the share makes (listed in ``dirs`` or implied by a path).
    dir_count: int = field(default=0, repr=False, compare=False)

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
        """Canonical encoding; equal manifests encode to equal bytes. Written
        into one buffer (``getvalue`` hands it over uncopied): ``b"".join``
        listed every part first, +39 MB at a 100,000-file sharer's peak."""
        out = io.BytesIO()
        for part in self._encoded_parts():
            out.write(part)
        return out.getvalue()

    def digest(self) -> bytes:
        """SHA-256 of ``encode()``, hashed piece by piece: the receiver never
        holds the whole encoding (one dict per entry, then a str and bytes
        of it all: 64 MB more at the peak for 131,072 entries)."""
        h = hashlib.sha256()
        for part in self._encoded_parts():
            h.update(part)
        return h.digest()

    def _encoded_parts(self) -> Iterator[bytes]:
        """``json.dumps`` of the whole manifest (sorted keys, no spaces, UTF-8),
        one file entry at a time; keys are written in sorted order."""
        yield b'{"chunk_size":%d,"description":%s,"dirs":[' % (self.chunk_size, _dumps(self.description))
        yield b",".join(_dumps(d) for d in self.dirs)
        yield b'],"files":['
        for i, f in enumerate(self.files):
            yield b',{"chunks":"' if i else b'{"chunks":"'
            hashes = f.chunk_hashes
            for at in range(0, len(hashes), _HASHES_PER_PART):  # no 16 MiB str for one big file
                yield b"".join(hashes[at : at + _HASHES_PER_PART]).hex().encode()
            yield b'","path":%s,"sha256":"%s","size":%d}' % (_dumps(f.path), f.sha256.hex().encode(), f.size)
        yield b'],"name":%s,"sharer":%s,"version":%d}' % (_dumps(self.name), _dumps(self.sharer), MANIFEST_VERSION)


_HASHES_PER_PART = 4096


def _dumps(value: str | None) -> bytes:
    # ``json.dumps(value, ensure_ascii=False)`` without its per-call encoder
    # set-up (issue 12: one call per path, 0.1 s per 100,000 files): for a
    # str it returns exactly this function's result.
    return b"null" if value is None else _encode_string(value).encode("utf-8")


_encode_string = json.encoder.encode_basestring


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
        n_dirs = check_tree((f.path for f in files), dirs)
    except PathRuleError as exc:
        raise ManifestError(f"unsafe path in manifest: {exc}") from None
    return Manifest(name, description, sharer, chunk_size, files, dirs, tuple(firsts), n_dirs)


def _check_text(value: object, what: str, limit: int, *, allow_newlines: bool) -> None:
    if not isinstance(value, str):
        raise ManifestError(f"{what} is not a string")
    problem = text_problem(value, limit, allow_newlines=allow_newlines)
    if problem is not None:
        raise ManifestError(f"{what} {problem}")


def text_problem(value: str, limit: int, *, allow_newlines: bool) -> str | None:
    """Why ``value`` cannot be a manifest's name, description or sharer, or
    None. The sharer checks its flags with it before it prints a code."""
    if len(value) > limit:
        return f"is longer than {limit} characters"
    allowed = "\n\t" if allow_newlines else ""
    for ch in value:
        code = ord(ch)
        if (code < 0x20 or 0x7F <= code < 0xA0 or 0xD800 <= code < 0xE000) and ch not in allowed:
            return "contains a control character or invalid Unicode"
    return None


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
_FILE_KEYS = {"path", "size", "sha256"}  # and "chunks", first, read on its own
# The canonical layout's landmarks. Each begins or ends with a quote that no
# backslash precedes, which inside a string would end it, and is followed by
# a character that cannot follow a string's end: so in valid JSON each only
# occurs where the encoder put it, never inside a name.
_DIRS = b',"dirs":['
_FILES = b'],"files":['
_ENTRY = b'{"chunks":"'
_NEXT_ENTRY = b'},{"chunks":"'
_FILES_END = b'}],"'
#: Bytes of the fields besides dirs and files: name and sharer (255
#: characters), description (4,096), each at most 6 bytes a character
#: escaped, and the keys.
_MAX_OTHER_BYTES = 6 * (2 * MAX_NAME_CHARS + MAX_DESCRIPTION_CHARS) + 1024
#: Bytes of a file entry after its chunk hashes: the path (4,096 bytes, at
#: most 2 each escaped), the file hash, the size (19 digits) and the keys.
_MAX_ENTRY_REST = 2 * paths.MAX_PATH_BYTES + 256
_LOWER_HEX = re.compile(rb"[0-9a-f]*")


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


def _files_end(data: bytes | bytearray, start: int) -> int:
    """Where the ``]`` of the files array is (``start``: just inside its ``[``)."""
    if data[start : start + 1] == b"]":
        return start
    if not data.startswith(_ENTRY, start):
        raise ManifestError("manifest is not canonical JSON (file entry)")
    end = data.find(_FILES_END, start)
    if end < 0:
        raise ManifestError("manifest is not canonical JSON (end of files)")
    return end + 1


def _file_spans(data: bytes | bytearray, start: int, end: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each file entry between the files array's brackets:
    offsets only, one at a time (a list of 300,000 of them is 20 MB)."""
    if start == end:
        return
    i = start
    while (j := data.find(_NEXT_ENTRY, i, end)) >= 0:
        yield i, j + 1
        i = j + 2
    yield i, end


@dataclass(frozen=True)
class ParsedManifest:
    """A manifest's fields, parsed but not yet validated (``validate``).

    Two steps so the receiver can drop the encoded bytes (up to
    ``MAX_MANIFEST_BYTES``) before the tree check builds its own structures."""

    top: dict[str, Any] = field(repr=False)
    files: list[FileEntry] = field(repr=False)
    dirs: list[str] = field(repr=False)


def decode(data: bytes | bytearray) -> Manifest:
    """Parse and validate a manifest received from a peer."""
    return validate(parse(data))


def validate(parsed: ParsedManifest) -> Manifest:
    top = parsed.top
    return make_manifest(
        name=top["name"],
        description=top["description"],
        sharer=top["sharer"],
        chunk_size=top["chunk_size"],
        files=parsed.files,
        dirs=parsed.dirs,
    )


def parse(data: bytes | bytearray) -> ParsedManifest:
    """The first half of ``decode``: every cap on counts and sizes, the JSON.

    The input must be canonical (what ``encode`` writes: sorted keys, no
    spaces), which lets it be decoded one file entry at a time instead of as
    one JSON document: a document is one ``str`` of up to 4 bytes per
    character (a single emoji makes every character take 4) and one dict per
    entry, all alive at once, before a single cap can be checked (a 64 MB
    manifest of 430,183 empty files took ``p2pshare get`` to 691 MB, 939 MB
    with one emoji). Here the entry and chunk caps are checked on byte offsets
    before an entry is parsed, each entry becomes a ``FileEntry`` at once,
    and no copy of the whole input is made.
    """
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError("manifest too large")
    d = data.find(_DIRS)
    f = data.find(_FILES, d) if d >= 0 else -1
    if f < 0:
        raise ManifestError("manifest is not canonical JSON (dirs and files)")
    files_start = f + len(_FILES)
    files_end = _files_end(data, files_start)
    # Everything but dirs and files: a few short fields, parsed as one document.
    if d + len(data) - files_end > _MAX_OTHER_BYTES:
        raise ManifestError("manifest has missing or unknown fields")
    obj = _json(b"".join((data[:d], b',"dirs":[],"files":[', data[files_end:])))
    if not isinstance(obj, dict) or set(obj) != _TOP_KEYS:
        raise ManifestError("manifest has missing or unknown fields")
    if obj["version"] != MANIFEST_VERSION or type(obj["version"]) is not int:
        raise ManifestError("unsupported manifest version")
    dirs_start = d + len(_DIRS)
    budget = PathBudget()
    raw_dirs = parse_dirs(data, dirs_start, f, budget)
    files = _parse_files(data, files_start, files_end, len(raw_dirs), budget)
    return ParsedManifest(obj, files, raw_dirs)


def _parse_files(data: bytes | bytearray, start: int, end: int, n_dirs: int, budget: PathBudget) -> list[FileEntry]:
    """The file entries between the files array's brackets, each checked
    against the caps before it is decoded.

    An entry as the encoder writes it when its path needs no escape (what a
    JSON string may hold unescaped: no quote, backslash or control
    character) is read by one regular expression where it starts (issue
    12: a 100,000-file manifest took 0.5 s, one ``json.loads`` and several
    searches per entry). At the first entry that is not, the rest goes
    entry by entry through the general path, ``json.loads`` for its short
    fields. Both decode a path's UTF-8 as ``json.loads`` does, and apply the
    same caps in the same order, so they accept the same entries."""
    files: list[FileEntry] = []
    caps = _Caps(n_dirs)
    pos = start
    for m in _PLAIN_ENTRY.finditer(data, start, end):
        after = m.end()
        if m.start() != pos or (after < end and data[after] != 0x2C):  # 0x2C: ","
            break  # not where the next entry starts: from there, the general path
        hex_start, hex_end = m.span(1)
        caps.entry(len(files), hex_start, hex_end, after)
        sha = binascii.unhexlify(sha_hex := m[3])
        if hex_end - hex_start == 64:  # one chunk: the file's hash, one object for both (~6 MB per 100k)
            hashes: tuple[bytes, ...] = (sha if m[1] == sha_hex else binascii.unhexlify(m[1]),)
        else:
            hashes = _hashes(data, hex_start, hex_end)
        try:
            path = m[2].decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise ManifestError("manifest is not valid JSON") from None
        budget.add(path)
        files.append(FileEntry(path, int(m[4]), sha, hashes))
        pos = after + 1
    for entry_start, entry_end in _file_spans(data, pos, end) if pos < end else ():
        if not data.startswith(_ENTRY, entry_start):  # after a plain entry, anything may follow its ","
            raise ManifestError("manifest is not canonical JSON (file entry)")
        hex_start = entry_start + len(_ENTRY)
        hex_end = data.find(b'"', hex_start, entry_end)
        caps.entry(len(files), hex_start, hex_end, entry_end)
        if _LOWER_HEX.fullmatch(data, hex_start, hex_end) is None:
            raise ManifestError("chunk hashes are not lower-case hex")
        hashes = _hashes(data, hex_start, hex_end)
        # The rest of the entry (a few short fields) as JSON.
        files.append(entry := _file_entry(_json(b"{" + data[hex_end + 2 : entry_end]), hashes))
        budget.add(entry.path)
    return files


#: One file entry as the encoder writes it when its path needs no escape.
_PLAIN_ENTRY = re.compile(
    rb'\{"chunks":"([0-9a-f]*)","path":"([^"\\\x00-\x1f]*)","sha256":"([0-9a-f]{64})","size":(0|[1-9][0-9]{0,18})\}'
)


class _Caps:
    """The caps on a manifest's entries and chunk hashes, checked on byte
    offsets before an entry is decoded."""

    def __init__(self, n_dirs: int) -> None:
        self.n_dirs = n_dirs
        self.total_chunks = 0

    def entry(self, n_files: int, hex_start: int, hex_end: int, entry_end: int) -> None:
        if n_files + self.n_dirs >= paths.MAX_ENTRIES:
            raise ManifestError("too many entries")
        if hex_end < 0 or (hex_end - hex_start) % 64:
            raise ManifestError("chunk hashes have the wrong length")
        self.total_chunks += (hex_end - hex_start) // 64
        if self.total_chunks > MAX_TOTAL_CHUNKS:
            raise ManifestError(f"more than {MAX_TOTAL_CHUNKS} chunks (the share is too large for one manifest)")
        if entry_end - hex_end > _MAX_ENTRY_REST:
            raise ManifestError("file entry too long")


def _hashes(data: bytes | bytearray, hex_start: int, hex_end: int) -> tuple[bytes, ...]:
    """The chunk hashes straight from the input: no str of up to 16 MiB."""
    raw = binascii.unhexlify(memoryview(data)[hex_start:hex_end])
    return tuple(raw[i : i + 32] for i in range(0, len(raw), 32))


def _file_entry(item: object, hashes: tuple[bytes, ...]) -> FileEntry:
    if not isinstance(item, dict) or set(item) != _FILE_KEYS:
        raise ManifestError("file entry has missing or unknown fields")
    if not isinstance(item["path"], str):
        raise ManifestError("file path is not a string")
    size = item["size"]
    if type(size) is not int:
        raise ManifestError("file size is not an integer")
    return FileEntry(item["path"], size, _hex(item["sha256"], 32, "file sha256"), hashes)
