"""The relay node program (``p2pshare relay``): composes the circuit relay hop
service, the DHT server, AutoNAT and STUN from ``p2pshare.node``."""
