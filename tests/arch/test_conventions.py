"""Conventions from docs/ARCHITECTURE.md that a test can hold us to."""

from __future__ import annotations

import ast

from tests.arch import _graph

MAX_MODULE_LINES = 500


def test_modules_stay_small() -> None:
    """One job per module: split a module that passes ~500 lines."""
    big = {
        name: n
        for name, path in _graph.modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert big == {}


def test_loggers_are_named_after_their_module() -> None:
    """Every logger of ours is ``getLogger(__name__)``, so all sit under ``p2pshare.``
    (py-libp2p's own loggers, which the façade quiets, are named as strings)."""
    wrong = []
    for name, path in _graph.modules().items():
        if name.startswith("p2pshare.node._libp2p_"):  # the façade configures py-libp2p's loggers by name
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "getLogger" and node.args):
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Name) and arg.id == "__name__":
                continue
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                if arg.value == "p2pshare" or arg.value.split(".")[0] == "libp2p":
                    continue
            wrong.append(f"{name}:{node.lineno}")
    assert wrong == []
