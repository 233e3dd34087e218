"""redlab: a Mininet-based redundancy lab and test harness.

The harness builds emulated networks (:mod:`redlab.net`), gives hosts roles
(:mod:`redlab.nodes`), starts real daemons from templates (:mod:`redlab.daemons`),
breaks things on purpose (:mod:`redlab.faults`) and measures what a client saw
(:mod:`redlab.probe`).  Everything a run creates lives in one run folder
(:mod:`redlab.runs`), so ``redlab clean`` can always undo a crashed run.
"""

__version__ = "0.1.0"
