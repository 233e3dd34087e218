"""Lab 03's users: programs that run *inside* emulated hosts.

    python agents.py user --mode direct  --resolver 10.0.0.53 --out pc1.jsonl
    python agents.py user --mode browser --resolver 10.0.0.53 --out pc3.jsonl
    python agents.py user --mode proxy   --proxy 10.0.1.1:3128 --out phone1.jsonl

With ``--go FILE`` a user starts, creates ``FILE.ready`` and waits until FILE exists
before its first request (the harness creates it at the moment it chooses).

A **user** opens ``http://www.lab.example/`` about every ``--interval`` seconds (a new
TCP connection each time; the gaps vary by +-50 % so that users are independent and do
not fall into step with the DNS server's rotation) and appends one JSON line per
request: when it started and ended, which address it used, who answered
(``X-Served-By``), or the error.  How it finds the address:

- ``direct``: asks its resolver with ``dig`` before *every* request and uses the first
  A record (a stub resolver without a cache);
- ``browser``: the same, but keeps the answer for its TTL, like a PC browser's DNS cache;
- ``proxy``: does not resolve at all: it sends the request to the carrier gateway's
  Squid (a real one, started by ``topologies/dns_rr.py``), which resolves the name for
  everybody (a phone behind キャリアゲートウェイ).

Stdlib, ``dig`` (bind9-dnsutils) and the probe's pacing (``redlab.probe_agent.paced``):
the hosts share one filesystem, so there is no per-host ``resolv.conf``; every program
names its resolver.
"""

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time

from redlab.probe_agent import paced

NAME = "www.lab.example"
_stop = threading.Event()


def _on_term(signum, frame):
    _stop.set()


def resolve(resolver, name, timeout=1):
    """``(addresses, ttl)`` of the A records of ``name``, in the order the resolver gave."""
    out = subprocess.run(
        ["dig", "+noall", "+answer", "+tries=1", "+time=%d" % timeout, "@" + resolver, name, "A"],
        capture_output=True, text=True, timeout=timeout + 2).stdout
    addresses, ttls = [], []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 5 and fields[3] == "A":
            ttls.append(int(fields[1]))
            addresses.append(fields[4])
    if not addresses:
        raise LookupError("no A record for %s from %s (%s)"
                          % (name, resolver, out.strip() or "no answer"))
    return addresses, min(ttls)


def http_get(address, host, timeout, port=80, path="/"):
    """``(status, served_by)`` of one GET with a new connection."""
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, "Connection": "close",
                                           "User-Agent": "redlab-lab03"})
        response = conn.getresponse()
        response.read(200)
        return response.status, response.getheader("X-Served-By")
    finally:
        conn.close()


# -- user -------------------------------------------------------------------------------

def wait_for_go(path, max_seconds):
    """Say it is ready (``path.ready``), then block until ``path`` exists (the harness's
    go): the program's start-up, slow under load, is over before the first request."""
    open(path + ".ready", "w").close()
    deadline = time.monotonic() + max_seconds
    while not os.path.exists(path) and not _stop.is_set() and time.monotonic() < deadline:
        _stop.wait(0.005)


def user(args):
    if args.go:
        wait_for_go(args.go, args.max_seconds)
    cached, expires = None, 0.0
    proxy_host, _, proxy_port = (args.proxy or "").partition(":")
    with open(args.out, "a", buffering=1) as out:
        for seq in paced(args.interval, args.max_requests, args.max_seconds, _stop.is_set,
                         jitter=0.5, wait=_stop.wait):
            t = time.time()
            sample = {"seq": seq, "t": t, "ok": False, "status": None, "server": None,
                      "address": None, "resolved": False, "error": None}
            try:
                if args.mode == "proxy":
                    conn = http.client.HTTPConnection(proxy_host, int(proxy_port or 3128),
                                                      timeout=args.timeout)
                    try:
                        conn.request("GET", "http://%s/" % args.name,
                                     headers={"Connection": "close", "User-Agent": "redlab-lab03"})
                        response = conn.getresponse()
                        response.read(200)
                        sample["status"] = response.status
                        sample["server"] = response.getheader("X-Served-By")
                        sample["via_gateway"] = True
                        # Squid's own error page names its error (ERR_CONNECT_FAIL ...)
                        if response.getheader("X-Squid-Error"):
                            sample["error"] = "Squid %s" % response.getheader("X-Squid-Error")
                    finally:
                        conn.close()
                else:
                    if args.mode == "direct" or cached is None or time.monotonic() >= expires:
                        addresses, ttl = resolve(args.resolver, args.name)
                        # the answer is kept for its TTL from when it arrived (dig took
                        # 1.2 s on a loaded run), as a browser's cache keeps it
                        cached, expires = addresses, time.monotonic() + ttl
                        sample["resolved"], sample["resolved_at"] = True, time.time()
                    sample["address"] = cached[0]
                    sample["status"], sample["server"] = http_get(cached[0], args.name,
                                                                  args.timeout)
                sample["ok"] = sample["status"] == 200
            except (OSError, http.client.HTTPException, LookupError,
                    subprocess.SubprocessError) as exc:
                sample["error"] = "%s: %s" % (type(exc).__name__, exc)
            sample["end"] = time.time()
            out.write(json.dumps(sample) + "\n")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="agents.py")
    sub = parser.add_subparsers(dest="role", required=True)
    p = sub.add_parser("user")
    p.add_argument("--mode", choices=("direct", "browser", "proxy"), required=True)
    p.add_argument("--resolver")
    p.add_argument("--proxy")
    p.add_argument("--name", default=NAME)
    p.add_argument("--out", required=True)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--timeout", type=float, default=0.3)
    p.add_argument("--max-requests", type=int, default=2000)
    p.add_argument("--max-seconds", type=float, default=60.0)
    p.add_argument("--go", help="start requesting only once this file exists")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    return user(args)


if __name__ == "__main__":
    sys.exit(main())
