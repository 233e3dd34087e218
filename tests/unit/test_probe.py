"""The probe agent without root or a network: its schedules (real threads and clocks,
requests that hang), packets built and parsed on known bytes, each kind against a
loopback peer, and :class:`redlab.probe.Probe`'s command line."""

import errno
import http.server
import json
import socket
import subprocess
import statistics
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from redlab import probe_agent as pa
from redlab.probe import Probe, Sample, failure_kind


def test_paced_keeps_the_schedule_and_stops(monkeypatch):
    clock = {"now": 0.0}
    waits = []

    def wait(seconds):
        waits.append(round(seconds, 3))
        clock["now"] += seconds
    monkeypatch.setattr(pa.time, "monotonic", lambda: clock["now"])
    seen = []
    for seq in pa.paced(0.5, 4, 60, lambda: False, wait=wait):
        seen.append(seq)
        clock["now"] += 0.2 if seq != 1 else 0.9      # step 1 is slow
    assert seen == [0, 1, 2, 3]
    # 0.5 - 0.2; step 1 overran its slot: no wait, the schedule restarts; then 0.3 again
    assert waits == [0.3, 0.3, 0.3]
    assert list(pa.paced(0.5, 10, 60, lambda: True, wait=wait)) == []


def test_paced_can_catch_up_instead_of_shifting(monkeypatch):
    """The fixed schedule's pacing: a late step is followed at once by the ones it
    delayed, so that the schedule keeps one step per interval."""
    clock = {"now": 0.0}
    sent = []

    def wait(seconds):
        clock["now"] += seconds
    monkeypatch.setattr(pa.time, "monotonic", lambda: clock["now"])
    for seq in pa.paced(0.5, 6, 60, lambda: False, wait=wait, catch_up=True):
        sent.append(clock["now"])
        clock["now"] += 1.2 if seq == 1 else 0.0       # step 1 stalls for 2.4 intervals
    assert sent == [0.0, 0.5, 1.7, 1.7, 2.0, 2.5]       # steps 2 and 3 late, then on time


# ---------------------------------------------------------------------------------------
# schedules
# ---------------------------------------------------------------------------------------

class Recorder:
    """``write`` for the schedules: keeps the records, counts requests in flight."""

    def __init__(self):
        self.records = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0

    def write(self, data):
        with self.lock:
            self.records.append(data)

    def hang(self, seq, timeout):
        """A request that never gets an answer: it ends when its timeout does."""
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        threading.Event().wait(timeout)
        with self.lock:
            self.in_flight -= 1
        return pa.failed(TimeoutError("timed out"))


def test_fixed_schedule_sends_every_interval_while_every_request_hangs():
    interval, timeout, count = 0.02, 0.3, 40
    rec = Recorder()
    started = time.time()
    pa.run_fixed(rec.hang, rec.write, interval, timeout, count, 60, lambda: False)
    took = time.time() - started
    assert sorted(r["seq"] for r in rec.records) == list(range(count))
    assert all(r["error"] == "TimeoutError: timed out" and not r["ok"] for r in rec.records)
    sent = sorted(r["t"] for r in rec.records)
    # one request per interval, not one per timeout (a sequential probe: 40 x 0.3 s = 12 s).
    # The median gap, and generous spans: a loaded machine delays a thread now and then,
    # and the schedule catches up; what must not happen is waiting for the answers
    gaps = [b - a for a, b in zip(sent, sent[1:])]
    assert statistics.median(gaps) == pytest.approx(interval, rel=0.5)
    assert sent[-1] - sent[0] < (count - 1) * interval * 3 < (count - 1) * timeout / 3
    assert took < count * timeout / 3
    # every request of one timeout was in flight at once: nothing waited for an answer
    assert rec.most_in_flight >= timeout / interval - 2
    assert all(r["end"] - r["t"] >= timeout * 0.95 for r in rec.records)


def test_sequential_schedule_waits_for_each_answer():
    rec = Recorder()
    pa.run_sequential(rec.hang, rec.write, 0.02, 0.1, 1000, 0.5, lambda: False)
    # one request per timeout + interval: 0.5 s / 0.12 s, not 0.5 / 0.02
    assert 3 <= len(rec.records) <= 6
    assert rec.most_in_flight == 1


