"""node._libp2p_lean_import: the stand-ins match upstream, and hosts still work.

(1) the names py-libp2p imports from the stubbed modules are exactly the
stubbed names (parsed from the installed source: fails when py-libp2p
changes); (2) each stand-in has the kind of the upstream object; (3) in a
fresh interpreter, install() keeps aioquic/requests/websocket out, a host
built with it still talks Noise+yamux, and a QUIC address fails loudly; (4)
install() refuses on the wrong version, after libp2p was imported, or when
switched off. Interpreter-level checks run in subprocesses: the test process
may already have imported py-libp2p either way.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from p2pshare.node import _libp2p_lean_import as L

ROOT = Path(__file__).resolve().parents[2]
# The stubbed subtrees: imports made inside them do not count.
SUBTREES = (
    "libp2p.transport.quic",
    "libp2p.transport.websocket",
    "libp2p.security.tls",
    "libp2p.discovery.mdns",
    "libp2p.rcmgr.prometheus_exporter",
    "libp2p.metrics.swarm",
    "libp2p.peer.persistent",
    "libp2p.security.secio",
)


def _inside(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _libp2p_root() -> Path:
    spec = importlib.util.find_spec("libp2p")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


def upstream_imports_from_stubbed() -> set[tuple[str, str]]:
    """(module, name) for every import of a stubbed subtree in py-libp2p's
    source outside those subtrees; ``import x.y`` gives (x.y, "*")."""
    root = _libp2p_root()
    found: set[tuple[str, str]] = set()
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        importer = ".".join(parts)
        if any(_inside(importer, s) for s in SUBTREES):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    whole = f"{target}.{alias.name}"
                    if any(_inside(target, s) for s in SUBTREES):
                        found.add((target, alias.name))
                    elif any(_inside(whole, s) for s in SUBTREES):  # `from libp2p.security import tls`
                        found.add((whole, "*"))
            elif isinstance(node, ast.Import):
                found.update((a.name, "*") for a in node.names if any(_inside(a.name, s) for s in SUBTREES))
    return found


def test_stubbed_names_are_exactly_what_upstream_imports() -> None:
    stubbed = {(m, n) for m, names in L.STUBS.items() for n in names}
    found = upstream_imports_from_stubbed()
    assert {(m, n) for m, n in found if n != "*"} == stubbed, "py-libp2p changed its imports: review the stand-ins"
    assert {m for m, n in found if n == "*"} <= set(L.STUBS)  # whole modules imported exist as stand-ins


def test_every_stubbed_module_exists_upstream() -> None:
    root = _libp2p_root()
    for name in L.STUBS:
        assert any(_inside(name, s) for s in SUBTREES), name
        rel = Path(*name.split(".")[1:])
        assert (root / rel).is_dir() == (name in L.PACKAGES), name  # a package, perhaps a namespace one
        assert (root / rel).with_suffix(".py").is_file() or name in L.PACKAGES, name


def test_libp2p_is_the_version_the_stand_ins_were_made_for() -> None:
    assert importlib.metadata.version("libp2p") == L.LIBP2P_VERSION


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != L.DISABLE_ENV}
    full_env.update(env, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=60
    )


_UPSTREAM_KINDS = """
import importlib, inspect, json, sys
from p2pshare.node import _libp2p_lean_import as L
assert not L.install()  # switched off by the environment
kinds = {}
for mod, names in L.STUBS.items():
    m = importlib.import_module(mod)
    for n in names:
        obj = getattr(m, n)
        kinds[f"{mod}.{n}"] = (L.ERROR if isinstance(obj, type) and issubclass(obj, BaseException)
                               else L.CLASS if isinstance(obj, type) else L.FUNC if callable(obj)
                               else [L.VALUE, obj])
