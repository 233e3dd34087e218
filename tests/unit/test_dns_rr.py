"""redlab.scenarios.dns_rr without a network: the student's dns.yaml, the users' samples
turned into shares and damage windows, and the flat measurements lab 03's checks read."""

import pytest

from redlab.errors import ConfigError
from redlab.scenarios import dns_rr as rr


def sample(t, group, ok=True, server="web1", end=None, **extra):
    return dict(dict(t=t, end=t + 0.005 if end is None else end, group=group, ok=ok,
                     server=server if ok else None, status=200 if ok else None), **extra)


def test_a_valid_dns_yaml_is_read_in_the_order_written(tmp_path):
    path = tmp_path / "dns.yaml"
    path.write_text("ttl: 2\nrecords: [10.0.0.13, 10.0.0.11]\nwhen_a_server_dies: remove-record\n")
    sub = rr.load_submission(path)
    assert (sub.ttl, sub.records, sub.procedure) == (2, ["10.0.0.13", "10.0.0.11"],
                                                     "remove-record")


@pytest.mark.parametrize("text, words", [
    ("ttl: [1\n", "not valid YAML"),
    ("- 1\n", "must be a mapping"),
    ("ttl: 2\nrecords: [10.0.0.11]\nwhen_a_server_dies: keep-record\nextra: 1\n",
     "unknown field extra"),
    ("ttl: true\nrecords: [10.0.0.11]\nwhen_a_server_dies: keep-record\n", "ttl must be"),
    ("ttl: 2\nrecords: []\nwhen_a_server_dies: keep-record\n", "records must be a list"),
    ("ttl: 2\nrecords: [web1]\nwhen_a_server_dies: keep-record\n", "'web1' is not an IPv4"),
    # the fourth server's address: not a web server of a three-server network
    ("ttl: 2\nrecords: [10.0.0.14]\nwhen_a_server_dies: keep-record\n",
     "10.0.0.14 is not a web server; the web servers are web1 10.0.0.11, web2 10.0.0.12, "
     "web3 10.0.0.13"),
])
def test_a_bad_dns_yaml_is_one_sentence_naming_the_field(tmp_path, text, words):
    path = tmp_path / "dns.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        rr.load_submission(path)
    assert words in str(error.value)


def test_shares_errors_and_the_busiest_server():
    samples = [sample(0, "pcs", server="web1"), sample(1, "pcs", server="web2"),
               sample(2, "pcs", ok=False), sample(3, "phones", server="web2"),
               sample(4, "phones", server="web2")]
    table = rr.share_table(samples)
    assert table == {"pcs": {"web1": 1, "web2": 1, "error": 1}, "browser": {},
                     "phones": {"web2": 2}}
    # the busiest server's share of the *good* answers; an empty group is 0, not an error
    assert rr.max_share(table["pcs"]) == 0.5 and rr.max_share(table["phones"]) == 1.0
    assert rr.max_share(table["browser"]) == 0.0
    assert rr.error_share(samples, "pcs") == pytest.approx(1 / 3)
    assert rr.error_share(samples) == pytest.approx(1 / 5) and rr.error_share([]) == 0.0


def test_the_damage_window_is_the_last_failure_after_the_fault_per_group():
    fault = 100.0
    samples = [sample(99.5, "pcs", ok=False),            # before the fault: not damage
               sample(100.2, "pcs", ok=False), sample(100.9, "pcs"),
               sample(101.5, "browser", ok=False), sample(103.25, "browser", ok=False)]
    assert rr.damage(samples, fault) == {"pcs": 0.2, "browser": 3.25, "phones": 0.0}


def test_slow_answers_and_what_failed():
    samples = [sample(0, "phones", end=1.9), sample(1, "phones", end=1.1),
               sample(2, "phones", ok=False, error="TimeoutError: timed out"),
               sample(3, "phones", ok=False, status=503, error="Squid ERR_CONNECT_FAIL",
                      via_gateway=True),
               sample(4, "pcs", end=9.0)]                 # a PC's slow answer: not a phone's
    assert rr.slow_answers(samples, 0.3) == [1.9]
    assert rr.failure_kinds(samples, "phones") == {
        "TimeoutError": 1, "HTTP 503 (the carrier gateway's error page)": 1}
    assert rr.failure_kinds(samples, "pcs") == {}


def test_real_time_reads_lab_seconds_as_minutes():
    assert [rr.real_time(t) for t in (1, 2, 119, 120, 300, 2879, 2880)] == [
        "1 minute", "2 minutes", "119 minutes", "2 hours", "5 hours", "48 hours", "2 days"]


def run(ttl, procedure, removed_after):
    return dict(ttl=ttl, procedure=procedure, gateway_cached=["web2", "web3", "web1"],
                gateway_cached_at=-1.0, gateway_keeps=5, browser_cached="web2",
                browser_cached_at=-0.8, detected_after=0.6, removed_after=removed_after,
                window={"pcs": 0.4, "browser": 1.2, "phones": 0.0}, damage=1.2, closed=True,
                watched=1.9, still_listed=False, errors={"pcs": 0.03}, slow=[1.9])


def test_flatten_gives_the_keys_the_guide_and_the_checks_read():
    settings = dict(bound=4.0, short_ttl=1, long_ttl=5, window=2.5,
                    proxy=dict(negative_dns_ttl=5))
    spread = dict(max_share={"pcs": 0.33}, gateway_lookups=1, browser_lookups=3,
                  gateway_keeps=5, table={"pcs": {"web1": 17}})
    detail = dict(ttl=2, procedure="remove-record",
                  rotation=dict(first=["web3", "web1"], rotates=True, addresses=3,
                                public=["10.0.0.11", "10.0.0.12", "10.0.0.13"],
                                servers=["web1", "web2", "web3"]),
                  spread=dict(short=spread, long=spread),
                  dead_server=dict(slow=[], handed_out=0.36, error_share={"pcs": 0.36}),
                  long_ttl=run(5, "remove-record", 0.9), yours=run(2, "remove-record", 0.7))
    m = rr.flatten(detail, settings)
    assert m["public_addresses"] == m["servers"] == 3 and m["rotation"] == "web3 web1"
    assert m["yours_gateway_cached"] == "web2 web3 web1" and m["long_removed_after"] == 0.9
    assert m["worst_case"] == 2.7 and m["gateway_hold"] == 5
    detail["yours"] = run(300, "keep-record", None)
    assert rr.flatten(detail, settings)["worst_case"] is None
