"""The receiver's store: resume without a journal, no writes outside OUTPUT."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from xfer_helpers import make_tree, run_past_fifo, snapshot

from p2pshare.transfer import store as store_module
from p2pshare.transfer.errors import ConflictError, IntegrityError, OutputError
from p2pshare.transfer.scan import PreparedShare, build_manifest
from p2pshare.transfer.store import Store

CS = 64 * 1024
SID = b"\x01" * 16


@pytest.fixture
def prepared(tmp_path: Path) -> PreparedShare:
    return build_manifest([make_tree(tmp_path / "src")], name="t", chunk_size=CS)


def chunk_data(p: PreparedShare, g: int) -> tuple[int, int, bytes]:
    f, c = p.manifest.locate(g)
    with open(p.sources[f], "rb") as fh:
        fh.seek(c * CS)
        return f, c, fh.read(CS)


def write(store: Store, p: PreparedShare, indices: range | list[int]) -> list[str]:
    done = []
    for g in indices:
        path = store.write_chunk(*chunk_data(p, g))
        if path:
            done.append(path)
    return done


def receive_whole(out: Path, p: PreparedShare) -> None:
    """One store from prepare to close, every chunk written in order."""
    store = Store(out, p.manifest, SID)
    store.prepare()
    write(store, p, range(p.manifest.total_chunks))
    store.finish()
    store.close()


def partial_dir(out: Path) -> Path:
    return out / ".p2pshare-partial" / SID.hex()


def test_full_write(tmp_path: Path, prepared: PreparedShare) -> None:
    out = tmp_path / "out"
    out.mkdir()
    store = Store(out, prepared.manifest, SID)
    plan = store.prepare()
    assert plan.already_have_bytes == 0
    assert plan.completed == ["tree/empty.txt"]  # empty files need no chunks
    assert plan.missing == [(0, prepared.manifest.total_chunks)]
    done = write(store, prepared, range(prepared.manifest.total_chunks))
    assert sorted(done) == sorted(f.path for f in prepared.manifest.files if f.size)
    store.finish()
    store.close()
    assert snapshot(out) == snapshot(tmp_path / "src")
    assert not (out / ".p2pshare-partial").exists()


def test_resume_keeps_verified_chunks(tmp_path: Path, prepared: PreparedShare) -> None:
    out = tmp_path / "out"
    out.mkdir()
    total = prepared.manifest.total_chunks
    store = Store(out, prepared.manifest, SID)
    store.prepare()
    write(store, prepared, range(0, 10))
    store.close()  # like kill -9: no journal, nothing flushed specially
    big = prepared.manifest.files[0]
    assert big.path == "tree/big.bin" and not (out / big.path).exists()  # never a complete-looking file
    # tear chunk 3 as a crash mid-write would (flipped, so never the same bytes by chance)
    part = partial_dir(out) / "0"
    with open(part, "r+b") as fh:
        fh.seek(3 * CS + 7)
        torn = bytes(b ^ 0xFF for b in fh.read(2))
        fh.seek(3 * CS + 7)
        fh.write(torn)
    store = Store(out, prepared.manifest, SID)
    plan = store.prepare()
    assert plan.missing == [(3, 4), (10, total)]
    assert plan.already_have_bytes == 9 * CS
    write(store, prepared, [3, *range(10, total)])
    store.finish()
    store.close()
    assert snapshot(out) == snapshot(tmp_path / "src")


def test_rerun_after_completion_needs_nothing(tmp_path: Path, prepared: PreparedShare) -> None:
    out = tmp_path / "out"
    out.mkdir()
    receive_whole(out, prepared)
    store = Store(out, prepared.manifest, SID)
    plan = store.prepare()
    assert plan.missing == [] and plan.already_have_bytes == prepared.manifest.total_bytes
    store.finish()
    store.close()


def test_a_finished_file_with_one_changed_chunk_is_not_taken_as_already_here(
    tmp_path: Path, prepared: PreparedShare
) -> None:
    # The check of a file at its final name goes chunk by chunk (two threads):
    # a change in the middle is found, not just one in the first chunk.
    out = tmp_path / "out"
    out.mkdir()
    receive_whole(out, prepared)
    with open(out / "tree" / "big.bin", "r+b") as fh:
        fh.seek(27 * CS + 5)
        byte = fh.read(1)[0]
        fh.seek(27 * CS + 5)
        fh.write(bytes([byte ^ 0xFF]))
    store = Store(out, prepared.manifest, SID)
    with pytest.raises(OutputError, match="refusing to overwrite .*big.bin"):
        store.prepare()
    store.close()


@pytest.mark.parametrize("mine", [2, 6])
def test_one_refusal_names_the_conflicting_files(tmp_path: Path, mine: int) -> None:
    """A person choosing between --overwrite and --rename sees how far the
    conflict goes: up to three files named, then "and others" (the search
    stops one past that: checking a file of equal size reads it)."""
    src = tmp_path / "src" / "d"
    src.mkdir(parents=True)
    for i in range(8):
        (src / f"f{i}.txt").write_text(f"theirs {i}")
    manifest = build_manifest([src], name="d", chunk_size=64 * 1024).manifest
    out = tmp_path / "out"
    (out / "d").mkdir(parents=True)
    for i in range(mine):
        (out / "d" / f"f{i}.txt").write_text(f"mine {i}")
    store = Store(out, manifest, SID)
    with pytest.raises(ConflictError) as got:
        store.assess()
    store.close()
    text = str(got.value)
    named = [i for i in range(8) if f"f{i}.txt" in text]
    assert named == ([0, 1] if mine == 2 else [0, 1, 2])
    assert ("and others" in text) == (mine > 3) and "--overwrite replaces them" in text


def test_refuses_to_overwrite_different_file(tmp_path: Path, prepared: PreparedShare) -> None:
    out = tmp_path / "out"
    (out / "tree" / "sub").mkdir(parents=True)
    (out / "tree" / "sub" / "exact.bin").write_bytes(b"mine")
    store = Store(out, prepared.manifest, SID)
    with pytest.raises(OutputError, match="refusing to overwrite .*exact.bin"):
        store.prepare()
    store.close()
    assert (out / "tree" / "sub" / "exact.bin").read_bytes() == b"mine"
    assert not (out / ".p2pshare-partial").exists()  # refused before writing anything


def test_a_fifo_swapped_in_at_a_final_name_is_refused_not_waited_on(
    tmp_path: Path, prepared: PreparedShare, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The conflict check looks at an existing final file, then opens it to
    compare its content. A FIFO put there in between (here: the look is
    shown a regular file of the right size) must not block the open: the
    receiver would wait, unkillable in a thread, until something writes."""
    out = tmp_path / "out"
    (out / "tree" / "sub").mkdir(parents=True)
    fifo = out / "tree" / "sub" / "exact.bin"
    os.mkfifo(fifo)
    lookalike = tmp_path / "lookalike"
    lookalike.write_bytes(bytes(128 * 1024))  # exact.bin's size in the share
    real_lstat = store_module.fs.lstat_at

    def lstat_before_the_swap(dir_fd: int, name: str) -> os.stat_result | None:
        return os.lstat(lookalike) if name == "exact.bin" else real_lstat(dir_fd, name)

    monkeypatch.setattr(store_module.fs, "lstat_at", lstat_before_the_swap)
    store = Store(out, prepared.manifest, SID)
    hung, outcome = run_past_fifo(store.assess, fifo)
    store.close()
    assert not hung, "the conflict check blocked opening a FIFO"
    assert isinstance(outcome, OutputError) and "refusing to overwrite" in str(outcome)
    assert "exact.bin" in str(outcome)


