"""The one multiaddr module: examples, and property tests that every rule
answers exactly as the hand-written parser it replaced (kept below, verbatim,
as the oracle) on well-formed and malformed text alike."""

from __future__ import annotations

import ipaddress

import multiaddr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pshare.sharecode import multiaddrs as m

from .ids import OTHER, PEER, RELAY

# -- the replaced parsers (oracles; copied from the call sites) --------------


def old_relay_ip(addr: str) -> str | None:  # node/traversal.py
    parts = addr.strip("/").split("/")
    return parts[1] if len(parts) > 1 and parts[0] in ("ip4", "ip6") else None


def old_is_loopback(addr: str) -> bool:  # node/api.py
    return addr.startswith(("/ip4/127.", "/ip6/::1/"))


def old_without_loopback(addrs: list[str]) -> list[str]:  # node/api.py
    others = [a for a in addrs if not old_is_loopback(a)]
    return others or addrs


def old_legacy_for(addrs: list[str]) -> tuple[str, int] | None:  # node/api.py
    candidates: list[tuple[str, int]] = []
    for addr in addrs:
        parts = addr.strip("/").split("/")
        if len(parts) >= 4 and parts[0] in ("ip4", "ip6") and parts[2] == "tcp" and "p2p-circuit" not in parts:
            candidates.append((parts[1], int(parts[3])))
    if not candidates:
        return None
    candidates.sort(key=lambda hp: (hp[0].startswith("127.") or hp[0] == "::1", ":" in hp[0]))
    return candidates[0]


def old_tcp_port(addrs: list[str]) -> int | None:  # node/cmd_share.py
    for addr in addrs:
        parts = addr.strip("/").split("/")
        if len(parts) >= 4 and parts[2] == "tcp":
            return int(parts[3])
    return None


def old_promising_ip(addr: str, own: list[str]) -> bool:  # node/reach.py (without is_public_ip)
    parts = addr.strip("/").split("/")
    if len(parts) < 2 or parts[0] not in ("ip4", "ip6"):
        return True
    ip = parts[1]
    if ip.startswith("127.") or ip == "::1":
        return True
    prefix = ip.rsplit(".", 1)[0] + "."
    return any(f"/ip4/{prefix}" in o for o in own)


def old_expand(text: str) -> tuple[str, str] | None:  # node/host.py _expand_wildcard
    parts = text.split("/")
    if len(parts) < 3 or parts[1] not in ("ip4", "ip6"):
        return None
    try:
        ip = ipaddress.ip_address(parts[2])
    except ValueError:
        return None
    if not ip.is_unspecified:
        return None
    return parts[1], "/".join(parts[3:])


def old_identify_peer(relay_addr: str) -> tuple[str, str] | None:  # node/natinfo/_trio_identify.py
    if "/p2p/" not in relay_addr:
        return None
    base, _, rest = relay_addr.partition("/p2p/")
    return base, rest.split("/")[0]


def old_target_peer(addr: str) -> str | None:  # node/discovery/_open.py _targets
    parts = addr.rstrip("/").split("/")
    return parts[-1] if len(parts) >= 3 and parts[-2] in ("p2p", "ipfs") else None


def old_split_dnsaddr(addr: str) -> tuple[str, str | None] | None:  # node/discovery/dnsaddr.py
    parts = addr.strip("/").split("/")
    if len(parts) < 2 or parts[0] != "dnsaddr" or not parts[1]:
        return None
    peer = None
    if len(parts) == 4 and parts[2] in ("p2p", "ipfs"):
        peer = parts[3]
    elif len(parts) != 2:
        return None
    return parts[1], peer


def old_with_suffix(text: str, relay_peer_id: str) -> str | None:  # node/circuit/types.py decode_relay_addrs
    suffix = f"/p2p/{relay_peer_id}"
    if "/p2p/" in text and not text.endswith(suffix):
        return None
    return text if text.endswith(suffix) else text + suffix


def old_parse_relay_addr(addr: str) -> tuple[str, str] | None | str:  # node/circuit/client.py
    text = addr.split("/p2p-circuit", 1)[0]
    try:
        maddr = multiaddr.Multiaddr(text)
        relay = maddr.value_for_protocol("p2p")
    except Exception:
        return None
    if not relay:
        return "empty"
    return str(relay), text


