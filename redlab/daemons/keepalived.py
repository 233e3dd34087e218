"""keepalived (VRRP): one VIP shared by two or more hosts.

Runs in the foreground (``-n -l -D``) with per-host pid files (hosts share one file
system).  A ``notify`` script appends ``<unix time> <state>`` to ``states.log`` on every
transition, which is how a run learns *when* a backup took over (time to detect).

``garp=False`` is keepalived whose gratuitous ARPs never reach the LAN.  keepalived
cannot be told to send none: its own parser answers ``garp_master_repeat 0`` with
"garp_master_repeat must be greater than 0, setting to 1".  So keepalived runs as it is
and :func:`redlab.faults.drop_garp` drops its gratuitous ARPs on the host's interface
(``garps_dropped()`` counts them); ordinary ARP replies for the VIP still go out.
"""

import time

from redlab.daemons.base import Daemon
from redlab.errors import ConfigError
from redlab.wait import wait_until

NOTIFY = """#!/bin/sh
# keepalived notify: TYPE NAME STATE PRIORITY
echo "$(date +%s.%N) $3 $2" >> "{log}"
"""


class Keepalived(Daemon):
    name = "keepalived"
    binary = "keepalived"
    template = "keepalived.conf.j2"
    config_name = "keepalived.conf"

    def __init__(self, node, vip, vrid=51, priority=100, state="BACKUP", interface=None,
                 advert_int=1, use_vmac=False, nopreempt=False, garp=True, instance="VI_1",
                 garp_master_delay=None, check_http=None, **options):
        super().__init__(node, **options)
        if not 1 <= vrid <= 255:
            raise ConfigError("%s/keepalived: virtual_router_id must be 1-255, not %r"
                              % (node.name, vrid))
        if not 1 <= priority <= 255:
            raise ConfigError("%s/keepalived: priority must be 1-255, not %r" % (node.name, priority))
        self.vips = [vip] if isinstance(vip, str) else list(vip)
        self.vrid = vrid
        self.priority = priority
        self.state = state
        self.interface = interface or node.defaultIntf().name
        self.advert_int = advert_int
        self.use_vmac = use_vmac
        self.nopreempt = nopreempt
        self.garp = garp
        self.instance = instance
        self.garp_master_delay = garp_master_delay
        self.garp_filter = None
        # the application check (vrrp_script + track_script): None = VRRP alone, which
        # only notices a dead host or keepalived, never a dead web service
        self.check_http = check_http

    @property
    def states_log(self):
        return self.path("states.log")

    @property
    def vmac(self):
        return "00:00:5e:00:01:%02x" % self.vrid

    @property
    def vmac_interface(self):
        return "vrrp.%d" % self.vrid

    def values(self):
        return dict(instance=self.instance, state=self.state, interface=self.interface,
                    vrid=self.vrid, priority=self.priority, advert_int=self.advert_int,
                    use_vmac=self.use_vmac, nopreempt=self.nopreempt,
                    vips=self.vips, notify_script=str(self.path("notify.sh")),
                    vrrp_garp_master_delay=self.garp_master_delay,
                    check=self.http_check_values(), version=self.vrrp_version)

    @property
    def vrrp_version(self):
        """VRRPv2 counts ``advert_int`` in whole seconds (keepalived rounds 0.1 to an
        integer); a fraction of a second needs VRRPv3 (RFC 5798, centiseconds)."""
        return 3 if self.advert_int != int(self.advert_int) else None

    def http_check_values(self):
        """``check_http=dict(port=80, path="/", interval=1, fall=2, rise=2, timeout=1)``:
        curl the host's own web service; failing ``fall`` times in a row puts the
        instance in FAULT, so it releases the VIP and a backup takes over."""
        if not self.check_http:
            return None
        c = dict(port=80, path="/", interval=1, fall=2, rise=2, timeout=1)
        c.update(self.check_http if isinstance(self.check_http, dict) else {})
        c["url"] = "http://%s:%d%s" % (self.node.IP(), c["port"], c["path"])
        from redlab.system import require_binary
        c["curl"] = require_binary("curl", "%s (its vrrp_script)" % self.where)
        return c

    def prepare(self):
        if self.use_vmac:
            # keepalived's advice for use_vmac: the base interface must not answer ARP for
            # the VIP (it lives on vrrp.N), or clients learn the physical MAC instead
            self.node.cmd("sysctl -qw net.ipv4.conf.%s.arp_ignore=1 net.ipv4.conf.%s.arp_announce=2"
                          % (self.interface, self.interface))
        script = self.path("notify.sh")
        script.write_text(NOTIFY.format(log=self.states_log))
        script.chmod(0o755)

    def dry_run(self):
        return [self.binary_path, "-t", "-f", str(self.config_file)]

    def command(self):
        return [self.binary_path, "-n", "-l", "-D", "-P", "-f", str(self.config_file),
                "-p", str(self.path("keepalived.pid")), "-r", str(self.path("vrrp.pid")),
                "-c", str(self.path("checkers.pid")), "-i", self.node.name]

    def garps_dropped(self):
        """With ``garp=False``: how many gratuitous ARPs the filter dropped (else None)."""
        return self.garp_filter.dropped() if self.garp_filter else None

    def stop(self, timeout=5.0):
        super().stop(timeout)
        if self.garp_filter is not None:
            self.garp_filter.undo()
            self.garp_filter = None

    def set_priority(self, priority, timeout=10.0):
        """Take ``priority`` live: re-render, dry-run, reload (SIGHUP) and wait until
        keepalived logs "Reload complete".

        A reload keeps each instance's state (a MASTER stays MASTER); the new priority
        only counts at the next election (see :func:`redlab.faults.keepalived_priority`).
        A keepalived that is not running takes it at its next start."""
        if not 1 <= priority <= 255:
            raise ConfigError("%s: priority must be 1-255, not %r" % (self.where, priority))
        self.priority = priority
        if not self.running:
            return self
        done = self._reloads()
        self.reload()
        wait_until(lambda: (self._reloads() > done, self.log_tail()), timeout,
                   "%s to finish its reload" % self.where)
        return self

    def _reloads(self):
        try:
            return self.log_file.read_text(errors="replace").count("Reload complete")
        except FileNotFoundError:
            return 0

    def transitions(self):
        """``[(time, state), ...]`` from the notify script, oldest first."""
        try:
            lines = self.states_log.read_text().splitlines()
        except FileNotFoundError:
            return []
        result = []
        for line in lines:
            parts = line.split()
            if len(parts) >= 2:
                result.append((float(parts[0]), parts[1]))
        return result

    def current_state(self):
        states = self.transitions()
        return states[-1][1] if states else None

    def ready(self):
        state = self.current_state()
        return state in ("BACKUP", "MASTER", "FAULT"), "state %s" % state

    def start(self):
        self.start_time = time.time()
        if not self.garp and self.garp_filter is None and not self.running:
            from redlab.faults import drop_garp
            self.garp_filter = drop_garp(self.node, [v.split("/")[0] for v in self.vips],
                                         self.interface)
        try:
            return super().start()
        except BaseException:
            self.stop()
            raise


