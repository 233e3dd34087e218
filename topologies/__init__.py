"""Mininet topologies, one ``Topo`` per file; each file also works with ``mn --custom``.

``TOPOLOGIES`` maps the names used by ``redlab`` (and ``mn --topo``) to classes.
"""

import importlib

_MODULES = ("topologies.vrrp_pair", "topologies.service_lan", "topologies.routed")


def all_topologies():
    found = {}
    for module in _MODULES:
        found.update(importlib.import_module(module).topos)
    return found


def get(name):
    from redlab.errors import ConfigError
    topos = all_topologies()
    if name not in topos:
        raise ConfigError("unknown topology %r; choose one of: %s"
                          % (name, ", ".join(sorted(topos))))
    return topos[name]
