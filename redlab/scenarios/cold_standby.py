"""A router in service and a cold spare beside it (コールドスタンバイ): lab 01's harness.

Both routers are configured from one Jinja2 template (the student's ``router.j2``) with
each router's values (``r1.yaml``, ``r2.yaml``).  A rendered configuration is one command
per line, run in order on the router::

    hostname r1                               (checked, not applied: hosts share it)
    sysctl -w net.ipv4.ip_forward=1           (sysctl -w, keys under net. only)
    ip addr add ADDRESS/24 dev eth0           (ip addr/link/route/neigh/rule)

Ports are named as on the router's case, ``eth0`` and ``eth1``, the same on both routers
(identical hardware); in the emulation r2's ``eth0`` is the interface ``r2-eth0``.

This module holds what the lab's story needs but does not tell: rendering and diffing the
configurations (:func:`render_all`, :func:`diff`), applying one to a router jailed
(:func:`apply_config`), moving cables as a person does (:func:`rewire`), reading what a
router really runs (:func:`running_config`, :func:`running_diff`) and what the client
saw (:class:`Bench`, :func:`recovery`).  It works on ``topologies/cold_standby.py``.
"""

import difflib
import re
import shlex
import time
from dataclasses import dataclass, field

import yaml

from controllers.validation import bounded_safe_load
from redlab import observe
from redlab.errors import ConfigError, RedlabError, WaitTimeout
from redlab.probe import analyse
from redlab.recorders import ArpCapture
from redlab.student import ScriptRun, render_templates, template_error
from redlab.wait import wait_until

TEMPLATE = "router.j2"
ACTIVE, SPARE = "r1", "r2"
IP_OBJECTS = {"addr", "address", "link", "route", "neigh", "rule"}
IP_OPTIONS = {"-4", "-6"}      # no -n/-netns/-batch: a configuration stays in its router
APPLY_TIMEOUT = 10.0           # s a whole configuration may take to apply
# what a router runs that its configuration decides, beyond the sysctls it sets itself
ROUTER_SYSCTLS = ("net.ipv4.ip_forward", "net.ipv4.conf.all.arp_notify")


# -- the configuration: one template, one values file per router -------------------------

def values(submission, router):
    """The values of ``<router>.yaml`` (a mapping whose ``hostname`` is ``router``)."""
    path = submission / ("%s.yaml" % router)
    if not path.exists():
        raise ConfigError("the submission has no %s.yaml (looked in %s); start from the lab's "
                          "submission/ folder" % (router, submission))
    try:
        data = bounded_safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError("%s.yaml is not valid YAML: %s" % (router, exc)) from None
    if not isinstance(data, dict):
        raise ConfigError("%s.yaml must be a mapping of values (hostname: ..., interfaces: ...)"
                          % router)
    if data.get("hostname") != router:
        raise ConfigError("%s.yaml says hostname %r; each values file names its own router "
                          "(hostname: %s)" % (router, data.get("hostname"), router))
    return data


def render_all(submission, routers=(ACTIVE, SPARE)):
    """``{router: configuration text}``: ``router.j2`` rendered with each ``<router>.yaml``.

    The template is the student's code: it renders in Jinja2's sandboxed environment, in
    a separate jailed process (:func:`redlab.student.render_templates`), never in the
    grader; a template that reaches for Python is refused with a reason.
    """
    if not (submission / TEMPLATE).exists():
        raise ConfigError("the submission has no %s (looked in %s); start from the lab's "
                          "submission/ folder" % (TEMPLATE, submission))
    rendered = render_templates(submission, TEMPLATE,
                                {router: values(submission, router) for router in routers})
    texts = {}
    for router in routers:
        answer = rendered.get(router)
        if not isinstance(answer, dict) or not isinstance(answer.get("text", answer.get(
                "message")), str):
            raise ConfigError("%s with %s.yaml gave no configuration" % (TEMPLATE, router))
        if "text" not in answer:
            raise ConfigError(template_error(TEMPLATE, answer.get("error"), answer["message"],
                                             "%s.yaml" % router))
        texts[router] = answer["text"]
    return texts


