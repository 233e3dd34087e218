"""The probe's client side: runs *inside* an emulated client host.

    python -m redlab.probe_agent --url http://10.0.0.100/ --out samples.jsonl

Sends one real HTTP request (new TCP connection, ``Connection: close``) every
``--interval`` seconds, bounded by ``--max-requests`` and ``--max-seconds``, and
appends one JSON line per request: send time, end time, result, HTTP status and the
``X-Served-By`` header (which server answered).  It stops on SIGTERM after the request
in flight.  Stdlib only: it starts fast in any host.
"""

import argparse
import http.client
import json
import signal
import sys
import time
from urllib.parse import urlsplit

_stop = False


def _on_term(signum, frame):
    global _stop
    _stop = True


def request(host, port, path, timeout):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close", "User-Agent": "redlab-probe"})
        response = conn.getresponse()
        body = response.read(200)
        return response.status, response.getheader("X-Served-By"), body, None
    except (OSError, http.client.HTTPException) as exc:
        return None, None, b"", "%s: %s" % (type(exc).__name__, exc)
    finally:
        conn.close()


def paced(interval, max_requests, max_seconds, stopped, jitter=0.0, wait=time.sleep):
    """Yield 0, 1, 2, ... one every ``interval`` s (each gap varied by +-``jitter`` of it),
    until ``max_requests``, ``max_seconds`` or ``stopped()``.  A slow step shifts the
    schedule instead of bursting to catch up."""
    import random
    started = time.monotonic()
    next_at = started
    for seq in range(max_requests):
        if stopped() or time.monotonic() - started > max_seconds:
            return
        yield seq
        next_at += interval * (random.uniform(1 - jitter, 1 + jitter) if jitter else 1)
        delay = next_at - time.monotonic()
        if delay > 0:
            wait(delay)
        else:
            next_at = time.monotonic()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m redlab.probe_agent")
    parser.add_argument("--url", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=0.5)
    parser.add_argument("--max-requests", type=int, default=2000)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    url = urlsplit(args.url)
    host, port, path = url.hostname, url.port or 80, url.path or "/"

    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    with open(args.out, "a", buffering=1) as out:
        for seq in paced(args.interval, args.max_requests, args.max_seconds, lambda: _stop):
            t = time.time()
            status, server, body, error = request(host, port, path, args.timeout)
            end = time.time()
            out.write(json.dumps({
                "seq": seq, "t": t, "end": end, "ok": status == 200, "status": status,
                "server": server, "body": body.decode(errors="replace").strip()[:80],
                "error": error}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
