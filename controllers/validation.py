"""Configuration files checked by JSON Schema, every mistake told in one sentence.

redlab's YAML files (a service, a drill) are described by JSON schemas (Draft 2020-12)
and checked with `jsonschema <https://python-jsonschema.readthedocs.io>`_.  This module
adds what a person editing a file needs on top of the library:

* :func:`load_yaml` reads a file with PyYAML's ``SafeLoader``, refuses a key written
  twice in one mapping and aliases that expand to more than :data:`MAX_VALUES` values
  (:func:`bounded_safe_load` alone, for files with no schema), and keeps the YAML nodes
  so that a mistake can name its line;
* :func:`check` validates, picks the most relevant error
  (``jsonschema.exceptions.best_match``, ranked so that a misspelt key comes first, then
  a wrong value, then a missing field) and turns it into ONE sentence that names the
  field by its path (``timeline[2].fault``) and says how to fix it;
* :func:`with_defaults` fills the schemas' ``default`` values in.

Pure: no os-ken, no harness.  The controller imports it (``controllers.service``) and so
does the harness (``redlab.drill.schema``); the controller never imports the harness.

Default sentences, by JSON Schema keyword::

    unknown key   timeline[2] has no field 'atx'; did you mean 'at'? (fields: id, at, ...)
    type, range   probes[0].interval must be a number of seconds > 0, got 0
    enum          timeline[0].fault 'host_crsh' is unknown; did you mean 'host_crash'?
                  (choose one of: link_down, host_crash, ...)
    required      network.topology is missing (; fault link_down needs it: from if/then)
    dependentRequired  expect[1] has recover_within but no probe; add probe too

A schema may word its own sentences with keywords that Draft 2020-12 ignores:

``errorMessage``
    on a field's schema, in the spirit of ajv-errors: a string (used for every keyword
    that fails on the value) or a mapping from keyword to sentence.  Its ``required``
    entry words the sentence for the field being absent, its ``additionalProperties`` /
    ``unevaluatedProperties`` entry (on an object's schema) the one for an unknown key.
    Sentences are ``str.format`` templates with ``{where}`` (the field's path),
    ``{value!r}``, ``{type}`` (what the value is: "a list", "a mapping"...), ``{key}``
    (an unknown key), ``{known}`` (the object's fields), ``{allowed}`` (an enum's values),
    ``{suggestion}`` and ``{hint}``.
``x-hints``
    a mapping from an offending key or value to a hint, added as `` (hint)``: e.g.
    ``delay_loop: "delay_loop belongs in health_check"`` on the service's top level.
``x-unit``
    the unit of a number, read in the default sentence: "a number of seconds > 0".

Two readings differ from plain JSON Schema, because the documents are YAML typed by
people: an ``integer`` is written without a decimal point (YAML reads ``80.0`` as a
float) and a ``number`` is finite (YAML reads ``.inf``); and a ``required`` field
written without a value (``name:``, YAML's null) counts as missing.  Patterns are
Python regular expressions (jsonschema matches them with ``re.search``).
"""

from __future__ import annotations

import copy
import difflib
import math
import re

import jsonschema
import yaml
from jsonschema import Draft202012Validator, ValidationError as _SchemaError
from jsonschema.exceptions import best_match, relevance

__all__ = [
    "ValidationError",
    "Validator",
    "validator_for",
    "expected",
    "YamlDocument",
    "load_yaml",
    "bounded_safe_load",
    "check",
    "with_defaults",
    "field_path",
    "type_name",
    "suggest",
    "unknown_value",
    "unknown_field",
]


class ValidationError(ValueError):
    """A configuration mistake; ``str()`` is one sentence naming the field and the fix.

    ``path`` is the field's path in the document (``("timeline", 2, "fault")``), empty
    for a mistake about the whole file.
    """

    def __init__(self, message, path=()):
        super().__init__(message)
        self.path = tuple(path)


# ---------------------------------------------------------------------------------------
# words for values, paths and choices
# ---------------------------------------------------------------------------------------


