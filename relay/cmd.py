"""``p2pshare relay``: run a circuit relay v2 node until SIGINT/SIGTERM.

The first stdout line is ``<peer_id> <addr>...`` (full multiaddrs with
``/p2p/<id>``), or with ``--json`` one ``{"event":"relay",...}`` object, so
scripts can read the relay's address before anything else. Services start
with ``nursery.start`` in :func:`_serve`; the DHT and AutoNAT servers are
added there the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from p2pshare.node import _gc
from p2pshare.node._output import Reporter
from p2pshare.node.errors import LocalNodeError
from p2pshare.node.identity import identity_file_arg
from p2pshare.node.stop_signals import stop_signals
from p2pshare.relay.stats import DEFAULT_EVERY as DEFAULT_STATS_EVERY
from p2pshare.relay.stats import Snapshot, limits_summary, stop_summary
from p2pshare.relay.stats import fields as stats_fields
from p2pshare.relay.stats import summary as stats_summary

if TYPE_CHECKING:
    from p2pshare.node.circuit.hop import RelayServer
    from p2pshare.node.circuit.limits import RelayLimits

__all__ = ["RelayOptions", "add_relay_parser", "run_relay", "parse_size", "limits_from_args"]

DEFAULT_LISTEN = "/ip4/0.0.0.0/tcp/4001"
RELAY_IDENTITY_FILE = "relay-identity.key"
RELAY_EXAMPLES = """examples:
  p2pshare relay                                 # on 0.0.0.0, TCP 4001; peer ID and addresses first
  p2pshare relay --announce /ip4/203.0.113.7/tcp/4001   # behind a port forward: the public address
  p2pshare relay --stats-every 60                # a summary line each minute
  p2pshare share FILE --relay <the relay's /ip4/.../p2p/... line>   # then use it
