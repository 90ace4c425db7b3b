"""``python -m p2pshare`` and the ``p2pshare`` command: the command line.

The collector is paused before anything else is imported (``node/_gc.py``): the
imports below and py-libp2p's build the process's long-lived objects. The
dataclasses they define take their methods' code from a cache
(``p2pshare/_dataclass_code.py``) instead of compiling it again."""

import sys
from typing import NoReturn

from p2pshare import _dataclass_code
from p2pshare.node import _gc

_gc.pause()
_dataclass_code.install()

from p2pshare._exit import exit_now  # noqa: E402

#: Exit status of a command interrupted before it started (``cli.ExitCode.INTERRUPTED``).
_INTERRUPTED = 130


def entry() -> NoReturn:
    """Run the command line. Its imports take ~0.15 s; a Ctrl-C meanwhile
    (before ``main`` handles it) was a 20-line traceback of the import."""
    try:
        from p2pshare.cli import main
    except KeyboardInterrupt:
        if "--json" in sys.argv[1:]:  # a program reads the error event, as for any other error
            sys.stdout.write(f'{{"event":"error","message":"interrupted","exit_code":{_INTERRUPTED}}}\n')
            sys.stdout.flush()
        sys.stderr.write("p2pshare: error: interrupted\n")
        exit_now(_INTERRUPTED)
    exit_now(main())


if __name__ == "__main__":
    entry()