from libp2p.transport.quic.utils import is_quic_multiaddr
from libp2p.metrics.swarm import SwarmEvent
from multiaddr import Multiaddr
quic = {a: is_quic_multiaddr(Multiaddr(a)) for a in json.loads(sys.argv[1])}
event = {"fields": {k: v for k, v in vars(SwarmEvent).items() if not k.startswith("_")},
         "annotations": list(SwarmEvent.__annotations__)}
print(json.dumps({"kinds": kinds, "quic": quic, "swarm_event": event}))
"""
ADDRS = [
    "/ip4/127.0.0.1/udp/4001/quic-v1",
    "/ip6/::1/udp/4001/quic",
    "/ip4/1.2.3.4/udp/1/quic-v1/p2p-circuit",
    "/ip4/127.0.0.1/tcp/4001",
    "/ip4/127.0.0.1/udp/4001",
    "/ip4/127.0.0.1/tcp/443/ws",
    "/dns4/a.b/udp/1/quic-v1",
    "/ip4/1.2.3.4/udp/1/quic-v1/webtransport",
]


def test_stand_ins_have_the_kind_of_the_upstream_objects() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _UPSTREAM_KINDS, json.dumps(ADDRS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=str(ROOT), **{L.DISABLE_ENV: "1"}),
    )
    assert proc.returncode == 0, proc.stderr
    upstream = json.loads(proc.stdout)
    ours: dict[str, object] = {
        f"{m}.{n}": (
            L.FUNC
            if k == L.IS_QUIC
            else L.CLASS
            if k == L.SWARM_EVENT
            else [k, L.VALUES[f"{m}.{n}"]]
            if k == L.VALUE
            else k
        )
        for m, names in L.STUBS.items()
        for n, k in names.items()
    }
    assert upstream["kinds"] == ours
    from multiaddr import Multiaddr

    assert upstream["quic"] == {a: L.is_quic_multiaddr(Multiaddr(a)) for a in ADDRS}
    assert sum(upstream["quic"].values()) == 3
    # The reimplemented record class: the same fields, defaults and annotated names.
    event = L.SwarmEvent
    assert upstream["swarm_event"] == {
        "fields": {k: v for k, v in vars(event).items() if not k.startswith("_")},
        "annotations": list(event.__annotations__),
    }


def test_stand_ins_raise_a_clear_error() -> None:
    mod = L.make_stub("libp2p.transport.quic.transport")
    with pytest.raises(L.LeanImportError, match="QUICTransport is not available"):
        mod.QUICTransport(object())
    with pytest.raises(L.LeanImportError, match="QUICListener is not available"):
        mod.QUICListener  # noqa: B018 - a name we do not provide
    acme = L.make_stub("libp2p.security.tls.autotls.acme")
    with pytest.raises(L.LeanImportError):
        acme.compute_b36_peer_id("x")
    errors = L.make_stub("libp2p.transport.quic.exceptions")
    assert issubclass(errors.QUICStreamResetError, Exception)
    assert not isinstance(ValueError(), errors.QUICStreamResetError)


_FRESH = """
import sys, trio
from p2pshare.node import _libp2p_lean_import as L
assert L.install() and L.install() and L.is_installed()
from libp2p.crypto.ed25519 import create_new_key_pair
import p2pshare.node.api
from p2pshare.node.host import open_host, LibP2PByteStream
import libp2p.transport.quic.stream as qs, dns.quic
assert qs.__p2pshare_stand_in__ and not dns.quic.have_quic
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("aioquic", "requests", "zeroconf")
               or m.split(".")[0] == "prometheus_client"
               or m.startswith(("libp2p.transport.websocket.", "libp2p.security.tls.", "libp2p.discovery.mdns."))
               and
               not getattr(sys.modules[m], "__p2pshare_stand_in__", False))
assert not heavy, heavy
try:
    import libp2p.transport.quic.listener
except ImportError as e:
    assert "not available" in str(e), e
else:
    raise AssertionError("unstubbed submodule imported")

