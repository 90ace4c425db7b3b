"""Cost of hostile manifests to the receiver's decoder (issue 9, finding 3).

    .venv/bin/python scripts/bench_manifest_attacks.py

Builds each attack manifest into a file, then decodes it in a fresh process
that first reads the file (so the attacker's own construction is not
counted) and reports the decoder's verdict, its CPU time and the process's
peak RSS. Attacks: 300 paths 2,046 levels deep (1.2 MB; was 2.68 GB RSS,
44 s CPU), and 1M chunk hashes declaring 15.3 TiB (64 MB; was accepted at
1.67 GB RSS).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
CHILD = """
import resource, sys, time
from p2pshare.transfer import manifest
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.process_time()
try:
    manifest.decode(data)
    verdict = "accepted"
except manifest.ManifestError as exc:
    verdict = f"refused: {exc}"
cpu = time.process_time() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{len(data) / 1e6:.1f} MB | {verdict} | {cpu:.2f} s CPU | peak RSS {peak / 1024:.0f} MB "
      f"(after reading the file: {before / 1024:.0f} MB)")
"""


def deep() -> dict[str, object]:
    files = [{"path": "/".join(["a"] * 2045 + [f"f{i}"]), "size": 0, "sha256": EMPTY, "chunks": ""} for i in range(300)]
    return {
        "version": 1,
        "name": "e",
        "description": "",
        "sharer": None,
        "chunk_size": 65536,
        "dirs": [],
        "files": files,
    }


def many_chunks() -> dict[str, object]:
    n = 1_000_000
    entry = {"path": "big", "size": n * (16 << 20), "sha256": os.urandom(32).hex(), "chunks": os.urandom(32 * n).hex()}
    return {
        "version": 1,
        "name": "e",
        "description": "",
        "sharer": None,
        "chunk_size": 16 << 20,
        "dirs": [],
        "files": [entry],
    }


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in (("300 paths x 2,046 levels", deep), ("1M chunk hashes, 15.3 TiB", many_chunks)):
            path = Path(tmp) / "m.json"
            path.write_bytes(json.dumps(build(), separators=(",", ":")).encode())
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, cwd=root, check=True
            )
            print(f"{name}: {out.stdout.strip()}")


if __name__ == "__main__":
    main()
