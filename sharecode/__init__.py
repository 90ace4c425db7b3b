"""Share codes: the v1 base64-JSON format, the legacy ``CODE:KEY:IP:PORT``
format, human codes and the DHT key derived from them. Pure and light: no
trio, no libp2p."""

from .addresses import MAX_ADDRESS_CHARS, MAX_ADDRESSES, validate_multiaddr
from .errors import ShareCodeError, ShortCodeError
from .human import HUMAN_ALPHABET, dht_key, new_human_code, normalize_human_code
from .legacy import LegacyCode
from .parse import REDACTED, describe, parse_code
from .peerid import is_valid_peer_id, peer_id_to_bytes, validate_peer_id
from .short import ShortCode, looks_like_short_code, new_short_code, parse_short_code
from .v1 import MAX_CODE_CHARS, VERSION, ShareCode

__all__ = [
    "HUMAN_ALPHABET",
    "MAX_ADDRESSES",
    "MAX_ADDRESS_CHARS",
    "MAX_CODE_CHARS",
    "REDACTED",
    "VERSION",
    "LegacyCode",
    "ShareCode",
    "ShareCodeError",
    "ShortCodeError",
    "ShortCode",
    "describe",
    "dht_key",
    "is_valid_peer_id",
    "looks_like_short_code",
    "new_short_code",
    "parse_short_code",
    "new_human_code",
    "normalize_human_code",
    "parse_code",
    "peer_id_to_bytes",
    "validate_multiaddr",
    "validate_peer_id",
]
