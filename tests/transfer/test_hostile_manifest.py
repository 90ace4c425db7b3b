"""Manifests built to exhaust the receiver (issue 9, finding 3) and misleading names.

The hostile sharer holds the key (it is the sharer), so it passes the
handshake and hands over whatever manifest it likes. Each attack must be
refused by a cap, in time and memory linear in the manifest's bytes, before
anything is written; the manifest frame must not be buffered before the
sharer proved the key.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tracemalloc
from pathlib import Path

import pytest
import trio
from test_malicious import CS, EvilSharer, against_evil, all_files, manifest_json

from p2pshare.transfer import fetch, manifest, paths, wire
from p2pshare.transfer.errors import OutputError, ProtocolError
from p2pshare.transfer.events import ManifestReceived, TransferEvent


def _deep(depth: int, leaf: str) -> str:
    return "/".join(["a"] * (depth - 1) + [leaf])


def _raw_manifest(chunk_size: int, files: list[tuple[str, int, int]]) -> bytes:
    """(path, declared size, number of chunk hashes) -> JSON; hashes are random."""
    entries = [
        {"path": p, "size": size, "sha256": os.urandom(32).hex(), "chunks": os.urandom(32 * n).hex()}
        for p, size, n in files
    ]
    obj = {"version": 1, "name": "evil", "description": "", "sharer": None, "chunk_size": chunk_size}
    obj |= {"dirs": [], "files": entries}
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def test_tree_check_caps_depth() -> None:
    paths.check_tree([_deep(paths.MAX_DEPTH, "f")], [])
    with pytest.raises(paths.PathRuleError, match="deeper than 128"):
        paths.check_tree([_deep(paths.MAX_DEPTH + 1, "f")], [])


def test_tree_check_still_finds_every_collision() -> None:
    for files, dirs, rule in [
        (["a/b", "a/b"], [], "duplicate path"),
        (["a/b", "A/c"], [], "case or Unicode"),
        (["a", "a/b"], [], "both a file and a directory"),
        (["a/b"], ["a/b"], "both a file and a directory"),
        ([], ["d", "d"], "duplicate path"),
        (["caf\u00e9/x", "cafe\u0301/y"], [], "case or Unicode"),
        # The same parent again (its walk is skipped), then a near one.
        (["a/b/c", "a/b/d", "a/B/e"], [], "case or Unicode"),
        (["a/b/c", "a/b/d", "a/b/c"], [], "duplicate path"),
        (["a/b/c", "a/b/d", "a/b"], [], "both a file and a directory"),
        (["a/b/c", "a/b/d", "a/b/c/e"], [], "both a file and a directory"),
        (["x/f", "x/g"], ["x/f/h"], "both a file and a directory"),
        (["x/f", "x/g"], ["x/d", "x/d"], "duplicate path"),
    ]:
        with pytest.raises(paths.PathRuleError, match=rule):
            paths.check_tree(files, dirs)
    paths.check_tree(["a/b", "a/c", "d"], ["a", "e/f"])
    paths.check_tree(["a/b/c", "a/b/d", "a/e", "a/b/f"], ["a/b", "a", "a/b/g"])


def test_tree_check_caps_directories(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "MAX_DIRS", 10)
    paths.check_tree([f"d{i}/f" for i in range(10)], [])
    with pytest.raises(paths.PathRuleError, match="more than 10 directories"):
        paths.check_tree([f"d{i}/f" for i in range(11)], [])


async def test_deep_manifest_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    # Was: 300 paths 2,046 levels deep (1.2 MB) -> 2.68 GB RSS, 613,800 directories.
    evil_json = manifest_json([(_deep(2046, f"f{i}"), b"") for i in range(300)])
    assert len(evil_json) > 1_000_000

    async def behave(evil: EvilSharer, key: bytes) -> None:
        await evil.handshake(evil_json)
        await evil.recv()

    before = all_files(tmp_path)
    err = await against_evil(tmp_path, behave)
    assert isinstance(err, ProtocolError) and "deeper than 128 levels" in str(err)
    assert all_files(tmp_path) - before <= {"out"}


async def test_too_many_chunk_hashes_are_refused(tmp_path: Path) -> None:
    # Was: 1M chunk hashes declaring 15.3 TiB accepted at 1.67 GB RSS.
    n = manifest.MAX_TOTAL_CHUNKS + 1
    evil_json = _raw_manifest(CS, [("big", n * CS, n)])

    async def behave(evil: EvilSharer, key: bytes) -> None:
        await evil.handshake(evil_json)
        await evil.recv()

    err = await against_evil(tmp_path, behave)
    assert isinstance(err, ProtocolError) and f"more than {manifest.MAX_TOTAL_CHUNKS} chunks" in str(err)
    assert all_files(tmp_path) <= {"out"}


async def test_share_larger_than_the_free_space_is_refused_before_any_write(tmp_path: Path) -> None:
    size = manifest.MAX_TOTAL_CHUNKS * manifest.MAX_CHUNK_SIZE  # 4 TiB: within every cap
    if shutil.disk_usage(tmp_path).free >= size:
        pytest.skip("this filesystem has 4 TiB free")
    evil_json = _raw_manifest(manifest.MAX_CHUNK_SIZE, [("huge.bin", size, manifest.MAX_TOTAL_CHUNKS)])

    async def behave(evil: EvilSharer, key: bytes) -> None:
        await evil.handshake(evil_json)
        await evil.recv()

    err = await against_evil(tmp_path, behave)
    assert isinstance(err, OutputError), err
    assert "does not fit" in str(err) and "4.0 TiB" in str(err)
    assert all_files(tmp_path) <= {"out"}  # no partial directory, no file


def test_manifest_frame_before_accept_is_refused_from_its_header() -> None:
    dec = wire.FrameDecoder(wire.TO_RECEIVER, wire.RECEIVER_ORDER)
    dec.feed(wire.encode(wire.Challenge(os.urandom(32))))
    header = struct.pack(">BI", wire.MsgType.MANIFEST, 60 << 20)
    with pytest.raises(ProtocolError, match="MANIFEST message before ACCEPT"):
        dec.feed(header + b"x" * 1000)
    assert dec.buffered <= len(header)
    dec2 = wire.FrameDecoder(wire.TO_RECEIVER, wire.RECEIVER_ORDER)
    with pytest.raises(ProtocolError, match="CHUNK message before ACCEPT"):
        dec2.feed(struct.pack(">BI", wire.MsgType.CHUNK, 1 << 20))


def test_a_second_manifest_is_refused_from_its_header() -> None:
    """Once the manifest came, another would sit in the decoder (up to
    40 MiB, outside the transfer's byte budget) until whole."""
    dec = wire.FrameDecoder(wire.TO_RECEIVER, wire.RECEIVER_ORDER, wire.RECEIVER_ONCE)
    dec.feed(wire.encode(wire.Challenge(os.urandom(32))) + wire.encode(wire.Accept(os.urandom(32))))
    (first,) = dec.feed(wire.encode(wire.ManifestMsg(os.urandom(12), os.urandom(100))))
    assert isinstance(first, wire.ManifestMsg)
    header = struct.pack(">BI", wire.MsgType.MANIFEST, 39 << 20)
    with pytest.raises(ProtocolError, match="a second MANIFEST message"):
        dec.feed(header + b"x" * 1000)
    assert dec.buffered <= len(header)


async def test_unauthenticated_peer_cannot_park_a_manifest(tmp_path: Path) -> None:
    async def behave(evil: EvilSharer, key: bytes) -> None:
        await evil.recv()  # HELLO
        await evil.s.write(wire.encode(wire.Challenge(os.urandom(32))))
        await evil.recv()  # PROOF; now skip ACCEPT and start a huge MANIFEST
        await evil.s.write(struct.pack(">BI", wire.MsgType.MANIFEST, 64 << 20) + b"\0" * 65536)

    err = await against_evil(tmp_path, behave)
    assert isinstance(err, ProtocolError) and "before ACCEPT" in str(err)


def test_name_warnings() -> None:
    assert paths.name_warnings("report.pdf") == []
    assert paths.name_warnings("caf\u00e9/men\u00fc.txt") == []
    (bidi,) = paths.name_warnings("invoice\u202efdp.exe")
    assert "invisible or direction-changing" in bidi and "\\u202e" in bidi
    (look,) = paths.name_warnings("\uff0e\uff0e/x")
    assert "lookalike" in look and "'../x'" in look
    (zw,) = paths.name_warnings("pay\u200bpal.html")
    assert "invisible" in zw


def test_chunk_size_grows_only_for_huge_shares() -> None:
    assert manifest.chunk_size_for([10 << 30]) == manifest.DEFAULT_CHUNK_SIZE
    assert manifest.chunk_size_for([300 << 30]) == 2 << 20
    assert manifest.chunk_size_for([5 << 40]) == manifest.MAX_CHUNK_SIZE


def test_small_shares_get_small_chunks_for_an_early_first_verified_byte() -> None:
    kib, mib = 1 << 10, 1 << 20
    assert manifest.chunk_size_for([]) == manifest.MIN_CHUNK_SIZE
    assert manifest.chunk_size_for([1 * mib]) == 64 * kib  # 16 chunks
    assert manifest.chunk_size_for([8 * mib, 8 * mib]) == 64 * kib  # 256 chunks: the most at 64 KiB
    assert manifest.chunk_size_for([16 * mib + 1]) == 128 * kib
    assert manifest.chunk_size_for([100 * mib]) == 512 * kib
    assert manifest.chunk_size_for([256 * mib + 1]) == manifest.DEFAULT_CHUNK_SIZE
    assert manifest.chunk_size_for([1 << 30]) == manifest.DEFAULT_CHUNK_SIZE  # issue 12's GiB: unchanged
    # Never more chunks than 256 below DEFAULT_CHUNK_SIZE, whatever the split.
    for total in (1, 64 * kib, 3 * mib + 5, 40 * mib, 255 * mib):
        size = manifest.chunk_size_for([total])
        assert size >= manifest.MIN_CHUNK_SIZE and size & (size - 1) == 0
        assert manifest.chunk_count(total, size) <= manifest.SMALL_SHARE_CHUNKS
    # A size the caller asks for is kept (grown only to fit MAX_TOTAL_CHUNKS).
    assert manifest.chunk_size_for([1 * mib], manifest.DEFAULT_CHUNK_SIZE) == manifest.DEFAULT_CHUNK_SIZE


async def test_misleading_names_are_received_with_warnings(tmp_path: Path) -> None:
    data = b"not a pdf"
    names = ["invoice\u202efdp.exe", "\uff0e\uff0e", "plain.txt"]
    events: list[TransferEvent] = []

    async def behave(evil: EvilSharer, key: bytes) -> None:
        body = manifest_json([(n, data) for n in names])
        await evil.handshake(body)
        want = await evil.recv()
        assert isinstance(want, wire.Want)
        digest = hashlib.sha256(manifest.decode(body).encode()).digest()
        for i in range(len(names)):
            await evil.s.write(evil.chunk(digest, i, i, 0, True, data))
        await evil.s.write(wire.encode(wire.End()))
        await evil.recv()  # DONE

    from xfer_helpers import RECEIVER_ID, SHARER_ID, stream_pair

    key = os.urandom(32)
    r, s = stream_pair()
    evil = EvilSharer(s, key)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:

            async def run_evil() -> None:
                await behave(evil, key)
                await evil.s.close_write()

            nursery.start_soon(run_evil)
            await fetch(
                r,
                key=key,
                output_dir=tmp_path,
                local_peer_id=RECEIVER_ID,
                remote_peer_id=SHARER_ID,
                on_event=events.append,
            )
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != paths.PARTIAL_DIR_NAME) == sorted(names)
    (got,) = [e for e in events if isinstance(e, ManifestReceived)]
    assert len(got.warnings) == 2


