"""Keep ``import libp2p`` from loading parts of py-libp2p p2pshare never uses.

py-libp2p 0.8.1 imports QUIC (aioquic, ~0.3 s), the WebSocket transport,
TLS with AutoTLS (``requests``), mDNS (``zeroconf``), its Prometheus
metrics (``prometheus_client``, ~28 ms), SECIO (~7 ms) and its persistent
peerstores (SQLite and more, ~20-35 ms) at every ``import libp2p``; we only use TCP + Noise + yamux (``node/host.py``), no
mDNS of py-libp2p's and no metrics server.
:func:`install` puts an import hook first on ``sys.meta_path`` that answers
the modules in :data:`STUBS` with stand-ins holding exactly the names the
rest of py-libp2p imports from them: classes and functions that raise
:class:`LeanImportError` when used, and exception classes nothing raises (so
``except`` clauses and ``isinstance`` checks against them are never true,
which is right: we never create such objects). Any other name or submodule
fails to import with the same clear error. It also tells dnspython (which
py-libp2p's TCP transport imports for ``/dns`` addresses) that
DNS-over-QUIC is off, through its documented override
``dns._features.force``; otherwise dnspython imports aioquic itself. And it
answers py-multiaddr's DNS resolver module with a stand-in that loads the
real one (and dnspython) only when something resolves
(``_libp2p_lazy_dns``). And it loads the packages in
:data:`DEFERRED_INITS` without running their ``__init__`` until a name of
theirs is used: py-libp2p's host imports one function from
``libp2p.relay.circuit_v2.nat``, and those two package inits import all of
py-libp2p's circuit relay, DCUtR and through them pubsub and its Kademlia
module early: a ``get`` of one small file started 25 and 52 ms sooner
(medians of 21 runs each, two batteries; 0.58 s -> 0.56 s, 0.64 s -> 0.58 s).
p2pshare has its own relay and DCUtR.

Safety: :func:`install` does nothing (one debug line) unless the installed
py-libp2p is exactly :data:`LIBP2P_VERSION` and no libp2p module is imported
yet, or if ``P2PSHARE_FULL_LIBP2P=1``. ``tests/node/test_lean_import.py``
fails if the names py-libp2p imports from these modules change. Call it
before anything imports libp2p: ``p2pshare.cli.main`` and ``open_host`` do, and
the host façade does right before its first import of py-libp2p
(``_libp2p_records.load``). Importing a p2pshare module never does.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import os
import struct
import sys
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Final

from . import _libp2p_lazy_dns

__all__ = [
    "install",
    "is_installed",
    "LeanImportError",
    "STUBS",
    "PACKAGES",
    "VALUES",
    "DEFERRED_INITS",
    "LIBP2P_VERSION",
    "make_stub",
]

logger = logging.getLogger(__name__)

LIBP2P_VERSION: Final = "0.8.1"
DISABLE_ENV: Final = "P2PSHARE_FULL_LIBP2P"

# Kinds of stand-in names.
CLASS: Final = "class"  # a class whose construction raises LeanImportError
ERROR: Final = "error"  # an Exception subclass nothing ever raises
FUNC: Final = "function"  # a function that raises LeanImportError
IS_QUIC: Final = "is_quic_multiaddr"  # the real predicate, reimplemented
VALUE: Final = "value"  # a constant: its upstream value, from VALUES
SWARM_EVENT: Final = "SwarmEvent"  # upstream's plain record class, reimplemented

# Every module answered by a stand-in, with the names other py-libp2p modules
# import from it (found by parsing py-libp2p's source; see the test).
STUBS: Final[Mapping[str, Mapping[str, str]]] = {
    "libp2p.transport.quic": {},
    "libp2p.transport.quic.config": {"QUICTransportConfig": CLASS},
    "libp2p.transport.quic.connection": {"QUICConnection": CLASS},
    "libp2p.transport.quic.exceptions": {"QUICStreamClosedError": ERROR, "QUICStreamResetError": ERROR},
    "libp2p.transport.quic.stream": {"QUICStream": CLASS},
    "libp2p.transport.quic.transport": {"QUICTransport": CLASS},
    "libp2p.transport.quic.utils": {"is_quic_multiaddr": IS_QUIC},
    "libp2p.transport.websocket": {},
    "libp2p.transport.websocket.connection": {"P2PWebSocketConnection": CLASS},
    "libp2p.transport.websocket.transport": {"WebsocketTransport": CLASS},
    "libp2p.security.tls": {},
    "libp2p.security.tls.transport": {"PROTOCOL_ID": VALUE, "TLSTransport": CLASS},
    "libp2p.security.tls.autotls": {},
    "libp2p.security.tls.autotls.acme": {"ACMEClient": CLASS, "compute_b36_peer_id": FUNC},
    "libp2p.security.tls.autotls.broker": {"BrokerClient": CLASS},
    "libp2p.discovery.mdns": {},
    "libp2p.discovery.mdns.mdns": {"MDNSDiscovery": CLASS, "create_mdns_discovery": FUNC},
    "libp2p.rcmgr.prometheus_exporter": {"PrometheusExporter": CLASS, "create_prometheus_exporter": FUNC},
    "libp2p.metrics.swarm": {"SwarmEvent": SWARM_EVENT, "SwarmMetrics": CLASS},
    # Persistent peerstores (SQLite, LevelDB, RocksDB): only ``libp2p``'s
    # __init__ imports their factories; the host keeps peers in memory.
    "libp2p.peer.persistent": {
        "create_sync_peerstore": FUNC,
        "create_async_peerstore": FUNC,
        "create_sync_sqlite_peerstore": FUNC,
        "create_async_sqlite_peerstore": FUNC,
        "create_sync_memory_peerstore": FUNC,
        "create_async_memory_peerstore": FUNC,
        "create_sync_leveldb_peerstore": FUNC,
        "create_async_leveldb_peerstore": FUNC,
        "create_sync_rocksdb_peerstore": FUNC,
        "create_async_rocksdb_peerstore": FUNC,
    },
    # SECIO, deprecated: the host is built with Noise only.
    "libp2p.security.secio": {},
    "libp2p.security.secio.transport": {},
}
# The constants among them, with upstream's values (checked by the test).
VALUES: Final[Mapping[str, object]] = {"libp2p.security.tls.transport.PROTOCOL_ID": "/tls/1.0.0"}
# Stand-ins that are packages (submodules not listed above do not exist).
PACKAGES: Final = frozenset(
    {
        "libp2p.transport.quic",
        "libp2p.transport.websocket",
        "libp2p.security.tls",
        "libp2p.security.tls.autotls",
        "libp2p.discovery.mdns",
        "libp2p.peer.persistent",
        "libp2p.security.secio",
    }
)


# Real packages loaded without running their ``__init__``: their submodules
# import as usual, and the first use of any other name runs the ``__init__``
# then (``from libp2p.relay import CircuitV2Protocol`` still works).
DEFERRED_INITS: Final = frozenset(
    {
        "libp2p.relay",  # the host imports one function of circuit_v2.nat
        "libp2p.relay.circuit_v2",
        "libp2p.bitswap",  # kad_dht imports bitswap.cid (a CID parser), not bitswap
        "cryptography.x509",  # the host imports x509.oid at import, x509 itself only for AutoTLS
    }
)


class LeanImportError(ImportError):
    """A part of py-libp2p that p2pshare does not load was used."""


def _unavailable(what: str) -> LeanImportError:
    return LeanImportError(
        f"{what} is not available: p2pshare loads py-libp2p without QUIC, WebSocket, TLS, SECIO, mDNS, persistent peerstores and Prometheus metrics "
        f"(node/_libp2p_lean_import.py; set {DISABLE_ENV}=1 to load them)"
    )


def _stand_in_class(module: str, name: str) -> type:
    def __init__(self: object, *args: object, **kwargs: object) -> None:
        raise _unavailable(f"{module}.{name}")

    return type(name, (), {"__module__": module, "__qualname__": name, "__init__": __init__})


def _stand_in_error(module: str, name: str) -> type:
    return type(name, (Exception,), {"__module__": module, "__qualname__": name})


def _stand_in_function(module: str, name: str) -> Callable[..., object]:
    def stand_in(*args: object, **kwargs: object) -> object:
        raise _unavailable(f"{module}.{name}")

    stand_in.__module__, stand_in.__name__, stand_in.__qualname__ = module, name, name
    return stand_in


def is_quic_multiaddr(maddr: object) -> bool:
    """Upstream's test (IP, UDP and /quic*, not WebTransport), kept so a QUIC
    listen address still selects the QUIC transport, which then fails loudly."""
    try:
        text = str(maddr)
    except Exception:  # noqa: BLE001 - upstream answers False on any error
        return False
    has_ip = "/ip4/" in text or "/ip6/" in text
    return has_ip and "/udp/" in text and "/quic" in text and "/webtransport" not in text


class SwarmEvent:
    """Upstream's ``libp2p.metrics.swarm.SwarmEvent``, field for field: the
    swarm fills one per dial and incoming connection for its Prometheus
    metrics (never exported here). Upstream's module imports
    ``prometheus_client`` (~28 ms per process start) for its other class."""

    peer_id: str | None = None
    conn_incoming: bool = False
    conn_incoming_error: bool = False
    dial_attempt: bool = False
    dial_attempt_error: bool = False


def make_stub(name: str) -> ModuleType:
    """A fresh stand-in module for ``name`` (one of :data:`STUBS`)."""
    module = ModuleType(name, f"p2pshare stand-in for {name} (see node/_libp2p_lean_import.py)")
    module.__dict__["__p2pshare_stand_in__"] = True
    for attr, kind in STUBS[name].items():
        value: object
        if kind == CLASS:
            value = _stand_in_class(name, attr)
        elif kind == ERROR:
            value = _stand_in_error(name, attr)
        elif kind == FUNC:
            value = _stand_in_function(name, attr)
        elif kind == IS_QUIC:
            value = is_quic_multiaddr
        elif kind == VALUE:
            value = VALUES[f"{name}.{attr}"]
        elif kind == SWARM_EVENT:
            value = SwarmEvent
        else:
            raise AssertionError(f"unknown stand-in kind {kind!r}")
        setattr(module, attr, value)

    def __getattr__(attr: str) -> object:
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise _unavailable(f"{name}.{attr}")

    module.__dict__["__getattr__"] = __getattr__
    return module


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers exactly the modules in STUBS (and py-multiaddr's DNS resolver
    with its lazy stand-in), and refuses the stubs' other submodules."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in STUBS or fullname == _libp2p_lazy_dns.MODULE:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=fullname in PACKAGES)
        if fullname in DEFERRED_INITS:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is not None and spec.loader is not None and spec.submodule_search_locations is not None:
                spec.loader = _DeferredInit(spec.loader)
            return spec
        parent = fullname.rpartition(".")[0]
        if parent in PACKAGES:
            raise _unavailable(fullname)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        if spec.name == _libp2p_lazy_dns.MODULE:
            return _libp2p_lazy_dns.make_module()
        module = make_stub(spec.name)
        if spec.name in PACKAGES:
            module.__path__ = []
        return module

    def exec_module(self, module: ModuleType) -> None:
        pass


class _DeferredInit(importlib.abc.Loader):
    """Loads a package of :data:`DEFERRED_INITS` with its ``__path__`` but
    without running its ``__init__``; a module ``__getattr__`` runs it, with
    the real loader, when a name the package does not hold yet is asked for."""

    def __init__(self, real: importlib.abc.Loader) -> None:
        self._real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # the default module, its __path__ from the spec

    def exec_module(self, module: ModuleType) -> None:
        real = self._real

        def __getattr__(name: str) -> object:
            if name.startswith("__"):
                raise AttributeError(name)
            module.__dict__.pop("__getattr__", None)  # once: the real __init__ defines the rest
            real.exec_module(module)
            return getattr(module, name)

        module.__dict__["__getattr__"] = __getattr__


_FINDER: Final = _StandInFinder()


def is_installed() -> bool:
    return _FINDER in sys.meta_path


def _installed_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("libp2p")
    except PackageNotFoundError:
        return None


def install() -> bool:
    """Answer :data:`STUBS` with stand-ins from now on; True if active.

    Call before anything imports libp2p. Refuses (stock imports, one debug
    line) when libp2p is already imported, its version is not exactly
    :data:`LIBP2P_VERSION`, or ``P2PSHARE_FULL_LIBP2P=1``. Idempotent.
    """
    if is_installed():
        return True
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        logger.debug("lean libp2p import off: %s is set", DISABLE_ENV)
        return False
    loaded = sorted(m for m in sys.modules if m == "libp2p" or m.startswith("libp2p."))
    if loaded:
        logger.debug("lean libp2p import skipped: libp2p already imported (%s)", loaded[0])
        return False
    found = _installed_version()
    if found != LIBP2P_VERSION:
        logger.debug("lean libp2p import skipped: libp2p %s installed, stand-ins are for %s", found, LIBP2P_VERSION)
        return False
    sys.meta_path.insert(0, _FINDER)
    _no_dns_over_quic()
    _pycryptodome_without_cffi()
    return True


def _pycryptodome_without_cffi() -> None:
    """Let pycryptodome (py-libp2p's RSA and secp256k1 keys, its SHA-256)
    bind its C code with ctypes, its documented fallback.

    With cffi importable it parses C declarations at run time (pycparser):
    ~30 ms of CPU in every process start, measured on ``import libp2p``
    (0.40 -> 0.36 s). Only pycryptodome's first import sees cffi missing;
    ``import cffi`` works as before for everyone else.
    """
    if "Crypto.Util._raw_api" in sys.modules or "cffi" in sys.modules:
        return
    sys.modules["cffi"] = None  # type: ignore[assignment]  # `import cffi` raises ImportError
    try:
        import Crypto.Util._raw_api as raw
    except ImportError as exc:  # pycryptodome changed: only slower
        logger.debug("pycryptodome without cffi failed: %s", exc)
    else:
        _architecture_known(raw)
    finally:
        if sys.modules.get("cffi", False) is None:
            del sys.modules["cffi"]


def _architecture_known(raw: ModuleType) -> None:
    """Give pycryptodome's ctypes binding the answer it asks
    ``platform.architecture()`` for, on Linux, where it is known.

    ``platform.architecture()`` runs ``file -b`` on the interpreter in a
    child process (~7 ms of every command's start, found with an audit
    hook on ``subprocess.Popen``). pycryptodome calls it once per process
    and keeps the answer in the list ``cached_architecture``, read only to
    tell Windows library names apart (it loads its own libraries by full
    path). On Linux that answer is the pointer size and ``ELF``. Set only
    where the list is there and still empty: otherwise pycryptodome asks
    as before (``tests/node/test_lean_import.py`` compares the two answers).
    """
    cache = getattr(raw, "cached_architecture", None)
    if sys.platform.startswith("linux") and isinstance(cache, list) and not cache:
        cache[:] = [f"{struct.calcsize('P') * 8}bit", "ELF"]


def _no_dns_over_quic() -> None:
    if "dns.quic" in sys.modules:
        return
    try:
        from dns import _features

        _features.force("doq", False)
    except (ImportError, AttributeError) as exc:  # dnspython changed: only slower
        logger.debug("cannot turn off dnspython's DNS-over-QUIC: %s", exc)
