"""A hostile submission: a YAML file whose anchors and aliases stand for an exponential
number of values ("a billion laughs": 9 lines, 9^10 values).  Every reader of a
student's or an operator's YAML refuses it at once with one sentence, instead of walking
the values for hours (a schema check did: the grade never ended)."""

import time

import pytest
import yaml

from controllers.service import ServiceConfigError, load_service
from controllers.validation import MAX_VALUES, bounded_safe_load, expanded_size
from redlab import labs
from redlab.errors import ConfigError
from redlab.scenarios import cold_standby, dns_rr
from redlab.scenarios.maintenance import ProcedureError, load_procedure


def bomb(key):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += ["a%d: &a%d [%s]" % (n, n, ", ".join(["*a%d" % (n - 1)] * 9)) for n in range(1, 9)]
    return "\n".join(lines + ["%s: *a8" % key]) + "\n"


def refused_fast(read):
    started = time.monotonic()
    with pytest.raises((ConfigError, ServiceConfigError, ProcedureError)) as error:
        read()
    assert time.monotonic() - started < 5
    message = str(error.value)
    assert "anchors and aliases" in message and "\n" not in message, message
    return message


def test_the_expanded_size_is_counted_on_the_node_graph_in_linear_time():
    node = yaml.compose(bomb("steps"))
    started = time.monotonic()
    assert expanded_size(node) > 9 ** 9 > MAX_VALUES
    assert time.monotonic() - started < 1
    assert expanded_size(yaml.compose("a: &x [1, 2]\nb: *x\n")) == 1 + 2 * (1 + 3)
    with pytest.raises(yaml.YAMLError, match="write the values out"):
        bounded_safe_load(bomb("steps"))
    assert bounded_safe_load("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}


def test_lab_08_procedure(tmp_path):
    (tmp_path / "procedure.yaml").write_text(bomb("steps"))
    refused_fast(lambda: load_procedure(tmp_path / "procedure.yaml"))


def test_lab_05_service(tmp_path):
    (tmp_path / "service.yaml").write_text(bomb("real_servers"))
    refused_fast(lambda: load_service(tmp_path / "service.yaml"))


def test_lab_03_dns(tmp_path):
    (tmp_path / "dns.yaml").write_text(bomb("records"))
    refused_fast(lambda: dns_rr.load_submission(tmp_path / "dns.yaml"))


def test_lab_01_router_values(tmp_path):
    (tmp_path / "r1.yaml").write_text(bomb("interfaces"))
    refused_fast(lambda: cold_standby.values(tmp_path, "r1"))


def test_lab_06_predictions(tmp_path):
    lab = labs.find("06").module
    (tmp_path / "predictions.yaml").write_text(bomb("wlc"))
    started = time.monotonic()
    predictions, problems = lab.TASK.read(tmp_path, lab.load_states(0))
    assert time.monotonic() - started < 5
    assert predictions is None and "anchors and aliases" in problems[0], problems
