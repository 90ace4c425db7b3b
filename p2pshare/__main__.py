"""``python -m p2pshare``: the command line."""

from p2pshare.cli import entry

if __name__ == "__main__":
    entry()
