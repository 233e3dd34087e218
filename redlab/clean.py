"""``redlab clean``: remove what crashed runs left behind -- only ours.

Every run records, before creating them, the OVS bridges and interface names it will
make, the processes it starts (pid + start time) and its hosts' network namespaces.
Cleaning a run kills exactly those processes (and anything else still living in those
namespaces), deletes exactly those bridges and links, and drops the registry entry.
Nothing is matched by a broad pattern, so other programs' bridges and daemons are safe.
"""

import os
import shutil
import signal
import subprocess
import time

from redlab.nodes import netns_of, pids_in_netns
from redlab.runs import RUN_MARKER, owner_alive, registered_runs, run_root, same_process


def _kill(pid):
    for kill in (os.killpg, os.kill):
        try:
            if kill is os.killpg and os.getpgid(pid) != pid:
                continue
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _wait_gone(pids, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(os.path.exists("/proc/%d" % p) for p in pids):
            return True
        time.sleep(0.02)
    return False


def clean_entry(entry):
    """Remove one run's leftovers; return a list of what was actually removed."""
    removed = []
    pids = []
    for proc in entry.get("processes", []):
        if same_process(proc["pid"], proc["start"]):
            pids.append(proc["pid"])
            removed.append("process %d (%s)" % (proc["pid"], proc["what"]))
    root_ns = {netns_of(1), netns_of(os.getpid())}
    for netns in entry.get("netns", []):
        if netns in root_ns:        # never sweep the machine's own namespace
            continue
        for pid in pids_in_netns(netns):
            if pid not in pids:
                pids.append(pid)
                removed.append("process %d (in an emulated host)" % pid)
    for pid in pids:
        _kill(pid)
    _wait_gone(pids)
    bridges = set(subprocess.run(["ovs-vsctl", "--timeout=5", "list-br"], capture_output=True,
                                 text=True).stdout.split())
    for bridge in entry.get("bridges", []):
        if bridge in bridges:
            subprocess.run(["ovs-vsctl", "--timeout=5", "--if-exists", "del-br", bridge],
                           capture_output=True)
            removed.append("OVS bridge " + bridge)
    for link in entry.get("links", []):
        if os.path.exists("/sys/class/net/" + link):
            subprocess.run(["ip", "link", "del", link], capture_output=True)
            removed.append("interface " + link)
    for ct in entry.get("ct_zones", []):
        from controllers.ovsctl import remove_zone_timeouts
        removed += remove_zone_timeouts(ct["dp"], ct["zone"], ct.get("datapath_record", False),
                                        ct.get("seq_check"))
    for path in entry.get("files", []):
        if os.path.exists(path):
            os.unlink(path)
            removed.append("file " + path)
    return removed


def clean(include_live=False, keep_runs=10):
    """Clean every sandbox and registered run whose owner is gone (all with ``include_live``).

    Returns ``(report_lines, cleaned_entries)``.  Run folders that redlab made under the
    default run root beyond the newest ``keep_runs`` are deleted (``None``: none are);
    the newest are kept as evidence.
    """
    from redlab.jail import clean_stale_cgroups
    from redlab.sandbox import clean_stale
    report = clean_stale(include_live)
    report += ["removed the empty cgroup of a jail whose launcher died: %s" % path
               for path in clean_stale_cgroups()]
    cleaned = []
    for entry in registered_runs():
        if owner_alive(entry) and not include_live:
            report.append("run %s is still running (pid %s): left alone"
                          % (entry["id"], entry.get("owner_pid")))
            continue
        removed = clean_entry(entry)
        os.unlink(entry["registry_file"])
        cleaned.append(entry)
        report.append("run %s: %s" % (entry["id"], ", ".join(removed) or "nothing was left"))
        if entry.get("path"):
            report.append("  its run folder (kept as evidence): %s" % entry["path"])
    if keep_runs is not None:
        report += prune_run_folders(keep_runs)
    return report, cleaned


def prune_run_folders(keep):
    """Delete all but the newest ``keep`` run folders -- only folders redlab made (they
    hold its marker file), never a link, never one a live run uses."""
    root = run_root()
    if not root.is_dir():
        return []
    live = {e.get("path") for e in registered_runs()}
    folders = sorted((p for p in root.iterdir()
                      if not p.is_symlink() and p.is_dir() and str(p) not in live
                      and (p / RUN_MARKER).is_file() and not (p / RUN_MARKER).is_symlink()),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    report = []
    for old in folders[keep:]:
        shutil.rmtree(old, ignore_errors=True)
        report.append("removed old run folder %s" % old)
    return report
