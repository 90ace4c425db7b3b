"""transfer._whole and _file_writer: many one-chunk files are created by
file-writer processes, complete, in place, never replacing a file.

Real processes throughout: the stores below start the real file-writer
program; where a test needs a process that misbehaves (refuses unnamed
inodes, never starts, dies), it is a real process too.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import sys
from pathlib import Path

import pytest

from p2pshare.transfer import _file_writer as proc
from p2pshare.transfer import _whole
from p2pshare.transfer.errors import OutputError
from p2pshare.transfer.scan import PreparedShare, build_manifest
from p2pshare.transfer.store import Store, Verified

CS = 64 * 1024
SID = b"\x02" * 16
FILES = 3 * _whole.PROCESS_MIN


def _share(tmp_path: Path, files: int = FILES, dirs: int = 5) -> tuple[Path, PreparedShare, Path]:
    src = tmp_path / "src"
    for i in range(files):
        d = src / f"d{i % dirs}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:04d}.txt").write_bytes(os.urandom(20 + i % 3000 if i % 50 else 40_000 + i))  # some > WRITE_PIECE
    out = tmp_path / "out"
    out.mkdir()
    return src, build_manifest([src], name="t", chunk_size=CS), out


def _verified(store: Store, p: PreparedShare) -> list[Verified]:
    chunks = []
    for f, path in enumerate(p.sources):
        v = store.verify_chunk(f, 0, Path(path).read_bytes())
        assert v is not None
        chunks.append(v)
    return chunks


def _tree(top: Path) -> dict[str, bytes]:
    return {str(p.relative_to(top)): p.read_bytes() for p in sorted(top.rglob("*")) if p.is_file()}


def _writers(store: Store) -> list[_whole._Writer]:
    return store._whole._writers


def test_a_batch_of_small_files_is_created_by_the_writer_processes(tmp_path: Path) -> None:
    src, p, out = _share(tmp_path)
    store = Store(out, p.manifest, SID)
    store.prepare()
    done = store.write_batch(_verified(store, p))
    writers = _writers(store)
    assert len(writers) == _whole.WRITERS and all(w.proc.poll() is None for w in writers)
    assert sorted(done) == sorted(f.path for f in p.manifest.files)
    store.finish()
    store.close()
    assert [w.proc.returncode for w in writers] == [0] * _whole.WRITERS  # they ended with their input
    assert _tree(out / "src") == _tree(src)
    old = os.umask(0)
    os.umask(old)
    assert {f.stat().st_mode & 0o777 for f in (out / "src").rglob("*.txt")} == {0o666 & ~old}
    assert not (out / ".p2pshare-partial").exists()


def test_a_few_files_are_created_here_without_a_process(tmp_path: Path) -> None:
    src, p, out = _share(tmp_path, files=_whole.PROCESS_MIN - 1)
    store = Store(out, p.manifest, SID)
    store.prepare()
    assert len(store.write_batch(_verified(store, p))) == _whole.PROCESS_MIN - 1
    assert _writers(store) == []
    store.finish()
    store.close()
    assert _tree(out / "src") == _tree(src)


def test_many_directories_take_several_batches(tmp_path: Path) -> None:
    """One file per directory: a process gets at most MAX_FDS directories a batch."""
    src, p, out = _share(tmp_path, files=3 * proc.MAX_FDS + 5, dirs=3 * proc.MAX_FDS + 5)
    store = Store(out, p.manifest, SID)
    store.prepare()
    store.write_batch(_verified(store, p))
    assert all(w.batch >= 2 for w in _writers(store))
    store.finish()
    store.close()
    assert _tree(out / "src") == _tree(src)


def test_a_name_taken_meanwhile_is_never_replaced(tmp_path: Path) -> None:
    """Another program creates a file after the conflict check: the error
    names it and its content stays."""
    src, p, out = _share(tmp_path)
    store = Store(out, p.manifest, SID)
    store.prepare()
    taken = out / p.manifest.files[FILES // 2].path
    taken.write_bytes(b"theirs")
    with pytest.raises(
        OutputError, match=f"refusing to overwrite {taken}: another file appeared there while receiving"
    ):
        store.write_batch(_verified(store, p))
    store.close()
    assert taken.read_bytes() == b"theirs"
    # Each process stops at its first error, as one thread would: the other
    # half and the files before the taken one are made, each one whole.
    made = _tree(out / "src")
    name = str(taken.relative_to(out / "src"))
    assert FILES // 2 < len(made) < FILES and name in made
    assert all(v == _tree(src)[k] for k, v in made.items() if k != name)


_REFUSING = f"""
import importlib.util
spec = importlib.util.spec_from_file_location("fw", {proc.__file__!r})
fw = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fw)
fw.create_whole = lambda dir_fd, name, data: False  # a file system without O_TMPFILE
fw.main()
"""


def test_a_file_system_without_unnamed_inodes_gets_partial_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, p, out = _share(tmp_path)
    program = tmp_path / "refusing.py"
    program.write_text(_REFUSING)
    monkeypatch.setattr(_whole._Writer, "program", str(program))
    store = Store(out, p.manifest, SID)
    store.prepare()
    assert len(store.write_batch(_verified(store, p))) == FILES
    assert not store._whole.enabled
    store.finish()
    store.close()
    assert _tree(out / "src") == _tree(src)


def test_a_process_that_cannot_start_leaves_the_work_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, p, out = _share(tmp_path)
    monkeypatch.setattr(_whole._Writer, "program", str(tmp_path / "missing.py"))
    store = Store(out, p.manifest, SID)
    store.prepare()
    assert len(store.write_batch(_verified(store, p))) == FILES
    assert _writers(store) == [] and store._whole.enabled
    store.finish()
    store.close()
    assert _tree(out / "src") == _tree(src)


def test_a_writer_that_died_fails_the_batch_clearly_and_keeps_what_was_made(tmp_path: Path) -> None:
    src, p, out = _share(tmp_path, files=2 * FILES)
    store = Store(out, p.manifest, SID)
    store.prepare()
    chunks = _verified(store, p)
    first = store.write_batch(chunks[:FILES])
    writers = _writers(store)
    writers[1].proc.kill()
    writers[1].proc.wait()
    with pytest.raises(OutputError, match="a file-writer process stopped .*run the same command again to resume"):
        store.write_batch(chunks[FILES:])
    assert all(w.proc.poll() is not None for w in writers)  # the other one was ended too
    store.close()
    made = _tree(out / "src")
    assert len(made) >= len(first) and all(made[k] == v for k, v in _tree(src).items() if k in made)


def _raw_batch(sock: socket.socket, dir_fd: int, name: bytes, data: bytes) -> tuple[int, int, int, list[int]]:
    body = proc.FILE.pack(0, 7, len(name), len(data)) + name + data
    socket.send_fds(sock, [proc.HEADER.pack(b"B", 1, 1, 1, len(body))], [dir_fd])
    proc.send_pieces(sock, body)
    _, batch, count, outcome, failed, code, _size = proc.REPLY.unpack_from(sock.recv(proc.REPLY.size + 1000))
    made = proc.recv_exactly(sock, 4 * count) if count else b""
    assert batch == 1 and made is not None
    return outcome, failed, code, list(struct.unpack(f">{count}I", made))


@pytest.mark.parametrize("name", [b"../escaped", b"a/b", b"..", b"."])
def test_the_writer_makes_only_single_names_in_the_directories_it_is_given(tmp_path: Path, name: bytes) -> None:
    """The receiver resolves paths; the process refuses anything but one name."""
    inside = tmp_path / "inside"
    inside.mkdir()
    (inside / "a").mkdir()
    writer = _whole._Writer()
    fd = os.open(inside, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert _raw_batch(writer.sock, fd, name, b"x") == (proc.FAILED, 7, 22, [])  # EINVAL
        assert _raw_batch(writer.sock, fd, b"ok.txt", b"fine") == (proc.ALL_MADE, 0, 0, [7])
    finally:
        os.close(fd)
        writer.close()
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["inside", "inside/a", "inside/ok.txt"]
    assert writer.proc.returncode == 0


def test_the_writer_ignores_ctrl_c_and_ends_with_its_input(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group; the receiver decides when to stop."""
    writer = _whole._Writer()
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.kill(writer.proc.pid, signal.SIGINT)
        assert _raw_batch(writer.sock, fd, b"after.txt", b"still here") == (proc.ALL_MADE, 0, 0, [7])
    finally:
        os.close(fd)
        writer.close()
    assert writer.proc.returncode == 0
    assert (tmp_path / "after.txt").read_bytes() == b"still here"


def test_the_writer_program_needs_only_the_standard_library() -> None:
    """It runs as ``python -I -S``: no site packages, nothing of p2pshare."""
    import ast

    tree = ast.parse(Path(proc.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported
