"""HAProxy: the reference load balancer the labs and benchmarks compare against."""

from redlab.daemons.base import Daemon, wait_for_listen


class HAProxy(Daemon):
    name = "haproxy"
    binary = "haproxy"
    template = "haproxy.cfg.j2"
    config_name = "haproxy.cfg"

    def __init__(self, node, servers, port=80, bind="0.0.0.0", balance="roundrobin",
                 mode="http", check=True, inter="200ms", rise=2, fall=2, check_path="/health",
                 timeout_connect="1s", timeout_check="1s", service="web", maxconn=4096,
                 **options):
        super().__init__(node, **options)
        self.servers = list(servers)    # dicts with name, ip, port, weight
        self.port = port
        self.bind = bind
        self.balance = balance
        self.mode = mode
        self.health_check = check
        self.inter = inter
        self.rise = rise
        self.fall = fall
        self.check_path = check_path if mode == "http" else None
        self.timeout_connect = timeout_connect
        self.timeout_check = timeout_check
        self.service = service
        self.maxconn = maxconn

    def values(self):
        servers = [dict(name=s["name"], ip=s["ip"], port=s.get("port", 80),
                        weight=s.get("weight", 1)) for s in self.servers]
        return dict(name=self.service, bind=self.bind, port=self.port, mode=self.mode,
                    balance=self.balance, check=self.health_check, inter=self.inter, rise=self.rise,
                    fall=self.fall, check_path=self.check_path, servers=servers,
                    timeout_connect=self.timeout_connect, timeout_check=self.timeout_check,
                    maxconn=self.maxconn)

    def dry_run(self):
        return [self.binary_path, "-c", "-q", "-f", str(self.config_file)]

    def command(self):
        # -db: foreground, no daemon; -W not needed
        return [self.binary_path, "-db", "-f", str(self.config_file)]

    def ready(self):
        return wait_for_listen(self.node, self.port)
