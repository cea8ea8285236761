"""The CLI framework: help for every command, one-line errors with exit code 2."""

from kbnn.cli import COMMANDS, build_parser, main

import pytest


def _registered_commands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


def test_every_registered_command_is_a_listed_module():
    registered = _registered_commands()
    assert "quickstart" in registered
    assert set(registered) <= {name.replace("_", "-") for name in COMMANDS}


@pytest.mark.parametrize("command", _registered_commands())
def test_help_exits_zero(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: kbnn" in capsys.readouterr().out


def test_unknown_command_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "invalid choice" in err


def test_bad_option_value_is_one_line_exit_2(capsys):
    assert main(["quickstart", "--threads", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "kbnn quickstart: error: --threads must be >= 1, got 0"


def test_console_script_without_arguments_prints_help(run_fresh_python):
    result = run_fresh_python.completed("-m", "kbnn", timeout=120)
    assert result.returncode == 0
    assert "quickstart" in result.stdout
