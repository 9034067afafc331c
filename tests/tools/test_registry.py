"""The registry, the schemas, the envelope shape and the lazy imports of ``quantdesk.tools``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import quantdesk.tools as qt
from quantdesk.tools import GUARDRAILS, list_tools, tool_names, tool_schema

REQUIRED_TOOLS = {
    "search_filings",
    "get_filing_section",
    "fetch_prices",
    "validate_data",
    "compute_features",
    "make_labels",
    "walk_forward_cv",
    "backtest",
    "deflated_sharpe",
    "pbo",
    "risk_report",
    "list_trials",
    "evaluate_holdout",
}

PUBLIC_API = {
    "DATA_DIRS_ENV",
    "GUARDRAILS",
    "MAX_PAYLOAD_BYTES",
    "DataSource",
    "DemoProvider",
    "DemoSource",
    "Envelope",
    "FileSource",
    "GuardrailCheck",
    "GuardrailRule",
    "LocalFileProvider",
    "LookaheadReport",
    "PriceProvider",
    "Provenance",
    "ToolError",
    "ToolInput",
    "ToolInputError",
    "ToolRefusedError",
    "ToolRun",
    "ToolSpec",
    "allowed_data_dirs",
    "check_lookahead",
    "get_tool",
    "list_tools",
    "resolve_data_path",
    "run_tool",
    "tool_names",
    "tool_schema",
}


def test_public_api_is_pinned() -> None:
    assert set(qt.__all__) == PUBLIC_API
    assert qt.check_lookahead.__name__ == "check_lookahead"


def test_every_required_tool_is_registered_once() -> None:
    names = tool_names()
    assert set(names) == REQUIRED_TOOLS
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", sorted(REQUIRED_TOOLS))
def test_schema_is_json_and_forbids_extra_fields(name: str) -> None:
    schema = tool_schema(name)
    json.dumps(schema)
    assert schema["input"]["additionalProperties"] is False
    assert {"context", "as_of"} <= set(schema["input"]["properties"])
    assert set(schema["output"]["properties"]) >= {"ok", "result", "guardrails", "provenance"}
    assert schema["description"]
    assert schema["summary"]
    assert set(schema["guardrails"]) <= set(GUARDRAILS)


@pytest.mark.parametrize("spec", list_tools(), ids=lambda s: s.name)
def test_examples_validate_against_their_input_model(spec: qt.ToolSpec) -> None:
    spec.input_model.model_validate_json(json.dumps(spec.example), strict=True)


def test_unknown_schema_names_the_known_tools() -> None:
    with pytest.raises(KeyError, match="fetch_prices"):
        tool_schema("no_such_tool")


def test_only_costs_can_be_overridden() -> None:
    assert {n: r.override for n, r in GUARDRAILS.items() if r.override} == {"costs": "gross_study"}


def test_importing_tools_and_bad_requests_load_no_heavy_library() -> None:
    code = (
        "import sys, quantdesk.tools as t; t.tool_names(); t.tool_schema('walk_forward_cv'); "
        "t.run_tool('backtest', '{bad'); t.run_tool('backtest', {'as_of': 5}); "
        "print(sorted(m for m in ('polars', 'numpy', 'lightgbm', 'sklearn', 'scipy') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_envelope_shape_and_provenance(tools) -> None:
    env = tools.call(
        "fetch_prices", {"source": tools.SMALL, "as_of": tools.AS_OF, "preview_rows": 2}
    )
    result = tools.ok(env)
    data = env.to_json_dict()
    assert set(data) == {
        "ok",
        "tool",
        "result",
        "warnings",
        "guardrails",
        "provenance",
        "error",
        "timings",
    }
    prov = env.provenance
    assert prov.tool == "fetch_prices"
    assert prov.context_name == "default"
    assert prov.context_id
    assert str(prov.as_of) == tools.AS_OF
    assert prov.data_hash == result.data_hash
    assert len(prov.data_hash) == 64
    assert prov.config_hash
    assert len(prov.config_hash) == 64
    assert prov.code_version
    assert prov.code_version.startswith("0.")
    assert result.last_date <= prov.as_of
    assert len(result.preview) == 2
    assert data["timings"]["total"] > 0


def test_config_hash_identifies_the_request(tools) -> None:
    payload = {"source": tools.SMALL, "as_of": tools.AS_OF}
    first = tools.call("validate_data", payload).provenance
    second = tools.call("validate_data", json.dumps(payload)).provenance
    other = tools.call("validate_data", {**payload, "max_issues": 3}).provenance
    assert first.config_hash == second.config_hash != other.config_hash
    assert first.data_hash == second.data_hash == other.data_hash


def test_successful_calls_list_every_declared_guardrail(tools) -> None:
    env = tools.call("deflated_sharpe", {"stats": {"sharpe": 1.0, "n_obs": 500}})
    tools.ok(env)
    assert {g.name for g in env.guardrails} == {"as_of", "holdout", "multiple_testing"}
    assert tools.outcome(env, "holdout") == "not_applicable"


def test_module_table_matches_the_registrations() -> None:
    from quantdesk.tools import registry

    assert {s.name: s.function.__module__ for s in list_tools()} == registry._MODULE_OF
    assert set(registry._MODULE_OF.values()) == set(registry._TOOL_MODULES)


def test_getting_one_tool_imports_its_module_only() -> None:
    code = (
        "import sys; from quantdesk.tools import get_tool; "
        "assert get_tool('deflated_sharpe').name == 'deflated_sharpe'; "
        "print(sorted(m for m in sys.modules if m.endswith('_tools')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['quantdesk.tools.inference_tools']"


def test_importing_the_package_imports_no_module_of_it() -> None:
    code = (
        "import sys, quantdesk.tools; "
        "print(sorted(m for m in sys.modules if m.startswith('quantdesk.tools.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
