"""``python -m tests.relay._relay_main [relay flags]``: the ``relay`` command
as the CLI will run it (parser from ``add_relay_parser``), without needing the
lead's hook in ``node/cli.py``."""

from __future__ import annotations

import argparse
import logging
import sys

from p2pshare.node._output import Reporter
from p2pshare.relay.cmd import RelayOptions, add_relay_parser, run_relay


def main() -> int:
    parser = argparse.ArgumentParser(prog="p2pshare")
    sub = parser.add_subparsers(dest="command", required=True)
    add_relay_parser(sub)
    args = parser.parse_args(["relay", *sys.argv[1:]])
    logging.basicConfig(level=logging.INFO, format="relay: %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    return run_relay(RelayOptions.from_namespace(args), Reporter(json_mode=args.json))


if __name__ == "__main__":
    sys.exit(main())
