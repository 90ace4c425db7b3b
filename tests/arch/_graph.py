"""The import graph of the installed package, read from the source with ``ast``.

The source tree keeps the design's layout (``node/``, ``transfer/``,
``sharecode/``, ``relay/`` at the top, ``p2pshare/`` for the root modules);
this maps each file to the dotted name it has once installed
(``p2pshare.node.api``) and records every import of ours: top-level, inside
functions and under ``if TYPE_CHECKING`` alike (a lazy import is still a
dependency; hiding a cycle in a function body does not remove it).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "p2pshare"
# Installed name -> folder in the source tree (pyproject's package-dir mapping).
FOLDERS = {
    "p2pshare": ROOT / "p2pshare",
    "p2pshare.node": ROOT / "node",
    "p2pshare.transfer": ROOT / "transfer",
    "p2pshare.sharecode": ROOT / "sharecode",
    "p2pshare.relay": ROOT / "relay",
}
OLD_TOP_LEVEL = ("node", "transfer", "sharecode", "relay")


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    target: str  # dotted name as written, resolved for relative imports
    line: int


def modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    found: dict[str, Path] = {}
    for pkg, folder in FOLDERS.items():
        files = folder.glob("*.py") if pkg == PACKAGE else folder.rglob("*.py")  # p2pshare/ links the others
        for path in files:
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([pkg, *parts])] = path
    return found


def _imports(name: str, path: Path) -> Iterator[Import]:
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if is_pkg else name.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                yield Import(name, f"{base}.{alias.name}", node.lineno)  # a submodule or a name in base


def all_imports() -> list[Import]:
    return [imp for name, path in modules().items() for imp in _imports(name, path)]


def _owner(target: str, known: Iterable[str]) -> str | None:
    """The module of ours that ``target`` (``pkg.mod`` or ``pkg.mod.name``) names."""
    names = set(known)
    while target:
        if target in names:
            return target
        if "." not in target:
            return None
        target = target.rsplit(".", 1)[0]
    return None


def module_graph() -> dict[str, set[str]]:
    """Module -> modules of ours it imports (a package's ``__init__`` counts as the package)."""
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for imp in all_imports():
        dep = _owner(imp.target, mods)
        if dep is not None and dep != imp.importer and not imp.importer.startswith(dep + "."):
            graph[imp.importer].add(dep)
    return graph


def group_graph(graph: dict[str, set[str]], depth: int) -> dict[str, set[str]]:
    """The graph between packages ``depth`` names deep (2: p2pshare.node; 3: p2pshare.node.dcutr).

    A module directly in a shallower package stands for itself.
    """
    mods = modules()

    def group(m: str) -> str:
        parts = m.split(".")
        is_pkg = mods[m].name == "__init__.py"
        return ".".join(parts[:depth]) if len(parts) > depth or (len(parts) == depth and is_pkg) else m

    out: dict[str, set[str]] = {}
    for m, deps in graph.items():
        a = group(m)
        out.setdefault(a, set())
        for d in deps:
            b = group(d)
            if a != b and not a.startswith(b + ".") and not b.startswith(a + "."):
                out[a].add(b)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found