def type_name(value):
    """What a value is, for a sentence: ``a mapping``, ``a list``, ``a string``, else its repr."""
    return {dict: "a mapping", list: "a list", str: "a string"}.get(type(value),
                                                                   repr(value))


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def field_path(path, root="the file"):
    """``("timeline", 2, "fault")`` -> ``timeline[2].fault``; the empty path -> ``root``."""
    text = ""
    for step in path:
        if isinstance(step, int):
            text += f"[{step}]"
        elif _PLAIN_KEY.match(str(step)):
            text += f".{step}" if text else str(step)
        else:
            text += f"[{step!r}]"
    return text or root


def suggest(word, choices):
    """The choice closest to a misspelt ``word`` (difflib), or None."""
    if not isinstance(word, str):
        return None
    names = [str(c) for c in choices]
    match = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    if not match and word.strip().lower() != word:
        match = difflib.get_close_matches(word.strip().lower(), names, n=1, cutoff=0.6)
    return match[0] if match else None


def _hint(hints, key):
    if not hints:
        return ""
    if isinstance(key, str) and key not in hints:
        key = key.strip().lower()
    try:
        text = hints.get(key)
    except TypeError:       # an unhashable value
        text = None
    return f" ({text})" if text else ""


def unknown_value(where, value, choices, hint=""):
    """``where 'x' is unknown; did you mean 'y'? (choose one of: a, b)`` -- one sentence."""
    allowed = ", ".join(str(c) for c in choices)
    close = suggest(value, choices)
    if close is not None:
        return (f"{where} {value!r} is unknown; did you mean {close!r}? "
                f"(choose one of: {allowed}){hint}")
    return f"{where} {value!r} is unknown; choose one of: {allowed}{hint}"


def unknown_field(where, key, known, hint=""):
    """``where has no field 'x'; did you mean 'y'? (fields: a, b)`` -- one sentence."""
    fields = ", ".join(str(k) for k in known)
    close = suggest(key, known)
    if close is not None:
        return f"{where} has no field {key!r}; did you mean {close!r}? (fields: {fields}){hint}"
    if not known:
        return f"{where} has no field {key!r}; remove it{hint}"
    return f"{where} has no field {key!r}; remove it or use one of: {fields}{hint}"


def _number(value):
    return f"{value:g}" if isinstance(value, float) else str(value)


_TYPE_WORDS = {"integer": "an integer", "number": "a number", "string": "a string",
               "boolean": "true or false", "array": "a list", "object": "a mapping",
               "null": "empty"}


def expected(schema):
    """What a field's schema asks for, in words: ``an integer from 1 to 65535``."""
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    if len(types) > 1:
        types = [t for t in types if t != "null"]
    words = " or ".join(_TYPE_WORDS.get(t, t) for t in types) or "a value"
    if schema.get("x-unit") and set(types) <= {"integer", "number"}:
        words += f" of {schema['x-unit']}"
    low, high = schema.get("minimum"), schema.get("maximum")
    above, below = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if low is not None and high is not None:
        words += f" from {_number(low)} to {_number(high)}"
    else:
        bounds = [f"{sign} {_number(limit)}" for sign, limit in
                  ((">=", low), (">", above), ("<=", high), ("<", below)) if limit is not None]
        if bounds:
            words += " " + " and ".join(bounds)
    few, many = schema.get("minItems"), schema.get("maxItems")
    if few is not None and few == many:
        words += f" of {few} items"
    elif few == 1:
        words = "a non-empty list" if words == "a list" else words + " (not empty)"
    elif few:
        words += f" of at least {few} items"
    if schema.get("minLength") == 1 and words == "a string":
        words = "a non-empty string"
    return words


# ---------------------------------------------------------------------------------------
# the validator: Draft 2020-12, read the YAML way
# ---------------------------------------------------------------------------------------


def _is_integer(_checker, value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(_checker, value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


Validator = jsonschema.validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"integer": _is_integer, "number": _is_number}),
)


_VALIDATORS = {}     # id(schema) -> (schema, validator); the schema is kept alive


def validator_for(schema):
    """A (cached) validator for ``schema``; the schema itself is checked once, so a
    broken schema is the programmer's error (``jsonschema.SchemaError``) on first use."""
    cached = _VALIDATORS.get(id(schema))
    if cached is None or cached[0] is not schema:
        Validator.check_schema(schema)
        validator = Validator(schema, format_checker=Validator.FORMAT_CHECKER)
        cached = _VALIDATORS[id(schema)] = (schema, validator)
    return cached[1]


