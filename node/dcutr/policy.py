"""DCUtR logic (pure): roles, the CONNECT/SYNC exchange, address policy, timing.

Roles follow the spec. The peer whose relayed connection is *inbound* (B,
:attr:`Role.INITIATOR`) opens ``/libp2p/dcutr``, sends CONNECT, measures the
RTT until the peer's CONNECT, sends SYNC and dials RTT/2 later. The other
peer (A, :attr:`Role.RESPONDER`) answers CONNECT and dials as soon as SYNC
arrives. On the resulting TCP connection (a simultaneous open makes both
sides "dialers") A is the client — multistream and Noise initiator — and B
the server.

Policy beyond the spec, for real NATs: remote private/loopback addresses
are dropped unless both peers show the same public IP (same NAT) or the
address is on one of our own networks, so no time is lost dialing a LAN
that is not ours; within a round each target is re-dialed after a refused
SYN (a NAT that answers strangers with RST) with a small random delay, a
capped number of times, and the responder answers a bounded number of
rounds a minute (the targets are the peer's word, see :mod:`.budget`); each
round shifts the initiator's timing by a configured offset so that, over the
rounds, either side's SYN leaves first.
"""

from __future__ import annotations

import enum
import ipaddress
import random
from collections.abc import Sequence
from dataclasses import dataclass

from p2pshare.node.dcutr.wire import HolePunch, MsgType, WireError, encode
from p2pshare.node.events import Upgraded, UpgradeFailed  # the event types live with the node's others
from p2pshare.node.natinfo.addrs import TcpAddr, decode_addrs, encode_addr, parse_tcp_addr, same_public_ip

__all__ = [
    "Role",
    "PunchConfig",
    "InitiatorExchange",
    "ResponderExchange",
    "Ready",
    "select_targets",
    "our_addrs",
    "public_dial_addrs",
    "fresh_port_ok",
    "with_port",
    "redial_delay",
    "Upgraded",
    "UpgradeFailed",
    "DCUtREvent",
    "NoDialableAddress",
]

MAX_TARGETS = 8


class NoDialableAddress(WireError):
    """The peer's CONNECT offered nothing we can dial: most often a peer that
    has not learned its public mapping yet (it answered with LAN addresses
    only), so a later round may find one."""


class Role(str, enum.Enum):
    INITIATOR = "initiator"  # B: relayed connection inbound; opens the stream; security server
    RESPONDER = "responder"  # A: relayed connection outbound; answers; security client

    @property
    def security_client(self) -> bool:
        return self is Role.RESPONDER


