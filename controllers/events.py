"""Controller configuration in, timestamped events out.

The harness writes a JSON config and names it in ``REDLAB_CONTROLLER_CONFIG``; apps
append one JSON object per line to the events file it names.  Wall-clock timestamps
(``time.time()``) are shared by every process and network namespace on the machine, so
events line up with probe samples and fault times.
"""

import json
import os
import threading
import time


def load_config():
    path = os.environ.get("REDLAB_CONTROLLER_CONFIG")
    if not path:
        return {}
    with open(path) as f:
        return json.load(f)


class EventLog:
    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()

    def emit(self, event, **fields):
        record = {"t": time.time(), "event": event}
        record.update(fields)
        if not self.path:
            return record
        line = json.dumps(record, sort_keys=True)
        with self._lock, open(self.path, "a") as f:
            f.write(line + "\n")
        return record
