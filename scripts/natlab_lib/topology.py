"""Declarative topologies and the address plan that realises them (pure).

The "internet" is a router namespace ``inet``: every public host and every
top-level site router hangs off it on its own /30, so packets between two
sites cross a real routing hop. A site is a router namespace with a LAN
bridge; NAT sites number their LAN from 100.64.0.0/10, public/firewall sites
get a routed /28 of 198.51.100.0/24. A site may sit on another NAT site's LAN
(carrier-grade NAT in front of a home router).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from .profiles import NAT_PROFILES, ROUTER_PROFILES, ruleset

CORE = "inet"
ROLE_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")  # ns name = prefix(6) + "-" + role(<=8)
MAX_TRANSIT = 64  # /30s in 203.0.113.0/24
MAX_PUBLIC_LANS = 16  # /28s in 198.51.100.0/24
MAX_LAN_HOSTS = 13


@dataclass(frozen=True)
class SiteSpec:
    """A router namespace of one profile; ``upstream`` is a parent NAT site."""

    name: str
    profile: str
    upstream: str | None = None


@dataclass(frozen=True)
class HostSpec:
    """An end host on a site's LAN, or on the internet when ``site`` is None."""

    name: str
    site: str | None = None


@dataclass(frozen=True)
class TopologySpec:
    sites: tuple[SiteSpec, ...]
    hosts: tuple[HostSpec, ...]


@dataclass(frozen=True)
class Link:
    """A veth pair created straight into two namespaces (nothing in the root ns)."""

    a: str
    a_if: str
    b: str
    b_if: str


@dataclass(frozen=True)
class HostInfo:
    name: str
    ip: str
    site: str | None
    profile: str  # "public" for internet hosts
    public_ip: str  # the address the internet sees (outermost NAT's WAN)


@dataclass(frozen=True)
class SiteInfo:
    name: str
    profile: str
    wan_ip: str
    lan_cidr: str
    public_ip: str


@dataclass
class Plan:
    """Everything ``netns.Lab`` needs, in build order, with role names."""

    namespaces: list[str] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    ip_batches: dict[str, list[str]] = field(default_factory=dict)
    rulesets: dict[str, str] = field(default_factory=dict)
    forwarding: list[str] = field(default_factory=list)
    hosts: dict[str, HostInfo] = field(default_factory=dict)
    sites: dict[str, SiteInfo] = field(default_factory=dict)

    def describe(self) -> dict[str, object]:
        """A JSON-able summary for logs and ``natlab up``."""
        return {
            "sites": {n: vars(s) for n, s in self.sites.items()},
            "hosts": {n: vars(h) for n, h in self.hosts.items()},
        }


def validate(spec: TopologySpec) -> None:
    """Raise ValueError with one clear sentence when ``spec`` cannot be built."""
    names = [s.name for s in spec.sites] + [h.name for h in spec.hosts] + [CORE]
    for name in names:
        if not ROLE_RE.match(name):
            raise ValueError(f"bad name {name!r}: 1-8 chars [a-z0-9], starting with a letter")
    if len(set(names)) != len(names):
        raise ValueError("site and host names must be unique (and not 'inet')")
    sites = {s.name: s for s in spec.sites}
    for s in spec.sites:
        if s.profile not in ROUTER_PROFILES:
            raise ValueError(f"site {s.name}: unknown profile {s.profile!r}")
        if s.upstream is not None:
            up = sites.get(s.upstream)
            if up is None or up.profile not in NAT_PROFILES or s.profile not in NAT_PROFILES:
                raise ValueError(f"site {s.name}: only a NAT site can sit behind a NAT site")
            if up.upstream is not None:
                raise ValueError(f"site {s.name}: at most two NATs in a row")
    for h in spec.hosts:
        if h.site is not None and h.site not in sites:
            raise ValueError(f"host {h.name}: no site {h.site!r}")


