#!/usr/bin/env python3
"""Record the real kernel IPVS's pick for every connection, as test data for the replay.

Run it with ``make ipvs-record`` (as root: ``.venv/bin/python scripts/ipvs-record.py``, which
boots the stock Debian kernel with ``scripts/ipvs-vm`` and runs this file there with
``--in-guest``; about a minute under TCG); ``--in-guest`` on a host needs root and a kernel
with ip_vs, and builds and removes its namespaces and interfaces itself.  ``make ipvs-record SCHEDULERS="rr wlc"`` records only some schedulers.
It writes ``tests/data/ipvs-kernel/<scheduler>.json`` (to ``--out``; inside the guest the
host's tree is read-only, so the make target writes to the guest's /tmp and prints the
files back through the console in a form the host side unpacks).

``--lab06`` (``make ipvs-record-lab06``, also run by ``make ipvs-record``) records lab 06's
load instead: the lab's pattern of held and short connections from the lab's client
address to the lab's VIP, under each of the ten classic schedulers, with the lab's servers
and weights, into ``labs/06-scheduling/kernel-picks.json`` (see ``lab06_scenario``).

The network, built with iproute2 only (no iptables needed):

* netns ``rlrec-cli``: the clients, 10.0.1.1-8 on one veth, default route via the director;
* the guest's own namespace is the director: VIPs 10.1.<n>.1-3 on a dummy interface,
  ``tc`` (flower + skbedit) marks TCP port 80 to 10.1.<n>.0/24 with fwmark n on the
  client-facing veth, and one IPVS *fwmark* service per scheduler run (so the hashing
  schedulers see several destination addresses through one scheduler instance), NAT
  (masquerading) to the real servers;
* netns ``rlrec-srv``: the real servers 10.0.2.1-6 on one veth (one listening socket on
  0.0.0.0:80 that never accepts: the kernel completes the handshakes, which is all IPVS
  sees), default route via the director.

Each connection is opened from a client socket created inside ``rlrec-cli`` (``setns``);
the pick is read from ``/proc/net/ip_vs_conn`` (the entry of that client address and
port).  A *held* connection is kept open until IPVS shows it ESTABLISHED (ActiveConn); a
*closed* one is closed by the client and waited for until IPVS has left ESTABLISHED
(InActConn).  Right before each connection the destination list of the service is read
from ``/proc/net/ip_vs`` in the kernel's order with weight, ActiveConn and InActConn:
that is exactly what the scheduler looked at, since every earlier connection has settled.
Weight changes (``ipvsadm -e``), additions (which go to the head of the kernel's list)
and deletions happen between connections, as recorded steps.
"""

import argparse
import base64
import ctypes
import json
import os
import platform
import socket
import subprocess
import sys
import time

from controllers.schedulers import CLASSIC
from redlab.wait import wait_until

CLI_NS, SRV_NS = "rlrec-cli", "rlrec-srv"
CLIENTS = [f"10.0.1.{i}" for i in range(1, 9)]
SERVERS = [f"10.0.2.{i}" for i in range(1, 7)]
PORT = 80
CLONE_NEWNET = 0x40000000

# scheduler -> list of flag sets (one recorded run each); twos is not built in Debian 6.1
RUNS = {
    "rr": [[]], "wrr": [[]], "lc": [[]], "wlc": [[]], "sed": [[]], "nq": [[]],
    "sh": [[], ["sh-port"], ["sh-fallback"], ["sh-fallback", "sh-port"]],
    "dh": [[]], "lblc": [[]], "lblcr": [[]], "fo": [[]], "ovf": [[]],
    "mh": [[], ["mh-port"], ["mh-fallback"], ["mh-fallback", "mh-port"]],
}

_libc = ctypes.CDLL(None, use_errno=True)


