"""A typed client for the load balancer's control socket.

The os-ken load balancer (``controllers.lb``) answers one JSON line per request on a
Unix socket.  Callers use this client instead of building ``{"cmd": ...}`` dictionaries,
so a typo in a command or a key is an ``AttributeError`` here, not a refusal at run time:

    ctl = LBClient.for_network(net)
    ctl.set_scheduler("wlc")
    ctl.drain("web2")
    print(ctl.status().server("web2").active)

The controller stays the authority: the client checks an argument only where its own
message is better than the controller's, and it ignores reply keys it does not know
(the controller gains fields; ``ServiceStatus.raw`` keeps the whole reply).
"""

import json
import socket
from dataclasses import dataclass, field

from redlab.errors import RedlabError

HEALTH_STATES = ("up", "down")


class LBError(RedlabError):
    """The load balancer refused a command; ``reason`` is the controller's own message."""

    def __init__(self, message, cmd=None, reason=None):
        super().__init__(message)
        self.cmd = cmd
        self.reason = reason if reason is not None else message


class LBUnavailable(LBError):
    """The control socket is missing, refuses connections or does not answer in time."""


@dataclass(frozen=True)
class ServerStatus:
    """One real server as ``status`` reports it (``ipvsadm -Ln``'s line, plus health)."""

    name: str
    ip: str
    port: int
    mac: str | None
    weight: int
    effective_weight: int
    active: int
    inactive: int
    health: str
    reason: str

    @classmethod
    def from_reply(cls, data):
        return cls(**{f: data.get(f) for f in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ServiceStatus:
    """The reply to ``status``: the virtual service and its real servers."""

    name: str
    vip: str
    port: int
    protocol: str
    lb_algo: str
    lb_kind: str
    persistence_timeout: int | None
    servers: tuple[ServerStatus, ...]
    path: dict | None = None        # how the fast path is built, when the controller says
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_reply(cls, reply):
        svc = reply["service"]
        return cls(name=svc.get("name"), vip=svc["vip"], port=svc["port"],
                   protocol=svc.get("protocol"), lb_algo=svc["lb_algo"], lb_kind=svc["lb_kind"],
                   persistence_timeout=svc.get("persistence_timeout"),
                   servers=tuple(ServerStatus.from_reply(s) for s in reply["servers"]),
                   path=svc.get("path"), raw=reply)

    def server(self, name):
        """The real server called ``name``; an error naming the known ones when absent."""
        for s in self.servers:
            if s.name == name:
                return s
        raise LBError("the load balancer has no real server %s (it has %s); use one of them"
                      % (name, ", ".join(s.name for s in self.servers) or "none"))

    def counts(self):
        """``{name: (ActiveConn, InActConn)}``."""
        return {s.name: (s.active, s.inactive) for s in self.servers}


@dataclass(frozen=True)
class Connection:
    """One entry of the controller's connection table."""

    client: str
    port: int
    server: str
    state: str

    @classmethod
    def from_reply(cls, data):
        return cls(**{f: data.get(f) for f in cls.__dataclass_fields__})


class LBClient:
    """Commands to one load balancer, each on a fresh connection (the controller serves
    any number of them, and a connection never outlives a call)."""

    def __init__(self, socket_path, timeout=5.0):
        self.socket_path = str(socket_path)
        self.timeout = timeout

    @classmethod
    def for_network(cls, net, timeout=5.0):
        """The client of the controller that runs ``net`` (a started ``redlab.net.Network``)."""
        return cls(net.controller.socket_path, timeout)

    def __repr__(self):
        return "LBClient(%r)" % self.socket_path

    # -- the commands ----------------------------------------------------------------------

    def status(self):
        reply = self.call("status")
        try:
            return ServiceStatus.from_reply(reply)
        except KeyError as exc:
            raise LBError("the load balancer's status reply has no %s; redlab and "
                          "controllers/lb.py are out of step: update both together"
                          % exc, "status") from None

    def connections(self):
        return [Connection.from_reply(c) for c in self.call("connections")["connections"]]

    def servers(self):
        """The real servers to check (``name``, ``ip``, ``port``), as the health checker
        reads them.  Asking tells the controller a health checker is following it."""
        return self.call("servers")["servers"]

    def set_weight(self, server, weight):
        self.call("set_weight", server=server, weight=weight)

    def drain(self, server):
        """Weight 0: no new connections; established ones stay (``redlab lb drain``)."""
        self.set_weight(server, 0)

    def set_scheduler(self, lb_algo):
        """``ipvsadm -E -s ALGO``."""
        self.call("set_scheduler", lb_algo=lb_algo)

    def set_fast_path(self, on):
        """New connections scheduled in the switch (True) or each by the controller with
        the kernel's exact rule (False); the status's ``path`` says which."""
        self.call("set_fast_path", fast_path=bool(on))

    def add_server(self, name, ip, port=None, weight=1):
        """``ipvsadm -a``; without ``port``, the service's port."""
        request = dict(name=name, ip=ip, weight=weight)
        if port is not None:
            request["port"] = port
        self.call("add_server", **request)

    def remove_server(self, name):
        self.call("remove_server", server=name)

    def set_health(self, server, state, reason=""):
        """Mark a real server up or down; returns how many half-open connections the
        controller cleared."""
        if state not in HEALTH_STATES:      # the controller would store any word
            raise LBError("health state must be %s, not %r; pass one of them"
                          % (" or ".join(HEALTH_STATES), state), cmd="health")
        return self.call("health", server=server, state=state, reason=reason).get("cleared", 0)

    # -- the transport ---------------------------------------------------------------------

    def call(self, cmd, **arguments):
        """One request; its reply (a dict), or :class:`LBError` with the controller's reason."""
        reply = self._exchange(dict(cmd=cmd, **arguments))
        if not isinstance(reply, dict) or not reply.get("ok"):
            reason = reply.get("error") if isinstance(reply, dict) else repr(reply)
            raise LBError("the load balancer refused %s: %s" % (cmd, reason), cmd, reason)
        return reply

    def _exchange(self, message):
        cmd = message["cmd"]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout)
                s.connect(self.socket_path)
                s.sendall((json.dumps(message) + "\n").encode())
                data = b""
                while not data.endswith(b"\n"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except FileNotFoundError:
            raise self._unavailable(cmd, "there is no control socket %s; start the load "
                                    "balancer (`redlab run lb --cli`) or check the socket's path"
                                    % self.socket_path) from None
        except ConnectionRefusedError:
            raise self._unavailable(cmd, "nothing listens on the control socket %s (the "
                                    "controller has stopped); check its log and start it again"
                                    % self.socket_path) from None
        except TimeoutError:
            raise self._unavailable(cmd, "the load balancer did not answer %s within %g s on %s; "
                                    "check its controller log for a stuck or busy controller"
                                    % (cmd, self.timeout, self.socket_path)) from None
        except OSError as exc:
            raise self._unavailable(cmd, "cannot talk to the load balancer on %s (%s); check "
                                    "that it runs and that you are root"
                                    % (self.socket_path, exc.strerror or exc)) from None
        if not data.strip():
            raise self._unavailable(cmd, "the load balancer closed %s without answering %s; "
                                    "check its controller log" % (self.socket_path, cmd))
        try:
            return json.loads(data)
        except ValueError:
            raise LBError("the load balancer answered %s with something that is not JSON (%r); "
                          "check its controller log" % (cmd, data[:200]), cmd) from None

    @staticmethod
    def _unavailable(cmd, message):
        return LBUnavailable(message, cmd)
