"""The identity file: created once, private, stable, and loud when corrupt."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from libp2p.peer.id import ID

from p2pshare.node.identity import (
    IdentityError,
    decode_private_key,
    default_identity_path,
    encode_private_key,
    load_or_create_identity,
)


def _pid(kp: object) -> str:
    return str(ID.from_pubkey(kp.public_key).to_base58())  # type: ignore[attr-defined]


def test_created_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "home" / "sub" / "identity.key"
    kp = load_or_create_identity(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert _pid(load_or_create_identity(path)) == _pid(kp)
    assert not [p for p in path.parent.iterdir() if p.name != "identity.key"]  # no temp left


def test_standard_libp2p_encoding(tmp_path: Path) -> None:
    path = tmp_path / "identity.key"
    kp = load_or_create_identity(path)
    data = path.read_bytes()
    # protobuf PrivateKey{Type=Ed25519(1), Data=64 bytes seed||pub}
    assert data[:4] == b"\x08\x01\x12\x40" and len(data) == 68
    assert data[4 + 32 :] == kp.public_key.to_bytes()
    # py-libp2p's own 32-byte-seed serialization is accepted too.
    assert _pid(decode_private_key(kp.private_key.serialize())) == _pid(kp)
    assert encode_private_key(decode_private_key(data)) == data


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage\n", b"\x08\x01\x12\x40" + b"\x00" * 10, b"\x08\x00\x12\x02ab", b"x" * 5000],
)
def test_corrupt_file_is_one_line_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "identity.key"
    path.write_bytes(content)
    with pytest.raises(IdentityError) as e:
        load_or_create_identity(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)
    assert path.read_bytes() == content  # never overwritten


def test_mismatched_public_key_rejected(tmp_path: Path) -> None:
    path = tmp_path / "identity.key"
    load_or_create_identity(path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(IdentityError, match="does not match"):
        load_or_create_identity(path)


def test_unreadable_is_identity_error(tmp_path: Path) -> None:
    path = tmp_path / "identity.key"
    path.mkdir()
    with pytest.raises(IdentityError, match="not a regular file"):
        load_or_create_identity(path)
    if os.geteuid() != 0:  # root reads anything
        f = tmp_path / "locked.key"
        load_or_create_identity(f)
        f.chmod(0)
        with pytest.raises(IdentityError, match="cannot read"):
            load_or_create_identity(f)


def test_unwritable_dir_is_identity_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(IdentityError):
        load_or_create_identity(blocker / "identity.key")


def test_default_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("P2PSHARE_HOME", str(tmp_path))
    assert default_identity_path() == tmp_path / "identity.key"
    monkeypatch.delenv("P2PSHARE_HOME")
    p = default_identity_path()
    assert p.name == "identity.key" and "p2pshare" in str(p)


def test_a_held_identity_is_passed_over_for_the_next_slot(tmp_path: Path) -> None:
    """Two processes as one peer ID would be reached one for the other: a
    held identity file is skipped for ``identity-2.key`` (created, kept)."""
    from p2pshare.node.identity import hold_identity, identity_slots

    base = tmp_path / "identity.key"
    slots = identity_slots(base, 3)
    assert [p.name for p in slots] == ["identity.key", "identity-2.key", "identity-3.key"]
    first = hold_identity(slots)
    second = hold_identity(slots)  # another open file description: as another process would
    assert (first.path, second.path) == (slots[0], slots[1])
    assert first.key_pair.public_key.to_bytes() != second.key_pair.public_key.to_bytes()
    second.release()
    again = hold_identity(slots)  # released: the same slot, the same key
    assert again.path == slots[1] and again.key_pair.public_key.to_bytes() == second.key_pair.public_key.to_bytes()
    again.release()
    first.release()
    assert hold_identity(slots).path == slots[0]


def test_an_explicit_identity_in_use_is_one_clear_error(tmp_path: Path) -> None:
    from p2pshare.node.identity import IdentityBusyError, hold_identity

    path = tmp_path / "mine.key"
    held = hold_identity([path])
    with pytest.raises(IdentityBusyError, match=r"mine\.key is in use by another p2pshare process"):
        hold_identity([path])
    held.release()
    hold_identity([path]).release()


def test_an_identity_where_locks_fail_is_used_unheld(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system without locks (ENOLCK): the identity works as before."""
    import errno

    from p2pshare.node import identity as ident

    def no_locks(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(ident.fcntl, "flock", no_locks)
    path = tmp_path / "identity.key"
    one, two = ident.hold_identity([path]), ident.hold_identity([path])
    assert one.key_pair.public_key.to_bytes() == two.key_pair.public_key.to_bytes()


def test_the_identity_flag_takes_files_and_new_files_in_existing_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    from p2pshare.node.identity import identity_file_arg

    monkeypatch.chdir(tmp_path)
    assert identity_file_arg("k.key") == Path("k.key")  # relative, in the current directory
    (tmp_path / "keys").mkdir()
    assert identity_file_arg("keys/new.key") == Path("keys/new.key")
    monkeypatch.setenv("HOME", str(tmp_path))
    # --identity=~/...: bash leaves that ~ alone
    assert identity_file_arg("~/keys/new.key") == tmp_path / "keys" / "new.key"
    with pytest.raises(argparse.ArgumentTypeError, match=r"no such directory: typo/dir \(a new identity"):
        identity_file_arg("typo/dir/k.key")
    (tmp_path / "file").write_text("x")
    with pytest.raises(argparse.ArgumentTypeError, match="not a directory: file"):
        identity_file_arg("file/k.key")
    with pytest.raises(argparse.ArgumentTypeError, match="empty"):
        identity_file_arg("")
    assert not (tmp_path / "typo").exists()


def test_an_identity_path_that_cannot_be_looked_at_is_left_to_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """``exists()`` raises for a directory we may not search (EACCES): that
    was a traceback from argparse; the load reports it (exit 2)."""
    from p2pshare.node.identity import identity_file_arg

    def denied(self: Path) -> bool:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "exists", denied)
    assert identity_file_arg("/locked/k.key") == Path("/locked/k.key")