def sh(cmd, check=True):
    """Run one shell command; a failure stops the recording with the command's error."""
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if check and r.returncode:
        sys.exit(f"ipvs-record: `{cmd}` failed: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def in_netns(name, fn):
    """Call ``fn()`` with this thread in network namespace ``name`` (sockets stay there)."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET):
            raise OSError(ctypes.get_errno(), f"setns into {name} failed")
        try:
            return fn()
        finally:
            _libc.setns(home, CLONE_NEWNET)
    finally:
        os.close(home)
        os.close(target)


def build_network():
    """The three namespaces described in the module docstring."""
    teardown_network()
    sh("modprobe ip_vs && modprobe act_skbedit && modprobe cls_flower")
    sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 "
       "net.ipv4.conf.default.rp_filter=0")
    for ns, veth, inner, net in ((CLI_NS, "rlrec-c", CLIENTS, "10.0.1"),
                                 (SRV_NS, "rlrec-s", SERVERS, "10.0.2")):
        sh(f"ip netns add {ns} && ip link add {veth} type veth peer name eth0 netns {ns}")
        sh(f"ip addr add {net}.254/24 dev {veth} && ip link set {veth} up")
        sh(f"ip -n {ns} link set lo up && ip -n {ns} link set eth0 up")
        for a in inner:
            sh(f"ip -n {ns} addr add {a}/24 dev eth0")
        sh(f"ip -n {ns} route add default via {net}.254")
    sh("ip link add rlrec-vip type dummy && ip link set rlrec-vip up")
    sh("tc qdisc add dev rlrec-c ingress")


def teardown_network():
    for cmd in ("ipvsadm -C", f"ip netns del {CLI_NS}", f"ip netns del {SRV_NS}",
                "ip link del rlrec-vip", "ip link del rlrec-c", "ip link del rlrec-s"):
        sh(cmd + " 2>/dev/null", check=False)


def _hex_ip(h):
    return socket.inet_ntoa(bytes.fromhex(h))


def read_service(mark):
    """``/proc/net/ip_vs``: the fwmark service's destinations in the kernel's list order."""
    dests, inside = [], False
    with open("/proc/net/ip_vs") as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if parts[0] in ("TCP", "UDP", "SCTP", "FWM"):
                inside = parts[0] == "FWM" and int(parts[1], 16) == mark
            elif parts[0] == "->" and inside:
                ip, port = parts[1].split(":")
                dests.append([_hex_ip(ip), int(port, 16), int(parts[3]), int(parts[4]),
                              int(parts[5])])
    return dests


def conn_entry(client, cport):
    """(real server, IPVS state) of the connection from client:cport, or None."""
    want_ip, want_port = socket.inet_aton(client).hex().upper(), f"{cport:04X}"
    with open("/proc/net/ip_vs_conn") as f:
        for line in f:
            p = line.split()
            if len(p) >= 8 and p[1] == want_ip and p[2] == want_port:
                return _hex_ip(p[5]), p[7]
    return None


def wait_for_state(client, cport, established, what):
    """Wait until IPVS's entry for client:cport is (or has left) ESTABLISHED; -> the entry.

    This is the condition that makes the next listing exact: the previous connection's
    last packet has gone through IPVS and moved its counters.
    """
    def probe():
        entry = conn_entry(client, cport)
        return entry is not None and (entry[1] == "ESTABLISHED") == established, entry
    return wait_until(probe, 20, what, interval=0.005)


class Run:
    """One IPVS fwmark service with one scheduler and flags, and its recorded connections."""

    def __init__(self, index, scheduler, flags, vip=None, created_with=None):
        """``vip``: one given VIP instead of three in 10.1.<index>.0/24; ``created_with``: the
        scheduler the service starts with (``-E`` switches to ``scheduler`` later)."""
        self.mark, self.scheduler, self.flags = index, scheduler, flags
        self.vips = [vip] if vip else [f"10.1.{index}.{i}" for i in (1, 2, 3)]
        self.held, self.connections, self.counter = [], [], 0
        for address in self.vips:
            sh(f"ip addr add {address}/32 dev rlrec-vip")
        match = f"{vip}/32" if vip else f"10.1.{index}.0/24"
        sh(f"tc filter add dev rlrec-c ingress protocol ip pref {index} flower ip_proto tcp "
           f"dst_ip {match} dst_port {PORT} action skbedit mark {index}")
        b = f" -b {','.join(flags)}" if flags else ""
        sh(f"ipvsadm -A -f {index} -s {created_with or scheduler}{b}")

    def ipvsadm(self, step, args):
        """A change between connections: ``-a``/``-e``/``-d`` on this service."""
        sh(f"ipvsadm {args.replace('FWM', f'-f {self.mark}')}")
        self.connections.append({"step": step, "ipvsadm": args.replace("FWM ", ""),
                                 "time": round(time.monotonic(), 3),
                                 "servers": read_service(self.mark)})

    def add(self, step, server, weight):
        self.ipvsadm(step, f"-a FWM -r {server}:{PORT} -m -w {weight}")

    def edit(self, step, server, weight):
        self.ipvsadm(step, f"-e FWM -r {server}:{PORT} -m -w {weight}")

    def delete(self, step, server):
        self.ipvsadm(step, f"-d FWM -r {server}:{PORT}")

    def connect(self, step, hold, client=None, vip=None):
        """One new connection; records the kernel's pick and what it saw, returns the pick."""
        n = self.counter
        self.counter += 1
        client = client or CLIENTS[(n * 3) % len(CLIENTS)]
        vip = vip or self.vips[(n * 5 // 2) % len(self.vips)]
        before = read_service(self.mark)
        now = time.monotonic()
        s = in_netns(CLI_NS, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        s.settimeout(5)
        s.bind((client, 0))
        cport = s.getsockname()[1]
        try:
            s.connect((vip, PORT))
        except (ConnectionRefusedError, TimeoutError):
            # no server available: the kernel answers the SYN with ICMP port unreachable
            s.close()
            if conn_entry(client, cport):
                sys.exit(f"ipvs-record: {client}:{cport} -> {vip} failed although IPVS "
                         "scheduled it; look at the guest's network set-up")
            self.connections.append({
                "step": step, "client": client, "client_port": cport, "vip": vip,
                "held": False, "time": round(now, 3), "servers": before, "picked": None})
            return None
        server, _ = wait_for_state(client, cport, True,
                                   f"{client}:{cport} -> {vip} to be ESTABLISHED in IPVS")
        if hold:
            self.held.append((s, client, cport))
        else:
            self.close(s, client, cport)
        self.connections.append({
            "step": step, "client": client, "client_port": cport, "vip": vip,
            "held": hold, "time": round(now, 3), "servers": before, "picked": server})
        return server

    def close(self, s, client, cport):
        s.close()
        wait_for_state(client, cport, False,
                       f"{client}:{cport} to leave ESTABLISHED in IPVS after the client closed it")

    def close_held(self, step, every=2):
        """Close every ``every``-th held connection (oldest first): active -> inactive."""
        keep = []
        for i, (s, client, cport) in enumerate(self.held):
            if i % every == 0:
                self.close(s, client, cport)
                self.connections.append({"step": step, "closed": [client, cport]})
            else:
                keep.append((s, client, cport))
        self.held = keep

    def finish(self):
        for s, _, _ in self.held:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            s.close()
        self.held = []
        sh(f"ipvsadm -D -f {self.mark}")
        # the next run may use the same VIP (lab 06): its mark must be the next run's
        sh(f"tc filter del dev rlrec-c ingress protocol ip pref {self.mark}")
        for address in self.vips:
            sh(f"ip addr del {address}/32 dev rlrec-vip")
        return {"flags": self.flags, "fwmark": self.mark, "vips": self.vips,
                "events": self.connections}


def scenario(run):
    """The same story for every scheduler: weights, changes, held and closed connections."""
    s1, s2, s3, s4, s5, s6 = SERVERS
    for server, weight in ((s1, 1), (s2, 2), (s3, 3), (s4, 1)):
        run.add("1 initial servers", server, weight)
    for i in range(12):
        run.connect("2 held connections", hold=True)
    run.close_held("3 close every other held one")
    for i in range(8):
        run.connect("4 held and closed", hold=i % 3 != 2)
    run.edit("5 weights change", s3, 1)
    run.edit("5 weights change", s1, 4)
    for i in range(8):
        run.connect("6 after weight change", hold=i % 2 == 0)
    run.edit("7 quiesce s2", s2, 0)
    for i in range(8):
        run.connect("8 with s2 at weight 0", hold=i % 2 == 1)
    run.add("9 add s5 (head of list)", s5, 2)
    run.add("9 add s6 (head of list)", s6, 5)
    for i in range(10):
        run.connect("10 after adding", hold=True)
    run.close_held("11 close every third held one", every=3)
    run.delete("12 delete s4", s4)
    run.edit("12 s2 back", s2, 3)
    for i in range(10):
        run.connect("13 after deleting", hold=i % 4 != 0)
    # one client and one VIP in a row: sh/dh/lblc/lblcr stickiness and lblc overload
    for i in range(8):
        run.connect("14 one client, one VIP", hold=True, client=CLIENTS[0], vip=run.vips[0])
    # weights with a gcd of 2 (wrr's di > 1 branch), one command at a time
    for server, weight in ((s2, 6), (s3, 2), (s6, 4)):
        run.edit("15 even weights", server, weight)
    for i in range(8):
        run.connect("16 even weights", hold=i % 2 == 0)
    # gcd 1 -> 2 again after 1, 4, 8, 9 picks: with these weights wrr's cw is 4 after 8
    # and 9, and an even cw is what its "cw = (cw / di) * di + 1" rule changes
    for k in (1, 4, 8, 9):
        run.edit("16b odd weight", s3, 1)
        for i in range(k):
            run.connect("16b odd weight", hold=False)
        run.edit("16b even weights again", s3, 2)
        for i in range(3):
            run.connect("16b even weights again", hold=False)
    # a server chosen from the middle of the list goes away (rr's del_dest moves its
    # pointer back to the server before it)
    for i in range(8):
        gone = run.connect("17 before deleting the chosen one", hold=False)
        order = [d[0] for d in read_service(run.mark)]
        if gone in order[1:-1]:
            break
    run.delete("17 delete the server just chosen", gone or s1)
    for i in range(8):
        run.connect("18 after deleting the chosen one", hold=i % 2 == 1)


# -- lab 06's load ---------------------------------------------------------------------------

LAB06_FILE = "kernel-picks.json"
LAB06_OUT = "labs/06-scheduling"
LAB06_ABOUT = [
    "The real kernel IPVS's pick for every connection of lab 06's load (labs/06-scheduling/"
    "lab.yaml: load, weights, servers), under each of its ten schedulers; the lab's '= kernel' "
    "column compares the controller's order with 'order' here, and tests/unit/"
    "test_lab06_kernel.py replays every pick through controllers/schedulers.py.",
    "Recorded by `sudo make ipvs-record-lab06` (scripts/ipvs-record.py --lab06, run in the "
    "stock Debian kernel guest of scripts/ipvs-vm; also part of `make ipvs-record`).  "
    "Re-record it after changing the load, weights or servers in lab.yaml: the lab refuses a "
    "recording made for another load.",
    "Per scheduler: one new IPVS service (created with rr, the servers added, then switched "
    "with ipvsadm -E -s like the lab's set_scheduler), the lab's client address and VIP "
    "(sh and dh hash them), then one connection per letter of the pattern, one after "
    "another: H is held open (ESTABLISHED: ActiveConn), S is closed by the client once "
    "established (a short request: InActConn); each is settled in IPVS before the next.  "
    "'servers' is what the scheduler saw right before the pick, from /proc/net/ip_vs in "
    "the kernel's list order: [name, weight, ActiveConn, InActConn].",
]
LAB06_COUNTED = (
    "What is counted: every connection of a run stays counted until the run ends (held "
    "ones in ActiveConn, short ones in InActConn), and each run starts from an empty table.  "
    "The kernel keeps a closed connection in InActConn for its FIN_WAIT/CLOSE_WAIT/"
    "TIME_WAIT timeouts (60-120 s, left at their defaults), longer than a run here (well "
    "under a minute even under emulation); the lab's controller keeps it for its closing "
    "timeout (lab.py CLOSING_TIMEOUT, 1 s), and the lab checks that its run of the whole "
    "pattern ended within that time (about 0.1 s), and empties its table before each "
    "scheduler that reads InActConn.  So at every pick both count the same connections.")


def lab06_setting():
    """Lab 06's load, servers, weights and addresses, read from the lab itself: the lab
    compares them with the recording's and refuses one made for another load."""
    from redlab import addressing as ap
    from redlab import labs
    lab = labs.find("06").module
    return {"pattern": lab.LOAD, "servers": list(lab.SERVERS), "weights": list(lab.WEIGHTS),
            "addresses": {name: ap.web(n) for n, name in enumerate(lab.SERVERS, 1)},
            "client": ap.client(1, ap.SERVICE), "vip": ap.vip(), "schedulers": list(CLASSIC)}


def lab06_network(setting):
    """The lab's client and server addresses on the recorder's network (/32 each, routed
    through the director like the others)."""
    client = setting["client"]
    sh(f"ip -n {CLI_NS} addr add {client}/32 dev eth0 && ip route add {client}/32 dev rlrec-c")
    for address in setting["addresses"].values():
        sh(f"ip -n {SRV_NS} addr add {address}/32 dev eth0 && "
           f"ip route add {address}/32 dev rlrec-s")


def lab06_scenario(run, setting):
    """Lab 06's load under ``run.scheduler``, as the lab runs it.

    The servers are added last one first: the kernel puts an added server at the head of
    its list, so the list reads web1, web2, web3 like the lab's.  Then the scheduler is
    switched live (``ipvsadm -E``: the lab's ``set_scheduler``) and the pattern's
    connections are opened one after another from the lab's client address to its VIP.
    """
    servers = list(zip(setting["servers"], setting["weights"]))
    for name, weight in reversed(servers):
        run.add("1 the lab's servers", setting["addresses"][name], weight)
    run.ipvsadm("2 set_scheduler", f"-E FWM -s {run.scheduler}")
    for letter in setting["pattern"]:
        run.connect("3 the lab's load", hold=letter == "H", client=setting["client"],
                    vip=setting["vip"])


def lab06_picks(finished, setting):
    """A finished run's picks in the lab's terms (server names, the letter of each)."""
    names = {ip: name for name, ip in setting["addresses"].items()}
    picks = [e for e in finished["events"] if "picked" in e]
    return [{"letter": letter, "time": e["time"], "client_port": e["client_port"],
             "servers": [[names[ip], weight, active, inactive]
                         for ip, _port, weight, active, inactive in e["servers"]],
             "picked": names.get(e["picked"])}
            for letter, e in zip(setting["pattern"], picks)]


def lab06_dump(recording):
    """JSON with one pick per line, like ``dump``: a re-recording diffs line by line."""
    parts = []
    for key, value in recording.items():
        if key == "schedulers":
            rows = []
            for algo, run in value.items():
                picks = ",\n     ".join(json.dumps(p) for p in run["picks"])
                rows.append(f'  {json.dumps(algo)}: {{"order": {json.dumps(run["order"])}, '
                            f'"picks": [\n     {picks}]}}')
            parts.append(f' "schedulers": {{\n' + ",\n".join(rows) + "}")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def record_lab06(out):
    """Every scheduler of lab 06 under its load -> ``out``/kernel-picks.json."""
    setting = lab06_setting()
    lab06_network(setting)
    schedulers = {}
    for index, algo in enumerate(setting["schedulers"], 1):
        run = Run(index, algo, [], vip=setting["vip"], created_with="rr")
        lab06_scenario(run, setting)
        picks = lab06_picks(run.finish(), setting)
        if len(picks) != len(setting["pattern"]):
            sys.exit(f"ipvs-record: lab 06 under {algo}: {len(picks)} picks recorded for "
                     f"{len(setting['pattern'])} connections; look at the guest's network")
        schedulers[algo] = {"order": [p["picked"] for p in picks], "picks": picks}
        print(f"ipvs-record: lab 06 {algo}: {''.join(n[-1] for n in schedulers[algo]['order'])}",
              flush=True)
    recording = {"about": LAB06_ABOUT, "counted": LAB06_COUNTED,
                 "kernel": platform.release(), "recorder": "scripts/ipvs-record.py --lab06"}
    recording.update({k: setting[k] for k in ("pattern", "servers", "weights", "addresses",
                                              "client", "vip")})
    recording["schedulers"] = schedulers
    with open(os.path.join(out, LAB06_FILE), "w") as f:
        f.write(lab06_dump(recording))


BEGIN, END = "=====ipvs-record tar.gz base64 begin=====", "=====ipvs-record end====="


def via_vm(args):
    """Host side: run the recorder in the ipvs-vm guest, unpack its files into ``--out``.

    The guest's writes vanish at power-off, so it prints a base64 tar of the recordings
    between two marker lines on the console, which ipvs-vm streams to us.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    what = "--lab06" if args.lab06 else " ".join(args.schedulers)
    inner = (f".venv/bin/python scripts/ipvs-record.py --in-guest --out /tmp/ipvs-kernel "
             f"{what} && echo {BEGIN} && "
             f"tar -C /tmp/ipvs-kernel -cz . | base64 -w 64 && echo {END}")
    proc = subprocess.run([os.path.join(here, "ipvs-vm"), "-n", "-t", "3000", "-C",
                           os.path.dirname(here), "--", inner],
                          stdout=subprocess.PIPE, text=True, errors="replace")
    lines = [line.strip() for line in proc.stdout.splitlines()]
    if proc.returncode or BEGIN not in lines or END not in lines:
        print(proc.stdout[-4000:], file=sys.stderr)
        sys.exit(f"ipvs-record: the guest run failed (exit {proc.returncode}); "
                 "see its output above and the console log ipvs-vm names")
    for line in lines:
        if line.startswith("ipvs-record:"):
            print(line)
    blob = "".join(lines[lines.index(BEGIN) + 1:lines.index(END)])
    os.makedirs(args.out, exist_ok=True)
    subprocess.run(["tar", "-C", args.out, "-xz"], input=base64.b64decode(blob), check=True)
    print(f"ipvs-record: recordings written to {args.out}")


def dump(recording):
    """JSON with one event per line: small, and a re-recording diffs line by line."""
    runs = []
    for run in recording["runs"]:
        head = json.dumps({k: v for k, v in run.items() if k != "events"})[:-1]
        events = ",\n   ".join(json.dumps(e) for e in run["events"])
        runs.append(f'{head}, "events": [\n   {events}]}}')
    top = json.dumps({k: v for k, v in recording.items() if k != "runs"})[:-1]
    body = ",\n ".join(runs)
    return f'{top}, "runs": [\n {body}]}}\n'


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="where the recordings go (default: tests/data/ipvs-kernel, "
                    f"with --lab06 {LAB06_OUT})")
    ap.add_argument("--in-guest", action="store_true",
                    help="record here (needs root and ip_vs) instead of booting ipvs-vm")
    ap.add_argument("--lab06", action="store_true",
                    help=f"record lab 06's load under its ten schedulers into {LAB06_FILE}")
    ap.add_argument("schedulers", nargs="*")
    args = ap.parse_args()
    if args.lab06 and args.schedulers:
        sys.exit("ipvs-record: --lab06 records the lab's ten schedulers; name no scheduler "
                 "with it")
    args.schedulers = args.schedulers or list(RUNS)
    args.out = args.out or (LAB06_OUT if args.lab06 else "tests/data/ipvs-kernel")
    unknown = set(args.schedulers) - set(RUNS)
    if unknown:
        sys.exit(f"ipvs-record: unknown scheduler(s) {sorted(unknown)}; use some of {list(RUNS)}")
    if not args.in_guest:
        return via_vm(args)
    os.makedirs(args.out, exist_ok=True)
    index, srv = 0, None
    try:
        build_network()
        srv = in_netns(SRV_NS, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", PORT))
        srv.listen(4096)
        if args.lab06:
            return record_lab06(args.out)
        for name in args.schedulers:
            runs = []
            for flags in RUNS[name]:
                index += 1
                run = Run(index, name, flags)
                scenario(run)
                runs.append(run.finish())
                print(f"ipvs-record: {name} {','.join(flags) or '-'}: "
                      f"{run.counter} connections", flush=True)
            path = os.path.join(args.out, f"{name}.json")
            with open(path, "w") as f:
                f.write(dump({"scheduler": name, "kernel": platform.release(),
                              "recorder": "scripts/ipvs-record.py", "runs": runs}))
    finally:
        if srv:
            srv.close()
        teardown_network()


if __name__ == "__main__":
    main()
