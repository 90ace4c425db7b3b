"""Compiled dataclass methods kept between process starts (issue 12: start-up).

Python 3.11's ``dataclasses`` writes the source of each method it generates
(``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, and for a frozen class
``__setattr__`` and ``__delattr__``) and compiles it with ``exec`` every time
a class is defined: ~0.75 ms per frozen class, 70 % of it in the compiler.
A ``get`` defines ~210 dataclasses before it moves a byte (ours, py-libp2p's,
anyio's): ~0.13 s of CPU and wall time in every start (measured by timing
``dataclasses._process_class`` over the imports of ``get``).

:func:`install` gives the ``dataclasses`` module an ``exec`` of its own (its
``_create_fn`` looks the name up in the module before the builtins) that
compiles each distinct source text once and keeps the code object, and
:func:`save` writes the code objects to a file beside the bytecode cache,
which the next start loads with one ``marshal.loads``. Executing a code
object compiled from a text does exactly what executing the text does
(``compile`` with no inherited flags, as ``dataclasses`` has no
``__future__`` imports; filename ``<string>``, as ``exec`` gives), so every
class is the same class, method for method; a text never seen is compiled
as before. The file is trusted as Python trusts its ``.pyc`` files beside
it, and read only if it belongs to this user or root and nobody else may
write it; anything unexpected in it means it is ignored.

Only the command line installs it (``p2pshare/__main__.py``, first thing),
and saves at exit (``p2pshare/_exit.py``); importing p2pshare as a library
changes nothing. ``tests/test_dataclass_code.py`` checks that
``dataclasses`` still calls ``exec`` by name, and that classes made from the
cache behave and compile exactly as classes made without it.
"""

from __future__ import annotations

import builtins
import dataclasses
import importlib.util
import marshal
import os
import sys
import types
from typing import Any, Final

__all__ = ["install", "save", "is_installed", "cache_path", "stats"]

#: Bumped when the file's layout changes.
_FORMAT: Final = b"p2pshare-dataclass-code-1\n"
#: Texts kept at most; past it a save keeps only what this process used.
MAX_ENTRIES: Final = 4096

_builtin_exec = builtins.exec
_codes: dict[str, types.CodeType] = {}  # text -> code, loaded or compiled
_used: set[str] = set()
_compiled = 0  # texts compiled by this process (not found in the file)
_path: str | None = None


def cache_path() -> str | None:
    """The cache file for this interpreter, beside this module's bytecode
    (honours ``sys.pycache_prefix``); None where there is no bytecode cache."""
    try:
        pyc = importlib.util.cache_from_source(__file__)
    except (NotImplementedError, ValueError):
        return None
    tag = sys.implementation.cache_tag
    return os.path.join(os.path.dirname(pyc), f"dataclass-code.{tag}.marshal")


def _header() -> bytes:
    return _FORMAT + importlib.util.MAGIC_NUMBER


def _load(path: str) -> dict[str, types.CodeType]:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return {}
    try:
        st = os.fstat(fd)
        if st.st_uid not in (0, os.getuid()) or st.st_mode & 0o022 or st.st_size > 16 << 20:
            return {}
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read()
    except OSError:
        return {}
    finally:
        os.close(fd)
    head = _header()
    if not data.startswith(head):
        return {}
    try:
        table = marshal.loads(memoryview(data)[len(head) :])
    except (EOFError, ValueError, TypeError):
        return {}
    if not isinstance(table, dict):
        return {}
    return {k: v for k, v in table.items() if isinstance(k, str) and isinstance(v, types.CodeType)}


def _exec(source: Any, globals: Any = None, locals: Any = None, /, **kwargs: Any) -> None:
    """``exec`` for ``dataclasses``: a source text's code object is compiled
    once and kept; anything else goes to the builtin unchanged."""
    global _compiled
    if type(source) is not str or globals is None or locals is None or kwargs:
        _builtin_exec(source, globals, locals, **kwargs)
        return
    code = _codes.get(source)
    if code is None:
        code = compile(source, "<string>", "exec", dont_inherit=True)
        _codes[source] = code
        _compiled += 1
    _used.add(source)
    _builtin_exec(code, globals, locals)


