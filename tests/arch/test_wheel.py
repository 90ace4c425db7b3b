"""The wheel as a user gets it: one top-level name, immune to the user's own modules.

Builds the wheel from this tree, installs it with pip into a fresh venv (no
dependencies fetched: the venv sees the project venv's site-packages for
py-libp2p and friends through a plain path entry, which does not activate
the project's editable install), and checks what site-packages gained and
that the CLI and the library work from a directory holding a user's own
``node.py``, ``transfer.py``, ``relay.py`` and ``sharecode.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
_NOT_SOURCE = (
    ".git",
    ".venv",
    "node_modules",
    "build",
    ".natlab-runs",
    "bench-out",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
)


def _run(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, **kw)  # type: ignore[call-overload, no-any-return]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Build from a copy: an in-tree build leaves build/lib behind, and a stale
    # build/lib would put modules deleted from the source into later wheels.
    src = tmp_path_factory.mktemp("src") / "p2pshare"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
    build = _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(src)]
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (whl,) = out.glob("p2pshare-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    env_dir = tmp_path_factory.mktemp("venv") / "v"
    made = _run([sys.executable, "-m", "venv", str(env_dir)])
    assert made.returncode == 0, made.stderr
    py = env_dir / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    before = {p.name for p in site.iterdir()}
    inst = _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])
    assert inst.returncode == 0, inst.stderr[-3000:]
    gained = {p.name for p in site.iterdir()} - before
    assert {g for g in gained if not g.endswith(".dist-info")} == {"p2pshare"}, gained
    # Dependencies from the project venv, as a plain path entry (its .pth files,
    # the editable install among them, are not processed from there).
    (site / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir


def test_wheel_holds_one_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
        top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert zf.read(top_level).decode().split() == ["p2pshare"]
    assert tops == {"p2pshare"}
    for sub in ("node/api.py", "node/circuit/hop.py", "transfer/wire.py", "sharecode/v1.py", "relay/cmd.py"):
        assert f"p2pshare/{sub}" in names, sub
    assert "p2pshare/__main__.py" in names


def test_installed_wheel_ignores_the_users_own_modules(venv: Path, tmp_path: Path) -> None:
    for name in ("node", "transfer", "relay", "sharecode"):
        (tmp_path / f"{name}.py").write_text(f"raise ImportError('the user own {name}.py was imported')\n")
    py = str(venv / "bin" / "python")
    lib = _run(
        [py, "-c", "from p2pshare.node.api import Node; import p2pshare.relay.cmd; print(Node.__module__)"],
        cwd=tmp_path,
    )
    assert lib.returncode == 0, lib.stderr[-3000:]
    assert lib.stdout.strip() == "p2pshare.node.api"
    where = _run([py, "-c", "import p2pshare; print(p2pshare.__file__)"], cwd=tmp_path)
    assert str(venv) in where.stdout, where.stdout  # the installed copy, not the source tree
    helped = _run([py, "-m", "p2pshare", "--help"], cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr[-3000:]
    assert helped.stdout.startswith("usage: p2pshare")
    script = _run([str(venv / "bin" / "p2pshare"), "code", "show", "not-a-code"], cwd=tmp_path)
    assert script.returncode == 2 and script.stderr.count("\n") == 1, script.stderr
