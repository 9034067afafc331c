"""``quantdesk chat``: a research session you talk to, one question (turn) at a time.

Each message runs the research graph (researcher, critic, risk, decision) for the question, or a
follow-up turn of the same session, and shows it as it happens: the researcher's text as the
model streams it, every tool call when it starts and when it finishes, a progress line while a
long tool runs, the critic's review, the risk verdict and the decision. Sessions live in
``QUANTDESK_HOME/sessions.sqlite`` beside ``quantdesk research``'s, so ``--resume ID`` picks up
either. Lines starting with ``/`` are commands (``/help``). The REPL reads plain lines from
stdin, so it can be driven by a pipe; on a terminal it adds a spinner and renders reports.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import typer

from quantdesk.agents.research.chat_events import ChatEvent
from quantdesk.cli._output import echo_markdown
from quantdesk.cli.chat_display import ChatDisplay, drive_turn
from quantdesk.quant_core.errors import InputError, QuantdeskError

__all__ = ["chat_command"]

HELP = """Commands:
  /new                 start a new session (same model, context and budget)
  /resume ID           switch to a saved session
  /sessions            list saved sessions
  /trials              trials recorded in this session's research context (* = this session)
  /holdout [no]        approve (or decline) the holdout evaluation of an accepted hypothesis
  /continue            finish a turn that stopped (budget, provider failure, interruption)
  /report [PATH]       print the cited markdown report, or write it to PATH
  /budget [tokens N | usd X | off]   usage so far and the budget; set or remove the limit
  /model [ID]          show or switch the model (e.g. anthropic:<model>, openai:<model>)
  /help                this list
  /quit                leave (also Ctrl-D); the session stays saved
