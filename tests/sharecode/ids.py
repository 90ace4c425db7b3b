"""Real peer IDs, generated once with py-libp2p 0.8.1 (``ID.from_pubkey``)."""

from __future__ import annotations

import base58

ED25519 = (
    "12D3KooWL5jVaf6rz7R7awcPo9c2dby7L7S6m1eU3jU5h1jS79eq",
    "12D3KooWGA8bTAwbDJKxs4NgUsBHXnHvkrWaXVNFhMmpsRdtXF6i",
    "12D3KooWDUWSoYThg6Wckbswx7qAtbZuQrFSz4aXZgtvqBoPTwCF",
)
SECP256K1 = (
    "16Uiu2HAmV5gpAS1cwMMYH1UZosm4moaikk1noXTmx8cEfvE5XpfT",
    "16Uiu2HAmDqxS9BmtVHSee3Cf9X7oF5uTJAyFCSo4EMdrvpGYS2MW",
)
RSA = (
    "QmYywAkz2GavgXz8q6vJxD2NopqHWCXLAiS4D2MG6keE9V",
    "QmY33JYWKG3ZsMKttJtvSsfgyuKynHJk8k4CDTNDksMyoz",
)
ECDSA_P256 = ("QmTJ5ashhFGWFABLekCm2vcHUTiGmW8TbzQQ2gbDC3azHh",)
ALL = ED25519 + SECP256K1 + RSA + ECDSA_P256

PEER = ED25519[0]
OTHER = ED25519[1]
RELAY = RSA[0]


def ed25519_id(pubkey: bytes) -> str:
    """The identity peer ID of a raw 32-byte Ed25519 public key."""
    assert len(pubkey) == 32
    return base58.b58encode(b"\x00\x24\x08\x01\x12\x20" + pubkey).decode()
