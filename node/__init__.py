from node import _libp2p_lean_import as _lean

_lean.install()  # before anything imports libp2p: keep unused transports out (start-up time)
