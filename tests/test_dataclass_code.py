"""p2pshare/_dataclass_code.py: dataclass methods' code kept between starts.

Each case runs in fresh interpreters with their own bytecode-cache prefix
(``PYTHONPYCACHEPREFIX``), so the cache under test is the test's alone:
(1) the stdlib still compiles dataclass methods through a global ``exec``
    (what the cache hooks; a Python that stops doing so is left alone);
(2) a first run compiles and saves, a second run compiles nothing, and the
    classes of both runs -- and of a run without the cache -- behave alike
    and have the same code, method for method;
(3) a cache file another user could have written, or one of another
    format, is ignored, and nothing is saved under PYTHONDONTWRITEBYTECODE;
(4) the command line uses it: ``p2pshare --version``-like runs compile
    nothing once the install step (``python -m p2pshare._dataclass_code``)
    has filled the cache.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from p2pshare import _dataclass_code

ROOT = Path(__file__).resolve().parents[1]

# Classes of every kind the generator writes code for; the script prints, per
# class, what the classes do and a digest of every generated method's code.
_CLASSES = """
import dataclasses, hashlib, json, marshal, sys
from dataclasses import dataclass, field, InitVar, KW_ONLY
if sys.argv[1] == "on":
    from p2pshare import _dataclass_code as D
    assert D.install()

@dataclass
class Plain:
    a: int
    b: str = "x"
    c: list = field(default_factory=list)

@dataclass(frozen=True, slots=True)
class Frozen:
    a: int
    b: tuple = ()

@dataclass(order=True, unsafe_hash=True)
class Ordered:
    a: int
    _: KW_ONLY
    k: int = 3

@dataclass
class Post:
    a: int
    scale: InitVar[int] = 2
    def __post_init__(self, scale):
        self.a *= scale

out = {}
for cls in (Plain, Frozen, Ordered, Post):
    codes = {n: hashlib.sha256(marshal.dumps(f.__code__)).hexdigest()
             for n, f in sorted(vars(cls).items()) if callable(f) and hasattr(f, "__code__")}
    out[cls.__name__] = codes
p = Plain(1); f = Frozen(2, (1,)); o = Ordered(1, k=5); q = Post(3)
try:
    f.a = 5
    frozen = "mutable"
except dataclasses.FrozenInstanceError:
    frozen = "frozen"
out["behaviour"] = [repr(p), p == Plain(1), repr(f), hash(f) == hash(Frozen(2, (1,))), frozen,
                    o < Ordered(2), repr(o), q.a, Plain(1).c is not p.c]
if sys.argv[1] == "on":
    out["stats"] = D.stats()
    out["saved"] = D.save()
print(json.dumps(out))
"""


def _run(tmp_path: Path, mode: str, **env_extra: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(ROOT), PYTHONPYCACHEPREFIX=str(tmp_path / "pycache"), **env_extra)
    proc = subprocess.run(
        [sys.executable, "-c", _CLASSES, mode], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def _cache_file(tmp_path: Path) -> Path:
    found = list((tmp_path / "pycache").rglob("dataclass-code.*.marshal"))
    assert len(found) == 1, found
    return found[0]


def test_dataclasses_still_compiles_through_a_global_exec() -> None:
    create = dataclasses._create_fn  # type: ignore[attr-defined]
    assert "exec" in create.__code__.co_names
    assert "exec" not in vars(dataclasses) or _dataclass_code.is_installed()


def test_second_run_compiles_nothing_and_classes_are_the_same(tmp_path: Path) -> None:
    plain = _run(tmp_path, "off")
    first = _run(tmp_path, "on")
    second = _run(tmp_path, "on")
    known, used, compiled = first.pop("stats")  # type: ignore[misc]
    assert compiled == used == known > 10 and first.pop("saved") is True
    known2, used2, compiled2 = second.pop("stats")  # type: ignore[misc]
    assert (known2, used2, compiled2) == (known, used, 0) and second.pop("saved") is False
    assert first == second == plain  # behaviour and each method's code, with and without the cache


def test_foreign_or_other_format_cache_is_ignored(tmp_path: Path) -> None:
    _run(tmp_path, "on")
    path = _cache_file(tmp_path)
    path.chmod(0o666)  # anyone may write it: not trusted
    assert _run(tmp_path, "on")["stats"][2] > 0  # type: ignore[index]
    path.chmod(0o644)
    assert _run(tmp_path, "on")["stats"][2] == 0  # type: ignore[index]
    path.write_bytes(b"p2pshare-dataclass-code-0\n" + path.read_bytes()[26:])  # another format
    assert _run(tmp_path, "on")["stats"][2] > 0  # type: ignore[index]
    assert _run(tmp_path, "on")["stats"][2] == 0  # type: ignore[index]  # the run above saved it anew
    path.write_bytes(path.read_bytes()[:100])  # cut short
    assert _run(tmp_path, "on")["stats"][2] > 0  # type: ignore[index]


def test_nothing_saved_when_bytecode_is_not_written(tmp_path: Path) -> None:
    result = _run(tmp_path, "on", PYTHONDONTWRITEBYTECODE="1")
    assert result["saved"] is False and not (tmp_path / "pycache").exists()


def test_command_line_compiles_no_dataclass_code_after_install_step(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(ROOT), PYTHONPYCACHEPREFIX=str(tmp_path / "pycache"), PYTHONDONTWRITEBYTECODE="1")
    build = subprocess.run(
        [sys.executable, "-m", "p2pshare._dataclass_code"], env=env, capture_output=True, text=True, timeout=120
    )
    assert build.returncode == 0 and " 0 texts" not in build.stdout, build.stdout + build.stderr
    assert _cache_file(tmp_path).stat().st_size > 10_000
    # What `get` imports, as the command line does (its __main__ installs the cache).
    probe = (
        "import p2pshare.__main__, sys;"
        "from p2pshare import _dataclass_code as D;"
        "import p2pshare.node.api, p2pshare.node.cmd_get, p2pshare.node.host;"
        "from p2pshare.node import _libp2p_records; _libp2p_records.load();"
        "print(D.is_installed(), D.stats()[2])"
    )
    run = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "0"]
    stale = subprocess.run(
        [sys.executable, "-m", "p2pshare._dataclass_code", "--if-stale"], env=env, capture_output=True, text=True
    )
    assert "current" in stale.stdout, stale.stdout + stale.stderr