def test_file_where_a_directory_goes(tmp_path: Path, prepared: PreparedShare) -> None:
    out = tmp_path / "out"
    (out / "tree").mkdir(parents=True)
    (out / "tree" / "empty-dir").write_bytes(b"")
    store = Store(out, prepared.manifest, SID)
    with pytest.raises(OutputError):
        store.prepare()
    store.close()


@pytest.mark.parametrize("where", ["tree", "tree/sub", ".p2pshare-partial"])
def test_symlinked_directory_pointing_outside(tmp_path: Path, prepared: PreparedShare, where: str) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    link = out / where
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, link)
    store = Store(out, prepared.manifest, SID)
    with pytest.raises(OutputError, match="symlink|refusing"):
        store.prepare()
        write(store, prepared, range(prepared.manifest.total_chunks))
    store.close()
    assert list(outside.iterdir()) == []


def test_symlink_at_a_final_file_name(tmp_path: Path, prepared: PreparedShare) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    (out / "tree").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside / "victim", out / "tree" / "empty.txt")
    store = Store(out, prepared.manifest, SID)
    with pytest.raises(OutputError, match="refusing to write .*: something other than a file is in its place"):
        store.prepare()
    store.close()
    assert not (outside / "victim").exists()


def test_symlink_planted_in_partial_dir_is_not_followed(tmp_path: Path, prepared: PreparedShare) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    partial_dir(out).mkdir(parents=True)
    os.symlink(outside / "victim", partial_dir(out) / "0")
    store = Store(out, prepared.manifest, SID)
    with pytest.raises(OutputError):
        store.prepare()
    store.close()
    assert not (outside / "victim").exists()


