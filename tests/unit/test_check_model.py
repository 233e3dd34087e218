"""Every lab on the one check model (redlab.checks): each check declared once under its
name with ``@check``, its thresholds in the lab's data file, and the lab short enough to
read in one sitting."""

import pytest

from redlab import labs

LABS = labs.all_labs()
LONGEST = 320           # lines: "no lab file over about 300 lines" (issue 11)


@pytest.mark.parametrize("lab", LABS, ids=[lab.name for lab in LABS])
def test_every_check_is_declared_once_under_its_name(lab):
    undeclared = [c.__name__ for c in lab.module.CHECKS if not hasattr(c, "__wrapped__")
                  or not getattr(c, "check_name", None)]
    assert not undeclared, "%s: declare these with @redlab.checks.check(name): %s" % (
        lab.name, undeclared)
    names = [labs.check_name(c) for c in lab.module.CHECKS]
    assert len(set(names)) == len(names), names


@pytest.mark.parametrize("lab", LABS, ids=[lab.name for lab in LABS])
def test_a_lab_keeps_its_thresholds_in_data_and_reads_in_one_sitting(lab):
    assert (lab.folder / "lab.yaml").is_file(), "%s has no lab.yaml" % lab.name
    lines = len((lab.folder / "lab.py").read_text().splitlines())
    assert lines <= LONGEST, "%s/lab.py has %d lines" % (lab.name, lines)
