"""Port probing through a symmetric NAT, the "birthday" method (pure).

Why: a symmetric NAT (endpoint-dependent mapping) gives every new
destination a new random public port, so DCUtR's CONNECT has nothing to
announce and every libp2p implementation stays on the relay. When the
*other* side's mapping is endpoint-independent (cone, cone-rst, or no NAT
behind a firewall), its public ``ip:port`` is known, and a direct TCP path
can still be found by chance, as Tailscale does for "hard" NATs:

1. The hard (symmetric) side H opens :data:`PROTOCOL_ID` over the relayed
   connection and sends CONNECT with its public IP (the port is meaningless).
2. The easy side E dials :data:`EASY_PROBES` random ports of H's IP from
   its listen port (``SO_REUSEPORT``) and keeps the sockets pending. Each
   SYN opens E's NAT mapping *and filter* for ``H_ip:port``; H's NAT drops
   them (no mapping exists yet). Once every SYN has left, E answers CONNECT
   with its public mapping. This order matters: had H's SYNs arrived first,
   a cone-rst NAT would have answered them with RST and a filtering cone
   would have dropped them.
3. H opens :data:`HARD_SOCKETS` sockets, each a new random mapping, all
   dialing E's public ``ip:port``. A mapping whose port E probed matches an
   entry in E's NAT and reaches E's pending socket: a TCP simultaneous open.
   (A socket, not E's listener: the listener would answer with a new
   sequence number, which conntrack marks INVALID and leaves untranslated.)
   Several ports usually match: H keeps the first socket that connected and
   closes the others; E keeps the one on which H speaks first (H is the
   multistream/Noise initiator), so both ends pick the same connection, and
   it becomes a swarm connection through DCUtR's own upgrade path.

With ports drawn from the :data:`PORT_LOW`..:data:`PORT_HIGH` range Linux's
``random,fully-random`` masquerade uses, one round succeeds with
probability ``1 - (1 - EASY_PROBES/space) ** HARD_SOCKETS`` (≈ 0.9997 with
the defaults; Tailscale's 1024 × 256 gives ≈ 0.98). Costs per round, all
bounded here: E holds EASY_PROBES fds and sends that many SYNs (plus
TCP's retransmits at 1 s and 3 s); H holds at most HARD_SOCKETS fds and
opens at most HARD_DIALS sockets (a refused one, RST by a cone-rst NAT, is
replaced by a new mapping: a new ticket); RLIMIT_NOFILE's soft limit is
raised for that when needed, up to FD_CAP; each side is done within
EXCHANGE_TIMEOUT + HARD_WINDOW (+ the upgrade) seconds; E answers at most
EASY_PER_MINUTE rounds a minute (:class:`EasyBudget`), as each one makes it
send SYNs to an IP the asker names. Only p2pshare peers speak this
protocol: others never see it (a peer without it makes ``open_stream``
fail, and H goes on with plain DCUtR, i.e. the relay). H tries plain
DCUtR's direct dial to the peer's public addresses first: a public peer
needs no probing.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from p2pshare.node.dcutr.budget import RoundBudget
from p2pshare.node.dcutr.wire import HolePunch, MsgType, WireError, encode
from p2pshare.node.natinfo.addrs import TcpAddr, decode_addrs, encode_addr, is_public_ip

__all__ = [
    "PROTOCOL_ID",
    "PORT_LOW",
    "PORT_HIGH",
    "EASY_PROBES",
    "HARD_SOCKETS",
    "HARD_DIALS",
    "HARD_WINDOW",
    "ROUNDS",
    "EXCHANGE_TIMEOUT",
    "BirthdayConfig",
    "Pacer",
    "match_probability",
    "pick_ports",
    "hard_connect",
    "easy_answer",
    "hard_target",
    "EasyPlan",
    "nofile_target",
    "EasyBudget",
    "sockets_allowed",
]

PROTOCOL_ID = "/p2pshare/birthday/1.0.0"
# Linux nf_nat picks a random port in 1024..65535 for a source port >= 1024
# (masquerade random,fully-random). Other NATs use other ranges; a smaller
# real range only raises the odds.
PORT_LOW = 1024
PORT_HIGH = 65535
EASY_PROBES = 1024  # sockets (one SYN each, + TCP's retransmits) the easy side holds, per round
HARD_SOCKETS = 512  # sockets (mappings) the hard side holds at once, per round
HARD_DIALS = 1024  # sockets the hard side may open per round (refused ones are replaced)
PROBE_BATCH = 128  # easy-side SYNs per tick: 2048 in 16 ticks ...
PROBE_TICK = 0.01  # ... of 10 ms (0.16 s; a burst, but bounded)
HARD_BATCH = 64  # hard-side sockets opened per tick
HARD_TICK = 0.01
HARD_WINDOW = 4.0  # s the hard side keeps dialing: covers TCP's SYN retransmits at 1 s and 3 s
ROUNDS = 2  # a lost round (p ≈ 3e-4 each) is retried once with new ports
EXCHANGE_TIMEOUT = 5.0  # s for the CONNECT/answer over the relay (includes E's probing)
EASY_PER_MINUTE = 4  # rounds we answer per minute, from all peers together ...
EASY_PER_PEER = 2  # ... and from one peer (its two rounds)
FD_HEADROOM = 256  # fds kept free for everything else when raising RLIMIT_NOFILE
FD_CAP = 8192  # never ask for a soft limit above this


@dataclass(frozen=True)
class BirthdayConfig:
    easy_probes: int = EASY_PROBES
    hard_sockets: int = HARD_SOCKETS
    hard_dials: int = HARD_DIALS
    hard_window: float = HARD_WINDOW
    rounds: int = ROUNDS
    exchange_timeout: float = EXCHANGE_TIMEOUT

    def __post_init__(self) -> None:
        space = PORT_HIGH - PORT_LOW + 1
        if not 1 <= self.easy_probes <= space or self.hard_sockets < 1 or self.rounds < 1:
            raise ValueError("easy_probes, hard_sockets and rounds must be at least 1 (probes within the port range)")
        if self.hard_dials < self.hard_sockets:
            raise ValueError("hard_dials must be at least hard_sockets")
        if self.hard_window <= 0 or self.exchange_timeout <= 0:
            raise ValueError("timeouts must be positive")

    def probability(self) -> float:
        return match_probability(self.easy_probes, self.hard_sockets)


def match_probability(probes: int, sockets: int, space: int = PORT_HIGH - PORT_LOW + 1) -> float:
    """Chance that at least one of ``sockets`` random mappings lands on one of
    ``probes`` distinct probed ports out of ``space``."""
    if probes <= 0 or sockets <= 0:
        return 0.0
    return 1.0 - (1.0 - min(probes, space) / space) ** sockets


def pick_ports(rng: random.Random, n: int) -> list[int]:
    """``n`` distinct ports of the NAT's random range, in random order."""
    return rng.sample(range(PORT_LOW, PORT_HIGH + 1), min(n, PORT_HIGH - PORT_LOW + 1))


