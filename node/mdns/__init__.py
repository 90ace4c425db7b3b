"""Local discovery: libp2p's mDNS (``_p2p._udp.local``), so peers on one LAN
find each other with no bootstrap node and no internet.

:mod:`.wire` (DNS messages, bounded) and :mod:`.core` (what to ask, answer
and remember; takes ``now``) are pure and import neither trio nor libp2p;
:mod:`.service` is the trio side (import it from there).
"""
