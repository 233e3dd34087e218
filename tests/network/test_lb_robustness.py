"""The os-ken load balancer under junk, and its counting of half-open connections.

IPVS counts a connection in ActiveConn only once the client's ACK completes the
handshake; before that it is SYN_RECV (InActConn) and expires after the SYN_RECV
timeout (``ip_vs_proto_tcp.c``).  A flood of junk at the VIP -- random flags, spoofed
sources, bad checksums, fragments, truncated headers -- must therefore never show up as
ActiveConn, must leave only half-open entries that go away on their own, and must not
stop the controller from serving.  (The timeout is shortened to 3 s here.)
"""

import subprocess
import sys

from redlab.agent import ClientAgent
from redlab.lb import web_service
from redlab.scenarios.lb import LoadBalancedService
from redlab.wait import wait_until

# the kernel's is 60 s (controllers.conntrack.SYN_RECV_TIMEOUT); short here so that the
# junk's half-open entries leave within the test, but long enough that they are still
# there when it counts them: with 3 s, a CI run loaded by four workers and the qemu guest
# took longer than that from the first junk SYN to the count, and found none
SYN_RECV_TIMEOUT = 8

# 3000 frames at the VIP from client1, one source port each, so that no two of them can
# ever form a handshake: prints how many are SYNs without ACK or RST with a whole TCP
# header (the only ones that may be scheduled, as half-open connections)
JUNK = r"""
import random
from scapy.all import IP, TCP, Ether, Raw, conf, fragment, sendp
conf.verb = 0
random.seed(10)
vip, vmac, me, iface = {vip!r}, {vmac!r}, {me!r}, {iface!r}
frames, syns, port = [], 0, 1024
def spoofed():
    return random.choice(["198.51.100.%d" % random.randint(1, 254), me])
def tcp(flags, **kw):
    global port
    port += 1
    return TCP(sport=port, dport=80, flags=flags, seq=random.getrandbits(32), **kw)
for _ in range(1000):                          # random flags, spoofed sources, any checksum
    flags = random.randint(0, 255)
    syns += flags & 0x16 == 0x02
    frames.append(IP(src=spoofed(), dst=vip) / tcp(flags, chksum=random.getrandbits(16)))
for _ in range(500):                           # SYNs with a bad checksum: never answered
    syns += 1
    frames.append(IP(src=me, dst=vip) / tcp("S", chksum=random.getrandbits(16) | 1))
for _ in range(500):                           # SYNs from spoofed, unreachable sources
    syns += 1
    frames.append(IP(src="198.51.100.%d" % random.randint(1, 254), dst=vip) / tcp("S"))
for _ in range(250):                           # fragmented SYNs (first fragment holds TCP)
    syns += 1
    frames += fragment(IP(src=spoofed(), dst=vip) / tcp("S") / Raw(b"x" * 40), fragsize=32)
while len(frames) < 2750:                      # later fragments alone, random offsets
    frames.append(IP(src=spoofed(), dst=vip, proto=6, frag=random.randint(1, 400),
                     id=random.getrandbits(16)) / Raw(bytes(tcp(random.randint(0, 255)))))
while len(frames) < 3000:                      # TCP headers cut short
    frames.append(IP(src=spoofed(), dst=vip, proto=6)
                  / Raw(bytes(tcp("S"))[:random.randint(0, 19)]))
sendp([Ether(dst=vmac) / f for f in frames], iface=iface)
print("sent", len(frames), "syns", syns)
"""

# a handshake in three steps from an address no host owns (10.0.0.77): the real servers
# know it at client1's MAC, so the SYN-ACK reaches client1, whose kernel drops it (not its
# address) instead of answering with a RST; scapy sees it and completes the handshake
# only when the test says so
HANDSHAKE = r"""
import sys
from scapy.all import IP, TCP, Ether, conf, sendp, srp1
conf.verb = 0
vip, vmac, src, iface = {vip!r}, {vmac!r}, {src!r}, {iface!r}
ip = Ether(dst=vmac) / IP(src=src, dst=vip)
synack = srp1(ip / TCP(sport=45678, dport=80, flags="S", seq=1000), iface=iface, timeout=5)
ok = synack is not None and synack.haslayer(TCP) and int(synack[TCP].flags) & 0x12 == 0x12
print("synack" if ok else "no synack", flush=True)
if ok and sys.stdin.readline().strip() == "ack":
    sendp(ip / TCP(sport=45678, dport=80, flags="A", seq=1001, ack=synack[TCP].seq + 1),
          iface=iface)
    print("acked", flush=True)
"""
SPOOFED = "10.0.0.77"


