"""The harness side of the load balancer: service file, controller, health checker.

    svc = web_service(lb_algo="wrr", weights=(3, 2, 1), check="http")
    with Network(ServiceLanTopo(), **lb_network(svc)) as net:
        checker = HealthChecker(net["director"], svc).start()
        ...
        print(format_status(LBClient.for_network(net).status()))

The controller (``controllers.lb``) and the checker (``redlab.healthcheck``, inside
the director host) both read the same service description; the checker reports health
changes to the controller's Unix socket, which also answers ``redlab lb ...`` (through
:class:`redlab.lbctl.LBClient`).
"""

import os
import socket
import subprocess

import yaml

from redlab import addressing
from redlab.agent import HostAgent
from redlab.errors import ConfigError, RedlabError
from redlab.runs import owner_alive, registered_runs
from redlab.sandbox import sandboxes_dir
from redlab.wait import wait_until

LB_APP = "controllers.lb"


def web_service(lb_algo="wlc", servers=3, weights=None, check="http", lb_kind="NAT",
                interval=0.2, timeout=0.5, rise=2, fall=2, **extra):
    """The usual lab service: VIP 1 on port 80 in front of web1..webN (from the address plan)."""
    from controllers.service import ServiceConfigError, parse_service
    weights = list(weights or [1] * servers)
    data = dict(name="web", vip=addressing.vip(1), port=80, lb_algo=lb_algo, lb_kind=lb_kind,
                health_check=dict(type=check, interval=interval, timeout=timeout, rise=rise,
                                  fall=fall, path="/health"),
                real_servers=[dict(name="web%d" % n, ip=addressing.web(n), port=80,
                                   weight=weights[n - 1]) for n in range(1, servers + 1)])
    data.update(extra)
    try:
        return parse_service(data)
    except ServiceConfigError as exc:
        raise ConfigError(str(exc)) from None


def load(path_or_service):
    from controllers.service import ServiceConfigError, load_service
    if not isinstance(path_or_service, (str, os.PathLike)):
        return path_or_service
    try:
        return load_service(path_or_service)
    except ServiceConfigError as exc:
        raise ConfigError(str(exc)) from None


def service_dict(service):
    from controllers.service import service_to_dict
    return service_to_dict(service)


def lb_network(service, **controller_config):
    """Keyword arguments for :class:`redlab.net.Network` that run the load balancer."""
    config = dict(service=service_dict(load(service)))
    config.update(controller_config)
    return dict(apps=(LB_APP,), controller_config=config)


def prepare_dr(net, service):
    """Direct routing: each real server holds the VIP on lo and never answers ARP for it."""
    for spec in service.real_servers:
        host = next(h for h in net.hosts if h.IP() == spec.ip)
        host.cmd("ip addr replace %s/32 dev lo" % service.vip)
        for scope in ("all", host.defaultIntf().name):
            host.cmd("sysctl -qw net.ipv4.conf.%s.arp_ignore=1 net.ipv4.conf.%s.arp_announce=2"
                     % (scope, scope))


class HealthChecker(HostAgent):
    """``redlab.healthcheck`` inside the director host, for one service."""

    module = "redlab.healthcheck"
    what = "health checker"

    def __init__(self, host, service, socket_path=None, check_type=None, name="health"):
        super().__init__(host, host.run.file(host.name, "%s.jsonl" % name))
        self.service = load(service)
        self.socket_path = socket_path
        self.check_type = check_type
        self.service_file = host.run.file(host.name, "%s-service.yaml" % name)

    @property
    def log(self):
        return self.out

    def start(self):
        self.service_file.write_text(yaml.safe_dump(service_dict(self.service), sort_keys=False))
        args = ["--service", self.service_file, "--log", self.out]
        if self.socket_path:
            args += ["--socket", self.socket_path]
        if self.check_type:
            args += ["--type", self.check_type]
        self.spawn(args)
        wait_until(lambda: (self.check_alive() and
                            len(self.results()) >= len(self.service.real_servers),
                            len(self.results())), 10, "the first health checks")
        return self

    def results(self):
        return [r for r in self.lines() if "event" not in r]

    def transitions(self, server=None, state=None, since=0.0):
        return [r for r in self.lines() if r.get("event") == "health" and r["t"] >= since
                and (server is None or r["server"] == server)
                and (state is None or r["state"] == state)]

    def last_results(self):
        last = {}
        for r in self.results():
            last[r["server"]] = r
        return last


