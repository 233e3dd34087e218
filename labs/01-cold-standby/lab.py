"""Lab 01: cold standby router (コールドスタンバイ).

r1 routes between the client LAN and the service LAN; r2, the spare, sits beside it
powered on but with its cables out of the switches.  Both routers' configurations
are rendered from ONE template (the student's ``router.j2``) with each router's
values (``r1.yaml``, ``r2.yaml``).  r1 dies; a person moves the cables to r2
(:func:`rewire`), r2 loads its configuration, and the client's HTTP probe says when
the service is back -- or that it is not, when r2's configuration drifted from r1's
(:func:`diff` names the lines).

A rendered configuration is one command per line, run in order on the router::

    hostname r1                               (checked, not applied: hosts share it)
    sysctl -w net.ipv4.ip_forward=1           (sysctl -w, keys under net. only)
    ip addr add ADDRESS/24 dev eth0           (ip addr/link/route/neigh/rule)

Ports are named as on the router's case, ``eth0`` and ``eth1``, the same on r1 and r2
(identical hardware); in the emulation r2's ``eth0`` is the interface ``r2-eth0``.
"""

import difflib
import re
import shlex
import time
from dataclasses import dataclass, field

import yaml

from redlab import addressing as ap
from redlab.errors import ConfigError, RedlabError, WaitTimeout
from redlab.faults import host_crash
from redlab.labs import Stop, failed, passed
from redlab.net import Network
from redlab.probe import Probe, analyse
from redlab.recorders import ArpCapture, NeighbourMonitor
from redlab.student import ScriptRun, render_templates, template_error
from redlab.wait import wait_until

TITLE = "Cold standby router"
TOPOLOGY = "topologies/cold_standby.py"

TEMPLATE = "router.j2"
ACTIVE, SPARE = "r1", "r2"
RECOVERY_BOUND = 2.0       # s from the moment the cables moved
WAIT_AFTER_REWIRE = 3.0    # how long the walk-through waits for the service to return
NOTICE_FAILURES = 3        # failed requests in a row before the operator acts

# the three --cli stops: what to look at and what to type there, one line at a time
STOPS = {
    "before": Stop("r1 routes, r2 waits (its ports are down and it has no address)", [
        "r1 ip -br addr", "r2 ip -br link", "client1 curl -s http://%(server)s/",
        "client1 ip neigh"]),
    "dead": Stop("r1 is dead: client1's ARP entry for %(gateway)s still says r1's MAC; do the "
                 "procedure yourself with `rewire r1 r2` (or exit and the walk-through does it)", [
        "client1 ip neigh show %(gateway)s", "sh ovs-ofctl -O OpenFlow13 dump-ports-desc s1",
        "rewire r1 r2"]),
    "after": Stop("r2 in service; then when does r2 announce itself? (tcpdump prints what it "
                  "captured when kill stops it)", [
        "client1 ip neigh", "web1 ip neigh", "r2 ip route", "r2 ip -s link",
        "client1 tcpdump -l -n -i client1-eth0 arp &",
        "sh ip link set s1-eth2 down; ip link set s1-eth2 up",
        "r2 ip link set r2-eth0 down; ip link set r2-eth0 up",
        "client1 kill %%1"]),
}
PROBE_INTERVAL, PROBE_TIMEOUT = 0.05, 0.25

IP_OBJECTS = {"addr", "address", "link", "route", "neigh", "rule"}
IP_OPTIONS = {"-4", "-6"}      # no -n/-netns/-batch: a configuration stays in its router


# -- the configuration: one template, one values file per router -------------------------

