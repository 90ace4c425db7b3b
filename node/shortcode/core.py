"""The short-code exchange, pure: SPAKE2 on the words, the full code sealed
under the PAKE key, and the sharer's count of failed attempts.

::

    receiver                                   sharer (Offer: tries, expiry)
    HELLO{pake=X*}            ------------->   refused? -> REFUSED{reason}
                                               failures += 1 (counted now)
                              <-------------   REPLY{pake=Y*, box=seal(code)}
    open box (wrong words: it does not open)
    CONFIRM{mac}              ------------->   mac ok? -> failures -= 1

Why each step is so:

- SPAKE2 (``spake2``, Ed25519) gives both sides one key if and only if they
  used the same words. Someone who does not know the words learns nothing
  from X*, Y* or the sealed box that lets them test a guess offline: one
  session tests one guess, against a live sharer.
- The attempt is counted *before* the sharer answers and refunded only by a
  valid CONFIRM, so parallel, aborted or replayed sessions all count: the
  sharer refuses the code once ``tries`` sessions failed (or are in flight).
- Both peer IDs (the Noise-authenticated ends of the stream) are the SPAKE2
  identities and are in the transcript: a key agreed with one peer is of no
  use on a stream to another.
- The full code (key, addresses) goes only in the box (AES-256-GCM under a
  key derived from the PAKE key and the transcript hash); a fresh PAKE key
  per session makes a replayed REPLY or CONFIRM fail.

Time is the caller's ``now`` (monotonic seconds); randomness can be
injected (``entropy``) so tests are deterministic. No trio, no libp2p.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from p2pshare import sharecode
from p2pshare.errors import LocalError
from p2pshare.sharecode.short import ShortCode
from p2pshare.transfer.errors import AuthenticationError

from .wire import MsgType, Refusal, ShortCodeMsg, WireError

__all__ = [
    "DEFAULT_TRIES",
    "DEFAULT_TTL",
    "MAX_TRIES",
    "MAX_TTL",
    "CodeRefusedError",
    "Offer",
    "ReceiverSession",
    "SharerSession",
    "WrongWordsError",
]

DEFAULT_TRIES = 3
DEFAULT_TTL = 3600.0
MAX_TRIES = 20  # more would make online guessing cheaper than the README promises
MAX_TTL = 24 * 3600.0  # a day: the sharer advertises one DHT key per hour of life

_LABEL = b"p2pshare/shortcode/v1"
_NONCE = bytes(12)  # each key seals exactly one message: a fixed nonce is safe

Entropy = Callable[[int], bytes]


class WrongWordsError(AuthenticationError):
    """The PAKE failed: the words differ from this sharer's (a typo, or
    another sharer whose code has the same number)."""


class CodeRefusedError(LocalError):
    """The sharer refuses the short code: expired, or too many failed tries.
    Local: running the same command again fails the same way; the sharer
    has to give out a new code."""

    def __init__(self, code: ShortCode, reason: Refusal) -> None:
        super().__init__(f"short code {code.redacted} {reason.text}; ask the sharer for a new code")
        self.reason = reason


def _transcript(sharer_id: bytes, receiver_id: bytes, msg_a: bytes, msg_b: bytes) -> bytes:
    h = hashlib.sha256(_LABEL)
    for part in (sharer_id, receiver_id, msg_a, msg_b):
        h.update(len(part).to_bytes(4, "big") + part)
    return h.digest()


def _derive(pake_key: bytes, transcript: bytes) -> tuple[bytes, bytes]:
    """(box key, confirmation key), each bound to the transcript."""
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=transcript, info=_LABEL + b" keys").derive(pake_key)
    return okm[:32], okm[32:]


def _mac(confirm_key: bytes, transcript: bytes) -> bytes:
    return hmac.new(confirm_key, b"receiver confirms" + transcript, hashlib.sha256).digest()


@dataclass
class Offer:
    """The sharer's live short code: what it unlocks and how often it may fail.

    ``failures`` counts sessions that were started and not (yet) confirmed:
    a session in flight already counts, so ``tries`` bounds guesses even
    when an attacker runs many sessions at once.
    """

    code: ShortCode
    payload: bytes  # the full v1 code, only ever sent sealed
    tries: int
    expires_at: float  # same clock as ``now``
    failures: int = 0
    claims: int = 0

    def refusal(self, now: float) -> Refusal | None:
        if now >= self.expires_at:
            return Refusal.EXPIRED
        if self.failures >= self.tries:
            return Refusal.TOO_MANY_FAILURES
        return None

    @property
    def tries_left(self) -> int:
        return max(0, self.tries - self.failures)

    def open(
        self, now: float, *, sharer_id: bytes, receiver_id: bytes, entropy: Entropy = os.urandom
    ) -> SharerSession | Refusal:
        """Admit one receiver's attempt (counted now), or say why not."""
        refused = self.refusal(now)
        if refused is not None:
            return refused
        self.failures += 1
        return SharerSession(self, sharer_id, receiver_id, entropy)


