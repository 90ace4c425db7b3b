"""NAT behaviour discovery: TCP mapping via STUN-over-TCP, and address facts.

Pure: ``addrs`` (public/private, TCP multiaddrs), ``stun`` (Binding codec on
aioice), ``classify`` (mapping behaviour, punching strategy). Trio adapter:
``_trio_stun`` (responder :func:`serve_stun_tcp`, prober :func:`probe_nat`).
"""

from p2pshare.node.natinfo.classify import Mapping, NatReport, Strategy, classify, strategy

__all__ = ["Mapping", "NatReport", "Strategy", "classify", "strategy"]