def test_fixed_schedule_records_overload_instead_of_skipping():
    """Two workers, both hung: the other requests are written as sent and failed."""
    rec = Recorder()
    count = 10
    release = threading.Event()

    def write(data):
        rec.write(data)
        if data["seq"] == count - 1:         # the schedule is over: let the workers end
            release.set()

    def hang(seq, timeout):
        release.wait(timeout)
        return pa.failed(TimeoutError("timed out"))

    pa.run_fixed(hang, write, 0.01, 10.0, count, 60, lambda: False, workers=2)
    by_seq = {r["seq"]: r for r in rec.records}
    assert sorted(by_seq) == list(range(count))
    assert [by_seq[s]["error"].split(":")[0] for s in range(count)] == \
        ["TimeoutError"] * 2 + ["ProbeOverload"] * (count - 2)
    assert not any(r["ok"] for r in rec.records)
    assert "all 2 workers were busy" in by_seq[5]["error"]


def test_a_request_that_raises_is_recorded_as_failed():
    rec = Recorder()

    def broken(seq, timeout):
        if seq == 1:
            raise ValueError("no such thing")
        return pa.answer(True)
    pa.run_fixed(broken, rec.write, 0.01, 0.1, 3, 60, lambda: False)
    by_seq = {r["seq"]: r for r in rec.records}
    assert sorted(by_seq) == [0, 1, 2]
    assert by_seq[1]["error"] == "ValueError: no such thing" and not by_seq[1]["ok"]


def test_fixed_schedule_stops_when_told_and_waits_for_requests_in_flight():
    rec = Recorder()
    pa.run_fixed(rec.hang, rec.write, 0.02, 0.2, 1000, 60, lambda: len(rec.records) >= 3)
    assert rec.in_flight == 0
    assert 3 <= len(rec.records) < 30


def test_workers_cover_one_timeout_of_requests():
    assert pa.workers_for(0.05, 0.5) == 20       # 10 in flight, 10 owed by 0.5 s late
    assert pa.workers_for(1.0, 0.5) == 3


@pytest.fixture
def silent_listener():
    """A TCP port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        yield sock.getsockname()[1]


def run_agent(tmp_path, *args):
    out = tmp_path / "samples.jsonl"
    subprocess.run([sys.executable, "-m", "redlab.probe_agent", "--out", str(out)]
                   + [str(a) for a in args], check=True, timeout=30)
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_agent_keeps_one_request_per_interval_against_a_server_that_never_answers(
        tmp_path, silent_listener):
    """The real agent, as a process: fixed sends 20/s where sequential sends 2/s."""
    url = "http://127.0.0.1:%d/" % silent_listener
    common = ["--url", url, "--interval", 0.05, "--timeout", 0.5, "--max-seconds", 2.0]
    fixed = run_agent(tmp_path, *common, "--schedule", "fixed", "--max-requests", 40)
    assert len(fixed) == 40
    assert {failure_kind(r["status"], r["error"]) for r in fixed} == {"TimeoutError"}
    sent = sorted(r["t"] for r in fixed)
    assert sent[-1] - sent[0] == pytest.approx(39 * 0.05, rel=0.15)
    (tmp_path / "samples.jsonl").unlink()
    sequential = run_agent(tmp_path, *common, "--max-requests", 40)
    assert 3 <= len(sequential) <= 5                     # 2.0 s / (0.5 + 0.05)


# ---------------------------------------------------------------------------------------
# the kinds against loopback peers
# ---------------------------------------------------------------------------------------

@pytest.fixture
def web():
    """An HTTP server on loopback that says who it is, like the lab's nginx."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code = 500 if self.path == "/broken" else 200
            self.send_response(code)
            self.send_header("X-Served-By", "web1")
            self.end_headers()
            self.wfile.write(b"hello from web1\n")

        def log_message(self, *args):
            pass
    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_http_answers_and_failures(web, silent_listener):
    good = pa.http_get("127.0.0.1", web, "/", 1.0)
    assert good == dict(ok=True, status=200, server="web1", error=None, body="hello from web1")
    broken = pa.http_get("127.0.0.1", web, "/broken", 1.0)
    assert not broken["ok"] and failure_kind(broken["status"], broken["error"]) == "HTTP 500"
    refused = pa.http_get("127.0.0.1", free_port(), "/", 1.0)
    assert failure_kind(refused["status"], refused["error"]) == "ConnectionRefusedError"
    started = time.monotonic()
    hung = pa.http_get("127.0.0.1", silent_listener, "/", 0.3)
    assert hung["error"] == "TimeoutError: timed out"
    assert time.monotonic() - started < 0.3 + 0.2       # the timeout bounds the whole request