class Pacer:
    """Spread ``total`` sends in batches of ``batch`` every ``tick`` seconds
    from ``start``: :meth:`due` says how many may go at ``now``."""

    def __init__(self, total: int, batch: int, tick: float, start: float) -> None:
        if total < 0 or batch < 1 or tick <= 0:
            raise ValueError("need total >= 0, batch >= 1, tick > 0")
        self.total, self.batch, self.tick, self.start = total, batch, tick, start
        self.sent = 0

    def due(self, now: float) -> int:
        ticks = int(max(0.0, now - self.start) / self.tick) + 1
        allowed = min(self.total, ticks * self.batch)
        n = max(0, allowed - self.sent)
        self.sent += n
        return n

    @property
    def done(self) -> bool:
        return self.sent >= self.total

    def next_at(self) -> float:
        """When the next batch is due (meaningless once done)."""
        return self.start + (self.sent // self.batch) * self.tick


def hard_connect(public_ip: str, port: int) -> bytes:
    """H's CONNECT: its public IP (the port is only there to make a valid multiaddr)."""
    if not is_public_ip(public_ip):
        raise ValueError(f"{public_ip} is not a public IP")
    return encode(HolePunch(MsgType.CONNECT, (encode_addr(f"/ip4/{public_ip}/tcp/{port}"),)))


@dataclass(frozen=True)
class EasyPlan:
    """What E does for one CONNECT: SYN ``ports`` of ``ip``, then send ``reply``."""

    ip: str
    ports: tuple[int, ...]
    reply: bytes


def easy_answer(msg: HolePunch, ours: Sequence[TcpAddr], rng: random.Random, cfg: BirthdayConfig) -> EasyPlan:
    """E's decision. ``ours``: our public mapping(s) of the listen port, given
    only when our mapping is endpoint-independent (observed, port kept). No
    mapping, or an H address that is not public: WireError (H then keeps the
    relay). The reply carries our public mapping."""
    if msg.type is not MsgType.CONNECT:
        raise WireError(f"expected CONNECT, got {msg.type.name}")
    theirs = [a for a in decode_addrs(msg.obs_addrs, limit=4) if a.version == 4 and a.public]
    if not theirs:
        raise WireError("birthday CONNECT without a public IPv4 address")
    mine = [a for a in ours if a.version == 4 and a.public]
    if not mine:
        raise WireError("our mapping is not known to be endpoint-independent")
    reply = encode(HolePunch(MsgType.CONNECT, (encode_addr(TcpAddr(mine[0].ip, mine[0].port).multiaddr()),)))
    return EasyPlan(theirs[0].ip, tuple(pick_ports(rng, cfg.easy_probes)), reply)


def hard_target(msg: HolePunch) -> TcpAddr:
    """H reads E's answer: the one public address to dial from every socket."""
    if msg.type is not MsgType.CONNECT:
        raise WireError(f"expected CONNECT, got {msg.type.name}")
    addrs = [a for a in decode_addrs(msg.obs_addrs, limit=4) if a.version == 4 and a.public]
    if not addrs:
        raise WireError("birthday answer without a public IPv4 address")
    return TcpAddr(addrs[0].ip, addrs[0].port)


def nofile_target(soft: int, hard: int, in_use: int, need: int) -> int | None:
    """The RLIMIT_NOFILE soft limit to set before opening ``need`` sockets
    with ``in_use`` fds open, or None when ``soft`` is enough. Bounded by the
    hard limit and :data:`FD_CAP`; the caller opens fewer sockets when even
    that is not enough (see :func:`sockets_allowed`)."""
    want = in_use + need + FD_HEADROOM
    if want <= soft:
        return None
    ceiling = min(FD_CAP, hard) if hard >= 0 else FD_CAP  # RLIM_INFINITY is -1
    target = min(want, ceiling)
    return target if target > soft else None


def sockets_allowed(soft: int, in_use: int, need: int) -> int:
    """How many of ``need`` sockets fit under ``soft`` with the headroom kept."""
    return max(0, min(need, soft - in_use - FD_HEADROOM))


class EasyBudget(RoundBudget):
    """How often we answer as the easy side. Why: one small CONNECT makes us
    send ~3000 SYNs (with retransmits) to an IP the asker chose, so a peer
    could aim us at a third party. Bounded to :data:`EASY_PER_MINUTE` rounds
    a minute in all and :data:`EASY_PER_PEER` per peer (what an honest
    symmetric peer needs); refused rounds cost nothing but a reset stream."""

    WINDOW = 60.0

    def __init__(self, per_minute: int = EASY_PER_MINUTE, per_peer: int = EASY_PER_PEER) -> None:
        super().__init__(per_minute, per_peer, self.WINDOW)
