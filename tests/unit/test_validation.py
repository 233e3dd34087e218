"""controllers.validation: YAML files checked by JSON Schema, each mistake one sentence."""

import re

import jsonschema
import pytest

from controllers.validation import (ValidationError, check, expected, field_path, load_yaml,
                                    suggest, type_name, unknown_field, unknown_value,
                                    with_defaults)

SECONDS = {"type": "number", "exclusiveMinimum": 0, "x-unit": "seconds"}

# a small drill-like schema exercising every keyword the translator words
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z]+\Z",
                 "errorMessage": "{where} must be lower-case letters, got {value!r}"},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "interval": dict(SECONDS, default=0.05),
        "ratio": {"type": "number", "minimum": 0, "maximum": 1},
        "mode": {"enum": ["fast", "slow"], "default": "slow"},
        "flag": {"type": "boolean"},
        "hosts": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                  "uniqueItems": True},
        "pair": {"type": "array", "minItems": 2, "maxItems": 2},
        "vip": {"type": "string", "format": "ipv4",
                "errorMessage": "{where} {value!r} is not an IPv4 address"},
        "weight": {"type": "integer", "minimum": 0, "maximum": 9,
                   "errorMessage": {"maximum": "{where} must be at most 9 (the limit), "
                                               "got {value!r}"}},
        "protocol": {"type": "string", "pattern": r"(?i)^\s*tcp\s*\Z",
                     "errorMessage": "{where} {value!r} is not supported; only tcp is{hint}",
                     "x-hints": {"udp": "it has no connections"}},
        "steps": {
            "type": "array",
            "default": [],
            "items": {
                "type": "object",
                "properties": {"at": {"type": "number", "minimum": 0},
                               "fault": {"enum": ["link_down", "host_crash"]}},
                "required": ["fault"],
                "allOf": [
                    {"if": {"properties": {"fault": {"const": "link_down"}},
                            "required": ["fault"]},
                     "then": {"properties": {"link": {"type": "array"}},
                              "required": ["link"]}},
                    {"if": {"properties": {"fault": {"const": "host_crash"}},
                            "required": ["fault"]},
                     "then": {"properties": {"host": {"type": "string"},
                                             "signal": {"enum": ["KILL", "TERM"],
                                                        "default": "KILL"}},
                              "required": ["host"]}},
                ],
                "unevaluatedProperties": False,
            },
        },
        "expect": {
            "type": "object",
            "properties": {"recover_within": SECONDS, "probe": {"type": "string"}},
            "dependentRequired": {"recover_within": ["probe"]},
            "additionalProperties": False,
        },
        "nested": {"type": "object", "default": {},
                   "properties": {"deep": {"type": "integer", "default": 3}},
                   "additionalProperties": False,
                   "x-hints": {"flag": "flag belongs at the top"}},
    },
    "required": ["name", "port"],
    "additionalProperties": False,
}


def base(**overrides):
    data = {"name": "web", "port": 80}
    data.update(overrides)
    return data


def error_of(data, schema=SCHEMA, root="the drill"):
    with pytest.raises(ValidationError) as info:
        check(data, schema, root=root)
    return str(info.value)


