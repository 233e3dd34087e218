"""Run inside a client host: open N TCP connections to HOST:PORT one after another and
keep them open (idle, established) until SIGTERM or a timeout; print one line per
connection once it is established.

    python3 hold_connections.py HOST PORT N [--seconds 60] [--request-after FILE]

With ``--request-after FILE`` each connection sends one HTTP request once FILE exists
and prints the status line it got (an established connection still works?).
"""

import argparse
import os
import signal
import socket
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("n", type=int)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--request-after")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    conns = []
    for i in range(args.n):
        s = socket.create_connection((args.host, args.port), timeout=5)
        conns.append(s)
        print("established %d %s" % (i, s.getsockname()[1]), flush=True)
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        if args.request_after and os.path.exists(args.request_after):
            for s in conns:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                try:
                    print("reply " + s.recv(200).split(b"\r\n")[0].decode(), flush=True)
                except OSError as exc:
                    print("reply-error %s" % exc, flush=True)
            return 0
        time.sleep(0.05)
    return 0


if __name__ == "__main__":
    sys.exit(main())
