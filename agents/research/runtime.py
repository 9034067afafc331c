"""What a research session runs on: its tool thread, its checkpointer and the demo's filings.

The CLI commands (``quantdesk research``, ``demo``, ``chat``), the tests and the graph benchmark
all run sessions the same way:

* :class:`ToolThread` runs every tool call of a session on one dedicated thread, one at a
  time and in order. The filing index works from any thread (it serialises its own calls),
  so this is for ordering, not for the index's SQLite connections.
* :func:`arun_session` runs (or resumes) a session on the checkpointer of
  ``QUANTDESK_HOME/sessions.sqlite``
  (:func:`~quantdesk.agents.research.sessions.session_checkpointer`).
* :func:`ingest_demo_filings` adds the FICTIONAL sample filings of the demo market
  (:mod:`quantdesk.rag.sample_filings`) to the default filing index and serves that index to
  the filing tools.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from quantdesk.agents.research.sessions import session_checkpointer, sessions_path

if TYPE_CHECKING:
    from quantdesk.agents.model import Model
    from quantdesk.agents.research.graph import ResearchOutcome
    from quantdesk.rag.results import IngestReport
    from quantdesk.tools import Envelope

__all__ = ["ToolThread", "arun_session", "ingest_demo_filings"]

_T = TypeVar("_T")


class ToolThread:
    """Runs a session's tool calls, one at a time, on one thread of its own.

    Use it as the graph's ``tool_runner``; :meth:`run` runs other work (the demo's filing
    ingestion) on the same thread, so it never overlaps a tool call.

    Args:
        tool: What a tool call runs, ``tool(name, payload) -> Envelope``; default
            ``quantdesk.tools.run_tool`` (the benchmark passes a timed one).
    """

    def __init__(self, tool: Callable[[str, dict[str, Any]], Envelope[Any]] | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quantdesk-tools")
        self._tool = tool

    def _tool_function(self) -> Callable[[str, dict[str, Any]], Envelope[Any]]:
        if self._tool is None:
            from quantdesk.tools import run_tool

            self._tool = run_tool
        return self._tool

    def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(*args)`` on the tool thread and return its result."""
        return self._pool.submit(fn, *args).result()

    def __call__(self, name: str, payload: dict[str, Any]) -> Envelope[Any]:
        """Run one tool call on the tool thread (blocking the caller)."""
        return self.run(self._tool_function(), name, payload)

    async def acall(self, name: str, payload: dict[str, Any]) -> Envelope[Any]:
        """Run one tool call on the tool thread, awaited without blocking a thread.

        The graph's tools node awaits this when it is the session's runner: the event loop
        waits on the tool thread itself instead of parking a worker thread on it.
        """
        future = self._pool.submit(self._tool_function(), name, payload)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Stop the thread (after the running call, if any)."""
        self._pool.shutdown(wait=True)


def ingest_demo_filings() -> IngestReport:
    """Add the fictional sample filings to the default filing index and serve it to the tools.

    Any thread may run it; the CLI runs it on the session's tool thread (:meth:`ToolThread.run`).

    Raises:
        InputError: the index folder was built with another embedding model.
    """
    from quantdesk.rag.index import FilingIndex
    from quantdesk.rag.sample_filings import ingest_sample_filings
    from quantdesk.tools.filing_tools import register_filing_index

    index = FilingIndex()
    report = ingest_sample_filings(index)
    # The tools would open the same folder again and load MiniLM a second time: hand them
    # this open index instead.
    register_filing_index(index)
    return report


async def arun_session(
    question: str,
    *,
    model: Model,
    context: str | None,
    thread: str,
    tool_runner: Callable[[str, dict[str, Any]], Envelope[Any]],
    **options: Any,
) -> ResearchOutcome:
    """Run (or resume) a session checkpointed in ``QUANTDESK_HOME/sessions.sqlite``.

    Args:
        question: The research question.
        model: The researcher's model.
        context: Research context id or name (``None``: the tools' default).
        thread: Session id; an existing one resumes.
        tool_runner: Runs each tool call (a :class:`ToolThread` in the CLI).
        **options: Further :func:`~quantdesk.agents.research.graph.arun_research` options.
    """
    from quantdesk.agents.research import arun_research

    async with session_checkpointer(sessions_path()) as saver:
        return await arun_research(
            question,
            model=model,
            context=context,
            thread_id=thread,
            checkpointer=saver,
            tool_runner=tool_runner,
            **options,
        )