def values(submission, router):
    """The values of ``<router>.yaml`` (a mapping whose ``hostname`` is ``router``)."""
    path = submission / ("%s.yaml" % router)
    if not path.exists():
        raise ConfigError("the submission has no %s.yaml (looked in %s); start from the lab's "
                          "submission/ folder" % (router, submission))
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError("%s.yaml is not valid YAML: %s" % (router, exc)) from None
    if not isinstance(data, dict):
        raise ConfigError("%s.yaml must be a mapping of values (hostname: ..., interfaces: ...)"
                          % router)
    if data.get("hostname") != router:
        raise ConfigError("%s.yaml says hostname %r; each values file names its own router "
                          "(hostname: %s)" % (router, data.get("hostname"), router))
    return data


def render(submission, router):
    """``router.j2`` rendered with ``<router>.yaml``: the router's configuration text."""
    return render_all(submission, [router])[router]


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


def verb_diff(ctx, args):
    """``diff``: render both routers' configurations from the submission and compare them."""
    if args:
        raise RedlabError("diff takes no arguments: it compares %s.conf and %s.conf"
                          % (ACTIVE, SPARE))
    return diff_text(diff_submission(ctx.submission)[0])


def diff_submission(submission):
    """Render both routers' configurations and diff them: ``(lines, {router: text})``."""
    texts = render_all(submission, (ACTIVE, SPARE))
    return diff(texts[ACTIVE], texts[SPARE]), texts