def is_installed() -> bool:
    return dataclasses.__dict__.get("exec") is _exec


def install() -> bool:
    """Give ``dataclasses`` the caching ``exec`` and load the cache file.
    True if installed; False (nothing changed) if ``dataclasses`` already
    has a global ``exec`` or no longer calls ``exec`` by name."""
    global _path
    if is_installed():
        return True
    create = getattr(dataclasses, "_create_fn", None)
    names = getattr(getattr(create, "__code__", None), "co_names", ())
    if "exec" in dataclasses.__dict__ or "exec" not in names:
        return False
    _path = cache_path()
    if _path is not None:
        _codes.update(_load(_path))
    dataclasses.exec = _exec  # type: ignore[attr-defined]
    return True


def stats() -> tuple[int, int, int]:
    """(texts known, texts used, texts compiled by this process)."""
    return len(_codes), len(_used), _compiled


def save() -> bool:
    """Write the code objects if this process compiled any (atomically: a
    temporary file renamed over the old one). True if written. Quiet on
    any error: the cache only ever saves time."""
    if not is_installed() or _compiled == 0 or _path is None or sys.dont_write_bytecode:
        return False
    keep = _codes if len(_codes) <= MAX_ENTRIES else {t: _codes[t] for t in _used}
    tmp = f"{_path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(_path), exist_ok=True)
        data = _header() + marshal.dumps(keep)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb", closefd=False) as f:
                f.write(data)
        finally:
            os.close(fd)
        os.replace(tmp, _path)
    except (OSError, ValueError):
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False
    return True


def build() -> int:
    """Fill the cache for the command line's modules, as ``compileall``
    fills the bytecode cache at install time (``scripts/_venv.sh``): import
    py-libp2p as the command line does and every p2pshare module, then
    write the file even with ``PYTHONDONTWRITEBYTECODE`` set (the caller
    asked for it, as ``compileall`` ignores it too). Returns the number of
    texts written, 0 if nothing was new."""
    import importlib
    import pkgutil

    import p2pshare
    from p2pshare.node import _libp2p_lean_import

    if not install():
        return 0
    _libp2p_lean_import.install()  # as the command line does, before the façade's modules import py-libp2p
    for info in pkgutil.walk_packages(p2pshare.__path__, "p2pshare."):
        if not info.name.endswith("__main__"):
            try:
                importlib.import_module(info.name)
            except ImportError:  # an optional part that cannot load here: its classes are compiled when used
                continue
    if _compiled == 0:
        return 0
    saved = sys.dont_write_bytecode
    sys.dont_write_bytecode = False
    try:
        return len(_codes) if save() else 0
    finally:
        sys.dont_write_bytecode = saved


def is_stale() -> bool:
    """Whether :func:`build` may find something new: the cache file is older
    than a source file of p2pshare or of py-libp2p, or than this
    interpreter's ``dataclasses`` (a ``stat`` of each: ~5 ms). Other
    packages' classes (anyio's) are not watched: after their upgrade the
    command line compiles their new methods once and saves them at exit."""
    import p2pshare

    path = cache_path()
    try:
        built = os.stat(path).st_mtime if path is not None else -1.0
    except OSError:
        return True
    spec = importlib.util.find_spec("libp2p")
    roots = [*p2pshare.__path__, *(spec.submodule_search_locations or () if spec else ())]
    newest = os.stat(dataclasses.__file__).st_mtime
    for root in roots:
        for folder, _dirs, files in os.walk(root, followlinks=True):
            for name in files:
                if name.endswith(".py"):
                    newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime)
    return newest > built


def main(argv: list[str]) -> int:
    if "--if-stale" in argv and not is_stale():
        print(f"dataclass code cache: current ({cache_path()})")
        return 0
    written, path = build(), cache_path()
    if not written and path is not None and os.path.exists(path):
        os.utime(path)  # checked against the sources now: current
    print(f"dataclass code cache: {written} texts written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
