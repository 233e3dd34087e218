"""The health checker's parts (``python -m redlab.healthcheck`` is the command).

Split like the controller: pure modules of state and decisions, tested without root,
threads or sockets, under thin shells that do the I/O.

- :mod:`redlab.health.probes`: one check of one server (ICMP echo, TCP connect, HTTP GET)
  and the words for what went wrong;
- :mod:`redlab.health.records`: the JSON lines of the log and the messages to the controller;
- :mod:`redlab.health.roster`: which servers are checked, their rise/fall state, the
  server list followed, the states re-sent after a reconnect, when the next check is due
  (pure);
- :mod:`redlab.health.link`: the controller link: its decisions (:class:`LinkPlan`:
  backoff, what to log, when to ask for the server list) and its socket thread;
- :mod:`redlab.health.checker`: the threads, one per server, the lock and the log file.

Stdlib only (plus the controller's pure health and service modules): nothing here may
slow the checker's start inside a host.  This file imports nothing on purpose.
"""