def test_tcp_connects_or_says_why_not(silent_listener):
    assert pa.tcp_connect("127.0.0.1", silent_listener, 1.0)["ok"]
    refused = pa.tcp_connect("127.0.0.1", free_port(), 1.0)
    assert not refused["ok"] and refused["error"].startswith("ConnectionRefusedError: ")


def test_a_bare_oserror_is_named_by_its_errno():
    unreachable = OSError(errno.EHOSTUNREACH, "No route to host")
    assert pa.failed(unreachable)["error"] == "HostUnreachable: [Errno 113] No route to host"
    assert pa.failed(OSError(errno.EMSGSIZE, "too long"))["error"].startswith("EMSGSIZE: ")
    assert pa.failed("ProbeOverload")["error"] == "ProbeOverload"


# --- ICMP --------------------------------------------------------------------------------

def test_checksum_of_rfc1071_example():
    # RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (with the carry)
    assert pa.checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2
    assert pa.checksum(b"\x01") == 0xFEFF                 # an odd length is padded


def test_echo_request_is_the_packet_scapy_builds():
    from scapy.all import ICMP, raw
    packet = pa.echo_request(0x1234, 7)
    assert packet == raw(ICMP(type=8, id=0x1234, seq=7) / pa.PAYLOAD)
    assert packet[:8] == bytes.fromhex("0800") + packet[2:4] + bytes.fromhex("12340007")
    assert pa.checksum(packet) == 0                      # a valid checksum sums to zero
    assert pa.echo_request(0x1234, 65536 + 7) == packet  # the sequence wraps at 16 bits


# 10.0.0.11 -> 10.0.0.201: echo reply, id 0x1234, seq 7, payload "abcd"
ECHO_REPLY = bytes.fromhex("4500002000010000400166090a00000b0a0000c9"
                           "000028fe1234000761626364")
# 10.0.0.201 -> itself: destination unreachable, host unreachable (code 1), quoting the
# echo request id 0x1234 seq 7 that 10.0.0.201 sent to 10.0.0.11 (an ARP that failed)
HOST_UNREACHABLE = bytes.fromhex("4500003800030000400165310a0000c90a0000c9"
                                 "0301c1c500000000"
                                 "4500002000020000400166080a0000c90a00000b"
                                 "080020fe12340007")


def test_parse_icmp_matches_replies_and_errors_about_our_requests():
    assert pa.parse_icmp(ECHO_REPLY) == (0, 0, 0x1234, 7, "10.0.0.11")
    assert pa.parse_icmp(HOST_UNREACHABLE) == (3, 1, 0x1234, 7, "10.0.0.11")
    failure = pa.icmp_failure(3, 1, "10.0.0.201")
    assert failure_kind(None, failure["error"]) == "HostUnreachable"
    assert failure_kind(None, pa.icmp_failure(11, 0, "10.0.0.1")["error"]) == "TimeExceeded"
    assert failure_kind(None, pa.icmp_failure(3, 13, "10.0.0.1")["error"]) == \
        "DestinationUnreachable"


def test_parse_icmp_ignores_what_is_not_about_an_echo_request():
    request = bytearray(ECHO_REPLY)
    request[20] = 8                                      # an echo request (ours, seen back)
    assert pa.parse_icmp(bytes(request)) is None
    tcp = bytearray(ECHO_REPLY)
    tcp[9] = socket.IPPROTO_TCP
    assert pa.parse_icmp(bytes(tcp)) is None
    quoting_udp = bytearray(HOST_UNREACHABLE)
    quoting_udp[28 + 9] = socket.IPPROTO_UDP
    assert pa.parse_icmp(bytes(quoting_udp)) is None
    assert pa.parse_icmp(ECHO_REPLY[:24]) is None        # truncated
    assert pa.parse_icmp(b"") is None


# --- DNS ---------------------------------------------------------------------------------

QUESTION = bytes.fromhex("03777777036c6162076578616d706c65000001" "0001")  # www.lab.example A IN
# id 4242, QR RD RA, NOERROR, two A records, 10.0.0.12 first
TWO_A = (bytes.fromhex("424281800001000200000000") + QUESTION
         + bytes.fromhex("c00c000100010000003c00040a00000c"
                         "c00c000100010000003c00040a00000b"))