exit codes: 0 stopped by Ctrl-C or SIGTERM, 1 internal error, 2 bad input"""

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(text: str) -> int:
    """``"0"``, ``"131072"``, ``"128KiB"``, ``"1G"`` (binary units) → bytes."""
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 0, 131072, 128KiB, 1GiB)")
    value = int(m.group(1)) << (10 * _UNITS[m.group(2).lower()])
    if value >= 1 << 64:
        raise argparse.ArgumentTypeError(f"size too large: {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of seconds: {text!r}") from None
    if not 0 <= value < 1 << 32:
        raise argparse.ArgumentTypeError("must be between 0 and 4294967295")
    return value


def _positive_seconds(text: str) -> int:
    value = _seconds(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _ip(text: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text[:100]!r}") from None


def _announce_addr(text: str) -> str:
    """A public TCP address to hand out: it was printed (and served) as given."""
    from p2pshare.sharecode.multiaddrs import is_dialable_tcp

    if not is_dialable_tcp(text.rstrip("/")):
        raise argparse.ArgumentTypeError(
            f"not a TCP address clients can dial: {text[:100]!r} (e.g. /ip4/203.0.113.7/tcp/4001 or /dns4/relay.example/tcp/4001)"
        )
    return text.rstrip("/")


def stun_ip_for(listen: tuple[str, ...]) -> str:
    """Where the STUN responder listens by default: on the one IPv4 address
    the relay was told to listen on (a relay kept on loopback opened the
    STUN ports on every interface), else on all of them."""
    ips = {parts[2] for a in listen if len(parts := a.split("/")) > 2 and parts[1] == "ip4"}
    return ips.pop() if len(ips) == 1 else "0.0.0.0"


def add_relay_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``relay`` command to the CLI's subparsers."""
    from p2pshare.node.circuit.limits import RelayLimits

    d = RelayLimits()
    r: argparse.ArgumentParser = subparsers.add_parser(
        "relay",
        help="run a circuit relay v2 node; prints its peer ID and addresses first",
        description="Relay connections for peers that cannot reach each other directly, until\n"
        "Ctrl-C. It also answers AutoNAT and STUN probes and serves the DHT, so a relay\n"
        "on a public address is all a group of NATed peers needs. Limits of 0 for\n"
        "--circuit-duration/--circuit-data/--circuit-idle mean unlimited.",
        epilog=RELAY_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument(
        "--listen", action="append", metavar="MULTIADDR", help=f"listen address (repeatable; default {DEFAULT_LISTEN})"
    )
    r.add_argument(
        "--announce",
        action="append",
        type=_announce_addr,
        metavar="MULTIADDR",
        help="public address given to clients (repeatable; default: the listen addresses)",
    )
    r.add_argument(
        "--identity",
        type=identity_file_arg,
        metavar="FILE",
        help=f"identity key file (default <data dir>/{RELAY_IDENTITY_FILE})",
    )
    r.add_argument("--json", action="store_true", help="JSON lines on stdout")
    r.add_argument(
        "--bootstrap", action="append", default=[], metavar="MULTIADDR", help="other DHT nodes to join (repeatable)"
    )
    r.add_argument("--no-default-bootstrap", action="store_true", help="do not join the public libp2p DHT")
    r.add_argument(
        "--stun-ip",
        type=_ip,
        metavar="IP",
        help="address of the STUN-over-TCP responder (ports 3478, 3479) clients use to "
        "learn their NAT mapping (default: the IPv4 address of --listen when it names one, else 0.0.0.0)",
    )
    r.add_argument(
        "--stats-every",
        type=_seconds,
        default=DEFAULT_STATS_EVERY,
        metavar="SECONDS",
        help=f"print what the relay granted, refused and carried this often (default {DEFAULT_STATS_EVERY}; 0: never)",
    )
    r.add_argument(
        "--autonat-dial-private",
        action="store_true",
        help="also dial back AutoNAT requesters seen from private addresses (LAN-only tests)",
    )
    g = r.add_argument_group("limits")
    g.add_argument(
        "--max-reservations",
        type=_count,
        default=d.max_reservations,
        metavar="N",
        help=f"reservations held at once (default {d.max_reservations})",
    )
    g.add_argument(
        "--max-reservations-per-peer",
        type=_count,
        default=d.max_reservations_per_peer,
        metavar="N",
        help=f"reservations per peer ID (default {d.max_reservations_per_peer})",
    )
    g.add_argument(
        "--max-reservations-per-ip",
        type=_count,
        default=d.max_reservations_per_ip,
        metavar="N",
        help=f"reservations per IP address, an IPv6 /64 counting as one (default {d.max_reservations_per_ip})",
    )
    g.add_argument(
        "--reservation-ttl",
        type=_positive_seconds,
        default=d.reservation_ttl,
        metavar="SECONDS",
        help=f"reservation lifetime before refresh (default {d.reservation_ttl})",
    )
    g.add_argument(
        "--max-circuits-per-reservation",
        type=_count,
        default=d.max_circuits_per_reservation,
        metavar="N",
        help=f"open circuits to one reserved peer (default {d.max_circuits_per_reservation})",
    )
    g.add_argument(
        "--max-circuits",
        type=_count,
        default=d.max_circuits,
        metavar="N",
        help=f"open circuits in total (default {d.max_circuits})",
    )
    g.add_argument(
        "--max-circuits-per-peer",
        type=_count,
        default=d.max_circuits_per_peer,
        metavar="N",
        help=f"open circuits from one source peer ID (default {d.max_circuits_per_peer})",
    )
    g.add_argument(
        "--max-circuits-per-ip",
        type=_count,
        default=d.max_circuits_per_ip,
        metavar="N",
        help=f"open circuits from one source IP address, an IPv6 /64 counting as one (default {d.max_circuits_per_ip})",
    )
    g.add_argument(
        "--circuit-duration",
        type=_seconds,
        default=d.circuit_duration,
        metavar="SECONDS",
        help="longest life of one circuit; 0 = unlimited (default 0)",
    )
    g.add_argument(
        "--circuit-data",
        type=parse_size,
        default=d.circuit_data,
        metavar="BYTES",
        help="bytes per direction per circuit, e.g. 128KiB; 0 = unlimited (default 0)",
    )
    g.add_argument(
        "--circuit-idle",
        type=_seconds,
        default=d.circuit_idle,
        metavar="SECONDS",
        help=f"end a circuit that carried no byte for this long; 0 = never (default {d.circuit_idle})",
    )
    g.add_argument(
        "--circuit-rate",
        type=parse_size,
        default=d.circuit_rate,
        metavar="BYTES",
        help="bytes per second per direction of one circuit, e.g. 10MiB; 0 = unlimited (default 0)",
    )
    g.add_argument(
        "--total-rate",
        type=parse_size,
        default=d.total_rate,
        metavar="BYTES",
        help="bytes per second over all circuits, e.g. 50MiB; 0 = unlimited (default 0)",
    )
    return r


def limits_from_args(args: argparse.Namespace) -> RelayLimits:
    """The relay's limits from the flags; bad combinations are bad input."""
    from p2pshare.node.circuit.limits import RelayLimits

    try:
        return RelayLimits(
            max_reservations=args.max_reservations,
            max_reservations_per_peer=args.max_reservations_per_peer,
            max_reservations_per_ip=args.max_reservations_per_ip,
            reservation_ttl=args.reservation_ttl,
            max_circuits_per_reservation=args.max_circuits_per_reservation,
            max_circuits=args.max_circuits,
            max_circuits_per_peer=args.max_circuits_per_peer,
            max_circuits_per_ip=args.max_circuits_per_ip,
            circuit_duration=args.circuit_duration,
            circuit_data=args.circuit_data,
            circuit_idle=args.circuit_idle,
            circuit_rate=args.circuit_rate,
            total_rate=args.total_rate,
        )
    except ValueError as e:
        raise LocalNodeError(str(e)) from None


@dataclass(frozen=True)
class RelayOptions:
    """What ``p2pshare relay`` was asked to do."""

    limits: RelayLimits
    listen: tuple[str, ...] = ()
    announce: tuple[str, ...] | None = None
    identity: Path | None = None
    json: bool = False
    bootstrap: tuple[str, ...] = ()
    no_default_bootstrap: bool = False
    stun_ip: str | None = None  # None: the listen addresses' one IPv4 address, else 0.0.0.0
    autonat_dial_private: bool = False
    stats_every: int = DEFAULT_STATS_EVERY

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> RelayOptions:
        """Read what :func:`add_relay_parser` defined: its ``dest`` names live here only."""
        return cls(
            limits=limits_from_args(ns),
            listen=tuple(ns.listen or ()),
            announce=tuple(ns.announce) if ns.announce else None,
            identity=ns.identity,
            json=ns.json,
            bootstrap=tuple(ns.bootstrap),
            no_default_bootstrap=ns.no_default_bootstrap,
            stun_ip=ns.stun_ip,
            autonat_dial_private=ns.autonat_dial_private,
            stats_every=ns.stats_every,
        )


def run_relay(opts: RelayOptions, reporter: Reporter) -> int:
    """Entry point for ``p2pshare relay`` (after argument parsing)."""
    return trio.run(_serve, opts, reporter)


async def _serve(opts: RelayOptions, reporter: Reporter) -> int:
    from p2pshare.node._memory import trim_forever
    from p2pshare.node.autonat._trio_server import serve_autonat_server
    from p2pshare.node.autonat.server import ServerConfig
    from p2pshare.node.circuit.hop import serve_relay
    from p2pshare.node.community import advertise_community_relay
    from p2pshare.node.config import data_home, load_network_config
    from p2pshare.node.discovery import open_discovery
    from p2pshare.node.host import open_host
    from p2pshare.node.identity import hold_identity
    from p2pshare.node.natinfo._trio_stun import DEFAULT_PORTS as DEFAULT_STUN_PORTS
    from p2pshare.node.natinfo._trio_stun import serve_stun_tcp

    identity = opts.identity or data_home() / RELAY_IDENTITY_FILE
    # A bad --bootstrap or config file is a usage error before anything listens or is made.
    net = load_network_config(
        data_home(), bootstrap=list(opts.bootstrap), no_default_bootstrap=opts.no_default_bootstrap
    )
    # Held while the relay runs: a relay's identity is its address, so a
    # second relay with it is refused (IdentityBusyError, exit 2), not spilled.
    held = hold_identity([identity])  # an IdentityError is bad input (exit 2)
    key_pair = held.key_pair
    listen = list(opts.listen or [DEFAULT_LISTEN])
    with stop_signals() as signals:
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(held.release)
            try:
                host = await stack.enter_async_context(open_host(key_pair, listen))
            except OSError as e:  # ListenError is an OSError
                raise LocalNodeError(str(e)) from None
            _gc.settle()  # start-up is over: freeze what it built (node/_gc.py)
            async with trio.open_nursery() as nursery:
                relay = await nursery.start(
                    partial(
                        serve_relay,
                        host,
                        opts.limits,
                        private_key=key_pair.private_key,
                        announce=opts.announce,
                    )
                )
                started = _snapshot(relay), trio.current_time()
                # A relay is public by definition: it answers AutoNAT dial-back
                # requests and STUN-over-TCP mapping probes for its clients...
                await nursery.start(serve_autonat_server, host, ServerConfig(dial_private=opts.autonat_dial_private))
                stun_ip = opts.stun_ip or stun_ip_for(opts.listen or (DEFAULT_LISTEN,))
                try:
                    stun_ports = await nursery.start(serve_stun_tcp, stun_ip, DEFAULT_STUN_PORTS)
                    reporter.say(f"STUN (TCP) on {stun_ip} ports {stun_ports}")
                except OSError as e:
                    logging.getLogger(__name__).warning(
                        "no STUN responder on %s TCP ports %s (%s; another relay on this host?); "
                        "clients learn their mapping from identify only",
                        stun_ip,
                        " and ".join(map(str, DEFAULT_STUN_PORTS)),
                        e.strerror or e,
                    )
                # ... and doubles as a DHT server (bootstrap node).
                async with open_discovery(
                    host,
                    bootstrap=list(net.bootstrap),
                    peers_file=net.peers_file,
                    server_mode=True,
                    addrs=relay.addrs,
                ) as discovery:
                    # Where NATed nodes' AutoRelay looks for relays that carry data.
                    nursery.start_soon(advertise_community_relay, discovery)
                    nursery.start_soon(trim_forever)  # give freed heap back (see node/_memory.py)
                    if opts.stats_every:
                        nursery.start_soon(_report_stats, relay, reporter, opts.stats_every)
                    addrs = relay.addrs()
                    reporter.event("relay", peer_id=host.peer_id, addrs=addrs, limits=dataclasses.asdict(opts.limits))
                    reporter.result(" ".join([host.peer_id, *addrs]))
                    reporter.say(f"Relay {host.peer_id} serving; Ctrl-C stops it.")
                    reporter.say(limits_summary(opts.limits))
                    _say_how_to_use(reporter, addrs, announced=bool(opts.announce))
                    for warning in net.warnings:  # unknown config keys, as node and share say them
                        reporter.warning(warning)
                    await signals.received(1)
                cut = relay.book.circuit_count
                nursery.cancel_scope.cancel()
            # Once the circuits the stop cut have ended: their bytes count too.
            now = dataclasses.replace(_snapshot(relay), circuits_now=cut)
            final = (started[0], now, trio.current_time() - started[1])
    reporter.event("stopped", **stats_fields(*final))
    reporter.say(stop_summary(*final))
    return 0


def _say_how_to_use(reporter: Reporter, addrs: Sequence[str], *, announced: bool) -> None:
    """The address to hand out, ready to paste, and a warning when none is
    public: a relay on a private or loopback address serves only its own
    network, which an operator could not tell from the lines above (a
    usability review found nothing said it)."""
    from p2pshare.sharecode.multiaddrs import address_to_give

    best, public = address_to_give(addrs)
    if best:
        reporter.say(f"Clients use it with: --relay {best}")
    if not public:
        reporter.warning(
            "no address of this relay is public, so only peers on its own network can use it"
            + ("" if announced else "; behind a forwarded port, name the public address with --announce")
        )


def _snapshot(relay: RelayServer) -> Snapshot:
    totals = dataclasses.replace(relay.stats)  # a copy: the hop service keeps counting
    return Snapshot(totals, reservations_now=len(relay.book), circuits_now=relay.book.circuit_count)


async def _report_stats(relay: RelayServer, reporter: Reporter, every: int) -> None:
    """One summary line every ``every`` seconds (``relay/stats.py``)."""
    before, since = _snapshot(relay), trio.current_time()
    while True:
        await trio.sleep_until(since + every)
        now, at = _snapshot(relay), trio.current_time()
        reporter.event("relay_stats", **stats_fields(before, now, at - since))
        reporter.say(stats_summary(before, now, at - since))
        before, since = now, at
