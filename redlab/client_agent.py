"""A client that makes the connections it is told to: runs *inside* a client host.

    python -m redlab.client_agent VIP PORT        (one command per line on stdin)

Driven by :class:`redlab.agent.ClientAgent`.  Load balancer tests and labs use it to
hold connections open (ActiveConn), leave them half-open or closed (InActConn), and to
ask whether held connections still work after a failover or a controller restart.

Commands, each answered by one line on stdout that starts with ``ok`` or ``error``:

    load HSSHSS... [SRC]
                     one new connection per letter, one after another (from the local
                     address SRC if given):
                     H  held: GET / on a keep-alive connection that then stays open
                        (ESTABLISHED: it counts in ActiveConn until `close`)
                     S  short: GET / with ``Connection: close`` (after its FINs it
                        counts in InActConn until its tracker entry expires)
                     -> ``ok H:web1 S:web2 ...`` (who answered: X-Served-By)
    hold N           N held connections (= ``load HHH...``) -> ``ok web1 web3 ...``
    halfopen PORT N  N connection attempts from source ports PORT..PORT+N-1 that are left
                     half-open (the lab's server drops its SYN-ACK to those ports), so the
                     load balancer counts them in InActConn -> ``ok``
    fetch N PATH     N GETs of PATH at the same time, each on its own connection
                     -> ``ok web1:1.234 web3:2.345 ...`` (who served it, seconds to the
                     last byte), in the order the connections were opened
    request          one more GET on every held connection -> ``ok 200:web1 200:web2 ...``
                     (``0:ERROR`` for a connection that no longer works)
    close            close every held and half-open connection -> ``ok N``

Stdlib only, bounded: every connection has a timeout, and the agent exits on EOF.
"""

import socket
import sys
import threading
import time

TIMEOUT = 3.0


def get(sock, path="/", keep=True):
    """One ``GET path`` on ``sock``: ``(status, X-Served-By or None)``."""
    sock.sendall(b"GET %s HTTP/1.1\r\nHost: lab\r\nConnection: %s\r\n\r\n"
                 % (path.encode(), b"keep-alive" if keep else b"close"))
    return read_status_and_server(sock)


def read_status_and_server(sock):
    """Read one HTTP response; return ``(status, X-Served-By or None)``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise OSError("connection closed before the response headers")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    served, length = None, 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"x-served-by":
            served = value.strip().decode()
        elif name == b"content-length":
            length = int(value.strip())
    received = len(body)
    while received < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += len(chunk)
    return status, served


class Agent:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.held = []
        self.half_open = []

    def _new(self, keep, source=None):
        sock = socket.create_connection((self.host, self.port), timeout=TIMEOUT,
                                        source_address=(source, 0) if source else None)
        try:
            _, served = get(sock, keep=keep)
        except BaseException:
            sock.close()
            raise
        if keep:
            self.held.append(sock)
        else:
            sock.close()
        return served or "?"

    def load(self, pattern, source=None):
        out = []
        for letter in pattern:
            if letter not in "HS":
                raise ValueError("load takes H and S letters, got %r" % letter)
            out.append("%s:%s" % (letter, self._new(keep=letter == "H", source=source)))
        return " ".join(out)

    def hold(self, n):
        return " ".join(self._new(keep=True) for _ in range(int(n)))

    def halfopen(self, port, n):
        for p in range(int(port), int(port) + int(n)):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("", p))
            sock.setblocking(False)
            sock.connect_ex((self.host, self.port))     # EINPROGRESS: the SYN is out
            self.half_open.append(sock)
        return ""

    def fetch(self, n, path):
        results = [None] * int(n)

        def one(i):
            start = time.monotonic()
            try:
                sock = socket.create_connection((self.host, self.port), timeout=60)
                try:
                    _, served = get(sock, path, keep=False)
                finally:
                    sock.close()
                results[i] = "%s:%.3f" % (served or "?", time.monotonic() - start)
            except (OSError, ValueError, IndexError) as exc:
                results[i] = "ERROR:%s" % type(exc).__name__
        threads = [threading.Thread(target=one, args=(i,)) for i in range(int(n))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return " ".join(results)

    def request(self):
        out = []
        for sock in self.held:
            try:
                status, served = get(sock)
                out.append("%d:%s" % (status, served or "?"))
            except (OSError, ValueError, IndexError):
                out.append("0:ERROR")
        return " ".join(out)

    def close(self):
        n = len(self.held) + len(self.half_open)
        for sock in self.held + self.half_open:
            sock.close()
        self.held, self.half_open = [], []
        return str(n)


def main(argv):
    agent = Agent(argv[1], int(argv[2]))
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        try:
            command = getattr(agent, words[0]) if words[0] in (
                "load", "hold", "halfopen", "fetch", "request", "close") else None
            if command is None:
                raise ValueError("unknown command %r" % words[0])
            reply = "ok " + command(*words[1:])
        except Exception as exc:         # report, keep serving: the lab decides what to do
            reply = "error %s: %s" % (type(exc).__name__, exc)
        print(reply.strip(), flush=True)
    agent.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