def test_attack_documents_are_what_the_encoder_writes() -> None:
    # tests/hostile/manifest_attacks.py assembles manifests as bytes; they
    # must be canonical, or the attacks would only test the canonical check.
    from tests.hostile import manifest_attacks as attacks

    for doc in (
        attacks.small_valid(),
        attacks.document([attacks.entry('x/\u00e9 "q"', 0, attacks.EMPTY), attacks.huge_file()], ["x", "z"]),
    ):
        assert manifest.decode(doc).encode() == doc


def test_dirs_are_counted_and_typed_before_they_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "MAX_ENTRIES", 4)
    ok = manifest_json([("f", b"x")], ["a", "b", 'c"d,"e'])
    manifest.decode(ok)
    with pytest.raises(manifest.ManifestError, match="too many entries"):
        manifest.decode(manifest_json([], [f"d{i}" for i in range(5)]))
    with pytest.raises(manifest.ManifestError, match="too many entries"):
        manifest.decode(manifest_json([("f", b"x"), ("g", b"y")], ["a", "b", "c"]))
    numbers = ok.replace(b'"dirs":["a","b",', b'"dirs":[1,2,')
    with pytest.raises(manifest.ManifestError, match="not a string"):
        manifest.decode(numbers)


def test_an_entry_is_bounded_before_it_is_parsed() -> None:
    # A 40 MB number (or path) in one entry is refused from its length, not
    # read into a str of its own.
    doc = manifest_json([("a", b"")]).replace(b'"size":0', b'"size":' + b"9" * 100_000)
    with pytest.raises(manifest.ManifestError, match="file entry too long"):
        manifest.decode(doc)
    upper = manifest_json([("a", b"x" * 10)])
    start = upper.index(b'"chunks":"') + 10
    with pytest.raises(manifest.ManifestError, match="lower-case hex"):
        manifest.decode(upper[:start] + upper[start : start + 64].upper() + upper[start + 64 :])


