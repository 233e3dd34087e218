"""Every command a lab's ``--cli`` stops print, typed at Mininet's real CLI in the running
lab (the reference submission), works: no ``command not found``, no ``Unknown command``,
and the output says what the stop says it shows where that is cheap to check.

``Context(type_hints=True)`` types each stop's own commands, exactly as printed, so this
test cannot drift from what a student reads; the guides' commands are among them (held to
that here, and without a network in tests/unit/test_cli_hints.py).  One network per lab,
like ``redlab run NN --cli``."""

import re

import pytest

from redlab import labs
from tests.labs.cli_hints import FAILURES, guide_commands

VIP = "10.0.0.100"
MAC = r"([0-9a-f]{2}:){5}[0-9a-f]{2}"
ANSI = re.compile(r"\x1b\[[0-9;]*m")

# what a stop's output must show: {lab: {stop index: [regex, ...]}}, cheap facts only
EXPECT = {
    "01": {0: [r"r1-eth0\S*\s+UP\s+10\.0\.1\.1/24", r"r2-eth0\S*\s+DOWN",
               r"10\.0\.1\.1 dev client1-eth0 lladdr " + MAC],
           1: [r"10\.0\.1\.1 dev client1-eth0 lladdr " + MAC, r"s1-eth\d"],
           # tcpdump ran in the background (bash's "[1] PID" line is not always printed)
           2: [r"default via|10\.0\.\d+\.0/24", r"listening on client1-eth0"]},
    "02": {0: [r"(?s)site v2 .*\nsite v2 "],           # the deploy reached both servers
           1: [r"inet %s/" % VIP, VIP + r" dev client1-eth0 lladdr 02:00:0a:00:00:0c"],
           2: [r"inet %s/" % VIP]},
    "03": {0: [r"(?m)^10\.0\.0\.1[123]$", r"www\.lab\.example\.\s+\d+\s+IN\s+A",
               r"X-Served-By: web[123]", r"(?m)^www\.lab\.example"]},
    "04": {0: [r"(?m)^10\.0\.0\.10[0-2]$", r"inet %s/" % VIP],
           1: [r"inet %s/" % VIP],
           2: [r"bytes from %s \(10\.0\.0\.100\)" % MAC],     # arping -d: who answers
           3: [r"web1: "]},                                     # web1's takeover.log
    "05": {0: [r"\(28\) Operation timed out", r"1 received", r"web1 v1"],     # hung, then back
           1: [r"(?s)web1 v1.*web1 v1"]},           # the healthy server serves during faults
    "06": {0: [r"(?s)X-Served-By: (web\d).*X-Served-By: (?!\1)web\d"],  # rr: the next server
           1: [r"X-Served-By: web\d"],
           3: [r"htb .* rate 4Mbit", r"(?m)^\d+\.\d+$"]},            # web3's link; a time
    "07": {0: [VIP + r" dev client1-eth0 lladdr " + MAC, r"actions="],
           1: [r"%s/" % VIP.replace(".", r"\.")],
           3: [r"3 packets transmitted"]},
    "08": {0: [r"web\d v1"], 1: [r"(?m)^web1 v2"]},
}


def transcripts(ctx):
    """What the CLI printed at each stop, as plain text: the node's terminal ends lines
    with CRLF, and curl writes header names in bold on a terminal."""
    return [ANSI.sub("", path.read_text().replace("\r\n", "\n")) if path.exists() else ""
            for path in ctx.transcripts]


BACKGROUND = re.compile(r"^(\S+) (tcpdump)\b.*&$")


def typed_after(command):
    """A student types the next line seconds after starting a capture in the background;
    a test types it at once: after ``node tcpdump ... &``, wait (in the node, at most 5 s)
    until tcpdump's packet socket is open, so that what follows is captured."""
    started = BACKGROUND.match(command)
    if not started:
        return None
    return ("%s timeout 5 sh -c 'until ss -0 -p | grep -q %s; do sleep 0.05; done'"
            % started.groups())


@pytest.mark.parametrize("number", ["01", "02", "03", "04", "05", "06", "07", "08"])
def test_every_stop_command_works_when_typed(number, run_folder):
    lab = labs.find(number)
    ctx, _measured = lab.walkthrough(lab.reference, run_folder=run_folder,
                                     type_hints=typed_after, out=None)
    assert ctx.stops, "lab %s stopped nowhere with --cli" % number
    outputs = transcripts(ctx)
    assert len(outputs) == len(ctx.stops)
    for stop, output in zip(ctx.stops, outputs):
        if stop.commands:
            assert output.strip(), "nothing printed at the stop %r" % stop.message
        bad = [line for line in output.splitlines() if any(f in line for f in FAILURES)]
        assert not bad, "at the stop %r, %s printed %s" % (stop.message, stop.commands, bad)
    for index, patterns in EXPECT.get(number, {}).items():
        for pattern in patterns:
            assert re.search(pattern, outputs[index]), (
                "stop %d of lab %s: %r not in what %s printed:\n%s" % (
                    index, number, pattern, ctx.stops[index].commands, outputs[index][-3000:]))
    typed = {command for stop in ctx.stops for command in stop.commands}
    untyped = [c for c in guide_commands(lab.folder / "guide.en.md") if c not in typed]
    assert not untyped, "lab %s's guide tells the student to type %s; no stop did" % (
        number, untyped)
