"""Events the transfer runners report through ``on_event`` (frozen dataclasses).

Receiver side: ``Authenticated``, ``SharerPreparing``, ``ManifestReceived``, ``Progress``,
``FilesCompleted``, ``FileUnavailable``, ``TransferCompleted``. Sharer side:
``ReceiverConnected``, ``ReceiverProgress``, ``ReceiverFinished``, ``ReceiverFailed``,
``StoppedServingFile``. Peers are raw peer-ID bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pshare.transfer.errors import UnavailableReason
from p2pshare.transfer.manifest import Manifest


@dataclass(frozen=True)
class Authenticated:
    """The sharer proved it holds the share key (receiver side)."""

    peer: bytes


@dataclass(frozen=True)
class SharerPreparing:
    """The sharer is still hashing its files (``done`` of ``total`` bytes);
    the file list follows when it is done. A wait, not an error."""

    done: int
    total: int

    @property
    def percent(self) -> int:
        return 100 * self.done // self.total if self.total else 0


@dataclass(frozen=True)
class ManifestReceived:
    """The verified manifest, and how many of its bytes were already on disk."""

    manifest: Manifest
    already_have_bytes: int
    #: Names that may mislead a person (bidi overrides, lookalikes): received, but said.
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Progress:
    """Bytes verified so far (including resumed data) out of the total."""

    bytes_verified: int
    total_bytes: int


@dataclass(frozen=True)
class FilesCompleted:
    """Files verified and moved to their final places (manifest paths, in
    the order they completed); never empty.

    One event per write batch, not per file: a batch of small files holds
    hundreds, and an event each went through every ``on_event`` layer once
    per file (16 % of the receiving thread's samples in a ``get`` of
    100,000 small files, issue 12)."""

    paths: tuple[str, ...]


@dataclass(frozen=True)
class FileUnavailable:
    """The sharer stopped serving this file (manifest path): the rest still comes.

    Said as soon as the sharer's notice arrives, so a person knows at once;
    the final result names every file that did not arrive."""

    path: str
    reason: UnavailableReason


@dataclass(frozen=True)
class TransferCompleted:
    files: int
    bytes: int  # bytes received over the wire in this session
    seconds: float


@dataclass(frozen=True)
class ReceiverConnected:
    """A receiver proved it holds the key of one of our shares."""

    peer: bytes
    share_id: bytes


@dataclass(frozen=True)
class ReceiverFinished:
    """A receiver confirmed it verified everything it asked for."""

    peer: bytes
    share_id: bytes
    bytes_sent: int
    seconds: float


@dataclass(frozen=True)
class ReceiverProgress:
    """Bytes sent to one receiver so far, about every half second (sharer side).

    ``total_bytes`` is what this receiver asked for (whole chunks, so a
    little more than the files' bytes; a resuming receiver asks for less
    than the share). Lets the sharer see each receiver's progress and rate."""

    peer: bytes
    share_id: bytes
    bytes_sent: int
    total_bytes: int


@dataclass(frozen=True)
class ReceiverFailed:
    """A session ended without DONE; ``reason`` is one line for logs/UI."""

    peer: bytes
    share_id: bytes | None
    reason: str
    #: The connection ended before the transfer finished (``StreamEndedError``:
    #: the receiver can resume): how, without the receiver's own advice.
    ended: str | None = None


@dataclass(frozen=True)
class StoppedServingFile:
    """A shared file no longer matches its manifest: it is not served any more.

    Emitted once per file, by the first session that read it; later sessions
    tell their receivers without reading it again. ``path`` is the manifest
    path, ``detail`` one line naming the local file and the error."""

    share_id: bytes
    path: str
    reason: UnavailableReason
    detail: str


TransferEvent = (
    Authenticated
    | SharerPreparing
    | ManifestReceived
    | Progress
    | FilesCompleted
    | FileUnavailable
    | TransferCompleted
    | ReceiverConnected
    | ReceiverFinished
    | ReceiverProgress
    | ReceiverFailed
    | StoppedServingFile
)
