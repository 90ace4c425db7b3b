"""Encrypted, verified, resumable file transfer over one byte stream.

Protocol ``/p2pshare/transfer/1.0.0``. The pure parts (manifest, paths,
crypto, wire, the ``sharer``/``receiver`` state machines, ``store``,
``scan``) import no trio; the trio runners ``fetch`` and ``serve_transfer``
are loaded on first use so importing a pure module stays trio-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from p2pshare.transfer.crypto import ShareKeys, share_id_for
from p2pshare.transfer.manifest import FileEntry, Manifest
from p2pshare.transfer.registry import ServedShare, ShareRegistry
from p2pshare.transfer.scan import PreparedShare, build_manifest

if TYPE_CHECKING:
    from p2pshare.transfer._resume_memo import ResumeMemo
    from p2pshare.transfer._trio_fetch import FetchResult, fetch
    from p2pshare.transfer._trio_serve import serve_transfer, sessions_ended

PROTOCOL_ID = "/p2pshare/transfer/1.0.0"

__all__ = [
    "PROTOCOL_ID",
    "FetchResult",
    "FileEntry",
    "Manifest",
    "PreparedShare",
    "ResumeMemo",
    "ServedShare",
    "ShareKeys",
    "ShareRegistry",
    "build_manifest",
    "fetch",
    "serve_transfer",
    "sessions_ended",
    "share_id_for",
]

_LAZY = {
    "ResumeMemo": "p2pshare.transfer._resume_memo",  # file-system helpers: only a receiver needs them
    "fetch": "p2pshare.transfer._trio_fetch",
    "FetchResult": "p2pshare.transfer._trio_fetch",
    "serve_transfer": "p2pshare.transfer._trio_serve",
    "sessions_ended": "p2pshare.transfer._trio_serve",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'transfer' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