# -- talking to a running load balancer -------------------------------------------------

def live_socket():
    """The control socket of the running load balancer (for `redlab lb` in a second shell).

    Its own runs first, then those of the sandboxes below this state folder (each
    ``redlab run lb`` has one: their pids mean nothing here, so a socket counts as live
    when it accepts a connection).
    """
    for entry in registered_runs():
        if owner_alive(entry):
            for path in entry.get("files", []):
                if path.endswith(".sock") and os.path.exists(path):
                    return path, entry
    for path in sorted(sandboxes_dir().glob("**/ctl-*.sock")):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                s.connect(str(path))
        except OSError:
            continue
        return str(path), {"id": path.parent.name}
    raise RedlabError("no load balancer is running; start one in another shell with "
                      "`redlab run lb --cli` (or --hold SECONDS)")


def format_status(status, last_results=None):
    """``ipvsadm -Ln`` style, plus health, from a :class:`redlab.lbctl.ServiceStatus`;
    the scheduler's flags as ipvsadm prints them, and a last line saying where new
    connections are scheduled and how exactly."""
    flags = status.raw.get("service", {}).get("flags", [])
    forward = {"NAT": "Masq", "DR": "Route"}.get(status.lb_kind, status.lb_kind)
    lines = ["IP Virtual Server (redlab os-ken load balancer)",
             "Prot LocalAddress:Port Scheduler Flags",
             "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn Health LastCheck",
             "TCP  %s:%d %s%s%s" % (status.vip, status.port, status.lb_algo,
                                    " (%s)" % ",".join(flags) if flags else "",
                                    " persistent %d" % status.persistence_timeout
                                    if status.persistence_timeout else "")]
    for s in status.servers:
        last = (last_results or {}).get(s.name)
        check = ("%s %s" % ("ok" if last["ok"] else "FAIL", last["detail"])) if last else s.reason
        lines.append("  -> %-28s %-7s %-6d %-10d %-9d %-6s %s" % (
            "%s:%d (%s)" % (s.ip, s.port, s.name), forward, s.weight, s.active,
            s.inactive, s.health, check))
    if status.path:
        # where new connections are scheduled, and how exactly (controllers/lbcore.py)
        lines.append("Scheduling: %s -- %s" % (
            {"slots": "in the switch (256 slots)", "per_client": "per client",
             "controller": "by the controller"}.get(status.path["mode"], status.path["mode"]),
            status.path["exactness"]))
        if status.path.get("counting"):
            lines.append("Counting: %s" % status.path["counting"])
    return "\n".join(lines)


def render_keepalived_lvs(service, node_name, path):
    """The same service as a keepalived ``virtual_server`` (IPVS), checked with ``keepalived -t``.

    On a kernel with ip_vs (a stock student VM) this file runs the real thing on the
    director; where the kernel lacks ip_vs it still shows the mapping, and the dry run
    proves the configuration is valid.  Returns ``(ok, keepalived's output)``.
    """
    from redlab.daemons.base import render_template
    from redlab.daemons.keepalived import lvs_values
    from redlab.system import require_binary
    text = render_template("keepalived-lvs.conf.j2", dict(node=node_name, **lvs_values(service)),
                           "%s/keepalived-lvs" % node_name)
    path.write_text(text)
    result = subprocess.run([require_binary("keepalived"), "-t", "-f", str(path)],
                            capture_output=True, text=True)
    return result.returncode == 0, (result.stderr + result.stdout).strip()
