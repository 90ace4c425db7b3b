"""NAT behaviour (RFC 5780 terms, for TCP) and the punching strategy (pure).

Mapping is read from STUN-over-TCP observations made FROM our listen port to
several server endpoints: one mapping for all destinations is
endpoint-independent (punchable; "port preserving" when it kept our port);
different mappings per destination are endpoint-dependent (symmetric: the
peer cannot know where to aim). Filtering (can strangers reach the mapping?)
is what AutoNAT's dial-back measures: public means no filtering.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from p2pshare.node.natinfo.addrs import is_public_ip
from p2pshare.node.natinfo.stun import Observation

__all__ = ["Mapping", "NatReport", "Strategy", "classify", "strategy"]


class Mapping(str, enum.Enum):
    NONE = "none"  # no translation: our own (public) address
    ENDPOINT_INDEPENDENT = "endpoint-independent"
    ENDPOINT_DEPENDENT = "endpoint-dependent"  # symmetric
    UNKNOWN = "unknown"  # too few answers to tell


class Strategy(str, enum.Enum):
    DIRECT = "direct"  # one side is reachable: just dial it
    SIMULTANEOUS_OPEN = "simultaneous-open"  # both mappings predictable: DCUtR punch
    PREDICT = "predict"  # one side symmetric: needs port prediction / many-port probing
    RELAY_ONLY = "relay-only"  # both symmetric: keep the relay


@dataclass(frozen=True)
class NatReport:
    mapping: Mapping
    public: tuple[str, int] | None  # the listen port's public mapping, when predictable
    port_preserving: bool
    observations: int
    distinct_servers: int
    # The one public IP every server saw, also when the ports differ: a
    # symmetric NAT's mappings are unpredictable, its IP is not, and the
    # birthday method (node.dcutr.birthday) needs only that.
    public_ip: str | None = None

    @property
    def punchable(self) -> bool:
        return self.mapping in (Mapping.NONE, Mapping.ENDPOINT_INDEPENDENT)


def classify(observations: Sequence[Observation]) -> NatReport:
    """Classify the mapping behaviour seen from one local port."""
    if not observations:
        return NatReport(Mapping.UNKNOWN, None, False, 0, 0)
    local = observations[0].local
    servers = {o.server for o in observations}
    mapped = {o.mapped for o in observations}
    first = observations[0].mapped
    preserving = all(m[1] == local[1] for m in mapped)
    ips = {m[0] for m in mapped}
    one_ip = next(iter(ips)) if len(ips) == 1 else None
    if len(mapped) > 1:
        return NatReport(Mapping.ENDPOINT_DEPENDENT, None, False, len(observations), len(servers), one_ip)
    if first[0] == local[0] and first[1] == local[1] and is_public_ip(local[0]):
        mapping = Mapping.NONE
    elif len(servers) < 2:
        mapping = Mapping.UNKNOWN  # one endpoint cannot show endpoint dependence
    else:
        mapping = Mapping.ENDPOINT_INDEPENDENT
    return NatReport(mapping, first, preserving, len(observations), len(servers), one_ip)


def strategy(ours: NatReport, theirs: NatReport, ours_public: bool = False, theirs_public: bool = False) -> Strategy:
    """How to get a direct connection between two peers, from both reports
    and their AutoNAT verdicts (``*_public``)."""
    if ours_public or theirs_public:
        return Strategy.DIRECT
    a = ours.mapping is Mapping.ENDPOINT_DEPENDENT
    b = theirs.mapping is Mapping.ENDPOINT_DEPENDENT
    if a and b:
        return Strategy.RELAY_ONLY
    if a or b:
        return Strategy.PREDICT
    return Strategy.SIMULTANEOUS_OPEN
