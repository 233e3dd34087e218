"""Controller configuration in, timestamped events out.

The harness writes a JSON config and names it in ``REDLAB_CONTROLLER_CONFIG``; apps
append one JSON object per line to the events file it names.  Wall-clock timestamps
(``time.time()``) are shared by every process and network namespace on the machine, so
events line up with probe samples and fault times.
"""

import functools
import json
import os
import threading
import time
import traceback


def load_config():
    path = os.environ.get("REDLAB_CONTROLLER_CONFIG")
    if not path:
        return {}
    with open(path) as f:
        return json.load(f)


class EventLog:
    """Appends one JSON line per event; each line is flushed at once (readers follow the
    file while the app runs).  The file stays open: opening it per event cost a fifth of
    the controller's time when every connection is logged."""

    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()
        self._file = None

    def emit(self, event, **fields):
        record = {"t": time.time(), "event": event}
        record.update(fields)
        if not self.path:
            return record
        line = json.dumps(record, sort_keys=True)
        with self._lock:
            if self._file is None:
                self._file = open(self.path, "a")
            self._file.write(line + "\n")
            self._file.flush()
        return record


def survives(handler):
    """An os-ken event handler that logs its exception instead of ending the app.

    os-ken's native hub (the default) defines ``TaskExit`` as ``Exception``, so any
    exception a handler raises leaves the app's event loop, silently: the switch's
    receive thread then blocks forever once 128 events wait, and every later packet-in
    is lost (seen: a load test stalled for good after one bad packet).
    """
    @functools.wraps(handler)
    def wrapper(self, ev):
        try:
            return handler(self, ev)
        except Exception as exc:  # noqa: BLE001 -- the app must go on
            self.logger.exception("%s failed on %s", handler.__name__, type(ev).__name__)
            log = getattr(self, "event_log", None)
            if log is not None:
                log.emit("handler_error", handler=handler.__name__,
                         error="%s: %s" % (type(exc).__name__, exc),
                         where=traceback.format_exc(limit=-1).splitlines()[-3].strip())
            return None
    return wrapper