async def main() -> None:
    async with open_host(create_new_key_pair()) as a, open_host(create_new_key_pair()) as b:
        async def echo(s: LibP2PByteStream) -> None:
            while data := await s.read(65536):
                await s.write(data)
            await s.close_write()
        a.set_stream_handler("/t/echo", echo)
        await b.connect(a.peer_id, a.listen_addrs(), timeout=10)
        s = await b.open_stream(a.peer_id, "/t/echo")
        payload = bytes(range(256)) * 4096
        async with trio.open_nursery() as n:
            async def send() -> None:
                await s.write(payload)
                await s.close_write()
            n.start_soon(send)
            got = bytearray()
            while data := await s.read(65536):
                got += data
        assert got == payload
    try:  # refused by the host before py-libp2p sees it
        async with open_host(create_new_key_pair(), ["/ip4/127.0.0.1/udp/0/quic-v1"]):
            pass
    except OSError as e:
        assert "only TCP listen addresses" in str(e), e
    else:
        raise AssertionError("QUIC listen address accepted")
    from libp2p.transport.quic.transport import QUICTransport
    try:  # the stand-in itself, had anything got that far
        QUICTransport()
    except L.LeanImportError as e:
        print("quic:", e)
    else:
        raise AssertionError("QUIC transport made")
trio.run(main)
print("OK")
"""


def test_fresh_interpreter_is_lean_and_hosts_still_work() -> None:
    proc = _run(_FRESH)
    assert proc.returncode == 0, proc.stderr
    assert "quic: libp2p.transport.quic.transport.QUICTransport is not available" in proc.stdout
    assert proc.stdout.rstrip().endswith("OK")


_DEFERRED = """
import sys
from p2pshare.node import _libp2p_lean_import as L
assert L.install()
from p2pshare.node.host import open_host  # the façade's imports, the host's included
import libp2p.host.basic_host
pubsub = ("libp2p.pubsub.pubsub", "libp2p.pubsub.floodsub", "libp2p.pubsub.gossipsub")
loaded = sorted(m for m in sys.modules if m.startswith("libp2p.relay.circuit_v2.") or m in pubsub)
print("loaded:", loaded)
import libp2p.relay.circuit_v2.nat as nat
from libp2p.relay.circuit_v2 import CircuitV2Protocol, is_private_ip  # the __init__ runs now
from libp2p.relay import RelayDiscovery
assert nat.is_private_ip is is_private_ip and CircuitV2Protocol.__module__ == "libp2p.relay.circuit_v2.protocol"
assert RelayDiscovery.__module__ == "libp2p.relay.circuit_v2.discovery"
try:
    from libp2p.relay import NoSuchName
except ImportError as e:
    print("missing:", e)