def test_inconsistent_data_never_becomes_final(tmp_path: Path, prepared: PreparedShare) -> None:
    out = tmp_path / "out"
    out.mkdir()
    store = Store(out, prepared.manifest, SID)
    store.prepare()
    f, c, data = chunk_data(prepared, 0)
    with pytest.raises(IntegrityError, match="does not match its hash"):
        store.write_chunk(f, c, b"x" * len(data))
    # unverified write path (after AES-GCM) is still caught by the whole-file hash
    write(store, prepared, range(1, len(prepared.manifest.files[0].chunk_hashes) - 1))
    last = len(prepared.manifest.files[0].chunk_hashes) - 1
    store.write_chunk(f, 0, b"y" * len(data), verify=False)
    with pytest.raises(IntegrityError, match="whole-file hash"):
        store.write_chunk(*chunk_data(prepared, last))
    store.close()
    assert not (out / "tree" / "big.bin").exists()
    with pytest.raises(IntegrityError):
        store2 = Store(out, prepared.manifest, SID)
        try:
            store2.prepare()
            store2.finish()
        finally:
            store2.close()


def test_finish_without_files_the_sharer_stopped_serving(tmp_path: Path, prepared: PreparedShare) -> None:
    """Their verified parts stay where nothing mistakes them for complete files,
    for a later fetch of the same share to re-check and reuse."""
    out = tmp_path / "out"
    out.mkdir()
    m = prepared.manifest
    big = next(i for i, f in enumerate(m.files) if f.path == "tree/big.bin")
    first, n = m.first_chunk(big), len(m.files[big].chunk_hashes)
    store = Store(out, m, SID)
    store.prepare()
    write(store, prepared, [g for g in range(m.total_chunks) if not first + 2 <= g < first + n])
    assert not store.is_complete(big) and not store.complete
    with pytest.raises(IntegrityError, match="1 file"):
        store.finish()
    store.finish(frozenset({big}))
    store.close()
    want = snapshot(tmp_path / "src")
    del want["tree/big.bin"]
    assert snapshot(out) == want
    assert (partial_dir(out) / str(big)).stat().st_size >= 2 * CS
    # The next fetch of the share keeps those two chunks and asks for the rest.
    again = Store(out, m, SID)
    plan = again.prepare()
    assert plan.missing == [(first + 2, first + n)]
    again.close()


