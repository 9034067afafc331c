"""Random requests never raise past the envelope (Hypothesis)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantdesk.tools import Envelope, get_tool, list_tools, run_tool, tool_names

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["2019-12-31", "2019-13-01", "demo", "file", "../x", "default", ""])
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Cheap tools whose valid requests still run fast, so mutations that happen to be valid are fine.
_CHEAP = ["deflated_sharpe", "pbo", "list_trials", "fetch_prices", "validate_data"]


def _assert_envelope(env: Any, name: str) -> None:
    assert isinstance(env, Envelope)
    data = env.to_json_dict()
    json.dumps(data, allow_nan=False)
    assert data["ok"] == (data["error"] is None)
    assert env.exit_code in (0, 1, 2)
    if not env.ok:
        assert env.error.message
        assert not env.error.message.startswith("Internal error"), env.error


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(tool_names()),
    payload=st.dictionaries(st.text(max_size=12), _JSON, max_size=5),
)
def test_random_objects(name: str, payload: dict) -> None:
    _assert_envelope(run_tool(name, payload), name)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from([*tool_names(), "nope", ""]),
    text=st.text(max_size=60) | st.binary(max_size=40) | _JSON.map(json.dumps),
)
def test_random_text(name: str, text: str | bytes) -> None:
    _assert_envelope(run_tool(name, text), name)


def _mutations(name: str) -> st.SearchStrategy[dict]:
    example = get_tool(name).example  # type: ignore[union-attr]
    keys = sorted({*example, *get_tool(name).input_model.model_fields})  # type: ignore[union-attr]
    return st.builds(lambda key, value: {**example, key: value}, st.sampled_from(keys), _JSON)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_examples_of_cheap_tools(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(_CHEAP))
    payload = data.draw(_mutations(name))
    if "source" in payload and isinstance(payload["source"], dict):
        payload["source"] = {**payload["source"], "n_symbols": 5, "n_sessions": 80}
    _assert_envelope(run_tool(name, payload), name)


def _from_schema(node: dict, defs: dict) -> st.SearchStrategy[Any]:
    """Values that follow a JSON schema node, mostly: the tool's own schema drives the fuzz."""
    if "$ref" in node:
        return _from_schema(defs[node["$ref"].split("/")[-1]], defs)
    for key in ("anyOf", "oneOf"):
        if key in node:
            return st.one_of([_from_schema(n, defs) for n in node[key]])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if "const" in node:
        return st.just(node["const"])
    kind = node.get("type")
    if kind == "integer":
        lo, hi = node.get("minimum", -5), node.get("maximum", 10**6)
        return st.integers(min_value=lo, max_value=max(lo, min(hi, lo + 1000)))
    if kind == "number":
        return st.floats(
            min_value=node.get("minimum", node.get("exclusiveMinimum")),
            max_value=node.get("maximum", node.get("exclusiveMaximum")),
            allow_nan=False,
            allow_infinity=False,
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        if node.get("format") == "date":
            return st.dates().map(lambda d: d.isoformat())
        return st.text(min_size=node.get("minLength", 0), max_size=12)
    if kind == "array":
        return st.lists(_from_schema(node.get("items", {}), defs), max_size=6)
    if kind == "object":
        props = node.get("properties", {})
        required = set(node.get("required", []))
        fields = {k: _from_schema(v, defs) for k, v in props.items()}
        optional = [k for k in props if k not in required]
        return st.builds(
            lambda req, opt: {**req, **opt},
            st.fixed_dictionaries({k: fields[k] for k in required}),
            st.fixed_dictionaries({}, optional={k: fields[k] for k in optional}),
        )
    return _JSON


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_schema_driven_requests_of_cheap_tools(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(_CHEAP))
    schema = get_tool(name).input_schema()  # type: ignore[union-attr]
    payload = data.draw(_from_schema(schema, schema.get("$defs", {})))
    if isinstance(payload.get("source"), dict) and payload["source"].get("kind") == "demo":
        payload["source"] = {**payload["source"], "n_symbols": 5, "n_sessions": 80}
    _assert_envelope(run_tool(name, payload), name)


def test_every_example_succeeds_or_fails_cleanly() -> None:
    for spec in list_tools():
        if spec.name in ("walk_forward_cv", "evaluate_holdout"):
            continue  # covered by their own tests; slower
        env = run_tool(spec.name, spec.example)
        _assert_envelope(env, spec.name)
        assert env.ok, (spec.name, env.error)
