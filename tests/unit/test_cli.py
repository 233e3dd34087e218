"""redlab.cli and controllers.launch: argument errors, before anything is built."""

import os
import signal

import pytest

from controllers import launch
from redlab import cli


@pytest.fixture(autouse=True)
def keep_signal_handlers():
    """``cli.main`` turns SIGTERM/SIGHUP into SystemExit; give pytest its own back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture
def not_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)


def test_unknown_lab_is_one_line_naming_it_and_the_known_ones(capsys):
    assert cli.main(["run", "no-such-lab"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert "'no-such-lab'" in err
    assert "vrrp-failover" in err


def test_run_list_shows_the_labs_and_the_scenarios(capsys):
    assert cli.main(["run", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("02 hot-standby ") for line in lines)
    assert any(line.startswith("vrrp-failover ") for line in lines)


def test_run_without_a_name_lists_too(capsys):
    assert cli.main(["run"]) == 0
    assert "vrrp-failover" in capsys.readouterr().out


def test_unknown_topology_names_the_known_ones_before_any_root_check(capsys, not_root):
    assert cli.main(["up", "no-such-topo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "'no-such-topo'" in err
    assert "vrrp_pair" in err
    assert "root" not in err


def test_clean_refuses_to_run_without_root(capsys, not_root):
    assert cli.main(["clean"]) == 2
    assert "root" in capsys.readouterr().err


def test_missing_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2
    assert "usage: redlab" in capsys.readouterr().err


def test_launch_help_exits_zero_and_shows_the_options(capsys):
    with pytest.raises(SystemExit) as info:
        launch.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--port" in out and "apps" in out
