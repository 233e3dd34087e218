"""What the checker writes and says, as plain dicts (one place for the formats).

The log (``--log``) is JSON lines, appended as things happen:

- a check: ``{"t", "server", "ok", "detail", "latency", "type"}``;
- a state change: ``{"t", "event": "health", "server", "state", "reason", "checks", "type"}``;
- the server list followed: ``{"t", "event": "added"|"removed", "server"}``.

The controller gets one JSON line per state change (and per server after a reconnect):
``{"cmd": "health", "server", "state", "reason", "t", "type"}``; the checker asks for
the real servers with ``{"cmd": "servers"}``.  ``redlab.lb.HealthChecker`` reads
the log; ``controllers.lb`` reads the messages.
"""

import json

SERVERS_REQUEST = {"cmd": "servers"}


def check_line(result, check_type):
    """The log line of one check (a :class:`controllers.health.CheckResult`)."""
    return {"t": result.at, "server": result.server, "ok": result.ok,
            "detail": result.detail, "latency": result.latency, "type": check_type}


def change_line(transition, reason, at, check_type):
    """The log line of a state change (a :class:`controllers.health.Transition`)."""
    return {"t": at, "event": "health", "server": transition.server,
            "state": transition.state, "reason": reason, "checks": transition.checks,
            "type": check_type}


def roster_line(event, server, at):
    """The log line of a server the checker started (``"added"``) or stopped
    (``"removed"``) checking."""
    return {"t": at, "event": event, "server": server}


def health_message(server, state, reason, at, check_type):
    """The message that tells the controller a server's state."""
    return {"cmd": "health", "server": server, "state": state, "reason": reason,
            "t": at, "type": check_type}


def servers_in(reply):
    """The real servers in the controller's answer to :data:`SERVERS_REQUEST`, or None
    when it has none to give (an error, or a controller without the command)."""
    if isinstance(reply, dict) and reply.get("ok") and "servers" in reply:
        return reply["servers"]
    return None


def encode(record):
    """One JSON line, as the log and the control socket take it."""
    return json.dumps(record) + "\n"
