"""Research sessions on disk: LangGraph's SQLite checkpoints plus a small table of chat data.

``quantdesk research`` and ``quantdesk chat`` share one file, ``QUANTDESK_HOME/sessions.sqlite``:
LangGraph's SQLite checkpoint tables hold every session's graph state (a session is a LangGraph
thread), so either command can pick up a session the other started. What the graph state does
not hold lives in the table ``quantdesk_sessions``, one row per session that a chat touched: the
model id the chat used last and its usage ledger (tokens and dollars so far, and the budget).

The table is created by append-only numbered migrations (:data:`MIGRATIONS`), recorded in
``quantdesk_migrations``, so a later version can add columns without breaking older files.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from quantdesk.quant_core.errors import InputError

if TYPE_CHECKING:
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph.state import CompiledStateGraph
    from langgraph.types import StateSnapshot

__all__ = [
    "MIGRATIONS",
    "SESSIONS_FILE",
    "SessionInfo",
    "SessionMeta",
    "SessionStatus",
    "SessionStore",
    "describe_session",
    "session_checkpointer",
    "session_status",
    "sessions_path",
]

SESSIONS_FILE = "sessions.sqlite"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS quantdesk_sessions (
        thread_id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        model TEXT,
        ledger TEXT
    )
    """,
)
"""SQL of each schema migration, in order; never edit one, append a new one."""

SessionStatus = Literal["new", "complete", "awaiting_approval", "unfinished"]


def sessions_path(home: Path | None = None) -> Path:
    """``<home>/sessions.sqlite`` (``home`` defaults to ``QUANTDESK_HOME``)."""
    if home is None:
        from quantdesk.quant_core.settings import get_settings

        home = get_settings().home
    return Path(home) / SESSIONS_FILE


