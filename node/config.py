"""Where a node finds the network: flags, the config file, and defaults.

A fresh install with no flags bootstraps into the public libp2p (IPFS
Amino) DHT, so it can find peers worldwide with no server of ours.
``--bootstrap``, ``--relay`` and ``$P2PSHARE_HOME/config.toml`` add to that;
``--no-default-bootstrap``, ``default_bootstrap = false`` in the config file,
or ``P2PSHARE_NO_DEFAULT_BOOTSTRAP=1`` keep a closed group off the public DHT
(the test suites set the latter: tests never touch the internet).

config.toml::

    bootstrap = ["/ip4/203.0.113.7/tcp/4001/p2p/12D3KooW..."]
    relays = ["/ip4/203.0.113.7/tcp/4001/p2p/12D3KooW..."]
    default_bootstrap = false
    mdns = false          # no local discovery (same as --no-mdns)

Local discovery (mDNS) is on unless ``--no-mdns``, ``mdns = false`` or
``P2PSHARE_NO_MDNS=1`` turns it off.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from p2pshare.node.errors import LocalNodeError
from p2pshare.sharecode.multiaddrs import peer_addr_problem

ENV_HOME = "P2PSHARE_HOME"

CONFIG_FILE = "config.toml"
#: The keys config.toml may hold; any other is said (a misspelt key was ignored silently).
KNOWN_KEYS = ("bootstrap", "relays", "default_bootstrap", "mdns")
ENV_NO_DEFAULT = "P2PSHARE_NO_DEFAULT_BOOTSTRAP"
ENV_NO_MDNS = "P2PSHARE_NO_MDNS"


@dataclass(frozen=True)
class NetworkConfig:
    bootstrap: tuple[str, ...]
    relays: tuple[str, ...]
    peers_file: Path
    #: Local discovery (mDNS) on the LAN.
    mdns: bool = True
    #: One line per problem that does not stop the command (unknown keys).
    warnings: tuple[str, ...] = ()


def unknown_key_warnings(keys: list[str], path: Path) -> tuple[str, ...]:
    """A warning for each key we do not read, with the likely intended one."""
    out = []
    for key in keys:
        if key in KNOWN_KEYS:
            continue
        close = difflib.get_close_matches(key, KNOWN_KEYS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(KNOWN_KEYS)})"
        out.append(f"{path}: unknown key '{key}' is ignored{hint}")
    return tuple(out)


def _str_list(raw: object, key: str, path: Path) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw) or len(raw) > 64:
        raise LocalNodeError(f"{path}: '{key}' must be a list of at most 64 multiaddr strings")
    return tuple(raw)


def _check_peer_addrs(where: str, addrs: Sequence[str]) -> None:
    """Refuse a relay or bootstrap address that names no peer: one was
    dropped without a word (a bootstrap node) or failed later as an
    internal error (a relay, at the AutoNAT client that parses it)."""
    for addr in addrs:
        if (why := peer_addr_problem(addr)) is not None:
            raise LocalNodeError(f"{where} {addr[:200]!r}: {why}")


def load_network_config(
    home: Path,
    *,
    bootstrap: list[str] | None = None,
    relays: list[str] | None = None,
    no_default_bootstrap: bool = False,
    no_mdns: bool = False,
) -> NetworkConfig:
    """Merge flags, the config file and defaults (flags first)."""
    path = home / CONFIG_FILE
    file_cfg: dict[str, object] = {}
    if path.exists():
        try:
            file_cfg = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise LocalNodeError(f"cannot read {path}: {exc}") from None
    file_boot = _str_list(file_cfg.get("bootstrap"), "bootstrap", path)
    file_relays = _str_list(file_cfg.get("relays"), "relays", path)
    use_default = file_cfg.get("default_bootstrap", True)
    if not isinstance(use_default, bool):
        raise LocalNodeError(f"{path}: 'default_bootstrap' must be true or false")
    if no_default_bootstrap or os.environ.get(ENV_NO_DEFAULT, "") not in ("", "0"):
        use_default = False
    use_mdns = file_cfg.get("mdns", True)
    if not isinstance(use_mdns, bool):
        raise LocalNodeError(f"{path}: 'mdns' must be true or false")
    if no_mdns or os.environ.get(ENV_NO_MDNS, "") not in ("", "0"):
        use_mdns = False
    _check_peer_addrs("--relay", relays or ())
    _check_peer_addrs("--bootstrap", bootstrap or ())
    _check_peer_addrs(f"{path}: relays", file_relays)
    _check_peer_addrs(f"{path}: bootstrap", file_boot)
    all_relays = tuple(dict.fromkeys([*(relays or []), *file_relays]))
    boot: list[str] = [*(bootstrap or []), *file_boot, *all_relays]  # relay nodes are DHT servers too
    if use_default:
        from p2pshare.node.discovery import DEFAULT_BOOTSTRAP

        boot.extend(DEFAULT_BOOTSTRAP)
    return NetworkConfig(
        bootstrap=tuple(dict.fromkeys(boot)),
        relays=all_relays,
        peers_file=home / "dht-peers.json",
        mdns=use_mdns,
        warnings=unknown_key_warnings(list(file_cfg), path),
    )


def data_home() -> Path:
    """Where identities, share records, the peers file and config.toml live
    (``$P2PSHARE_HOME`` or the platform's user data directory)."""
    env = os.environ.get(ENV_HOME)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("p2pshare"))
