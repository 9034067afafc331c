"""The research graph's own overhead in a full offline demo session, and the demo's wall time.

Usage (from the repository root)::

    PYTHONSAFEPATH=1 .venv/bin/python benchmarks/bench_graph.py             # 3 sessions + CLI
    PYTHONSAFEPATH=1 .venv/bin/python benchmarks/bench_graph.py --no-cli    # sessions only

Sessions: ``--sessions`` child processes (default 3), one after the other. Each runs the demo
session exactly as ``quantdesk demo`` does after start-up -- the FICTIONAL sample filings
ingested into a MiniLM filing index, then the offline model on the demo question with every
tool call on one :class:`~quantdesk.agents.research.runtime.ToolThread` and the SQLite
checkpointer of :func:`~quantdesk.agents.research.sessions.session_checkpointer`, then the HTML
report -- under a fresh temporary ``QUANTDESK_HOME`` (zero trials, as a first demo), and then a
second, warm session in the same process (new home again) for comparison. Modules are
imported before the clock starts (that is process start-up, timed by the CLI part).

A session's graph run (``arun_research``, checkpointer opening included) splits into:

* **tools**: time inside ``run_tool`` on the tool thread, summed over the calls;
* **model**: time inside the offline model's ``request``, summed over its calls;
* **graph overhead**: the rest -- graph build (tool definitions with their JSON schemas,
  compilation), the research context lookup, LangGraph's scheduling, checkpoint writes (state
  serialisation included; ``aput`` + ``aput_writes``, synchronous durability), hand-offs to the
  tool thread, envelope serialisation in the tools node, and our node code (rule critic, risk
  rules, decision, markdown report). Build, checkpoints and hand-offs are also shown apart.

CLI part: ``quantdesk demo`` as a subprocess under a fresh ``QUANTDESK_HOME`` (cold: MiniLM
loads, the 14 passages are embedded) and again in the same home (warm: the embedding cache
answers, MiniLM loads for the query instead), wall time from the parent.

Targets (exit status 1 when missed), on each fresh-process session: the demo (ingest + graph
run + HTML) under 120 s, and the graph overhead under 5% of it; the CLI runs under 120 s. The
overhead's share of the graph run alone is printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _panel

# Imported up front so that a session's wall time holds no module import (process start-up).
import langgraph.checkpoint.sqlite.aio  # noqa: F401

import quantdesk.agents.research.graph as graph
from quantdesk.agents.messages import ModelRequest, ModelResponse
from quantdesk.agents.offline_model import OfflineModel
from quantdesk.agents.research.report_html import render_report_html
from quantdesk.agents.research.runtime import ToolThread, ingest_demo_filings
from quantdesk.agents.research.sessions import session_checkpointer
from quantdesk.cli.research_command import DEMO_QUESTION
from quantdesk.tools import run_tool
from quantdesk.tools.filing_tools import forget_filing_indexes

SESSION_TARGET_S = 120.0
OVERHEAD_TARGET = 0.05


class TimedModel:
    """The offline model, with the time spent in its ``request`` summed."""

    def __init__(self) -> None:
        self.inner = OfflineModel()
        self.model_id = self.inner.model_id
        self.seconds = 0.0
        self.calls = 0

    async def request(self, req: ModelRequest) -> ModelResponse:
        start = time.perf_counter()
        try:
            return await self.inner.request(req)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1

    def stream(self, req: ModelRequest) -> Any:
        return self.inner.stream(req)


def _timed(fn: Callable[..., Awaitable[Any]], totals: dict[str, float], key: str) -> Any:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - start
            totals[key + "_n"] += 1

    return wrapper


async def _session(tools: Any, model: TimedModel, home: Path, totals: dict[str, float]) -> Any:
    build = graph.build_research_graph

    def timed_build(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return build(*args, **kwargs)
        finally:
            totals["build"] += time.perf_counter() - start

    graph.build_research_graph = timed_build  # type: ignore[assignment]
    try:
        async with session_checkpointer(home / "sessions.sqlite") as saver:
            saver.aput = _timed(saver.aput, totals, "checkpoint")  # type: ignore[method-assign]
            saver.aput_writes = _timed(saver.aput_writes, totals, "checkpoint")  # type: ignore[method-assign]
            return await graph.arun_research(
                DEMO_QUESTION, model=model, thread_id="bench", checkpointer=saver, tool_runner=tools
            )
    finally:
        graph.build_research_graph = build


def run_session(index: int) -> dict[str, Any]:
    """One demo session under a fresh QUANTDESK_HOME; the split of its wall time."""
    home = Path(tempfile.mkdtemp(prefix=f"qd-bench-graph-{index}-"))
    os.environ["QUANTDESK_HOME"] = str(home)
    thread = ToolThread()
    tool_seconds: list[float] = []

    def timed_tool(name: str, payload: dict[str, Any]) -> Any:
        start = time.perf_counter()
        try:
            return run_tool(name, payload)
        finally:
            tool_seconds.append(time.perf_counter() - start)

    outer: list[float] = []
    envelope_json: list[float] = []

    class TimedEnvelope:
        """The envelope, timing the node's ``to_json_dict`` (counted as overhead)."""

        def __init__(self, envelope: Any) -> None:
            self.envelope = envelope

        def to_json_dict(self) -> dict[str, Any]:
            start = time.perf_counter()
            try:
                return dict(self.envelope.to_json_dict())
            finally:
                envelope_json.append(time.perf_counter() - start)

    def runner(name: str, payload: dict[str, Any]) -> Any:
        start = time.perf_counter()
        try:
            return TimedEnvelope(thread.run(timed_tool, name, payload))
        finally:
            outer.append(time.perf_counter() - start)

    try:
        start = time.perf_counter()
        ingested = thread.run(ingest_demo_filings)
        ingest = time.perf_counter() - start
        model = TimedModel()
        totals = {"checkpoint": 0.0, "checkpoint_n": 0.0, "build": 0.0}
        start = time.perf_counter()
        outcome = asyncio.run(_session(runner, model, home, totals))
        wall = time.perf_counter() - start
        start = time.perf_counter()
        page = render_report_html(outcome.state)
        html_seconds = time.perf_counter() - start
    finally:
        thread.close()
        forget_filing_indexes()
    tools = sum(tool_seconds)
    overhead = wall - tools - model.seconds
    return {
        "session": index,
        "decision": outcome.decision,
        "tool_calls": len(tool_seconds),
        "model_calls": model.calls,
        "wall": wall,
        "tools": tools,
        "model": model.seconds,
        "overhead": overhead,
        "overhead_share": overhead / wall,
        "checkpoint": totals["checkpoint"],
        "checkpoint_writes": int(totals["checkpoint_n"]),
        "handoff": sum(outer) - tools,
        "envelope_json": sum(envelope_json),
        "build": totals["build"],
        "state_kb": len(json.dumps(outcome.state)) / 1024,
        "ingest": ingest,
        "demo": ingest + wall + html_seconds,
        "embedded": ingested.embedded,
        "html": html_seconds,
        "html_kb": len(page) / 1024,
    }


