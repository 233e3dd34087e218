"""Daemons started inside emulated hosts, each from its own template."""

from redlab.daemons.base import Daemon, render_template
from redlab.daemons.bind import Bind
from redlab.daemons.haproxy import HAProxy
from redlab.daemons.keepalived import Keepalived, KeepalivedLvs
from redlab.daemons.nginx import Nginx
from redlab.daemons.squid import Squid

__all__ = ["Daemon", "render_template", "Bind", "HAProxy", "Keepalived", "KeepalivedLvs", "Nginx",
           "Squid"]
