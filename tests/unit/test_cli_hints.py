"""Every command a lab tells the student to type at ``mininet>`` survives Mininet's CLI.

The CLI runs ``node rest`` on ``node`` after replacing each word of ``rest`` that is a node's
name with its IP: ``client1 curl ... ; client1 ip neigh`` ran ``10.0.0.201 ip neigh``
(issue 11).  Here, without a network: no stop's command and no guide's command names a node
after its first word, the English and Japanese guides give the same commands, and each
guide command is one that a stop prints (so the lab test, which types the stops' commands,
types the guides' too)."""

import re
from collections import Counter

import pytest

from redlab.labs import Stop, all_labs, renamed_words
from tests.labs.cli_hints import guide_commands, is_command, node_names, template_pattern

LABS = all_labs()
NAMES = node_names()


def stop_commands(lab):
    return [command for stop in getattr(lab.module, "STOPS", {}).values()
            for command in stop.commands]


def test_the_cli_replaces_node_names_after_the_first_word_only():
    """The rule as Mininet's ``CLI.default`` applies it (split on single spaces, exact words)."""
    assert renamed_words("client1 curl -s http://10.0.0.11/ ; client1 curl -s http://10.0.0.12/",
                         NAMES) == ["client1"]
    assert renamed_words("client1 ping web1", NAMES) == ["web1"]
    assert renamed_words("r2 ip link set r2-eth0 down; ip link set r2-eth0 up", NAMES) == []
    assert renamed_words("rewire r1 r2", NAMES) == []           # a lab verb: not rewritten
    assert renamed_words("sh ovs-ofctl dump-flows s1", NAMES) == []
    assert {"client1", "web3", "r2", "phone1", "carriergw", "director", "s1"} <= NAMES


def test_a_stop_fills_its_fields_and_prints_one_command_per_line():
    stop = Stop("web1 holds %(vip)s", ["client1 curl -s http://%(vip)s/", "client1 ip neigh",
                                      "client1 curl -w '%%{time_total}' http://%(vip)s/"])
    filled = stop.fill(vip="10.0.0.100")
    assert filled.commands == ("client1 curl -s http://10.0.0.100/", "client1 ip neigh",
                               "client1 curl -w '%{time_total}' http://10.0.0.100/")
    assert filled.text().splitlines() == [
        "web1 holds 10.0.0.100", ">>> type these at mininet>, one line at a time:",
        ">>>     client1 curl -s http://10.0.0.100/", ">>>     client1 ip neigh",
        ">>>     client1 curl -w '%{time_total}' http://10.0.0.100/"]


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.name)
def test_every_stop_command_reaches_its_node_unchanged(lab):
    stops = getattr(lab.module, "STOPS", {})
    source = (lab.folder / "lab.py").read_text()
    calls = re.findall(r"\.pause\(\s*[\w.]+,\s*(\S+)", source)
    assert all(arg.startswith("STOPS[") for arg in calls), (
        "%s pauses with %s: give each stop as STOPS[...] so its commands are data" % (
            lab.name, calls))
    verbs = set(getattr(lab.module, "VERBS", {})) | {"rewire"}
    for name, stop in stops.items():
        for command in stop.commands:
            first = command.split(" ", 1)[0]
            assert first in NAMES or first == "sh" or first in verbs, (name, command)
            assert not renamed_words(command, NAMES), (
                "%s stop %r: %r names a node after its first word; Mininet's CLI would "
                "replace it with an IP" % (lab.name, name, command))


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.name)
def test_every_guide_command_reaches_its_node_unchanged(lab):
    for guide in sorted(lab.folder.glob("guide.*.md")):
        for command in guide_commands(guide):
            assert not renamed_words(command, NAMES), "%s: %r" % (guide, command)


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.name)
def test_the_english_and_japanese_guides_give_the_same_commands(lab):
    english = guide_commands(lab.folder / "guide.en.md")
    japanese = guide_commands(lab.folder / "guide.ja.md")
    assert Counter(english) == Counter(japanese)


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.name)
def test_every_guide_command_is_one_a_stop_prints(lab):
    """So typing every stop's commands (tests/labs/test_cli_hints.py) types the guide's."""
    patterns = [template_pattern(c) for c in stop_commands(lab)]
    missing = [c for c in guide_commands(lab.folder / "guide.en.md")
               if not any(p.match(c) for p in patterns)]
    assert not missing, "%s's guide tells the student to type %s, which no stop prints" % (
        lab.name, missing)


def test_what_counts_as_a_guide_command():
    assert is_command("client1 ip neigh", NAMES) and is_command("sh ovs-ofctl show s1", NAMES)
    assert not is_command("web3 / web1 / web2", NAMES)          # a list of servers
    assert not is_command("web1 web1 web1 web2 web2 web3 …", NAMES)
    assert not is_command("sh -n", NAMES)                       # the shell's syntax check
    assert not is_command("client1 sysctl -w x=1 …", NAMES)     # abridged: not typable as is


def test_a_test_can_type_a_wait_after_a_command_it_chooses(tmp_path):
    """``type_hints`` as a callable: the stop's commands as printed, each followed by the
    line the callable returns for it (None: nothing)."""
    from redlab.labs import Context, Stop

    def after(command):
        return "h1 wait-for-it" if command.endswith("&") else None
    ctx = Context(None, tmp_path, run_folder=tmp_path, out=None, type_hints=after)
    script = ctx._script(Stop("look", ["h1 tcpdump -l arp &", "h2 ping -c 1 h1", "h1 kill %1"]))
    assert script.read_text().splitlines() == [
        "h1 tcpdump -l arp &", "h1 wait-for-it", "h2 ping -c 1 h1", "h1 kill %1"]
