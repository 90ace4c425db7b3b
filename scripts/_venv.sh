# Sourced by the scripts: make sure .venv exists and holds this project (and,
# with P2PSHARE_EXTRAS=test, its test dependencies). Idempotent and quiet.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "p2pshare: creating $VENV" >&2
    "$PY" -m venv "$VENV"
fi
extras="${P2PSHARE_EXTRAS:-}"
spec="$ROOT"
[ -n "$extras" ] && spec="$ROOT[$extras]"
# Reinstall only when pyproject.toml changed since the last install.
stamp="$VENV/.p2pshare-installed-${extras:-base}"
if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    echo "p2pshare: installing the project into $VENV" >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$spec" >&2
    touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
# Byte-compile our own packages: with PYTHONDONTWRITEBYTECODE set (some
# environments set it) every p2pshare process would recompile them (~0.1 s
# of start-up per process); existing .pyc files are still read.
"$VENV/bin/python" -m compileall -q "$ROOT/p2pshare" "$ROOT/node" "$ROOT/transfer" "$ROOT/sharecode" "$ROOT/relay" >/dev/null 2>&1 || true
# Likewise the code of the command line's dataclass methods
# (p2pshare/_dataclass_code.py: ~0.09 s of every start); quick when current.
"$VENV/bin/python" -m p2pshare._dataclass_code --if-stale >/dev/null 2>&1 || true
