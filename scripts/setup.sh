#!/usr/bin/env bash
# Idempotent setup for redlab on Debian 12 (a VM from `vagrant up`, CI, a laptop):
# Debian packages, a virtual environment that sees Debian's mininet, the project
# installed into it, and Open vSwitch running. A second run changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
    echo "setup: redlab needs root (network namespaces, Open vSwitch); run it with sudo" >&2
    exit 1
fi

PACKAGES="mininet openvswitch-switch ethtool iproute2 iputils-ping procps psmisc
nginx-light bind9 bind9-dnsutils keepalived haproxy squid curl wrk iperf3 arping tcpdump ipvsadm kmod
python3-venv python3-pip make"

missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done
if [ -n "$missing" ]; then
    say "installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends $missing
else
    say "Debian packages: all installed"
fi

# The harness starts every daemon inside its emulated host; the system copies
# started by the packages (on a machine with systemd) are not wanted.
if [ -d /run/systemd/system ]; then
    for svc in nginx named keepalived haproxy squid; do
        if systemctl is-enabled --quiet "$svc" 2>/dev/null || systemctl is-active --quiet "$svc" 2>/dev/null; then
            say "disabling the system's $svc service (redlab runs its own inside hosts)"
            systemctl disable --now "$svc" >/dev/null 2>&1 || true
        fi
    done
fi

# Students' scripts and templates run jailed as this user (redlab/jail.py): no home,
# no shell, no groups; a second run changes nothing.
if ! id -u redlab-student >/dev/null 2>&1; then
    say "creating the system user redlab-student (students' code runs as it)"
    useradd --system --no-create-home --shell /usr/sbin/nologin --home-dir /nonexistent \
        --user-group redlab-student
fi

# A virtual environment from Debian's python3 that also sees Debian's mininet.
VENV=.venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import mininet.net" 2>/dev/null; then
    say "creating $VENV from /usr/bin/python3 (--system-site-packages, for Debian's mininet)"
    rm -rf "$VENV"
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
stamp="$VENV/.redlab-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || ! "$VENV/bin/python" -c "import os_ken, scapy, jinja2, pytest, xdist, yaml, rich, jsonschema, scipy, matplotlib, redlab" 2>/dev/null; then
    say "installing redlab and its Python dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]"
    touch "$stamp"
else
    say "Python environment: up to date"
fi

# Open vSwitch on the machine itself: only for `mn` and `ovs-vsctl` typed by hand.  redlab
# does not use it: each of its networks starts a private OVS in its own sandbox, so a
# machine (or an image build) where it cannot start is still fine for redlab.
if [ "${REDLAB_NO_SYSTEM_OVS:-}" = 1 ]; then
    say "Open vSwitch: not started (REDLAB_NO_SYSTEM_OVS=1; redlab's sandboxes start their own)"
elif ovs-vsctl --timeout=3 show >/dev/null 2>&1; then
    say "Open vSwitch: running"
else
    say "starting Open vSwitch"
    if [ -d /run/systemd/system ] && systemctl start openvswitch-switch 2>/dev/null \
        && ovs-vsctl --timeout=10 show >/dev/null 2>&1; then
        :
    else
        # prints a harmless ulimit error and "no loadable module support" here
        /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random || true
    fi
    if ! ovs-vsctl --timeout=10 show >/dev/null 2>&1; then
        say "note: the machine's Open vSwitch did not start (see /var/log/openvswitch/);" \
            "redlab's own networks do not need it"
    fi
fi
# The notes' IPVS section needs the kernel's ip_vs.  Where this kernel has none (a
# container, a custom kernel), the tests of it run in a stock Debian kernel booted by
# scripts/ipvs-vm (tests/network/test_ipvs_guest.py): qemu, busybox and that kernel are
# fetched here, once.  REDLAB_NO_IPVS_VM=1 skips it (those tests then say why they skip).
if modprobe -n ip_vs >/dev/null 2>&1 || [ -d /proc/net/ip_vs ] || grep -qw ip_vs /proc/modules 2>/dev/null; then
    say "IPVS: this kernel has ip_vs"
elif [ "${REDLAB_NO_IPVS_VM:-}" = 1 ]; then
    say "IPVS: this kernel has no ip_vs; the stock-kernel guest is not prepared (REDLAB_NO_IPVS_VM=1)"
else
    say "IPVS: this kernel has no ip_vs; preparing the stock-kernel guest (scripts/ipvs-vm --prepare)"
    scripts/ipvs-vm --prepare >/dev/null
fi
say "ready: $VENV/bin/redlab doctor"