@dataclass(frozen=True)
class PunchConfig:
    #: False: answer no round and start no upgrade (``get --force-relay``:
    #: the bytes must cross the relay; a punched direct path carried them,
    #: so the flag tested nothing on a LAN, found by a usability review).
    punch_holes: bool = True
    rounds: int = 4  # CONNECT/SYNC exchanges the initiator runs (spec: at least 3)
    round_window: float = 3.0  # how long each side keeps dialing in one round
    # Re-dial after a refused SYN at once (0-2 ms of jitter): between two NATs
    # that both answer strangers with RST only SYNs that cross in flight
    # succeed, and a tight loop makes that likely (lab: ~200 refusals, 0.4 s).
    # On real paths each refusal costs an RTT, which bounds the rate anyway.
    redial_min: float = 0.0
    redial_max: float = 0.002
    # The targets are only the peer's word: a peer could name a third
    # party's closed ports (each SYN refused at once). So SYNs per round are
    # capped in all (node.dcutr.budget.DialBudget): 400 a target times up to
    # 8 targets made any peer with a relayed connection a SYN cannon. A
    # target keeps 400: between two NATs that both answer strangers with
    # RST only crossing SYNs connect, and with 32 a target the NAT lab's
    # cone-rst/cone-rst cell failed under CI load (the lab's winning rounds
    # took 24-99 dials in ~1 ms round trips). On real paths a refusal costs
    # an RTT, so a round sends far fewer anyway.
    max_dials_per_target: int = 400
    max_dials_per_round: int = 400
    # Rounds we answer as responder (each a punch toward addresses the peer
    # names), per minute: from one peer (an honest initiator's upgrade here
    # is at most fresh_rounds + 5 unready exchanges + 1) and from all peers.
    answer_per_peer: int = 30
    answer_per_minute: int = 30
    # Upgrades we start (each a relayed connection a peer made to us, whose
    # CONNECT answer names the addresses we then punch), per minute.
    upgrades_per_peer: int = 6
    upgrades_per_minute: int = 60
    offsets: tuple[float, ...] = (0.0, -0.02, 0.02, 0.0)  # initiator timing shift per round
    max_sync_wait: float = 2.0  # cap on the RTT/2 wait
    exchange_timeout: float = 10.0  # CONNECT/SYNC over the relay
    upgrade_timeout: float = 10.0  # Noise + yamux on the punched socket
    unilateral_timeout: float = (
        0.75  # direct dial to a peer with public addrs first (about 2 RTTs on real paths); 0 = skip
    )
    relay_grace: float = 2.0  # keep the relayed connection at least this long after
    relay_idle_max: float = 600.0  # ... and until its streams end, at most this long
    allow_loopback: bool = False  # loopback tests only: announce and dial 127.0.0.1
    fresh_ports: bool = True  # a new local port per round when the NAT keeps port numbers
    # With fresh ports a lost round costs only its window, and every round is
    # an independent try. Between two NATs that answer strangers with RST only
    # SYNs that cross in flight get through, and the two dial loops drift
    # apart after the SYNC that lined them up: a round wins soon after it
    # starts or not at all (lab, cone-rst both sides, 46 rounds of 1 s: 16
    # won, 11 of them within 0.25 s, none after 0.9 s; with 0.3 s rounds
    # still 16 wins in 37 rounds). So many short rounds, each re-synced by its
    # own CONNECT/SYNC, over about the same total time as 8 rounds of 1 s.
    fresh_rounds: int = 20
    fresh_round_window: float = 0.3
    window_rtts: float = 3.0  # ... but at least this many RTTs, so SYNs can cross on slow paths

    def __post_init__(self) -> None:
        if min(self.rounds, self.max_dials_per_target, self.max_dials_per_round) < 1:
            raise ValueError("rounds, max_dials_per_target and max_dials_per_round must be at least 1")
        if min(self.answer_per_peer, self.answer_per_minute, self.upgrades_per_peer, self.upgrades_per_minute) < 1:
            raise ValueError("answer_per_* and upgrades_per_* must be at least 1")
        if not 0 <= self.redial_min <= self.redial_max:
            raise ValueError("need 0 <= redial_min <= redial_max")
        if self.fresh_rounds < 1:
            raise ValueError("fresh_rounds must be at least 1")
        if (
            self.round_window <= 0
            or self.fresh_round_window <= 0
            or self.window_rtts < 0
            or self.exchange_timeout <= 0
            or self.upgrade_timeout <= 0
        ):
            raise ValueError("timeouts must be positive")

    def window(self, fresh: bool, rtt: float | None) -> float:
        """How long one round dials: fixed from the listen port; from a fresh
        port short, but never under ``window_rtts`` round trips."""
        if not fresh:
            return self.round_window
        return max(self.fresh_round_window, self.window_rtts * (rtt or 0.0))

    def offset(self, round_no: int) -> float:
        """Timing shift of the initiator's dial in round ``round_no`` (1-based)."""
        if not self.offsets:
            return 0.0
        return self.offsets[(round_no - 1) % len(self.offsets)]


@dataclass(frozen=True)
class Ready:
    """The exchange is done: dial ``targets`` at ``dial_at`` (same clock as ``now``)."""

    targets: tuple[TcpAddr, ...]
    dial_at: float
    rtt: float | None  # measured by the initiator; the responder's is CONNECT→SYNC


def our_addrs(observed: Sequence[TcpAddr], listen: Sequence[TcpAddr], allow_loopback: bool = False) -> list[TcpAddr]:
    """What we announce in CONNECT: public mappings first, then our LAN addrs
    (useful to a peer behind the same NAT, filtered out by anyone else)."""
    out: list[TcpAddr] = []
    for a in [*observed, *[x for x in listen if x.public], *[x for x in listen if not x.public]]:
        ip = ipaddress.ip_address(a.ip)
        if (ip.is_loopback and not allow_loopback) or ip.is_unspecified:
            continue
        plain = TcpAddr(a.ip, a.port)
        if plain not in out:
            out.append(plain)
    return out[:MAX_TARGETS]


def public_dial_addrs(addrs: Sequence[str], allow_loopback: bool = False) -> list[str]:
    """The peer's public listen addresses (worth a plain direct dial)."""
    out = []
    for text in addrs:
        a = parse_tcp_addr(text)
        if a is not None and (a.public or (allow_loopback and a.ip.startswith("127."))):
            out.append(a.multiaddr())
    return out


def fresh_port_ok(observed: Sequence[TcpAddr], listen_port: int) -> bool:
    """Whether a new local port's public mapping is predictable: we know our
    mapping and it kept the listen port's number (port-preserving,
    endpoint-independent NAT, or none). Without an observation we cannot tell."""
    return bool(observed) and all(a.port == listen_port for a in observed)


