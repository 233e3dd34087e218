"""Scheduling on a real load balancer: one load under a scheduler, a given state, the next picks.

Lab 06's harness, usable by any test or lab that asks "where does the next connection go"::

    with LoadBalancedService(web_service("rr", weights=(3, 2, 1), check="tcp"),
                             checker=False, closing_timeout=1) as lab:
        bench = SchedulingBench(lab, ("web1", "web2", "web3"), closing_timeout=1)
        bench.run_load("wlc", "HHS" * 6)      # order, totals, held, ActiveConn/InActConn
        bench.make_state(state)               # weights and counts made with real connections
        bench.next_picks(6)                   # what the controller picks next

Connections are of two kinds, as ``redlab.client_agent`` makes them: **H** is held open
(ESTABLISHED: ActiveConn) and **S** a short request (after its FINs: InActConn until its
tracker entry expires).  The rest of the module is what the lab compares the picks with
(the kernel's rules on paper, the real kernel's recording), the student's predictions file
and the pictures (a table, an SVG bar chart).
"""

import collections
import copy
import hashlib
import json
import time
from pathlib import Path

import yaml

from controllers.schedulers import (CLASSIC, RealServer, dh_hashkey, make_scheduler,
                                    sh_hashkey)
from controllers.validation import bounded_safe_load
from redlab import addressing as ap
from redlab import observe
from redlab.agent import ClientAgent
from redlab.checks import fail, ok
from redlab.errors import ConfigError, RedlabError
from redlab.wait import wait_until

# the schedulers whose choice reads InActConn: their runs start from an empty table
READS_INACTIVE = ("lc", "wlc", "lblc", "lblcr")


def kernel_picks(algo, servers, pattern, client_ip, dest_ip):
    """What the pure schedulers (the kernel's rules) pick for ``pattern`` (H: +1 active,
    S: +1 inactive) from ``servers`` = [(name, weight, active, inactive)], assuming no
    closed connection expires meanwhile."""
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


def state_picks(state, servers, client_ip, dest_ip):
    """The kernel's rules' next ``state["picks"]`` held connections in a state."""
    rows = [(n, state["servers"][n]["weight"], state["servers"][n]["active"],
             state["servers"][n]["inactive"]) for n in servers]
    return kernel_picks(state["lb_algo"], rows, "H" * state["picks"], client_ip, dest_ip)


def hash_buckets(servers, weights, client_ip, dest_ip):
    """Where sh and dh send a client and a destination: sh's table of 256 buckets (each
    server ``weight`` buckets in a row, in list order), the client's bucket and server, the
    destination's bucket and server (dh: one bucket per server)."""
    table = make_scheduler("sh")
    table.pick([RealServer(name=n, ip=ap.web(i), port=80, weight=weights[n])
                for i, n in enumerate(servers, 1)], client_ip=client_ip)
    sh, dh = sh_hashkey(client_ip), dh_hashkey(dest_ip)
    return dict(table=table.buckets, sh=sh, sh_server=table.buckets[sh], dh=dh,
                dh_server=servers[dh % len(servers)])


def digits(order):
    """``[web1, web3]`` -> ``"13"``: an order as the lab's tables print it."""
    return "".join(name[-1] for name in order)


# -- the real kernel's recording --------------------------------------------------------------

