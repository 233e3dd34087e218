"""The load-balancer service rendered as keepalived virtual_server passes keepalived's own check."""

import shutil

import pytest

from redlab.lb import render_keepalived_lvs, web_service

pytestmark = pytest.mark.skipif(not shutil.which("keepalived") and
                                not shutil.which("/usr/sbin/keepalived"),
                                reason="keepalived is not installed")


@pytest.mark.parametrize("check, block", [("http", "HTTP_GET"), ("tcp", "TCP_CHECK"),
                                          ("icmp", "PING_CHECK")])
def test_rendered_config_is_valid(tmp_path, check, block):
    ok, output = render_keepalived_lvs(web_service("wrr", weights=(3, 2, 1), check=check),
                                       "director", tmp_path / "k.conf")
    text = (tmp_path / "k.conf").read_text()
    assert ok, output
    assert "lb_algo wrr" in text and text.count(block) == 3 and "weight 3" in text


def test_keepalived_check_catches_a_broken_file(tmp_path):
    render_keepalived_lvs(web_service("rr"), "director", tmp_path / "k.conf")
    path = tmp_path / "k.conf"
    path.write_text(path.read_text().replace("lb_algo rr", "lb_algo nonsense"))
    import subprocess
    result = subprocess.run(["keepalived", "-t", "-f", str(path)], capture_output=True, text=True)
    assert result.returncode != 0


def test_timings_are_the_services_own(tmp_path):
    """keepalived takes decimal timers: the comparison runs with the same interval and timeout."""
    ok, output = render_keepalived_lvs(web_service("rr", interval=0.2, timeout=0.5, fall=3),
                                       "director", tmp_path / "k.conf")
    text = (tmp_path / "k.conf").read_text()
    assert ok, output
    assert "delay_loop 0.2" in text and text.count("connect_timeout 0.5") == 3
    assert text.count("retry 2") == 3 and "alpha" in text


@pytest.mark.parametrize("algo, settings, flags", [
    ("sh", dict(sh_port=True, sh_fallback=True), ["sh-fallback", "sh-port"]),
    ("mh", dict(mh_port=True), ["mh-port"]),
    ("mh", dict(mh_fallback=True, sh_port=True), ["mh-fallback"]),     # sh's: ignored
    ("fo", {}, []), ("ovf", {}, []), ("mh", {}, []), ("twos", {}, []),
])
def test_every_scheduler_and_its_flags_reach_keepalived(tmp_path, algo, settings, flags):
    ok, output = render_keepalived_lvs(web_service(algo, check="tcp", **settings),
                                       "director", tmp_path / "k.conf")
    text = (tmp_path / "k.conf").read_text()
    assert ok, output
    assert "lb_algo %s" % algo in text
    assert [line.strip() for line in text.splitlines()
            if line.strip().startswith(("sh-", "mh-"))] == flags