_UNKNOWN_KEY = ("unevaluatedProperties", "additionalProperties")


def _ranker(validator):
    """``best_match``'s relevance, after a rank of our own: a misspelt key first, then a
    wrong value, then a missing field, then any other unknown key.  A misspelt ``faul:``
    or a wrong ``fault: host_crsh`` makes the fields of that fault look unknown and
    others missing; the misspelling is the sentence worth reading, and a person fixes
    what is written before adding what is not."""
    def key(error):
        if error.validator in _UNKNOWN_KEY:
            known = _known_fields(validator, error.schema, error.instance)
            misspelt = any(suggest(k, known) for k in error.instance if k not in known)
            rank = 4 if misspelt else 0
        else:
            rank = 1 if error.validator == "required" else 3
        deepest, path, *rest = relevance(error)
        # paths as text: a YAML mapping may mix int and str keys, which do not compare
        return (rank, deepest, tuple(map(str, path)), *rest)
    return key


def check(data, schema, *, root="the file", error=ValidationError):
    """Validate ``data``; raise ``error`` (one sentence) for the most relevant mistake.

    ``root`` names the document itself in a sentence ("unknown setting 'x' in
    virtual_server").
    """
    validator = validator_for(schema)
    found = best_match(validator.iter_errors(data), key=_ranker(validator))
    if found is not None:
        message, path = _sentence(found, validator, root)
        raise error(message, path)


# ---------------------------------------------------------------------------------------
# one error -> one sentence
# ---------------------------------------------------------------------------------------


def _custom(schema, keyword, values_only=True):
    """The schema's own sentence for ``keyword`` (see ``errorMessage``), or None."""
    message = schema.get("errorMessage") if isinstance(schema, dict) else None
    if isinstance(message, str):
        return message if values_only else None
    if isinstance(message, dict):
        return message.get(keyword)
    return None


def _known_fields(validator, schema, instance):
    """The fields ``schema`` declares for ``instance``: its ``properties`` and those of
    every ``allOf`` branch that applies (``if``/``then``/``else``)."""
    known = list(schema.get("properties", {}))
    for sub in schema.get("allOf", []):
        branch = sub
        if isinstance(sub, dict) and "if" in sub:
            holds = validator.evolve(schema=sub["if"]).is_valid(instance)
            branch = sub.get("then" if holds else "else")
        if isinstance(branch, dict):
            known += [k for k in branch.get("properties", {}) if k not in known]
    return known


_DEFAULT = {
    "const": "{where} must be {const!r}, got {value!r}{hint}",
    "pattern": "{where} must match the pattern {pattern}, got {value!r}{hint}",
    "uniqueItems": "{where} lists {duplicate!r} twice; list it once{hint}",
    None: "{where} is not allowed here; remove it{hint}",   # a `false` schema
}
_SHAPE = {"type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
          "minItems", "maxItems", "minLength", "maxLength", "multipleOf"}


def _render(template, **values):
    """The template filled in, on one line (values come in as repr, so this is a net)."""
    return " ".join(template.format(**values).splitlines())


def _duplicate(items):
    seen = []
    for item in items:
        if item in seen:
            return item
        seen.append(item)
    return None


def _required_by_parent(root_schema, error):
    """Whether the field that failed is listed in its object's ``required``: a required
    field written without a value (YAML's null: ``name:``) is reported as missing."""
    steps = list(error.absolute_schema_path)
    if len(steps) < 3 or steps[-3] != "properties" or not error.absolute_path:
        return False
    parent = root_schema
    for step in steps[:-3]:
        parent = parent[step]
    return isinstance(parent, dict) and steps[-2] in parent.get("required", ())