def write(tmp_path, content, name="f.yaml"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


# --- valid data ------------------------------------------------------------------------


def test_valid_data_passes():
    check(base(interval=1, ratio=0.5, mode="fast", flag=True, hosts=["a"], pair=[1, 2],
               vip="10.0.0.1", protocol=" TCP ", weight=9,
               steps=[{"at": 1, "fault": "host_crash", "host": "web1"},
                      {"fault": "link_down", "link": ["s1", "web1"]}],
               expect={"recover_within": 5, "probe": "web"}), SCHEMA)


# --- one sentence per kind of mistake --------------------------------------------------


def test_unknown_key_suggests_the_closest_field():
    assert error_of(base(intervall=1)) == (
        "the drill has no field 'intervall'; did you mean 'interval'? (fields: name, port, "
        "interval, ratio, mode, flag, hosts, pair, vip, weight, protocol, steps, expect, "
        "nested)")


def test_unknown_key_without_a_close_field_lists_them():
    assert error_of(base(nested={"zzz": 1})) == \
        "nested has no field 'zzz'; remove it or use one of: deep"


def test_unknown_key_hint():
    assert error_of(base(nested={"flag": True})) == \
        "nested has no field 'flag'; remove it or use one of: deep (flag belongs at the top)"


def test_unknown_key_in_a_list_item_names_the_fields_of_its_kind():
    data = base(steps=[{"fault": "host_crash", "host": "web1"},
                       {"fault": "host_crash", "host": "web1", "atx": 2}])
    assert error_of(data) == ("steps[1] has no field 'atx'; did you mean 'at'? (fields: at, "
                              "fault, host, signal)")


def test_field_of_another_kind_is_unknown():
    data = base(steps=[{"fault": "host_crash", "host": "web1", "link": ["a", "b"]}])
    assert error_of(data) == ("steps[0] has no field 'link'; remove it or use one of: at, "
                              "fault, host, signal")


def test_a_wrong_kind_is_reported_before_the_fields_it_makes_unknown():
    data = base(steps=[{"fault": "host_crsh", "host": "web1"}])
    assert error_of(data) == ("steps[0].fault 'host_crsh' is unknown; did you mean "
                              "'host_crash'? (choose one of: link_down, host_crash)")


def test_a_misspelt_key_is_reported_before_the_field_it_leaves_missing():
    data = base(steps=[{"fault": "host_crash", "hots": "web1"}])
    assert error_of(data) == ("steps[0] has no field 'hots'; did you mean 'host'? (fields: "
                              "at, fault, host, signal)")


def test_a_wrong_value_is_reported_before_a_missing_field():
    data = {"name": "web", "port": 0}
    del data["name"]
    assert error_of(data) == "port must be an integer from 1 to 65535, got 0"


@pytest.mark.parametrize("port", ["80", 80.0, True, [80]])
def test_wrong_type(port):
    assert error_of(base(port=port)) == \
        f"port must be an integer from 1 to 65535, got {port!r}"


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_out_of_range(port):
    assert error_of(base(port=port)) == f"port must be an integer from 1 to 65535, got {port}"


@pytest.mark.parametrize("interval", [0, -0.5, float("inf"), float("nan"), "1s", False])
def test_seconds_are_a_finite_number_above_zero(interval):
    assert error_of(base(interval=interval)) == \
        f"interval must be a number of seconds > 0, got {interval!r}"


def test_range_of_a_number():
    assert error_of(base(ratio=1.5)) == "ratio must be a number from 0 to 1, got 1.5"


def test_boolean():
    assert error_of(base(flag="yes")) == "flag must be true or false, got 'yes'"


def test_enum_with_and_without_a_suggestion():
    assert error_of(base(mode="fsat")) == \
        "mode 'fsat' is unknown; did you mean 'fast'? (choose one of: fast, slow)"
    assert error_of(base(mode="warp")) == "mode 'warp' is unknown; choose one of: fast, slow"
    assert error_of(base(mode="FAST")) == \
        "mode 'FAST' is unknown; did you mean 'fast'? (choose one of: fast, slow)"


def test_missing_required_field():
    data = base()
    del data["port"]
    assert error_of(data) == "port is missing"


def test_required_field_without_a_value_is_missing():
    assert error_of(base(port=None)) == "port is missing"


def test_field_required_by_a_kind_says_which():
    assert error_of(base(steps=[{"fault": "link_down"}])) == \
        "steps[0].link is missing; fault link_down needs it"
    assert error_of(base(steps=[{"at": 1}])) == "steps[0].fault is missing"


def test_dependent_required():
    assert error_of(base(expect={"recover_within": 5})) == \
        "expect has recover_within but no probe; add probe too"


def test_list_shapes():
    assert error_of(base(hosts=[])) == "hosts must be a non-empty list, got []"
    assert error_of(base(hosts="web1")) == "hosts must be a non-empty list, got 'web1'"
    assert error_of(base(pair=[1])) == "pair must be a list of 2 items, got [1]"
    assert error_of(base(hosts=["a", "b", "a"])) == "hosts lists 'a' twice; list it once"
    assert error_of(base(hosts=["a", 2])) == "hosts[1] must be a string, got 2"


def test_format_ipv4():
    assert error_of(base(vip="10.0.0.300")) == "vip '10.0.0.300' is not an IPv4 address"
    assert error_of(base(vip=167772260)) == "vip 167772260 is not an IPv4 address"


def test_error_message_string_and_per_keyword():
    assert error_of(base(name="Web 1")) == "name must be lower-case letters, got 'Web 1'"
    assert error_of(base(name=7)) == "name must be lower-case letters, got 7"
    assert error_of(base(weight=10)) == "weight must be at most 9 (the limit), got 10"
    assert error_of(base(weight=-1)) == "weight must be an integer from 0 to 9, got -1"


def test_value_hint():
    assert error_of(base(protocol="UDP")) == \
        "protocol 'UDP' is not supported; only tcp is (it has no connections)"
    assert error_of(base(protocol="sctp")) == "protocol 'sctp' is not supported; only tcp is"


def test_document_of_the_wrong_type_uses_the_root_name():
    assert error_of(["web"], root="the service") == \
        "the service must be a mapping, got ['web']"


def test_error_carries_the_field_path():
    with pytest.raises(ValidationError) as info:
        check(base(steps=[{"fault": "link_down", "link": 3}]), SCHEMA)
    assert info.value.path == ("steps", 0, "link")
    with pytest.raises(ValidationError) as info:
        check(base(steps=[{"fault": "host_crash", "host": "a", "atx": 1}]), SCHEMA)
    assert info.value.path == ("steps", 0, "atx")


def test_error_class_is_chosen_by_the_caller():
    class MyError(ValidationError):
        pass
    with pytest.raises(MyError):
        check(base(port=0), SCHEMA, error=MyError)


def test_a_broken_schema_is_the_programmer_s_error():
    with pytest.raises(jsonschema.SchemaError):
        check({}, {"type": "nonsense"})


BAD = [base(port="x\ny"), base(name="a\nb"), base(intervall=1), base(mode=["a\nb"]),
       base(hosts=[]), {"port": 1}, base(steps=[{"fault": "link_down"}]), "text\nmore",
       base(expect={"recover_within": 1}), base(nested={"x\ny": 1})]


@pytest.mark.parametrize("data", BAD)
def test_every_error_is_one_line(data):
    message = error_of(data)
    assert re.fullmatch(r"[^\n]+", message) and ". " not in message


# --- words ------------------------------------------------------------------------------


def test_field_path():
    assert field_path(("timeline", 2, "fault")) == "timeline[2].fault"
    assert field_path(()) == "the file"
    assert field_path((), root="the drill") == "the drill"
    assert field_path(("variants", "two words", "x")) == "variants['two words'].x"
    assert field_path((0, "a")) == "[0].a"


def test_expected_words():
    assert expected({"type": "integer", "minimum": 1, "maximum": 65535}) == \
        "an integer from 1 to 65535"
    assert expected(SECONDS) == "a number of seconds > 0"
    assert expected({"type": "number", "exclusiveMinimum": 0, "maximum": 2.5}) == \
        "a number > 0 and <= 2.5"
    assert expected({"type": ["integer", "null"], "minimum": 0}) == "an integer >= 0"
    assert expected({"type": ["object", "string"]}) == "a mapping or a string"
    assert expected({"type": "string", "minLength": 1}) == "a non-empty string"
    assert expected({"type": "array", "minItems": 3}) == "a list of at least 3 items"


def test_small_helpers():
    assert type_name({}) == "a mapping" and type_name([]) == "a list"
    assert type_name("x") == "a string" and type_name(3) == "3"
    assert suggest("advert_in", ["advert_int", "use_vmac"]) == "advert_int"
    assert suggest("zzz", ["advert_int"]) is None and suggest(3, ["a"]) is None
    assert unknown_value("x", "b", []) == "x 'b' is unknown; choose one of: "
    assert unknown_field("x", "k", []) == "x has no field 'k'; remove it"


# --- defaults ---------------------------------------------------------------------------


def test_defaults_are_filled_in_without_touching_the_input():
    data = base(steps=[{"fault": "host_crash", "host": "web1"},
                       {"fault": "link_down", "link": ["a", "b"]}])
    filled = with_defaults(data, SCHEMA)
    assert filled == base(interval=0.05, mode="slow", nested={"deep": 3},
                          steps=[{"fault": "host_crash", "host": "web1", "signal": "KILL"},
                                 {"fault": "link_down", "link": ["a", "b"]}])
    assert "interval" not in data and "signal" not in data["steps"][0]


def test_given_values_win_over_defaults():
    filled = with_defaults(base(interval=2, nested={"deep": 0}, steps=[]), SCHEMA)
    assert (filled["interval"], filled["nested"], filled["steps"]) == (2, {"deep": 0}, [])


def test_a_default_is_a_copy():
    one, two = with_defaults(base(), SCHEMA), with_defaults(base(), SCHEMA)
    one["steps"].append(1)
    assert two["steps"] == [] and SCHEMA["properties"]["steps"]["default"] == []


# --- files ------------------------------------------------------------------------------


def load_error(path, label="drill file"):
    with pytest.raises(ValidationError) as info:
        load_yaml(path, label)
    return str(info.value)


def test_a_file_is_read_with_the_lines_of_its_fields(tmp_path):
    path = write(tmp_path, "name: web\nsteps:\n  - fault: link_down\n    link: [a, b]\n"
                           "  - {fault: host_crash,\n     host: web1}\n")
    doc = load_yaml(path, "drill file")
    assert doc.data == {"name": "web", "steps": [{"fault": "link_down", "link": ["a", "b"]},
                                                 {"fault": "host_crash", "host": "web1"}]}
    assert doc.line(()) == 1
    assert doc.line(("name",)) == 1
    assert doc.line(("steps",)) == 2
    assert doc.line(("steps", 0)) == 3
    assert doc.line(("steps", 0, "link")) == 4
    assert doc.line(("steps", 0, "link", 1)) == 4
    assert doc.line(("steps", 1, "host")) == 6
    assert doc.line(("steps", 1, "nothing", "here")) == 5   # the deepest part that exists
    assert doc.line(("steps", 9)) == 2
    assert doc.where(("steps", 1, "host")) == f"drill file {path}, line 6"
    failed = doc.fail(ValidationError("steps[1].host is wrong", ("steps", 1, "host")))
    assert str(failed) == f"drill file {path}, line 6: steps[1].host is wrong"
    assert failed.path == ("steps", 1, "host")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert load_error(path) == f"drill file {path} does not exist"


def test_unreadable_file(tmp_path):
    assert load_error(tmp_path) == f"cannot read drill file {tmp_path}: Is a directory"


def test_non_utf8_file_names_the_line(tmp_path):
    path = write(tmp_path, b"drill: x\ndescription: caf\xe9\n")
    assert load_error(path) == (f"drill file {path} is not UTF-8 text (byte 0xe9 on line 2); "
                                "save it as UTF-8")


def test_yaml_syntax_error_names_the_line_and_column(tmp_path):
    path = write(tmp_path, "drill: x\nprobes: [a, b\ntimeline: []\n")
    message = load_error(path)
    assert message.startswith(f"drill file {path} is not valid YAML: ")
    assert message.endswith("(line 3, column 9)")
    path = write(tmp_path, "drill: x\n  network: y\n")
    assert load_error(path) == (f"drill file {path} is not valid YAML: mapping values are "
                                "not allowed here (line 2, column 10)")


def test_tab_indentation_is_a_syntax_error_with_its_line(tmp_path):
    path = write(tmp_path, "drill: x\nnetwork:\n\ttopology: y\n")
    message = load_error(path)
    assert message.startswith(f"drill file {path} is not valid YAML: ")
    assert "(line 3, column 1)" in message


def test_key_written_twice(tmp_path):
    path = write(tmp_path, "drill: x\nnetwork:\n  topology: a\n  topology: b\n")
    assert load_error(path) == (f"drill file {path} is not valid YAML: key 'topology' "
                                "appears twice (first on line 3) (line 4, column 3)")


def test_empty_file(tmp_path):
    path = write(tmp_path, "# nothing yet\n")
    assert load_error(path) == f"drill file {path} is empty"


@pytest.mark.parametrize("text, what", [("- a\n- b\n", "a list"), ("just text\n", "a string"),
                                        ("\n\n42\n", "42")])
def test_a_document_that_is_not_a_mapping(tmp_path, text, what):
    path = write(tmp_path, text)
    line = 3 if text.startswith("\n") else 1
    assert load_error(path) == (f"drill file {path}, line {line}: the file holds {what}, "
                                "not a mapping; write one 'key: value' per line")


def test_python_tags_are_refused(tmp_path):
    path = write(tmp_path, "name: !!python/object/apply:os.system ['true']\n")
    assert load_error(path).startswith(f"drill file {path} is not valid YAML: could not "
                                       "determine a constructor")


@pytest.mark.parametrize("content", [b"a: [1\n", b"\xff\xfe", b"- 1\n", b"a: 1\na: 2\n", b""])
def test_every_file_error_is_one_line(tmp_path, content):
    message = load_error(write(tmp_path, content))
    assert re.fullmatch(r"[^\n]+", message)
