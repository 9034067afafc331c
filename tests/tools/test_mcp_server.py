"""The MCP server answers a real MCP client: every tool with its schemas, results, refusals.

The client is mcp's own :class:`mcp.Client`, connected in memory (the modern in-process
dispatch and the legacy JSON-RPC stream handshake) and, in the slow test, to ``quantdesk
mcp`` started as a subprocess on stdio.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from quantdesk.quant_core.research_context import create_context
from quantdesk.skills import list_skills
from quantdesk.tools import list_tools, run_tool, tool_names
from quantdesk.tools.mcp_server import SERVER_NAME, build_server

DEMO = {"kind": "demo", "n_symbols": 12, "n_sessions": 700}
ZERO_COSTS = {"commission_bps": 0.0, "half_spread_bps": 0.0, "slippage_bps": 0.0}


def _with_client(test: Callable[[Client], Awaitable[None]], mode: str = "auto") -> None:
    async def main() -> None:
        async with Client(build_server(), mode=mode) as client:
            await test(client)

    anyio.run(main)


def _envelope(result: Any) -> dict[str, Any]:
    """The envelope of a tool result, checked to be the same as structured content and text."""
    assert len(result.content) == 1
    assert result.content[0].type == "text"
    text = json.loads(result.content[0].text)
    assert text == result.structured_content
    assert result.is_error is (not text["ok"])
    return text


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_every_tool_is_listed_with_its_schemas(mode: str) -> None:
    specs = {spec.name: spec for spec in list_tools()}

    async def check(client: Client) -> None:
        assert client.server_info is not None
        assert client.server_info.name == SERVER_NAME
        assert "error.fix" in (client.instructions or "")
        listed = (await client.list_tools()).tools
        assert [t.name for t in listed] == tool_names()
        for tool in listed:
            spec = specs[tool.name]
            assert tool.input_schema == spec.input_schema()
            assert tool.output_schema == spec.output_schema()
            assert tool.title == spec.summary
            assert spec.description in (tool.description or "")
            assert tool.annotations is not None
            assert tool.annotations.open_world_hint is False
            assert (tool.meta or {})["quantdesk/guardrails"] == list(spec.guardrails)

    _with_client(check, mode)


def test_annotations_mark_the_tools_that_record() -> None:
    async def check(client: Client) -> None:
        hints = {t.name: t.annotations for t in (await client.list_tools()).tools}
        for name in ("fetch_prices", "deflated_sharpe", "pbo", "list_trials"):
            assert hints[name].read_only_hint, name
            assert hints[name].idempotent_hint, name
        for name in ("walk_forward_cv", "backtest", "risk_report", "evaluate_holdout"):
            assert not hints[name].read_only_hint, name
            assert not hints[name].idempotent_hint, name

    _with_client(check)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_a_successful_call_returns_the_envelope(mode: str) -> None:
    request = {"stats": {"sharpe": 1.1, "units": "annualized", "n_obs": 1260}}

    async def check(client: Client) -> None:
        result = await client.call_tool("deflated_sharpe", request)
        envelope = _envelope(result)
        assert envelope["ok"] is True
        assert envelope["error"] is None
        assert envelope["tool"] == "deflated_sharpe"
        dsr = envelope["result"]["deflated_sharpe"]
        assert dsr["n_trials"] == 1.0
        assert dsr["passes_0_95"] is True
        direct = run_tool("deflated_sharpe", request).to_json_dict()
        assert envelope["result"] == direct["result"]
        assert envelope["provenance"]["context_name"] == "default"

    _with_client(check, mode)


def test_a_data_tool_runs_on_the_demo_market() -> None:
    async def check(client: Client) -> None:
        request = {"source": DEMO, "as_of": "2017-06-30", "preview_rows": 1}
        envelope = _envelope(await client.call_tool("fetch_prices", request))
        assert envelope["ok"] is True
        assert envelope["result"]["n_symbols"] == 12
        assert envelope["result"]["last_date"] == "2017-06-30"
        assert envelope["provenance"]["data_hash"]
        assert {g["name"]: g["outcome"] for g in envelope["guardrails"]}["as_of"] == "passed"

    _with_client(check)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_a_refused_call_is_a_tool_result_the_model_can_read(mode: str) -> None:
    request = {"source": DEMO, "as_of": "2017-06-30", "costs": ZERO_COSTS}

    async def check(client: Client) -> None:
        result = await client.call_tool("backtest", request)
        assert result.is_error is True
        envelope = _envelope(result)
        assert envelope["ok"] is False
        assert envelope["result"] is None
        assert envelope["error"]["kind"] == "refused"
        assert envelope["error"]["guardrail"] == "costs"
        assert "gross_study" in envelope["error"]["fix"]
        assert {"name": "costs", "outcome": "refused"}.items() <= envelope["guardrails"][0].items()
        listed = await client.call_tool("list_trials", {})
        assert _envelope(listed)["result"]["n_trials"] == 0  # a refusal records nothing

    _with_client(check, mode)


def test_a_holdout_violation_is_refused() -> None:
    create_context(
        "mcp-holdout",
        as_of=date(2017, 6, 30),
        holdout=(date(2017, 1, 2), None),
    )

    async def check(client: Client) -> None:
        request = {"context": "mcp-holdout", "source": DEMO}
        envelope = _envelope(await client.call_tool("fetch_prices", request))
        assert envelope["error"]["kind"] == "refused"
        assert envelope["error"]["guardrail"] == "holdout"
        assert envelope["provenance"]["context_name"] == "mcp-holdout"

    _with_client(check)


def test_a_bad_request_is_reported_by_the_tool_not_by_mcp() -> None:
    async def check(client: Client) -> None:
        bad_type = _envelope(await client.call_tool("fetch_prices", {"source": "prices.csv"}))
        assert bad_type["error"]["kind"] == "bad_input"
        assert bad_type["error"]["field"] == "source"
        unknown = _envelope(
            await client.call_tool("fetch_prices", {"source": DEMO, "as_of": "2017-06-30", "x": 1})
        )
        assert unknown["error"]["field"] == "x"
        assert "remove 'x'" in unknown["error"]["fix"]
        missing = _envelope(await client.call_tool("deflated_sharpe", None))
        assert missing["error"]["kind"] == "bad_input"

    _with_client(check)


def test_every_example_request_validates_against_the_output_schema() -> None:
    # the client checks structured content against the tool's outputSchema on success
    create_context(
        "momentum-2019", as_of=date(2020, 6, 30), holdout=(date(2019, 7, 1), date(2020, 6, 30))
    )

    async def check(client: Client) -> None:
        for spec in list_tools():
            result = await client.call_tool(spec.name, spec.example)
            envelope = _envelope(result)
            assert envelope["ok"], (spec.name, envelope["error"])
            assert envelope["tool"] == spec.name

    _with_client(check)


def test_an_unknown_tool_is_an_error_result() -> None:
    async def check(client: Client) -> None:
        result = await client.call_tool("no_such_tool", {})
        assert result.is_error is True
        assert "no_such_tool" in result.content[0].text

    _with_client(check)


def test_concurrent_calls_all_answer() -> None:
    requests = [{"stats": {"sharpe": s, "n_obs": 500}} for s in (0.5, 1.0, 1.5, 2.0)]

    async def check(client: Client) -> None:
        results: dict[float, dict[str, Any]] = {}

        async def call(request: dict[str, Any]) -> None:
            envelope = _envelope(await client.call_tool("deflated_sharpe", request))
            results[request["stats"]["sharpe"]] = envelope

        async with anyio.create_task_group() as group:
            for request in requests:
                group.start_soon(call, request)
        assert sorted(results) == [0.5, 1.0, 1.5, 2.0]
        assert all(e["ok"] for e in results.values())
        assert results[2.0]["result"]["deflated_sharpe"]["sharpe_annualised"] == pytest.approx(2.0)

    _with_client(check)


def test_the_skills_are_resources() -> None:
    skills = {s.name: s for s in list_skills()}

    async def check(client: Client) -> None:
        listed = (await client.list_resources()).resources
        uris = {str(r.uri): r for r in listed}
        for name, skill in skills.items():
            resource = uris[f"quantdesk://skills/{name}"]
            assert resource.mime_type == "text/markdown"
            assert resource.description == skill.description
        read = await client.read_resource("quantdesk://skills/walk-forward-cv")
        assert read.contents[0].text == skills["walk-forward-cv"].text

    _with_client(check)


def test_without_skills_there_are_no_resources() -> None:
    async def main() -> None:
        async with Client(build_server(skills=False)) as client:
            assert (await client.list_resources()).resources == []

    anyio.run(main)


def _server_command() -> tuple[str, list[str]]:
    """``quantdesk mcp`` when the command exists, else the same server through Python."""
    script = Path(sys.executable).with_name("quantdesk")
    if script.exists():
        usage = subprocess.run(
            [str(script), "--help"], capture_output=True, text=True, check=False, timeout=120
        ).stdout
        if any(line.strip().startswith("mcp ") for line in usage.splitlines()):
            return str(script), ["mcp"]
    code = "from quantdesk.tools.mcp_server import serve_stdio; serve_stdio()"
    return sys.executable, ["-c", code]


@pytest.mark.slow
def test_the_stdio_server_answers_a_real_client(tmp_path: Path) -> None:
    command, args = _server_command()
    params = StdioServerParameters(
        command=command,
        args=args,
        env={"QUANTDESK_HOME": os.environ["QUANTDESK_HOME"]},
        cwd=tmp_path,
    )

    async def main() -> None:
        with anyio.fail_after(120):
            await exchange()

    async def exchange() -> None:
        async with Client(params) as client:
            assert [t.name for t in (await client.list_tools()).tools] == tool_names()
            ok = _envelope(
                await client.call_tool("deflated_sharpe", {"stats": {"sharpe": 1.0, "n_obs": 750}})
            )
            assert ok["ok"] is True
            refused = await client.call_tool(
                "backtest", {"source": DEMO, "as_of": "2017-06-30", "costs": ZERO_COSTS}
            )
            assert refused.is_error is True
            assert _envelope(refused)["error"]["guardrail"] == "costs"

    anyio.run(main)