def config_lines(text):
    """``[(line number, command)]``: the lines that configure something."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            found.append((number, line))
    return found


def configured(text):
    """The lines of a configuration that configure something besides the hostname."""
    return [line for _, line in config_lines(text) if not line.startswith("hostname ")]


@dataclass(frozen=True)
class DiffLine:
    router: str        # whose configuration has this line
    number: int        # its line number in that router's rendered configuration
    text: str

    def __str__(self):
        return "%s.conf line %d: %s" % (self.router, self.number, self.text)


def diff(active_text, spare_text, active=ACTIVE, spare=SPARE):
    """Lines that differ between two configurations, the hostname ignored.

    Comments and blank lines configure nothing and are ignored too.  Each differing
    line is named with its router and line number (``r2.conf line 9: ip addr ...``),
    in file order: a changed line shows as the active's line, then the spare's.
    """
    a = [(n, t) for n, t in config_lines(active_text) if not t.startswith("hostname ")]
    b = [(n, t) for n, t in config_lines(spare_text) if not t.startswith("hostname ")]
    matcher = difflib.SequenceMatcher(a=[t for _, t in a], b=[t for _, t in b], autojunk=False)
    lines = []
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            continue
        lines += [DiffLine(active, n, t) for n, t in a[a1:a2]]
        lines += [DiffLine(spare, n, t) for n, t in b[b1:b2]]
    return lines


def diff_submission(submission):
    """Render both routers' configurations and diff them: ``(lines, {router: text})``."""
    texts = render_all(submission, (ACTIVE, SPARE))
    return diff(texts[ACTIVE], texts[SPARE]), texts


def diff_text(drift):
    """The drift as the walk-through and ``redlab lab 01 diff`` print it."""
    lines = ["== diff %s.conf %s.conf (hostname, comments and blank lines ignored) =="
             % (ACTIVE, SPARE)]
    if drift:
        lines += ["  %s %s" % ("-" if line.router == ACTIVE else "+", line) for line in drift]
        lines.append("  -> %d line(s) differ: %s is not a copy of %s."
                     % (len(drift), SPARE, ACTIVE))
    else:
        lines.append("  (no difference: %s will do exactly what %s did)" % (SPARE, ACTIVE))
    return "\n".join(lines)


def configured_sysctls(text):
    """The sysctl keys a configuration sets (``sysctl -w KEY=VALUE`` lines), ports as on the
    case (``net.ipv4.conf.eth0.arp_notify``)."""
    keys = []
    for _, line in config_lines(text):
        words = line.split()
        if words[:2] == ["sysctl", "-w"]:
            keys += [w.split("=", 1)[0] for w in words[2:] if "=" in w]
    return keys


# -- applying a configuration to a router --------------------------------------------------

def _sysctl_key(key, ports):
    """``net.ipv4.conf.eth0.x`` -> ``net.ipv4.conf.r2-eth0.x`` on r2 (``ports``: case -> node)."""
    return ".".join(ports.get(part, part) for part in key.split("."))


