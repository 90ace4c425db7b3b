"""Every patch to py-libp2p 0.8.1 internals: one registry, one ``apply``.

The replacement functions live in ``_libp2p_speed``, ``_libp2p_noise_rx``
and ``_libp2p_yamux_rx`` (the Noise + yamux stream path), ``_libp2p_close``
(closing without fixed sleeps), ``_libp2p_fixes`` (robustness), ``_libp2p_rcmgr`` (the
resource manager's hooks) and ``_libp2p_announce`` (what we announce); this
module fingerprints, applies and records them, and holds the patches to
single objects (``INSTANCE_PATCHES``). Speed patches: every patch keeps the wire format byte-for-byte compatible (other
implementations see ordinary Noise messages and yamux frames) and keeps
yamux flow control: data is only sent against window credit, and credit is
only granted for data the application has consumed.

Measured on loopback (scripts/bench_stream), stock py-libp2p spends its time
on per-message overhead, not on crypto: ~6 socket reads and ~8 copies per
Noise message, a WINDOW_UPDATE frame (an extra Noise message each way) after
every application read, and a writer that polls every 10 ms once the send
window is empty.

Each patch below names the upstream function it replaces and why. The
upstream source of every replaced function is fingerprinted (SHA-256 of its
source): if py-libp2p changes, that patch is skipped with a warning (stock
behaviour is kept) and ``tests/node/test_libp2p_patches.py`` fails.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from libp2p.host import basic_host as basic_host_mod
from libp2p.host.basic_host import BasicHost
from libp2p.identity.identify import identify as identify_mod
from libp2p.identity.identify_push import identify_push as identify_push_mod
from libp2p.io.trio import TrioTCPStream
from libp2p.kad_dht import kad_dht as kad_dht_mod
from libp2p.kad_dht.kad_dht import KadDHT
from libp2p.kad_dht.provider_store import ProviderStore
from libp2p.network.connection.swarm_connection import SwarmConn
from libp2p.network.stream.net_stream import NetStream
from libp2p.network.swarm import Swarm
from libp2p.peer.peerstore import PeerStore
from libp2p.protocol_muxer.multiselect_client import MultiselectClient
from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator
from libp2p.security import secure_session
from libp2p.security.noise import io as noise_io
from libp2p.stream_muxer.yamux import yamux
from noise import state as noise_state  # type: ignore[import-untyped]
from noise.backends.default.ciphers import ChaCha20Cipher, CryptographyCipher  # type: ignore[import-untyped]
from noise.connection import NoiseConnection  # type: ignore[import-untyped]

from . import _libp2p_announce as _announce
from . import _libp2p_close as _close
from . import _libp2p_fingerprint as _fingerprint
from . import _libp2p_fixes as _fixes
from . import _libp2p_identify as _identify
from . import _libp2p_kad_streams as _kad_streams
from . import _libp2p_originals as _originals
from . import _libp2p_rcmgr as _rcmgr
from . import _libp2p_tcp_timeout as _tcp_timeout
from ._libp2p_instance_patches import (  # re-exported: the façade calls them from here
    INSTANCE_PATCHES,
    changed_instance_upstream,
    kad_servers_only,
    no_dial_retries,
    no_disconnect_records,
)
from ._libp2p_noise_rx import _noise_read_msg
from ._libp2p_originals import ORIGINALS as _ORIGINALS
from ._libp2p_speed import (  # the replacements this table registers
    FRAME_PAYLOAD,
    RECV_WINDOW,
    _get_closed,
    _get_send_window,
    _noise_write_msg,
    _select_one_of,
    _session_read,
    _set_closed,
    _set_send_window,
    _window_update,
    _yamux_write,
)
from ._libp2p_yamux_rx import next_frame_header, read_data_body

__all__ = ["apply", "is_applied", "write_piece", "PATCHES", "INSTANCE_PATCHES", "changed_upstream"]
__all__ += ["RECV_WINDOW", "no_dial_retries", "kad_servers_only", "no_disconnect_records", "changed_instance_upstream"]

logger = logging.getLogger(__name__)


# Upstream's ``update_peerstore_from_identify`` (libp2p/identity/update.py),
# bound by name in two modules.
_UPDATE_FROM_IDENTIFY = "aee0031d9166bd174396e5e85c8a6cd410755c5ce33e2dfc87a303c1f1582d00"

# name -> (owner, attribute, replacement, sha256 of the upstream source)
PATCHES: dict[str, tuple[Any, str, Any, str]] = {
    # Robustness (``_libp2p_fixes``): the inbound slot is given back when the
    # connection closes, not when the swarm stops (issue 9, finding 1).
    "swarm_inbound_slot": (
        Swarm,
        "_do_handle_inbound_connection",
        _fixes.inbound_until_closed,
        "c22fdfd5289f671c6ca1d2141200153d74bd1b81c873259215d3f2f5b91bc782",
    ),
    # Inbound KAD streams: no answer to ADD_PROVIDER (the spec defines none; go
    # read the next answer late, issue 10); requests of at most 64 KiB, an
    # idle deadline and a per-peer cap on streams (issue 9).
    # Inbound KAD streams are admitted by our table (node/rcmgr/kad_streams.py),
    # not by upstream's limiter of 12 (a hostile-peer review, stop 43).
    "kad_handle_stream": (
        KadDHT,
        "handle_stream",
        _kad_streams.kad_handle_stream,
        "e3870244e45195576713faa7e077f15224bb3d5a951f350a738a62b676bd3b34",
    ),
    "kad_inbound_stream": (
        KadDHT,
        "_do_handle_stream",
        _kad_streams.kad_inbound_stream,
        "5bbaed4d3cdf488c3c63e54f8434bd2de8c0b5050b800cc94ee623fc8e0c63b4",
    ),
    # Bounded provider records: addresses, keys per provider, records and bytes in all,
    # counted in O(1) (issue 9, finding 4).
    "kad_provider_bounds": (
        ProviderStore,
        "add_provider",
        _fixes.bounded_add_provider,
        "989cf22708d6789fdd8e9dfef308d055206c8f5c4fdc17f8fbb9d6e7d356ed8d",
    ),
    # Resource manager (``_libp2p_rcmgr``, issue 9): inbound streams are
    # counted and refused over a limit before negotiation ...
    "host_inbound_stream_scopes": (
        BasicHost,
        "_swarm_stream_handler",
        _rcmgr.handle_inbound_stream,
        "cec985884b1ba2699de5bf4cf6ba8f4e85b6338279777c812068a176c10bc4cd",
    ),
    # ... and yamux data beyond the granted window closes the connection.
    "yamux_flow_control": (
        yamux.Yamux,
        "__init__",
        _rcmgr.yamux_init_bounded,
        "3b11a2a71ca444ca7b621d7deac2caa2254260af54e2cac958ce275cafbeb691",
    ),
    # Identify lists only addresses that can help the peer it answers (issue 10).
    "identify_scoped_addrs": (
        identify_mod,
        "_mk_identify_protobuf",
        _announce.identify_scoped_addrs,
        "5361becff806511c71d9b3b0a2c3ed5b74789f1ff35ee6daeeca9d735ea06e03",
    ),
    "identify_push_scoped_addrs": (
        identify_push_mod,
        "_mk_identify_protobuf",
        _announce.identify_scoped_addrs,
        "5361becff806511c71d9b3b0a2c3ed5b74789f1ff35ee6daeeca9d735ea06e03",
    ),
    # What a peer's identify answer or push can make us keep: bounded names,
    # addresses and record; a message over 64 KiB is ignored (``_libp2p_identify``).
    # Once stored, it is told to ``Host.identify_events`` (DCUtR waits on it).
    "identify_bounds": (
        basic_host_mod,
        "update_peerstore_from_identify",
        _identify.make_bounded_update(lambda: _ORIGINALS["identify_bounds"]),
        _UPDATE_FROM_IDENTIFY,
    ),
    "identify_push_bounds": (
        identify_push_mod,
        "update_peerstore_from_identify",
        _identify.make_bounded_update(lambda: _ORIGINALS["identify_push_bounds"]),
        _UPDATE_FROM_IDENTIFY,
    ),
    # Signed peer records in KAD requests go to the peerstore, every address
    # (deduplicated in O(n^2)): at most 4 KiB and 16 addresses (issue 9).
    "kad_signed_record_bounds": (
        kad_dht_mod,
        "maybe_consume_signed_record",
        _fixes.bounded_signed_record,
        "fccef20585107b27303258cb016aed8faa54b611203c8c00e47fc377e9fecaba",
    ),
    # A stream we reset drops the peer's unread data now, not after 60 s (issue 9).
    "yamux_reset_drops_buffer": (
        yamux.YamuxStream,
        "reset",
        _fixes.reset_dropping_buffer,
        "8e40f901761d3ac07412b848763afb59e0f87f0ef8bc2a7b9f62508e0dbedced",
    ),
    # Our own peerstore entry (our keys) is never evicted past max_peers (issue 9, the soak).
    "peerstore_keeps_self": (
        PeerStore,
        "_enforce_peer_limit",
        _fixes.peer_limit_keeps_self,
        "9f1adf0db61b34b26424018e0f3dbfcfdedd76989e4915cd629bb37be24c707f",
    ),
    # Circuit addresses announced as circuit addresses, not as the relay's
    # own address under our ID (issue 10).
    "host_addrs_keep_circuits": (
        BasicHost,
        "get_addrs",
        _announce.addrs_keeping_circuits,
        "9d79f88eb0d4824b5afc8df259d18ba847a7cdbe92673d34c22a783ab96e03df",
    ),
    "identify_observed_addr": (
        identify_mod,
        "_prefer_circuit_addr",
        _announce.observed_addr_on_relay,
        "cd2e84381c98376a1ebf9526285f22087a764ff1377a1634a686e5fb99d2b2b9",
    ),
    # A protocol name that is not UTF-8 is refused, not a crash of the host (issue 10).
    "mss_read_text": (
        MultiselectCommunicator,
        "read",
        _fixes.mss_read_text,
        "c99c62a961c702235aa9864b29b7c45402f6be4ca35267ed0b33ba4e23b6abbd",
    ),
    # One round trip per multistream negotiation, not two; none when one protocol is offered (lazy, issue 10).
    "mss_pipelined": (
        MultiselectClient,
        "select_one_of",
        _select_one_of,
        "a0dda8ab1ebd1006e3c94037fd9cda092a5586a880087942612a93fc02d8abad",
    ),
    "noise_read_msg": (
        noise_io.NoiseTransportReadWriter,
        "read_msg",
        _noise_read_msg,
        "b2fa218c135c82c09e8741282b92839f70c7275c05a78f23bfa30c7bd67ddf85",
    ),
    "noise_write_msg": (
        noise_io.NoiseTransportReadWriter,
        "write_msg",
        _noise_write_msg,
        "00818920318f86aa35a975a694953d4afb06267afe15922ee8447c6f10875330",
    ),
    "session_read": (
        secure_session.SecureSession,
        "read",
        _session_read,
        "eeba14a89cf12325917fe19497a1bfc3c7c04b377947255a62bacbe854d65338",
    ),
    "yamux_read_exactly": (
        yamux,
        "read_exactly",
        next_frame_header,
        "ae12723eff6b556d340497cf6b4a7c0b54ca2eb23c940ffcfe375dfb7e8cd9c1",
    ),
    "yamux_read_body": (
        yamux.Yamux,
        "_read_data_body",
        read_data_body,
        "54cc06c91ba6ee159e0eefaf4802b3111fdce60fe1de566e267127c5fb2e0c41",
    ),
    "yamux_write": (
        yamux.YamuxStream,
        "write",
        _yamux_write,
        "d87f74dfb53ab194e7907a44c7400ce2f7e64f8cde63b5840af83772b17547af",
    ),
    "yamux_window_update": (
        yamux.YamuxStream,
        "_auto_tune_and_send_window_update",
        _window_update,
        "6ebcbd822fe7f996efbc9efd5dceea1e8d0d729380a807eb7e4aa81cf79ca036",
    ),
    # A peer that stops acknowledging is dropped after 60 s (TCP_USER_TIMEOUT),
    # not ~15 min of retransmissions (``_libp2p_tcp_timeout``).
    "tcp_user_timeout": (
        TrioTCPStream,
        "__init__",
        _tcp_timeout.tcp_stream_init,
        "4222fa993846189e94274705f1aa866df0eae8b1b91998d7b237043f1e1d134c",
    ),
    # A connection closes without upstream's two fixed 0.1 s sleeps; every
    # ``get`` printed its result 0.2 s late (issue 12, ``_libp2p_close``).
    "yamux_close_prompt": (
        yamux.Yamux,
        "close",
        _close.yamux_close,
        "d80b27e69ccd1b899351598a89a6fc0cec1028be08c357c8e461ce820b9698ea",
    ),
    "swarm_conn_cleanup_prompt": (
        SwarmConn,
        "_cleanup",
        _close.swarm_conn_cleanup,
        "84470a285af6c28757e21c0d484034d9cbad88c1944715ebb79854beec420896",
    ),
}

# Upstream code a patch relies on without replacing it (attributes it reads,
# callers whose expectations it meets): patch name -> ((owner, attr, sha256)).
_YS, _YC = yamux.YamuxStream, yamux.Yamux
_CS, _CC = noise_state.CipherState, CryptographyCipher
DEPENDS: dict[str, tuple[tuple[Any, str, str], ...]] = {
    # Reads the candidates, the observed-address manager and the factory as upstream does.
    "host_addrs_keep_circuits": (
        (BasicHost, "get_transport_addrs", "b0671b9f43d04d357007ef102c7c1e8720edde084ee4671bf1d8df67c3be7e6e"),
        (BasicHost, "__init__", "6a81506e92fbd211f79be58f0cd6c86f2193760f99100bd42fe77181e09698c1"),
    ),
    # Each caller looks the name up in its module at each call.
    "identify_bounds": (
        (BasicHost, "_identify_peer", "a8e37ea32f624529beede92bbe66aea11a293c4587c6f4417be226708254fef0"),
    ),
    "identify_push_bounds": (
        (
            identify_push_mod,
            "identify_push_handler_for",
            "d7fee29230fa505d45fe24b99a8e8ce961e08252c5a8ac605a6f9461b002a810",
        ),
    ),
    # Looks the name up in its module at each call (the inbound handler).
    "kad_signed_record_bounds": (
        (KadDHT, "_do_handle_stream", "5bbaed4d3cdf488c3c63e54f8434bd2de8c0b5050b800cc94ee623fc8e0c63b4"),
    ),
    # Frees the stream's entries once its buffer is empty; frames for a stream
    # without an entry are dropped.
    "yamux_reset_drops_buffer": (
        (_YC, "_finalize_stream_locked", "95b60e92421133b491d8008f297f1a9e10f73875a3e0c6c07ffd846743422099"),
        (_YC, "handle_incoming", "ad15ff6943feac206c7abfbf77f2142a64bb5edbe9085e3ccdda371736abdc7b"),
    ),
    # Expire records with ``del`` on our ProviderTable, which keeps the counts.
    "kad_provider_bounds": (
        (ProviderStore, "get_providers", "b9fcf8e6b889a127f71e1eba2e1a8e3350d2204af97f984ee3d7b75ee2ea83f6"),
        (ProviderStore, "cleanup_expired", "054a33657d16a419381e4436bb67edde6934fe3eaee09045a59a4a5594208e1c"),
    ),
    "peerstore_keeps_self": (
        # The host's entry is the one holding a private key (new_host adds its key pair).
        (PeerStore, "add_privkey", "3390d6535b4260c58c3fd57f141143bf1bfa24f2148bfa70138bdd04ee8de706"),
    ),
    "swarm_inbound_slot": (
        # Holds the inbound limiter around our call and releases it when we return.
        (Swarm, "_handle_inbound_connection", "0800fdf9770ed8e691e13b474d972f431755db1dc0a843bb8fa5ecc6f561441c"),
        # Upgrades, adds the connection to the swarm, returns the muxed connection.
        (Swarm, "upgrade_inbound_raw_conn", "e24c4285f494767af5707012ad36680c5c34fca838697d0bd955446d2b8670e8"),
        # Set the events we wait on.
        (_YC, "close", "d80b27e69ccd1b899351598a89a6fc0cec1028be08c357c8e461ce820b9698ea"),
        (_YC, "_cleanup_on_error", "4fed61a999a34989b7d5e7bdd28069dd24e5f01142b7bb06c936cbf07a0fac6b"),
    ),
    "noise_read_msg": (
        (
            noise_io.BaseNoiseMsgReadWriter,
            "__init__",
            "e6b51bace4fa3dda4a04e7367a9d40f2658344a4320ae477ff4a34afb6246d98",
        ),
        (NoiseConnection, "decrypt", "dbc62074807476314bf31be5bb5d8ffa9bf77f0779e99a9c23cb80154c97c016"),
        (
            noise_state.CipherState,
            "decrypt_with_ad",
            "1493b737bc5cf71f1979b2bb36f356dd459de35f1fbb576de7d7a4c71938b6c4",
        ),
        (
            noise_io.NoiseTransportReadWriter,
            "decrypt",
            "d9d398b4d8b92c753c410265cfb7b5d710b913446be61047609779bd34f1951c",
        ),
    ),
    "noise_write_msg": (
        (
            noise_io.NoiseTransportReadWriter,
            "encrypt",
            "c03978a143638cd3cfe64d2a8e8c58d404e8013151cce47b8058b66131423a5e",
        ),
        # The direct path makes these calls itself: nonce, AEAD, n += 1.
        (NoiseConnection, "encrypt", "f271e53c675ea6f3f672fe8dc7649efcb543c2e5268a703ed27ada05af4441b9"),
        (_CS, "encrypt_with_ad", "b4ed12be2ee3e9a39eb39e6c94d978939ff37933cc41c7dd916dce44df39e541"),
        (_CC, "encrypt", "3af744bf67387b09b65a054ac635dcfa3f8d3018d204c6e450315c8aaa53097c"),
        (ChaCha20Cipher, "format_nonce", "0116b7da61887c164551d23b531a2e5968910ed5ef5c3a275cb9395ceb4145dd"),
    ),
    "session_read": (
        (secure_session.SecureSession, "write", "0298b065574caeda5be72116ddcd44d5c9065b28c768841fca81895cf912e9a9"),
    ),
    "yamux_read_body": (
        (_YC, "handle_incoming", "ad15ff6943feac206c7abfbf77f2142a64bb5edbe9085e3ccdda371736abdc7b"),
        (secure_session.SecureSession, "read", "eeba14a89cf12325917fe19497a1bfc3c7c04b377947255a62bacbe854d65338"),
    ),
    "yamux_read_exactly": (
        # Calls ``read_exactly`` for frame headers only (bodies: ``_read_data_body``),
        # and handles plain DATA frames as ``deliver_plain_data`` does.
        (_YC, "handle_incoming", "ad15ff6943feac206c7abfbf77f2142a64bb5edbe9085e3ccdda371736abdc7b"),
        (_YC, "_read_data_body", "54cc06c91ba6ee159e0eefaf4802b3111fdce60fe1de566e267127c5fb2e0c41"),
        (_YC, "read_stream", "d07c99299384666ddcec8f96a18caf56c71aa957197dd68a99a84c806844310d"),
    ),
    "yamux_write": (
        (_YS, "__init__", "ab24c0709285d573f546dc1100b25ed0b8162e72df750004c0c103729256449b"),
        (_YC, "handle_incoming", "ad15ff6943feac206c7abfbf77f2142a64bb5edbe9085e3ccdda371736abdc7b"),
        (_YC, "_write_frame", "16ff969cdd0d2b1b296bf1b1765471239ce96e18c8b00784ef77a2fb808c4d5b"),
    ),
    "host_inbound_stream_scopes": (
        # Hands each new inbound stream to the host's handler, in its own task.
        (Swarm, "set_stream_handler", "2a7fda1f18e0bb71d588808a483551fe6ddc2788740b8846fdd6101a2aa49e4c"),
        # Registers the bound ``_swarm_stream_handler`` with the swarm (so this
        # patch must be applied before a host is built: ``open_host`` does).
        (BasicHost, "__init__", "6a81506e92fbd211f79be58f0cd6c86f2193760f99100bd42fe77181e09698c1"),
    ),
    "identify_scoped_addrs": (
        # Passes the remote's address as ``observed_multiaddr`` (None over a relay).
        (identify_mod, "identify_handler_for", "3968e074757157b5cf39fad032b82366d4f794b1e5d784eac917284c64fc10f1"),
    ),
    "identify_push_scoped_addrs": (
        (
            identify_push_mod,
            "push_identify_to_peer",
            "d4e668ceb7e236df56fa268ffd53dcd5e808391163573201ae5894a44c696d63",
        ),
    ),
    "yamux_flow_control": (
        # Creates each stream's buffer with ``stream_buffers[sid] = bytearray()``
        # and its event right after ``streams[sid]`` (``_StreamEvents`` drops
        # events for streams not in ``streams``),
        # grows it with ``.extend`` before debiting ``recv_window``, and closes
        # the connection when ``event_shutting_down`` is set.
        (_YC, "handle_incoming", "ad15ff6943feac206c7abfbf77f2142a64bb5edbe9085e3ccdda371736abdc7b"),
        (_YC, "open_stream", "f3e0ef79ec21d0cb287994314e8ab226c6d58145b0a24c43806072438e39583f"),
        # ``_libp2p_streambuf.read_pieces`` takes a StreamBuffer's pieces the
        # way these read it (state checks, the stream's event, the window
        # update after a read) and hands every other case to them.
        (NetStream, "read", "cc3b280850abe4b3ce5867fda6e23c2082096029bfa99ea1faa5dc663127cec9"),
        (_YS, "read", "ca585f2199fd4e83cc1ceffe0b28c0d2c176c0af426ce6fe0c155d79038bd9e9"),
        (_YC, "read_stream", "d07c99299384666ddcec8f96a18caf56c71aa957197dd68a99a84c806844310d"),
    ),
    "tcp_user_timeout": (
        # The pings that give an idle connection something to acknowledge.
        (_YC, "_measure_rtt_loop", "86222ce6e35836fd208cd7d3aea56fbfe1943c646c0033118695aaabd8cf9c28"),
    ),
    "swarm_conn_cleanup_prompt": (
        # Closes the session's resources, then calls ``_cleanup`` last.
        (SwarmConn, "close", "442c6259a8e9e45e4a833af75bf5811dcbafb0643a5e06f3d02e803034774ea5"),
    ),
    "yamux_window_update": (
        (_YS, "read", "ca585f2199fd4e83cc1ceffe0b28c0d2c176c0af426ce6fe0c155d79038bd9e9"),
        (_YC, "read_stream", "d07c99299384666ddcec8f96a18caf56c71aa957197dd68a99a84c806844310d"),
        (_YS, "send_window_update", "f76fe6e67077b4a3bf26cc3bc469047002367bb028353548c070cb121e27a3f4"),
        (_YC, "handle_incoming", "ad15ff6943feac206c7abfbf77f2142a64bb5edbe9085e3ccdda371736abdc7b"),
    ),
}

_applied = False


_upstream = _originals.upstream


def changed_upstream(name: str, *, by_file: bool = True) -> list[str]:
    """Upstream functions patch ``name`` relies on whose source changed
    (``by_file=False``: fingerprint each function even in a studied file)."""
    owner, attr, _, expected = PATCHES[name]
    return _fingerprint.changed([(owner, attr, expected), *DEPENDS.get(name, ())], by_file=by_file)


def apply() -> None:
    """Apply every patch whose upstream code is unchanged (idempotent)."""
    global _applied
    if _applied:
        return
    for name, (owner, attr, replacement, _) in PATCHES.items():
        changed = changed_upstream(name)
        if changed:
            logger.warning("py-libp2p changed (%s): patch %s not applied", ", ".join(changed), name)
            continue
        _ORIGINALS[name] = _originals.BY_ATTRIBUTE[(owner, attr)] = getattr(owner, attr)
        if name == "yamux_write":
            # The window and the closed flag live under our names in each
            # stream; these properties set the writer's wake-up event
            # whenever the window grows or the stream closes.
            window = property(_get_send_window, _set_send_window)
            setattr(yamux.YamuxStream, "send_window", window)  # noqa: B010 - mypy sees an int attribute
            setattr(yamux.YamuxStream, "closed", property(_get_closed, _set_closed))  # noqa: B010 - likewise a bool
        setattr(owner, attr, replacement)
    _applied = True


def write_piece() -> int:
    """Most bytes per ``INetStream.write`` call that suit the active yamux writer.

    The batching writer (P6) frames any buffer itself, WRITE_BATCH bytes per
    lock round trip over a memoryview: hand it the whole buffer (splitting
    it in the adapter only costs copies and per-write overhead). Stock yamux
    needs pieces that make one frame that fits one Noise message.
    """
    if "yamux_write" in _ORIGINALS:
        return sys.maxsize
    return FRAME_PAYLOAD


def is_applied() -> bool:
    """True once :func:`apply` has run in this process."""
    return _applied