def test_fold_takes_a_shortcut_for_ascii_only() -> None:
    # ASCII is folded with lower() (issue 12); it must be what the full
    # folding gives, for every ASCII character and for names around them.
    import unicodedata

    def full(path: str) -> str:
        return unicodedata.normalize("NFC", unicodedata.normalize("NFC", path).casefold())

    for name in [*(chr(c) for c in range(128)), "README.Md", "a/B/c.TXT", "Stra\u00dfe", "\u212a", "caf\u00e9"]:
        assert paths.fold(name) == full(name), name


def test_listed_names_are_checked_as_components() -> None:
    # What the scanner calls for each name read from a directory: the
    # same refusals as check_component for every name a directory can hold.
    for name in ["ok.txt", "tab\there", "back\\slash", "x" * 255, "x" * 256, "\u00e9" * 127, "\u00e9" * 128, "\x7f"]:
        try:
            paths.check_component(name)
            expected = None
        except paths.PathRuleError as exc:
            expected = str(exc)
        try:
            paths.check_listed_name(name)
            got = None
        except paths.PathRuleError as exc:
            got = str(exc)
        assert got == expected, name


def test_the_names_rename_must_avoid_are_found_as_before() -> None:
    taken = paths.Occupied(["Docs/Report.PDF", "a/b/c.txt"], ["empty/dir"])
    for path in ("docs/report.pdf", "DOCS", "a", "a/b", "A/B/C.TXT", "empty", "empty/DIR"):
        assert path in taken, path
    for path in ("docs/report (1).pdf", "a/c.txt", "a/b/c", "b", "empty/dir/x", "a/b/c.txt/d"):
        assert path not in taken, path
    assert "Stra\u00dfe/x" in paths.Occupied(["strasse/X"], [])  # folded as the file system may


