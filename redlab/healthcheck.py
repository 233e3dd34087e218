"""The health checker: runs *inside* the emulated director host.

    python -m redlab.healthcheck --service svc.yaml \\
        --socket RUN/controller/control.sock --log RUN/director/health.jsonl \\
        [--type icmp|tcp|http] [--max-seconds N]

Like keepalived's checkers or HAProxy's ``check``, its probes leave from the director
and cross the emulated network to each real server: an ICMP echo, a TCP connect, or
a real HTTP GET.  One thread per real server checks every ``interval`` (the first
check at once) and feeds :class:`controllers.health.HealthState` (``rise``/``fall``).

Every result is appended to ``--log`` as one JSON line
``{"t", "server", "ok", "detail", "latency", "type"}``; every state change as
``{"t", "event": "health", "server", "state", "reason", "checks", "type"}`` and is sent
to the controller's Unix stream socket as one JSON line
``{"cmd": "health", "server", "state", "reason", "t", "type"}`` (the controller answers
one line, read and ignored).  Only state changes are sent, never single checks.  When
the socket is missing or the connection breaks the checker keeps checking and
logging, reconnects with a short backoff and then re-sends every checked server's
current state (the controller may have restarted).  Checks of one server never
overlap: one that takes longer than ``interval`` delays the next.

Timestamps are ``time.time()``: the wall clock is shared by every namespace, so
these lines line up with probe samples, fault times and controller events.  Stdlib
(plus the controller's pure-Python health and service modules): it starts fast in
any host.  It stops on SIGTERM/SIGINT or after ``--max-seconds``.

This module is only the command: it reads the arguments and the service and runs a
:class:`~redlab.health.checker.Checker` until a signal.  The parts are in
:mod:`redlab.health`: the probes, the log and message formats, the roster of servers,
the controller link and the threads.
"""

import argparse
import signal
import sys

from redlab.health.checker import Checker
from redlab.health.probes import TYPES


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m redlab.healthcheck")
    parser.add_argument("--service", required=True, help="the virtual service file (YAML)")
    parser.add_argument("--socket", help="the controller's Unix socket (omit: log only)")
    parser.add_argument("--log", help="append results and state changes here (JSON lines)")
    parser.add_argument("--type", choices=TYPES, help="override the service's check type")
    parser.add_argument("--max-seconds", type=float)
    args = parser.parse_args(argv)

    from controllers.service import load_service
    try:
        service = load_service(args.service)
        checker = Checker(service, socket_path=args.socket, log_path=args.log,
                          check_type=args.type)
    except OSError as exc:          # load_service reports its own OSErrors as config errors
        print("healthcheck: cannot open the log %s: %s" % (args.log, exc.strerror or exc),
              file=sys.stderr)
        return 2
    except Exception as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        if args.service not in message:
            message = "bad service file %s: %s" % (args.service, message)
        print("healthcheck: %s" % message, file=sys.stderr)
        return 2

    signals = []
    signal.signal(signal.SIGTERM, lambda signum, frame: signals.append(signum))
    signal.signal(signal.SIGINT, lambda signum, frame: signals.append(signum))
    checker.run(max_seconds=args.max_seconds, stopping=lambda: bool(signals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
