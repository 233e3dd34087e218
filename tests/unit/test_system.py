"""redlab.system: preflight checks that tell how to fix what is missing."""

import os

import pytest

from redlab import system
from redlab.errors import PreflightError


def test_missing_binary_says_how_to_install_it():
    with pytest.raises(PreflightError) as info:
        system.require_binary("definitely-not-a-binary-xyz", "web1/test")
    message = str(info.value)
    assert message.startswith("web1/test needs `definitely-not-a-binary-xyz`")
    assert "apt-get install" in message
    assert "make setup" in message


def test_missing_known_binary_names_its_debian_package(monkeypatch):
    monkeypatch.setattr(system, "find_binary", lambda name: None)
    with pytest.raises(PreflightError, match=r"`apt-get install bind9`"):
        system.require_binary("named-checkzone")


def test_find_binary_finds_sh():
    path = system.find_binary("sh")
    assert path and os.path.basename(path) == "sh"
    assert os.access(path, os.X_OK)
    assert system.require_binary("sh") == path


def test_find_binary_returns_none_for_a_missing_one():
    assert system.find_binary("definitely-not-a-binary-xyz") is None


@pytest.mark.parametrize("value", ["user", "kernel"])
def test_redlab_datapath_overrides_the_choice(monkeypatch, value):
    monkeypatch.setenv("REDLAB_DATAPATH", value)
    assert system.choose_datapath() == value


@pytest.mark.parametrize("kernel, expected", [(True, "kernel"), (False, "user")])
def test_datapath_follows_the_kernel_module_without_override(monkeypatch, kernel, expected):
    monkeypatch.delenv("REDLAB_DATAPATH", raising=False)
    monkeypatch.setattr(system, "kernel_has_ovs_datapath", lambda: kernel)
    assert system.choose_datapath() == expected


def test_other_datapath_values_are_refused(monkeypatch):
    monkeypatch.setenv("REDLAB_DATAPATH", "netdev")
    with pytest.raises(PreflightError, match="'netdev'"):
        system.choose_datapath()


def test_checks_on_a_bare_machine_give_a_fix_for_each_failure(monkeypatch):
    monkeypatch.setattr(system, "find_binary", lambda name: None)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("REDLAB_DATAPATH", "user")
    result = system.checks()
    assert all(isinstance(check, system.Check) for check in result)
    by_name = {check.name: check for check in result}
    assert by_name["root"].fix == "run it with sudo"
    assert "openvswitch-switch" in by_name["Open vSwitch"].fix
    assert by_name["binary keepalived"].fix == "apt-get install keepalived"
    assert by_name["binary named"].fix == "apt-get install bind9"
    failed = [check for check in result if not check.ok and check.required]
    assert len(failed) >= len(system.BINARIES) + 2
    assert all(check.fix for check in failed)


def test_checks_put_required_ones_first():
    result = system.checks()
    required = [check.required for check in result]
    assert required == sorted(required, reverse=True)
    assert [check.name for check in result[:3]] == ["root", "Open vSwitch", "python modules"]


def test_check_sentence_ends_with_the_fix():
    check = system.Check("root", False, "redlab must run as root", "run it with sudo")
    assert check.sentence() == "root: redlab must run as root; run it with sudo"
    assert system.Check("x", True, "fine").sentence() == "x: fine"