# ``spake2`` is imported where a PAKE starts, not with this module: its
# import computes group parameters (~30 ms of CPU), which every ``get`` and
# ``share`` paid at start-up whether or not it used a short code (issue 12).


class _Step(enum.Enum):
    HELLO = "hello"
    CONFIRM = "confirm"
    DONE = "done"


@dataclass
class SharerSession:
    """One receiver's attempt at the sharer: HELLO in, REPLY out, CONFIRM in."""

    offer: Offer
    sharer_id: bytes
    receiver_id: bytes
    entropy: Entropy
    succeeded: bool = False
    _step: _Step = _Step.HELLO
    _transcript: bytes = b""
    _confirm_key: bytes = field(default=b"", repr=False)

    def on_hello(self, msg: ShortCodeMsg) -> ShortCodeMsg:
        """Run our half of SPAKE2 on the receiver's message and seal the code."""
        if self._step is not _Step.HELLO or msg.type is not MsgType.HELLO:
            raise WireError(f"expected HELLO, got {msg.type.name}")
        self._step = _Step.DONE  # whatever happens next, a session answers once
        from spake2 import SPAKE2_B  # on first use: see the note above _Step

        pake = SPAKE2_B(self.offer.code.password, idA=self.receiver_id, idB=self.sharer_id, entropy_f=self.entropy)
        msg_b = pake.start()
        try:
            key = pake.finish(msg.pake)
        except Exception:  # noqa: BLE001 - spake2 raises several types for a bad point
            raise WireError("the receiver's PAKE message is not a valid point") from None
        self._transcript = _transcript(self.sharer_id, self.receiver_id, msg.pake, msg_b)
        box_key, self._confirm_key = _derive(key, self._transcript)
        box = AESGCM(box_key).encrypt(_NONCE, self.offer.payload, self._transcript)
        self._step = _Step.CONFIRM
        return ShortCodeMsg(MsgType.REPLY, pake=msg_b, box=box)

    def on_confirm(self, msg: ShortCodeMsg) -> bool:
        """True if the receiver proved it opened the box: the attempt is refunded."""
        if self._step is not _Step.CONFIRM or msg.type is not MsgType.CONFIRM:
            raise WireError(f"expected CONFIRM, got {msg.type.name}")
        self._step = _Step.DONE
        if not hmac.compare_digest(msg.mac, _mac(self._confirm_key, self._transcript)):
            return False
        self.succeeded = True
        self.offer.failures -= 1
        self.offer.claims += 1
        return True


@dataclass
class ReceiverSession:
    """The receiver's attempt with one candidate sharer."""

    code: ShortCode
    receiver_id: bytes
    sharer_id: bytes
    entropy: Entropy = os.urandom
    _msg_a: bytes = b""
    _mac: bytes = field(default=b"", repr=False)
    _pake: object = None

    def hello(self) -> ShortCodeMsg:
        if self._pake is not None:
            raise RuntimeError("hello() already sent")
        from spake2 import SPAKE2_A  # on first use: see the note above _Step

        pake = SPAKE2_A(self.code.password, idA=self.receiver_id, idB=self.sharer_id, entropy_f=self.entropy)
        self._pake = pake
        self._msg_a = pake.start()
        return ShortCodeMsg(MsgType.HELLO, pake=self._msg_a)

    def on_reply(self, msg: ShortCodeMsg, *, sharer_peer_id: str) -> sharecode.ShareCode:
        """Open the sealed code; raise ``WrongWordsError`` or ``CodeRefusedError``.

        The code inside must name the peer we run the PAKE with: a sharer
        cannot send a receiver elsewhere with a code it made up.
        """
        if msg.type is MsgType.REFUSED:
            assert msg.reason is not None  # wire.decode guarantees it
            raise CodeRefusedError(self.code, msg.reason)
        if msg.type is not MsgType.REPLY or self._pake is None or self._mac:
            raise WireError(f"unexpected {msg.type.name} from the sharer")
        try:
            key = self._pake.finish(msg.pake)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - spake2 raises several types for a bad point
            raise WireError("the sharer's PAKE message is not a valid point") from None
        transcript = _transcript(self.sharer_id, self.receiver_id, self._msg_a, msg.pake)
        box_key, confirm_key = _derive(key, transcript)
        try:
            payload = AESGCM(box_key).decrypt(_NONCE, msg.box, transcript)
        except InvalidTag:
            raise WrongWordsError(f"the words of short code {self.code.redacted} do not match this sharer's") from None
        try:
            code = sharecode.parse_code(payload.decode("utf-8"))
        except (UnicodeDecodeError, sharecode.ShareCodeError) as exc:
            raise WireError(f"the sharer sealed a malformed code: {exc}") from None
        if not isinstance(code, sharecode.ShareCode) or code.peer_id != sharer_peer_id:
            raise WireError("the sharer sealed a code for another peer")
        self._mac = _mac(confirm_key, transcript)
        return code

    def confirm(self) -> ShortCodeMsg:
        if not self._mac:
            raise RuntimeError("confirm() before a reply opened")
        return ShortCodeMsg(MsgType.CONFIRM, mac=self._mac)