def test_many_small_files_cost_no_system_call_per_file_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh receive of many small files: the conflict check opens each
    directory once (not its parent for every file), the resume scan lists the
    partial directory once (not a stat per file), and finishing a file does
    not fstat it unless a direct write may have padded it. Each was a system
    call per file of a 100,000-file share (issue 12); the tree still arrives whole."""
    import p2pshare.transfer._fsutil as fs
    import p2pshare.transfer.store as store_mod

    src = tmp_path / "src"
    for d in range(5):
        (src / f"d{d}" / "deeper").mkdir(parents=True)
        for i in range(40):
            (src / f"d{d}" / "deeper" / f"f{i}.txt").write_bytes(os.urandom(100 + i))
    p = build_manifest([src], name="t", chunk_size=CS)
    out = tmp_path / "out"
    out.mkdir()
    calls = {"open_dir": 0, "lstat_at": 0, "fstat": 0}

    def counted(name: str, fn):  # type: ignore[no-untyped-def]
        def wrapper(*a, **k):  # type: ignore[no-untyped-def]
            calls[name] += 1
            return fn(*a, **k)

        return wrapper

    monkeypatch.setattr(fs, "open_dir", counted("open_dir", fs.open_dir))
    monkeypatch.setattr(fs, "lstat_at", counted("lstat_at", fs.lstat_at))
    monkeypatch.setattr(store_mod.os, "fstat", counted("fstat", os.fstat))
    store = Store(out, p.manifest, SID)
    store.prepare()
    # 200 files in 11 directories (missing here): a few calls per directory, none per file.
    dirs = 11  # src, src/d0..d4, src/d0..d4/deeper
    assert calls["open_dir"] <= 4 * dirs and calls["lstat_at"] <= dirs, calls
    assert calls["fstat"] == 2, calls  # holding the partial directory (``_claim``): once per level
    write(store, p, range(p.manifest.total_chunks))
    assert calls["fstat"] == 2, calls  # and none per file
    store.finish()
    store.close()
    assert snapshot(out / "src") == snapshot(src)


def _small_share(tmp_path: Path, files: int = 30) -> tuple[Path, PreparedShare, Path]:
    """``files`` one-chunk files in 3 directories; (source, share, empty output)."""
    src = tmp_path / "src"
    for i in range(files):
        (src / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 3}" / f"f{i}.txt").write_bytes(os.urandom(50 + i))
    out = tmp_path / "out"
    out.mkdir()
    return src, build_manifest([src], name="t", chunk_size=CS), out


def test_small_files_are_created_whole_without_a_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-chunk file is written as an unnamed inode and linked under its
    name once complete (O_TMPFILE): no partial file is created, moved and
    unlinked per small file (issue 12). The mode is the one a named file
    gets (0o666 less the umask)."""
    import p2pshare.transfer._fsutil as fs

    src, p, out = _small_share(tmp_path)
    named: list[str] = []
    real_open_file = fs.open_file

    def spy(dir_fd: int, name: str, flags: int) -> int:
        named.append(name)
        return real_open_file(dir_fd, name, flags)

    monkeypatch.setattr(fs, "open_file", spy)
    store = Store(out, p.manifest, SID)
    store.prepare()
    done = write(store, p, range(p.manifest.total_chunks))
    assert len(done) == 30
    assert named == [], "a small file went through a named partial file"
    store.finish()
    store.close()
    assert snapshot(out / "src") == snapshot(src)
    old = os.umask(0)
    os.umask(old)
    assert {f.stat().st_mode & 0o777 for f in (out / "src").rglob("*.txt")} == {0o666 & ~old}


@pytest.mark.parametrize("refused", ["open", "link"])
def test_small_files_fall_back_to_partial_files_without_o_tmpfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused: str
) -> None:
    """No O_TMPFILE in the file system (the open is refused) or no
    /proc/self/fd (the link is): the first refusal turns the unnamed-inode
    route off, every file takes the partial-file route, and the tree
    arrives whole."""
    import p2pshare.transfer._fsutil as fs

    src, p, out = _small_share(tmp_path)
    tried: list[str] = []
    real_open, real_link = os.open, os.link

    def no_tmpfile(path, flags, mode=0o777, *, dir_fd=None):  # type: ignore[no-untyped-def]
        if refused == "open" and flags & os.O_TMPFILE == os.O_TMPFILE:
            tried.append(path)
            raise OSError(95, "Operation not supported")  # EOPNOTSUPP
        return real_open(path, flags, mode, dir_fd=dir_fd)

    def no_proc(src, dst, **kw):  # type: ignore[no-untyped-def]
        if refused == "link" and str(src).startswith("/proc/self/fd/"):
            tried.append(src)
            raise FileNotFoundError(2, "No such file or directory")
        return real_link(src, dst, **kw)

    monkeypatch.setattr(fs.os, "open", no_tmpfile)
    monkeypatch.setattr(fs.os, "link", no_proc)
    store = Store(out, p.manifest, SID)
    store.prepare()
    assert len(write(store, p, range(p.manifest.total_chunks))) == 30
    store.finish()
    store.close()
    assert len(tried) == 1
    assert snapshot(out / "src") == snapshot(src)


