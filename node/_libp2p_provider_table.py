"""The provider-record store of our DHT server, with its totals kept as it changes.

``ProviderStore.providers`` (key -> peer ID text -> ``ProviderRecord``) as a
:class:`ProviderTable`, and the bounds ``_libp2p_fixes.bounded_add_provider``
admits records within (see its module docstring for the figures and for
what happens when the store is full). No py-libp2p import: records are
duck-typed (``record.provider_info.addrs``, multiaddrs with ``to_bytes``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

from p2pshare.sharecode.multiaddrs import IpClass, ip_class, ip_text

__all__ = ["ProviderTable", "provider_table", "kept_addrs", "PROVIDERS_PER_KEY", "PROVIDERS_PER_SOURCE"]

#: Addresses kept per provider record (go keeps what the peerstore holds; 8 dialable addresses suffice).
PROVIDER_ADDRS = 8
#: Longer provider addresses are dropped (a real one -- DNS name, certhashes, a relay hop -- is well under).
PROVIDER_ADDR_BYTES = 256
#: Keys one provider may be recorded under in our store.
PROVIDER_KEYS_PER_PEER = 256
#: Provider records in all (rust-libp2p's memory store: 1,024 keys x k = 20 providers).
PROVIDER_RECORDS = 20_000
#: Bytes of keys and addresses in all provider records.
PROVIDER_BYTES = 8 << 20
#: What these bounds come to in Python objects at worst (tests/node/test_libp2p_kad_bounds.py: 38 MB).
PROVIDER_MEMORY_MB = 40
#: Providers kept per key (the spec's k; py-libp2p ignores a newcomer beyond it).
PROVIDERS_PER_KEY = 20
#: Providers of one key one source (an IPv4 address, an IPv6 /64) may have
#: recorded: 20 throwaway identities from one host filled a short code's key
#: before its sharer advertised it, and the sharer's record was never stored
#: (a hostile-peer review, stop 43).
PROVIDERS_PER_SOURCE = 2


class _KeyRecords(MutableMapping[str, Any]):
    """One key's provider records (peer ID text -> ``ProviderRecord``), counted in its table.

    Every way py-libp2p adds or removes a record (``d[p] = r``, ``del d[p]``,
    ``pop``) goes through ``__setitem__`` / ``__delitem__`` (MutableMapping's
    mixins), so the table's counters stay exact at O(1) per change.
    """

    __slots__ = ("_table", "_key", "_records", "_sizes", "_sources")

    def __init__(self, table: ProviderTable, key: bytes) -> None:
        self._table: ProviderTable | None = table
        self._key = key
        self._records: dict[str, Any] = {}
        self._sizes: dict[str, int] = {}
        self._sources: dict[str, str] = {}  # peer -> the source its ADD_PROVIDER came from, where counted

    def __getitem__(self, peer: str) -> Any:
        return self._records[peer]

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, peer: object) -> bool:
        return peer in self._records

    def __setitem__(self, peer: str, record: Any) -> None:
        size = len(self._key) + sum(len(a.to_bytes()) for a in record.provider_info.addrs)
        old = self._sizes.get(peer)
        self._records[peer] = record
        self._sizes[peer] = size
        if self._table is not None:
            self._table._counted(peer, size, old)

    def __delitem__(self, peer: str) -> None:
        del self._records[peer]
        self._sources.pop(peer, None)
        size = self._sizes.pop(peer)
        if self._table is not None:
            self._table._uncounted(peer, size)

    def size_of(self, peer: str) -> int:
        return self._sizes[peer]

    def note_source(self, peer: str, source: str | None) -> None:
        """``peer``'s record came from ``source`` (None: loopback, relayed or
        unknown, not counted per source)."""
        if peer in self._records and source is not None:
            self._sources[peer] = source

    def room_for(self, source: str | None, keep: str) -> tuple[bool, str | None]:
        """May a new provider from ``source`` be recorded, and whose record
        must go first to make room (never ``keep``'s, our own)?

        A source holds at most :data:`PROVIDERS_PER_SOURCE` records of a key.
        A full key takes a newcomer in place of a record of the source that
        holds the most of it, the oldest first, so records made ahead of a
        sharer cannot keep it out; a refused newcomer is only one whose own
        source is at its share."""
        held = Counter(self._sources.values())
        if source is not None and held[source] >= PROVIDERS_PER_SOURCE:
            return False, None
        if len(self._records) < PROVIDERS_PER_KEY:
            return True, None
        best: tuple[int, float] | None = None
        victim: str | None = None
        for peer, record in self._records.items():
            if peer == keep:
                continue
            origin = self._sources.get(peer)
            rank = (held[origin] if origin is not None else 1, -float(getattr(record, "timestamp", 0.0)))
            if best is None or rank > best:
                best, victim = rank, peer
        return victim is not None, victim


class ProviderTable(MutableMapping[bytes, _KeyRecords]):
    """``ProviderStore.providers`` (key -> peer -> record) with its totals kept as it changes.

    ``records``, ``bytes`` (keys + addresses) and each provider's key count
    are updated on every insert and every removal -- including py-libp2p's
    own expiry (``get_providers`` and ``cleanup_expired`` delete expired
    records with ``del``) -- so admission is O(1), not a scan of the store.
    """

    def __init__(self, initial: Mapping[bytes, Mapping[str, Any]] | None = None) -> None:
        self._keys: dict[bytes, _KeyRecords] = {}
        self._per_peer: dict[str, int] = {}
        self.records = 0
        self.bytes = 0
        for key, records in (initial or {}).items():
            self[key] = records

    def __getitem__(self, key: bytes) -> _KeyRecords:
        return self._keys[key]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __setitem__(self, key: bytes, records: Mapping[str, Any]) -> None:
        if key in self._keys:
            del self[key]
        mine = _KeyRecords(self, key)
        self._keys[key] = mine
        for peer, record in dict(records).items():
            mine[peer] = record

    def __delitem__(self, key: bytes) -> None:
        mine = self._keys.pop(key)
        for peer in list(mine):
            del mine[peer]
        mine._table = None  # a caller still holding it can no longer change our counts

    def keys_of(self, peer: str) -> int:
        """How many keys ``peer`` is recorded under."""
        return self._per_peer.get(peer, 0)

    def _counted(self, peer: str, size: int, old: int | None) -> None:
        if old is None:
            self.records += 1
            self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
            self.bytes += size
        else:
            self.bytes += size - old

    def _uncounted(self, peer: str, size: int) -> None:
        self.records -= 1
        self.bytes -= size
        left = self._per_peer[peer] - 1
        if left:
            self._per_peer[peer] = left
        else:
            del self._per_peer[peer]

    def refusal(self, peer: str, size: int) -> str | None:
        """Why a new record of ``size`` bytes for ``peer`` does not fit, or None."""
        if self.records >= PROVIDER_RECORDS:
            return f"store full ({self.records} records)"
        if self.bytes + size > PROVIDER_BYTES:
            return f"store full ({self.bytes} bytes)"
        if self.keys_of(peer) >= PROVIDER_KEYS_PER_PEER:
            return f"provider already holds {self.keys_of(peer)} keys"
        return None


def provider_table(store: Any) -> ProviderTable:
    """``store.providers`` as a :class:`ProviderTable` (converted once, O(records))."""
    table = store.providers
    if not isinstance(table, ProviderTable):
        table = store.providers = ProviderTable(table)
    return table


def _narrow(addr: str) -> bool:
    ip = ip_text(addr)
    return ip is not None and ip_class(ip) in (IpClass.LOOPBACK, IpClass.LINK_LOCAL)


def kept_addrs(addrs: Iterable[Any]) -> list[Any]:
    """The first ``PROVIDER_ADDRS`` addresses of at most ``PROVIDER_ADDR_BYTES`` each.

    Loopback and link-local addresses are not kept beside others (issue
    10): whoever asks us for providers would dial their own host or link,
    not the provider's (natlab internet saw receivers dial 127.0.0.1 for a
    sharer elsewhere, handed out by our DHT server). A record with nothing
    else comes from a peer on our own host (one machine, tests) and is kept.
    """
    addrs = list(addrs)
    narrow = [a for a in addrs if _narrow(str(a))]
    if len(narrow) < len(addrs):
        addrs = [a for a in addrs if not _narrow(str(a))]
    kept: list[Any] = []
    for addr in addrs:
        if len(addr.to_bytes()) <= PROVIDER_ADDR_BYTES:
            kept.append(addr)
            if len(kept) >= PROVIDER_ADDRS:
                break
    return kept
