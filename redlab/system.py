"""What this machine can do, checked rather than assumed (``redlab doctor``).

Each check returns a :class:`Check` with a fix a person can type.  ``preflight()``
raises the first failing *required* check as one clear sentence.
"""

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from redlab.errors import PreflightError

# binary -> Debian package that provides it
BINARIES = {
    "mnexec": "mininet",
    "ovs-vsctl": "openvswitch-switch",
    "ovs-ofctl": "openvswitch-switch",
    "ethtool": "ethtool",
    "ip": "iproute2",
    "nginx": "nginx-light",
    "named": "bind9",
    "named-checkconf": "bind9",
    "named-checkzone": "bind9",
    "dig": "bind9-dnsutils",
    "keepalived": "keepalived",
    "haproxy": "haproxy",
    "squid": "squid",
    "curl": "curl",
    "wrk": "wrk",
    "iperf3": "iperf3",
    "arping": "arping",
    "tcpdump": "tcpdump",
    "ipvsadm": "ipvsadm",
}

OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"
SETUP_HINT = "run `make setup` (or `sudo scripts/setup.sh`)"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True

    def sentence(self):
        return "%s: %s; %s" % (self.name, self.detail, self.fix) if self.fix else \
            "%s: %s" % (self.name, self.detail)


def find_binary(name):
    """Full path of a binary (also in sbin folders a non-login PATH may lack)."""
    path = shutil.which(name)
    if path:
        return path
    for folder in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        candidate = Path(folder, name)
        if candidate.exists() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def require_binary(name, who="redlab"):
    path = find_binary(name)
    if not path:
        package = BINARIES.get(name, name)
        raise PreflightError(
            "%s needs `%s`, which is not installed; install the Debian package %s "
            "(`apt-get install %s`) or %s" % (who, name, package, package, SETUP_HINT))
    return path


def kernel_has_ovs_datapath():
    """The OVS kernel datapath exists when the module is loaded or built in."""
    return Path("/sys/module/openvswitch").exists()


def choose_datapath():
    """``kernel`` when the kernel has it, ``user`` (netdev) otherwise; REDLAB_DATAPATH overrides."""
    forced = os.environ.get("REDLAB_DATAPATH")
    if forced:
        if forced not in ("kernel", "user"):
            raise PreflightError(
                "REDLAB_DATAPATH must be `kernel` or `user`, not %r" % forced)
        return forced
    return "kernel" if kernel_has_ovs_datapath() else "user"


def ovs_running():
    if not find_binary("ovs-vsctl"):
        return False
    result = subprocess.run(["ovs-vsctl", "--timeout=3", "show"],
                            capture_output=True, text=True)
    return result.returncode == 0


def ipvs_state():
    """``"loaded"``, ``"module"`` (modprobe can load it) or ``None`` (this kernel has no IPVS).

    A stock Debian kernel builds ip_vs as a module that is loaded on first use, so "not
    loaded yet" is not "missing": ``modprobe -n`` (a dry run) tells them apart.
    """
    if Path("/proc/net/ip_vs").exists() or Path("/sys/module/ip_vs").exists():
        return "loaded"
    modprobe = find_binary("modprobe")
    if modprobe and subprocess.run([modprobe, "-n", "-q", "ip_vs"],
                                   capture_output=True).returncode == 0:
        return "module"
    return None


def kernel_has_ipvs(load=False):
    """Can IPVS run here?  With ``load``, load the module now (root only)."""
    state = ipvs_state()
    if state == "module" and load:
        subprocess.run([find_binary("modprobe"), "-q", "ip_vs"], capture_output=True)
        return ipvs_state() == "loaded"
    return state is not None


def ipvs_missing_reason():
    """One sentence: why IPVS cannot run on this kernel (for the lab and the error)."""
    result = subprocess.run(["modprobe", "-n", "ip_vs"], capture_output=True, text=True) \
        if find_binary("modprobe") else None
    said = (result.stderr or result.stdout).strip().splitlines()[-1] if result and \
        (result.stderr or result.stdout).strip() else "modprobe is not installed"
    return ("this kernel (%s) has no ip_vs (IPVS) module, so ipvsadm and keepalived's "
            "virtual_server cannot run here (modprobe: %s); a stock Debian kernel, like the "
            "student VM's, has it" % (os.uname().release, said))