def run_cli(home: Path) -> float:
    """Wall time of ``quantdesk demo`` as a subprocess under ``home``."""
    env = {**os.environ, "QUANTDESK_HOME": str(home)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "quantdesk.cli.main", "demo"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0 or "decision accept" not in done.stdout:
        raise SystemExit(f"quantdesk demo failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall


def child(index: int) -> None:
    """Run the fresh-process session and a warm one after it; print their splits as JSON."""
    results = [run_session(index), run_session(index)]
    results[0]["kind"], results[1]["kind"] = "fresh process", "warm (2nd in process)"
    print(json.dumps(results))


def run_child(index: int) -> list[dict[str, Any]]:
    """:func:`child` in a new interpreter."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(index)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONSAFEPATH": "1"},
    )
    if done.returncode != 0:
        raise SystemExit(f"child {index} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def _print_sessions(results: list[dict[str, Any]]) -> None:
    print("\nDemo sessions (seconds; overhead = wall - tools - model; build and checkpoints are")
    print("parts of the overhead)")
    _panel.print_table(
        ["session", "wall", "tools", "model", "overhead", "share", "build", "checkpoints",
         "writes", "hand-off", "to JSON", "rest"],
        [
            [
                f"{r['session']} {r['kind']}",
                f"{r['wall']:.2f}",
                f"{r['tools']:.2f}",
                f"{r['model']:.3f}",
                f"{r['overhead']:.3f}",
                f"{r['overhead_share']:.1%}",
                f"{r['build']:.3f}",
                f"{r['checkpoint']:.3f}",
                r["checkpoint_writes"],
                f"{r['handoff']:.3f}",
                f"{r['envelope_json']:.3f}",
                f"{r['overhead'] - r['build'] - r['checkpoint'] - r['handoff']:.3f}",
            ]
            for r in results
        ],
    )  # fmt: skip
    print("\nApart from the session (seconds)")
    _panel.print_table(
        ["session", "filing ingest", "embedded", "HTML report", "HTML KiB", "state KiB", "calls"],
        [
            [
                f"{r['session']} {r['kind']}",
                f"{r['ingest']:.2f}",
                r["embedded"],
                f"{r['html']:.3f}",
                f"{r['html_kb']:.0f}",
                f"{r['state_kb']:.0f}",
                f"{r['tool_calls']} tools / {r['model_calls']} model",
            ]
            for r in results
        ],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sessions", type=int, default=3, help="Child processes (sessions).")
    parser.add_argument("--no-cli", action="store_true", help="Skip the CLI part.")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return 0
    for line in _panel.machine_lines():
        print(line)
    results = [r for i in range(args.sessions) for r in run_child(i + 1)]
    _print_sessions(results)
    fresh = [r for r in results if r["kind"] == "fresh process"]
    warm = [r for r in results if r["kind"] != "fresh process"]

    def median(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    print(
        f"\noverhead share, median: fresh process {median(fresh, 'overhead_share'):.1%}, warm "
        f"{median(warm, 'overhead_share'):.1%}; absolute: fresh {median(fresh, 'overhead'):.3f} "
        f"s, warm {median(warm, 'overhead'):.3f} s"
    )
    print("\nThe demo session as `quantdesk demo` runs it after start-up: filing ingest + graph")
    print("session + HTML report (fresh processes); targets: < 120 s, graph overhead < 5%")
    _panel.print_table(
        ["session", "demo wall", "graph overhead", "share of the demo", "share of the graph run"],
        [
            [
                r["session"],
                f"{r['demo']:.2f}",
                f"{r['overhead']:.3f}",
                f"{r['overhead'] / r['demo']:.1%}",
                f"{r['overhead_share']:.1%}",
            ]
            for r in fresh
        ],
    )
    failures = [
        f"session {r['session']} ({r['kind']}): {what}"
        for r in results
        for what, bad in (
            (
                f"demo wall {r['demo']:.1f} s >= {SESSION_TARGET_S:.0f} s",
                r["demo"] >= SESSION_TARGET_S,
            ),
            (
                f"graph overhead {r['overhead'] / r['demo']:.1%} of the demo >= 5%",
                r["kind"] == "fresh process" and r["overhead"] / r["demo"] >= OVERHEAD_TARGET,
            ),
            (f"decision {r['decision']}", r["decision"] != "accept"),
        )
        if bad
    ]
    if not args.no_cli:
        home = Path(tempfile.mkdtemp(prefix="qd-bench-graph-cli-"))
        cold, warm_cli = run_cli(home), run_cli(home)
        print("\n`quantdesk demo` subprocess (seconds, from the parent)")
        _panel.print_table(
            ["run", "wall"], [["cold home", f"{cold:.2f}"], ["warm home", f"{warm_cli:.2f}"]]
        )
        failures += [
            f"quantdesk demo {name} {wall:.1f} s >= {SESSION_TARGET_S:.0f} s"
            for name, wall in (("cold", cold), ("warm", warm_cli))
            if wall >= SESSION_TARGET_S
        ]
    for failure in failures:
        print("TARGET MISSED:", failure)
    print("\nall targets met" if not failures else "")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
