"""Address changes of this machine's interfaces, as events (Linux route
netlink), so a long-lived node re-announces itself when it moves (a laptop
on another Wi-Fi, a renewed DHCP lease) instead of polling for it.

:mod:`.core` reads the kernel's datagrams (pure, bounded; no trio, no
sockets); :mod:`.service` is the trio side: one socket subscribed to the
IPv4 and IPv6 address groups, a callback per burst of changes.
"""