NXDOMAIN = bytes.fromhex("424281830001000000000000") + QUESTION
# NOERROR with only a CNAME to web.lab.example ("web" then a pointer to lab.example)
CNAME_ONLY = (bytes.fromhex("424281800001000100000000") + QUESTION
              + bytes.fromhex("c00c000500010000003c000603776562c010"))
SERVFAIL = bytes.fromhex("424281820001000000000000") + QUESTION


def parse(wire):
    import dns.message
    return dns.message.from_wire(wire)


def test_dns_answers_on_known_bytes():
    good = pa.dns_answer(parse(TWO_A), "A")
    assert good == dict(ok=True, status="NOERROR", server="10.0.0.11,10.0.0.12", error=None,
                        body="")
    for wire, kind in ((NXDOMAIN, "NXDOMAIN"), (SERVFAIL, "SERVFAIL"), (CNAME_ONLY, "NoAnswer")):
        result = pa.dns_answer(parse(wire), "A")
        assert not result["ok"] and failure_kind(result["status"], result["error"]) == kind
    assert pa.dns_answer(parse(CNAME_ONLY), "CNAME")["server"] == "web.lab.example."


@pytest.fixture
def dns_server():
    """A UDP port on loopback that answers each query with ``reply`` (its id copied), or
    not at all when ``reply`` is None; ``queries`` keeps what it was asked."""
    import socketserver
    state = SimpleNamespace(reply=TWO_A, queries=[])

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            query, sock = self.request
            state.queries.append(query)
            if state.reply is not None:
                sock.sendto(query[:2] + state.reply[2:], self.client_address)
    server = socketserver.UDPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def test_dns_query_on_a_loopback_server(dns_server):
    result = pa.dns_query("127.0.0.1", "www.lab.example", "A", 1.0, port=dns_server.port)
    assert result["ok"] and result["server"] == "10.0.0.11,10.0.0.12"
    # the query as sent: one question, recursion desired, www.lab.example A IN
    assert dns_server.queries[0][2:12] == bytes.fromhex("01000001000000000000")
    assert dns_server.queries[0][12:12 + len(QUESTION)] == QUESTION
    dns_server.reply = NXDOMAIN
    nx = pa.dns_query("127.0.0.1", "www.lab.example", "A", 1.0, port=dns_server.port)
    assert nx["status"] == "NXDOMAIN" and nx["error"].startswith("NXDOMAIN: ")
    dns_server.reply = None                              # a server that never answers
    started = time.monotonic()
    lost = pa.dns_query("127.0.0.1", "www.lab.example", "A", 0.3, port=dns_server.port)
    assert failure_kind(lost["status"], lost["error"]) == "TimeoutError"
    assert time.monotonic() - started < 0.5


def test_dns_query_to_a_closed_port_is_refused_at_once():
    started = time.monotonic()
    result = pa.dns_query("127.0.0.1", "www.lab.example", "A", 1.0, port=free_port())
    assert failure_kind(result["status"], result["error"]) == "ConnectionRefusedError"
    assert time.monotonic() - started < 0.5


# ---------------------------------------------------------------------------------------
# failure kinds and the Probe
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("status, error, kind", [
    (500, None, "HTTP 500"),
    (None, "TimeoutError: timed out", "TimeoutError"),
    (None, "ConnectionRefusedError: [Errno 111] Connection refused", "ConnectionRefusedError"),
    (None, "HostUnreachable: 10.0.0.201 says ICMP destination unreachable, code 1",
     "HostUnreachable"),
    ("NXDOMAIN", "NXDOMAIN: the server answered NXDOMAIN", "NXDOMAIN"),
    ("NOERROR", "NoAnswer: NOERROR without a A record", "NoAnswer"),
    ("SERVFAIL", None, "SERVFAIL"),
    (None, "ProbeOverload: all 12 workers were busy; raise --workers", "ProbeOverload"),
    (None, None, "error"),
])
def test_failure_kind_is_short_for_every_kind(status, error, kind):
    assert failure_kind(status, error) == kind


@pytest.fixture
def client(tmp_path):
    """Enough of a Mininet host for a Probe that is not started in it."""
    return SimpleNamespace(name="client1",
                           run=SimpleNamespace(file=lambda host, name: tmp_path / name))


