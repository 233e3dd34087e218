"""The detection matrix the course notes claim, measured and asserted."""

import json

from redlab.scenarios.health_matrix import CHECKS, EXPECTED, Matrix, markdown
from topologies.service_lan import ServiceLanTopo


def test_detection_matrix(network, run_folder):
    net = network(ServiceLanTopo(servers=1, dns=False))
    with Matrix(net, interval=0.2, timeout=0.5, fall=2, rise=2) as matrix:
        measured = matrix.run()
        window = matrix.window
    table = markdown(measured)
    (run_folder / "matrix.md").write_text(table + "\n")
    (run_folder / "matrix.json").write_text(json.dumps(measured, indent=1))
    print(table)
    for name, row in measured.items():
        assert {c for c in CHECKS if row[c] is not None} == EXPECTED[name], (name, row)
        for c in EXPECTED[name]:
            assert row[c] <= window, (name, c, row[c])