def plan(spec: TopologySpec, transit_base: int = 0) -> Plan:
    """Turn a spec into namespaces, links, addresses, routes and rulesets.

    ``transit_base`` is the first /30 of 203.0.113.0/24 to use: a part added
    to a running lab (``Lab.extend``) takes /30s its base plan left free.
    """
    validate(spec)
    p = Plan()
    p.namespaces.append(CORE)
    p.ip_batches[CORE] = ["link set lo up"]
    p.forwarding.append(CORE)
    transit = iter(range(transit_base, MAX_TRANSIT))
    public_lans = iter(range(1, MAX_PUBLIC_LANS))  # /28 number 0 left unused
    nat_lans = iter(range(1, 256))
    lan_ports: dict[str, int] = {}  # next free LAN port per site
    lan_base: dict[str, tuple[str, int]] = {}  # site -> (first three octets or net, base)

    def take(it: Iterator[int], what: str) -> int:
        try:
            return next(it)
        except StopIteration:
            raise ValueError(f"topology too large: out of {what}") from None

    def attach_core(role: str, ifname: str) -> tuple[str, str]:
        i = take(transit, "203.0.113.0/24 transit links")
        core_ip, node_ip = f"203.0.113.{4 * i + 1}", f"203.0.113.{4 * i + 2}"
        p.links.append(Link(CORE, f"t{i}", role, ifname))
        p.ip_batches[CORE] += [f"link set t{i} up", f"addr add {core_ip}/30 dev t{i}"]
        p.ip_batches[role] += [
            f"link set {ifname} up",
            f"addr add {node_ip}/30 dev {ifname}",
            f"route add default via {core_ip}",
        ]
        return node_ip, core_ip

    def lan_addr(site: str) -> tuple[str, str]:
        """Next host address on ``site``'s LAN and the router's port name."""
        n = lan_ports[site]
        if n > MAX_LAN_HOSTS:
            raise ValueError(f"site {site}: more than {MAX_LAN_HOSTS} LAN hosts")
        lan_ports[site] = n + 1
        net, base = lan_base[site]
        return f"{net}.{base + n + 1}", f"h{n}"

    def attach_lan(site: str, role: str, ifname: str) -> str:
        ip, port = lan_addr(site)
        net, base = lan_base[site]
        plen = 24 if base == 0 else 28
        p.links.append(Link(site, port, role, ifname))
        p.ip_batches[site] += [f"link set {port} master lan", f"link set {port} up"]
        p.ip_batches[role] += [
            f"link set {ifname} up",
            f"addr add {ip}/{plen} dev {ifname}",
            f"route add default via {net}.{base + 1}",
        ]
        return ip

    # Parents before children, so a child's WAN can join its parent's LAN.
    ordered = [s for s in spec.sites if s.upstream is None] + [s for s in spec.sites if s.upstream is not None]
    for s in ordered:
        p.namespaces.append(s.name)
        p.forwarding.append(s.name)
        p.ip_batches[s.name] = ["link set lo up", "link add lan type bridge", "link set lan up"]
        if s.profile in NAT_PROFILES:
            k = take(nat_lans, "100.64.x.0/24 LANs")
            lan_base[s.name] = (f"100.64.{k}", 0)
            lan_cidr = f"100.64.{k}.0/24"
            p.ip_batches[s.name].append(f"addr add 100.64.{k}.1/24 dev lan")
        else:
            m = take(public_lans, "198.51.100.0/24 public LANs")
            lan_base[s.name] = ("198.51.100", 16 * m)
            lan_cidr = f"198.51.100.{16 * m}/28"
            p.ip_batches[s.name].append(f"addr add 198.51.100.{16 * m + 1}/28 dev lan")
        lan_ports[s.name] = 1  # .1 (+base) is the router itself
        if s.upstream is None:
            wan_ip, _ = attach_core(s.name, "wan")
            if s.profile not in NAT_PROFILES:
                p.ip_batches[CORE].append(f"route add {lan_cidr} via {wan_ip}")
            public_ip = wan_ip
        else:
            wan_ip = attach_lan(s.upstream, s.name, "wan")
            public_ip = p.sites[s.upstream].public_ip
        rules = ruleset(s.profile)
        if rules is not None:
            p.rulesets[s.name] = rules
        p.sites[s.name] = SiteInfo(s.name, s.profile, wan_ip, lan_cidr, public_ip)

    for h in spec.hosts:
        p.namespaces.append(h.name)
        p.ip_batches[h.name] = ["link set lo up"]
        if h.site is None:
            ip, _ = attach_core(h.name, "eth0")
            p.hosts[h.name] = HostInfo(h.name, ip, None, "public", ip)
        else:
            ip = attach_lan(h.site, h.name, "eth0")
            site = p.sites[h.site]
            public = ip if site.profile not in NAT_PROFILES else site.public_ip
            p.hosts[h.name] = HostInfo(h.name, ip, h.site, site.profile, public)
    return p


def side_sites(profile: str, name: str) -> tuple[list[SiteSpec], str]:
    """Sites for one side of a scenario; returns them and the LAN site's name.

    ``double`` yields a carrier NAT ``<name>c`` and the home router ``<name>``.
    """
    if profile == "double":
        carrier = f"{name}c"
        return [SiteSpec(carrier, "cone"), SiteSpec(name, "cone", upstream=carrier)], name
    return [SiteSpec(name, profile)], name


def scenario_spec(sharer: str, receiver: str, public_hosts: tuple[str, ...] = ("relay",)) -> TopologySpec:
    """Two sides (host ``shr`` and host ``rcv``) plus public hosts.

    With ``same-lan`` both hosts share one cone site.
    """
    hosts = [HostSpec(n) for n in public_hosts]
    if sharer == "same-lan" or receiver == "same-lan":
        if sharer != receiver:
            raise ValueError("same-lan pairs only with itself (both peers on one LAN)")
        sites = [SiteSpec("lan", "cone")]
        hosts += [HostSpec("shr", "lan"), HostSpec("rcv", "lan")]
        return TopologySpec(tuple(sites), tuple(hosts))
    a, a_lan = side_sites(sharer, "sa")
    b, b_lan = side_sites(receiver, "sb")
    hosts += [HostSpec("shr", a_lan), HostSpec("rcv", b_lan)]
    return TopologySpec(tuple(a + b), tuple(hosts))


SHORT = {
    "public": "pub",
    "firewall": "fw",
    "cone": "cone",
    "cone-rst": "rst",
    "symmetric": "sym",
    "double": "dbl",
    "same-lan": "lan",
}


def probe_spec(profiles: list[str]) -> tuple[TopologySpec, dict[str, list[str]]]:
    """One site per profile with its LAN host(s), plus ``echo`` and ``out``.

    Returns the spec and, per profile, the LAN host names to probe from.
    """
    sites: list[SiteSpec] = []
    hosts = [HostSpec("echo"), HostSpec("out")]
    lan_hosts: dict[str, list[str]] = {}
    for prof in profiles:
        short = SHORT[prof]
        if prof == "same-lan":
            sites.append(SiteSpec(short, "cone"))
            names = [f"{short}1", f"{short}2"]
        else:
            s, lan = side_sites(prof, short)
            sites += s
            names = [f"{short}1"]
        hosts += [HostSpec(n, sites[-1].name) for n in names]
        lan_hosts[prof] = names
    return TopologySpec(tuple(sites), tuple(hosts)), lan_hosts