_NON_PUBLIC = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
]


def old_is_public_ip(ip: str) -> bool:  # node/natinfo/addrs.py
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return not any(addr.version == net.version and addr in net for net in _NON_PUBLIC)


# -- strategies ---------------------------------------------------------------

_ips = st.one_of(
    st.ip_addresses().map(str),
    st.sampled_from(["0.0.0.0", "::", "127.0.0.1", "::1", "10.1.2.3", "192.168.1.9", "1.2", "x", "", "::ffff:1.2.3.4"]),
)
_component = st.one_of(
    st.sampled_from(
        ["ip4", "ip6", "tcp", "udp", "p2p", "ipfs", "p2p-circuit", "dns4", "dnsaddr", "quic-v1", "", "0", "4001"]
    ),
    st.sampled_from([PEER, RELAY, OTHER]),
    _ips,
    st.integers(-1, 70000).map(str),
    st.text(alphabet="ab1/:.", max_size=6),
)
# Mostly shaped like multiaddrs, with stray slashes and junk mixed in.
_shaped = st.tuples(
    st.sampled_from(["", "/", "//"]),
    st.sampled_from(["ip4", "ip6", "dns4", "dnsaddr", "p2p", "x"]),
    _ips,
    st.lists(_component, max_size=6),
    st.sampled_from(["", "/", "//"]),
).map(lambda t: t[0] + "/".join([t[1], t[2], *t[3]]) + t[4])
addrs = st.one_of(_shaped, st.lists(_component, max_size=8).map("/".join), st.text(max_size=20))


def _same(old: object, new: object) -> None:
    assert old == new


def _outcome(fn: object, *args: object) -> object:
    try:
        return ("ok", fn(*args))  # type: ignore[operator]
    except ValueError as exc:
        return ("ValueError", type(exc))


# -- the rules answer as the parsers they replaced ---------------------------


@settings(max_examples=400)
@given(addrs)
def test_single_address_rules_match_old(addr: str) -> None:
    _same(old_relay_ip(addr), m.ip_text(addr))
    _same(old_is_loopback(addr), m.is_loopback_addr(addr))
    _same(old_expand(addr), m.unspecified_host(addr))
    _same(old_identify_peer(addr), m.split_first_peer(addr))
    _same(old_target_peer(addr), m.trailing_peer(addr))
    _same(old_split_dnsaddr(addr), m.split_dnsaddr(addr))
    _same("/p2p-circuit" in addr, m.is_circuit(addr))
    _same(addr.split("/p2p-circuit")[0], m.relay_part(addr))
    for peer in (PEER, RELAY):
        _same(old_with_suffix(addr, peer), m.with_peer(addr, peer))
        _same("/p2p-circuit/p2p/" in addr and not addr.rstrip("/").endswith(peer), m.circuit_names_other(addr, peer))


@settings(max_examples=200)
@given(addrs)
def test_relay_of_matches_old(addr: str) -> None:
    old = old_parse_relay_addr(addr)
    new = m.relay_of(addr)
    if old == "empty":
        assert new is not None and new[0] == ""
    else:
        assert old == new


@settings(max_examples=300)
@given(st.lists(addrs, max_size=5), st.lists(addrs, max_size=3))
def test_list_rules_match_old(many: list[str], own: list[str]) -> None:
    _same(old_without_loopback(many), m.without_loopback(many))
    _same(_outcome(old_legacy_for, many), _outcome(m.legacy_endpoint, many))
    _same(_outcome(old_tcp_port, many), _outcome(m.first_tcp_port, many))
    for addr in many:
        ip = m.ip_text(addr)
        new = ip is None or m.is_loopback_ip(ip) or m.same_ip4_prefix(ip, own)
        _same(old_promising_ip(addr, own), new)


@settings(max_examples=500)
@given(st.one_of(st.ip_addresses().map(str), _ips, st.text(max_size=10)))
def test_ip_class_matches_old_public_rule(ip: str) -> None:
    assert m.is_public_ip(ip) == old_is_public_ip(ip)
    cls = m.ip_class(ip)
    assert (cls is None) == (old_is_public_ip(ip) is False and _not_ip(ip))


