"""Hypothesis strategies for valid share codes."""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from p2pshare.sharecode import HUMAN_ALPHABET

from . import ids

KNOWN = {"version", "peer_id", "addresses", "encryption_key", "share_code"}

keys = st.binary(min_size=32, max_size=32)
human_codes = st.text(alphabet=HUMAN_ALPHABET, min_size=8, max_size=64)
peer_ids = st.one_of(st.sampled_from(ids.ALL), keys.map(ids.ed25519_id))

_ip4 = st.ip_addresses(v=4).filter(lambda ip: not ip.is_unspecified).map(lambda ip: f"/ip4/{ip}")


def _reachable_ip6(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return not ip.is_unspecified and not (mapped is not None and mapped.is_unspecified)


_ip6 = st.ip_addresses(v=6).filter(_reachable_ip6).map(lambda ip: f"/ip6/{ip}")
_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True).filter(lambda s: s[2:4] != "--")
_dns = st.tuples(st.sampled_from(["dns", "dns4", "dns6"]), st.lists(_label, min_size=1, max_size=4)).map(
    lambda t: f"/{t[0]}/{'.'.join(t[1])}"
)
_hosts = st.one_of(_ip4, _ip6, _dns)
_transports = st.one_of(
    st.integers(1, 65535).map(lambda p: f"/tcp/{p}"),
    st.integers(1, 65535).map(lambda p: f"/udp/{p}/quic-v1"),
)


@st.composite
def addresses_for(draw: st.DrawFn, peer_id: str) -> str:
    base = draw(_hosts) + draw(_transports)
    kind = draw(st.sampled_from(["bare", "peer", "circuit", "circuit-peer"]))
    if kind == "peer":
        return f"{base}/p2p/{peer_id}"
    if kind.startswith("circuit"):
        base += f"/p2p/{draw(peer_ids)}/p2p-circuit"
        if kind == "circuit-peer":
            base += f"/p2p/{peer_id}"
    return base


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
extras = st.dictionaries(st.text(max_size=12).filter(lambda k: k not in KNOWN), json_values, max_size=4)


@st.composite
def share_code_kwargs(draw: st.DrawFn) -> dict[str, object]:
    peer_id = draw(peer_ids)
    return {
        "peer_id": peer_id,
        "addresses": tuple(draw(st.lists(addresses_for(peer_id), max_size=6))),
        "encryption_key": draw(keys),
        "share_code": draw(human_codes),
        "extra": draw(extras),
    }
