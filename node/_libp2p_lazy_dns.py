"""py-multiaddr's DNS resolver, loaded the first time something resolves.

``multiaddr.resolvers`` imports its ``dns`` module at package import, and that
imports dnspython's resolver stack (~40 ms of CPU in every process start,
measured on this machine: ``import libp2p`` and p2pshare's modules 0.446 ->
0.41 s). py-libp2p then builds a ``DNSResolver`` in every Swarm and TCP
dial, but only calls it for ``/dns*`` addresses, which most runs never meet.

:func:`make_module` builds the stand-in that ``_libp2p_lean_import``'s finder
answers for :data:`MODULE`: the same two names upstream exports
(``DNSADDR_TXT_PREFIX``, ``DNSResolver``). Its ``DNSResolver`` is a real
``Resolver`` whose first ``resolve`` (or any other attribute) loads the real
module from upstream's own file and builds upstream's resolver, then
forwards to it, so resolving behaves exactly as before, errors included.
``tests/node/test_lazy_dns.py`` fails if upstream's names or the prefix
change, and resolves through the stand-in.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any, Final

__all__ = ["MODULE", "EXPORTS", "DNSADDR_TXT_PREFIX", "make_module", "real_module"]

MODULE: Final = "multiaddr.resolvers.dns"
# What other modules import from MODULE (multiaddr's and py-libp2p's source).
EXPORTS: Final = frozenset({"DNSADDR_TXT_PREFIX", "DNSResolver"})
# Upstream's value, kept here so importing it does not load the module.
DNSADDR_TXT_PREFIX: Final = "dnsaddr="

_lock = threading.Lock()
_real: ModuleType | None = None


def real_module() -> ModuleType:
    """Upstream's ``multiaddr/resolvers/dns.py``, executed once, on demand.

    It runs under its own name (its classes say ``multiaddr.resolvers.dns``)
    but is not put in ``sys.modules``, where the stand-in stays."""
    global _real
    with _lock:
        if _real is None:
            package = sys.modules["multiaddr.resolvers"]
            spec = importlib.machinery.PathFinder.find_spec(MODULE, list(package.__path__))
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot find {MODULE} in {list(package.__path__)}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            _real = module
        return _real


def make_module() -> ModuleType:
    """A fresh stand-in for :data:`MODULE` (called by the import finder while
    ``multiaddr.resolvers`` imports it, after its ``base``)."""
    from multiaddr.resolvers.base import Resolver

    class DNSResolver(Resolver):  # type: ignore[misc]  # multiaddr is untyped
        """Upstream's ``DNSResolver``, built at its first use."""

        __module__ = MODULE

        def __init__(self) -> None:
            self._p2ps_real: Any = None

        def _p2ps_resolver(self) -> Any:
            if self._p2ps_real is None:
                self._p2ps_real = real_module().DNSResolver()
            return self._p2ps_real

        async def resolve(self, maddr: Any, options: dict[str, Any] | None = None) -> Any:
            return await self._p2ps_resolver().resolve(maddr, options)

        def __getattr__(self, name: str) -> Any:
            if name.startswith("_p2ps_") or name.startswith("__"):
                raise AttributeError(name)
            return getattr(self._p2ps_resolver(), name)

    module = ModuleType(MODULE, f"p2pshare stand-in for {MODULE} (see node/_libp2p_lazy_dns.py)")
    module.__dict__.update(
        __p2pshare_stand_in__=True,
        __all__=sorted(EXPORTS),
        DNSADDR_TXT_PREFIX=DNSADDR_TXT_PREFIX,
        DNSResolver=DNSResolver,
    )

    def __getattr__(attr: str) -> object:  # anything else: upstream's, loaded now
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(real_module(), attr)

    module.__dict__["__getattr__"] = __getattr__
    return module