def _not_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return True
    return False


# -- examples -----------------------------------------------------------------


def test_ip_classes() -> None:
    assert m.ip_class("127.0.0.1") is m.IpClass.LOOPBACK
    assert m.ip_class("::1") is m.IpClass.LOOPBACK
    assert m.ip_class("::ffff:127.0.0.1") is m.IpClass.LOOPBACK
    assert m.ip_class("169.254.1.1") is m.IpClass.LINK_LOCAL
    assert m.ip_class("fe80::1") is m.IpClass.LINK_LOCAL
    assert m.ip_class("192.168.1.1") is m.IpClass.PRIVATE
    assert m.ip_class("100.64.0.1") is m.IpClass.PRIVATE
    assert m.ip_class("203.0.113.7") is m.IpClass.PUBLIC  # documentation ranges: public (the NAT lab)
    assert m.ip_class("8.8.8.8") is m.IpClass.PUBLIC
    assert m.ip_class("nope") is None
    # the DHT's scope keeps Python's notion of private
    assert m.addr_scope("/ip4/203.0.113.7/tcp/1") is m.AddrScope.PRIVATE


def test_tcp_addr_round_trip() -> None:
    a = m.parse_tcp_addr(f"/ip4/1.2.3.4/tcp/4001/p2p/{PEER}")
    assert a == m.TcpAddr("1.2.3.4", 4001, PEER)
    assert a.multiaddr() == "/ip4/1.2.3.4/tcp/4001"
    assert m.parse_tcp_addr("/ip6/::1/tcp/1") == m.TcpAddr("::1", 1)
    assert m.parse_tcp_addr(multiaddr.Multiaddr("/ip4/1.2.3.4/tcp/5").to_bytes()) == m.TcpAddr("1.2.3.4", 5)
    for bad in ("/ip4/1.2.3.4/tcp/0", "/dns4/a.b/tcp/1", "/ip4/1.2.3.4/udp/1/quic-v1", "nope", f"/p2p/{PEER}"):
        assert m.parse_tcp_addr(bad) is None, bad
    assert m.parse_tcp_addr(f"/ip4/1.2.3.4/tcp/1/p2p/{RELAY}/p2p-circuit/p2p/{PEER}") is None


