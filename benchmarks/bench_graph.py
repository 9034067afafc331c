"""The research graph's own overhead in a full offline demo session, and the demo's wall time.

Usage (from the repository root)::

    PYTHONSAFEPATH=1 .venv/bin/python benchmarks/bench_graph.py             # 3 sessions + CLI
    PYTHONSAFEPATH=1 .venv/bin/python benchmarks/bench_graph.py --no-cli    # sessions only
    PYTHONSAFEPATH=1 .venv/bin/python benchmarks/bench_graph.py --no-cli --profile 40
    PYTHONSAFEPATH=1 .venv/bin/python benchmarks/bench_graph.py --no-cli --saver aiosqlite

Sessions: ``--sessions`` child processes (default 3), one after the other. Each runs the demo
session exactly as ``quantdesk demo`` does after start-up -- the FICTIONAL sample filings
ingested into a MiniLM filing index, then the offline model on the demo question with every
tool call on one :class:`~quantdesk.agents.research.runtime.ToolThread` (passed to the graph
as the CLI passes it) and the SQLite checkpointer of
:func:`~quantdesk.agents.research.sessions.session_checkpointer`, then the HTML report --
under a fresh temporary ``QUANTDESK_HOME`` (zero trials, as a first demo), and then a second,
warm session in the same process (new home again).

What is inside the clock. Modules are imported before it starts, for the graph and the tools
alike: the graph's modules (LangGraph, the nodes) and the tool modules, whose import registers
the tools (their pydantic models; the time is printed apart); that is process start-up, timed
by the CLI part. The tool functions' own lazy imports (polars, numpy) stay in the tools. The
filing ingest's writes are flushed (``os.sync``, counted in the ingest) before the clock, or
the session's first fsync would wait for them on ext4, in whichever column it falls.

The **graph run** is ``arun_research`` with the session store opened and closed around it
(as ``arun_session`` does), on a fresh event loop. It splits into:

* **tools**: time inside ``run_tool`` on the tool thread, summed over the calls;
* **model**: time inside the offline model's ``request``, summed over its calls;
* **graph overhead**: the rest. Its parts, measured by wrappers installed here (none in the
  library): *build* (``build_research_graph``: tool definitions, compile); *context* (the
  research context lookup, which creates the trial registry in a fresh home); *saver* (opening
  and closing the session store); *checkpoints* (time any of ``aput``, ``aput_writes``,
  ``aget_tuple`` is in flight: LangGraph starts ``aput_writes`` in the background and
  ``aput`` waits for it, so their times are not summed); *node code* (each node method's time
  less the model's and the runner's inside it; *to JSON*, the envelope's ``to_json_dict`` in
  the tools node, apart); *hand-off* (the runner's time less the tool's: the trip to the tool
  thread and back); *loop* (event loop start and stop); *stepping* (the rest: LangGraph's own
  scheduling between nodes, and the event loop waking for the saver's thread).

Target (exit status 1 when missed), as the issue states it for "a full demo session": the
graph overhead under 5% of the graph run in every fresh-process session (what `quantdesk demo`
is: one session in a new process), and the demo (ingest + graph run + HTML) and the CLI runs
under 120 s. Printed beside it, not checked: the overhead's share of the whole demo session
(ingest included), and the warm sessions (a second session in the same process, on a new
home: the tools are about twice as fast there, so the same ~45 ms of fixed cost is a larger
share; a chat's later turns are in this regime).

``--profile N`` prints the N most expensive functions (own time, cProfile) of one more graph
run in each child, on the main thread. ``--saver aiosqlite`` runs the sessions on
``AsyncSqliteSaver`` (aiosqlite's worker thread; same file and pragmas) for comparison with the
library's checkpointer, which answers the async API on the event loop's thread.

CLI part: ``quantdesk demo`` as a subprocess under a fresh ``QUANTDESK_HOME`` (cold: MiniLM
loads, the 14 passages are embedded) and again in the same home (warm: the embedding cache
answers, MiniLM loads for the query instead), wall time from the parent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import inspect
import io
import json
import os
import pstats
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _panel

# Imported up front so that a session's wall time holds no module import (process start-up).
import langgraph.checkpoint.sqlite.aio  # noqa: F401

import quantdesk.agents.research.graph as graph
import quantdesk.agents.research.nodes as nodes
from quantdesk.agents.messages import ModelRequest, ModelResponse
from quantdesk.agents.offline_model import OfflineModel
from quantdesk.agents.research.report_html import render_report_html
from quantdesk.agents.research.runtime import ToolThread, ingest_demo_filings
from quantdesk.agents.research.sessions import session_checkpointer
from quantdesk.cli.research_command import DEMO_QUESTION
from quantdesk.tools import list_tools, run_tool
from quantdesk.tools.filing_tools import forget_filing_indexes

SESSION_TARGET_S = 120.0
OVERHEAD_TARGET = 0.05


@contextlib.asynccontextmanager
async def aiosqlite_checkpointer(path: Path) -> AsyncIterator[Any]:
    """For comparison: ``AsyncSqliteSaver`` (aiosqlite's worker thread) with the same pragmas.

    The library's :func:`session_checkpointer` answers the async API on the event loop's
    thread instead; this is what it replaced.
    """
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        await saver.conn.execute("PRAGMA synchronous=NORMAL")
        await saver.setup()
        yield saver


SAVERS: dict[str, Callable[[Path], Any]] = {
    "session": session_checkpointer,
    "aiosqlite": aiosqlite_checkpointer,
}


class Probe:
    """Seconds (and counts) per part of a session, summed by the wrappers below."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)
        self.in_flight, self.since = 0, 0.0

    def add(self, key: str, seconds: float) -> None:
        self.seconds[key] += seconds
        self.count[key] += 1

    def inner(self) -> float:
        """Time spent so far in the model and in the tool runner (hand-off included)."""
        return self.seconds["model"] + self.seconds["runner"]

    def wrap_async(self, fn: Callable[..., Awaitable[Any]], key: str) -> Any:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                self.add(key, time.perf_counter() - start)

        return wrapper

    def wrap_saver(self, fn: Callable[..., Awaitable[Any]], key: str) -> Any:
        """A checkpointer method; ``key`` sums the time any of them is in flight.

        LangGraph starts ``aput_writes`` in the background and ``aput`` then waits for the
        saver's lock: summing each call's time would count that wait twice.
        """

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not self.in_flight:
                self.since = time.perf_counter()
            self.in_flight += 1
            try:
                return await fn(*args, **kwargs)
            finally:
                self.in_flight -= 1
                self.count[fn.__name__] += 1
                if not self.in_flight:
                    self.seconds[key] += time.perf_counter() - self.since

        return wrapper

    def wrap_sync(self, fn: Callable[..., Any], key: str) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(key, time.perf_counter() - start)

        return wrapper

    def wrap_node(self, fn: Callable[..., Any]) -> Any:
        """A node method, timing its own code: the model's and the runner's time taken out."""
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def node(*args: Any, **kwargs: Any) -> Any:
                start, inner = time.perf_counter(), self.inner()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    self.add("nodes", time.perf_counter() - start - (self.inner() - inner))

            return node

        @functools.wraps(fn)
        def sync_node(*args: Any, **kwargs: Any) -> Any:
            start, inner = time.perf_counter(), self.inner()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add("nodes", time.perf_counter() - start - (self.inner() - inner))

        return sync_node


class TimedModel:
    """The offline model, with the time spent in its ``request`` summed (``model``)."""

    def __init__(self, probe: Probe) -> None:
        self.inner = OfflineModel()
        self.model_id = self.inner.model_id
        self.probe = probe

    async def request(self, req: ModelRequest) -> ModelResponse:
        start = time.perf_counter()
        try:
            return await self.inner.request(req)
        finally:
            self.probe.add("model", time.perf_counter() - start)

    def stream(self, req: ModelRequest) -> Any:
        return self.inner.stream(req)


NODE_METHODS = ("plan", "researcher", "tools_node", "critic", "risk", "decide", "holdout", "report")


@contextlib.contextmanager
def instrumented(probe: Probe) -> Iterator[None]:
    """Time the graph's parts: build (tool definitions apart), context lookup, node code."""
    saved = {
        "build": graph.build_research_graph,
        "context": graph.context_state,
        "init": nodes.ResearchNodes.__init__,
        **{name: getattr(nodes.ResearchNodes, name) for name in NODE_METHODS},
    }
    graph.build_research_graph = probe.wrap_sync(saved["build"], "build")  # type: ignore[assignment]
    graph.context_state = probe.wrap_sync(saved["context"], "context")  # type: ignore[assignment]
    nodes.ResearchNodes.__init__ = probe.wrap_sync(saved["init"], "tool_defs")  # type: ignore[method-assign]
    for name in NODE_METHODS:
        setattr(nodes.ResearchNodes, name, probe.wrap_node(saved[name]))
    try:
        yield
    finally:
        graph.build_research_graph = saved["build"]  # type: ignore[assignment]
        graph.context_state = saved["context"]  # type: ignore[assignment]
        nodes.ResearchNodes.__init__ = saved["init"]  # type: ignore[method-assign]
        for name in NODE_METHODS:
            setattr(nodes.ResearchNodes, name, saved[name])


async def _session(tools: Any, model: TimedModel, home: Path, probe: Probe, saver_kind: str) -> Any:
    probe.add("loop_start", time.perf_counter() - probe.seconds.pop("clock"))
    start = time.perf_counter()
    checkpointer = SAVERS[saver_kind](home / "sessions.sqlite")
    saver = await checkpointer.__aenter__()
    probe.add("saver_open", time.perf_counter() - start)
    try:
        for method in ("aput", "aput_writes", "aget_tuple"):
            setattr(saver, method, probe.wrap_saver(getattr(saver, method), "checkpoint"))
        with instrumented(probe):
            return await graph.arun_research(
                DEMO_QUESTION, model=model, thread_id="bench", checkpointer=saver, tool_runner=tools
            )
    finally:
        start = time.perf_counter()
        await checkpointer.__aexit__(None, None, None)
        probe.add("saver_close", time.perf_counter() - start)
        probe.seconds["clock"] = time.perf_counter()


def _stored_kib(path: Path) -> tuple[float, float]:
    """The largest checkpoint in the session file, and all checkpoint and write bytes (KiB)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        largest, total = conn.execute(
            "SELECT max(length(checkpoint)), sum(length(checkpoint)) FROM checkpoints"
        ).fetchone()
        writes = conn.execute("SELECT coalesce(sum(length(value)), 0) FROM writes").fetchone()[0]
    return largest / 1024, (total + writes) / 1024


def run_session(
    index: int, saver_kind: str = "session", profile: cProfile.Profile | None = None
) -> dict[str, Any]:
    """One demo session under a fresh QUANTDESK_HOME; the split of its wall time.

    With ``profile``, the graph run is profiled (and so slowed down).
    """
    home = Path(tempfile.mkdtemp(prefix=f"qd-bench-graph-{index}-"))
    os.environ["QUANTDESK_HOME"] = str(home)
    probe = Probe()

    class TimedEnvelope:
        """The envelope, timing the node's ``to_json_dict`` (node code, so overhead)."""

        def __init__(self, envelope: Any) -> None:
            self.envelope = envelope

        def to_json_dict(self) -> dict[str, Any]:
            start = time.perf_counter()
            try:
                return dict(self.envelope.to_json_dict())
            finally:
                probe.add("to_json", time.perf_counter() - start)

    def timed_tool(name: str, payload: dict[str, Any]) -> Any:
        start = time.perf_counter()
        try:
            return TimedEnvelope(run_tool(name, payload))
        finally:
            probe.add("tools", time.perf_counter() - start)

    class TimedToolThread(ToolThread):
        """The session's tool thread (as the CLI passes it), timing each call from the node."""

        async def acall(self, name: str, payload: dict[str, Any]) -> Any:
            start = time.perf_counter()
            try:
                return await super().acall(name, payload)
            finally:
                probe.add("runner", time.perf_counter() - start)

    thread = TimedToolThread(timed_tool)
    try:
        start = time.perf_counter()
        ingested = thread.run(ingest_demo_filings)
        # The ingest leaves megabytes of index files unwritten; on ext4 the session's first
        # fsync (the trial registry's creation) would wait for all of them. Written back here,
        # that time counts in the ingest, where it belongs.
        os.sync()
        ingest = time.perf_counter() - start
        model = TimedModel(probe)
        if profile is not None:
            profile.enable()
        start = probe.seconds["clock"] = time.perf_counter()
        outcome = asyncio.run(_session(thread, model, home, probe, saver_kind))
        end = time.perf_counter()
        if profile is not None:
            profile.disable()
        wall = end - start
        probe.add("loop_stop", end - probe.seconds.pop("clock"))
        start = time.perf_counter()
        page = render_report_html(outcome.state)
        html_seconds = time.perf_counter() - start
    finally:
        thread.close()
        forget_filing_indexes()
    stored = _stored_kib(home / "sessions.sqlite")
    sec, cnt = probe.seconds, probe.count
    tools, model_s = sec["tools"], sec["model"]
    overhead = wall - tools - model_s
    parts = {
        "build": sec["build"],
        "tool_defs": sec["tool_defs"],
        "context": sec["context"],
        "saver": sec["saver_open"] + sec["saver_close"],
        "checkpoint": sec["checkpoint"],
        "nodes": sec["nodes"] - sec["to_json"],
        "to_json": sec["to_json"],
        "handoff": sec["runner"] - tools,
        "loop": sec["loop_start"] + sec["loop_stop"],
    }
    named = sum(v for k, v in parts.items() if k != "tool_defs")
    return {
        "session": index,
        "decision": outcome.decision,
        "tool_calls": cnt["tools"],
        "model_calls": cnt["model"],
        "wall": wall,
        "tools": tools,
        "model": model_s,
        "overhead": overhead,
        "overhead_share": overhead / wall,
        "overhead_demo": overhead / (ingest + wall + html_seconds),
        **parts,
        "stepping": overhead - named,
        "checkpoint_writes": cnt["aput"] + cnt["aput_writes"],
        "checkpoint_reads": cnt["aget_tuple"],
        "checkpoint_kb": stored[0],
        "stored_kb": stored[1],
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


def child(index: int, saver_kind: str, profile_rows: int) -> None:
    """Run the fresh-process session and a warm one after it; print their splits as JSON.

    With ``profile_rows``, a third session is profiled and its top functions go to stderr.
    """
    # Process start-up, like the modules imported above: the tool modules register the tools
    # (pydantic models). Imported here, neither the graph build nor a tool's first call pays
    # for it inside the clock; the time is reported apart.
    start = time.perf_counter()
    list_tools()
    imports = time.perf_counter() - start
    results = [run_session(index, saver_kind), run_session(index, saver_kind)]
    results[0]["tool_imports"], results[1]["tool_imports"] = imports, 0.0
    results[0]["kind"], results[1]["kind"] = "fresh process", "warm (2nd in process)"
    if profile_rows:
        profile = cProfile.Profile()
        profiled = run_session(index, saver_kind, profile)
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(profile_rows)
        print(f"{PROFILE_MARK} child {index}, graph run {profiled['wall']:.3f} s under cProfile")
        print(PROFILE_MARK, text.getvalue(), PROFILE_MARK, file=sys.stderr, sep="\n")
    print(json.dumps(results))


PROFILE_MARK = "=== profile"


def run_child(index: int, saver_kind: str, profile_rows: int) -> list[dict[str, Any]]:
    """:func:`child` in a new interpreter (its profile, if any, printed here)."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(index), "--saver", saver_kind,
         "--profile", str(profile_rows)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONSAFEPATH": "1"},
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"child {index} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    if profile_rows:
        profile = done.stderr.split(PROFILE_MARK)
        print("\n" + next(line for line in lines if line.startswith(PROFILE_MARK)))
        print(profile[1] if len(profile) > 2 else done.stderr[-3000:])
    return list(json.loads(lines[-1]))


def _print_sessions(results: list[dict[str, Any]]) -> None:
    print("\nGraph runs (seconds): overhead = graph run - tools - model")
    _panel.print_table(
        ["session", "graph run", "tools", "model", "overhead", "share of the graph run"],
        [
            [
                f"{r['session']} {r['kind']}",
                f"{r['wall']:.3f}",
                f"{r['tools']:.3f}",
                f"{r['model']:.4f}",
                f"{r['overhead']:.4f}",
                f"{r['overhead_share']:.2%}",
            ]
            for r in results
        ],
    )
    print("\nThe overhead by part (milliseconds; see the module docstring)")
    _panel.print_table(
        ["session", "build", "context", "saver open+close", "checkpoints", "writes+reads",
         "node code", "to JSON", "hand-off", "loop", "stepping"],
        [
            [
                f"{r['session']} {r['kind']}",
                *(f"{1000 * r[key]:.1f}" for key in ("build", "context", "saver", "checkpoint")),
                f"{r['checkpoint_writes']}+{r['checkpoint_reads']}",
                *(
                    f"{1000 * r[key]:.1f}"
                    for key in ("nodes", "to_json", "handoff", "loop", "stepping")
                ),
            ]
            for r in results
        ],
    )  # fmt: skip
    print("\nApart from the graph run")
    _panel.print_table(
        ["session", "tool modules import ms", "filing ingest s", "embedded", "HTML report s",
         "largest checkpoint KiB", "stored KiB", "calls"],
        [
            [
                f"{r['session']} {r['kind']}",
                f"{1000 * r['tool_imports']:.1f}" if r["tool_imports"] else "-",
                f"{r['ingest']:.2f}",
                r["embedded"],
                f"{r['html']:.3f}",
                f"{r['checkpoint_kb']:.0f}",
                f"{r['stored_kb']:.0f}",
                f"{r['tool_calls']} tools / {r['model_calls']} model",
            ]
            for r in results
        ],
    )  # fmt: skip


def _failures(results: list[dict[str, Any]]) -> list[str]:
    return [
        f"session {r['session']} ({r['kind']}): {what}"
        for r in results
        for what, bad in (
            (
                f"graph overhead {r['overhead_share']:.2%} of the graph run >= 5%",
                r["kind"] == "fresh process" and r["overhead_share"] >= OVERHEAD_TARGET,
            ),
            (
                f"demo wall {r['demo']:.1f} s >= {SESSION_TARGET_S:.0f} s",
                r["demo"] >= SESSION_TARGET_S,
            ),
            (f"decision {r['decision']}", r["decision"] != "accept"),
        )
        if bad
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sessions", type=int, default=3, help="Child processes (sessions).")
    parser.add_argument("--no-cli", action="store_true", help="Skip the CLI part.")
    parser.add_argument(
        "--saver", choices=sorted(SAVERS), default="session", help="Checkpointer (what-if)."
    )
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="Print the top N functions."
    )
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.saver, args.profile)
        return 0
    for line in _panel.machine_lines():
        print(line)
    if args.saver != "session":
        print(f"WHAT-IF: checkpointer {args.saver!r}, not the library's session_checkpointer")
    results = [r for i in range(args.sessions) for r in run_child(i + 1, args.saver, args.profile)]
    _print_sessions(results)
    fresh = [r for r in results if r["kind"] == "fresh process"]
    warm = [r for r in results if r["kind"] != "fresh process"]
    print("\nThe demo session as `quantdesk demo` runs it after start-up: filing ingest + graph")
    print("run + HTML report (fresh processes)")
    _panel.print_table(
        ["session", "demo wall s", "graph overhead s", "share of the demo"],
        [
            [r["session"], f"{r['demo']:.2f}", f"{r['overhead']:.3f}", f"{r['overhead_demo']:.1%}"]
            for r in fresh
        ],
    )
    failures = _failures(results)
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
    load = os.getloadavg()
    print(f"\nload average at the end: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")

    def shares(rows: list[dict[str, Any]]) -> str:
        values = [r["overhead_share"] for r in rows]
        return f"median {statistics.median(values):.2%}, max {max(values):.2%}"

    print(
        f"\nHEADLINE graph overhead / graph run (target < 5% in every fresh-process session, "
        f"the demo): {shares(fresh)}; warm, second session in a process (not checked): "
        f"{shares(warm)}"
    )
    for failure in failures:
        print("TARGET MISSED:", failure)
    print("all targets met" if not failures else "")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
