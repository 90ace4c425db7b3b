"""Manifests and frames a sharer holding the key can throw at a receiver.

Issue 9, finding 3: a sharer is trusted with nothing but the bytes it
shares. It passes the key proof (it is the sharer), so whatever it sends is
authenticated; the receiver's caps alone must bound what a manifest costs.
Each ``Attack`` here is served by ``tests/hostile/sharer.py`` through the
real handshake and the real manifest encryption, and measured against the
real ``p2pshare get`` by ``scripts/bench_manifest_attacks.py --process`` and
``tests/cli/test_manifest_attacks.py``.

The documents are canonical JSON (what ``Manifest.encode`` writes: sorted
keys, no spaces, UTF-8), assembled as bytes: building a 64 MB manifest
through dicts would cost the *attacker* seconds and gigabytes, and that is
not what is measured. ``tests/transfer/test_hostile_manifest.py`` checks
that the assembly is canonical. Sizes follow the caps of the code under
test (read at build time), so an attack "at the cap" stays at the cap when
a cap changes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from p2pshare.transfer import manifest as m
from p2pshare.transfer import paths

EMPTY = m.EMPTY_SHA256.hex()
TiB = 1 << 40
#: A declared size no disk here has free: manifests that pass every cap are
#: refused by the free-space check, so a measurement never writes a tree.
HUGE_BYTES = 4 * TiB
HUGE_CHUNK = m.MAX_CHUNK_SIZE  # 4 TiB in 16 MiB chunks: 262,144 hashes


def jstr(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False).encode("utf-8")


def entry(path: str, size: int, sha256: str, chunks_hex: bytes | str = b"") -> bytes:
    """One file entry, keys sorted as the encoder sorts them."""
    hexes = chunks_hex.encode() if isinstance(chunks_hex, str) else chunks_hex
    return b'{"chunks":"%s","path":%s,"sha256":"%s","size":%d}' % (hexes, jstr(path), sha256.encode(), size)


def document(
    files: Iterable[bytes],
    dirs: Iterable[str] = (),
    *,
    chunk_size: int = HUGE_CHUNK,
    description: str = "",
    name: str = "evil",
) -> bytes:
    """A whole manifest from pre-encoded file entries (canonical layout)."""
    return b"".join(
        (
            b'{"chunk_size":%d,"description":%s,"dirs":[' % (chunk_size, jstr(description)),
            b",".join(jstr(d) for d in dirs),
            b'],"files":[',
            b",".join(files),
            b'],"name":%s,"sharer":null,"version":1}' % jstr(name),
        )
    )


def huge_file(path: str = "~huge") -> bytes:
    """A file of ``HUGE_BYTES`` with (random) hashes: what makes the free-space check refuse."""
    n = m.chunk_count(HUGE_BYTES, HUGE_CHUNK)
    return entry(path, HUGE_BYTES, os.urandom(32).hex(), os.urandom(32 * n).hex())


def _fill(per_entry: Callable[[int], bytes], fixed: list[bytes], limit: int, **kw: object) -> bytes:
    """As many ``per_entry(i)`` as fit in ``limit`` bytes (all the same length),
    then the description padded so the document is exactly ``limit`` long."""
    base = len(document(fixed, **kw))  # type: ignore[arg-type]
    one = len(per_entry(0)) + 1  # with its comma
    count = (limit - base) // one
    files = [per_entry(i) for i in range(count)] + fixed
    doc = document(files, **kw)  # type: ignore[arg-type]
    pad = limit - len(doc)
    assert 0 <= pad <= m.MAX_DESCRIPTION_CHARS, pad
    desc = str(kw.pop("description", ""))
    return document(files, description=desc + "." * pad, **kw)  # type: ignore[arg-type]


def deep() -> bytes:
    # The attack (a): 300 paths 2,046 levels deep, 1.2 MB.
    return document(entry("/".join(["a"] * 2045 + [f"f{i}"]), 0, EMPTY) for i in range(300))


def chunks_1m() -> bytes:
    # The attack (b): one file of 1M chunk hashes, 15.3 TiB, 64 MB.
    n = 1_000_000
    return document(
        [entry("big", n * HUGE_CHUNK, os.urandom(32).hex(), os.urandom(32 * n).hex())], chunk_size=HUGE_CHUNK
    )


def chunks_cap() -> bytes:
    # Exactly MAX_TOTAL_CHUNKS hashes (1 MiB chunks: 256 GiB): passes the
    # chunk cap; the free-space check refuses it.
    n = m.MAX_TOTAL_CHUNKS
    chunk = m.DEFAULT_CHUNK_SIZE
    return document([entry("big", n * chunk, os.urandom(32).hex(), os.urandom(32 * n).hex())], chunk_size=chunk)


def _smallest(i: int) -> bytes:
    return entry(f"{i:08d}", 0, EMPTY)  # an empty file with an 8-character name: 110 bytes


def entries_cap() -> bytes:
    # Exactly at the entry cap (or as many as fit the byte cap, if that binds
    # first): the smallest file entries, one of them the huge file.
    fit = (m.MAX_MANIFEST_BYTES - len(document([huge_file()]))) // (len(_smallest(0)) + 1)
    return document([*map(_smallest, range(min(paths.MAX_ENTRIES - 1, fit))), huge_file()])


def entries_bytes(description: str = "") -> bytes:
    # The byte cap filled with the smallest file entries (and the huge file).
    return _fill(_smallest, [huge_file()], m.MAX_MANIFEST_BYTES, description=description)


def entries_astral() -> bytes:
    # The same with one character outside the BMP: a str holding the whole
    # document takes 4 bytes per character, not 1.
    return entries_bytes("\U0001f608")


def long_names() -> bytes:
    # The byte cap filled with 4,095-byte paths: 16 components of 255 bytes.
    stem = "/".join([("d" * 254) + f"{k:x}" for k in range(15)])
    return _fill(lambda i: entry(f"{stem}/{i:08d}{'n' * 247}", 0, EMPTY), [huge_file()], m.MAX_MANIFEST_BYTES)


def dirs_cap() -> bytes:
    # Exactly MAX_DIRS explicit directories (fewer if the entry cap binds first), and the huge file.
    n = min(paths.MAX_DIRS, paths.MAX_ENTRIES - 1)
    return document([huge_file()], [f"{i:06d}" for i in range(n)])


def dirs_implied() -> bytes:
    # Directories implied by file paths, not listed: 128-level paths, each
    # new but for its leaf, up to one directory over MAX_DIRS.
    per_file = paths.MAX_DEPTH - 1
    files = [
        entry("/".join([f"{i}", *["a"] * (per_file - 1), "f"]), 0, EMPTY) for i in range(paths.MAX_DIRS // per_file + 1)
    ]
    return document(files)


def dirs_over() -> bytes:
    # The byte cap filled with directory names: millions of entries, far
    # over every count cap.
    names: list[str] = []
    size = len(document([]))
    i = 0
    while size + 10 < m.MAX_MANIFEST_BYTES:
        names.append(f"{i:07d}")
        size += 10
        i += 1
    return document([], names)


def nesting() -> bytes:
    # The byte cap of '[': the JSON parser's recursion.
    return b"[" * m.MAX_MANIFEST_BYTES


def bignum() -> bytes:
    # A file size with tens of millions of digits.
    return document(
        [b'{"chunks":"","path":"a","sha256":"%s","size":%s}' % (EMPTY.encode(), b"9" * (m.MAX_MANIFEST_BYTES - 300))]
    )


def sealed_garbage() -> bytes:
    # Random bytes of the cap's size, correctly sealed: authentic, not JSON.
    return os.urandom(m.MAX_MANIFEST_BYTES)


def small_valid() -> bytes:
    # A legitimate small manifest (one file of 16 chunks of 64 KiB), for the
    # attacks that come after the manifest.
    size = 16 * m.MIN_CHUNK_SIZE
    return document([entry("file", size, os.urandom(32).hex(), os.urandom(32 * 16).hex())], chunk_size=m.MIN_CHUNK_SIZE)


def many_dirs() -> bytes:
    # Empty files deep down: "0 B" to receive, 5,000 directories to make (a
    # hostile-peer review, stop 44: 1,031 such files made 130,938, 512 MiB).
    files = [entry("/".join(f"d{i}x{j}" for j in range(100)) + "/f", 0, EMPTY) for i in range(50)]
    return document(files, chunk_size=m.MIN_CHUNK_SIZE)


def text_with_dirs() -> bytes:
    # Marked as a text share (printed, never asked about), with directories:
    # 1,020 deep ones made ~130,000 directories without a question (a
    # hostile-peer review, stop 44). A few show it.
    from p2pshare.node.textshare import TEXT_MARK

    body = b"hello"
    digest = hashlib.sha256(body).hexdigest()
    dirs = ["d0", "d0/d1", "d0/d1/d2"]
    return document(
        [entry("note.txt", len(body), digest, digest)], dirs, chunk_size=m.MIN_CHUNK_SIZE, description=TEXT_MARK
    )


@dataclass(frozen=True)
class Attack:
    """What the hostile sharer sends after the key proof.

    ``frame``: ``sealed`` (the manifest, encrypted with the share key),
    ``garbage`` (a MANIFEST frame of random bytes: fails authentication) or
    ``overlong`` (a MANIFEST header one byte over the limit, then the bytes).
    ``then``: what follows once the receiver sends WANT (``unrequested``
    CHUNK frames, an ``oversize`` CHUNK frame) or right behind the manifest
    (``early`` CHUNK frames); ``""``: nothing.
    """

    what: str
    build: Callable[[], bytes]
    frame: str = "sealed"
    then: str = ""


ATTACKS: dict[str, Attack] = {
    "deep": Attack("300 paths x 2,046 levels (1.2 MB)", deep),
    "chunks-1m": Attack("1M chunk hashes, 15.3 TiB (64 MB)", chunks_1m),
    "chunks-cap": Attack("MAX_TOTAL_CHUNKS hashes, 256 GiB", chunks_cap),
    "entries-cap": Attack("entry cap of empty files + 4 TiB file", entries_cap),
    "entries-bytes": Attack("byte cap of smallest file entries", entries_bytes),
    "entries-astral": Attack("same, one astral char in description", entries_astral),
    "long-names": Attack("byte cap of 4,095-byte paths", long_names),
    "dirs-cap": Attack("MAX_DIRS directories + 4 TiB file", dirs_cap),
    "dirs-implied": Attack("MAX_DIRS + 1 dirs implied by 128-deep paths", dirs_implied),
    "dirs-over": Attack("byte cap of short directory names", dirs_over),
    "nesting": Attack("byte cap of '['", nesting),
    "bignum": Attack("a size of ~byte-cap digits", bignum),
    "sealed-garbage": Attack("byte cap of random bytes, sealed", sealed_garbage),
    "garbage": Attack("MANIFEST frame of random bytes at the cap", sealed_garbage, frame="garbage"),
    "overlong": Attack("MANIFEST header over the limit, then bytes", sealed_garbage, frame="overlong"),
    "unrequested": Attack("valid manifest, then CHUNKs never requested", small_valid, then="unrequested"),
    "oversize-chunk": Attack("valid manifest, then a 16 MiB CHUNK", small_valid, then="oversize"),
    "early-chunks": Attack("valid manifest, CHUNKs before WANT", small_valid, then="early"),
    "text-dirs": Attack("a text share with directories", text_with_dirs),
    "many-dirs": Attack("50 empty files 100 levels deep: 5,000 directories", many_dirs),
}
