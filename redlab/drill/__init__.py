"""Failover drills as data (issue 9): what comes after the runs.

A drill engine runs a drill file on a real network and records each run as one dict
(the *run record*: events, probe samples, measures, intervals, expectations, all on one
clock; see ``/work/briefs/drill-record.md``).  This package turns those records into
numbers and pictures an engineer can act on:

- :mod:`redlab.drill.stats`: per measure median, p95, min, max and a confidence
  interval over repeated runs; the share of runs meeting each expectation (a flaky one
  is named); ``compare`` says whether two variants differ, with the test used;
- :mod:`redlab.drill.plot`: one run as swimlanes on one time axis, repeats as
  distributions (matplotlib, PNG and SVG);
- :mod:`redlab.drill.report`: one self-contained HTML file, JSON and JUnit XML.
"""