def command(router, number, line, ports):
    """The shell command for one configuration line of ``router`` (ports mapped to the
    node's interface names by ``ports``); a line that is not allowed is a ConfigError."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise ConfigError("%s.conf line %d cannot be read (%s): %s"
                          % (router, number, exc, line)) from None
    if words[0] == "sysctl":
        settings = words[2:] if words[1:2] == ["-w"] else None
        if not settings or not all(re.match(r"net\.[\w.-]+=\S+$", s) for s in settings):
            raise ConfigError("%s.conf line %d: write sysctls as `sysctl -w net.KEY=VALUE` "
                              "(got `%s`)" % (router, number, line))
        words = ["sysctl", "-w"] + ["%s=%s" % (_sysctl_key(s.split("=", 1)[0], ports),
                                               s.split("=", 1)[1]) for s in settings]
    elif words[0] == "ip":
        objects = [w for w in words[1:] if not w.startswith("-")]
        options = words[1:words.index(objects[0])] if objects else words[1:]
        if (not objects or objects[0] not in IP_OBJECTS or set(options) - IP_OPTIONS
                or "netns" in words):
            raise ConfigError("%s.conf line %d: a router configuration runs `ip [-4|-6] %s ...` "
                              "commands on the router itself only (got `%s`)"
                              % (router, number, "|".join(sorted(IP_OBJECTS)), line))
        words = [ports.get(w, w) for w in words]
    else:
        raise ConfigError("%s.conf line %d: only `hostname`, `sysctl -w ...` and `ip ...` lines "
                          "can be applied (got `%s`)" % (router, number, line))
    return shlex.join(words)


def ports_of(node):
    """``{port as on the case: the node's interface}``: ``{"eth0": "r2-eth0", ...}``."""
    return {intf.name[len(node.name) + 1:]: intf.name for intf in node.intfList()
            if intf.name.startswith(node.name + "-")}


def apply_script(router, text, ports):
    """The configuration as a shell script for ``router``: one checked command per line, the
    first failing line reported (``__failed_line=N rc=R`` after its output) and stopping it."""
    lines = ["# %s.conf, applied by redlab line by line; the first failing line stops it"
             % router,
             'step() { n=$1; shift; out=$("$@" 2>&1); rc=$?; if [ $rc -ne 0 ]; then '
             'printf "%s\\n__failed_line=%s rc=%s\\n" "$out" "$n" "$rc"; exit 1; fi; }']
    for number, line in config_lines(text):
        if line.startswith("hostname "):
            if line.split()[1:] != [router]:
                raise ConfigError("%s.conf line %d says `%s`; this is %s"
                                  % (router, number, line, router))
            continue
        lines.append("step %d %s" % (number, command(router, number, line, ports)))
    return "\n".join(lines) + "\n"


def apply_config(node, text):
    """Run a rendered configuration on a router node, line by line; stop at the first error.

    Every line is checked first; then the lines run as one script, jailed inside the
    router (:class:`redlab.student.ScriptRun`: the student's user, CAP_NET_ADMIN and
    CAP_NET_RAW only -- enough for ``ip`` and net sysctls in the router's namespace)."""
    script = node.run.file(node.name, "apply-%s.sh" % node.name)
    script.write_text(apply_script(node.name, text, ports_of(node)))
    code, out = ScriptRun(node, script, shell="sh", timeout=APPLY_TIMEOUT).finish()
    if code == 0:
        return
    failed_line = ([None] + list(re.finditer(r"__failed_line=(\d+) rc=(\d+)", out)))[-1]
    if not failed_line:
        raise ConfigError("%s.conf could not be applied on %s: %s"
                          % (node.name, node.name, code if isinstance(code, str) else
                             out or "exit code %s" % code))
    number = int(failed_line.group(1))
    raise ConfigError("%s.conf line %d `%s` failed on %s: %s" % (
        node.name, number, dict(config_lines(text))[number], node.name,
        out[:failed_line.start()].strip() or "exit code %s" % failed_line.group(2)))


# -- what a router really runs ---------------------------------------------------------------

def running_config(node, keys=()):
    """What ``node`` runs, as a sorted list of facts with ports named as on the case:
    ``port eth0 up``, ``address 10.0.1.1/24 dev eth0``, ``route default via 10.0.0.250 dev
    eth1``, ``sysctl net.ipv4.ip_forward=1`` (``keys``: sysctls to read besides
    :data:`ROUTER_SYSCTLS`, ports as on the case).  Read from the router's namespace with
    :mod:`redlab.observe`, so it is what the kernel holds, not what a file says."""
    ports = ports_of(node)
    case = {intf: port for port, intf in ports.items()}
    facts = ["port %s %s" % (case[name], "up" if link.up else "down")
             for name, link in observe.links(node).items() if name in case]
    facts += ["address %s dev %s" % (address, case[intf])
              for intf, found in observe.addresses(node).items() if intf in case
              for address in found]
    for route in observe.routes(node):
        words = ["route", route["dst"]]
        if route.get("gateway"):
            words += ["via", route["gateway"]]
        words += ["dev", case.get(route.get("dev"), route.get("dev"))]
        if route.get("prefsrc"):
            words += ["src", route["prefsrc"]]
        facts.append(" ".join(words))
    wanted = list(dict.fromkeys(list(ROUTER_SYSCTLS) + list(keys)))
    read = observe.sysctls(node, [_sysctl_key(k, ports) for k in wanted])
    facts += ["sysctl %s=%s" % (k, read[_sysctl_key(k, ports)]) for k in wanted]
    return sorted(facts)


def running_diff(active, spare, names=(ACTIVE, SPARE)):
    """The facts of two :func:`running_config` lists that only one router has:
    ``["r1 only: address 10.0.0.1/24 dev eth1", "r2 only: ..."]`` (empty: the spare runs
    exactly what the active router ran)."""
    a, b = set(active), set(spare)
    return (["%s only: %s" % (names[0], fact) for fact in sorted(a - b)]
            + ["%s only: %s" % (names[1], fact) for fact in sorted(b - a)])


# -- cables ---------------------------------------------------------------------------------

def cables(net, router):
    """``{switch name: switch-side interface}``: where each of ``router``'s cables goes."""
    found = {}
    for intf in net[router].intfList():
        link = intf.link
        if link is None:
            continue
        other = link.intf2 if link.intf1 is intf else link.intf1
        if other.node in net.switches:
            found[other.node.name] = other
    return found


def set_port(port, state):
    """A switch port's cable in (``up``) or out (``down``)."""
    port.node.cmd("ip link set dev %s %s" % (port.name, state))


def port_state(port):
    """``UP`` or ``DOWN``: is this switch port's cable in (its side of the link up)?"""
    link = observe.links(port.node, port.name).get(port.name)
    return "UP" if link and link.up else "DOWN"


def unplug(net, router):
    """Pull every cable of ``router`` out of its switch (the switch side of each link goes down)."""
    for port in cables(net, router).values():
        set_port(port, "down")


@dataclass
class Rewiring:
    old: str
    new: str
    moves: list = field(default_factory=list)     # (switch, old's port, new's port)
    at: float = 0.0                               # when the last cable was in
    loaded: float = 0.0                           # when the new router's configuration was in

    def describe(self):
        return "; ".join("%s: %s out, %s in" % move for move in self.moves)


def rewire(net, old, new):
    """Move the cables from ``old`` to ``new``, one switch at a time, as a person does.

    For each switch ``old`` is cabled to: pull ``old``'s cable (its switch port goes
    down), plug ``new``'s in (its switch port comes up).  In a rack the spare's cable
    goes into the very port ``old``'s came out of; here each router has its own port
    on each switch, and the learning switch finds the spare's MAC behind its port.
    """
    old_cables, new_cables = cables(net, old), cables(net, new)
    missing = sorted(set(old_cables) - set(new_cables))
    if missing:
        raise RedlabError("%s has no cable to %s, so it cannot take %s's place"
                          % (new, ", ".join(missing), old))
    rewiring = Rewiring(old, new)
    for switch in sorted(old_cables):
        set_port(old_cables[switch], "down")
        set_port(new_cables[switch], "up")
        rewiring.moves.append((switch, old_cables[switch].name, new_cables[switch].name))
    rewiring.at = time.time()
    return rewiring


# -- the bench: the network, the two configurations, the spare kept cold ----------------------

class Bench:
    """r1 in service, r2 on the shelf, and what the lab reads from them.

    :meth:`start` writes both configurations to the run folder, pulls r2's cables, counts
    its packets (the shelf) and applies r1's configuration; :meth:`switch_over` is the
    procedure: the cables move to r2, r2 loads its configuration.
    """

    def __init__(self, net, texts, active=ACTIVE, spare=SPARE):
        self.net, self.texts, self.active, self.spare = net, texts, active, spare
        self.macs, self.shelf, self.switched = {}, {}, None

    def start(self):
        """r1 in service with its configuration, r2 unplugged and counted (the shelf)."""
        for router, text in self.texts.items():
            self.net.run.file(router, "%s.conf" % router).write_text(text)
        unplug(self.net, self.spare)
        self.shelf = self.packets(self.spare)
        apply_config(self.net[self.active], self.texts[self.active])
        self.macs = {name: {port: observe.links(self.net[name])[intf].mac
                            for port, intf in ports_of(self.net[name]).items()}
                     for name in (self.active, self.spare)}

    def packets(self, router):
        """``{interface: [rx packets, tx packets]}`` of a router's ports."""
        return {name: [link.rx_packets, link.tx_packets]
                for name, link in observe.links(self.net[router]).items() if name != "lo"}

    def spare_traffic(self):
        """``{interface: [rx, tx]}``: packets the spare carried since it went on the shelf."""
        return {intf: [now - before for now, before in zip(counts, self.shelf[intf])]
                for intf, counts in self.packets(self.spare).items()}

    def spare_ports(self):
        """``{switch port: UP or DOWN}``: the switch side of each of the spare's cables."""
        return {p.name: port_state(p) for p in cables(self.net, self.spare).values()}

    def entry(self, host, ip):
        """``host``'s ARP entry for ``ip``: ``{mac, state, owner, text}`` (owner: which
        router's MAC it holds, or None)."""
        found = observe.neigh(host, ip)
        mac = found.mac if found else None
        owner = next((name for name, ports in self.macs.items() if mac in ports.values()), None)
        text = ("%s dev %s lladdr %s %s" % (ip, found.dev, mac, found.state) if found
                else "(no entry)")                # as `ip neigh` prints it
        return dict(mac=mac, state=found.state if found else "none", owner=owner, text=text)

    def running(self, router):
        """:func:`running_config` of ``router``, with every sysctl either configuration sets."""
        keys = [k for text in self.texts.values() for k in configured_sysctls(text)]
        return running_config(self.net[router], keys)

    def switch_over(self):
        """The procedure: move the cables from the active router to the spare, the spare
        loads its configuration.  Returns the :class:`Rewiring` (``loaded``: when the
        configuration was in)."""
        if self.switched:
            raise RedlabError("the cables already moved (%s)" % self.switched.describe())
        moved = rewire(self.net, self.active, self.spare)
        apply_config(self.net[self.spare], self.texts[self.spare])
        moved.loaded = time.time()
        self.switched = moved
        return moved

    def garps(self, since):
        """The spare's gratuitous ARPs the controller saw at the switches since ``since``."""
        switches = {int(s.dpid, 16): s.name for s in self.net.switches}
        return [dict(switch=switches.get(e["dpid"]), ip=e["ip"], mac=e["new_mac"],
                     after=round(e["t"] - since, 3))
                for e in self.net.controller.events("ip_moved")
                if e["t"] >= since and e["gratuitous"]
                and e["new_mac"] in self.macs[self.spare].values()]

    def announcements(self, listener):
        """When does the spare announce itself?  ``(on a re-plugged cable, on its port set
        down and up, its arp_notify)``: the gratuitous ARPs ``listener`` heard for each."""
        cable = cables(self.net, self.spare)["s1"]
        port = "%s-eth0" % self.spare
        on_cable = garps_heard(listener, lambda: (set_port(cable, "down"), set_port(cable, "up")),
                               name="garp-replug")
        on_port = garps_heard(listener, lambda: self.net[self.spare].cmd(
            "ip link set dev %s down; ip link set dev %s up" % (port, port)), name="garp-port-up")
        return len(on_cable), len(on_port), observe.sysctl(self.net[self.spare],
                                                           "net.ipv4.conf.all.arp_notify")


def garps_heard(host, action, window=0.5, name="garp"):
    """The gratuitous ARP requests (sender IP = target IP) ``host`` hears while ``action()``
    runs and ``window`` s after; the wait ends at the first one or at the window's end."""
    def garps():
        return [p for p in capture.packets() if p["op"] == "request"
                and p["sender_ip"] == p["target_ip"]]
    with ArpCapture(host, name=name + ".pcap") as capture:
        action()
        try:
            wait_until(garps, window, "a gratuitous ARP")
        except WaitTimeout:
            pass                          # none in the window: that is the measurement
        return garps()


# -- what the client saw --------------------------------------------------------------------

def arp_aging(client):
    """How long a Linux client keeps using a dead gateway's MAC without a GARP (its sysctls)."""
    timers = observe.neigh_timers(client, client.defaultIntf().name, [
        "base_reachable_time_ms", "delay_first_probe_time", "ucast_solicit", "retrans_time_ms"])
    base = timers["base_reachable_time_ms"] / 1000.0
    delay = float(timers["delay_first_probe_time"])
    probes, retrans = timers["ucast_solicit"], timers["retrans_time_ms"] / 1000.0
    tail = delay + probes * retrans
    return dict(reachable=[base / 2, base * 1.5], delay_first_probe=delay, unicast_probes=probes,
                retrans=retrans, until_broadcast=[base / 2 + tail, base * 1.5 + tail])


def aging_text(aging):
    """:func:`arp_aging` in one sentence."""
    return ("REACHABLE %.0f-%.0f s, then DELAY %.0f s and %d unicast probes, i.e. %.0f-%.0f s "
            "after its last answer from r1 before it asks the LAN again (broadcast)."
            % (aging["reachable"][0], aging["reachable"][1], aging["delay_first_probe"],
               aging["unicast_probes"], aging["until_broadcast"][0], aging["until_broadcast"][1]))


def answered_again(samples, since):
    """Seconds from ``since`` until the client had its first answer of the good run that
    lasts to the end of the probe (None: not answered again while probing).

    The probe's own timeline counts from the *send* time of that request, which is 0
    when the first request after ``since`` already succeeds; the answer's arrival says
    when the client really had its service back.
    """
    after = sorted((s for s in samples if s.t >= since), key=lambda s: s.t)
    if not after or not after[-1].ok:
        return None
    failures = [i for i, s in enumerate(after) if not s.ok]
    first = after[failures[-1] + 1] if failures else after[0]
    return max(0.0, first.end - since)


def failures_in_a_row(probe, since, count):
    """A condition for :func:`redlab.wait.wait_until`: ``count`` requests in a row failed."""
    def seen():
        streak = 0
        for s in probe.samples():
            if s.t >= since:
                streak = streak + 1 if not s.ok else 0
        return streak >= count, "%d failed in a row" % streak
    return seen


def what_the_failure_broke(samples, crash_at, moved_at):
    """Step 1 measured: the requests sent between the crash and the cables moving.

    ``{sent, failed, first_sent_after, first_failed_after}``: how many were sent, how many
    failed, and when (s after the crash) the first was sent and the first failed."""
    between = sorted((s for s in samples if crash_at <= s.t < moved_at), key=lambda s: s.t)
    failed = [s for s in between if not s.ok]
    return dict(sent=len(between), failed=len(failed),
                first_sent_after=round(between[0].t - crash_at, 3) if between else None,
                first_failed_after=round(failed[0].t - crash_at, 3) if failed else None)


def recovery(samples, crash_at, moved_at):
    """What the probe saw around the procedure, as the lab's measured keys."""
    after, whole = analyse(samples, moved_at), analyse(samples, crash_at)
    back = answered_again(samples, moved_at)
    return dict(recovered=back is not None, time_to_recover=None if back is None else round(
                    back, 3), requests_lost_after_rewire=after.requests_lost,
                requests_sent_after_rewire=after.requests_sent,
                requests_lost=whole.requests_lost, outage=round(whole.outage, 3),
                served_after=after.served_after,
                failure=what_the_failure_broke(samples, crash_at, moved_at))


def gateway_check(client, gateway, settings):
    """An ICMP health check of the gateway, run in ``client`` (:mod:`redlab.healthcheck`;
    the service around it is only its container: 192.0.2.1 is a documentation address,
    never used).  ``settings``: the check's type, interval, timeout, rise and fall."""
    from controllers.service import parse_service
    from redlab.lb import HealthChecker
    service = parse_service(dict(
        name="gateway", vip="192.0.2.1", port=80, lb_algo="rr", health_check=dict(settings),
        real_servers=[dict(name="gateway", ip=gateway, port=80, weight=1)]))
    return HealthChecker(client, service, name="icmp-gateway")


def watch_recovery(bench, client, gateway, probe, neigh, icmp, crash_at, wait, icmp_wait):
    """After the procedure, wait for what it should bring back, each wait bounded (``wait``
    s from the cables moving; ``icmp_wait`` s more for the ICMP check, which needs ``rise``
    answers): ``client``'s ARP entry for ``gateway`` naming the spare (``neigh``: its
    :class:`~redlab.recorders.NeighbourMonitor`), five good answers of ``probe``, the
    ``icmp`` check seeing the gateway again.  Something that never comes back is the
    measurement, not an error: ``{arp_refreshed_after, icmp_gateway}`` (None: never)."""
    moved, mac = bench.switched, bench.macs[bench.spare]["eth0"]
    try:
        wait_until(lambda: (neigh.moved_to(gateway, mac, since=moved.at) is not None,
                            bench.entry(client, gateway)), wait,
                   "%s's ARP entry to name %s" % (client.name, bench.spare))
    except WaitTimeout:
        pass
    refreshed = neigh.moved_to(gateway, mac, since=moved.at)
    try:
        probe.wait_good(5, since=moved.at, timeout=max(0.1, moved.at + wait - time.time()))
    except WaitTimeout:
        pass
    try:
        wait_until(lambda: (icmp.transitions(state="up", since=moved.at),
                            icmp.transitions(since=crash_at)), icmp_wait,
                   "the ICMP check to see the gateway again")
    except WaitTimeout:
        pass
    return dict(arp_refreshed_after=None if refreshed is None else round(refreshed - moved.at, 3),
                icmp_gateway=icmp_seen(icmp.transitions(since=crash_at), crash_at, moved.at))


def icmp_seen(transitions, crash_at, moved_at):
    """``{down_after, up_after_rewire}``: when the ICMP check saw the gateway go down (s
    after the crash) and answer again (s after the cables moved); None: never."""
    down = [t["t"] - crash_at for t in transitions if t["state"] == "down"]
    up = [t["t"] - moved_at for t in transitions if t["state"] == "up" and t["t"] >= moved_at]
    return dict(down_after=round(down[0], 3) if down else None,
                up_after_rewire=round(up[0], 3) if up else None)