class KeepalivedLvs(Daemon):
    """keepalived as an IPVS director: the ``virtual_server`` of one service, checkers only.

    The same service description as redlab's os-ken load balancer (``controllers.service``),
    so the two can be compared.  Runs only keepalived's checker process (``-C``), which
    programs the kernel's IPVS table of the host's namespace; the VIP itself is put on the
    director by whoever runs it (:class:`redlab.scenarios.ipvs.IpvsService`).  Real servers
    start out of the table (``alpha``) and join when their first check passes, as in
    redlab's controller.  Needs a kernel with ip_vs.
    """

    name = "keepalived-lvs"
    binary = "keepalived"
    template = "keepalived-lvs.conf.j2"
    config_name = "keepalived.conf"

    def __init__(self, node, service, **options):
        super().__init__(node, **options)
        self.service = service

    def values(self):
        return lvs_values(self.service)

    def dry_run(self):
        return [self.binary_path, "-t", "-f", str(self.config_file)]

    def command(self):
        return [self.binary_path, "-n", "-l", "-D", "-C", "-f", str(self.config_file),
                "-p", str(self.path("keepalived.pid")), "-c", str(self.path("checkers.pid")),
                "-i", self.node.name]

    def ready(self):
        service = "%s:%d" % (self.service.vip, self.service.port)
        out = self.node.cmd("ipvsadm -Ln -t %s 2>&1" % service).strip()
        return ("TCP  %s" % service in out,
                out.splitlines()[-1] if out else "ipvsadm printed nothing")


def scheduler_flags(service):
    """keepalived's words for the scheduler's flags (``sh-port``, ``mh-fallback``...): the
    service's ``sh_*``/``mh_*`` settings for its own ``lb_algo`` (the others' are
    ignored, as keepalived ignores them)."""
    algo = str(service.lb_algo).lower()
    return ["%s-%s" % (algo, name) for name, on in sorted(service.scheduler_options().items())
            if on]


def lvs_values(service):
    """The keepalived ``virtual_server`` values of a redlab service (same names, same units)."""
    hc = service.health_check
    return dict(name=service.name, vip=service.vip, port=service.port,
                delay_loop=hc.interval, lb_algo=service.lb_algo, lb_kind=service.lb_kind,
                scheduler_flags=scheduler_flags(service),
                persistence_timeout=service.persistence_timeout,
                inhibit_on_failure=service.inhibit_on_failure, check_type=hc.type,
                path=hc.path, status=hc.status, timeout=hc.timeout,
                retry=max(0, hc.fall - 1),
                servers=[dict(ip=s.ip, port=s.port, weight=s.weight)
                         for s in service.real_servers])
