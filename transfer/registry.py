"""The shares a node serves, keyed by share ID (no I/O, no trio)."""

from __future__ import annotations

from dataclasses import dataclass, field

from p2pshare.transfer.crypto import ShareKeys
from p2pshare.transfer.scan import PreparedShare
from p2pshare.transfer.sharer import ShareMaterial


@dataclass(frozen=True)
class ServedShare:
    prepared: PreparedShare
    material: ShareMaterial = field(repr=False)

    @property
    def share_id(self) -> bytes:
        return self.material.keys.share_id


class ShareRegistry:
    """Maps share IDs to served shares and counts receivers that finished.

    Used from one event loop; ``completed`` lets ``share --once`` stop after
    the first receiver that confirmed a full, verified transfer.
    """

    def __init__(self, max_sessions: int = 64) -> None:
        self._shares: dict[bytes, ServedShare] = {}
        self._completed: dict[bytes, int] = {}
        self.max_sessions = max_sessions
        self.active_sessions = 0

    def try_acquire(self) -> bool:
        """Claim a session slot (bounds memory and threads under a flood)."""
        if self.active_sessions >= self.max_sessions:
            return False
        self.active_sessions += 1
        return True

    def release(self) -> None:
        self.active_sessions -= 1

    def add(self, prepared: PreparedShare, key: bytes | None = None, share_code: str | None = None) -> bytes:
        """Serve ``prepared`` under ``key`` (default: the key it was built with)."""
        key = key if key is not None else prepared.key
        if key is None:
            raise ValueError("a share key is needed to serve a share")
        keys = ShareKeys.derive(key, share_code)
        self._shares[keys.share_id] = ServedShare(prepared, ShareMaterial.build(keys, prepared.manifest))
        self._completed.setdefault(keys.share_id, 0)
        return keys.share_id

    def remove(self, share_id: bytes) -> None:
        self._shares.pop(share_id, None)

    def get(self, share_id: bytes) -> ServedShare | None:
        return self._shares.get(share_id)

    def material(self, share_id: bytes) -> ShareMaterial | None:
        served = self._shares.get(share_id)
        return served.material if served is not None else None

    def __len__(self) -> int:
        return len(self._shares)

    def record_completed(self, share_id: bytes) -> int:
        self._completed[share_id] = self._completed.get(share_id, 0) + 1
        return self._completed[share_id]

    def completed(self, share_id: bytes) -> int:
        """How many receivers finished this share."""
        return self._completed.get(share_id, 0)
