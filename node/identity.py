"""The node's long-term Ed25519 identity, kept in one small file.

The file holds the standard libp2p protobuf ``PrivateKey`` message
(``Type=Ed25519``, ``Data=seed || public key``, 64 bytes) as go-libp2p and
js-libp2p write it, so the key can move between implementations. py-libp2p
itself serialises only the 32-byte seed; both forms are accepted on load.

The file is created on first use, published atomically (a fully written
temporary file is hard-linked into place, so two processes racing to create
it agree on one key) with mode 0600 in a 0700 directory.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from p2pshare.node import _libp2p_records as records

if TYPE_CHECKING:
    from p2pshare.node.host import KeyPair

from p2pshare.errors import LocalError

__all__ = [
    "IdentityError",
    "IdentityBusyError",
    "HeldIdentity",
    "hold_identity",
    "node_identity",
    "identity_slots",
    "default_identity_path",
    "load_or_create_identity",
    "generate_identity",
    "encode_private_key",
    "decode_private_key",
]

logger = logging.getLogger(__name__)

IDENTITY_FILE_NAME = "identity.key"
# A protobuf Ed25519 private key is 68 bytes; anything much larger is not one.
_MAX_FILE_BYTES = 4096
_SEED_LEN = 32
_PUB_LEN = 32


class IdentityError(LocalError):
    """The identity file cannot be read, parsed or written (one-line message)."""


class IdentityBusyError(IdentityError):
    """Every identity file offered is held by another running p2pshare process."""


#: Identity files one data directory hands out to processes running at once:
#: ``identity.key`` to the first, then ``identity-2.key`` ... ``identity-16.key``.
MAX_IDENTITY_SLOTS = 16


def identity_slots(base: Path, count: int = MAX_IDENTITY_SLOTS) -> list[Path]:
    """``base``, then its numbered siblings (``identity-2.key``, ...)."""
    return [base] + [base.with_name(f"{base.stem}-{n}{base.suffix}") for n in range(2, count + 1)]


@dataclass
class HeldIdentity:
    """An identity this process holds (an ``flock`` on its file) until :meth:`release`."""

    key_pair: KeyPair
    path: Path | None  # None: a throwaway identity, never written
    fd: int | None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # drops the lock
            self.fd = None


def hold_identity(candidates: Sequence[Path]) -> HeldIdentity:
    """The first of ``candidates`` no other process holds, loaded (created
    0600 on first use) and held until released or the process ends.

    Two processes with one identity are one peer ID in two places: a relay
    keeps one connection per peer, DHT records mix their addresses, and a
    receiver reaches the process that does not serve its share (measured:
    ``share a`` and ``share b`` from one data directory, relayed: every
    ``get`` of b failed with "the sharer does not serve this share"). An
    exclusive ``flock`` on the key file marks it in use; the kernel drops it
    when the process dies. A file system that cannot lock holds nothing, as
    before. :class:`IdentityBusyError` when every candidate is held.
    """
    for path in candidates:
        busy, fd = _try_hold(path)
        if busy:
            continue
        try:
            return HeldIdentity(load_or_create_identity(path), path, fd)
        except BaseException:
            if fd is not None:
                os.close(fd)
            raise
    first = candidates[0]
    if len(candidates) == 1:
        raise IdentityBusyError(
            f"identity file {first} is in use by another p2pshare process "
            "(two processes with one identity are one peer to the network); stop it, or give another --identity"
        )
    raise IdentityBusyError(f"{len(candidates)} p2pshare processes already run with identities in {first.parent}")


def node_identity(path: Path | None, fallbacks: Sequence[Path] = ()) -> HeldIdentity:
    """A node's identity: ``path`` held, else the first of ``fallbacks`` no
    other process holds (an explicit ``--identity`` has none: in use, it is
    an error); a fresh throwaway one (never written, ``path`` None) if None."""
    if path is None:
        return HeldIdentity(generate_identity(), None, None)
    return hold_identity([path, *(p for p in fallbacks if p != path)])


def _try_hold(path: Path) -> tuple[bool, int | None]:
    """(held by another process, an fd holding ``path`` locked). The fd is
    None when it cannot be locked (a file system without locks, or a path
    the load will refuse with its own one-line error): used unheld."""
    flags = os.O_RDONLY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        load_or_create_identity(path)  # created here first: its errors are the ones to show
        try:
            fd = os.open(path, flags)
        except OSError:
            return False, None
    except OSError:
        return False, None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return True, None
    except OSError:
        pass  # cannot lock here (some network file systems): unguarded, as before
    return False, fd


def identity_file_arg(text: str) -> Path:
    """``--identity FILE`` (an argparse type): a file that exists, or one to
    create in a directory that does. A mistyped directory used to be created
    with a new identity in it, and the command ran as an unknown peer ID
    without a word; now it is a usage error (exit 2) before anything starts.
    A path we cannot look at is left to the load, whose error says why."""
    import argparse

    if not text:
        raise argparse.ArgumentTypeError("an empty path")
    try:
        path = Path(text).expanduser()  # --identity=~/k.key: the shell leaves that ~ alone
    except RuntimeError:  # ~someone unknown: as typed
        path = Path(text)
    try:
        missing = not path.exists() and not path.parent.is_dir()
        problem = "not a directory" if missing and path.parent.exists() else "no such directory"
    except OSError:
        return path  # cannot look (a directory we may not search): the load says why, exit 2
    if missing:
        raise argparse.ArgumentTypeError(
            f"identity file {path}: {problem}: {path.parent} (a new identity is made only in an existing directory)"
        )
    return path


def default_identity_path() -> Path:
    """``$P2PSHARE_HOME/identity.key``, else the per-user data directory."""
    home = os.environ.get("P2PSHARE_HOME")
    if home:
        return Path(home).expanduser() / IDENTITY_FILE_NAME
    import platformdirs  # local: only needed when no explicit home is set

    return Path(platformdirs.user_data_dir("p2pshare")) / IDENTITY_FILE_NAME


def encode_private_key(key_pair: KeyPair) -> bytes:
    """Standard libp2p protobuf serialisation (Ed25519: seed || public key)."""
    parts = records.ed25519_parts(key_pair)
    if parts is None:
        raise IdentityError("only Ed25519 identities are supported")
    seed, pub = parts
    if len(seed) != _SEED_LEN or len(pub) != _PUB_LEN:
        raise IdentityError("unexpected Ed25519 key length")
    return records.encode_private_key(records.ED25519, seed + pub)


def decode_private_key(data: bytes) -> KeyPair:
    """Parse :func:`encode_private_key` output (or py-libp2p's 32-byte form)."""
    try:
        key_type, raw = records.decode_private_key(data)
    except ValueError as e:
        raise IdentityError(str(e)) from None
    if key_type != records.ED25519:
        raise IdentityError("not an Ed25519 private key")
    if len(raw) not in (_SEED_LEN, _SEED_LEN + _PUB_LEN):
        raise IdentityError(f"bad Ed25519 private key length {len(raw)}")
    try:
        key_pair = records.ed25519_key_pair(raw[:_SEED_LEN])
    except ValueError as e:
        raise IdentityError(str(e)) from None
    if len(raw) == _SEED_LEN + _PUB_LEN and key_pair.public_key.to_bytes() != raw[_SEED_LEN:]:
        raise IdentityError("Ed25519 public key does not match the private key")
    return key_pair


def generate_identity() -> KeyPair:
    """A fresh throwaway Ed25519 identity (never written anywhere)."""
    return records.new_ed25519_key_pair()


def load_or_create_identity(path: Path) -> KeyPair:
    """Load the identity at ``path``, creating it (0600) on first use."""
    path = Path(path)
    try:
        return _load(path)
    except FileNotFoundError:
        pass
    _make_private_dir(path.parent)
    key_pair = records.new_ed25519_key_pair()
    if _publish(path, encode_private_key(key_pair)):
        logger.info("created a new identity at %s", path)
        return key_pair
    # Another process created it first: use theirs so both agree.
    try:
        return _load(path)
    except FileNotFoundError:
        raise IdentityError(f"identity file {path} vanished while creating it") from None


def _home_hint(path: Path) -> str:
    """Where the data directory came from, when ``path`` lies in it."""
    home = os.environ.get("P2PSHARE_HOME")
    if home and path.parent == Path(home):
        return f" (the data directory, set by P2PSHARE_HOME={home})"
    return ""


def _load(path: Path) -> KeyPair:
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise IdentityError(f"identity file {path} is not a regular file")
            data = f.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise IdentityError(f"identity file {path} is not a regular file") from None
    except NotADirectoryError:
        # P2PSHARE_HOME (or --identity) names a file where a directory goes:
        # "cannot read identity file …: Not a directory" did not say which.
        raise IdentityError(
            f"cannot use {path}: a part of its path is a file, not a directory{_home_hint(path)}"
        ) from None
    except OSError as e:
        raise IdentityError(f"cannot read identity file {path}: {e.strerror or e}") from None
    if len(data) > _MAX_FILE_BYTES:
        raise IdentityError(f"identity file {path} is corrupt: too large")
    try:
        key_pair = decode_private_key(data)
    except IdentityError as e:
        raise IdentityError(f"identity file {path} is corrupt: {e}") from None
    # Only about a usable key: a corrupt file's error stays the one line printed.
    if st.st_mode & 0o077:
        logger.warning(
            "identity file %s is readable by other users (mode %o); run: chmod 600 %s",
            path,
            stat.S_IMODE(st.st_mode),
            path,
        )
    return key_pair


def _make_private_dir(directory: Path) -> None:
    if directory.is_dir():
        return
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)  # mkdir's mode is masked by the umask
    except OSError as e:
        raise IdentityError(f"cannot create directory {directory}: {e.strerror or e}") from None


def _publish(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically; False if ``path`` already exists."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic, and never replaces an existing key
        except FileExistsError:
            return False
        _fsync_dir(path.parent)
        return True
    except OSError as e:
        raise IdentityError(f"cannot write identity file {path}: {e.strerror or e}") from None
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
