"""One error tree, exit codes decided by the CLI alone (pure, in-process)."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import p2pshare
from p2pshare import errors
from p2pshare.cli import EXIT_CODES, ExitCode, exit_code_for
from p2pshare.errors import LocalError, P2PShareError, ProtocolViolation, RemoteError

ROOT = Path(__file__).resolve().parents[2]
# Private control flow that never leaves its module, the lean-import
# stand-in that must stay an ImportError for py-libp2p's own import
# fallbacks, and the lazy multistream failure raised inside py-libp2p's
# upgrader and streams as their own error types (the façade wraps it), as
# are the refusals it reads the refused protocol from (ProtocolRefused).
NOT_IN_TREE = {
    "_OverLimit",
    "_Bad",
    "_Busy",
    "_Stopped",
    "LeanImportError",
    "LazyNegotiationFailed",
    "LazyProtocolRefused",
    "ProtocolsRefused",
}


def _our_exception_classes() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(p2pshare.__path__, "p2pshare."):
        if info.name.endswith(("__main__", "_libp2p_lean_import", "_libp2p_patches")):
            continue
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__.startswith("p2pshare."):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return list(found.values())


def test_every_error_of_ours_is_in_the_tree() -> None:
    classes = _our_exception_classes()
    assert len(classes) > 25
    outside = [c.__qualname__ for c in classes if not issubclass(c, P2PShareError) and c.__name__ not in NOT_IN_TREE]
    assert outside == []


def test_no_error_carries_an_exit_code() -> None:
    assert [c for c in _our_exception_classes() if hasattr(c, "exit_code")] == []


@pytest.mark.parametrize(
    "module",
    [
        "p2pshare.node.pbwire",
        "p2pshare.node.autonat.wire",
        "p2pshare.node.dcutr.wire",
        "p2pshare.node.discovery.wire",
        "p2pshare.node.circuit.wire",
        "p2pshare.node.mdns.wire",
        "p2pshare.node.shortcode.wire",
        "p2pshare.node.natinfo.stun",
        "p2pshare.transfer.wire",
    ],
)
def test_every_wire_codec_error_is_a_protocol_violation(module: str) -> None:
    mod = importlib.import_module(module)
    codec_errors = [
        obj
        for _, obj in inspect.getmembers(mod, inspect.isclass)
        if issubclass(obj, Exception) and obj.__module__.startswith("p2pshare.")
    ]
    assert codec_errors, module
    # transfer/wire.py raises ProtocolError, imported from transfer.errors.
    assert all(issubclass(c, P2PShareError) for c in codec_errors), codec_errors
    assert any(issubclass(c, ProtocolViolation) for c in codec_errors), codec_errors


def test_branches_do_not_overlap() -> None:
    both = [
        c.__qualname__ for c in _our_exception_classes() if issubclass(c, LocalError) and issubclass(c, RemoteError)
    ]
    assert both == []


def test_root_module_imports_nothing_of_ours() -> None:
    tree = ast.parse((ROOT / "p2pshare" / "errors.py").read_text())
    imported = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    ]
    assert all(name in ("__future__", "typing") for name in imported), imported


def test_exit_code_table() -> None:
    from p2pshare.node.circuit.client import RelayError
    from p2pshare.node.errors import LocalNodeError, PeerUnreachableError, RelayLimitedError
    from p2pshare.node.host import DialError, HostError, ListenError
    from p2pshare.node.identity import IdentityError
    from p2pshare.sharecode import ShareCodeError
    from p2pshare.transfer import errors as t

    expected: dict[BaseException, int] = {
        KeyboardInterrupt(): 130,
        errors.Terminated("x"): 143,
        LocalNodeError("x"): 2,
        IdentityError("x"): 2,
        ShareCodeError("x"): 2,
        ListenError("x"): 2,
        t.OutputError("x"): 2,
        t.ShareKeyError("x"): 2,
        PeerUnreachableError("x"): 3,
        RelayLimitedError("x"): 3,
        DialError("x"): 3,
        RelayError("x"): 3,
        t.UnknownShareError("x"): 3,
        t.BusyError("x"): 3,
        t.StreamEndedError(): 3,
        t.PeerReportedError("x"): 3,
        t.AuthenticationError("x"): 4,
        t.IntegrityError("x"): 4,
        t.SourceChangedError("x"): 4,
        t.FilesUnavailableError(files=2, output_dir="o", unavailable=()): 4,
        t.ProtocolError("x"): 4,
        HostError("x"): 1,
        RuntimeError("x"): 1,
    }
    assert {type(e).__name__: exit_code_for(e) for e in expected} == {
        type(e).__name__: code for e, code in expected.items()
    }
    assert {code for _, code in EXIT_CODES} | {ExitCode.OK, ExitCode.INTERNAL} == set(ExitCode)


def test_messages_are_one_line_and_retryable_is_kept() -> None:
    from p2pshare.transfer import errors as t

    assert str(LocalError("two\nlines\t here")) == "two lines here"
    assert t.BusyError("x").retryable and t.StreamEndedError().retryable
    assert not t.ProtocolError("x").retryable and not P2PShareError("x").retryable


def test_builtin_bases_callers_rely_on_are_kept() -> None:
    from p2pshare.node.host import DialError, ListenError, StreamError
    from p2pshare.node.pbwire import PbError
    from p2pshare.sharecode import ShareCodeError

    assert issubclass(ShareCodeError, ValueError) and issubclass(PbError, ValueError)
    assert issubclass(ListenError, OSError)
    assert issubclass(DialError, ConnectionError) and issubclass(StreamError, ConnectionError)
