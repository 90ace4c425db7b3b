"""Manifest encoding and the path-safety rules a hostile sharer runs into."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata

import pytest

from p2pshare.transfer import manifest as manifest_module
from p2pshare.transfer import paths
from p2pshare.transfer.manifest import (
    EMPTY_SHA256,
    MAX_MANIFEST_BYTES,
    FileEntry,
    Manifest,
    ManifestError,
    decode,
    make_manifest,
)

CS = 64 * 1024


def entry(path: str, size: int = 10) -> FileEntry:
    if size == 0:
        return FileEntry(path, 0, EMPTY_SHA256, ())
    n = -(-size // CS)
    return FileEntry(path, size, hashlib.sha256(path.encode()).digest(), tuple(bytes([i % 256]) * 32 for i in range(n)))


def build(files: list[FileEntry], dirs: list[str] | None = None) -> Manifest:
    return make_manifest(name="n", description="d", sharer=None, chunk_size=CS, files=files, dirs=dirs or [])


def raw(file_list: list[dict[str, object]], dir_list: list[object] | None = None, **top: object) -> bytes:
    obj: dict[str, object] = {
        "version": 1,
        "name": "n",
        "description": "",
        "sharer": None,
        "chunk_size": CS,
        "dirs": dir_list or [],
        "files": file_list,
    }
    obj.update(top)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def raw_file(path: object, size: int = 10, **extra: object) -> dict[str, object]:
    d: dict[str, object] = {"path": path, "size": size, "sha256": "ab" * 32, "chunks": "cd" * 32 * (-(-size // CS))}
    d.update(extra)
    return d


def test_round_trip_and_digest() -> None:
    m = make_manifest(
        name="holiday \u00e9",
        description="two\nlines",
        sharer="alice",
        chunk_size=CS,
        files=[entry("a/b.bin", 3 * CS + 1), entry("a/empty", 0), entry("c", CS)],
        dirs=["a", "a/empty-dir"],
    )
    data = m.encode()
    back = decode(data)
    assert back == m
    assert back.encode() == data
    assert back.digest() == m.digest() == hashlib.sha256(data).digest()
    assert m.total_chunks == 4 + 0 + 1
    assert [m.locate(i) for i in range(5)] == [(0, 0), (0, 1), (0, 2), (0, 3), (2, 0)]
    assert m.chunk_length(0, 3) == 1
    with pytest.raises(IndexError):
        m.locate(5)


def test_digest_changes_with_any_field() -> None:
    base = build([entry("a", 10)])
    other = make_manifest(name="n2", description="d", sharer=None, chunk_size=CS, files=[entry("a", 10)], dirs=[])
    assert base.digest() != other.digest()


UNSAFE = [
    "/etc/passwd",
    "../x",
    "a/../../x",
    "a/./b",
    "./a",
    "a//b",
    "a/",
    "",
    "a\\b",
    "..\\x",
    "a\x00b",
    "a\nb",
    "a\x1b[31mred",
    "a\x7f",
    "x" * 256,
    "/".join(["d" * 200] * 21),  # > 4096 bytes
    ".p2pshare-partial/x",
    ".P2PShare-Partial/0123/1",  # the same folder on a case-insensitive file system
    ".P2PSHARE-PARTIAL",
    "..",
    ".",
]


@pytest.mark.parametrize("path", UNSAFE)
def test_unsafe_file_paths_rejected(path: str) -> None:
    with pytest.raises(ManifestError, match="unsafe path"):
        decode(raw([raw_file(path)]))


@pytest.mark.parametrize("path", UNSAFE)
def test_unsafe_dir_paths_rejected(path: str) -> None:
    with pytest.raises(ManifestError, match="unsafe path"):
        decode(raw([], [path]))


def test_lone_surrogate_rejected() -> None:
    data = raw([raw_file("a")]).replace(b'"path":"a"', b'"path":"\\ud800"')
    with pytest.raises(ManifestError):
        decode(data)


@pytest.mark.parametrize(
    ("files", "dirs"),
    [
        (["a", "a"], []),  # duplicate file
        ([], ["d", "d"]),  # duplicate dir
        (["A.txt", "a.txt"], []),  # case collision
        (["Stra\u00dfe", "STRASSE"], []),  # case-folding collision
        ([unicodedata.normalize("NFC", "\u00e9"), unicodedata.normalize("NFD", "\u00e9")], []),  # NFC/NFD
        (["a", "a/b"], []),  # file is a parent directory of another file
        (["a/b", "a"], []),
        (["a"], ["a"]),  # file and dir of the same name
        (["a"], ["a/sub"]),  # file is a parent of a directory
        (["x/F/y"], ["x/f"]),  # directories differing in case
    ],
)
def test_collisions_rejected(files: list[str], dirs: list[str]) -> None:
    with pytest.raises(ManifestError, match="unsafe path"):
        decode(raw([raw_file(p) for p in files], dirs))


def test_implied_and_explicit_dirs_are_fine() -> None:
    m = decode(raw([raw_file("a/b/c")], ["a", "a/b", "a/e"]))
    assert [f.path for f in m.files] == ["a/b/c"]


def test_symlink_or_other_entry_types_cannot_be_expressed() -> None:
    for extra in ({"type": "symlink"}, {"target": "/etc/passwd"}, {"mode": 0o777}):
        with pytest.raises(ManifestError, match="missing or unknown fields"):
            decode(raw([raw_file("a", **extra)]))
    with pytest.raises(ManifestError):
        decode(raw([], [{"path": "d", "type": "symlink"}]))
    with pytest.raises(ManifestError, match="unknown fields"):
        decode(raw([raw_file("a")], links=[["a", "/etc"]]))


@pytest.mark.parametrize(
    "bad",
    [
        lambda f: f.update(size=-1),
        lambda f: f.update(size=True),
        lambda f: f.update(size=1.5),
        lambda f: f.update(size=10 * CS),  # chunk count no longer matches
        lambda f: f.update(chunks=""),
        lambda f: f.update(chunks="zz" * 32),
        lambda f: f.update(chunks="CD" * 32),  # upper case: not canonical
        lambda f: f.update(sha256="ab" * 31),
        lambda f: f.update(sha256=None),
        lambda f: f.update(path=7),
        lambda f: f.pop("sha256"),
    ],
)
def test_bad_file_fields(bad: object) -> None:
    f = raw_file("a")
    bad(f)  # type: ignore[operator]
    with pytest.raises(ManifestError):
        decode(raw([f]))


def test_empty_file_must_have_empty_hash() -> None:
    assert decode(raw([raw_file("e", 0, sha256=EMPTY_SHA256.hex())])).files[0].size == 0
    with pytest.raises(ManifestError, match="empty file"):
        decode(raw([raw_file("e", 0)]))


@pytest.mark.parametrize(
    "top",
    [
        {"chunk_size": 1000},
        {"chunk_size": 32 * 1024},
        {"chunk_size": 32 * 1024 * 1024},
        {"chunk_size": True},
        {"version": 2},
        {"version": True},
        {"name": "x" * 256},
        {"name": "bad\nname"},
        {"name": 5},
        {"sharer": "esc\x1b"},
        {"description": "x" * 5000},
        {"files": {}},
        {"dirs": "a"},
    ],
)
def test_bad_top_level_fields(top: dict[str, object]) -> None:
    with pytest.raises(ManifestError):
        decode(raw([raw_file("a")], **top))


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"[]", b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000, b'{"version": 1}'],
)
def test_garbage_is_a_manifest_error(data: bytes) -> None:
    with pytest.raises(ManifestError):
        decode(data)


def test_oversize_manifest_rejected_before_parsing() -> None:
    with pytest.raises(ManifestError, match="too large"):
        decode(b" " * (MAX_MANIFEST_BYTES + 1))


def test_entry_count_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "MAX_ENTRIES", 5)
    decode(raw([raw_file(f"f{i}") for i in range(3)], ["d1", "d2"]))
    with pytest.raises(ManifestError, match="too many entries"):
        decode(raw([raw_file(f"f{i}") for i in range(3)], ["d1", "d2", "d3"]))
    build([entry(f"f{i}") for i in range(3)], ["a/b/c/d", "e"])
    with pytest.raises(ManifestError, match="more than 5 entries"):
        build([entry(f"f{i}") for i in range(3)], ["a/b/c/d", "e", "f"])


def test_encoding_is_canonical_json_piece_by_piece() -> None:
    # encode() and digest() write the manifest entry by entry (and the hashes
    # of a big file in parts); the bytes are still exactly json.dumps of it.
    big = FileEntry("big", 5000 * CS, b"\x01" * 32, tuple(i.to_bytes(32, "big") for i in range(5000)))
    m = make_manifest(
        name='say "hi" \u00e9',
        description="two\nlines\t\\ \U0001f608",
        sharer=None,
        chunk_size=CS,
        files=[entry("a/b"), big, entry('caf\u00e9 "q"', 0)],
        dirs=["a", "d \u202e"],
    )
    obj = {
        "version": 1,
        "name": m.name,
        "description": m.description,
        "sharer": None,
        "chunk_size": CS,
        "dirs": list(m.dirs),
        "files": [
            {"path": f.path, "size": f.size, "sha256": f.sha256.hex(), "chunks": b"".join(f.chunk_hashes).hex()}
            for f in m.files
        ],
    }
    expected = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert m.encode() == expected
    assert m.digest() == hashlib.sha256(expected).digest()
    assert decode(expected) == m


def test_only_the_canonical_encoding_is_decoded() -> None:
    # Decoding one entry at a time needs the encoder's layout; a real sharer
    # never sends anything else (the manifest digest is over that layout).
    spaced = json.dumps(json.loads(raw([raw_file("a")]))).encode()
    with pytest.raises(ManifestError, match="canonical"):
        decode(spaced)


def test_a_share_of_100000_small_files_fits_the_caps() -> None:
    # Issue 12 wants 100,000 small files in one share; the caps that bound a
    # hostile manifest (issue 9) must leave room for that, with real paths.
    dirs = [f"photos/{y}/{m:02d}" for y in range(2000, 2025) for m in range(1, 13)]
    files = [
        FileEntry(
            f"{dirs[i % len(dirs)]}/IMG_{i:06d} holiday on the beach with everyone.jpg",
            1000,
            b"\x02" * 32,
            (b"\x03" * 32,),
        )
        for i in range(100_000)
    ]
    all_dirs = ["photos", *(f"photos/{y}" for y in range(2000, 2025)), *dirs]
    m = make_manifest(name="n", description="", sharer=None, chunk_size=CS, files=files, dirs=all_dirs)
    data = m.encode()
    assert len(data) <= MAX_MANIFEST_BYTES
    assert len(decode(data).files) == 100_000


def test_a_one_chunk_file_holds_one_hash_object() -> None:
    """A file of one chunk has one hash (of the chunk, which is the file):
    decoded once and held once, ~6 MB less for 100,000 small files. A
    manifest that gives the two different values keeps both as sent (the
    receiver's checks then refuse the chunk or the file)."""
    same = raw_file("a", 10, sha256="ab" * 32, chunks="ab" * 32)
    other = raw_file("b", 10, sha256="ab" * 32, chunks="cd" * 32)
    a, b = decode(raw([same, other])).files
    assert a.chunk_hashes == (a.sha256,) and a.chunk_hashes[0] is a.sha256
    assert b.sha256 == bytes.fromhex("ab" * 32) and b.chunk_hashes == (bytes.fromhex("cd" * 32),)


def _general_only(monkeypatch: pytest.MonkeyPatch, data: bytes) -> Manifest | str:
    """``decode`` with every entry through ``json.loads`` (the fast path off)."""
    with monkeypatch.context() as m:
        m.setattr(manifest_module, "_PLAIN_ENTRY", re.compile(rb"(?!)"))
        return _outcome(data)


def _outcome(data: bytes) -> Manifest | str:
    try:
        return decode(data)
    except ManifestError as exc:
        return f"ManifestError: {exc}"


@pytest.mark.parametrize(
    "entries",
    [
        [raw_file("a"), raw_file("b/c", 3 * CS)],
        [raw_file("a"), raw_file('q"uote'), raw_file("z")],  # escaped, between plain ones
        [raw_file("caf\u00e9 \U0001f600"), raw_file("\u202einvoice")],  # UTF-8, not escaped
        [raw_file("a"), {**raw_file("b"), "size": 2**63}, {**raw_file("c"), "size": 10**19}],  # 19 digits, 20
        [raw_file("a", 0, sha256=EMPTY_SHA256.hex()), raw_file("b", 0)],
        [raw_file("a"), raw_file("b", sha256="AB" * 32)],
        [raw_file("a", chunks="cd" * 31)],
        [raw_file("a"), raw_file("a")],
        [raw_file("a/b"), raw_file("A/c")],
    ],
)
def test_the_fast_entry_path_decodes_as_json_loads(
    monkeypatch: pytest.MonkeyPatch, entries: list[dict[str, object]]
) -> None:
    # Entries the encoder writes without escapes are read by one regular
    # expression (issue 12); the result, or the error, must be the general path's.
    data = raw(entries)
    assert _outcome(data) == _general_only(monkeypatch, data)


@pytest.mark.parametrize(
    "bad",
    [
        b'"path":"\xff\xfe"',  # not UTF-8
        b'"path":"\xed\xa0\x80"',  # an encoded surrogate: decoded as json.loads does, then refused
        b'"path":"a\tb"',  # a raw control character
        b'"size":010',  # not JSON
        b'"size":-0',
    ],
)
def test_hostile_entries_fare_alike_on_both_paths(monkeypatch: pytest.MonkeyPatch, bad: bytes) -> None:
    key = bad.split(b":", 1)[0]
    good = raw([raw_file("x"), raw_file("y")])
    at = good.index(key, good.index(b'"path":"y"') - 200)
    end = good.index(b",", at) if key == b'"path"' else good.index(b"}", at)
    data = good[:at] + bad + good[end:]
    got = _outcome(data)
    assert isinstance(got, str)  # refused
    assert got == _general_only(monkeypatch, data)


def test_an_entry_after_a_plain_one_must_start_as_the_encoder_writes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # The general path takes over where the fast one stops; each entry it
    # reads there must still begin with the encoder's first key, as every
    # entry did when one search cut them all.
    good = raw([raw_file("x"), raw_file("y"), raw_file("z")])
    second = good.index(b'{"chunks":"', good.index(b'{"chunks":"') + 1)
    for bad in (b'{"chunkz":"', b'{"chunks" :', b"XXXXXXXXXXX"):
        data = good[:second] + bad + good[second + len(bad) :]
        assert isinstance(_outcome(data), str), bad
        assert isinstance(_general_only(monkeypatch, data), str), bad


def test_the_digest_is_of_the_bytes_the_sharer_sealed() -> None:
    # The receiver hashes what it received (issue 12); for what our encoder
    # writes that is the digest of the manifest it decodes to.
    m = build([entry("a/b", 3 * CS), entry('q"uote'), entry("caf\u00e9")], ["a", "d"])
    data = m.encode()
    assert hashlib.sha256(data).digest() == m.digest() == decode(data).digest()
