"""pytest-xdist workers in sandboxes of their own (tests/conftest.py): a session leaves
none of their folders behind, even when xdist kills a worker at the end.

A real session of ``pytest -n 1`` with this project's conftest runs here, its sandboxes
under a state folder of the test's own (never the machine's /run/redlab).
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from redlab import sandbox
from redlab.runs import same_process
from redlab.wait import wait_until

REPO = Path(__file__).resolve().parents[2]

# the worker says which sandbox it runs in, then never ends by itself: its python, told to
# exit, waits forever in an exit handler -- xdist kills its wrapper (redlab.sandbox run)
HUNG_AT_EXIT = textwrap.dedent('''
    import atexit
    import os
    import threading
    from pathlib import Path


    def test_in_a_worker_that_does_not_end_when_told():
        box = Path(os.environ["REDLAB_STATE_DIR"])        # the worker's sandbox folder
        Path(os.environ["SEEN"]).write_text((box / "sandbox.json").read_text())
        atexit.register(threading.Event().wait)
''')


@pytest.mark.skipif(os.geteuid() != 0 or sandbox.available() is not None,
                    reason="sandboxes need root, unshare and setpriv")
def test_a_worker_killed_by_xdist_at_the_end_leaves_no_sandbox_folder(tmp_path):
    suite, state, seen = tmp_path / "suite", tmp_path / "state", tmp_path / "seen.json"
    suite.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\n")
    (suite / "conftest.py").write_text(
        "import xdist.workermanage\n"
        "xdist.workermanage.NodeManager.EXIT_TIMEOUT = 1     # xdist's 10 s, shortened\n")
    (suite / "test_hung_at_exit.py").write_text(HUNG_AT_EXIT)
    # a session of its own: not this session's sandbox, worker or state folders
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "REDLAB_"))}
    env.update(REDLAB_STATE_DIR=str(state), SEEN=str(seen), PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "tests.conftest", "-n", "1", str(suite)], cwd=suite, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    box = json.loads(seen.read_text())
    init = box["init"]
    wait_until(lambda: not same_process(init["pid"], init["start"]), 10,
               "the killed worker's sandbox init to be gone")
    assert not (state / "sandboxes" / box["id"]).exists(), done.stdout[-3000:]
    assert "sandbox %s: " % box["id"] in done.stdout          # said so at the end
