"""Local discovery is on by default; the flag, the config key and the env var turn it off."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pshare.cli import build_parser, command_options
from p2pshare.node.config import ENV_NO_MDNS, load_network_config
from p2pshare.node.errors import LocalNodeError


def test_on_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_NO_MDNS, raising=False)
    assert load_network_config(tmp_path).mdns


def test_flag_key_and_env_turn_it_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_NO_MDNS, raising=False)
    assert not load_network_config(tmp_path, no_mdns=True).mdns
    (tmp_path / "config.toml").write_text("mdns = false\n")
    cfg = load_network_config(tmp_path)
    assert not cfg.mdns and cfg.warnings == ()
    (tmp_path / "config.toml").write_text("")
    monkeypatch.setenv(ENV_NO_MDNS, "1")
    assert not load_network_config(tmp_path).mdns


def test_bad_value_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('mdns = "no"\n')
    with pytest.raises(LocalNodeError, match="mdns"):
        load_network_config(tmp_path)


@pytest.mark.parametrize("argv", [["share", "x", "--no-mdns"], ["get", "CODE", "--no-mdns"], ["node", "--no-mdns"]])
def test_every_command_takes_no_mdns(argv: list[str]) -> None:
    opts = command_options(build_parser().parse_args(argv))
    assert opts.no_mdns is True  # type: ignore[union-attr]
