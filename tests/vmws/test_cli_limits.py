"""The per-user limit flags: defaults, environment variables, flags over variables."""

from __future__ import annotations

import pytest

from vmws.cli import build_parser, config_from_args


def config(argv: list[str]):  # type: ignore[no-untyped-def]
    return config_from_args(build_parser().parse_args(["serve", *argv]), "s" * 32)


def test_defaults_are_eight_viewers_and_four_commands_per_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VMWS_MAX_CONSOLE_VIEWERS_PER_USER", raising=False)
    monkeypatch.delenv("VMWS_MAX_COMMANDS_PER_USER", raising=False)
    c = config([])
    assert (c.max_console_viewers_per_user, c.max_commands_per_user, c.max_console_viewers) == (8, 4, 32)


def test_environment_and_flags_set_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMWS_MAX_CONSOLE_VIEWERS_PER_USER", "3")
    monkeypatch.setenv("VMWS_MAX_COMMANDS_PER_USER", "2")
    assert (config([]).max_console_viewers_per_user, config([]).max_commands_per_user) == (3, 2)
    c = config(["--max-console-viewers-per-user", "5", "--max-commands-per-user", "1"])
    assert (c.max_console_viewers_per_user, c.max_commands_per_user) == (5, 1)


def test_zero_is_refused_with_a_message() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        config(["--max-commands-per-user", "0"])
