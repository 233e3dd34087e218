"""Bad input gets one clear sentence, a non-zero exit, and nothing half-started."""

import subprocess

import pytest
from mininet.topo import Topo

from redlab import addressing as ap
from redlab.daemons import Nginx
from redlab.errors import ConfigError, PreflightError
from redlab.net import Network, ovs_bridges
from redlab.nodes import Client, WebServer
from redlab.system import OVS_CTL, ovs_running
from topologies.service_lan import ServiceLanTopo


class TwinsTopo(Topo):
    def build(self):
        s1 = self.addSwitch("s1")
        self.addLink(self.addHost("web1", cls=WebServer, ip=ap.cidr(ap.web(1))), s1)
        self.addLink(self.addHost("client1", cls=Client, ip=ap.cidr(ap.web(1))), s1)


def one_line_error(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0
    assert len(lines) == 1 and lines[0].startswith("redlab: error: "), result.stderr
    return lines[0]


def test_unknown_topology(redlab_cmd):
    line = one_line_error(subprocess.run(redlab_cmd + ["up", "ring9"], capture_output=True,
                                         text=True))
    assert "unknown topology 'ring9'" in line and "vrrp_pair" in line


def test_duplicate_ip_is_refused_before_anything_exists(run_folder):
    with pytest.raises(ConfigError, match="duplicate IP 10.0.0.11 on (client1 and web1|web1 and client1);"):
        Network(TwinsTopo(), run_folder=run_folder).start()
    assert "s1" not in ovs_bridges()


class NoSuchNginx(Nginx):
    binary = "nginx-not-installed"


def test_missing_daemon_binary(network):
    net = network(ServiceLanTopo(servers=1, dns=False, director=False), services=False)
    daemon = NoSuchNginx(net["web1"])
    with pytest.raises(PreflightError) as err:
        daemon.start()
    assert "needs `nginx-not-installed`, which is not installed" in str(err.value)
    assert "apt-get install" in str(err.value)
    assert not daemon.running and net["web1"].processes() == []


def test_not_root(redlab_cmd):
    # nobody, allowed to read and search every folder (CAP_DAC_READ_SEARCH) only so that it
    # can import redlab from a checkout in a folder others cannot enter, such as /root
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
              "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    line = one_line_error(subprocess.run(nobody + redlab_cmd + ["up", "vrrp_pair"],
                                         capture_output=True, text=True))
    assert "must run as root" in line and "sudo" in line


@pytest.fixture
def ovs_stopped():
    subprocess.run([OVS_CTL, "stop"], capture_output=True, check=True)
    try:
        assert not ovs_running()
        yield
    finally:
        from redlab import sandbox
        if sandbox.inside():        # the session's own OVS (a private database)
            sandbox.start_ovs()
        else:
            subprocess.run([OVS_CTL, "start", "--system-id=random"], capture_output=True)
        assert ovs_running(), "could not restart Open vSwitch after the test"


def test_ovs_not_running(redlab_cmd, ovs_stopped, run_folder):
    line = one_line_error(subprocess.run(redlab_cmd + ["up", "vrrp_pair"], capture_output=True,
                                         text=True))
    assert "Open vSwitch is not running" in line and "ovs-ctl start" in line
    doctor = subprocess.run(redlab_cmd + ["doctor"], capture_output=True, text=True)
    assert doctor.returncode == 1 and "FAIL Open vSwitch" in doctor.stdout
