"""Lab 06 -- scheduling algorithms (スケジューリングアルゴリズム).

One load-balanced service (VIP in front of web1..web3 with weights 3, 2, 1, the os-ken
load balancer of ``controllers/lb.py``) and one client.  The walk-through

1. runs the same load -- 18 connections, ``HHS`` six times: H is held open (it stays in
   ActiveConn), S is a short request (after its FINs it stays in InActConn until its
   tracker entry expires) -- under each of the ten schedulers, switched live with
   ``set_scheduler`` (``ipvsadm -E -s``), shows the spread per server as a table and
   as an SVG bar chart written into the run folder, and compares each order with the real
   kernel's for the same load (``kernel-picks.json``, recorded by ``make
   ipvs-record-lab06`` in a stock Debian kernel);
2. shows why sh keeps one client on one server (the source hash), with more client
   addresses on client1 to show different sources landing on different servers;
3. puts the service into each state of the student's variant in ``states.yaml``
   (weights, ActiveConn, InActConn made with real connections) and records the next
   picks of the real controller, which the checks compare with the student's
   ``predictions.yaml``.  The variant comes from the student's name (``variant_of``):
   answers copied from a classmate are another variant's, and graded in class mode no
   output or reason shows the controller's picks.
"""

import collections
import hashlib
import json
import time
from pathlib import Path

import yaml

from controllers.schedulers import (CLASSIC, RealServer, dh_hashkey, make_scheduler,
                                    sh_hashkey)
from redlab import addressing as ap
from redlab.agent import ClientAgent
from redlab.errors import ConfigError, RedlabError
from redlab.labs import Stop, failed, passed
from redlab.lb import web_service
from redlab.scenarios.lb import LoadBalancedService
from redlab.wait import wait_until

TITLE = "Scheduling algorithms: one load, ten IPVS schedulers, predict the next pick"
TOPOLOGY = "topologies/service_lan.py"

HERE = Path(__file__).resolve().parent
STATES_FILE = HERE / "states.yaml"
KERNEL_FILE = HERE / "kernel-picks.json"   # the real IPVS's picks for LOAD (part 1)
PREDICTIONS = "predictions.yaml"

SERVERS = ("web1", "web2", "web3")
WEIGHTS = (3, 2, 1)                 # "capacity" of web1, web2, web3
LOAD = "HHS" * 6                    # H: held open, S: short request
CLOSING_TIMEOUT = 1                 # s: a closed connection leaves InActConn this long after
                                    # its last segment (IPVS: TIME_WAIT, 2 min by default)
HALF_OPEN_PORTS = (61000, 61999)    # client source ports whose SYN-ACK the servers drop
EPHEMERAL_PORTS = "32768 60999"     # client1's own ports, kept out of that range
READS_INACTIVE = ("lc", "wlc", "lblc", "lblcr")   # schedulers whose choice reads InActConn
SH_CLIENTS = 3                      # client addresses of the sh demonstration
CAPACITY_MBIT = (12, 8, 4)          # part 4: the servers' link capacities, 3:2:1 like WEIGHTS
CAPACITY_FILE = 500000              # part 4: bytes per download
# the --cli stops: what to look at and what to type there, one line at a time
STOPS = {
    "rr": Stop("the service runs rr now: ask a few times (X-Served-By names the server); "
               "`sudo redlab lb status` in a second shell shows the counters", [
        "client1 curl -s -D- http://%(vip)s/", "client1 curl -s -D- http://%(vip)s/"]),
    "sh": Stop("the chart is %(svg)s; the service runs sh now and client1 also has the "
               "addresses %(sources)s: ask from one of them", [
        "client1 curl -s --interface %(source)s -D- http://%(vip)s/"]),
    "state": Stop("the %(name)s state is set up: `sudo redlab lb status` in a second shell "
                  "shows its ActiveConn/InActConn; `exit` opens the %(picks)d new connections"),
    "links": Stop("the links are shaped: web3's is the slowest; time a download a few times", [
        "web3 tc class show dev web3-eth0",
        "client1 curl -s -o /dev/null -w '%%{time_total}\\n' http://%(vip)s/big.bin"]),
}
CAPACITY_DOWNLOADS = 12             # part 4: downloads at the same time

# where the course notes and the kernel part ways (controllers/schedulers.py docstrings)
HINTS = {
    "rr": "rr walks the list in order from the server after the last one picked; "
          "weights only matter as 0 = skip",
    "wrr": "kernel wrr interleaves by passes of a falling current weight (3,2,1 gives "
           "web1 web1 web2 web1 web2 web3)",
    "lc": "lc takes the least ActiveConn*256 + InActConn; weights do not scale it",
    "wlc": "wlc has no +1 (that is sed): the kernel takes the least "
           "(ActiveConn*256 + InActConn) / weight, and the first server of equals wins",
    "sed": "sed takes the least (ActiveConn + 1) / weight: InActConn is ignored, the weight "
           "counts, and the first server of equals wins",
    "nq": "nq takes the first server with 0 ActiveConn in list order, otherwise the sed "
          "choice",
    "lblc": "lblc keeps its cached server until that server has ActiveConn > weight AND "
            "some server has ActiveConn*2 < its weight; only then it moves, to the wlc choice",
    "lblcr": "lblcr keeps a set of servers: it serves the set's least loaded member (wlc "
             "rule); when that member is overloaded (the lblc rule) it adds the wlc choice "
             "over all servers to the set and uses it",
}


