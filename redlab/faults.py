"""Faults: each breaks one thing on purpose and returns a :class:`Fault` that undoes it.

    fault = host_crash(net, "web1")     # fault.at: when it happened (time.time())
    ...                                 # assert failover
    fault.undo()                        # assert recovery

Like IPMininet's ``runFailurePlan``/``restoreIntfs``: what was broken is recorded, so
the undo restores exactly that.  Every fault has a one-line ``description``.
"""

import os
import signal
import time

from redlab.errors import RedlabError


class Fault:
    def __init__(self, description, undo):
        self.description = description
        self.at = time.time()
        self._undo = undo
        self.undone_at = None

    def undo(self):
        if self.undone_at is None:
            self._undo()
            self.undone_at = time.time()
        return self

    def __repr__(self):
        return "<Fault %s at %.3f%s>" % (self.description, self.at,
                                         " (undone)" if self.undone_at else "")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.undo()
        return False


def _node(net, node):
    return net[node] if isinstance(node, str) else node


def _routes(node):
    return [line.strip() for line in node.cmd("ip -4 route show").splitlines() if line.strip()]


def _restore_routes(node, routes):
    current = set(_routes(node))
    for route in routes:
        if route not in current and " proto kernel " not in " %s " % route:
            node.cmd("ip route replace " + route.replace(" linkdown", ""))


def link_down(net, a, b):
    """Pull the cable between ``a`` and ``b`` (both ends go down)."""
    a, b = _node(net, a), _node(net, b)
    if not a.connectionsTo(b):
        raise RedlabError("there is no link between %s and %s" % (a.name, b.name))
    saved = {node: _routes(node) for node in (a, b) if node.inNamespace}
    net.net.configLinkStatus(a.name, b.name, "down")

    def undo():
        net.net.configLinkStatus(a.name, b.name, "up")
        for node, routes in saved.items():
            _restore_routes(node, routes)
    return Fault("link %s-%s down" % (a.name, b.name), undo)


def host_crash(net, host):
    """The host dies: every process in it is killed and its interfaces go down.

    The undo is a reboot: interfaces created at run time (e.g. keepalived's ``vrrp.N``
    macvlan) are gone, addresses and routes are those of the topology again, the ARP
    cache is empty, and the daemons that were running start again.
    """
    host = _node(net, host)
    routes = _routes(host)
    running = [d for d in host.daemons.values() if d.running]
    for daemon in running:
        daemon.signal(signal.SIGKILL)
    for daemon in running:
        daemon.stop()                 # reaps it and forgets its pid
    for pid in host.processes():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    intfs = [i for i in host.intfList() if i.name != "lo"]
    for intf in intfs:
        host.cmd("ip link set dev %s down" % intf.name)
    at = time.time()

    def undo():
        configured = {i.name for i in intfs} | {"lo"}
        for name in host.cmd("ls /sys/class/net").split():
            if name not in configured:
                host.cmd("ip link del dev %s" % name)
        for intf in intfs:
            host.cmd("ip -4 addr flush dev %s" % intf.name)
            if intf.ip:
                host.cmd("ip addr add %s/%s dev %s" % (intf.ip, intf.prefixLen, intf.name))
            host.cmd("ip link set dev %s up" % intf.name)
        host.cmd("ip neigh flush all")
        _restore_routes(host, routes)
        for daemon in running:
            daemon.start()
    fault = Fault("host %s crashed" % host.name, undo)
    fault.at = at
    return fault


def daemon_stop(daemon):
    """Stop a daemon cleanly (its host stays up)."""
    daemon.stop()
    return Fault("%s stopped" % daemon.where, daemon.start)


def http_500(nginx):
    """The web service keeps running but answers every request with HTTP 500."""
    nginx.set_mode("error500")
    _wait_status(nginx, 500)

    def undo():
        nginx.set_mode("normal")
        _wait_status(nginx, 200)
    return Fault("%s answers HTTP 500" % nginx.where, undo)


def _wait_status(nginx, status):
    from redlab.wait import wait_until

    def probe():
        got = nginx.node.cmd("curl -s -o /dev/null -m 1 -w '%%{http_code}' http://127.0.0.1:%d/"
                             % nginx.port).strip()
        return got == str(status), "HTTP %s" % got
    wait_until(probe, 10, "%s to answer HTTP %d after its reload" % (nginx.where, status))


def hang(daemon):
    """The daemon hangs: its processes are paused (SIGSTOP).

    The kernel still completes TCP handshakes into the listen backlog, so a port check
    passes, but no request is ever answered -- until the undo (SIGCONT).
    """
    if not daemon.running:
        raise RedlabError("%s is not running, so it cannot hang" % daemon.where)
    daemon.signal(signal.SIGSTOP)
    return Fault("%s hangs" % daemon.where, lambda: daemon.signal(signal.SIGCONT))


def controller_kill(net):
    """``kill -9`` the controller; the undo starts it again and waits for the switches."""
    if net.controller is None:
        raise RedlabError("this network runs without a controller")
    net.controller.kill()

    def undo():
        net.controller.start()
        net._wait_connected()
    return Fault("controller killed", undo)
