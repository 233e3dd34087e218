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
from redlab.wait import wait_until


class Fault:
    def __init__(self, description, undo):
        self.description = description
        self.at = time.time()
        self._undo = undo
        self.undo_began = None      # when the undo was started (its effect can come any time after)
        self.undone_at = None       # when it returned

    def undo(self):
        if self.undone_at is None:
            self.undo_began = time.time()
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


def _exited(pids):
    """``(all exited, those left)``: a zombie has exited (its sockets are closed)."""
    left = []
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] != "Z":
                    left.append(pid)
        except (FileNotFoundError, ProcessLookupError):   # gone (reaped while being read)
            pass
    return not left, left


def host_crash(net, host):
    """The host dies: every process in it is killed and its interfaces go down.

    In that order, always: the processes have exited (their peers got the FIN or RST of
    each socket) before the interfaces go dark -- what peers see when a host's services
    die with it.  A host that vanishes mid-conversation is :func:`link_down` first.

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
    killed = host.processes()
    for pid in killed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # A killed process closes its sockets only when it exits, and its peers learn of it
    # (FIN, RST) then: wait for it, so that they always do before the port goes dark,
    # whatever the load.  Else a peer's idle connection outlives the crash unnoticed
    # (lab 03: Squid reused its pooled connection to web2 and a phone's request hung).
    wait_until(lambda: _exited(killed), 5, "%s's killed processes to exit" % host.name)
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


def keepalived_priority(keepalived, priority):
    """A planned switchover: ``keepalived`` takes a new VRRP priority, live (a reload).

    A reload keeps each instance's state and only changes what the next election sees
    (measured with keepalived 2.2.7 on vrrp_pair): with preempt, a BACKUP raised above
    the master discards the master's adverts ("received lower priority advert -
    discarding") and takes the VIP when its master-down timer runs out (3 x advert_int
    + skew), and the old master steps down at the new master's first advert.  Only a
    request in flight at the handover can fail (its SYN reached the old master, its data
    the new one after the gratuitous ARP: reset; seen once in three runs).  A MASTER
    lowered below a backup keeps the VIP until that backup's timer runs out.  The undo
    puts the old priority back the same way.
    """
    old = keepalived.priority
    keepalived.set_priority(priority)
    return Fault("%s priority %d -> %d" % (keepalived.where, old, priority),
                 lambda: keepalived.set_priority(old))


COMMAND_TIMEOUT = 60.0


class Command(Fault):
    """A shell command run in a host (:func:`command`), and the one that undoes it."""

    def __init__(self, node, run, undo=None, name="command", timeout=COMMAND_TIMEOUT,
                 on_result=None):
        self.node, self.command, self.undo_command = node, run, undo
        self.name, self.timeout, self.on_result = name, timeout, on_result
        self.results = []
        super().__init__("%s: `%s`" % (node.name, run), self._undo_command)

    def do(self):
        self.at = time.time()
        self.description += " " + _outcome(self._run("run", self.command))
        if self.undo_command is None:
            self.description += "; no undo command, so its undo does nothing"
        return self

    @property
    def status(self):
        return self.results[0]["status"]

    @property
    def output(self):
        return self.results[0]["output"]

    def _undo_command(self):
        if self.undo_command is not None:
            self._run("undo", self.undo_command)

    def _run(self, step, command):
        suffix = "" if step == "run" else "." + step
        path = self.node.run.folder(self.node.name, "commands") / (self.name + suffix + ".txt")
        began = time.time()
        status, output = shell(self.node, command, path, self.timeout)
        result = dict(step=step, command=command, status=status, output=output, began=began,
                      ended=time.time(), host=self.node.name, file=str(path))
        with open(path, "a") as log:
            log.write("%s%s\n" % ("" if output.endswith("\n") or not output else "\n",
                                  _outcome(result)))
        self.results.append(result)
        if self.on_result is not None:
            self.on_result(result)
        return result


def command(node, run, undo=None, name="command", timeout=COMMAND_TIMEOUT, on_result=None):
    """An operator's step: ``run`` (a shell command, such as an upgrade step) in ``node``;
    the undo runs ``undo`` (None: the undo does nothing, and the description says so).

    A command that fails is a result, not an error: each run's exit status (None when
    it was killed after ``timeout`` seconds), output and times are in ``fault.results``
    (``fault.status`` and ``fault.output`` for the command itself), in the description,
    and in the host's run folder (``<run>/<host>/commands/<name>.txt``, and
    ``<name>.undo.txt``); ``on_result(result)`` hears of each as it ends.
    """
    return Command(node, run, undo, name, timeout, on_result).do()


def _outcome(result):
    """``exited 0 (took 0.01 s)``, with the output's last line when there is one."""
    took = result["ended"] - result["began"]
    what = "killed after %.0f s" % took if result["status"] is None else \
        "exited %d" % result["status"]
    lines = result["output"].strip().splitlines()
    return "%s (took %.2f s)%s" % (what, took, ": %s" % lines[-1].strip() if lines else "")