def _needed_by(root_schema, error):
    """``; fault link_down needs it`` when a field is required by the ``then`` of an
    ``if: {properties: {fault: {const: link_down}}}``, else nothing."""
    steps = list(error.absolute_schema_path)
    if len(steps) < 2 or steps[-2] != "then":
        return ""
    branch = root_schema
    for step in steps[:-2]:
        branch = branch[step]
    condition = branch.get("if", {}).get("properties", {})
    if len(condition) == 1:
        (name, rule), = condition.items()
        if isinstance(rule, dict) and "const" in rule:
            return f"; {name} {rule['const']} needs it"
    return ""


def _sentence(error, validator, root):
    """(sentence, path) for one jsonschema error."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    keyword = error.validator
    path = tuple(error.absolute_path)
    where = field_path(path, root)
    instance = error.instance

    if keyword in _UNKNOWN_KEY:
        known = _known_fields(validator, schema, instance)
        unknown = [k for k in instance if k not in known]
        # a misspelt key first: it may be what makes the other keys unknown (`faul:`)
        key = next((k for k in unknown if suggest(k, known)), unknown[0])
        hint = _hint(schema.get("x-hints"), key)
        template = _custom(schema, keyword, values_only=False)
        if template is None:
            return unknown_field(where, key, known, hint), path + (key,)
        return _render(template, where=where, key=key, known=", ".join(known), hint=hint,
                       suggestion=suggest(key, known)), path + (key,)

    if keyword == "required":
        missing = next(k for k in error.validator_value if k not in instance)
        field = schema.get("properties", {}).get(missing, {})
        template = (_custom(field, "required", values_only=False)
                    or _custom(schema, "required", values_only=False)
                    or "{where} is missing{hint}")
        return _render(template, where=field_path(path + (missing,), root), key=missing,
                       hint=_needed_by(validator.schema, error)), path + (missing,)

    if keyword == "dependentRequired":
        for key, needs in error.validator_value.items():
            absent = [n for n in needs if instance.get(n) is None]
            if key in instance and absent:
                return (f"{where} has {key} but no {absent[0]}; add {absent[0]} too",
                        path + (key,))

    if instance is None and _required_by_parent(validator.schema, error):
        name = path[-1]
        template = _custom(schema, "required", values_only=False) or "{where} is missing"
        return _render(template, where=where, key=name, hint=""), path

    value = instance
    template = _custom(schema, keyword)
    hint = _hint(schema.get("x-hints"), value)
    if template is None and keyword in _SHAPE:
        template = "{where} must be {expected}, got {value!r}{hint}"
    if template is None and keyword == "enum":
        return unknown_value(where, value, error.validator_value, hint), path
    if template is None:
        template = _DEFAULT.get(keyword, "{where} is not valid: {message}")
    duplicate = _duplicate(value) if keyword == "uniqueItems" else None
    return _render(template, where=where, value=value, type=type_name(value),
                   expected=expected(schema), hint=hint, message=error.message,
                   allowed=", ".join(map(str, schema.get("enum", ()))),
                   const=schema.get("const"), pattern=schema.get("pattern"),
                   duplicate=duplicate, suggestion=suggest(value, schema.get("enum", ())),
                   known=", ".join(schema.get("properties", {})),
                   ), path


# ---------------------------------------------------------------------------------------
# defaults
# ---------------------------------------------------------------------------------------


def _branches(validator, schema, instance):
    """``schema`` and the ``allOf`` branches that apply to ``instance``."""
    yield schema
    for sub in schema.get("allOf", []):
        if isinstance(sub, dict) and "if" in sub:
            holds = validator.evolve(schema=sub["if"]).is_valid(instance)
            sub = sub.get("then" if holds else "else")
        if isinstance(sub, dict):
            yield sub


def _fill(validator, instance, schema):
    if not isinstance(schema, dict):
        return
    if isinstance(instance, dict):
        declared = set()
        for branch in list(_branches(validator, schema, instance)):
            for key, field in branch.get("properties", {}).items():
                declared.add(key)
                if key not in instance and isinstance(field, dict) and "default" in field:
                    instance[key] = copy.deepcopy(field["default"])
                if key in instance:
                    _fill(validator, instance[key], field)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in instance:
                if key not in declared:
                    _fill(validator, instance[key], extra)
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for item in instance:
            _fill(validator, item, schema["items"])


def with_defaults(data, schema):
    """A copy of valid ``data`` with every missing field that has a ``default`` filled in
    (also inside lists, and in the ``if``/``then`` branch that applies)."""
    data = copy.deepcopy(data)
    _fill(validator_for(schema), data, schema)
    return data


# ---------------------------------------------------------------------------------------
# YAML files
# ---------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, refusing a key written twice in one mapping.

    Plain PyYAML keeps the last value silently, so a second ``weight:`` or a second
    ``timeline:`` block would quietly replace the first.
    """

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # unhashable key: SafeLoader reports it
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (first on line {first + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                              _StrictLoader.construct_mapping)

# Anchors and aliases let a few lines stand for an exponential number of values ("a
# billion laughs"): PyYAML shares them, but whoever walks the data (a schema check, a
# lab) walks every one.  A file a person writes holds far fewer.
MAX_VALUES = 100_000


def expanded_size(node, seen=None):
    """How many values ``node`` stands for once every alias is written out (computed on
    the node graph, each node once)."""
    seen = {} if seen is None else seen
    if id(node) in seen:
        return seen[id(node)]
    seen[id(node)] = 1                  # a recursive alias counts once, never loops
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(expanded_size(k, seen) + expanded_size(v, seen) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(expanded_size(item, seen) for item in node.value)
    else:
        size = 1
    seen[id(node)] = size
    return size


class TooManyValues(yaml.YAMLError):
    def __str__(self):
        return ("its anchors and aliases stand for more than %d values; write the values "
                "out" % MAX_VALUES)


def _construct_bounded(loader):
    """``(node, data)`` of ``loader``'s one document, refused (:class:`TooManyValues`)
    before it is built when its aliases expand to more than :data:`MAX_VALUES` values."""
    node = loader.get_single_node()
    if node is None:
        return None, None
    if expanded_size(node) > MAX_VALUES:
        raise TooManyValues()
    return node, loader.construct_document(node)


def bounded_safe_load(text):
    """``yaml.safe_load`` of a student's or an operator's file, refusing one whose aliases
    expand to more than :data:`MAX_VALUES` values (:class:`TooManyValues`, a YAMLError)."""
    loader = yaml.SafeLoader(text)
    try:
        return _construct_bounded(loader)[1]
    finally:
        loader.dispose()


class YamlDocument:
    """A YAML file read by :func:`load_yaml`: its data and where each field was written."""

    def __init__(self, path, label, data, node):
        self.path = path
        self.label = label
        self.data = data
        self._node = node

    def line(self, path):
        """The line (from 1) on which the field at ``path`` is written; for a field that
        is not there, the line of the deepest part of the path that is."""
        node = self._node
        line = node.start_mark.line + 1
        for step in path:
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(step):
                        node, line = value_node, key_node.start_mark.line + 1
                        break
                else:
                    return line
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) \
                    and 0 <= step < len(node.value):
                node = node.value[step]
                line = node.start_mark.line + 1
            else:
                return line
        return line

    def where(self, path=()):
        """``drill file F, line N`` for a field: the start of a sentence about it."""
        return f"{self.label} {self.path}, line {self.line(path)}"

    def fail(self, exc, error=None):
        """``exc`` (a :class:`ValidationError`) again, prefixed with the file and line."""
        error = error or type(exc)
        return error(f"{self.where(exc.path)}: {exc}", exc.path)


def load_yaml(path, label="file", error=ValidationError):
    """Read a YAML file that holds one mapping; every problem is ``error`` (one sentence
    naming ``label`` and the file, and the line where there is one)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise error(f"{label} {path} does not exist") from None
    except OSError as exc:
        raise error(f"cannot read {label} {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise error(f"{label} {path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} on "
                    f"line {line}); save it as UTF-8") from None
    loader = _StrictLoader(text)
    try:
        node, data = _construct_bounded(loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise error(f"{label} {path} is not valid YAML: {problem}{where}") from None
    finally:
        loader.dispose()
    if data is None:
        raise error(f"{label} {path} is empty")
    if not isinstance(data, dict):
        raise error(f"{label} {path}, line {node.start_mark.line + 1}: the file holds "
                    f"{type_name(data)}, not a mapping; write one 'key: value' per line")
    return YamlDocument(path, label, data, node)
