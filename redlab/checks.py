"""One check model for every lab, and the checks that recur.

A check is declared once, with the one name it reports under in every report (the
student's, the pytest item's, JUnit's, the class ``summary.csv``), whether it counts
(``scored``) and whether it needs the network run or only the submission's files
(``static``)::

    from redlab.checks import check, ok, fail

    @check("dns.yaml is valid", static=True, scored=False)
    def dns_yaml_is_valid(ctx, measured):
        ...
        return ok("3 records, ttl 5 s")

    @check("damage window within the bound")
    def damage_window(ctx, m):
        return within(m["damage"], DATA["bound"], "users got errors for",
                      "the bound of lab.yaml")

A check returns :func:`ok` or :func:`fail` (a reason a student can act on, and what it
measured); the name is the declaration's.  Its thresholds live in the lab's data file
(:func:`lab_data`), not in its code.  The reusable checks below return the same results,
so a lab's check is often one line around one of them.
"""

import functools
from pathlib import Path

import yaml

from redlab.errors import ConfigError
from redlab.labs import CheckResult


def ok(reason, **measured):
    """A passed check: what was seen."""
    return CheckResult(None, True, reason, measured)


def fail(reason, **measured):
    """A failed check: what is wrong and what to change."""
    return CheckResult(None, False, reason, measured)


def check(name, scored=True, static=False):
    """Declare a lab's check under its one ``name``.

    ``scored=False``: information (no submission could fail it, or the walk-through
    reports its failure anyway); ``static=True``: it reads the submission's files only and
    also runs when the walk-through stopped."""
    def declare(function):
        @functools.wraps(function)
        def run(ctx, measured):
            result = function(ctx, measured)
            if not isinstance(result, CheckResult):
                raise TypeError("check %r returned %r, not ok(...) or fail(...)"
                                % (name, result))
            result.name = name
            result.scored = scored
            return result
        run.check_name = name
        run.scored = scored
        run.static = static
        return run
    return declare


def lab_data(lab_file, name="lab.yaml"):
    """The data file beside a lab's ``lab.py`` (``lab_data(__file__)``): its thresholds."""
    path = Path(lab_file).resolve().parent / name
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError("the lab's %s cannot be read (%s): fix the lab's data file"
                          % (path, exc)) from None
    if not isinstance(data, dict):
        raise ConfigError("the lab's %s must be a mapping of names to values" % path)
    return data


# -- reusable checks ----------------------------------------------------------------------

def within(seconds, bound, what, derivation, never=None, **measured):
    """A duration within a bound derived from configured timers.

    ``what``: what took the time ("client1 was without service for"); ``derivation``: how
    the bound follows from the timers ("3 x advert_int 1 s + 0.5 s"), printed with it;
    ``never``: why there is no duration when ``seconds`` is None (default: it did not
    happen within the run).  The drills' time expectations are this check too."""
    measured = dict(measured, seconds=seconds, value=seconds, bound=bound)
    if seconds is None:
        return fail("%s: never measured -- %s (bound %.1f s = %s)"
                    % (what, never or "it did not happen within the run", bound, derivation),
                    **measured)
    if seconds <= bound:
        return ok("%s %.2f s, within %.2f s (%s)" % (what, seconds, bound, derivation),
                  **measured)
    return fail("%s %.2f s, more than the bound %.2f s (%s)" % (what, seconds, bound,
                                                              derivation), **measured)


def at_most(count, bound, what, of=None, **measured):
    """A count at most a bound (``what``: "requests lost"; ``of``: out of how many)."""
    measured = dict(measured, value=count, bound=bound)
    counted = "%d of %d %s" % (count, of, what) if of is not None else "%d %s" % (count, what)
    if count <= bound:
        return ok("%s, at most %d allowed" % (counted, bound), **measured)
    return fail("%s, more than the %d allowed" % (counted, bound), **measured)


def arp_moved(entry, mac, client, ip, owner=None, why=""):
    """A client's ARP entry for ``ip`` holds ``mac`` (the new owner's): ``entry`` is a
    :class:`redlab.observe.Neighbour`, a MAC or None, read after the move."""
    got = getattr(entry, "mac", entry)
    who = " (%s's)" % owner if owner else ""
    if got == mac:
        return ok("%s's ARP entry for %s moved to %s%s" % (client, ip, mac, who), mac=got)
    return fail("%s's ARP entry for %s holds %s, not %s%s%s" % (
        client, ip, got or "nothing", mac, who, (": " + why) if why else ""), mac=got)


def held_by_one(holders, ip):
    """Exactly one host holds ``ip`` (``holders``: names, from :func:`redlab.observe.holders`)."""
    if len(holders) == 1:
        return ok("%s holds %s, and no other host does" % (holders[0], ip), holders=holders)
    if not holders:
        return fail("no host holds %s: the service's address is gone" % ip, holders=holders)
    return fail("%s all hold %s at once: clients reach whichever answered ARP last"
                % (" and ".join(holders), ip), holders=list(holders))


def script_parses(path, shell="bash"):
    """A shell script parses (``bash -n``, jailed like everything that comes from a
    submission: :func:`redlab.student.syntax_check`); the reason quotes the shell's first
    complaint."""
    from redlab.jail import JailError
    from redlab.student import syntax_check
    path = Path(path)
    if not path.is_file():
        return fail("%s is missing: start from the lab's submission/ folder" % path.name)
    try:
        parsed, message = syntax_check(path, shell)
    except JailError as exc:        # e.g. a symbolic link out of the submission
        return fail(str(exc).replace(str(path), path.name))
    if not parsed:
        first = (message.splitlines() or ["it does not parse"])[0]
        return fail("%s does not parse: %s" % (path.name, first.replace(str(path), path.name)))
    return ok("%s parses" % path.name)


def served_by(answers, allowed, what="the requests"):
    """Who served the requests: every answer came from one of ``allowed``.

    ``answers``: the server that answered each request (None: no answer)."""
    counts = {}
    for server in answers:
        counts[server] = counts.get(server, 0) + 1
    shown = ", ".join("%s %d" % (s or "no answer", n) for s, n in sorted(
        counts.items(), key=lambda kv: (kv[0] is None, str(kv[0]))))
    wrong = sum(n for s, n in counts.items() if s not in allowed)
    who = " or ".join(sorted(allowed))
    if not answers:
        return fail("%s: none was sent" % what, counts=counts)
    if wrong:
        return fail("%s: %d of %d not served by %s (%s)" % (what, wrong, len(answers), who,
                                                            shown), counts=counts)
    return ok("%s: all %d served by %s (%s)" % (what, len(answers), who, shown), counts=counts)