def _command(node, number, line, ports):
    """The shell command for one configuration line (ports mapped to the node's names)."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise ConfigError("%s.conf line %d cannot be read (%s): %s"
                          % (node.name, number, exc, line)) from None
    if words[0] == "sysctl":
        settings = words[2:] if words[1:2] == ["-w"] else None
        if not settings or not all(re.match(r"net\.[\w.-]+=\S+$", s) for s in settings):
            raise ConfigError("%s.conf line %d: write sysctls as `sysctl -w net.KEY=VALUE` "
                              "(got `%s`)" % (node.name, number, line))
        words = ["sysctl", "-w"] + [
            ".".join(ports.get(part, part) for part in s.split("=", 1)[0].split("."))
            + "=" + s.split("=", 1)[1] for s in settings]
    elif words[0] == "ip":
        objects = [w for w in words[1:] if not w.startswith("-")]
        options = words[1:words.index(objects[0])] if objects else words[1:]
        if (not objects or objects[0] not in IP_OBJECTS or set(options) - IP_OPTIONS
                or "netns" in words):
            raise ConfigError("%s.conf line %d: a router configuration runs `ip [-4|-6] %s ...` "
                              "commands on the router itself only (got `%s`)"
                              % (node.name, number, "|".join(sorted(IP_OBJECTS)), line))
        words = [ports.get(w, w) for w in words]
    else:
        raise ConfigError("%s.conf line %d: only `hostname`, `sysctl -w ...` and `ip ...` lines "
                          "can be applied (got `%s`)" % (node.name, number, line))
    return shlex.join(words)


APPLY_TIMEOUT = 10.0     # s a whole configuration may take to apply


def apply_script(node, text):
    """The configuration as a shell script for ``node``: one checked command per line, the
    first failing line reported (``__failed_line=N rc=R`` after its output) and stopping it."""
    ports = {intf.name[len(node.name) + 1:]: intf.name for intf in node.intfList()
             if intf.name.startswith(node.name + "-")}
    lines = ["# %s.conf, applied by redlab line by line; the first failing line stops it"
             % node.name,
             'step() { n=$1; shift; out=$("$@" 2>&1); rc=$?; if [ $rc -ne 0 ]; then '
             'printf "%s\\n__failed_line=%s rc=%s\\n" "$out" "$n" "$rc"; exit 1; fi; }']
    for number, line in config_lines(text):
        if line.startswith("hostname "):
            if line.split()[1:] != [node.name]:
                raise ConfigError("%s.conf line %d says `%s`; this is %s"
                                  % (node.name, number, line, node.name))
            continue
        lines.append("step %d %s" % (number, _command(node, number, line, ports)))
    return "\n".join(lines) + "\n"


def apply_config(node, text):
    """Run a rendered configuration on a router node, line by line; stop at the first error.

    Every line is checked first; then the lines run as one script, jailed inside the
    router (:class:`redlab.student.ScriptRun`: the student's user, CAP_NET_ADMIN and
    CAP_NET_RAW only -- enough for ``ip`` and net sysctls in the router's namespace)."""
    script = node.run.file(node.name, "apply-%s.sh" % node.name)
    script.write_text(apply_script(node, text))
    code, out = ScriptRun(node, script, shell="sh", timeout=APPLY_TIMEOUT).finish()
    if code == 0:
        return
    failed_line = ([None] + list(re.finditer(r"__failed_line=(\d+) rc=(\d+)", out)))[-1]
    if not failed_line:
        raise ConfigError("%s.conf could not be applied on %s: %s"
                          % (node.name, node.name, code if isinstance(code, str) else
                             out or "exit code %s" % code))
    number = int(failed_line.group(1))
    line = dict(config_lines(text))[number]
    raise ConfigError("%s.conf line %d `%s` failed on %s: %s" % (
        node.name, number, line, node.name,
        out[:failed_line.start()].strip() or "exit code %s" % failed_line.group(2)))


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


def _set(port, state):
    port.node.cmd("ip link set dev %s %s" % (port.name, state))


def port_state(port):
    """``UP`` or ``DOWN``: is this switch port's cable in (its side of the link up)?"""
    flags = port.node.cmd("ip -o link show dev %s" % port.name)
    match = re.search(r"<([^>]*)>", flags)
    return "UP" if match and "UP" in match.group(1).split(",") else "DOWN"


def unplug(net, router):
    """Pull every cable of ``router`` out of its switch (the switch side of each link goes down)."""
    for port in cables(net, router).values():
        _set(port, "down")


@dataclass
class Rewiring:
    old: str
    new: str
    moves: list = field(default_factory=list)     # (switch, old's port, new's port)
    at: float = 0.0                               # when the last cable was in

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
        _set(old_cables[switch], "down")
        _set(new_cables[switch], "up")
        rewiring.moves.append((switch, old_cables[switch].name, new_cables[switch].name))
    rewiring.at = time.time()
    return rewiring


# -- what the client and the routers show ----------------------------------------------------

def mac_of(node, intf):
    return node.cmd("cat /sys/class/net/%s/address" % intf).strip()


def packets(node):
    """``{interface: [rx packets, tx packets]}`` of a node's ports."""
    counts = {}
    for intf in node.intfList():
        if intf.name == "lo":
            continue
        rx, tx = (int(node.cmd("cat /sys/class/net/%s/statistics/%s_packets"
                               % (intf.name, d)).strip() or 0) for d in ("rx", "tx"))
        counts[intf.name] = [rx, tx]
    return counts


def router_macs(net, routers):
    """``{router: {port: MAC}}``: two boxes, two sets of MACs."""
    return {name: {intf.name[len(name) + 1:]: mac_of(net[name], intf.name)
                   for intf in net[name].intfList() if intf.name != "lo"} for name in routers}


def gateway_entry(host, gateway, macs):
    """A host's ARP entry for its gateway: ``{mac, state, owner, text}``."""
    text = host.cmd("ip neigh show %s" % gateway).strip()
    mac = re.search(r"lladdr (\S+)", text)
    state = text.split()[-1] if text else "none"
    mac = mac.group(1) if mac else None
    owner = next((name for name, ports in macs.items() if mac in ports.values()), None)
    return dict(mac=mac, state=state, owner=owner, text=text or "(no entry)")


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


def arp_aging(client):
    """How long a Linux client keeps using a dead gateway's MAC without a GARP (its sysctls)."""
    intf = client.defaultIntf().name

    def neigh(key):
        return int(client.cmd("sysctl -n net.ipv4.neigh.%s.%s" % (intf, key)).strip())
    base = neigh("base_reachable_time_ms") / 1000.0
    delay = float(neigh("delay_first_probe_time"))
    probes = neigh("ucast_solicit")
    retrans = neigh("retrans_time_ms") / 1000.0
    tail = delay + probes * retrans
    return dict(reachable=[base / 2, base * 1.5], delay_first_probe=delay, unicast_probes=probes,
                retrans=retrans, until_broadcast=[base / 2 + tail, base * 1.5 + tail])


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


def _streak_of_failures(probe, since, count):
    def seen():
        recent = [s for s in probe.samples() if s.t >= since]
        streak = 0
        for s in recent:
            streak = streak + 1 if not s.ok else 0
        return streak >= count, "%d failed in a row" % streak
    return seen


ICMP_CHECK = dict(type="icmp", interval=0.2, timeout=0.3, rise=2, fall=2)
ICMP_WAIT = 3.0         # s after the rewire the lab waits for the ICMP check to see the gateway


def gateway_check(client, gateway):
    """An ICMP health check of the gateway, run in client1 (redlab.healthcheck; the service
    around it is only its container: 192.0.2.1 is a documentation address, never used)."""
    from controllers.service import parse_service
    from redlab.lb import HealthChecker
    service = parse_service(dict(
        name="gateway", vip="192.0.2.1", port=80, lb_algo="rr", health_check=ICMP_CHECK,
        real_servers=[dict(name="gateway", ip=gateway, port=80, weight=1)]))
    return HealthChecker(client, service, name="icmp-gateway")


# -- the walk-through -----------------------------------------------------------------------

def walkthrough(ctx):
    from topologies.cold_standby import ColdStandbyTopo
    for name in (TEMPLATE, "%s.yaml" % ACTIVE, "%s.yaml" % SPARE):
        ctx.file(name)                  # a missing file: one clear sentence
    gateway, server = ap.router(ap.CLIENTS), ap.web(1)
    m = {}

    ctx.say("Step 1 -- assume the failure: the router r1 dies.\n"
            "Step 2 -- prepare the spare: r2, the same model, configured from the same\n"
            "         template (%s) with its own values (%s.yaml), powered but unplugged.\n"
            "Step 3 -- the procedure: move the cables from r1 to r2; r2 loads its configuration."
            % (TEMPLATE, SPARE))
    drift, texts = diff_submission(ctx.submission)
    m["diff"] = [str(line) for line in drift]
    m["configs_identical"] = not drift
    ctx.say("\n" + diff_text(drift))

    with Network(ColdStandbyTopo(), name="lab01-cold-standby",
                 run_folder=ctx.folder("cold-standby")) as net:
        r1, r2, client = net[ACTIVE], net[SPARE], net["client1"]
        for router, text in texts.items():
            net.run.file(router, "%s.conf" % router).write_text(text)
        unplug(net, SPARE)
        shelf = packets(r2)
        apply_config(r1, texts[ACTIVE])
        macs = router_macs(net, (ACTIVE, SPARE))
        m["macs"] = macs
        m["arp_aging"] = arp_aging(client)
        m["run_folder"] = str(net.run.path)
        ctx.say("\nr1 is in service with r1.conf (run folder %s)." % net.run.path)
        ctx.say("r2 is on the shelf: its cables are out (%s down), its ports are down and it "
                "has not loaded r2.conf." % ", ".join(p.name for p in cables(net, SPARE).values()))
        ctx.say("MACs on the client LAN: r1-eth0 %s, r2-eth0 %s (two boxes, two MACs)."
                % (macs[ACTIVE]["eth0"], macs[SPARE]["eth0"]))
        ctx.pause(net, STOPS["before"], server=server)

        probe = Probe(client, "http://%s/" % server, name="probe", interval=PROBE_INTERVAL,
                      timeout=PROBE_TIMEOUT, max_seconds=600 if ctx.cli else 30)
        # client1's ARP entries with the kernel's own timestamps (`ip -ts monitor neigh`):
        # polling `ip neigh` every 10 ms on a busy machine was late by more than that
        neigh = NeighbourMonitor(client, name="client1-neigh.txt")
        with probe, gateway_check(client, gateway) as icmp, neigh:
            try:
                probe.wait_good(5, timeout=10)
            except WaitTimeout:
                raise ConfigError(
                    "client1 cannot reach web1 (%s) through r1 with r1.conf applied: r1 must "
                    "forward (ip_forward=1) and hold the gateways the hosts use, %s on eth0 "
                    "(client LAN) and %s on eth1 (service LAN)"
                    % (server, gateway, ap.router(ap.SERVICE))) from None
            m["arp_before"] = gateway_entry(client, gateway, macs)
            ctx.say("\nclient1 -> web1 works through r1; client1's ARP entry for its gateway %s: "
                    "%s (%s)." % (gateway, m["arp_before"]["mac"], m["arp_before"]["owner"]))

            crash = host_crash(net, ACTIVE)
            ctx.say("\n== r1 dies (every process killed, its ports dark) ==")
            try:
                wait_until(_streak_of_failures(probe, crash.at, NOTICE_FAILURES), 10,
                           "client1's requests to fail")
            except WaitTimeout:
                raise RedlabError("client1's requests kept working after r1 died: something "
                                  "else routes between the LANs") from None
            noticed = time.time()
            m["noticed_after"] = round(noticed - crash.at, 3)
            ctx.say("%d requests in a row failed (%.2f s after the crash): the operator goes to "
                    "the rack." % (NOTICE_FAILURES, m["noticed_after"]))
            procedure = {}

            def do_rewire(args):
                """The procedure by hand: ``rewire r1 r2`` at the CLI pause."""
                if procedure:
                    raise RedlabError("the cables already moved (%s)"
                                      % procedure["moved"].describe())
                if args != [ACTIVE, SPARE]:
                    raise RedlabError("this bench has one failed router and one spare: "
                                      "type `rewire %s %s`" % (ACTIVE, SPARE))
                # the moment before the cables move: was the spare cold, what does client1 hold?
                m["arp_at_rewire"] = gateway_entry(client, gateway, macs)
                on_shelf = packets(r2)
                m["spare_traffic_before_rewire"] = {
                    intf: [now - before for now, before in zip(on_shelf[intf], shelf[intf])]
                    for intf in on_shelf}
                m["spare_switch_ports_before_rewire"] = {
                    p.name: port_state(p) for p in cables(net, SPARE).values()}
                procedure["moved"] = rewire(net, ACTIVE, SPARE)
                apply_config(r2, texts[SPARE])
                procedure["loaded"] = time.time()
                return "cables moved (%s); %s loaded %s.conf" % (
                    procedure["moved"].describe(), SPARE, SPARE)

            ctx.verb("rewire", do_rewire, "rewire r1 r2: move r1's cables to r2, r2 loads r2.conf")
            ctx.pause(net, STOPS["dead"], gateway=gateway)
            m["rewired_by"] = "student at the CLI" if procedure else "walk-through"
            if not procedure:
                do_rewire([ACTIVE, SPARE])
            moved, loaded = procedure["moved"], procedure["loaded"]
            ctx.say("r2 on the shelf sent/received %d packets; client1's ARP entry for %s still "
                    "holds %s (%s, %s)." % (
                        sum(sum(c) for c in m["spare_traffic_before_rewire"].values()), gateway,
                        m["arp_at_rewire"]["mac"], m["arp_at_rewire"]["owner"],
                        m["arp_at_rewire"]["state"]))
            ctx.say("\n== the procedure: cables moved (%s), r2 loaded r2.conf =="
                    % moved.describe())

            def refreshed():
                when = neigh.moved_to(gateway, macs[SPARE]["eth0"], since=moved.at)
                return when is not None, gateway_entry(client, gateway, macs)
            deadline = moved.at + WAIT_AFTER_REWIRE
            try:
                wait_until(refreshed, WAIT_AFTER_REWIRE, "client1's ARP entry to name r2")
                m["arp_refreshed_after"] = round(
                    neigh.moved_to(gateway, macs[SPARE]["eth0"], since=moved.at) - moved.at, 3)
            except WaitTimeout:
                m["arp_refreshed_after"] = None
            try:
                probe.wait_good(5, timeout=max(0.1, deadline - time.time()), since=moved.at)
            except WaitTimeout:
                pass                        # not back: the timeline says so
            try:                            # rise 2: the check needs two answers in a row
                wait_until(lambda: (icmp.transitions(state="up", since=moved.at),
                                    icmp.transitions(since=crash.at)), ICMP_WAIT,
                           "the ICMP check to see the gateway again")
            except WaitTimeout:
                pass                        # never: the narration says so
            icmp_seen = icmp.transitions(since=crash.at)
        samples = probe.samples()
        after = analyse(samples, moved.at)
        whole = analyse(samples, crash.at)
        down = [t["t"] - crash.at for t in icmp_seen if t["state"] == "down"]
        up = [t["t"] - moved.at for t in icmp_seen if t["state"] == "up" and t["t"] >= moved.at]
        m["icmp_gateway"] = dict(down_after=round(down[0], 3) if down else None,
                                 up_after_rewire=round(up[0], 3) if up else None)
        ctx.say("  an ICMP health check of the gateway %s (client1, every %.1f s, fall %d): r1 "
                "seen down %s after the crash, the gateway answering again %s after the cables "
                "moved -- ICMP (L3) is the check that suits a router "
                "(ルータのヘルスチェック): it "
                "sees the box die and answer again; whether it routes right, only the "
                "requests to web1 tell."
                % (gateway, ICMP_CHECK["interval"], ICMP_CHECK["fall"],
                   "%.2f s" % down[0] if down else "never",
                   "%.2f s" % up[0] if up else "never"))
        m["arp_after"] = gateway_entry(client, gateway, macs)
        m["web1_arp_after"] = gateway_entry(net["web1"], ap.router(ap.SERVICE), macs)
        m["spare_packets_after_rewire"] = sum(
            sum(now) - sum(shelf[intf]) for intf, now in packets(r2).items())
        switches = {int(s.dpid, 16): s.name for s in net.switches}
        m["garp"] = [dict(switch=switches.get(e["dpid"]), ip=e["ip"], mac=e["new_mac"],
                          after=round(e["t"] - moved.at, 3))
                     for e in net.controller.events("ip_moved")
                     if e["t"] >= moved.at and e["gratuitous"]
                     and e["new_mac"] in macs[SPARE].values()]
        back = answered_again(samples, moved.at)
        m.update(rewire_at=moved.at, crash_at=crash.at, config_loaded_after=round(
            loaded - moved.at, 3), recovered=back is not None,
            time_to_recover=None if back is None else round(back, 3),
            time_to_recover_bound=RECOVERY_BOUND, waited_after_rewire=WAIT_AFTER_REWIRE,
            requests_lost_after_rewire=after.requests_lost,
            requests_sent_after_rewire=after.requests_sent,
            requests_lost=whole.requests_lost, outage=round(whole.outage, 3),
            served_after=after.served_after)

        for g in m["garp"]:
            ctx.say("  %s saw r2's gratuitous ARP for %s %.3f s after the cables moved"
                    % (g["switch"], g["ip"], g["after"]))
        if not m["garp"]:
            ctx.say("  no gratuitous ARP from r2 reached the switches")
        ctx.say("  client1's ARP entry for %s: %s (%s, %s)%s" % (
            gateway, m["arp_after"]["mac"], m["arp_after"]["owner"], m["arp_after"]["state"],
            "" if m["arp_refreshed_after"] is None else
            ", refreshed %.3f s after the cables moved" % m["arp_refreshed_after"]))
        if back is not None:
            ctx.say("  service back %.3f s after the cables moved (first answer; %d of %d requests "
                    "lost since then); %d lost since the crash, outage %.2f s (most of it is the "
                    "operator)" % (back, after.requests_lost, after.requests_sent,
                       whole.requests_lost, whole.outage))
        else:
            ctx.say("  service NOT back %.1f s after the cables moved (%d of %d requests lost)"
                    % (WAIT_AFTER_REWIRE, after.requests_lost, after.requests_sent))
        ctx.say("  web1's ARP entry for its gateway %s: %s (%s, %s)" % (
            ap.router(ap.SERVICE), m["web1_arp_after"]["mac"], m["web1_arp_after"]["owner"],
            m["web1_arp_after"]["state"]))
        aging = m["arp_aging"]
        ctx.say("  without a gratuitous ARP client1 keeps r1's MAC until its entry ages: "
                "REACHABLE %.0f-%.0f s, then DELAY %.0f s and %d unicast probes, i.e. %.0f-%.0f s "
                "after its last answer from r1 before it asks the LAN again (broadcast)."
                % (aging["reachable"][0], aging["reachable"][1], aging["delay_first_probe"],
                   aging["unicast_probes"], aging["until_broadcast"][0],
                   aging["until_broadcast"][1]))

        # when does Linux announce?  re-plug r2's client-LAN cable, then bounce its port
        cable = cables(net, SPARE)["s1"]
        port = "%s-eth0" % SPARE
        m["garp_on_replug"] = len(garps_heard(
            client, lambda: (_set(cable, "down"), _set(cable, "up")), name="garp-replug"))
        m["garp_on_port_up"] = len(garps_heard(
            client, lambda: r2.cmd("ip link set dev %s down; ip link set dev %s up"
                                   % (port, port)), name="garp-port-up"))
        m["spare_arp_notify"] = r2.cmd("sysctl -n net.ipv4.conf.all.arp_notify").strip()
        ctx.say("\nWhen does r2 announce itself (its arp_notify is %s)? client1 heard %d "
                "gratuitous ARP(s) when r2's cable was pulled and plugged in again, %d when r2's "
                "port was set down and up: arp_notify acts on a port coming up, not on a cable."
                % (m["spare_arp_notify"], m["garp_on_replug"], m["garp_on_port_up"]))
        ctx.pause(net, STOPS["after"])
    return m


VERBS = {"diff": (verb_diff, "diff: the drift between r1's and r2's rendered configurations")}


# -- checks -----------------------------------------------------------------------------------

def check_configs_identical(ctx, measured):
    try:
        drift, texts = diff_submission(ctx.submission)
    except RedlabError as exc:
        return failed("configs identical", "the configurations cannot be rendered: %s" % exc)
    configured = [line for _, line in config_lines(texts[ACTIVE])
                  if not line.startswith("hostname ")]
    if not drift and not configured:
        return failed("configs identical",
                      "r1.conf, rendered from %s with r1.yaml, configures nothing (no line but "
                      "comments and the hostname), so r2.conf is identical to an empty "
                      "configuration: a spare that is configured like nothing replaces "
                      "nothing. Render r1's sysctls, addresses and routes from the values in "
                      "r1.yaml (one command per line, see the guide)" % TEMPLATE)
    if not drift:
        return passed("configs identical", "r1.conf and r2.conf, rendered from %s, are identical "
                      "but for the hostname (%d lines each)"
                      % (TEMPLATE, len(config_lines(texts[ACTIVE]))))
    shown = "; ".join("%s `%s`" % ("%s.conf line %d" % (d.router, d.number), d.text)
                      for d in drift[:6])
    return failed("configs identical",
                  "r2's configuration differs from r1's (hostname ignored) in %d line(s): %s%s. "
                  "A spare that is not configured like the active router does not replace it: "
                  "give r2.yaml the same values as r1.yaml (only the hostname differs)"
                  % (len(drift), shown, " ..." if len(drift) > 6 else ""),
                  diff=[str(d) for d in drift])


check_configs_identical.static = True


def check_service_returns_after_rewire(ctx, m):
    gateway = ap.router(ap.CLIENTS)
    arp = m["arp_after"]
    if m["recovered"] and m["time_to_recover"] <= m["time_to_recover_bound"]:
        how = (": r2's gratuitous ARP moved client1's ARP entry for %s to r2's MAC %s"
               % (gateway, arp["mac"])) if m["garp"] else ""
        return passed("service returns after rewire",
                      "client1 got answers from web1 again %.2f s after the cables moved (bound "
                      "%.1f s)%s" % (m["time_to_recover"], m["time_to_recover_bound"], how),
                      time_to_recover=m["time_to_recover"])
    if m["recovered"]:
        return failed("service returns after rewire",
                      "the service came back %.2f s after the cables moved, above the bound of "
                      "%.1f s" % (m["time_to_recover"], m["time_to_recover_bound"]),
                      time_to_recover=m["time_to_recover"])
    waited = "no answer from web1 in the %.0f s after the cables moved" % m["waited_after_rewire"]
    if arp["owner"] != SPARE and not m["garp"]:
        aging = m["arp_aging"]["until_broadcast"]
        return failed("service returns after rewire",
                      "%s: client1 still sends to r1, its ARP entry for the gateway %s still "
                      "holds r1's MAC %s (%s), because r2 sent no gratuitous ARP. Linux sends one "
                      "when a port comes up only with arp_notify=1: put `sysctl -w "
                      "net.ipv4.conf.all.arp_notify=1` in %s before the ports come up (without "
                      "it client1 waits for its ARP entry to age, %.0f-%.0f s)"
                      % (waited, gateway, arp["mac"], arp["state"], TEMPLATE, aging[0], aging[1]),
                      time_to_recover=None)
    if arp["owner"] == SPARE:
        lines = "; ".join(m["diff"][:6])
        return failed("service returns after rewire",
                      "%s, although client1 now sends to r2 (its ARP entry for %s holds r2's MAC "
                      "%s): r2 does not route like r1 did. %s"
                      % (waited, gateway, arp["mac"],
                         "Its configuration differs from r1's: %s" % lines if lines else
                         "Look at r2's addresses and routes with `sudo redlab run 01 --cli`"),
                      time_to_recover=None)
    return failed("service returns after rewire",
                  "%s; client1's ARP entry for %s: %s" % (waited, gateway, arp["text"]),
                  time_to_recover=None)


def check_spare_was_unplugged_before_the_failure(ctx, m):
    traffic = m["spare_traffic_before_rewire"]
    ports = m["spare_switch_ports_before_rewire"]
    busy = {intf: c for intf, c in traffic.items() if any(c)}
    live = sorted(p for p, state in ports.items() if state != "DOWN")
    if busy or live:
        return failed("spare was unplugged before the failure",
                      "r2 was not cold before the rewire: %s%s. A spare that is plugged in with "
                      "the active router's addresses answers for them too" % (
                          "; ".join("%s carried %d packets in, %d out" % (i, c[0], c[1])
                                    for i, c in sorted(busy.items())),
                          ("; switch ports %s were up" % ", ".join(live)) if live else ""))
    return passed("spare was unplugged before the failure",
                  "r2's switch ports (%s) were down and r2 carried 0 packets until the rewire; "
                  "after it, %d" % (", ".join(sorted(ports)), m["spare_packets_after_rewire"]))


# information: the lab pulls r2's cables and loads r2.conf only at the rewire, whatever the
# submission renders -- no submission can make the spare carry traffic before it
check_spare_was_unplugged_before_the_failure.scored = False


CHECKS = [check_configs_identical, check_service_returns_after_rewire,
          check_spare_was_unplugged_before_the_failure]
