"""One door to py-libp2p: only the host façade imports ``libp2p``.

The façade is ``node/host.py`` with the private ``node/_libp2p_*.py`` modules
behind it (connection layer, value types, patches, lean import). Every other
module of ours reaches py-libp2p through them. This parses every ``.py``
file of the product (``p2pshare/node`` etc. are symlinks to the top-level
folders, so each file is read once) and fails on any ``import libp2p...`` or
``from libp2p... import`` elsewhere: at module level, inside functions and
inside ``if TYPE_CHECKING:`` blocks alike, and on ``importlib.import_module``
of a literal ``"libp2p..."`` name.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("node", "transfer", "sharecode", "relay", "p2pshare")


def _is_facade(rel: Path) -> bool:
    return rel.parts[0] == "node" and len(rel.parts) == 2 and (rel.name == "host.py" or rel.name.startswith("_libp2p_"))


def _product_files() -> list[Path]:
    # p2pshare/node etc. are symlinks: resolving collapses each file to one path
    return sorted({path.resolve() for pkg in PACKAGES for path in (ROOT / pkg).rglob("*.py")})


def _is_libp2p(name: str | None) -> bool:
    return name is not None and (name == "libp2p" or name.startswith("libp2p."))


def libp2p_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import of py-libp2p in ``source``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if _is_libp2p(a.name)]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and _is_libp2p(node.module):
                found.append((node.lineno, str(node.module)))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            arg = node.args[0]
            if name in ("import_module", "__import__") and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                if _is_libp2p(arg.value):
                    found.append((node.lineno, arg.value))
    return found


def test_only_the_facade_imports_libp2p() -> None:
    files = _product_files()
    assert len(files) > 50 and ROOT / "p2pshare" / "cli.py" in files, "the product tree was not found"
    offenders: list[str] = []
    facade: list[str] = []
    for path in files:
        rel = path.relative_to(ROOT)
        hits = libp2p_imports(path.read_text(encoding="utf-8"))
        if _is_facade(rel):
            facade.append(str(rel))
        elif hits:
            offenders += [f"{rel}:{line}: {module}" for line, module in hits]
    assert not offenders, "only node/host.py and node/_libp2p_*.py may import libp2p:\n" + "\n".join(offenders)
    assert {"node/host.py", "node/_libp2p_patches.py", "node/_libp2p_lean_import.py"} <= set(facade)


def test_the_checker_sees_every_kind_of_import() -> None:
    source = """
import libp2p
import os, libp2p.peer.id as pid
from libp2p.abc import IHost
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from libp2p.crypto.keys import KeyPair
def f():
    from libp2p.peer.id import ID
    import importlib
    importlib.import_module("libp2p.kad_dht")
from . import libp2p_like
from .libp2p import x
import libp2pfoo
"""
    assert sorted(m for _, m in libp2p_imports(source)) == sorted(
        ["libp2p", "libp2p.peer.id", "libp2p.abc", "libp2p.crypto.keys", "libp2p.peer.id", "libp2p.kad_dht"]
    )
