"""Take a code out of what a person pasted: quotes, ``<>``, a sentence's full stop.

Codes travel through chats, mail and documents, which wrap them in quotes
(straight or typographic), angle brackets, backticks or a Markdown code
fence, or end them with a full stop; some people paste the whole command
line. None of these characters occurs in any code format (base64url, the
legacy ``CODE:KEY:IP:PORT``, or words joined by ``-``), so stripping them
from both ends can never change a valid code; it only turns a refusal into
a transfer. Spaces inside are left to the parser.
"""

from __future__ import annotations

__all__ = ["unwrap_pasted"]

#: Opening → closing wrappers, stripped in pairs or alone at either end.
_PAIRS = {
    '"': '"',
    "'": "'",
    "`": "`",
    "<": ">",
    "(": ")",
    "[": "]",
    "“": "”",
    "‘": "’",
    "«": "»",
    "„": "“",
}
_WRAPPERS = frozenset(_PAIRS) | frozenset(_PAIRS.values())
#: Sentence punctuation that may follow a pasted code.
_TRAILING = frozenset(".,;!?")
_COMMAND_PREFIXES = ("p2pshare get ", "p2pshare code show ")


def unwrap_pasted(text: str) -> str:
    """``text`` without surrounding whitespace, wrappers, trailing punctuation or a pasted command."""
    previous = None
    out = text
    while out != previous:
        previous = out
        out = out.strip()
        if out.startswith("```") and out.endswith("```") and len(out) >= 6:
            out = out[3:-3]
            continue
        for prefix in _COMMAND_PREFIXES:
            if out.lower().startswith(prefix):
                out = out[len(prefix) :]
        while out and out[-1] in _TRAILING:
            out = out[:-1]
        while out and out[0] in _WRAPPERS:
            out = out[1:]
        while out and out[-1] in _WRAPPERS:
            out = out[:-1]
    return out
