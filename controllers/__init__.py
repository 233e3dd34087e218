"""os-ken apps (thin shells) and the pure logic they call (tested without root).

The controller never imports the harness (``redlab``); it is configured through a JSON
file named by ``REDLAB_CONTROLLER_CONFIG`` and reports through an events file.
"""