def shell(node, command, log, timeout=COMMAND_TIMEOUT):
    """Run ``command`` with ``sh -c`` inside ``node`` (in the host's run folder) and
    return ``(exit status, output)``; the output (stdout and stderr) goes to the file
    ``log`` after a ``$ command`` line.

    The command runs in a process group of its own, killed when ``sh`` ends: what it put
    in the background (``&``) does not outlive the step, and a background job holding
    the output open cannot stall the timeline.  Past ``timeout`` (or if the caller is
    interrupted) the group is killed and the status is None."""
    import subprocess
    with open(log, "w") as out:
        out.write("$ %s\n" % command)
        out.flush()
        start = out.tell()
        proc = node.popen(["sh", "-c", command], stdout=out, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, cwd=str(node.run.folder(node.name)))
    status = None
    try:
        status = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)     # mnexec -d: sh leads its own group
        except ProcessLookupError:
            pass
        proc.wait()
    with open(log, errors="replace") as out:
        out.seek(start)
        return status, out.read()


class GarpDrop(Fault):
    """A :class:`Fault` whose ``dropped()`` says how many gratuitous ARPs it dropped."""

    HANDLE = "7"

    def __init__(self, host, interface, vips):
        self.host, self.interface, self.vips = host, interface, list(vips)
        super().__init__("%s: gratuitous ARPs for %s dropped on %s" % (
            host.name, ", ".join(self.vips), interface), self._remove)

    def install(self):
        import ipaddress
        intf, h = self.interface, self.HANDLE
        commands = [
            "tc qdisc replace dev %s root handle %s: htb default 1" % (intf, h),
            "tc class replace dev %s parent %s: classid %s:1 htb rate 10gbit quantum 60000"
            % (intf, h, h),
            "tc class replace dev %s parent %s: classid %s:2 htb rate 10gbit quantum 60000"
            % (intf, h, h),
            "tc qdisc replace dev %s parent %s:2 handle %s2: pfifo limit 0" % (intf, h, h)]
        for vip in self.vips:
            ip = int(ipaddress.ip_address(vip.split("/")[0]))
            # ARP header after the Ethernet header: sender IP at bytes 14-17 (u32 wants
            # 4-byte aligned offsets, so two u16), target IP at bytes 24-27
            commands.append("tc filter add dev %s parent %s: protocol arp prio 1 u32 "
                            "match u16 0x%04x 0xffff at 14 match u16 0x%04x 0xffff at 16 "
                            "match u32 0x%08x 0xffffffff at 24 flowid %s:2"
                            % (intf, h, ip >> 16, ip & 0xffff, ip, h))
        for command in commands:
            out = self.host.cmd(command + " 2>&1; echo rc=$?")
            if not out.strip().endswith("rc=0"):
                self._remove()
                raise RedlabError("%s: could not install the gratuitous-ARP filter (%s): %s"
                                  % (self.host.name, command, out.strip()))
        self.at = time.time()
        return self

    def dropped(self):
        """Gratuitous ARPs dropped so far (the pfifo's drop counter), None once removed."""
        import re
        if not self.host.shell:
            return None
        out = self.host.cmd("tc -s qdisc show dev %s" % self.interface)
        m = re.search(r"qdisc pfifo %s2: .*?dropped (\d+)" % self.HANDLE, out, re.S)
        return int(m.group(1)) if m else None

    def _remove(self):
        if self.host.shell:
            self.host.cmd("tc qdisc del dev %s root 2>/dev/null" % self.interface)


def drop_garp(host, vips, interface=None):
    """Gratuitous ARPs for ``vips`` never leave ``host``: neighbours keep their stale entries.

    A tc filter on the host's own interface (HTB root; a u32 match on ARP with sender IP =
    target IP = a VIP sends it to a class whose pfifo holds 0 packets) drops every
    gratuitous ARP, request or reply, for the VIPs before the wire, and counts them
    (``fault.dropped()``).  Ordinary ARP replies for a VIP still go out.  This is how
    ``Keepalived(garp=False)`` works: keepalived itself always sends at least one
    (``garp_master_repeat 0`` -> "garp_master_repeat must be greater than 0, setting to 1").
    """
    vips = [vips] if isinstance(vips, str) else list(vips)
    return GarpDrop(host, interface or host.defaultIntf().name, vips).install()