def test_a_file_that_appears_at_the_final_name_is_never_replaced(tmp_path: Path) -> None:
    """Another program creates the file between the conflict check and the
    write: the link fails (EEXIST, atomic), the error names the file, its
    content is untouched, and no unnamed inode is left behind."""
    _, p, out = _small_share(tmp_path, files=3)
    store = Store(out, p.manifest, SID)
    store.prepare()
    first = p.manifest.files[0].path
    (out / first).write_bytes(b"theirs")
    with pytest.raises(
        OutputError, match="refusing to overwrite .*another file appeared there while receiving; .*--rename"
    ):
        write(store, p, range(p.manifest.total_chunks))
    store.close()
    assert (out / first).read_bytes() == b"theirs"


def test_a_second_store_of_the_same_share_is_refused_at_once(tmp_path: Path, prepared: PreparedShare) -> None:
    """Two receivers of one share in one directory would write the same
    partial files: the second fails at ``assess`` (before it asks or
    writes), with a clear error; once the first is closed it may go on."""
    from p2pshare.transfer.errors import OutputBusyError

    out = tmp_path / "out"
    out.mkdir()
    first = Store(out, prepared.manifest, SID)
    first.prepare()
    write(first, prepared, [0])
    before = snapshot(out)
    second = Store(out, prepared.manifest, SID)
    with pytest.raises(OutputBusyError, match="another p2pshare get is receiving this share into"):
        second.assess()
    with pytest.raises(OutputBusyError):
        second.prepare()
    second.close()
    assert snapshot(out) == before  # the refused one changed nothing
    other = Store(out, prepared.manifest, b"\x02" * 16)  # another share: side by side
    assert other.assess().bytes >= 0
    other.close()
    first.close()  # e.g. interrupted: the next run takes over and resumes
    third = Store(out, prepared.manifest, SID)
    plan = third.prepare()
    assert plan.already_have_bytes > 0
    write(third, prepared, [g for g, _ in enumerate(range(prepared.manifest.total_chunks)) if g != 0])
    third.finish()
    third.close()
    assert snapshot(out) == snapshot(tmp_path / "src")


def test_a_partial_directory_removed_under_a_claim_is_made_again(tmp_path: Path, prepared: PreparedShare) -> None:
    """The lock belongs to the directory's inode: one that a finishing
    receiver removed (and another made again) after this one opened it is
    not the one the name leads to, and the claim opens the name again."""
    from p2pshare.transfer import _claim

    out = tmp_path / "out"
    out.mkdir()
    real_open_dir = _claim.fs.open_dir
    swapped: list[str] = []

    def open_dir(root: int, parts: tuple[str, ...], *, create: bool, shown: str, root_shown: str = "") -> int | None:
        fd = real_open_dir(root, parts, create=create, shown=shown, root_shown=root_shown)
        if parts == (SID.hex(),) and not swapped:  # the share's directory, the first time
            os.rename(partial_dir(out), tmp_path / "gone")  # another receiver's finish, then a new one
            partial_dir(out).mkdir()
            swapped.append("once")
        return fd

    _claim.fs.open_dir = open_dir  # type: ignore[assignment]
    try:
        store = Store(out, prepared.manifest, SID)
        store.prepare()
    finally:
        _claim.fs.open_dir = real_open_dir  # type: ignore[assignment]
    big = next(i for i, f in enumerate(prepared.manifest.files) if len(f.chunk_hashes) > 1)
    write(store, prepared, [prepared.manifest.first_chunk(big)])  # kept in a partial file
    assert swapped and os.listdir(partial_dir(out)) == [str(big)]  # where a resume finds it
    assert not any((tmp_path / "gone").iterdir())  # not in the directory no name leads to
    write(store, prepared, range(prepared.manifest.first_chunk(big) + 1, prepared.manifest.total_chunks))
    write(store, prepared, range(prepared.manifest.first_chunk(big)))
    store.finish()
    store.close()
    assert snapshot(out) == snapshot(tmp_path / "src")


