"""NAT profiles: what each router namespace does, as nftables rulesets.

A router's upstream interface is always called ``wan`` and its LAN bridge
``lan``, so one ruleset text fits every router of a profile.
"""

from __future__ import annotations

# Router behaviours (one router namespace each).
ROUTER_PROFILES = ("public", "firewall", "cone", "cone-rst", "symmetric")
# Per-side profiles usable for a sharer or a receiver; ``double`` is a cone
# home router behind a carrier cone NAT.
SIDE_PROFILES = ROUTER_PROFILES + ("double",)
# ``same-lan`` is a scenario (both peers behind one cone NAT), not a side.
SAME_LAN = "same-lan"
ALL_PROFILES = SIDE_PROFILES + (SAME_LAN,)
NAT_PROFILES = ("cone", "cone-rst", "symmetric")

DESCRIPTIONS = {
    "public": "no NAT, no firewall: the host has a public address",
    "firewall": "no NAT, stateful firewall dropping unsolicited inbound",
    "cone": "port-preserving masquerade, unsolicited inbound silently dropped",
    "cone-rst": "port-preserving masquerade, unsolicited TCP gets RST, UDP gets ICMP",
    "symmetric": "masquerade random,fully-random, unsolicited inbound dropped",
    "double": "cone home router behind a carrier cone NAT (100.64.0.0/10)",
    "same-lan": "sharer and receiver behind the same cone NAT",
}

_FILTER = """
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" drop
  }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" drop
  }
"""

_NAT = """
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade%s
  }
"""


def ruleset(profile: str) -> str | None:
    """The nft ruleset for a router of ``profile``; None when it needs none."""
    if profile == "public":
        return None
    if profile == "firewall":
        body = _FILTER
    elif profile == "cone":
        body = _NAT % "" + _FILTER
    elif profile == "cone-rst":
        # Plain Linux: the router itself answers RST / ICMP port unreachable.
        body = _NAT % ""
    elif profile == "symmetric":
        body = _NAT % " random,fully-random" + _FILTER
    else:
        raise ValueError(f"unknown router profile {profile!r}")
    return "table ip natlab {" + body + "}\n"


def parse_profiles(text: str, allowed: tuple[str, ...] = ALL_PROFILES) -> list[str]:
    """Parse a comma-separated profile list; ValueError names the bad one."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise ValueError("empty profile list")
    for name in names:
        if name not in allowed:
            raise ValueError(f"unknown profile {name!r} (known: {', '.join(allowed)})")
    return list(dict.fromkeys(names))
