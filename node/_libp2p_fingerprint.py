"""Is the upstream code a patch relies on still the code we studied?

Each patch names the upstream functions it replaces or relies on with the
SHA-256 of their source (``_libp2p_patches``). Getting a function's source
means tokenizing its module (``inspect.getsource``): for the ~60 functions
we check that cost ~0.13 s of CPU at every process start, which every
``share`` and ``get`` paid before printing anything (issue 12). So we first
hash the few files they live in: a file byte-identical to the one studied
holds the studied functions. Only when a file differs (another py-libp2p
version) are its functions fingerprinted one by one, as before; the table
below and the per-function fingerprints are checked against each other in
``tests/node/test_libp2p_patches.py``.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ._libp2p_originals import upstream

__all__ = ["STUDIED_FILES", "source_sha256", "file_is_studied", "unchanged", "changed"]

#: SHA-256 of every upstream file holding code a patch relies on, as studied
#: (libp2p 0.8.1, noiseprotocol 0.3.1), by path below site-packages.
STUDIED_FILES: dict[str, str] = {
    "libp2p/host/basic_host.py": "e5bd8f6c2b0b6ff04d4a63ef51a3f7087b7063a65cf69f74a02e36e3d859f7cb",
    "libp2p/identity/identify/identify.py": "37960f61fae4c36ac92bbdf6be77a732d540247bbbb62bcbf655b1bc147d950f",
    "libp2p/identity/identify_push/identify_push.py": "986ec86cd5d8dde827e39cccd87b8746554f9492515e10d8aa0bdbb73fbecdd9",
    "libp2p/identity/update.py": "84fa986860b3fc275d26c9a76466633ae4d21119c043fa1f348395398714abae",
    "libp2p/io/trio.py": "1bc7be280610c1b1787c6d1b81381156f2d476182e64a20208cf43510b4cb049",
    "libp2p/io/utils.py": "7b2e957276be92e5986ccc5baf052d39ead322a07907a36fe6ddc23b3b5fe430",
    "libp2p/kad_dht/kad_dht.py": "398eb982a48177fd13aeb7c06282fd1eb1e026a2d32952b1eed7541a94232ee3",
    "libp2p/kad_dht/provider_store.py": "917480c9b8a6f2619e90be76aa44753239f939d7f543200b35ac6511f1203997",
    "libp2p/kad_dht/utils.py": "621d6f5cc31ad15c3f0f733e7c1f864304354e9b7a7836b513522ae620457b9b",
    "libp2p/network/auto_connector.py": "1a58bd3fae253acc34e80943373dfc5fd374e2b39c0bf6648d7f7ad620d7c68e",
    "libp2p/network/connection/swarm_connection.py": "02bd6b93b095f9fda2ebaefc4b36ecf4e630029b0676453e11a8e1b5c241d5e6",
    "libp2p/network/stream/net_stream.py": "d637e9fec092784bdce07ea09e772cfc8a70d71923459836c4261a68e754d7f8",
    "libp2p/network/swarm.py": "de38ce6378189974b77cf1e2147c27f9cb14ed8b5612b2b01d34c655ec653162",
    "libp2p/peer/peerstore.py": "b28366ef1499437c0531c685f33075e6d71878c3f79d97b20eee828289b3f6f2",
    "libp2p/protocol_muxer/multiselect_client.py": "3f778859bcadddc0aec69cabe0e36777bea75a213fb0bf74c18d66796f29308b",
    "libp2p/protocol_muxer/multiselect_communicator.py": "65aba417f306643a65a70b6e3b76a704bc9c04956bab02689120c9805f309935",
    "libp2p/security/noise/io.py": "a2194d3c2695e688061ea0efbdbaf26522d4522fd600b2e36fd9394fafaa247f",
    "libp2p/security/secure_session.py": "3c56b3b06f2ec6dfd9585c73a0c323c02f039abfda8ad83ce27a5c8dec2f2b80",
    "libp2p/stream_muxer/yamux/yamux.py": "1003b907c401ba5bbe8fbc46090610ac7c30ebf24d7006d582ec7a130a458b15",
    "noise/backends/default/ciphers.py": "b63430b05ef1ada9b8123e48e07038f2f6a295fa1fa4b19596cebd769276ae38",
    "noise/connection.py": "0953d68fdfc8aa84f5692f979b612a6ab53e5a161941a9d727a684c1fd0c556f",
    "noise/state.py": "6c042444e91e06bbe184bf4810e78241848e086ac776e769fdba38c9c31eaecd",
}


def source_sha256(obj: Any) -> str:
    """SHA-256 of an upstream function's source (what the patch assumes)."""
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()


@functools.cache
def _file_sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def file_is_studied(obj: Any) -> bool:
    """True if ``obj`` is defined in a file byte-identical to the one studied."""
    try:
        path = inspect.getsourcefile(obj)
    except TypeError:
        return False
    if path is None:
        return False
    parts = Path(path).parts
    for i in range(len(parts) - 1, 0, -1):
        if parts[i - 1] == "site-packages":
            rel = "/".join(parts[i:])
            return rel in STUDIED_FILES and _file_sha256(path) == STUDIED_FILES[rel]
    return False


def unchanged(obj: Any, expected: str, *, by_file: bool = True) -> bool:
    """Does ``obj`` still have the source whose SHA-256 is ``expected``?"""
    return (by_file and file_is_studied(obj)) or source_sha256(obj) == expected


def changed(checks: Iterable[tuple[Any, str, str]], *, by_file: bool = True) -> list[str]:
    """``owner.attr`` of each (owner, attr, sha256) whose upstream source (the
    original where a class patch replaced it) is no longer the one studied
    (``by_file=False``: fingerprint each function even in a studied file)."""
    return [
        f"{getattr(o, '__name__', o)}.{a}"
        for o, a, sha in checks
        if not unchanged(upstream(o, a), sha, by_file=by_file)
    ]