Anything else is a question for the research agents."""


def _data_hints(data: Path) -> tuple[dict[str, Any], str | None]:
    """The source hint for ``--data`` (a price file, or a folder holding one) and a note."""
    from quantdesk.tools.providers import allowed_data_dirs

    if not data.exists():
        raise InputError(
            f"--data {str(data)!r} does not exist.", fix="give a price file or folder."
        )
    data = data.resolve()
    folder = data if data.is_dir() else data.parent
    roots = allowed_data_dirs()
    if not any(folder == root or folder.is_relative_to(root) for root in roots):
        # The tools read only inside QUANTDESK_DATA_DIRS; --data is the person's consent.
        os.environ["QUANTDESK_DATA_DIRS"] = os.pathsep.join([*map(str, roots), str(folder)])
    if data.is_file():
        return {"source": {"kind": "file", "path": str(data)}}, None
    found = sorted(
        p for sub in (data, data / "prices") for p in (*sub.glob("*.parquet"), *sub.glob("*.csv"))
    )
    if len(found) == 1:
        return {"source": {"kind": "file", "path": str(found[0])}}, None
    if not found:
        raise InputError(
            f"--data {str(data)!r} holds no .parquet or .csv price file (nor does prices/).",
            fix="give a price file, or a folder holding one.",
        )
    names = ", ".join(str(p.relative_to(data)) for p in found[:6])
    return {}, f"{data} holds several price files ({names}): name one in your question."


def _budget(max_tokens: int | None, max_usd: float | None) -> Any:
    from quantdesk.agents.usage import Budget

    return Budget(max_tokens=max_tokens, max_usd=max_usd)


_SESSIONS_SHOWN = 20


class _Repl:
    """The command loop around one :class:`ChatSession` at a time."""

    def __init__(self, store: Any, session: Any, display: ChatDisplay, options: dict[str, Any]):
        self.store = store
        self.session = session
        self.display = display
        self.options = options
        self.say = display.line
        self.models: list[Any] = [session.model]  # closed when the chat ends
        options["current"]["id"] = session.thread_id  # for the message after a Ctrl-C

    async def run_turn(self, events: AsyncIterator[ChatEvent]) -> None:
        tick = time.perf_counter()
        ended = await drive_turn(events, self.display)
        if ended is not None:
            self.say(f"({time.perf_counter() - tick:.1f} s, session {self.session.thread_id})")

    async def describe(self, resumed: bool) -> None:
        s = self.session
        if not resumed:
            ctx = await s.context()
            self.say(
                f"Session {s.thread_id} (new), model {s.model_id}, research context "
                f"{ctx.get('name')}. Ask a research question; /help lists the commands."
            )
            return
        info = await self.store.info(s.thread_id)
        self.say(
            f"Resumed session {info.thread_id}: {info.turns} question(s), last decision "
            f"{info.decision or 'none'}, model {s.model_id}, research context {info.context}."
        )
        self.say(f"First question: {info.question.splitlines()[0] if info.question else '-'}")
        if info.status == "awaiting_approval":
            self.say("The accepted hypothesis awaits your answer: /holdout or /holdout no.")
        elif info.status == "unfinished":
            self.say("The last turn stopped before it finished: /continue finishes it.")

    async def command(self, line: str) -> bool:
        """Run one ``/command``; return False to leave."""
        name, _, rest = line.partition(" ")
        arg = rest.strip()
        handler = getattr(self, f"cmd_{name[1:]}", None) if name[1:].isalpha() else None
        if handler is None:
            self.say(f"Unknown command {name!r}: /help lists the commands.")
            return True
        return await handler(arg) is not False

    async def cmd_help(self, arg: str) -> None:
        for text in HELP.splitlines():
            self.say(text)

    async def cmd_quit(self, arg: str) -> bool:
        return False

    cmd_exit = cmd_quit

    async def _switch(self, session: Any, resumed: bool) -> None:
        self.session = session
        self.options["current"]["id"] = session.thread_id
        await self.describe(resumed)

    async def cmd_new(self, arg: str) -> None:
        from quantdesk.agents.research.chat import ChatSession

        ctx = (await self.session.context()).get("id")
        session = await ChatSession.new(
            self.store,
            model=self.session.model,
            context=ctx,
            budget=self.session.ledger.budget,
            **self.options["graph"],
        )
        session.hints = dict(self.options.get("hints") or {})
        await self._switch(session, resumed=False)

    async def cmd_resume(self, arg: str) -> None:
        from quantdesk.agents.research.chat import ChatSession

        if not arg or " " in arg:
            raise InputError(f"/resume needs one session id, got {arg!r}.", fix="/sessions.")
        session = await ChatSession.resume(
            self.store, arg, model=self.session.model, **self.options["graph"]
        )
        await self._switch(session, resumed=True)

    async def cmd_sessions(self, arg: str) -> None:
        total = len(await self.store.thread_ids())
        sessions = await self.store.list_sessions(limit=_SESSIONS_SHOWN)
        if not sessions:
            self.say("No saved sessions yet.")
            return
        self.say("  id            updated           turns  decision             status     model")
        for s in sessions:
            mark = "*" if s.thread_id == self.session.thread_id else " "
            updated = f"{s.updated_at:%Y-%m-%d %H:%M}" if s.updated_at else "-"
            question = (s.question.splitlines() or [""])[0]
            self.say(
                f"{mark} {s.thread_id:<13} {updated}  {s.turns:>5}  {s.decision or '-':<20} "
                f"{s.status:<10} {s.model or '-'}  {question[:60]}"
            )
        if total > len(sessions):
            self.say(f"({total - len(sessions)} older session(s) not shown)")

    async def cmd_trials(self, arg: str) -> None:
        records, ours = await self.session.trials()
        ctx = await self.session.context()
        if not records:
            self.say(f"No trials in research context {ctx.get('name')!r} yet.")
            return
        self.say(
            f"Trials of research context {ctx.get('name')} ({len(records)} of a budget of "
            f"{ctx.get('trial_budget')}; * = run in this session):"
        )
        for r in records:
            mark = "*" if r.trial_id in ours else " "
            self.say(
                f"{mark} #{r.number:<3} {r.trial_id}  {r.kind:<16} Sharpe {r.sr_annualised:+.2f}"
                f"  {r.n_obs} obs  {r.description[:50]}"
            )

    async def cmd_holdout(self, arg: str) -> None:
        if arg not in ("", "yes", "no"):
            raise InputError(
                f"/holdout takes no argument, 'yes' or 'no', not {arg!r}.",
                fix="/holdout approves the evaluation, /holdout no declines it.",
            )
        if await self.session.status() != "awaiting_approval":
            self.say(await self.session.holdout_explanation())
            return
        await self.run_turn(self.session.answer_holdout(arg != "no"))

    async def cmd_continue(self, arg: str) -> None:
        await self.run_turn(self.session.resume_turn())

    async def cmd_report(self, arg: str) -> None:
        text = await self.session.report()
        if not arg:
            self.display.line()
            echo_markdown(text)
            return
        path = Path(arg).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self.say(f"Wrote the report to {path}.")

    async def cmd_budget(self, arg: str) -> None:
        if arg:
            kind, _, value = arg.partition(" ")
            try:
                if kind == "off" and not value:
                    budget = _budget(None, None)
                elif kind == "tokens":
                    budget = _budget(int(value), self.session.ledger.budget.max_usd)
                elif kind == "usd":
                    budget = _budget(self.session.ledger.budget.max_tokens, float(value))
                else:
                    raise ValueError(kind)
            except ValueError:
                raise InputError(
                    f"/budget {arg!r} is not understood.",
                    fix="write /budget tokens 200000, /budget usd 2.50 or /budget off "
                    "(limits must be positive).",
                ) from None
            self.session.set_budget(budget)
        u = self.session.usage()
        cost = (
            "unknown (no price for this model)"
            if u["cost_usd"] is None
            else f"${u['cost_usd']:.4f}"
        )
        limits = [f"{u['budget']['max_tokens']:,} tokens" if u["budget"]["max_tokens"] else ""]
        limits.append(f"${u['budget']['max_usd']:.2f}" if u["budget"]["max_usd"] else "")
        limit = " and ".join(x for x in limits if x) or "none"
        self.say(
            f"Usage: {u['total_tokens']:,} tokens ({u['input_tokens']:,} in, "
            f"{u['output_tokens']:,} out) in {u['calls']} model call(s); cost {cost}; "
            f"budget {limit}."
        )

    async def cmd_model(self, arg: str) -> None:
        if arg:
            from quantdesk.agents.model import get_model

            model = get_model(arg)
            self.models.append(model)
            await self.session.use_model(model)
        self.say(f"Model: {self.session.model_id}")


async def _chat(
    *,
    resume: str | None,
    model_id: str | None,
    context: str | None,
    hints: dict[str, Any],
    budget: Any,
    read_line: Callable[[], str | None],
    display: ChatDisplay,
    current: dict[str, str],
    sample_filings: bool = False,
) -> None:
    from quantdesk.agents.model import get_model
    from quantdesk.agents.research.chat import ChatSession
    from quantdesk.agents.research.runtime import ToolThread
    from quantdesk.agents.research.sessions import SessionStore
    from quantdesk.cli.research_command import add_sample_filings

    # One thread runs every tool call, as in `quantdesk research`, so calls run in order (the
    # filing index itself works from any thread).
    tools = ToolThread()
    graph = {"tool_runner": tools}
    try:
        async with SessionStore.open() as store:
            if resume:
                await store.info(resume)  # an unknown id fails before a model is built
                meta = await store.meta(resume)
                # --model, then QUANTDESK_MODEL, then the model the session used last.
                chosen = model_id or os.environ.get("QUANTDESK_MODEL", "").strip() or None
                model = get_model(chosen or (meta.model if meta else None))
                session = await ChatSession.resume(
                    store, resume, model=model, budget=budget, **graph
                )
            else:
                session = await ChatSession.new(
                    store, model=get_model(model_id), context=context, budget=budget, **graph
                )
            session.hints = dict(hints)
            if sample_filings:  # after the model and session checks: a typo fails at once
                display.line(add_sample_filings(tools))
            options = {"hints": hints, "current": current, "graph": graph}
            repl = _Repl(store, session, display, options)
            try:
                await _loop(repl, read_line)
            finally:
                for used in repl.models:
                    close = getattr(used, "aclose", None)
                    if close is not None:
                        await close()
    finally:
        tools.close()


async def _loop(repl: _Repl, read_line: Callable[[], str | None]) -> None:
    display, store = repl.display, repl.store
    await repl.describe(resumed=await repl.session.status() != "new")
    while True:
        line = read_line()
        if line is None:
            break
        line = line.strip()
        if not line:
            continue
        try:
            if line.startswith("/"):
                if not await repl.command(line):
                    break
            else:
                await repl.run_turn(repl.session.ask(line))
        except QuantdeskError as exc:
            display.line(f"error: {exc}", style={"fg": "red"})
    if await store.exists(repl.session.thread_id):
        display.line(
            f"Session {repl.session.thread_id} is saved: quantdesk chat --resume "
            f"{repl.session.thread_id}"
        )


def _write_stdout(text: str) -> None:
    # Looked up on every call: test runners swap sys.stdout.
    sys.stdout.write(text)
    sys.stdout.flush()


def _line_reader(tty: bool, display: ChatDisplay) -> Callable[[], str | None]:
    def read() -> str | None:
        if tty:
            try:
                return input("\n> ")
            except EOFError:
                return None
        line = sys.stdin.readline()
        if not line:
            return None
        display.line(f"> {line.rstrip()}")  # a piped transcript shows what was asked
        return line

    return read


def chat_command(
    resume: str | None = typer.Option(None, "--resume", help="Resume the session with this id."),
    model: str | None = typer.Option(
        None, help="Model id, e.g. anthropic:<model> (default: QUANTDESK_MODEL, else offline)."
    ),
    context: str | None = typer.Option(None, help="Research context (name or id)."),
    data: Path | None = typer.Option(
        None, help="Price file, or folder holding one, to research (default: demo market)."
    ),
    max_tokens: int | None = typer.Option(
        None, "--max-tokens", min=1, help="Token budget of the session."
    ),
    max_usd: float | None = typer.Option(None, "--max-usd", help="Dollar budget of the session."),
    sample_filings: bool | None = typer.Option(
        None,
        "--sample-filings/--no-sample-filings",
        help="Add the FICTIONAL sample filings of the demo companies to the filing index "
        "first (default: on for the demo market, off with --data).",
    ),
) -> None:
    """Chat with the research agents (researcher, critic, risk); /help lists the commands."""
    if max_usd is not None and max_usd <= 0:
        raise InputError(f"--max-usd must be positive, got {max_usd}.", fix="e.g. --max-usd 2.5")
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    display = ChatDisplay(_write_stdout, tty=tty)
    hints: dict[str, Any] = {}
    if data is not None:
        hints, note = _data_hints(data)
        if note:
            display.line(note)
    current: dict[str, str] = {}
    try:
        asyncio.run(
            _chat(
                resume=resume,
                model_id=model,
                context=context,
                hints=hints,
                budget=_budget(max_tokens, max_usd) if (max_tokens or max_usd) else None,
                read_line=_line_reader(tty, display),
                display=display,
                current=current,
                sample_filings=data is None if sample_filings is None else sample_filings,
            )
        )
    except KeyboardInterrupt:
        # Every finished step is checkpointed already; say how to pick the session up.
        where = f": quantdesk chat --resume {current['id']}" if current.get("id") else ""
        display.line(f"Interrupted. The session is saved up to its last step{where}")
        raise typer.Exit(130) from None