def test_the_names_rename_must_avoid_cost_memory_linear_in_the_paths() -> None:
    """Was: every prefix of every path kept as a folded string of its own,
    quadratic in depth, with 4 bytes a character once one is not ASCII
    (1,000 such paths: ~925 MB; these 200: ~200 MB), built before consent."""
    files = ["/".join([f"{i:05d}\U0001f600", *(f"c{j:03d}" + "d" * 26 for j in range(126)), "f"]) for i in range(200)]
    tracemalloc.start()
    try:
        taken = paths.Occupied(files, [])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert files[7] in taken and files[7].rpartition("/")[0] in taken
    assert peak < 24 * 1024 * 1024, f"{peak / 1e6:.0f} MB"


def _dirs_manifest(dirs_json: bytes) -> bytes:
    return (
        b'{"chunk_size":65536,"description":"","dirs":[%s],"files":[],"name":"x","sharer":null,"version":1}' % dirs_json
    )


def test_a_huge_directory_string_is_refused_before_it_is_decoded() -> None:
    """Was: the dirs array decoded whole (one 39 MiB string with an emoji:
    156 MB of str, 416 MB peak) before the path-length rule refused it."""
    data = _dirs_manifest(json.dumps("\U0001f600" + "a" * (8 << 20), ensure_ascii=False).encode())
    tracemalloc.start()
    try:
        with pytest.raises(manifest.ManifestError, match="longer than 4096 bytes"):
            manifest.parse(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak / 1e6:.1f} MB"


def test_the_paths_memory_is_capped_as_they_are_decoded() -> None:
    """Every character of a str takes 4 bytes once one is an emoji: 8,000
    valid directory paths of ~4 KiB (30 MB) held 316 MB."""
    long = "/".join(["\U0001f600" + "a" * 200] * 19)  # valid: 19 levels, < 4096 bytes
    many = b",".join(json.dumps(f"{i}{long}", ensure_ascii=False).encode() for i in range(4500))
    with pytest.raises(manifest.ManifestError, match="more than 64 MiB of memory"):
        manifest.parse(_dirs_manifest(many))
    ascii_only = b",".join(json.dumps(f"{i}{long}".replace("\U0001f600", "e")).encode() for i in range(4500))
    assert len(manifest.parse(_dirs_manifest(ascii_only)).dirs) == 4500  # the same bytes in ASCII fit


def test_directory_strings_decode_as_json_does() -> None:
    for text in ("plain/dir", 'quo"te', "\u00e9t\u00e9/\U0001f600", "tab\\there"):
        token = json.dumps(text, ensure_ascii=False).encode()
        assert manifest.parse(_dirs_manifest(token)).dirs == [text]
        assert manifest.parse(_dirs_manifest(json.dumps(text).encode())).dirs == [text]  # \u escapes too
    for bad in (b'"a\x01b"', b'"\xff"', b"1", b'"a" "b"', b'"a",'):
        with pytest.raises(manifest.ManifestError):
            manifest.parse(_dirs_manifest(bad))


def test_check_tree_counts_the_directories_listed_and_implied() -> None:
    assert paths.check_tree(["a/b/c", "a/d", "e"], ["f", "a/b/g"]) == 4  # a, a/b, f, a/b/g
    assert paths.check_tree(["x"], []) == 0
