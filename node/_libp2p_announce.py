"""What we announce to peers: addresses that can work for them (issue 10).

Replacement functions for py-libp2p 0.8.1, registered and fingerprinted in
``_libp2p_patches.PATCHES`` like those in ``_libp2p_fixes``:

* ``identify._mk_identify_protobuf`` (and identify push): only the
  addresses that can help the peer being answered;
* ``BasicHost.get_addrs``: circuit addresses announced as circuit addresses;
* ``identify._prefer_circuit_addr``: no IP-less observed address over a relay.
"""

from __future__ import annotations

from typing import Any

import multiaddr

from p2pshare.sharecode.multiaddrs import IpClass, ip_class, ip_text

from ._libp2p_originals import ORIGINALS as _ORIGINALS

__all__ = ["identify_scoped_addrs", "addrs_keeping_circuits", "observed_addr_on_relay"]


def _addr_fits(raw: bytes, peer_class: IpClass | None) -> bool:
    """Whether our address ``raw`` can help a peer whose address is of ``peer_class``."""
    try:
        text = str(multiaddr.Multiaddr(raw))
    except Exception:  # noqa: BLE001 - not ours to judge: keep it
        return True
    ip = ip_text(text)
    if ip is None:
        return True  # DNS names, circuits
    ours = ip_class(ip)
    if ours is IpClass.LOOPBACK:
        return peer_class is IpClass.LOOPBACK
    if ours is IpClass.LINK_LOCAL:
        return peer_class is IpClass.LINK_LOCAL
    if ours is IpClass.PRIVATE:
        return peer_class is not IpClass.PUBLIC
    return True


def identify_scoped_addrs(host: Any, observed_multiaddr: Any) -> Any:
    """``identify._mk_identify_protobuf`` that lists only addresses that can help this peer (issue 10).

    Upstream announces every address to everyone: a peer on another host
    learnt our ``127.0.0.1`` and dialled it (its own loopback), and public
    peers (go/js DHT servers) stored our private LAN addresses and handed
    them out. Loopback goes only to a peer on loopback, link-local only to
    a link-local peer, private addresses not to a peer seen at a public one;
    over a relay (no observed address) private addresses stay, since the
    peer may share our LAN.
    """
    msg = _ORIGINALS["identify_scoped_addrs"](host, observed_multiaddr)
    peer_class = None
    if observed_multiaddr is not None:
        ip = ip_text(str(observed_multiaddr))
        peer_class = ip_class(ip) if ip is not None else None
    keep = [a for a in msg.listen_addrs if _addr_fits(a, peer_class)]
    if len(keep) != len(msg.listen_addrs):
        del msg.listen_addrs[:]
        msg.listen_addrs.extend(keep)
    return msg


def addrs_keeping_circuits(self: Any) -> list[multiaddr.Multiaddr]:
    """``BasicHost.get_addrs`` that announces a circuit address as one (issue 10).

    Upstream's candidates and factory, then ``/p2p/<us>`` on every address:
    a direct one loses any ``/p2p/`` it had (upstream does the same), a
    circuit one keeps its relay's and gains ours after ``/p2p-circuit``; a
    circuit address naming another target is not ours and is dropped."""
    own = f"/p2p/{self.get_id()!s}"
    candidates = list(self.get_transport_addrs())
    if self._observed_addr_manager is not None:
        seen = {str(a) for a in candidates}
        for obs in self._observed_addr_manager.addrs():
            if str(obs) not in seen:
                seen.add(str(obs))
                candidates.append(obs)
    addrs = list(self._addrs_factory(candidates)) if self._addrs_factory is not None else candidates
    out: list[multiaddr.Multiaddr] = []
    for addr in addrs:
        text = str(addr)
        if "/p2p-circuit" in text:
            tail = text.split("/p2p-circuit", 1)[1]
            if tail in ("", "/"):
                out.append(multiaddr.Multiaddr(text.rstrip("/") + own))
            elif tail == own:
                out.append(addr)
            continue
        base = text.split("/p2p/", 1)[0]
        out.append(multiaddr.Multiaddr(base + own))
    return out


def observed_addr_on_relay(host: Any, peer_id: Any, fallback: Any) -> Any:
    """Identify: report no observed address on a relayed connection.

    Upstream reports ``/p2p/<relay>/p2p-circuit/p2p/<peer>`` there: no IP,
    so js-libp2p throws on it and abandons identify (it then never learns
    our protocols and never starts DCUtR or AutoNAT with us). The spec's
    observedAddr is the transport address the peer was seen at; over a
    relay there is none to report, and the field is optional. ``fallback``
    is what upstream reports for a direct connection (None when relayed).
    """
    return fallback
