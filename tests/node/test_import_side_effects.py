"""Importing p2pshare changes nothing in the importing process.

In a fresh interpreter, importing every p2pshare module leaves
``sys.meta_path`` as it was (no lean-import hook), ``dataclasses`` without
the code cache, dnspython's feature
switches untouched and py-libp2p unpatched; py-libp2p itself is not even
imported by any module but the façade's private implementation modules,
and afterwards the program's own ``import libp2p`` gets the real QUIC
transport. Only ``open_host`` and the CLI install the lean import and the
patches (tests/node/test_lean_import.py covers that side).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_IMPORT_ALL = """
import importlib, pkgutil, sys
before = list(sys.meta_path)
import dns._features
import p2pshare
names = sorted(m.name for m in pkgutil.walk_packages(p2pshare.__path__, "p2pshare."))
# The façade's implementation modules import py-libp2p by design: last.
private = (
    "p2pshare.node._libp2p_impl",
    "p2pshare.node._libp2p_fixes",
    "p2pshare.node._libp2p_kad_streams",
    "p2pshare.node._libp2p_speed",
    "p2pshare.node._libp2p_yamux_rx",
    "p2pshare.node._libp2p_instance_patches",
    "p2pshare.node._libp2p_patches",
    "p2pshare.node._libp2p_rcmgr",
    "p2pshare.node._libp2p_originals",
    "p2pshare.node._libp2p_announce",
    "p2pshare.node._libp2p_close",
    "p2pshare.node._libp2p_streambuf",
    "p2pshare.node._libp2p_noise_cipher",
    "p2pshare.node._libp2p_noise_rx",
)
assert set(private) <= set(names) and "p2pshare.node.api" in names, names
for name in names:
    if name not in private and not name.endswith("__main__"):
        importlib.import_module(name)
loaded = sorted(m for m in sys.modules if m == "libp2p" or m.startswith("libp2p."))
assert not loaded, loaded[:5]
assert dns._features._cache.get("doq") is not False  # not forced off
for name in private:
    importlib.import_module(name)
assert sys.meta_path == before, sys.meta_path
assert dns._features.have("doq")  # DNS-over-QUIC not switched off (aioquic is installed)
from p2pshare.node import _libp2p_lean_import, _libp2p_patches
assert not _libp2p_lean_import.is_installed() and not _libp2p_patches.is_applied()
from p2pshare import _dataclass_code
assert not _dataclass_code.is_installed()  # only the command line's __main__ installs it
from libp2p.transport.quic.transport import QUICTransport
import libp2p.transport.quic.transport as quic
assert not getattr(quic, "__p2pshare_stand_in__", False)
assert QUICTransport.__module__ == "libp2p.transport.quic.transport" and "aioquic" in sys.modules
print("OK", len(names))
"""


def test_importing_every_module_has_no_side_effect() -> None:
    env = {k: v for k, v in os.environ.items() if k != "P2PSHARE_FULL_LIBP2P"}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK"), proc.stdout
