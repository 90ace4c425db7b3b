"""The upstream py-libp2p functions our patches replaced, by patch name.

Filled by ``_libp2p_patches.apply``; read by the replacements that call
through to upstream (``_libp2p_speed``, ``_libp2p_fixes``, ``_libp2p_rcmgr``).
A module of its own so that those modules need not import each other.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ORIGINALS", "upstream"]

ORIGINALS: dict[str, Any] = {}
#: The same upstream objects by (owner, attribute) they were replaced at.
BY_ATTRIBUTE: dict[tuple[Any, str], Any] = {}


def upstream(owner: Any, attr: str) -> Any:
    """The upstream object at ``owner.attr``, even if a patch replaced it."""
    if (owner, attr) in BY_ATTRIBUTE:
        return BY_ATTRIBUTE[(owner, attr)]
    return getattr(owner, attr)