def test_a_file_system_that_cannot_lock_is_written_unguarded(
    tmp_path: Path, prepared: PreparedShare, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOLCK (some network file systems) is not a reason to refuse a
    download: the store goes on without the guard."""
    import errno

    from p2pshare.transfer import _claim

    def no_locks(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(_claim.fcntl, "flock", no_locks)
    out = tmp_path / "out"
    out.mkdir()
    receive_whole(out, prepared)
    assert snapshot(out) == snapshot(tmp_path / "src")


@pytest.mark.parametrize("err", ["ENOSPC", "EDQUOT"])
def test_a_full_disk_says_that_what_arrived_is_kept(
    tmp_path: Path, prepared: PreparedShare, monkeypatch: pytest.MonkeyPatch, err: str
) -> None:
    """A disk that fills during a transfer (after the fit check) ends it with
    one line that says what to do: the verified chunks stay in the partial
    file and ``get`` again resumes; an error of another kind says only what
    failed."""
    import errno

    from p2pshare.transfer import _fsutil

    out = tmp_path / "out"
    out.mkdir()
    store = Store(out, prepared.manifest, SID)
    store.prepare()
    big = next(i for i, f in enumerate(prepared.manifest.files) if len(f.chunk_hashes) > 1)
    first = prepared.manifest.first_chunk(big)
    write(store, prepared, [first])

    def full(fd: int, data: object, offset: int) -> None:
        raise OSError(getattr(errno, err), os.strerror(getattr(errno, err)))

    monkeypatch.setattr(_fsutil, "pwrite_all", full)
    with pytest.raises(OutputError, match="free some space and run the same command again to resume") as got:
        write(store, prepared, [first + 1])
    assert str(got.value).startswith("cannot write ") and "\n" not in str(got.value)
    store.close()
    monkeypatch.undo()
    again = Store(out, prepared.manifest, SID)  # the next run: the first chunk is kept
    assert again.prepare().already_have_bytes >= CS
    again.close()


def test_another_write_error_says_only_what_failed(
    tmp_path: Path, prepared: PreparedShare, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from p2pshare.transfer import _fsutil

    out = tmp_path / "out"
    out.mkdir()
    store = Store(out, prepared.manifest, SID)
    store.prepare()

    def broken(fd: int, data: object, offset: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(_fsutil, "pwrite_all", broken)
    big = next(i for i, f in enumerate(prepared.manifest.files) if len(f.chunk_hashes) > 1)
    with pytest.raises(OutputError) as got:
        write(store, prepared, [prepared.manifest.first_chunk(big)])
    assert str(got.value).endswith("Input/output error") and "free some space" not in str(got.value)
    store.close()


def test_a_refusal_naming_several_conflicts_says_which_are_not_files() -> None:
    """With one conflict a directory read "something other than a file";
    with several the joined refusal still said "--overwrite replaces them".
    Found by review."""
    from p2pshare.transfer.errors import conflict_refusal, conflicts_error

    files = [conflict_refusal(f"out/{n}", a_file=True) for n in ("a", "b")]
    assert "they exist with different content; --overwrite replaces them" in str(conflicts_error(files))
    mixed = conflicts_error([files[0], conflict_refusal("out/d", a_file=False)])
    assert "something other than a file is in the place of out/d (--overwrite replaces only files)" in str(mixed)
    assert "replaces them" not in str(mixed)