print("OK")
"""


def test_relay_package_inits_run_only_when_their_names_are_used() -> None:
    """py-libp2p's host needs one function of ``libp2p.relay.circuit_v2.nat``;
    the two package inits above it would load the whole relay and pubsub.
    Deferred, they still give every name once asked."""
    proc = _run(_DEFERRED)
    assert proc.returncode == 0, proc.stderr
    assert "loaded: ['libp2p.relay.circuit_v2.nat']" in proc.stdout
    assert "missing: cannot import name 'NoSuchName' from 'libp2p.relay'" in proc.stdout
    assert proc.stdout.rstrip().endswith("OK")


_DEFERRED_OTHERS = """
import sys
from p2pshare.node import _libp2p_lean_import as L
assert L.install()
from p2pshare.node.host import open_host
import p2pshare.node.api, libp2p.kad_dht, libp2p.host.basic_host
print("x509:", sorted(m for m in sys.modules if m.startswith("cryptography.x509")))
print("bitswap:", sorted(m for m in sys.modules if m.startswith("libp2p.bitswap")))
from cryptography import x509
from cryptography.x509 import DNSName, load_pem_x509_certificates  # the __init__ runs now
assert x509.DNSName is DNSName and "cryptography.x509.base" in sys.modules
from libp2p.bitswap import BitswapClient
assert BitswapClient.__module__.startswith("libp2p.bitswap.")
print("OK")
"""


def test_bitswap_and_x509_inits_run_only_when_their_names_are_used() -> None:
    """The DHT imports bitswap's CID parser and the host x509's OIDs; the
    package inits above them (all of bitswap; x509's certificate classes,
    ~13 ms) run when one of their names is used, not at start-up."""
    proc = _run(_DEFERRED_OTHERS)
    assert proc.returncode == 0, proc.stderr
    assert "x509: ['cryptography.x509', 'cryptography.x509.oid']" in proc.stdout
    assert "bitswap: ['libp2p.bitswap', 'libp2p.bitswap.cid']" in proc.stdout
    assert proc.stdout.rstrip().endswith("OK")


_REFUSALS = """
import logging, os, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(name)s %(message)s")
os.environ["P2PSHARE_FULL_LIBP2P"] = "1"
from p2pshare.node import _libp2p_lean_import as L  # importing installs nothing
assert L.DISABLE_ENV == "P2PSHARE_FULL_LIBP2P" and not L.is_installed()
assert not L.install() and not L.is_installed()  # refused: the variable is set
del os.environ[L.DISABLE_ENV]
real = L._installed_version
L._installed_version = lambda: "0.8.2"
assert not L.install()
L._installed_version = real
import libp2p.peer.id
assert "aioquic" in sys.modules
assert not L.install() and not L.is_installed()
print("OK")
"""


def test_install_refuses_when_unsafe() -> None:
    proc = _run(_REFUSALS)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("p2pshare.node._libp2p_lean_import ")]
    assert len(lines) == 3, proc.stdout
    assert "P2PSHARE_FULL_LIBP2P is set" in lines[0]
    assert "libp2p 0.8.2 installed, stand-ins are for 0.8.1" in lines[1]
    assert "libp2p already imported" in lines[2]
    assert proc.stdout.rstrip().endswith("OK")


_PYCRYPTODOME = """
import sys
from p2pshare.node import _libp2p_lean_import as L
assert L.install()
import Crypto.Util._raw_api as raw
assert raw.backend == "ctypes", raw.backend
import cffi  # still importable for everyone else
from Crypto.Hash import SHA256
from libp2p.crypto.rsa import create_new_key_pair
pair = create_new_key_pair(1024)
assert pair.private_key.sign(b"x") and SHA256.new(b"abc").hexdigest().startswith("ba7816bf")
print("OK")
"""


def test_pycryptodome_binds_with_ctypes_and_still_works() -> None:
    """pycryptodome parses C declarations with cffi at every start (~30 ms);
    after ``install`` it uses ctypes, and RSA keys and SHA-256 still work."""
    proc = _run(_PYCRYPTODOME)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("OK")


_NO_CHILDREN = """
import platform, sys
spawned = []
sys.addaudithook(lambda event, args: spawned.append(args[1]) if event == "subprocess.Popen" else None)
import trio  # finds libpthread with ldconfig to name its threads: not ours to change
spawned.clear()
from p2pshare.node import _libp2p_lean_import as L, _memory
assert L.install()
import Crypto.Util._raw_api as raw
from libp2p.crypto.rsa import create_new_key_pair
assert create_new_key_pair(1024).private_key.sign(b"x")
assert _memory.malloc_trim() in (True, False) and _memory._TRIM is not None
assert spawned == [], spawned
print(raw.cached_architecture, list(platform.architecture()))
assert raw.cached_architecture == list(platform.architecture())
print("OK")
"""


def test_starting_spawns_no_helper_process() -> None:
    """pycryptodome's ``platform.architecture()`` ran ``file`` and our
    ``malloc_trim`` lookup ran ``ldconfig`` at every start (~7 and ~6 ms);
    the answer pycryptodome is given is the one ``platform`` gives."""
    proc = _run(_NO_CHILDREN)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("OK")
