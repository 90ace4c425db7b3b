"""``/dnsaddr`` bootstrap addresses: TXT records at ``_dnsaddr.<host>``.

py-libp2p does not resolve ``/dnsaddr`` when dialling, and the public IPFS
bootstrap list is mostly ``/dnsaddr/bootstrap.libp2p.io/p2p/Qm...``. Each
TXT record reads ``dnsaddr=<multiaddr>``; entries may nest (another
``/dnsaddr``), and only those ending in the wanted ``/p2p/<id>`` are kept.
Resolution uses dnspython in a worker thread, bounded in depth, count and
time; without dnspython the address is skipped with one log line. Tests
never reach the internet: they exercise the parsing and an injected lookup.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import trio

from p2pshare.sharecode.multiaddrs import split_dnsaddr

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "TxtLookup",
    "parse_dnsaddr_txt",
    "resolve_bootstrap",
    "split_dnsaddr",
]

logger = logging.getLogger(__name__)

# The public IPFS Amino DHT bootstrap peers (as kubo ships them).
DEFAULT_BOOTSTRAP: tuple[str, ...] = (
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt",
    "/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
)

MAX_DEPTH = 3
MAX_RESULTS = 32
_MAX_TXT_RECORDS = 64
_PREFIX = "dnsaddr="

#: ``name -> TXT strings``; blocking (it runs in a worker thread).
TxtLookup = Callable[[str], list[str]]


def parse_dnsaddr_txt(records: Sequence[str], peer_id: str | None) -> list[str]:
    """The ``dnsaddr=`` multiaddrs in ``records``, filtered to ``peer_id``."""
    out: list[str] = []
    for rec in records[:_MAX_TXT_RECORDS]:
        rec = rec.strip().strip('"')
        if not rec.startswith(_PREFIX):
            continue
        maddr = rec[len(_PREFIX) :].strip()
        if not maddr.startswith("/") or len(maddr) > 512 or not maddr.isprintable():
            continue
        if peer_id is not None and not maddr.rstrip("/").endswith(f"/p2p/{peer_id}"):
            continue
        if maddr not in out:
            out.append(maddr)
    return out


def _dnspython_lookup() -> TxtLookup | None:
    try:
        import dns.resolver
    except ImportError:
        return None

    def lookup(name: str) -> list[str]:
        resolver = dns.resolver.Resolver()
        resolver.lifetime = 5.0
        answer = resolver.resolve(name, "TXT")
        texts: list[str] = []
        for rdata in answer:
            texts.append(b"".join(rdata.strings).decode("utf-8", "replace"))
        return texts

    return lookup


async def _resolve_one(addr: str, lookup: TxtLookup, depth: int) -> list[str]:
    split = split_dnsaddr(addr)
    if split is None:
        return [addr]
    if depth >= MAX_DEPTH:
        return []
    host, peer = split
    records = await trio.to_thread.run_sync(  # type: ignore[call-arg]
        lookup, f"_dnsaddr.{host}", abandon_on_cancel=True
    )
    out: list[str] = []
    for entry in parse_dnsaddr_txt(records, peer):
        out.extend(await _resolve_one(entry, lookup, depth + 1))
        if len(out) >= MAX_RESULTS:
            break
    return out[:MAX_RESULTS]


async def resolve_bootstrap(addrs: Sequence[str], *, timeout: float, lookup: TxtLookup | None = None) -> list[str]:
    """``addrs`` with each ``/dnsaddr`` replaced by what it resolves to.

    Failures (no resolver, no network, timeout) drop that address with one
    log line; the others are returned unchanged.
    """
    out: list[str] = []
    txt = lookup
    cache: dict[str, list[str]] = {}  # the default list asks one name 4 times

    def cached(name: str) -> list[str]:
        if name not in cache:
            assert txt is not None
            cache[name] = txt(name)
        return cache[name]

    for addr in addrs:
        if split_dnsaddr(addr) is None:
            out.append(addr)
            continue
        if txt is None:
            txt = _dnspython_lookup()
            if txt is None:
                logger.info("skipping %s: dnspython is not installed to resolve /dnsaddr", addr)
                continue
        with trio.move_on_after(timeout) as scope:
            try:
                resolved = await _resolve_one(addr, cached, 0)
            except Exception as e:
                logger.info("skipping %s: DNS lookup failed (%s)", addr, type(e).__name__)
                continue
        if scope.cancelled_caught:
            logger.info("skipping %s: DNS lookup timed out", addr)
            continue
        if not resolved:
            logger.info("skipping %s: no usable TXT records", addr)
        out.extend(a for a in resolved if a not in out)
    return out
