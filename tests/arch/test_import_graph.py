"""The import graph: no cycles between modules or packages, layers point one way.

Rules from docs/ARCHITECTURE.md, each enforced here:
- no import cycle between modules, between the top-level packages, or between
  the sub-packages (one folder per protocol: ``node/dcutr``, ``node/circuit``...);
- the layers: ``sharecode`` and ``transfer`` import nothing of ``node`` or
  ``relay``; ``node`` never imports ``relay`` or the CLI; only the CLI imports
  the commands;
- every import of ours goes through the one package name ``p2pshare`` (a bare
  ``import node`` would load a second copy of the module from the source tree,
  or a user's own ``node.py``).
"""

from __future__ import annotations

import pytest

from tests.arch import _graph

# Top-level package -> what it may import of ours (root modules count by name).
ALLOWED = {
    "p2pshare.sharecode": {"p2pshare.errors"},
    "p2pshare.transfer": {"p2pshare.errors", "p2pshare.sharecode"},
    "p2pshare.node": {"p2pshare.errors", "p2pshare.sharecode", "p2pshare.transfer"},
    "p2pshare.relay": {"p2pshare.errors", "p2pshare.sharecode", "p2pshare.transfer", "p2pshare.node"},
}


def test_cycle_finder_finds_cycles() -> None:
    assert _graph.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _graph.cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_is_read() -> None:
    graph = _graph.module_graph()
    assert "p2pshare.node.api" in graph["p2pshare.cli"] or any(
        d.startswith("p2pshare.node") for d in graph["p2pshare.node.cmd_get"]
    )
    assert "p2pshare.transfer.wire" in graph["p2pshare.transfer.receiver"]
    assert len(graph) > 80


def test_no_cycle_between_modules() -> None:
    assert _graph.cycles(_graph.module_graph()) == []


@pytest.mark.parametrize("depth", [2, 3], ids=["packages", "sub-packages"])
def test_no_cycle_between_packages(depth: int) -> None:
    assert _graph.cycles(_graph.group_graph(_graph.module_graph(), depth)) == []


def test_layers_point_one_way() -> None:
    groups = _graph.group_graph(_graph.module_graph(), 2)
    wrong = {pkg: sorted(groups[pkg] - allowed) for pkg, allowed in ALLOWED.items() if groups[pkg] - allowed}
    assert wrong == {}


def test_every_import_goes_through_the_package_name() -> None:
    bare = [
        f"{imp.importer}:{imp.line} imports {imp.target}"
        for imp in _graph.all_imports()
        if imp.target.split(".")[0] in _graph.OLD_TOP_LEVEL
    ]
    assert bare == []
