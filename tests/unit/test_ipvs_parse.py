"""Reading ``ipvsadm -Ln`` (the IPVS comparison of the load-balancer lab)."""

from redlab.scenarios.ipvs import parse_ipvsadm

# ipvsadm 1.31 on Debian 12, `ipvsadm -Ln -t 10.0.0.100:80`
SAMPLE = """\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.0.0.100:80 wrr persistent 300
  -> 10.0.0.11:80                 Masq    3      1          12
  -> 10.0.0.12:80                 Route   0      0          4
"""


def test_real_servers_with_forwarding_weight_and_counters():
    assert parse_ipvsadm(SAMPLE) == {
        "10.0.0.11": dict(port=80, forward="Masq", weight=3, active=1, inactive=12),
        "10.0.0.12": dict(port=80, forward="Route", weight=0, active=0, inactive=4)}


def test_a_service_without_real_servers_has_none():
    assert parse_ipvsadm("\n".join(SAMPLE.splitlines()[:4])) == {}
