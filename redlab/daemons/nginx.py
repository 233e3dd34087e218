"""nginx: the web server of every web host.

Each response carries ``X-Served-By: <host>`` so a client can tell who answered, and
the default page says the host and the content version.  ``mode="error500"`` makes the
server answer every request with HTTP 500 (a running but broken service).
"""

import shutil

from redlab.daemons.base import Daemon, wait_for_listen
from redlab.errors import ConfigError
from redlab.runs import child_pids
from redlab.wait import wait_until

MODES = ("normal", "error500")


def check_mode(mode, where):
    if mode not in MODES:
        raise ConfigError("%s: nginx mode must be one of %s, not %r" % (where, ", ".join(MODES), mode))


class Nginx(Daemon):
    name = "nginx"
    binary = "nginx"
    template = "nginx.conf.j2"
    config_name = "nginx.conf"

    def __init__(self, node, port=80, version="v1", mode="normal", workers=1, backlog=511,
                 health_path="/health", deploy_from=None, **options):
        super().__init__(node, **options)
        self.port = port
        self.version = version
        self.mode = mode
        self.workers = workers
        self.backlog = backlog
        self.health_path = health_path
        self.deploy_from = deploy_from      # address/CIDR allowed to PUT content to /deploy/

    @property
    def docroot(self):
        return self.folder / "html"

    def values(self):
        check_mode(self.mode, self.where)
        return dict(port=self.port, mode=self.mode, workers=self.workers, backlog=self.backlog,
                    docroot=str(self.docroot), health_path=self.health_path,
                    deploy_from=self.deploy_from)

    def prepare(self):
        (self.folder / "tmp").mkdir(exist_ok=True)
        self.docroot.mkdir(exist_ok=True)
        index = self.docroot / "index.html"
        if not index.exists():
            self.publish("%s %s\n" % (self.node.name, self.version))
        if self.deploy_from:
            # nginx's workers run as nobody: they write what a deploy PUTs
            shutil.chown(self.docroot, user="nobody")
            for path in self.docroot.iterdir():
                shutil.chown(path, user="nobody")

    def publish(self, text, name="index.html"):
        """Write content into the document root (what a deploy changes)."""
        self.docroot.mkdir(parents=True, exist_ok=True)
        (self.docroot / name).write_text(text)

    def dry_run(self):
        # errors go to stderr (Debian's built-in error log), so the message reaches the user
        return [self.binary_path, "-t", "-q", "-c", str(self.config_file)]

    def command(self):
        return [self.binary_path, "-e", str(self.path("error.log")), "-c", str(self.config_file)]

    def ready(self):
        return wait_for_listen(self.node, self.port)

    def worker_pids(self):
        """Pids of the master's worker processes."""
        return child_pids(self.pid) if self.running else []

    def reload(self):
        """Reload and wait until every old worker is gone: then all requests see the new config."""
        old = set(self.worker_pids())
        super().reload()
        wait_until(lambda: (not old & set(self.worker_pids()), sorted(old & set(self.worker_pids()))),
                   10, "%s: old nginx workers to exit after the reload" % self.node.name)

    def set_mode(self, mode):
        """Switch between serving and answering HTTP 500, live (nginx reload)."""
        check_mode(mode, self.where)
        self.mode = mode
        self.reload()
