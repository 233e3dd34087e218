"""A load-balanced web service: client, director, real servers, the os-ken load balancer.

    with LoadBalancedService(web_service("wrr", weights=(3, 2, 1))) as lab:
        lab.get()                 # one HTTP request from client1 to the VIP
        lab.status()              # ipvsadm -Ln, as a dict
        lab.ctl.drain("web2")     # the control socket (a redlab.lbctl.LBClient)

Used by the load-balancer lab, the tests and the benchmark; ``redlab run lb`` is
:func:`run_scenario`, the same service run by the drill engine.
"""

import re
import time

from redlab.drill.gameday import CLIRunner
from redlab.lb import HealthChecker, format_status, lb_network, load, prepare_dr
from redlab.lbctl import LBClient
from redlab.net import Network
from redlab.wait import wait_until


def http_get(host, ip, port=80, path="/", timeout=2):
    """One curl from ``host``: ``(HTTP status or 0, the X-Served-By header or None)``."""
    out = host.cmd("curl -s -m %s -o /dev/null -D - -w 'STATUS=%%{http_code}' http://%s:%d%s"
                   % (timeout, ip, port, path))
    status = re.search(r"STATUS=(\d+)", out)
    served = re.search(r"(?im)^x-served-by: (\S+)", out)
    return (int(status.group(1)) if status else 0), (served.group(1) if served else None)


class LoadBalancedService:
    def __init__(self, service, name="lb", run_folder=None, checker=True, topo=None,
                 **controller_config):
        from topologies.service_lan import ServiceLanTopo
        self.service = load(service)
        self.topo = topo or ServiceLanTopo(servers=len(self.service.real_servers), dns=False)
        self.network = Network(self.topo, name=name, run_folder=run_folder,
                               **lb_network(self.service, **controller_config))
        self.use_checker = checker
        self.checker = None
        self.ctl = None             # the control socket's client, once the network runs

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            if self.checker:
                self.checker.stop()
        finally:
            self.network.__exit__(*exc)
        return False

    def start(self):
        net = self.network.start()
        self.ctl = LBClient.for_network(net)
        try:
            if self.service.lb_kind == "DR":
                prepare_dr(net, self.service)
            if self.use_checker:
                self.checker = HealthChecker(net["director"], self.service,
                                             socket_path=net.controller.socket_path).start()
            self.wait_servers_known()
        except BaseException:
            if self.checker:
                self.checker.stop()
            net.stop()
            raise
        return self

    def __getitem__(self, name):
        return self.network[name]

    @property
    def client(self):
        return self.network["client1"]

    def wait_servers_known(self):
        """The controller knows every real server's MAC (it asks by ARP when the switch connects)."""
        def known():
            servers = self.ctl.status().servers
            return all(s.mac for s in servers), {s.name: s.mac for s in servers}
        wait_until(known, 10, "the load balancer to learn the real servers' MACs")

    def get(self, path="/", timeout=2, host=None):
        """One HTTP request to the VIP; returns (status, served_by)."""
        return http_get(host or self.client, self.service.vip, self.service.port, path, timeout)

    def status(self):
        """The controller's ``status`` reply as a dict (``self.ctl.status()`` is typed)."""
        return self.ctl.status().raw

    def counts(self):
        return self.ctl.status().counts()

    def status_text(self):
        last = self.checker.last_results() if self.checker else None
        return format_status(self.ctl.status(), last)

    def scheduled(self, since=0.0):
        """Server names in scheduling order (the controller's ``scheduled`` events)."""
        return [e["server"] for e in self.network.controller.events("scheduled") if e["t"] >= since]


# ---------------------------------------------------------------------------------------
# `redlab run lb`: the service as a drill without faults, run by the drill engine
# ---------------------------------------------------------------------------------------

def scenario_drill(service):
    """The drill of ``redlab run lb``: the service on the service LAN (its real servers
    web1..webN), one HTTP probe from client1 to the VIP, no faults."""
    from redlab.drill.schema import check_drill
    from redlab.lb import service_dict
    service = load(service)
    return check_drill({
        "drill": "lb",
        "description": "the os-ken load balancer in front of the real servers",
        "network": {"topology": "service_lan",
                    "params": {"servers": len(service.real_servers), "dns": False},
                    "service": service_dict(service)},
        "probes": [{"name": "web", "type": "http", "from": "client1",
                    "url": "http://%s:%d/" % (service.vip, service.port), "interval": 0.05,
                    "timeout": 1.0}]})


def run_scenario(service, requests=12, cli=False, hold=0.0, run_folder=None, stdin=None,
                 out=print):
    """Bring the service up with the drill engine; then the Mininet CLI (``cli``), or
    ``hold`` seconds, or ``requests`` answers of the probe listed by server; the status
    (``ipvsadm -Ln`` and health) at the end.  Returns the run record."""
    from redlab.drill.engine import refuse_unsupported
    drill = scenario_drill(service)
    runner = _ScenarioRunner(drill, requests, cli, hold, stdin, out)
    return runner.run(refuse_unsupported(drill), run_folder)


class _ScenarioRunner(CLIRunner):
    """The drill's timeline phase is the scenario: nothing breaks, a person looks on."""

    def __init__(self, drill, requests, cli, hold, stdin, out):
        super().__init__(drill, "default", stdin=stdin, out=out)
        self.requests, self.cli, self.hold = requests, cli, hold

    def _timeline(self):
        svc = self.drill["network"]["service"]
        self.out("load balancer up: VIP %s:%d, run folder %s" % (
            svc["vip"], svc["port"], self.net.run.path))
        if self.cli:
            self.out("try: client1 curl -s http://%s/   (and `redlab lb status` in another "
                     "shell)" % svc["vip"])
            self._open_cli()
        elif self.hold:
            deadline = time.monotonic() + self.hold
            while time.monotonic() < deadline:
                time.sleep(0.2)             # holding the network up is the point here
        else:
            probe = self.probes["web"]

            def answered():
                good = [s for s in probe.samples() if s.ok and s.t >= self.t0]
                return len(good) >= self.requests, len(good)
            wait_until(answered, 30, "%d answers from the VIP" % self.requests)
            good = [s for s in probe.samples() if s.ok and s.t >= self.t0][:self.requests]
            self.out("%d requests from client1 to the VIP were served by: %s" % (
                len(good), " ".join(str(s.server) for s in good)))
        self.out(self.lb.status_text())
