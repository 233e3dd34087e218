"""The demo scenario, measured: the VIP moves, and the client's view says how fast.

default keepalived: the VIP moves to web2's own MAC; the client's ARP entry changes
because of web2's gratuitous ARP.  use_vmac: the ARP entry stays on the virtual MAC,
which moved to another switch port; the controller's GARP reaction is what saves it,
as the run without that reaction shows.
"""

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

from redlab import addressing as ap
from redlab.scenarios import vrrp_failover

VMAC = "00:00:5e:00:01:33"


def assert_failed_over(result):
    t = result.timeline
    assert t.served_before == "web1"
    assert t.recovered, t
    assert t.served_after == "web2"
    assert result.vip_holder_before == "web1" and result.vip_holder_after == "web2"
    # keepalived: master down after 3 x advert_int + skew (~3.6 s with advert_int 1)
    assert t.time_to_detect is not None and 2.5 < t.time_to_detect < 5, t
    # recovery is timed by the request's send time, detection by keepalived's notify
    # script (late on a loaded machine): no request is answered before web2 holds the
    # VIP (ip monitor's clock), but one sent a probe interval before it may be
    assert result.vip_taken_after is not None, result
    assert result.vip_taken_after - 0.1 <= t.time_to_recover < t.time_to_detect + 2, (
        result.vip_taken_after, t)
    assert 0 < t.requests_lost < t.requests_sent


def test_default_keepalived_moves_vip_to_backup_mac(redlab_cmd, run_folder):
    """Through the CLI, as a person runs it: `redlab run vrrp-failover --json FILE`."""
    out = subprocess.run(redlab_cmd + ["run", "vrrp-failover", "--json", str(run_folder / "r.json")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "served after recovery   : web2" in out.stdout
    data = json.loads((run_folder / "r.json").read_text())
    result = SimpleNamespace(**data)
    result.timeline = SimpleNamespace(**data["timeline"])
    assert_failed_over(result)
    assert ap.mac_for(ap.web(1)) in result.arp_before
    assert ap.mac_for(ap.web(2)) in result.arp_after
    moved = [e for e in result.controller_events if e["event"] == "ip_moved"]
    assert moved and moved[0]["ip"] == ap.vip(1) and moved[0]["gratuitous"]
    assert moved[0]["new_mac"] == ap.mac_for(ap.web(2))


def test_use_vmac_recovers_through_the_controller_garp_reaction(run_folder):
    result = vrrp_failover.run(use_vmac=True, run_folder=run_folder)
    assert_failed_over(result)
    assert "report (swimlanes of what happened)" in result.summary()
    assert Path(result.report).is_file()
    assert VMAC in result.arp_before and VMAC in result.arp_after
    moved = [e for e in result.controller_events if e["event"] == "mac_moved"]
    assert len(moved) == 1 and moved[0]["mac"] == VMAC and moved[0]["flows_replaced"]
    assert moved[0]["old_port"] != moved[0]["new_port"]


def test_use_vmac_without_garp_reaction_never_recovers(run_folder):
    result = vrrp_failover.run(use_vmac=True, garp_reaction=False, run_folder=run_folder)
    t = result.timeline
    assert result.vip_holder_after == "web2"        # keepalived did its part ...
    assert t.time_to_detect is not None
    assert not t.recovered                          # ... but the stale flow still points at web1
    # nothing answered once the first request failed: the only answers after the crash's
    # mark are to requests sent while it was under way (web1's nginx not yet killed), the
    # crash's own fraction of a second, however many requests a loaded machine fits in it
    assert not [s for s in t.samples if s.t >= t.first_failure_at and s.ok]
    assert t.first_failure_at - t.fault_at < 0.5, (t.fault_at, t.first_failure_at)
    assert t.requests_lost > 0.9 * t.requests_sent
    moved = [e for e in result.controller_events if e["event"] == "mac_moved"]
    assert moved and not moved[0]["flows_replaced"]