def _loop_saver_class() -> type[SqliteSaver]:
    """:class:`SqliteSaver` answering LangGraph's async API on the calling (event loop) thread."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    class LoopSqliteSaver(SqliteSaver):
        """The synchronous SQLite saver behind the async checkpointer API.

        ``AsyncSqliteSaver`` sends every statement to aiosqlite's worker thread and back (three
        round trips per checkpoint, four per pending write), which is most of the cost of a
        checkpoint of a local file. Here each call runs on the event loop's thread; a commit in
        WAL mode with ``synchronous=NORMAL`` only copies into the WAL file, so the loop waits
        for well under a millisecond.
        """

        async def aget_tuple(self, config: Any) -> Any:
            return self.get_tuple(config)

        async def alist(  # type: ignore[override]
            self, config: Any, **kwargs: Any
        ) -> AsyncIterator[Any]:
            for item in self.list(config, **kwargs):
                yield item

        async def aput(self, config: Any, checkpoint: Any, metadata: Any, versions: Any) -> Any:
            return self.put(config, checkpoint, metadata, versions)

        async def aput_writes(
            self, config: Any, writes: Any, task_id: str, task_path: str = ""
        ) -> None:
            self.put_writes(config, writes, task_id, task_path)

        async def adelete_thread(self, thread_id: str) -> None:
            self.delete_thread(thread_id)

    return LoopSqliteSaver


@asynccontextmanager
async def session_checkpointer(path: Path | str) -> AsyncIterator[SqliteSaver]:
    """The SQLite checkpointer of sessions, open on ``path``, for async graphs.

    LangGraph's ``SqliteSaver`` with its async methods answered on the event loop's thread (see
    :func:`_loop_saver_class`); the tables are those of ``langgraph-checkpoint-sqlite``, so a
    file written by its ``AsyncSqliteSaver`` opens here and the other way round. The file is in
    WAL mode (the saver's setup) with ``synchronous=NORMAL``: a commit is not flushed to disk on
    its own, so a killed process loses nothing it committed (a power cut could lose the last
    ones). That is the failure a session resumes from, and it makes a checkpoint write about
    five times cheaper (``benchmarks/bench_graph.py``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # check_same_thread=False: LangGraph may hand a sync call to a worker thread; the saver's
    # own lock serialises every use of the connection.
    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        conn.execute("PRAGMA synchronous=NORMAL")
        saver = _loop_saver_class()(conn)
        saver.setup()
        yield saver
    finally:
        conn.close()


@dataclass(frozen=True)
class SessionMeta:
    """What a chat stored about a session beside its graph state.

    Attributes:
        thread_id: Session id.
        created_at: When a chat first saved the session (UTC).
        updated_at: When a chat last saved it (UTC).
        model: Model id the chat used last.
        ledger: :meth:`~quantdesk.agents.usage.UsageLedger.to_dict` of its usage ledger.
    """

    thread_id: str
    created_at: datetime
    updated_at: datetime
    model: str | None
    ledger: dict[str, Any] | None


@dataclass(frozen=True)
class SessionInfo:
    """One line of the session list.

    Attributes:
        thread_id: Session id (``quantdesk chat --resume ID``).
        created_at: Time of the session's first checkpoint (UTC).
        updated_at: Time of its last checkpoint (UTC).
        question: The session's first question.
        turns: Questions asked so far.
        model: Model id the chat used last, else the one that wrote the last hypothesis.
        context: Research context name.
        decision: Decision of the last finished turn (``None`` before the first).
        status: ``complete``, ``awaiting_approval`` (holdout) or ``unfinished`` (stopped
            mid-turn: crash, budget, provider failure).
    """

    thread_id: str
    created_at: datetime | None
    updated_at: datetime | None
    question: str
    turns: int
    model: str | None
    context: str | None
    decision: str | None
    status: SessionStatus


def session_status(snapshot: StateSnapshot) -> SessionStatus:
    """Where a session stands, from its latest graph snapshot."""
    if not snapshot.values:
        return "new"
    if not snapshot.next:
        return "complete"
    if snapshot.interrupts:
        return "awaiting_approval"
    return "unfinished"


def _parse_ts(value: Any) -> datetime | None:
    if not value:
        return None
    stamp = datetime.fromisoformat(str(value))
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def describe_session(
    thread_id: str,
    snapshot: StateSnapshot,
    *,
    meta: SessionMeta | None = None,
    created_at: datetime | None = None,
) -> SessionInfo:
    """A :class:`SessionInfo` from a snapshot of the session's graph state."""
    values = dict(snapshot.values or {})
    turns = values.get("turns") or []
    question = turns[0]["question"] if turns else values.get("question", "")
    hypotheses = values.get("hypotheses") or []
    model = (meta.model if meta else None) or (hypotheses[-1]["model"] if hypotheses else None)
    status = session_status(snapshot)
    decision = (values.get("decision") or {}).get("kind")
    return SessionInfo(
        thread_id=thread_id,
        created_at=created_at or (meta.created_at if meta else None),
        updated_at=_parse_ts(snapshot.created_at) or (meta.updated_at if meta else None),
        question=question,
        turns=max(len(turns), 1 if values else 0),
        model=model,
        context=(values.get("context") or {}).get("name"),
        decision=decision,
        status=status,
    )


class SessionStore:
    """The session file: the checkpointer the graph runs with, and the chat table.

    Open it with ``async with SessionStore.open() as store:``; the connection closes on exit.

    Args:
        saver: An open session checkpointer (:func:`session_checkpointer`).
        path: The file it is open on (for messages).
    """

    def __init__(self, saver: SqliteSaver, path: Path | None = None) -> None:
        self.saver = saver
        self.path = path
        self._reader: CompiledStateGraph[Any, Any, Any, Any] | None = None

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path | str | None = None) -> AsyncIterator[SessionStore]:
        """Open (creating if needed) the session file and bring its tables up to date.

        Args:
            path: The SQLite file; default :func:`sessions_path`.
        """
        target = Path(path) if path is not None else sessions_path()
        async with session_checkpointer(target) as saver:
            store = cls(saver, target)
            await store._migrate()
            yield store

    async def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        # The saver's lock serialises our statements with its own on the shared connection.
        with self.saver.lock:
            rows = list(self.saver.conn.execute(sql, params).fetchall())
            self.saver.conn.commit()
        return rows

    async def _migrate(self) -> None:
        await self._execute(
            "CREATE TABLE IF NOT EXISTS quantdesk_migrations "
            "(id INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        done = {row[0] for row in await self._execute("SELECT id FROM quantdesk_migrations")}
        for number, sql in enumerate(MIGRATIONS, 1):
            if number not in done:
                await self._execute(sql)
                await self._execute(
                    "INSERT INTO quantdesk_migrations (id, applied_at) VALUES (?, ?)",
                    (number, datetime.now(UTC).isoformat()),
                )

    async def thread_ids(self) -> list[str]:
        """Ids of every checkpointed session, most recently updated first."""
        rows = await self._execute(
            "SELECT thread_id FROM checkpoints WHERE checkpoint_ns = '' "
            "GROUP BY thread_id ORDER BY MAX(checkpoint_id) DESC"
        )
        return [str(row[0]) for row in rows]

    async def exists(self, thread_id: str) -> bool:
        """Whether a session with this id has a checkpoint."""
        rows = await self._execute(
            "SELECT 1 FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = '' LIMIT 1",
            (thread_id,),
        )
        return bool(rows)

    async def meta(self, thread_id: str) -> SessionMeta | None:
        """What a chat stored about the session, or ``None``."""
        rows = await self._execute(
            "SELECT created_at, updated_at, model, ledger FROM quantdesk_sessions "
            "WHERE thread_id = ?",
            (thread_id,),
        )
        if not rows:
            return None
        created, updated, model, ledger = rows[0]
        return SessionMeta(
            thread_id=thread_id,
            created_at=datetime.fromisoformat(created),
            updated_at=datetime.fromisoformat(updated),
            model=model,
            ledger=json.loads(ledger) if ledger else None,
        )

    async def save_meta(
        self, thread_id: str, *, model: str | None, ledger: dict[str, Any] | None
    ) -> None:
        """Insert or update the session's chat row (keeping its creation time)."""
        now = datetime.now(UTC).isoformat()
        await self._execute(
            "INSERT INTO quantdesk_sessions (thread_id, created_at, updated_at, model, ledger) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(thread_id) DO UPDATE SET "
            "updated_at = excluded.updated_at, model = excluded.model, ledger = excluded.ledger",
            (thread_id, now, now, model, json.dumps(ledger) if ledger is not None else None),
        )

    async def first_checkpoint_time(self, thread_id: str) -> datetime | None:
        """Time of the session's first checkpoint (its creation), or ``None``."""
        rows = await self._execute(
            "SELECT MIN(checkpoint_id) FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ''",
            (thread_id,),
        )
        if not rows or rows[0][0] is None:
            return None
        config = {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": "",
                "checkpoint_id": rows[0][0],
            }
        }
        found = await self.saver.aget_tuple(config)  # type: ignore[arg-type]
        return _parse_ts(found.checkpoint.get("ts")) if found else None

    def _reader_graph(self) -> CompiledStateGraph[Any, Any, Any, Any]:
        # Reading a snapshot needs a compiled graph; the model is never called.
        if self._reader is None:
            from quantdesk.agents.offline_model import OfflineModel
            from quantdesk.agents.research.graph import build_research_graph

            self._reader = build_research_graph(OfflineModel(), checkpointer=self.saver)
        return self._reader

    async def snapshot(self, thread_id: str) -> StateSnapshot:
        """The session's latest graph snapshot (empty values for an unknown id)."""
        config = {"configurable": {"thread_id": thread_id}}
        return await self._reader_graph().aget_state(config)  # type: ignore[arg-type]

    async def info(self, thread_id: str) -> SessionInfo:
        """The session's :class:`SessionInfo`.

        Raises:
            InputError: no session has this id.
        """
        if not await self.exists(thread_id):
            known = await self.thread_ids()
            fix = "start one: ask a question in `quantdesk chat` or run `quantdesk research`."
            if known:
                more = " ..." if len(known) > 8 else ""
                fix = f"use one of {', '.join(known[:8])}{more} (/sessions lists them)."
            raise InputError(
                f"No session {thread_id!r} in {self.path or 'the session file'}.", fix=fix
            )
        return describe_session(
            thread_id,
            await self.snapshot(thread_id),
            meta=await self.meta(thread_id),
            created_at=await self.first_checkpoint_time(thread_id),
        )

    async def list_sessions(self, limit: int | None = None) -> list[SessionInfo]:
        """Every session, most recently updated first (at most ``limit``)."""
        ids = await self.thread_ids()
        return [await self.info(thread_id) for thread_id in ids[:limit]]