def command_line(probe, monkeypatch):
    """The agent's arguments as Probe.start builds them, parsed by the agent itself."""
    seen = []
    monkeypatch.setattr(Probe, "spawn", lambda self, args: seen.append(args) or self)
    probe.start()
    return pa.parse_args([str(a) for a in seen[0]])


def test_probe_by_url_stays_sequential_http(client, monkeypatch):
    probe = Probe(client, "http://10.0.0.100/", interval=0.1)
    args = command_line(probe, monkeypatch)
    assert (args.kind, args.url, args.schedule, args.interval) == \
        ("http", "http://10.0.0.100/", "sequential", 0.1)
    assert probe.describe() == "http://10.0.0.100/"


@pytest.mark.parametrize("spec, expected, described", [
    ({"type": "tcp", "host": "web1", "port": 80},
     {"kind": "tcp", "host": "10.0.0.11", "port": 80}, "tcp 10.0.0.11:80"),
    ({"type": "icmp", "host": "10.0.0.12"},
     {"kind": "icmp", "host": "10.0.0.12"}, "icmp 10.0.0.12"),
    ({"type": "dns", "server": "dns1", "query": "www.lab.example"},
     {"kind": "dns", "server": "10.0.0.53", "query": "www.lab.example", "qtype": "A"},
     "dns @10.0.0.53 www.lab.example A"),
    ({"type": "http", "url": "http://10.0.0.100/x"},
     {"kind": "http", "url": "http://10.0.0.100/x"}, "http://10.0.0.100/x"),
])
def test_probe_from_a_drill_spec(client, monkeypatch, spec, expected, described):
    hosts = {"web1": "10.0.0.11", "dns1": "10.0.0.53"}
    spec = dict(spec, name="p", interval=0.05, timeout=0.5)
    probe = Probe.from_spec(client, spec, "probe-p", 30.0, lambda n: hosts.get(n, n))
    args = command_line(probe, monkeypatch)
    assert args.schedule == "fixed" and (args.interval, args.timeout) == (0.05, 0.5)
    assert {k: getattr(args, k) for k in expected} == expected
    assert probe.describe() == described
    assert probe.out.name == "probe-p.jsonl"


def test_probe_without_its_target_says_what_to_add(client):
    from redlab.errors import ConfigError
    with pytest.raises(ConfigError, match=r"a tcp probe needs port; give "
                                          r"target=dict\(host=..., port=...\)"):
        Probe(client, kind="tcp", target={"host": "10.0.0.11"})
    with pytest.raises(ConfigError, match="probe kind 'udp' is unknown"):
        Probe(client, kind="udp", target={})


def test_samples_are_in_the_order_sent(client):
    """On the fixed schedule a request that timed out is written after later ones."""
    probe = Probe(client, kind="icmp", target={"host": "10.0.0.11"}, schedule="fixed")
    lines = [dict(seq=1, t=1.05, end=1.06, ok=True, body=""),
             dict(seq=0, t=1.0, end=1.5, ok=False, error="TimeoutError: timed out", body="")]
    probe.out.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"seq": 2, "t"')
    assert [s.seq for s in probe.samples()] == [0, 1]
    assert probe.samples()[0] == Sample(seq=0, t=1.0, end=1.5, ok=False,
                                        error="TimeoutError: timed out", body="")


def test_samples_stop_before_a_request_in_flight_while_the_agent_runs(client):
    """Requests 1 and 2 answered, request 0 still waits for its timeout: nothing after
    it counts yet (a streak of good answers must not hide a failure to come)."""
    probe = Probe(client, kind="icmp", target={"host": "10.0.0.11"}, schedule="fixed")
    lines = [dict(seq=seq, t=1.0 + seq * 0.05, end=1.1 + seq * 0.05, ok=True, body="")
             for seq in (1, 2)]
    probe.out.write_text("".join(json.dumps(line) + "\n" for line in lines))
    probe.proc = SimpleNamespace(poll=lambda: None)            # running
    assert probe.samples() == []
    probe.proc = SimpleNamespace(poll=lambda: 0)               # exited
    assert [s.seq for s in probe.samples()] == [1, 2]


def test_agent_refuses_a_name_that_is_no_dns_question(capsys):
    with pytest.raises(SystemExit):
        pa.parse_args(["--out", "x", "--kind", "dns", "--server", "10.0.0.53",
                       "--query", "a" * 70 + ".example"])
    assert "is no DNS question" in capsys.readouterr().err