def kernel_orders(path, setting, record):
    """{scheduler: [server, ...]}: the real IPVS's order from a recording (``path``, made by
    ``record``, a command) of the load, servers, weights and addresses in ``setting``.

    A recording of another load would compare with the wrong reference: it is refused."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError("%s is missing: record the kernel's picks with `%s` (a stock-kernel "
                          "guest, about a minute)" % (path, record)) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError("%s cannot be read (%s): record it again with `%s`"
                          % (path, exc, record)) from None
    theirs = {key: data.get(key) for key in setting}
    if theirs != setting:
        raise ConfigError("%s was recorded for %s, but this lab has %s: record it again "
                          "with `%s`" % (path.name, _setting_text(theirs),
                                         _setting_text(setting), record))
    missing = [algo for algo in CLASSIC if algo not in data.get("schedulers", {})]
    if missing:
        raise ConfigError("%s has no picks for %s: record it again with `%s`"
                          % (path.name, ", ".join(missing), record))
    return {algo: data["schedulers"][algo]["order"] for algo in CLASSIC}


def _setting_text(setting):
    return "the load %s, servers %s, weights %s, client %s, VIP %s" % (
        setting["pattern"], setting["servers"], setting["weights"], setting["client"],
        setting["vip"])


# -- the prediction task: states, one variant per student, the predictions file -----------------

class PredictionTask:
    """States whose next picks a student predicts, one variant of them per student name.

    ``data``: a lab's data with ``picks`` (how many picks per state) and ``variants``, each
    ``{state: {weights: [..], active: [..], inactive: [..]}}`` in the servers' order; each
    state is named after its scheduler.  Variant 0 is for no name (a guide's example); a
    name gets one of the others, so answers copied from a classmate are another variant's.
    ``file``: the student's predictions, ``state: [server, ...]`` and ``student: NAME``."""

    def __init__(self, data, servers, file="predictions.yaml"):
        self.servers, self.file, self.picks = tuple(servers), file, data["picks"]
        self._variants = [{name: dict(lb_algo=name, picks=self.picks, servers={
            server: dict(weight=row["weights"][k], active=row["active"][k],
                         inactive=row["inactive"][k]) for k, server in enumerate(servers)})
            for name, row in rows.items()} for rows in data["variants"]]

    def variants(self):
        """Every variant's states: ``[{state: {lb_algo, picks, servers: {web1: {weight,
        active, inactive}, ...}}}, ...]`` (a copy: callers may change it)."""
        return copy.deepcopy(self._variants)

    def states(self, variant=0):
        return self.variants()[variant]

    def variant_of(self, student):
        """0 without a name, otherwise one of 1..N picked by the name's SHA-256 (not
        ``hash()``, which changes between runs), ignoring case and outer spaces: the same
        name gets the same states on every machine, neighbours usually different ones."""
        if not normal_name(student):
            return 0
        digest = hashlib.sha256(normal_name(student).encode()).digest()
        return 1 + int.from_bytes(digest[:8], "big") % (len(self._variants) - 1)

    def declared(self, submission):
        """The ``student:`` written in the submission's file (None: none, or unreadable)."""
        try:
            data = bounded_safe_load((Path(submission) / self.file).read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return None
        student = data.get("student") if isinstance(data, dict) else None
        return str(student) if isinstance(student, (str, int)) and \
            normal_name(str(student)) else None

    def whose(self, student, submission):
        """(variant, student name or None): the grader's name (in a class, the student's
        folder) wins; otherwise the file's ``student:``, so that a student checking their
        own work without a name on the command line gets their own variant."""
        student = student if normal_name(student) else self.declared(submission)
        return self.variant_of(student), student

    @staticmethod
    def text(variant, student):
        return ("variant %d (student %s)" % (variant, student) if student is not None
                else "variant 0 (no student name)")

    def describe(self, state):
        """``wlc, weights 3/2/1, ActiveConn 1/1/0, InActConn 0/0/4``."""
        s = state["servers"]
        return "%s, weights %s, ActiveConn %s, InActConn %s" % (state["lb_algo"], *(
            "/".join(str(s[n][key]) for n in self.servers)
            for key in ("weight", "active", "inactive")))

    def listing(self, student, commands):
        """A student's variant and its states; ``commands``: what then uses the variant."""
        variant = self.variant_of(student)
        lines = ["%s: variant %d (a named student gets one of variants 1-%d; no name: "
                 "variant 0, the guide's example)" % (
                     "student %s" % student if student else "no student name", variant,
                     len(self._variants) - 1), ""]
        lines += ["  state %-6s %s" % (name, self.describe(state))
                  for name, state in self.states(variant).items()]
        lines += ["", "Predict the next %d picks in each state (guide, part 3)." % self.picks]
        if student:
            lines.append("Write `student: %s` at the top of %s: %s then use variant %d."
                         % (student, self.file, commands, variant))
        return "\n".join(lines)

    def read(self, submission, states):
        """(predictions or None, problems): each state of ``states`` -> list of server
        names, from the submission's file; every problem is one sentence to act on."""
        path = Path(submission) / self.file
        if not path.exists():
            return None, ["there is no %s in %s; copy the lab's submission/%s and fill it in"
                          % (self.file, submission, self.file)]
        try:
            data = bounded_safe_load(path.read_text())
        except UnicodeDecodeError:
            return None, ["%s is not UTF-8 text; save it as UTF-8" % self.file]
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            return None, ["%s is not valid YAML%s: %s" % (
                self.file, " (line %d)" % (mark.line + 1) if mark else "",
                getattr(exc, "problem", exc))]
        if not isinstance(data, dict):
            return None, ["%s must map each state (%s) to a list of server names"
                          % (self.file, ", ".join(states))]
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
            unknown = sorted(set(picks) - set(self.servers))
            if unknown:
                problems.append("state %s names %s; the servers are %s"
                                % (name, ", ".join(unknown), ", ".join(self.servers)))
            if len(picks) != state["picks"]:
                problems.append("state %s needs %d picks, you gave %d"
                                % (name, state["picks"], len(picks)))
            predictions[name] = picks
        extra = sorted(str(key) for key in set(data) - set(states))
        if extra:
            problems.append("unknown state(s) %s; the states are %s"
                            % (", ".join(extra), ", ".join(states)))
        return predictions, problems

    def judge(self, name, picked, mine, setting, hint, class_mode):
        """The check of one state: the student's picks ``mine`` against the controller's
        ``picked``.  With ``class_mode`` no reason or measurement holds the controller's
        picks (copied, they would be the answer of every student with the same variant)."""
        shown = {} if class_mode else dict(picked=picked)
        if mine == picked:
            return ok("%s: you predicted the controller's picks %s"
                      % (setting, " ".join(picked)), **shown)
        if not mine:
            return fail("%s: %s has no prediction for it; write the %d next picks as a list, "
                        "e.g. %s: [web1, web2, ...] (see the predictions file check)"
                        % (setting, self.file, len(picked), name), **shown)
        first = next((i for i, (a, b) in enumerate(zip(picked, mine)) if a != b), None)
        if first is None:
            where = "you gave %d picks, not %d" % (len(mine), len(picked))
        elif class_mode:
            where = "pick %d of %d is the first wrong one" % (first + 1, len(picked))
        else:
            where = ("first difference at pick %d: the controller picked %s, you predicted %s"
                     % (first + 1, picked[first], mine[first]))
        if class_mode:
            return fail("%s: your picks %s are not the controller's -- %s.  Hint: %s"
                        % (setting, " ".join(mine), where, hint), predicted=mine)
        return fail("%s: the controller picked %s; you predicted %s -- %s.  Hint: %s"
                    % (setting, " ".join(picked), " ".join(mine), where, hint),
                    picked=picked, predicted=mine)


def normal_name(student):
    """A name as variants compare it: no outer spaces, lower case ("" for none)."""
    return (student or "").strip().lower()


# -- the bench: a running service, a client agent and the steps on them ---------------------

class SchedulingBench:
    """A :class:`redlab.scenarios.lb.LoadBalancedService` driven connection by connection.

    ``half_open_ports``: client source ports whose SYN-ACK the servers drop (policy routing),
    so that the load balancer sees a SYN and no SYN-ACK: an InActConn made to order;
    ``ephemeral_ports``: client1's own ports, kept out of that range."""

    def __init__(self, lab, servers, closing_timeout, half_open_ports=(61000, 61999),
                 ephemeral_ports="32768 60999"):
        self.lab, self.servers, self.closing_timeout = lab, tuple(servers), closing_timeout
        self.vip = lab.service.vip
        self.client_ip = lab.client.IP()
        self.half_open_ports = tuple(half_open_ports)
        self.half_open_port = self.half_open_ports[0]
        observe.set_sysctls(lab.client, {"net.ipv4.ip_local_port_range": ephemeral_ports})
        low, high = self.half_open_ports
        for name in self.servers:
            host = lab[name]
            host.cmd("ip rule add pref 100 ipproto tcp dport %d-%d blackhole" % (low, high))
            if not any(r.get("action") == "blackhole" and r.get("dport_start") == low
                       and r.get("dport_end") == high for r in observe.rules(host)):
                raise RedlabError("cannot add the policy-routing rule that keeps connections "
                                  "half-open in %s (iproute2 >= 4.17 needed): it has %s"
                                  % (name, observe.rules(host)))
        self.agent = ClientAgent(lab.client, self.vip, lab.service.port, "scheduling client")

    def stop(self):
        self.agent.stop()

    def counts(self):
        """``{server: (ActiveConn, InActConn)}`` as the load balancer counts them now."""
        return self.lab.counts()

    def set_scheduler(self, algo):
        self.lab.ctl.set_scheduler(algo)

    def set_weights(self, weights):
        for name in self.servers:
            self.lab.ctl.set_weight(name, weights[name])

    def drain(self, inactive_too=True):
        """Wait until no connection is ESTABLISHED any more and, with ``inactive_too``,
        until the closed ones have left the table too (their tracker entries expire)."""
        if inactive_too:
            wait_until(lambda: (all(c == (0, 0) for c in self.counts().values()),
                                self.counts()), 5 + 3 * self.closing_timeout,
                       "every connection to leave the table")
        else:
            wait_until(lambda: (all(c[0] == 0 for c in self.counts().values()),
                                self.counts()), 5, "ActiveConn to drop to 0")

    def scheduled(self, since, n):
        """The controller's next ``n`` scheduling decisions logged after ``since``."""
        return wait_until(lambda: (len(self.lab.scheduled(since)) >= n,
                                   self.lab.scheduled(since)),
                          5, "the controller to log %d scheduling decisions" % n)[:n]

    def _served_as_scheduled(self, what, since, served):
        order = self.scheduled(since, len(served))
        if served != order:
            raise RedlabError("%s: the controller scheduled %s but the answers came from %s"
                              % (what, " ".join(order), " ".join(served)))
        return order

    def run_load(self, algo, pattern):
        """``pattern`` under a fresh ``algo``: its order, how long it took, the connections
        per server (``total``, ``held``) and the ActiveConn/InActConn the balancer counted
        at its end (``counts``), before the held ones are closed again.

        Every run starts with no established connection; the closed connections of the
        previous run are waited for only where the scheduler reads InActConn.
        ``counted_alike``: the run was shorter than the closing timeout, so no short
        connection left InActConn before the last pick (the kernel keeps them minutes)."""
        self.drain(inactive_too=algo in READS_INACTIVE)
        self.set_scheduler(algo)
        since, started = time.time(), time.monotonic()
        replies = self.agent.ask("load " + pattern)
        seconds = time.monotonic() - started
        order = self._served_as_scheduled(algo, since, [r.split(":", 1)[1] for r in replies])
        total = collections.Counter(order)
        held = collections.Counter(s for s, letter in zip(order, pattern) if letter == "H")
        # ActiveConn is the held connections once the last short request's FIN has passed;
        # InActConn then holds this run's short ones (and, for a scheduler that does not
        # read it, what is left of the previous run's)
        want = {n: held[n] for n in self.servers}

        def settled():
            counts = self.counts()
            return {n: c[0] for n, c in counts.items()} == want, counts
        counts = wait_until(settled, 5, "%s: ActiveConn to equal the held connections %s"
                            % (algo, want))
        self.agent.ask("close")
        counted_alike = algo not in READS_INACTIVE or seconds < self.closing_timeout
        return dict(order=order, seconds=round(seconds, 2), counted_alike=counted_alike,
                    total={n: total[n] for n in self.servers},
                    held=want, counts={n: list(counts[n]) for n in self.servers})

    def sh_sources(self, count, weights):
        """Client addresses whose source hashes reach different servers (computed with the
        kernel's hash), added to the client; returns {address: expected server}."""
        scheduler = make_scheduler("sh")
        servers = [RealServer(name=n, ip=ap.web(i), port=80, weight=weights[n])
                   for i, n in enumerate(self.servers, 1)]
        chosen = {}
        for n in range(2, 40):
            ip = ap.client(n, ap.SERVICE)
            server = scheduler.pick(servers, client_ip=ip, dest_ip=self.vip).name
            if server not in chosen.values():
                chosen[ip] = server
            if len(chosen) == count:
                break
        intf = self.lab.client.defaultIntf().name
        for ip in chosen:
            self.lab.client.cmd("ip addr add %s dev %s" % (ap.cidr(ip), intf))
        return chosen

    def run_sh_sources(self, sources, per_source=2):
        """``per_source`` short requests from each address under sh: {address: [server]}."""
        self.drain(inactive_too=False)          # sh does not read the counters
        self.set_scheduler("sh")
        got = {}
        for ip in sources:
            since = time.time()
            served = self.agent.ask("load %s %s" % ("S" * per_source, ip))
            got[ip] = self._served_as_scheduled("sh from %s" % ip, since,
                                                [r.split(":", 1)[1] for r in served])
        return got

    def make_state(self, state):
        """Weights, ActiveConn and InActConn exactly as ``state``, with real connections."""
        self.drain()
        self.set_scheduler("wlc")
        for name in self.servers:
            want = state["servers"][name]
            if not (want["active"] or want["inactive"]):
                continue
            # only `name` may take new connections while its counts are built
            self.set_weights({n: 1 if n == name else 0 for n in self.servers})
            if want["active"]:
                self.agent.ask("hold %d" % want["active"])
            if want["inactive"]:
                if self.half_open_port + want["inactive"] > self.half_open_ports[1]:
                    raise RedlabError("no half-open client ports left")
                self.agent.ask("halfopen %d %d" % (self.half_open_port, want["inactive"]))
                self.half_open_port += want["inactive"]
            wait_until(lambda: (self.counts()[name] == (want["active"], want["inactive"]),
                                self.counts()), 5, "%s to have ActiveConn %d, InActConn %d"
                       % (name, want["active"], want["inactive"]))
        self.set_weights({n: state["servers"][n]["weight"] for n in self.servers})
        self.set_scheduler(state["lb_algo"])
        self.check_state(state)

    def check_state(self, state):
        """The balancer is in ``state`` (connections made by hand at a CLI must close first)."""
        want = {n: (state["servers"][n]["active"], state["servers"][n]["inactive"])
                for n in self.servers}
        wait_until(lambda: (self.counts() == want, self.counts()),
                   5 + 3 * self.closing_timeout,
                   "the state %s (connections made at the CLI must close first)" % want)
        weights = {s["name"]: s["weight"] for s in self.lab.status()["servers"]}
        if weights != {n: state["servers"][n]["weight"] for n in self.servers}:
            raise RedlabError("the weights are %s, not the state's" % weights)

    def next_picks(self, n):
        """Open ``n`` held connections one after another: the servers picked, in order."""
        since = time.time()
        return self._served_as_scheduled("next picks", since, self.agent.ask("hold %d" % n))

    def end_state(self, state):
        """Close the state's connections; its half-open ones are cleared as the controller
        does when a server fails its check (no health checker runs here)."""
        self.agent.ask("close")
        for name in self.servers:
            if state["servers"][name]["inactive"]:
                for health in ("down", "up"):
                    self.lab.ctl.set_health(name, health, "clear the half-open connections")


def measure_downloads(lab, servers, algos, n, size, at_stop=None):
    """``n`` downloads of ``size`` bytes at once under each of ``algos``:
    {algo: {server: {files, slowest}}} (``slowest``: when its last download finished).

    ``at_stop(network)`` runs once after the last scheduler (a CLI stop)."""
    for name in servers:
        lab[name].daemons["nginx"].publish("x" * size, "big.bin")
    agent = ClientAgent(lab.client, lab.service.vip, lab.service.port, "downloader")
    result = {}
    try:
        for algo in algos:
            lab.ctl.set_scheduler(algo)
            times = agent.fetch(n, "/big.bin")
            if set(times) - set(servers):
                raise RedlabError("some downloads failed: %s" % times)
            result[algo] = {name: dict(files=len(times.get(name, [])),
                                       slowest=round(max(times.get(name, []), default=0), 2))
                            for name in servers}
        if at_stop:
            at_stop(lab.network)
    finally:
        agent.stop()
    return result


def download_lines(result, servers):
    """One line per scheduler of :func:`measure_downloads`: files and finish per server."""
    return ["   %-4s %s   all done after %.2f s" % (algo, "   ".join(
        "%s: %d files, last done after %.2f s" % (name, per[name]["files"], per[name]["slowest"])
        for name in servers), max(r["slowest"] for r in per.values()))
        for algo, per in result.items()]


# -- the pictures -----------------------------------------------------------------------------

def spread_table(spread, servers, weights, closing_timeout):
    """The runs as a text table: per server ``total (held)``, the order, ``= kernel``
    (``?``: not compared, with a line saying why)."""
    head = "%-7s" % "" + "".join("%-14s" % ("%s (w%d)" % (n, weights[n])) for n in servers)
    lines = ["", head + "%-20s%s" % ("order (1=web1 ...)", "= kernel")]
    verdict = {True: "yes", False: "NO", None: "?"}
    for algo, r in spread.items():
        cells = "".join("%-14s" % ("%2d (%d held)" % (r["total"][n], r["held"][n]))
                        for n in servers)
        lines.append("%-7s%s%-20s%s" % (algo, cells, r["order"], verdict[r["kernel"]]))
    slow = [algo for algo, r in spread.items() if r["kernel"] is None]
    if slow:
        lines.append("? %s: the load took longer than the closing timeout (%d s), so short "
                     "connections may have left InActConn before the last pick, where the "
                     "kernel still counts them: no comparison (the machine was busy; run "
                     "again)" % (", ".join(slow), closing_timeout))
    return "\n".join(lines)


def spread_sentences(spread, servers, weights):
    """One sentence per scheduler of the lab's load, with the numbers measured."""
    def t(algo, what="total"):
        return "/".join(str(spread[algo][what][n]) for n in servers)
    order = spread["lblc"]["order"]                      # digits: 1 = web1, ...
    last = servers[int(order[-1]) - 1]
    tail = len(order) - len(order.rstrip(order[-1]))     # lblc's last stretch on one server
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


COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")


def svg_chart(spread, servers, weights, title):
    """A grouped bar chart as SVG text: per scheduler one bar per server, the held part
    solid, the short requests light."""
    colors = dict(zip(servers, COLORS))
    algos = list(spread)
    top = max(max(r["total"].values()) for r in spread.values()) or 1
    step = 3 if top <= 24 else 6
    ymax = -(-top // step) * step
    left, right, upper, lower, plot_h = 50, 20, 70, 50, 240
    bar, gap, group_gap = 16, 2, 22
    group_w = len(servers) * (bar + gap) - gap
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
        for i, name in enumerate(servers):
            x = x0 + i * (bar + gap)
            total, held = spread[algo]["total"][name], spread[algo]["held"][name]
            out.append('<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s" opacity="0.4">'
                       '<title>%s %s: %d short</title></rect>'
                       % (x, y(total), bar, y(held) - y(total), colors[name], algo, name,
                          total - held))
            out.append('<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s">'
                       '<title>%s %s: %d held open</title></rect>'
                       % (x, y(held), bar, y(0) - y(held), colors[name], algo, name, held))
            out.append('<text x="%d" y="%.1f" text-anchor="middle" font-size="10">%d</text>'
                       % (x + bar // 2, y(total) - 3, total))
        out.append('<text x="%d" y="%d" text-anchor="middle" font-weight="bold">%s</text>'
                   % (x0 + group_w // 2, upper + plot_h + 18, algo))
    out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="black"/>'
               % (left, y(0), width - right, y(0)))
    lx = left
    for name in servers:
        out.append('<rect x="%d" y="34" width="12" height="12" fill="%s"/>' % (lx, colors[name]))
        out.append('<text x="%d" y="45">%s (weight %d)</text>' % (lx + 16, name, weights[name]))
        lx += 120
    out.append('<text x="%d" y="45">solid: held open (ActiveConn at the end); light: short '
               'requests</text>' % lx)
    out.append('<text x="%d" y="%d" fill="#555">bars: connections the controller sent to each '
               'server, read from its scheduling log</text>' % (left, height - 12))
    out.append("</svg>")
    return "\n".join(out) + "\n"
