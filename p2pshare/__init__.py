"""p2pshare: share files with anyone by handing over a code.

One distribution, one import name. The repository keeps the layout of the
design (``node/``, ``transfer/``, ``sharecode/``, ``relay/`` at the top); the
installed package holds them as ``p2pshare.node``, ``p2pshare.transfer``,
``p2pshare.sharecode`` and ``p2pshare.relay``.

Importing this package (or any module under it) has no effect on the rest of
the process: py-libp2p stays whole and unpatched until a host is opened
(``p2pshare.node.host.open_host``) or the CLI runs, both of which install
the lean import (``p2pshare.node._libp2p_lean_import.install``) explicitly;
``open_host`` also applies the patches. ``tests/node/test_import_side_effects.py``
checks it.
"""

from __future__ import annotations

__all__: list[str] = []
