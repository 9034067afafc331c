"""Chat-driven research sessions: each message is a turn of one checkpointed research graph.

A :class:`ChatSession` holds a session id (a LangGraph thread in the
:class:`~quantdesk.agents.research.sessions.SessionStore`), a model and a research context.
:meth:`ChatSession.ask` runs the research graph for the question, or, on a session that already
answered one, a follow-up turn of the same graph (the question is appended to the
conversation; see :mod:`quantdesk.agents.research.turns`), and yields typed events as they
happen: nodes starting, the researcher's text deltas, tool calls starting and finishing, the
critic's review, the risk verdict, the decision, a holdout approval request, the end of the
turn. The events come from LangGraph's ``astream`` with the ``updates`` and ``custom`` stream
modes; the nodes write the custom events.

Every model call goes through a :class:`~quantdesk.agents.usage.UsageLedger` (saved with the
session, so ``/budget`` survives a restart); a :class:`~quantdesk.agents.usage.Budget` stops a
turn cleanly, and :meth:`ChatSession.resume_turn` finishes it after the budget was raised.
No user interface lives here: ``quantdesk chat`` (``cli/chat_command.py``) displays the events.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from langgraph.types import Command

from quantdesk.agents.model import Model
from quantdesk.agents.research import prompts
from quantdesk.agents.research.chat_events import (
    ChatEvent,
    NodeStarted,
    TurnEnded,
    custom_event,
    update_events,
)
from quantdesk.agents.research.graph import DURABILITY, build_research_graph, context_state
from quantdesk.agents.research.sessions import SessionStatus, SessionStore, session_status
from quantdesk.agents.usage import Budget, BudgetedModel, UsageLedger
from quantdesk.quant_core.errors import InputError

if TYPE_CHECKING:
    from langgraph.graph.state import CompiledStateGraph
    from langgraph.types import StateSnapshot

    from quantdesk.quant_core.trial_record import TrialRecord

__all__ = ["ChatSession"]


class ChatSession:
    """One research session driven by chat messages.

    Build it with :meth:`new` or :meth:`resume` inside an open
    :class:`~quantdesk.agents.research.sessions.SessionStore`.

    Args:
        store: The open session store (its checkpointer runs the graph).
        thread_id: Session id.
        model: The researcher's (and critic's) model.
        context: Research context state of a new session (``None`` when resuming: the
            checkpointed session has it).
        ledger: Usage ledger (tokens, cost, budget) of the session.
        **graph_options: Passed to :func:`~quantdesk.agents.research.graph.build_research_graph`
            (``rounds``, ``tools``, ``critic``, ``tool_runner``, ``max_steps``, ...).
    """

    def __init__(
        self,
        store: SessionStore,
        thread_id: str,
        *,
        model: Model,
        context: dict[str, Any] | None,
        ledger: UsageLedger,
        **graph_options: Any,
    ) -> None:
        self.store = store
        self.thread_id = thread_id
        self.model = model
        self.ledger = ledger
        self.hints: dict[str, Any] = {}
        self._context = context
        self._options = graph_options
        self._graph: CompiledStateGraph[Any, Any, Any, Any] | None = None

    @classmethod
    async def new(
        cls,
        store: SessionStore,
        *,
        model: Model,
        context: str | None = None,
        budget: Budget | None = None,
        thread_id: str | None = None,
        **graph_options: Any,
    ) -> ChatSession:
        """Start a session (nothing is saved until its first question).

        Args:
            store: The open session store.
            model: The model.
            context: Research context name or id; ``None``: the active one, else ``default``.
            budget: Token / dollar budget of the session.
            thread_id: Session id (default: a new random one).
            **graph_options: Graph options (see the class).

        Raises:
            InputError: unknown context, or ``thread_id`` already names a session.
        """
        thread_id = thread_id or uuid.uuid4().hex[:12]
        if await store.exists(thread_id):
            raise InputError(
                f"Session {thread_id!r} already exists.", fix=f"resume it: /resume {thread_id}."
            )
        return cls(
            store,
            thread_id,
            model=model,
            context=context_state(context),
            ledger=UsageLedger(budget),
            **graph_options,
        )

    @classmethod
    async def resume(
        cls,
        store: SessionStore,
        thread_id: str,
        *,
        model: Model,
        budget: Budget | None = None,
        **graph_options: Any,
    ) -> ChatSession:
        """Reopen a saved session (a chat or a ``quantdesk research`` session).

        Args:
            store: The open session store.
            thread_id: The session's id.
            model: Model for its next turns.
            budget: Replaces the saved budget when given.
            **graph_options: Graph options (see the class).

        Raises:
            InputError: no session has this id.
        """
        await store.info(thread_id)  # raises InputError with the known ids
        meta = await store.meta(thread_id)
        ledger = UsageLedger.from_dict(meta.ledger) if meta and meta.ledger else UsageLedger(budget)
        if budget is not None:
            ledger.budget = budget
        return cls(store, thread_id, model=model, context=None, ledger=ledger, **graph_options)

    # ------------------------------------------------------------------ state

    @property
    def model_id(self) -> str:
        """The model's id."""
        return self.model.model_id

    def graph(self) -> CompiledStateGraph[Any, Any, Any, Any]:
        """The research graph of this session (streams text, asks before the holdout)."""
        if self._graph is None:
            options = {"holdout_mode": "ask", **self._options, "stream": True}
            budgeted = BudgetedModel(self.model, self.ledger)
            self._graph = build_research_graph(
                budgeted,  # type: ignore[arg-type]
                checkpointer=self.store.saver,
                **options,
            )
        return self._graph

    @property
    def _config(self) -> dict[str, Any]:
        return {"configurable": {"thread_id": self.thread_id}}

    async def snapshot(self) -> StateSnapshot:
        """The session's latest graph snapshot."""
        return await self.graph().aget_state(self._config)  # type: ignore[arg-type]

    async def status(self) -> SessionStatus:
        """``new``, ``complete``, ``awaiting_approval`` or ``unfinished``."""
        return session_status(await self.snapshot())

    async def context(self) -> dict[str, Any]:
        """The session's research context (``id``, ``name``, ``as_of``, holdout, budget)."""
        values = (await self.snapshot()).values or {}
        return dict(values.get("context") or self._context or {})

    async def use_model(self, model: Model) -> None:
        """Use ``model`` for the next turns (saved with the session)."""
        self.model = model
        self._graph = None
        if await self.store.exists(self.thread_id):
            await self._save()

    def set_budget(self, budget: Budget) -> None:
        """Replace the session's budget (usage so far is kept)."""
        self.ledger.budget = budget

    def usage(self) -> dict[str, Any]:
        """Tokens, calls, cost and budget so far (:meth:`UsageLedger.summary`)."""
        return self.ledger.summary()

    async def _save(self) -> None:
        await self.store.save_meta(
            self.thread_id, model=self.model_id, ledger=self.ledger.to_dict()
        )

    # ------------------------------------------------------------------ turns

    async def ask(self, question: str) -> AsyncIterator[ChatEvent]:
        """Ask a question (the first) or a follow-up; yield the turn's events.

        Raises:
            InputError: an empty question; the session awaits a holdout answer; the last turn
                stopped unfinished (finish it with :meth:`resume_turn`).
        """
        question = question.strip()
        if not question:
            raise InputError("The question is empty.", fix="type a research question.")
        status = await self.status()
        if status == "awaiting_approval":
            raise InputError(
                "The session awaits your answer on the holdout evaluation.",
                fix="/holdout evaluates the hypothesis on the holdout, /holdout no declines; "
                "then ask your question.",
            )
        if status == "unfinished":
            raise InputError(
                "The last turn stopped before it finished.",
                fix="/continue finishes it (raise the budget first with /budget if it stopped "
                "there); then ask your question.",
            )
        if self.hints:
            question = f"{question}\n{json.dumps(self.hints, sort_keys=True)}"
            self.hints = {}
        payload: dict[str, Any] = {"question": question}
        if status == "new":
            payload["context"] = self._context
        async with aclosing(self._run(payload)) as events:
            async for event in events:
                yield event

    async def answer_holdout(self, approve: bool) -> AsyncIterator[ChatEvent]:
        """Approve (evaluate once on the holdout) or decline the pending holdout evaluation.

        Raises:
            InputError: no evaluation awaits approval (the message says why).
        """
        if await self.status() != "awaiting_approval":
            raise InputError(await self.holdout_explanation(), fix=None)
        async with aclosing(self._run(Command(resume=approve))) as events:
            async for event in events:
                yield event

    async def resume_turn(self) -> AsyncIterator[ChatEvent]:
        """Finish a turn that stopped (crash, budget, provider failure) where it stopped.

        Raises:
            InputError: no turn is unfinished.
        """
        if await self.status() != "unfinished":
            raise InputError(
                "No unfinished turn to continue.", fix="ask a question to start a new turn."
            )
        async with aclosing(self._run(None)) as events:
            async for event in events:
                yield event

    async def holdout_explanation(self) -> str:
        """Why the holdout was or was not evaluated (or that it awaits approval)."""
        snapshot = await self.snapshot()
        status = session_status(snapshot)
        if status == "new":
            return "No hypothesis yet: ask a question first."
        if status == "awaiting_approval":
            return "The accepted hypothesis awaits your approval: /holdout evaluates it (once)."
        if status == "unfinished":
            return "The last turn did not finish: /continue finishes it first."
        holdout = snapshot.values.get("holdout") or {}
        note = holdout.get("note") or "not evaluated"
        return f"Holdout {holdout.get('status', 'not evaluated')}: {note}."

    async def _run(self, payload: Any) -> AsyncIterator[ChatEvent]:
        last_node: str | None = None
        try:
            async for part in self.graph().astream(
                payload,
                self._config,  # type: ignore[arg-type]
                stream_mode=["updates", "custom"],
                version="v2",
                durability=DURABILITY,
            ):
                if part["type"] == "custom":
                    event = custom_event(part["data"])
                    if isinstance(event, NodeStarted):
                        if event.node == last_node:
                            continue
                        last_node = event.node
                    if event is not None:
                        yield event
                else:
                    for event in update_events(part["data"]):
                        yield event
        finally:
            # Saved even when the turn stopped (budget, provider): /budget must see the spend.
            await self._save()
        yield await self._turn_end()

    async def _turn_end(self) -> TurnEnded:
        snapshot = await self.snapshot()
        values = snapshot.values or {}
        status = session_status(snapshot)
        hypotheses = values.get("hypotheses") or []
        return TurnEnded(
            status=status,
            decision=(values.get("decision") or {}).get("kind"),
            report=values.get("report", "") if status == "complete" else "",
            answer=hypotheses[-1]["text"] if hypotheses else "",
        )

    # ------------------------------------------------------------------ reading

    async def report(self) -> str:
        """The session's markdown report (of its last finished turn).

        While the holdout awaits approval, the report so far, saying so.

        Raises:
            InputError: no turn has finished yet.
        """
        snapshot = await self.snapshot()
        status = session_status(snapshot)
        values = dict(snapshot.values or {})
        if status == "awaiting_approval":
            values["holdout"] = {
                "status": "awaiting approval",
                "note": "/holdout evaluates the accepted hypothesis on the holdout (once)",
            }
            return prompts.render_report(values, model_id=self.model_id)  # type: ignore[arg-type]
        if not values.get("report"):
            fix = (
                "/continue finishes the stopped turn."
                if status == "unfinished"
                else "ask a research question first."
            )
            raise InputError("This session has no report yet.", fix=fix)
        return str(values["report"])

    async def trials(self) -> tuple[list[TrialRecord], set[str]]:
        """Trials recorded in the session's research context, and the ids this session ran."""
        from quantdesk.quant_core.trials import TrialRegistry

        values = (await self.snapshot()).values or {}
        context = dict(values.get("context") or self._context or {})
        ours = {
            trial
            for entry in values.get("tool_log", [])
            if (trial := (entry["envelope"].get("provenance") or {}).get("trial_id"))
        }
        if not context.get("id"):
            return [], ours
        return TrialRegistry().trials(context["id"]), ours