def scapy(host, script):
    return host.popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_junk_at_the_vip_makes_no_active_connection_and_expires(run_folder):
    with LoadBalancedService(web_service("wlc", check="tcp"), run_folder=run_folder,
                             syn_recv_timeout=SYN_RECV_TIMEOUT) as lab:
        client, vip = lab.client, lab.service.vip
        me = client.IP()
        out = scapy(client, JUNK.format(vip=vip, vmac=lab.service.vmac, me=me,
                                        iface=client.defaultIntf().name)).communicate(
            timeout=60)[0].decode()
        assert out.split()[:2] == ["sent", "3000"], out
        syns = int(out.split()[3])
        # real requests after the junk: their SYNs reach the controller after every
        # junk segment did, so once they are answered the junk has been handled
        assert [lab.get()[0] for _ in range(3)] == [200, 200, 200]
        # (junk used source ports below 5000; curl's are ephemeral) every real request
        # is past ESTABLISHED: closing, or already gone
        real = lambda: [c for c in lab.ctl.connections()  # noqa: E731
                        if c.client == me and c.port > 5000]
        wait_until(lambda: (all(c.state == "CLOSING" for c in real()), real()), 5,
                   "the three real requests to be closing")
        # (two dumps of the tracker, counts first: entries can only leave by now, as the
        # oldest junk SYN nears its SYN_RECV timeout)
        counts = lab.counts()
        conns = lab.ctl.connections()
        half_open = [c for c in conns if c.state == "SYN_RECV"]
        assert [c for c in conns if c.state == "ESTABLISHED"] == []
        assert all(active == 0 for active, _ in counts.values()), counts
        # junk made half-open entries only (the SYNs), counted as InActConn
        assert 0 < len(half_open) <= syns, (len(half_open), syns)
        assert sum(inactive for _, inactive in counts.values()) >= len(half_open)
        # ... and they leave after the SYN_RECV timeout
        wait_until(lambda: (not [c for c in lab.ctl.connections() if c.state == "SYN_RECV"],
                            len(lab.ctl.connections())), SYN_RECV_TIMEOUT + 5,
                   "the half-open connections to expire")
        assert lab.network.controller.events("half_open_expired")
        assert lab.get()[0] == 200          # still serving; its FIN ends its ActiveConn
        wait_until(lambda: (all(a == 0 for a, _ in lab.counts().values()), lab.counts()), 5,
                   "ActiveConn 0 once the last real request closed")


def test_a_connection_is_active_only_once_the_clients_ack_completes_it(run_folder):
    with LoadBalancedService(web_service("wlc", check="tcp"), run_folder=run_folder,
                             syn_recv_timeout=60) as lab:
        client = lab.client
        assert SPOOFED not in [h.IP() for h in lab.network.net.hosts]
        for n in (1, 2, 3):
            web = lab["web%d" % n]
            web.cmd("ip neigh replace %s lladdr %s dev %s nud permanent"
                    % (SPOOFED, client.MAC(), web.defaultIntf().name))
        proc = scapy(client, HANDSHAKE.format(vip=lab.service.vip, vmac=lab.service.vmac,
                                              src=SPOOFED, iface=client.defaultIntf().name))
        try:
            assert proc.stdout.readline().decode().strip() == "synack"
            # the server's SYN-ACK went through the switch; a real request after it
            # (a later packet-in) is the barrier: the SYN-ACK leaves it half-open
            assert lab.get()[0] == 200
            mine = lambda: [c for c in lab.ctl.connections() if c.client == SPOOFED]  # noqa
            [conn] = mine()
            assert conn.state == "SYN_RECV"
            assert lab.counts()[conn.server][0] == 0, lab.counts()
            proc.stdin.write(b"ack\n")
            proc.stdin.flush()
            assert proc.stdout.readline().decode().strip() == "acked"
            wait_until(lambda: (mine()[0].state == "ESTABLISHED", mine()), 5,
                       "the client's ACK to make the connection ESTABLISHED")
            assert lab.counts()[conn.server][0] == 1, lab.counts()
        finally:
            proc.stdin.close()
            proc.wait(timeout=10)
        # a real held connection (redlab.client_agent) is ActiveConn once connected
        agent = ClientAgent(client, lab.service.vip, lab.service.port, "holder")
        try:
            [server] = agent.ask("hold 1")
            want = 2 if server == conn.server else 1
            wait_until(lambda: (lab.counts()[server][0] == want, lab.counts()), 5,
                       "the held connection to count in %s's ActiveConn" % server)
        finally:
            agent.stop()