def check_root():
    ok = os.geteuid() == 0
    return Check("root", ok, "running as root" if ok else "redlab must run as root "
                 "(it creates network namespaces and OVS bridges)",
                 "" if ok else "run it with sudo")


def check_ovs():
    if not find_binary("ovs-vsctl"):
        return Check("Open vSwitch", False, "Open vSwitch is not installed",
                     "install openvswitch-switch or " + SETUP_HINT)
    from redlab import sandbox
    if not sandbox.inside() and sandbox.available() is None:
        return Check("Open vSwitch", True, "installed; each network starts its own ovsdb-server "
                     "and ovs-vswitchd in its sandbox")
    ok = ovs_running()
    return Check("Open vSwitch", ok, "ovsdb-server and ovs-vswitchd answer" if ok else
                 "Open vSwitch is not running",
                 "" if ok else "start it with `%s start --system-id=random`" % OVS_CTL)


def check_sandbox():
    """Can a sandbox (own namespaces, own OVS) be made and used here?  Tried, not assumed."""
    from redlab import sandbox
    if sandbox.inside():
        return Check("sandbox", True, "running inside sandbox %s" % sandbox.inside())
    reason = sandbox.available()
    if reason:
        return Check("sandbox", False, reason, "run redlab as root (sudo)")
    try:
        code = sandbox.run(["ovs-vsctl", "--timeout=5", "show"], name="doctor",
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, RuntimeError) as exc:
        code = str(exc)
    return Check("sandbox", code == 0, "a sandbox with its own Open vSwitch starts and answers"
                 if code == 0 else "a sandbox did not start (%s)" % code,
                 "" if code == 0 else "check that the kernel has network, PID and mount "
                 "namespaces and that Open vSwitch is installed (" + SETUP_HINT + ")")


def check_jail_user():
    """The user a student's code runs as (redlab.jail)."""
    from redlab import jail
    try:
        uid, _ = jail.student_ids()
    except jail.JailError as exc:
        return Check("jail user", False, str(exc).split(";")[0], SETUP_HINT)
    return Check("jail user", True, "students' code runs as %s (uid %d)" % (jail.USER, uid))


def check_python():
    missing = []
    for module in ("mininet.net", "os_ken", "jinja2", "scapy"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module.split(".")[0])
    ok = not missing
    return Check("python modules", ok, "mininet, os_ken, jinja2, scapy import" if ok else
                 "cannot import %s in %s" % (", ".join(missing), os.sys.executable),
                 "" if ok else "use the project's virtual environment (.venv/bin/redlab) or "
                 + SETUP_HINT)


def checks():
    """Everything ``redlab doctor`` reports, required ones first."""
    result = [check_root(), check_ovs(), check_python(), check_sandbox(), check_jail_user()]
    for name, package in BINARIES.items():
        path = find_binary(name)
        result.append(Check("binary " + name, bool(path), path or "not found",
                            "" if path else "apt-get install " + package))
    datapath = choose_datapath()
    result.append(Check(
        "OVS datapath", True,
        "kernel datapath available" if datapath == "kernel" else
        "no OVS kernel module: using the userspace datapath (TX checksum offload is "
        "turned off on every host interface)", required=False))
    ipvs = ipvs_state()
    result.append(Check(
        "IPVS", bool(ipvs), "kernel has ip_vs (%s)" % (
            "loaded" if ipvs == "loaded" else "a module, loaded when a lab needs it")
        if ipvs else "kernel has no ip_vs: the ipvsadm comparison in the load-balancer lab "
        "is skipped", required=False))
    return result


NETWORK_BINARIES = ("mnexec", "ovs-vsctl", "ovs-ofctl", "ethtool", "ip")


def preflight():
    """Raise :class:`PreflightError` unless a network can be built here."""
    for check in (check_root(), check_ovs(), check_python()):
        if not check.ok:
            raise PreflightError(check.sentence())
    for name in NETWORK_BINARIES:
        require_binary(name)