@given(st.ip_addresses(), st.integers(1, 65535))
def test_tcp_multiaddr_parses_back(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> None:
    text = m.tcp_multiaddr(str(ip), port)
    assert m.parse_tcp_addr(text) == m.TcpAddr(str(ip), port)


def test_circuit_addr() -> None:
    relay = f"/ip4/1.2.3.4/tcp/4001/p2p/{RELAY}"
    full = f"{relay}/p2p-circuit/p2p/{PEER}"
    c = m.parse_circuit(full)
    assert c == m.CircuitAddr(relay, RELAY, PEER)
    assert c.multiaddr() == full == m.circuit_multiaddr(relay, PEER)
    assert m.parse_circuit(f"{relay}/p2p-circuit") == m.CircuitAddr(relay, RELAY, None)
    assert m.parse_circuit(f"/p2p/{RELAY}/p2p-circuit/p2p/{PEER}") == m.CircuitAddr(f"/p2p/{RELAY}", RELAY, PEER)
    assert m.parse_circuit(relay) is None
    assert m.parse_circuit("/ip4/1.2.3.4/tcp/1/p2p-circuit") is None  # no relay peer ID
    assert m.parse_circuit(f"{relay}/p2p-circuit/tcp/1") is None
    assert m.relay_of(full) == (RELAY, relay)
    assert m.relay_of("/ip4/1.2.3.4/tcp/1") is None


@given(st.sampled_from([RELAY, OTHER]), st.sampled_from([PEER, OTHER]), st.integers(1, 65535))
def test_circuit_round_trip(relay_id: str, target: str, port: int) -> None:
    relay = f"/ip4/10.0.0.1/tcp/{port}/p2p/{relay_id}"
    text = m.circuit_multiaddr(relay, target)
    assert m.parse_circuit(text) == m.CircuitAddr(relay, relay_id, target)
    assert not m.circuit_names_other(text, target)


def test_loopback_filter_and_legacy_pick() -> None:
    local = ["/ip4/127.0.0.1/tcp/1", "/ip6/::1/tcp/2"]
    assert m.without_loopback(local) == local
    assert m.without_loopback([*local, "/ip4/10.0.0.2/tcp/3"]) == ["/ip4/10.0.0.2/tcp/3"]
    assert m.legacy_endpoint([*local, "/ip6/2001:db8::1/tcp/4", "/ip4/10.0.0.2/tcp/3"]) == ("10.0.0.2", 3)
    assert m.legacy_endpoint([f"/ip4/1.2.3.4/tcp/1/p2p/{RELAY}/p2p-circuit/p2p/{PEER}"]) is None
    assert m.legacy_endpoint(local) == ("127.0.0.1", 1)
    assert m.first_tcp_port(["/ip4/1.2.3.4/udp/9/quic-v1", "/dns4/a.b/tcp/7"]) == 7


@pytest.mark.parametrize(
    ("addr", "want"),
    [
        (f"/ip4/1.2.3.4/tcp/1/p2p/{PEER}", "/ip4/1.2.3.4/tcp/1"),
        (f"/ip4/1.2.3.4/tcp/1/p2p/{OTHER}", None),
        ("/ip4/0.0.0.0/tcp/1", None),
        (f"/ip4/1.2.3.4/tcp/1/p2p/{RELAY}/p2p-circuit", f"/ip4/1.2.3.4/tcp/1/p2p/{RELAY}/p2p-circuit"),
        ("ip4/1.2.3.4/tcp/1", None),
    ],
)
def test_normalize_peer_addr(addr: str, want: str | None) -> None:
    assert m.normalize_peer_addr(addr, PEER, 512) == want


def test_module_is_pure() -> None:
    """Importable without trio or py-libp2p (sharecode and the pure cores use it)."""
    import subprocess
    import sys

    code = "import sys, p2pshare.sharecode.multiaddrs\nprint(sorted(m for m in ('trio', 'libp2p') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("addr", "problem"),
    [
        (f"/ip4/203.0.113.7/tcp/4001/p2p/{RELAY}", None),
        (f"/dns4/relay.example/tcp/4001/p2p/{PEER}", None),
        (f"/dnsaddr/bootstrap.libp2p.io/p2p/{RELAY}", None),
        ("foo", "not a multiaddr"),
        ("127.0.0.1:4001", "not a multiaddr"),
        ("/ip4/300.1.1.1/tcp/4001/p2p/" + PEER, "not a multiaddr"),
        ("/ip4/203.0.113.7/tcp/4001", "must end in /p2p/<peer id>"),
        ("/ip4/203.0.113.7/tcp/4001/p2p/notapeer", "bad peer ID"),
        ("/" + "x" * 2000, "not a multiaddr"),
    ],
)
def test_peer_addr_problem(addr: str, problem: str | None) -> None:
    got = m.peer_addr_problem(addr)
    assert got == problem if problem is None else (got is not None and problem in got)


def test_code_addresses_keep_room_for_relayed_ones_and_drop_what_a_code_refuses() -> None:
    from p2pshare.sharecode.addresses import MAX_ADDRESSES, code_addresses

    me = "12D3KooWNVGUcK31QppYgNygNRDP95GSXH8EzFZ23tmjmeRPw8JB"
    relay = "12D3KooWJD8XE1cqqybQcFt7cxxC7mzT2s79XcdBjz5oVbd1DGCT"
    direct = [f"/ip4/10.0.0.{i}/tcp/4001" for i in range(40)] + ["/ip4/10.0.1.1/tcp/4001/ws"]
    relayed = [f"/ip4/203.0.113.{i}/tcp/4001/p2p/{relay}/p2p-circuit/p2p/{me}" for i in range(3)]
    got = code_addresses(direct, relayed, me)
    assert len(got) == MAX_ADDRESSES and got[-3:] == relayed  # the relayed ones survive the cut
    assert "/ip4/10.0.1.1/tcp/4001/ws" not in got
    assert code_addresses(direct[:2], relayed, me) == direct[:2] + relayed
