"""Scenarios: a topology, traffic and faults, measured (used by the demo, labs and tests)."""
