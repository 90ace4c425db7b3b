"""The NAT lab: real Linux NATs built from network namespaces and nftables.

Pure parts (``topology``, ``profiles``, ``expect``, ``report``) compute what to
build and judge results; ``netns`` applies a plan with ``ip``/``nft`` and owns
teardown; ``agent`` is the socket probe run inside the namespaces; ``probe``
and ``scenario`` drive them; ``cli`` is the ``scripts/natlab`` command.
Stdlib only, so it runs with any python3 as well as the project's venv.
"""
