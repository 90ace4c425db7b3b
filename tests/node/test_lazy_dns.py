"""node/_libp2p_lazy_dns.py: py-multiaddr's DNS resolver loads on first use.

(1) what py-multiaddr and py-libp2p import from ``multiaddr.resolvers.dns``
is exactly the stand-in's names (parsed from the installed source: fails
when either changes), and the prefix is upstream's; (2) in a fresh
interpreter with the lean import, building hosts and talking between them
never loads dnspython's resolver, and the first resolve goes to upstream's
own resolver with the same answers as upstream's class.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

from p2pshare.node import _libp2p_lazy_dns as D

ROOT = Path(__file__).resolve().parents[2]


def _package_root(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


def _imports_of_dns_module() -> set[str]:
    """Names imported from ``multiaddr.resolvers.dns`` anywhere in py-multiaddr
    (but the module itself) and py-libp2p; ``import`` of the module gives "*"."""
    names: set[str] = set()
    for top in ("multiaddr", "libp2p"):
        root = _package_root(top)
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root.parent).with_suffix("").parts)
            if ".".join(parts) == D.MODULE or "tests" in parts:
                continue
            package = parts[:-1]
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom):
                    base = package[: len(package) - node.level + 1] if node.level else []
                    target = ".".join(base + ([node.module] if node.module else []))
                    if target == D.MODULE:
                        names.update(a.name for a in node.names)
                    elif target == "multiaddr.resolvers":
                        names.update("*" for a in node.names if a.name == "dns")
                elif isinstance(node, ast.Import):
                    names.update("*" for a in node.names if a.name == D.MODULE)
    return names


def test_the_stand_in_has_exactly_the_names_upstream_imports() -> None:
    assert _imports_of_dns_module() == set(D.EXPORTS), "py-multiaddr/py-libp2p changed: review the stand-in"


def test_the_prefix_is_upstreams() -> None:
    real = (_package_root("multiaddr") / "resolvers" / "dns.py").read_text(encoding="utf-8")
    assert f'DNSADDR_TXT_PREFIX = "{D.DNSADDR_TXT_PREFIX}"' in real


_FRESH = """
import sys, trio
from p2pshare.node import _libp2p_lean_import as L
assert L.install()
from libp2p.crypto.ed25519 import create_new_key_pair
from p2pshare.node.host import open_host
from multiaddr import Multiaddr
from multiaddr.resolvers import DNSResolver, Resolver
import multiaddr.resolvers.dns as stand_in
from p2pshare.node import _libp2p_lazy_dns as D
assert stand_in.__p2pshare_stand_in__ and stand_in.DNSResolver is DNSResolver
RESOLVER = "dns.asyncresolver"

async def main() -> None:
    async with open_host(create_new_key_pair()) as a, open_host(create_new_key_pair()) as b:
        await b.connect(a.peer_id, a.listen_addrs(), timeout=10)
        assert a.peer_id in b.connected_peers()
    assert RESOLVER not in sys.modules, "hosts loaded dnspython's resolver"
    r = DNSResolver()
    assert Resolver in type(r).__mro__ and r.__module__ == D.MODULE
    plain = Multiaddr("/ip4/192.0.2.7/tcp/4001")
    got = await r.resolve(plain)
    assert RESOLVER in sys.modules and D._real is not None
    real_cls = D.real_module().DNSResolver
    assert real_cls is not DNSResolver and type(r._p2ps_real) is real_cls
    assert got == await real_cls().resolve(plain) == [plain], got
    assert r.MAX_RECURSIVE_DEPTH == real_cls.MAX_RECURSIVE_DEPTH  # other attributes: upstream's
    assert stand_in.DNSADDR_TXT_PREFIX == D.real_module().DNSADDR_TXT_PREFIX
    assert "multiaddr.resolvers.dns" in sys.modules and sys.modules["multiaddr.resolvers.dns"] is stand_in
trio.run(main)
print("OK")
"""


def test_hosts_never_load_the_resolver_and_resolving_is_upstreams() -> None:
    proc = subprocess.run([sys.executable, "-c", _FRESH], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("OK"), proc.stdout