# -- the lab's data: the states of each variant ---------------------------------------------

def variants():
    """Every variant's states, in file order: ``[{state: {lb_algo, picks, servers: {web1:
    {weight, active, inactive}, ...}}}, ...]``; each state is named after its scheduler."""
    data = yaml.safe_load(STATES_FILE.read_text())
    return [{name: dict(lb_algo=name, picks=data["picks"], servers={
        server: dict(weight=row["weights"][k], active=row["active"][k],
                     inactive=row["inactive"][k]) for k, server in enumerate(SERVERS)})
        for name, row in rows.items()} for rows in data["variants"]]


def load_states(variant=0):
    """The states of one variant, in file order."""
    return variants()[variant]


def _name(student):
    return (student or "").strip().lower()


def variant_of(student):
    """A student's variant: 0 without a name, otherwise one of 1..N picked by the name's
    SHA-256 (not ``hash()``, which changes between runs), ignoring case and outer spaces,
    so that the same name gets the same states on every machine and neighbours in a
    class usually get different ones."""
    if not _name(student):
        return 0
    named = len(variants()) - 1
    return 1 + int.from_bytes(hashlib.sha256(_name(student).encode()).digest()[:8], "big") % named


def declared_student(submission):
    """The ``student:`` written in the submission's predictions.yaml (None: none)."""
    try:
        data = yaml.safe_load((Path(submission) / PREDICTIONS).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    student = data.get("student") if isinstance(data, dict) else None
    return str(student) if isinstance(student, (str, int)) and _name(str(student)) else None


def whose(ctx):
    """(variant, student name or None): the name the grader was given (in a class, the
    student's folder) wins; otherwise the ``student:`` of predictions.yaml, so that a
    student checking their own work with ``redlab run 06`` gets their own variant."""
    student = ctx.student if _name(ctx.student) else declared_student(ctx.submission)
    return variant_of(student), student


def variant_text(variant, student):
    if student is None:
        return "variant 0 (no student name)"
    return "variant %d (student %s)" % (variant, student)


def describe(state):
    s = state["servers"]
    return "%s, weights %s, ActiveConn %s, InActConn %s" % (
        state["lb_algo"], "/".join(str(s[n]["weight"]) for n in SERVERS),
        "/".join(str(s[n]["active"]) for n in SERVERS),
        "/".join(str(s[n]["inactive"]) for n in SERVERS))


def read_predictions(submission, states=None):
    """(predictions or None, problems): each state of ``states`` (default: variant 0) ->
    list of server names.  A ``student:`` key names whose variant it is."""
    states = states if states is not None else load_states()
    path = Path(submission) / PREDICTIONS
    if not path.exists():
        return None, ["there is no %s in %s; copy the lab's submission/%s and fill it in"
                      % (PREDICTIONS, submission, PREDICTIONS)]
    try:
        data = yaml.safe_load(path.read_text())
    except UnicodeDecodeError:
        return None, ["%s is not UTF-8 text; save it as UTF-8" % PREDICTIONS]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return None, ["%s is not valid YAML%s: %s" % (
            PREDICTIONS, " (line %d)" % (mark.line + 1) if mark else "",
            getattr(exc, "problem", exc))]
    if not isinstance(data, dict):
        return None, ["%s must map each state (%s) to a list of server names"
                      % (PREDICTIONS, ", ".join(states))]
    problems, predictions = [], {}
    student = data.pop("student", None)
    if student is not None and not isinstance(student, (str, int)):
        problems.append("student must be your name as your instructor uses it, like "
                        "student: alice, got %r" % (student,))
    for name, state in states.items():
        picks = data.get(name)
        if picks is None:
            problems.append("state %s is missing" % name)
            continue
        if not isinstance(picks, list) or not all(isinstance(p, str) for p in picks):
            problems.append("state %s must be a list of server names like [web1, web2], "
                            "got %r" % (name, picks))
            continue
        unknown = sorted(set(picks) - set(SERVERS))
        if unknown:
            problems.append("state %s names %s; the servers are %s"
                            % (name, ", ".join(unknown), ", ".join(SERVERS)))
        if len(picks) != state["picks"]:
            problems.append("state %s needs %d picks, you gave %d"
                            % (name, state["picks"], len(picks)))
        predictions[name] = picks
    extra = sorted(str(key) for key in set(data) - set(states))
    if extra:
        problems.append("unknown state(s) %s; the states are %s"
                        % (", ".join(extra), ", ".join(states)))
    return predictions, problems


def verb_variant(ctx, args):
    """``redlab lab 06 variant [NAME]``: a student's variant and its states."""
    if args[:1] == ["--student"]:
        args = args[1:]
    if len(args) > 1:
        raise ConfigError("give one name: redlab lab 06 variant NAME (your name as your "
                          "instructor uses it, e.g. your class folder's name)")
    student = args[0] if args else declared_student(ctx.submission)
    variant = variant_of(student)
    states = load_states(variant)
    lines = ["%s: %s (a named student gets one of variants 1-%d; no name: variant 0, the "
             "guide's example)" % ("student %s" % student if student else "no student name",
                                   "variant %d" % variant, len(variants()) - 1), ""]
    lines += ["  state %-6s %s" % (name, describe(state)) for name, state in states.items()]
    lines += ["", "Predict the next %d picks in each state (guide, part 3)." %
              next(iter(states.values()))["picks"]]
    if student:
        lines.append("Write `student: %s` at the top of %s: `redlab run 06` and `redlab grade "
                     "06` then use variant %d." % (student, PREDICTIONS, variant))
    return "\n".join(lines)


VERBS = {"variant": (verb_variant, "variant [NAME]: the states you predict (your variant, "
                                   "chosen from your name)")}


# -- the real kernel's picks for the load of part 1 (kernel-picks.json) ---------------------

RECORD_COMMAND = "sudo make ipvs-record-lab06"


def kernel_orders():
    """{scheduler: [server, ...]}: the real IPVS's order for ``LOAD``, from ``KERNEL_FILE``.

    The file says which load, weights and addresses it was recorded for; a recording of
    another load would compare the controller with the wrong reference, so it is refused.
    """
    try:
        data = json.loads(KERNEL_FILE.read_text())
    except FileNotFoundError:
        raise ConfigError("%s is missing: record the kernel's picks with `%s` (a stock-kernel "
                          "guest, about a minute)" % (KERNEL_FILE, RECORD_COMMAND)) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError("%s cannot be read (%s): record it again with `%s`"
                          % (KERNEL_FILE, exc, RECORD_COMMAND)) from None
    ours = kernel_setting()
    theirs = {key: data.get(key) for key in ours}
    if theirs != ours:
        raise ConfigError("%s was recorded for %s, but this lab has %s: record it again "
                          "with `%s`" % (KERNEL_FILE.name, _setting_text(theirs),
                                         _setting_text(ours), RECORD_COMMAND))
    missing = [algo for algo in CLASSIC if algo not in data.get("schedulers", {})]
    if missing:
        raise ConfigError("%s has no picks for %s: record it again with `%s`"
                          % (KERNEL_FILE.name, ", ".join(missing), RECORD_COMMAND))
    return {algo: data["schedulers"][algo]["order"] for algo in CLASSIC}


def kernel_setting():
    """What a recording must have been made for: the load, the servers in list order, their
    weights, and the addresses sh and dh hash (the client's and the VIP)."""
    return dict(pattern=LOAD, servers=list(SERVERS), weights=list(WEIGHTS),
                client=ap.client(1, ap.SERVICE), vip=ap.vip())


def _setting_text(setting):
    return "the load %s, servers %s, weights %s, client %s, VIP %s" % (
        setting["pattern"], setting["servers"], setting["weights"], setting["client"],
        setting["vip"])


# -- the kernel's rules on paper (controllers/schedulers.py) --------------------------------

def kernel_picks(algo, servers, pattern, client_ip, dest_ip):
    """What the pure schedulers pick for ``pattern`` (H: +1 active, S: +1 inactive),
    assuming no closed connection expires meanwhile."""
    real = [RealServer(name=name, ip=ap.web(n), port=80, weight=w, active_conns=a,
                       inactive_conns=i) for n, (name, w, a, i) in enumerate(servers, 1)]
    scheduler = make_scheduler(algo)
    picks = []
    for step, letter in enumerate(pattern):
        dest = scheduler.pick(real, client_ip=client_ip, dest_ip=dest_ip, client_port=0,
                              now=float(step))
        picks.append(dest.name if dest else None)
        if dest is not None:
            if letter == "H":
                dest.active_conns += 1
            else:
                dest.inactive_conns += 1
    return picks


# -- the bench: service + client + helpers --------------------------------------------------

class Bench:
    def __init__(self, lab):
        self.lab = lab
        self.vip = lab.service.vip
        self.client_ip = lab.client.IP()
        self.half_open_port = HALF_OPEN_PORTS[0]
        lab.client.cmd("sysctl -qw net.ipv4.ip_local_port_range='%s'" % EPHEMERAL_PORTS)
        for name in SERVERS:
            host = lab[name]
            # the SYN-ACKs to the client ports of half-open connections go nowhere: the
            # load balancer sees a SYN but no SYN-ACK, so it counts them in InActConn
            host.cmd("ip rule add pref 100 ipproto tcp dport %d-%d blackhole" % HALF_OPEN_PORTS)
            if "dport %d-%d blackhole" % HALF_OPEN_PORTS not in host.cmd("ip rule show"):
                raise RedlabError("cannot add the policy-routing rule that keeps connections "
                                  "half-open in %s (iproute2 >= 4.17 needed): %s"
                                  % (name, host.cmd("ip rule show").strip()))
        self.agent = ClientAgent(lab.client, self.vip, lab.service.port, "lab 06 client")

    def stop(self):
        self.agent.stop()

    def counts(self):
        return self.lab.counts()

    def set_scheduler(self, algo):
        self.lab.ctl.set_scheduler(algo)

    def set_weights(self, weights):
        for name in SERVERS:
            self.lab.ctl.set_weight(name, weights[name])

    def drain(self, inactive_too=True):
        """Wait until no connection is ESTABLISHED any more and, with ``inactive_too``,
        until the closed ones have left the table too (their tracker entries expire)."""
        if inactive_too:
            wait_until(lambda: (all(c == (0, 0) for c in self.counts().values()),
                                self.counts()), 5 + 3 * CLOSING_TIMEOUT,
                       "every connection to leave the table")
        else:
            wait_until(lambda: (all(c[0] == 0 for c in self.counts().values()),
                                self.counts()), 5, "ActiveConn to drop to 0")

    def scheduled(self, since, n):
        return wait_until(lambda: (len(self.lab.scheduled(since)) >= n,
                                   self.lab.scheduled(since)),
                          5, "the controller to log %d scheduling decisions" % n)[:n]

    # one scheduler, the lab's load ---------------------------------------------------
    def run_load(self, algo, pattern):
        # every run starts with no established connection; the closed connections of the
        # previous run are waited for only where the scheduler reads InActConn (the others
        # never look at it: the "= kernel" column, recorded from an empty table, shows that
        # it made no difference)
        self.drain(inactive_too=algo in READS_INACTIVE)
        self.set_scheduler(algo)
        since = time.time()
        started = time.monotonic()
        replies = self.agent.ask("load " + pattern)
        seconds = time.monotonic() - started
        served = [r.split(":", 1)[1] for r in replies]
        order = self.scheduled(since, len(pattern))
        if served != order:
            raise RedlabError("%s: the controller scheduled %s but the answers came from %s"
                              % (algo, " ".join(order), " ".join(served)))
        total = collections.Counter(order)
        held = collections.Counter(s for s, letter in zip(order, pattern) if letter == "H")
        # the load balancer's ActiveConn is the held connections (once the last short
        # request's FIN has reached it)
        wait_until(lambda: ({n: c[0] for n, c in self.counts().items()}
                            == {n: held[n] for n in SERVERS}, self.counts()), 5,
                   "%s: ActiveConn to equal the held connections %s" % (algo, dict(held)))
        self.agent.ask("close")
        # the kernel keeps a closed connection in InActConn for minutes, this controller for
        # CLOSING_TIMEOUT: the counts agree at every pick only if the run was shorter
        counted_alike = algo not in READS_INACTIVE or seconds < CLOSING_TIMEOUT
        return dict(order=order, seconds=round(seconds, 2), counted_alike=counted_alike,
                    total={n: total[n] for n in SERVERS}, held={n: held[n] for n in SERVERS})

    # sh with more than one client address ------------------------------------------
    def sh_sources(self, count):
        """Client addresses whose source hashes reach different servers (computed with
        the kernel's hash), added to client1; returns {address: expected server}."""
        scheduler = make_scheduler("sh")
        servers = [RealServer(name=n, ip=ap.web(i), port=80, weight=w)
                   for i, (n, w) in enumerate(zip(SERVERS, WEIGHTS), 1)]
        chosen, servers_seen = {}, set()
        for n in range(2, 40):
            ip = ap.client(n, ap.SERVICE)
            server = scheduler.pick(servers, client_ip=ip, dest_ip=self.vip).name
            if server not in servers_seen:
                chosen[ip] = server
                servers_seen.add(server)
            if len(chosen) == count:
                break
        intf = self.lab.client.defaultIntf().name
        for ip in chosen:
            self.lab.client.cmd("ip addr add %s dev %s" % (ap.cidr(ip), intf))
        return chosen

    def run_sh_sources(self, sources, per_source=2):
        self.drain(inactive_too=False)          # sh does not read the counters
        self.set_scheduler("sh")
        got = {}
        for ip in sources:
            since = time.time()
            served = self.agent.ask("load %s %s" % ("S" * per_source, ip))
            got[ip] = [r.split(":", 1)[1] for r in served]
            order = self.scheduled(since, per_source)
            if order != got[ip]:
                raise RedlabError("sh from %s: scheduled %s, served by %s" % (ip, order, got[ip]))
        return got

    # a given state, then the next picks -------------------------------------------
    def make_state(self, state):
        """Weights, ActiveConn and InActConn exactly as ``state``, with real connections."""
        self.drain()
        self.set_scheduler("wlc")
        for name in SERVERS:
            want = state["servers"][name]
            if not (want["active"] or want["inactive"]):
                continue
            # only `name` may take new connections while its counts are built
            self.set_weights({n: 1 if n == name else 0 for n in SERVERS})
            if want["active"]:
                self.agent.ask("hold %d" % want["active"])
            if want["inactive"]:
                if self.half_open_port + want["inactive"] > HALF_OPEN_PORTS[1]:
                    raise RedlabError("no half-open client ports left")
                self.agent.ask("halfopen %d %d" % (self.half_open_port, want["inactive"]))
                self.half_open_port += want["inactive"]
            wait_until(lambda: (self.counts()[name] == (want["active"], want["inactive"]),
                                self.counts()), 5, "%s to have ActiveConn %d, InActConn %d"
                       % (name, want["active"], want["inactive"]))
        self.set_weights({n: state["servers"][n]["weight"] for n in SERVERS})
        self.set_scheduler(state["lb_algo"])
        self.check_state(state)

    def check_state(self, state):
        want = {n: (state["servers"][n]["active"], state["servers"][n]["inactive"])
                for n in SERVERS}
        wait_until(lambda: (self.counts() == want, self.counts()), 5 + 3 * CLOSING_TIMEOUT,
                   "the state %s (connections made at the CLI must close first)" % want)
        weights = {s["name"]: s["weight"] for s in self.lab.status()["servers"]}
        if weights != {n: state["servers"][n]["weight"] for n in SERVERS}:
            raise RedlabError("the weights are %s, not the state's" % weights)

    def next_picks(self, n):
        since = time.time()
        served = self.agent.ask("hold %d" % n)
        order = self.scheduled(since, n)
        if served != order:
            raise RedlabError("the controller scheduled %s but the answers came from %s"
                              % (" ".join(order), " ".join(served)))
        return order

    def end_state(self, state):
        self.agent.ask("close")
        for name in SERVERS:
            if state["servers"][name]["inactive"]:
                # what the controller does when a server fails its check: its half-open
                # connections are cleared (no health checker runs in this lab)
                for health in ("down", "up"):
                    self.lab.ctl.set_health(name, health,
                                            "lab 06: clear the half-open connections")


# -- the picture ----------------------------------------------------------------------------

COLORS = {"web1": "#1f77b4", "web2": "#ff7f0e", "web3": "#2ca02c"}


def svg_chart(spread, weights, title):
    """A grouped bar chart as SVG text: per scheduler one bar per server, the held part
    solid, the short requests light."""
    algos = list(spread)
    top = max(max(r["total"].values()) for r in spread.values()) or 1
    step = 3 if top <= 24 else 6
    ymax = -(-top // step) * step
    left, right, upper, lower, plot_h = 50, 20, 70, 50, 240
    bar, gap, group_gap = 16, 2, 22
    group_w = len(SERVERS) * (bar + gap) - gap
    width = left + right + len(algos) * (group_w + group_gap)
    height = upper + plot_h + lower

    def y(value):
        return upper + plot_h - plot_h * value / ymax

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="12">' % (width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="20" font-size="15" font-weight="bold">%s</text>' % (left, title)]
    for tick in range(0, ymax + 1, step):
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>'
                   % (left, y(tick), width - right, y(tick)))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%d</text>' % (left - 6, y(tick) + 4,
                                                                         tick))
    out.append('<text x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle">'
               'connections</text>' % (upper + plot_h // 2, upper + plot_h // 2))
    for g, algo in enumerate(algos):
        x0 = left + group_gap // 2 + g * (group_w + group_gap)
        for i, name in enumerate(SERVERS):
            x = x0 + i * (bar + gap)
            total, held = spread[algo]["total"][name], spread[algo]["held"][name]
            out.append('<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s" opacity="0.4">'
                       '<title>%s %s: %d short</title></rect>'
                       % (x, y(total), bar, y(held) - y(total), COLORS[name], algo, name,
                          total - held))
            out.append('<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s">'
                       '<title>%s %s: %d held open</title></rect>'
                       % (x, y(held), bar, y(0) - y(held), COLORS[name], algo, name, held))
            out.append('<text x="%d" y="%.1f" text-anchor="middle" font-size="10">%d</text>'
                       % (x + bar // 2, y(total) - 3, total))
        out.append('<text x="%d" y="%d" text-anchor="middle" font-weight="bold">%s</text>'
                   % (x0 + group_w // 2, upper + plot_h + 18, algo))
    out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="black"/>'
               % (left, y(0), width - right, y(0)))
    lx = left
    for name in SERVERS:
        out.append('<rect x="%d" y="34" width="12" height="12" fill="%s"/>' % (lx, COLORS[name]))
        out.append('<text x="%d" y="45">%s (weight %d)</text>' % (lx + 16, name, weights[name]))
        lx += 120
    out.append('<text x="%d" y="45">solid: held open (ActiveConn at the end); light: short '
               'requests</text>' % lx)
    out.append('<text x="%d" y="%d" fill="#555">bars: connections the controller sent to each '
               'server, read from its scheduling log</text>' % (left, height - 12))
    out.append("</svg>")
    return "\n".join(out) + "\n"


# -- the walk-through -----------------------------------------------------------------------


def _digits(order):
    return "".join(name[-1] for name in order)


def walkthrough(ctx):
    started = time.monotonic()
    variant, student = whose(ctx)
    states = load_states(variant)
    predictions, problems = read_predictions(ctx.submission, states)
    weights = dict(zip(SERVERS, WEIGHTS))
    ctx.say("Lab 06: scheduling algorithms.  Three web servers of different capacity "
            "(weights web1=3, web2=2, web3=1) behind the VIP; the os-ken load balancer picks "
            "a server for each new connection with the kernel's rules for the scheduler "
            "in use.")
    ctx.say("Your prediction task: %s (`redlab lab 06 variant NAME` shows a name's states)."
            % variant_text(variant, student))
    kernel = kernel_orders()        # before the network: a stale recording stops here
    service = web_service(CLASSIC[0], weights=WEIGHTS, check="tcp")
    measured = dict(weights=weights, load=LOAD, closing_timeout=CLOSING_TIMEOUT,
                    variant=variant)
    with LoadBalancedService(service, name="lab06", run_folder=ctx.folder("scheduling"),
                             checker=False, closing_timeout=CLOSING_TIMEOUT) as lab:
        bench = Bench(lab)
        try:
            ctx.say("service up: VIP %s:%d, run folder %s"
                    % (service.vip, service.port, lab.network.run.path))
            ctx.pause(lab.network, STOPS["rr"], vip=service.vip)

            # 1. the same load under the ten schedulers ---------------------------------
            ctx.say("\n1. The same load under each scheduler: %d new connections from client1, "
                    "%s (H is held open: ESTABLISHED, it counts in ActiveConn; S is a short "
                    "request: after its FINs it counts in InActConn for %d s).  The scheduler "
                    "is switched live with set_scheduler (ipvsadm -E -s) on the same network."
                    % (len(LOAD), LOAD, CLOSING_TIMEOUT))
            spread = {}
            for algo in CLASSIC:
                result = bench.run_load(algo, LOAD)
                result["kernel"] = (result["order"] == kernel[algo]
                                    if result.pop("counted_alike") else None)
                result["order"] = _digits(result["order"])     # 1 = web1, 2 = web2, ...
                spread[algo] = result
            measured["spread"] = spread
            ctx.say(spread_table(spread, weights))
            slow = [algo for algo, r in spread.items() if r["kernel"] is None]
            if slow:
                ctx.say("? %s: the load took longer than the closing timeout (%d s), so short "
                        "connections may have left InActConn before the last pick, where the "
                        "kernel still counts them: no comparison (the machine was busy; run "
                        "again)"
                        % (", ".join(slow), CLOSING_TIMEOUT))
            svg = lab.network.run.path / "spread.svg"
            svg.write_text(svg_chart(spread, weights, "The same %d connections (%s) under the "
                                     "ten IPVS schedulers" % (len(LOAD), LOAD)))
            measured["svg"] = str(svg)
            ctx.say("\nbar chart: %s" % svg)
            for line in read_spread(spread, weights):
                ctx.say("  " + line)

            # 2. sh and dh: the address decides -------------------------------------------
            sh_bucket = sh_hashkey(bench.client_ip)
            dh_bucket = dh_hashkey(service.vip)
            table = make_scheduler("sh")
            servers = [RealServer(name=n, ip=ap.web(i), port=80, weight=weights[n])
                       for i, n in enumerate(SERVERS, 1)]
            table.pick(servers, client_ip=bench.client_ip)
            ctx.say("\n2. sh and dh look at an address, not at the load.  sh: client1 %s hashes "
                    "to bucket %d of 256; the buckets go to the servers in list order, each "
                    "server `weight` buckets in a row (%s ...), so bucket %d is %s and every "
                    "connection of client1 goes there.  dh: the destination %s (the VIP, the "
                    "same for every connection) hashes to bucket %d = %s.  lblc and lblcr keep "
                    "their server per destination too: with one VIP there is one entry."
                    % (bench.client_ip, sh_bucket, " ".join(table.buckets[:6]), sh_bucket,
                       table.buckets[sh_bucket], service.vip, dh_bucket,
                       SERVERS[dh_bucket % len(SERVERS)]))
            sources = bench.sh_sources(SH_CLIENTS)
            got = bench.run_sh_sources(sources)
            measured["sh_sources"] = {ip: " ".join(served) for ip, served in got.items()}
            ctx.say("   sh with %d more addresses on client1 (2 short requests from each):"
                    % len(sources))
            for ip, served in got.items():
                ctx.say("     from %-12s -> %s   (the hash says %s)"
                        % (ip, " ".join(served), sources[ip]))
            ctx.pause(lab.network, STOPS["sh"], svg=svg, sources=", ".join(sources),
                      source=next(iter(sources)), vip=service.vip)

            # 3. the prediction task ----------------------------------------------------
            ctx.say("\n3. Your predictions, %s: each of its states (states.yaml) is made "
                    "with real connections, then client1 opens new connections one after "
                    "another and keeps them open (each adds 1 ActiveConn to its server)."
                    % variant_text(variant, student))
            if problems:
                ctx.say("   (your %s: %s)" % (PREDICTIONS, "; ".join(problems)))
            results = {}
            for index, (name, state) in enumerate(states.items()):
                bench.make_state(state)
                ctx.say("\n   state %s: %s" % (name, describe(state)))
                if index == 0 and ctx.cli:
                    ctx.pause(lab.network, STOPS["state"], name=name, picks=state["picks"])
                    bench.check_state(state)                # what you did at the CLI is gone
                    bench.set_scheduler(state["lb_algo"])   # and the scheduler starts afresh
                picked = bench.next_picks(state["picks"])
                paper = kernel_picks(state["lb_algo"], [
                    (n, state["servers"][n]["weight"], state["servers"][n]["active"],
                     state["servers"][n]["inactive"]) for n in SERVERS],
                    "H" * state["picks"], bench.client_ip, service.vip)
                bench.end_state(state)
                mine = (predictions or {}).get(name)
                results[name] = dict(lb_algo=state["lb_algo"], picked=" ".join(picked),
                                     kernel_rules=" ".join(p or "-" for p in paper),
                                     predicted=" ".join(mine) if mine else None)
                if not ctx.class_mode:      # grading a class: no answer in the output
                    ctx.say("     the controller picked:  %s" % " ".join(picked))
                    ctx.say("     controllers/schedulers: %s" % results[name]["kernel_rules"])
                ctx.say("     you predicted:          %s%s" % (
                    " ".join(mine) if mine else "(nothing)",
                    "   right" if mine == picked else ""))
            measured["states"] = results
            bench.drain()
        finally:
            bench.stop()
    if not ctx.grading:             # a demonstration: grading skips it
        measured["capacity"] = capacity(ctx)
    measured["seconds"] = round(time.monotonic() - started, 1)
    ctx.say("\nwalk-through took %.1f s" % measured["seconds"])
    return measured


def capacity(ctx, size=CAPACITY_FILE, n=CAPACITY_DOWNLOADS):
    """The notes: spread evenly over servers of different capacity, the load is uneven.

    The links really differ here (tc htb: CAPACITY_MBIT), and client1 fetches ``n`` files
    at once under rr and under wrr with weights in the same 3:2:1 ratio.
    """
    from topologies.service_lan import ServiceLanTopo
    ctx.say("\n4. Capacity for real: web1, web2, web3 now sit behind links of %s Mbit/s "
            "(tc htb), and client1 downloads %d files of %d kB at once through the VIP."
            % ("/".join(map(str, CAPACITY_MBIT)), n, size // 1000))
    service = web_service("rr", weights=WEIGHTS, check="tcp")
    result = {}
    with LoadBalancedService(service, name="lab06-capacity", checker=False,
                             run_folder=ctx.folder("capacity"),
                             topo=ServiceLanTopo(servers=3, dns=False, bw=CAPACITY_MBIT)) as lab:
        for name in SERVERS:
            lab[name].daemons["nginx"].publish("x" * size, "big.bin")
        agent = ClientAgent(lab.client, service.vip, service.port, "lab 06 downloader")
        try:
            for algo in ("rr", "wrr"):
                lab.ctl.set_scheduler(algo)
                times = agent.fetch(n, "/big.bin")
                if set(times) - set(SERVERS):
                    raise RedlabError("some downloads failed: %s" % times)
                result[algo] = {name: dict(files=len(times.get(name, [])),
                                           slowest=round(max(times.get(name, []), default=0), 2))
                                for name in SERVERS}
                ctx.say("   %-4s %s   all done after %.2f s" % (algo, "   ".join(
                    "%s: %d files, last done after %.2f s" % (
                        name, result[algo][name]["files"], result[algo][name]["slowest"])
                    for name in SERVERS), max(r["slowest"] for r in result[algo].values())))
            ctx.pause(lab.network, STOPS["links"], vip=service.vip)
        finally:
            agent.stop()
    ctx.say("   rr gives every server the same number of files, so the small server (web3) "
            "is still sending long after web1 is idle: the load is uneven.  wrr with weights "
            "for the capacities gives each server work in proportion, and all finish "
            "together, sooner.")
    return result


def spread_table(spread, weights):
    head = "%-7s" % "" + "".join("%-14s" % ("%s (w%d)" % (n, weights[n])) for n in SERVERS)
    lines = ["", head + "%-20s%s" % ("order (1=web1 ...)", "= kernel")]
    verdict = {True: "yes", False: "NO", None: "?"}
    for algo, r in spread.items():
        cells = "".join("%-14s" % ("%2d (%d held)" % (r["total"][n], r["held"][n]))
                        for n in SERVERS)
        lines.append("%-7s%s%-20s%s" % (algo, cells, r["order"], verdict[r["kernel"]]))
    return "\n".join(lines)


def read_spread(spread, weights):
    """One sentence per scheduler, with the numbers measured."""
    def t(algo, what="total"):
        return "/".join(str(spread[algo][what][n]) for n in SERVERS)
    order = spread["lblc"]["order"]                      # digits: 1 = web1, ...
    last, tail = SERVERS[int(order[-1]) - 1], 0
    for digit in reversed(order):                        # lblc's last stretch on one server
        if digit != order[-1]:
            break
        tail += 1
    return [
        "rr %s: the same number for every server whatever its weight; it does not see that "
        "the held connections pile up (held %s)." % (t("rr"), t("rr", "held")),
        "wrr %s: in proportion to the weights 3:2:1, still blind to the held connections "
        "(held %s)." % (t("wrr"), t("wrr", "held")),
        "lc held %s: the long connections are spread evenly -- lc ignores the weights, so "
        "web3 (weight 1) carries as many as web1 (weight 3)." % t("lc", "held"),
        "wlc held %s: the long connections follow the weights (ActiveConn*256+InActConn "
        "divided by the weight)." % t("wlc", "held"),
        "sed %s, nq %s: both count only ActiveConn, +1, divided by the weight; nq first "
        "sends to a server with no active connection." % (t("sed"), t("nq")),
        "sh %s, dh %s: one client, one VIP -- one bucket, one server." % (t("sh"), t("dh")),
        "lblc %s (held %s): one cached server for the one VIP; it moves only when the "
        "cached server has more active connections than its weight while some server is "
        "below half of its weight -- the last %d connections all went to %s (weight %d), "
        "because no server was below half of its weight any more." % (
            t("lblc"), t("lblc", "held"), tail, last, weights[last]),
        "lblcr %s (held %s): a set of servers for the VIP; it serves the set's least "
        "loaded member and adds a server to the set when that one is overloaded."
        % (t("lblcr"), t("lblcr", "held")),
    ]


# -- checks ---------------------------------------------------------------------------------

def check_predictions_file(ctx, measured):
    name = "predictions file"
    variant, student = whose(ctx)
    states = load_states(variant)
    predictions, problems = read_predictions(ctx.submission, states)
    declared = declared_student(ctx.submission)
    if ctx.student and declared and _name(declared) != _name(ctx.student):
        problems.append("it says student: %s, but it is graded as %s's work: write student: "
                        "%s and predict the states of variant %d (`redlab lab 06 variant %s`)"
                        % (declared, ctx.student, ctx.student, variant, ctx.student))
    if problems:
        return failed(name, "%s, %s: %s" % (variant_text(variant, student), PREDICTIONS,
                                            "; ".join(problems)), variant=variant)
    return passed(name, "%s: %s has %d picks for each of the states %s" % (
        variant_text(variant, student), PREDICTIONS, next(iter(states.values()))["picks"],
        ", ".join(predictions)), variant=variant)


check_predictions_file.static = True


def _check_state(ctx, measured, state_name):
    name = "%s state" % state_name
    variant, student = whose(ctx)
    state = load_states(variant)[state_name]
    result = measured.get("states", {}).get(state_name)
    if result is None or measured.get("variant") != variant:
        return failed(name, "the walk-through did not reach the %s state" % state_name)
    picked = result["picked"].split()
    predictions, _ = read_predictions(ctx.submission, load_states(variant))
    mine = (predictions or {}).get(state_name) or []
    setting = "state %s of %s (%s)" % (state_name, variant_text(variant, student),
                                       describe(state))
    # grading a class: a reason never holds the controller's picks (copied, they would be
    # the answer of every student with the same variant)
    shown = {} if ctx.class_mode else dict(picked=picked)
    if mine == picked:
        return passed(name, "%s: you predicted the controller's picks %s"
                      % (setting, " ".join(picked)), **shown)
    if not mine:
        return failed(name, "%s: %s has no prediction for it; write the %d next picks as a "
                      "list, e.g. %s: [web1, web2, ...] (see the predictions file check)"
                      % (setting, PREDICTIONS, state["picks"], state_name), **shown)
    first = next((i for i, (a, b) in enumerate(zip(picked, mine)) if a != b), None)
    if ctx.class_mode:
        where = ("you gave %d picks, not %d" % (len(mine), len(picked)) if first is None else
                 "pick %d of %d is the first wrong one" % (first + 1, len(picked)))
        return failed(name, "%s: your picks %s are not the controller's -- %s.  Hint: %s"
                      % (setting, " ".join(mine), where, HINTS[state["lb_algo"]]),
                      predicted=mine)
    if first is None:
        where = "you gave %d picks, not %d" % (len(mine), len(picked))
    else:
        where = ("first difference at pick %d: the controller picked %s, you predicted %s"
                 % (first + 1, picked[first], mine[first]))
    return failed(name, "%s: the controller picked %s; you predicted %s -- %s.  Hint: %s"
                  % (setting, " ".join(picked), " ".join(mine), where,
                     HINTS[state["lb_algo"]]), picked=picked, predicted=mine)


def check_wlc_state(ctx, measured):
    return _check_state(ctx, measured, "wlc")


def check_sed_state(ctx, measured):
    return _check_state(ctx, measured, "sed")


def check_lblc_state(ctx, measured):
    return _check_state(ctx, measured, "lblc")


def check_lblcr_state(ctx, measured):
    return _check_state(ctx, measured, "lblcr")


CHECKS = [check_predictions_file, check_wlc_state, check_sed_state, check_lblc_state,
          check_lblcr_state]
