"""Mininet topologies, one ``Topo`` per file; each file also works with ``mn --custom``.

``TOPOLOGIES`` maps the names used by ``redlab`` (and ``mn --topo``) to classes.
"""

import importlib
import pkgutil


def all_topologies():
    """Every ``topos`` dict of every module in this package (file name == topology name)."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module("%s.%s" % (__name__, info.name))
        found.update(getattr(module, "topos", {}))
    return found


def get(name):
    from redlab.errors import ConfigError
    topos = all_topologies()
    if name not in topos:
        raise ConfigError("unknown topology %r; choose one of: %s"
                          % (name, ", ".join(sorted(topos))))
    return topos[name]