def with_port(addrs: Sequence[TcpAddr], old: int, new: int) -> list[TcpAddr]:
    """``addrs`` with port ``old`` replaced by ``new`` (others kept as they are)."""
    return [TcpAddr(a.ip, new if a.port == old else a.port) for a in addrs]


def select_targets(
    remote: Sequence[bytes],
    ours: Sequence[TcpAddr],
    local_networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
    allow_loopback: bool = False,
) -> list[TcpAddr]:
    """The peer's CONNECT addresses worth dialing, public ones first."""
    theirs = decode_addrs(remote, limit=MAX_TARGETS * 2)
    same_nat = same_public_ip(ours, theirs)
    families = {a.version for a in ours} or {4}
    out: list[TcpAddr] = []
    for a in sorted(theirs, key=lambda x: not x.public):
        if a.version not in families:
            continue
        ip = ipaddress.ip_address(a.ip)
        if ip.is_loopback and allow_loopback:
            pass
        elif ip.is_loopback or ip.is_unspecified or ip.is_multicast:
            continue
        elif not a.public and not (same_nat or any(ip in n for n in local_networks if n.version == ip.version)):
            continue
        plain = TcpAddr(a.ip, a.port)
        if plain not in out:
            out.append(plain)
    return out[:MAX_TARGETS]


def redial_delay(rng: random.Random, cfg: PunchConfig) -> float:
    return rng.uniform(cfg.redial_min, cfg.redial_max)


def _encode_addrs(addrs: Sequence[TcpAddr]) -> tuple[bytes, ...]:
    return tuple(encode_addr(a.multiaddr()) for a in addrs)


class InitiatorExchange:
    """B's side of one round: CONNECT → (peer's CONNECT) → SYNC, then dial at RTT/2."""

    def __init__(
        self,
        ours: Sequence[TcpAddr],
        cfg: PunchConfig,
        round_no: int,
        local_networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
    ) -> None:
        if not ours:
            raise ValueError("no address of ours to announce")
        self._ours = list(ours)
        self._cfg = cfg
        self._round = round_no
        self._nets = local_networks
        self._sent_at: float | None = None
        self.done = False

    def start(self, now: float) -> bytes:
        self._sent_at = now
        return encode(HolePunch(MsgType.CONNECT, _encode_addrs(self._ours)))

    def receive(self, msg: HolePunch, now: float) -> tuple[bytes, Ready]:
        """The peer's CONNECT: returns SYNC to send and when/where to dial."""
        if self._sent_at is None or self.done:
            raise WireError("message before our CONNECT")
        if msg.type is not MsgType.CONNECT:
            raise WireError(f"expected CONNECT, got {msg.type.name}")
        targets = select_targets(msg.obs_addrs, self._ours, self._nets, self._cfg.allow_loopback)
        if not targets:
            raise NoDialableAddress("peer's CONNECT has no address we can dial")
        self.done = True
        rtt = max(0.0, now - self._sent_at)
        wait = min(rtt / 2, self._cfg.max_sync_wait)
        dial_at = now + max(0.0, wait + self._cfg.offset(self._round))
        return encode(HolePunch(MsgType.SYNC)), Ready(tuple(targets), dial_at, rtt)


class ResponderExchange:
    """A's side of one round: answer CONNECT with ours, dial when SYNC arrives."""

    def __init__(
        self,
        ours: Sequence[TcpAddr],
        local_networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
        allow_loopback: bool = False,
    ) -> None:
        self._ours = list(ours)
        self._nets = local_networks
        self._loopback = allow_loopback
        self._targets: list[TcpAddr] | None = None
        self._answered_at = 0.0
        self.targets: tuple[TcpAddr, ...] = ()
        #: The CONNECT carried no address at all: the initiator has nothing
        #: to announce, so no later round can work either.
        self.nothing_offered = False

    def receive(self, msg: HolePunch, now: float) -> bytes | Ready:
        if self._targets is None:
            if msg.type is not MsgType.CONNECT:
                raise WireError(f"expected CONNECT, got {msg.type.name}")
            if not msg.obs_addrs:
                self.nothing_offered = True
                raise WireError("initiator's CONNECT has no address")
            if not self._ours:
                raise WireError("we have no address to announce")
            targets = select_targets(msg.obs_addrs, self._ours, self._nets, self._loopback)
            if not targets:
                raise WireError("initiator's CONNECT has no address we can dial")
            self._targets = targets
            self._answered_at = now
            self.targets = tuple(targets)
            return encode(HolePunch(MsgType.CONNECT, _encode_addrs(self._ours)))
        if msg.type is not MsgType.SYNC:
            raise WireError(f"expected SYNC, got {msg.type.name}")
        return Ready(tuple(self._targets), now, now - self._answered_at)


DCUtREvent = Upgraded | UpgradeFailed
