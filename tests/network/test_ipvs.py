"""The load-balancer lab's comparison with the kernel's IPVS (keepalived + ipvsadm).

This machine's kernel may lack ip_vs: then starting says so in one sentence and builds
nothing (the conftest's leak check proves it); on a kernel with ip_vs (the student VM)
the same service runs for real, NAT and DR, and a failed server leaves the IPVS table.
"""

import collections

import pytest

from redlab import faults
from redlab.errors import RedlabError
from redlab.lb import web_service
from redlab.runs import registered_runs
from redlab.scenarios.ipvs import IpvsService
from redlab.system import kernel_has_ipvs
from redlab.wait import wait_until

HAS_IPVS = kernel_has_ipvs(load=True)


@pytest.mark.skipif(HAS_IPVS, reason="this kernel has ip_vs")
def test_without_ip_vs_starting_says_so_and_builds_nothing(run_folder):
    before = registered_runs()
    with pytest.raises(RedlabError) as info:
        IpvsService(web_service("rr"), run_folder=run_folder).start()
    message = str(info.value)
    assert "has no ip_vs (IPVS) module" in message and "student VM" in message
    assert "\n" not in message
    assert registered_runs() == before


@pytest.mark.ipvs
@pytest.mark.skipif(not HAS_IPVS, reason="this kernel has no ip_vs (see `redlab doctor`)")
@pytest.mark.parametrize("lb_kind, forward", [("NAT", "Masq"), ("DR", "Route")])
def test_ipvs_serves_and_takes_out_a_failed_server(run_folder, lb_kind, forward):
    service = web_service("rr", lb_kind=lb_kind, check="http", interval=0.5, timeout=0.5)
    with IpvsService(service, run_folder=run_folder) as lvs:
        assert {row["forward"] for row in lvs.servers().values()} == {forward}
        answers = collections.Counter(lvs.get(timeout=1) for _ in range(6))
        assert answers == {(200, "web1"): 2, (200, "web2"): 2, (200, "web3"): 2}, answers
        fault = faults.http_500(lvs["web2"].daemons["nginx"])
        wait_until(lambda: ("web2" not in lvs.servers(), lvs.ipvsadm()), 10,
                   "keepalived to take web2 out of IPVS")
        after = collections.Counter(lvs.get(timeout=1) for _ in range(6))
        assert after == {(200, "web1"): 3, (200, "web3"): 3}, after
        fault.undo()
        wait_until(lambda: ("web2" in lvs.servers(), lvs.ipvsadm()), 10,
                   "keepalived to put web2 back")
