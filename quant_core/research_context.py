"""Research contexts, the locked holdout (the evidence boundary) and the registry database.

A :class:`ResearchContext` names one line of research: its point-in-time date ``as_of``, a
holdout window that no search may look at, a trial budget and notes. Contexts live in the
registry database (``QUANTDESK_HOME/registry.sqlite``, shared with :mod:`.trials`) so that
separate processes (a coding agent calling one skill per command, a chat session, a batch run)
see the same contexts, trial counts and holdout locks.

The evidence boundary has two halves:

* :func:`guard_holdout` is called by every quant-core entry point on its input. When a context is
  active (:func:`use_context`) and has a holdout, any row dated inside the window, or any label
  row whose interval ``[date, t1]`` reaches into it, raises :class:`HoldoutViolationError`.
* :func:`evaluate_holdout` is the only way through. It first inserts a row keyed on
  ``(context, hypothesis)`` in its own transaction, so two processes racing cannot both evaluate
  the same hypothesis, then runs the caller's function with the guard lifted and records the
  outcome. The attempt counts from the moment the row is inserted: if the function raises, or the
  process dies, the holdout has still been looked at and a second attempt is refused with
  :class:`HoldoutAlreadyEvaluatedError`.

The database is append-only and enforced by SQLite itself: triggers abort every UPDATE and
DELETE. Its schema evolves only through the numbered migrations in ``_MIGRATIONS`` (append new
ones, never edit old ones). Design notes: ``docs/trials_and_holdout.md``.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import polars as pl

from quantdesk.quant_core.errors import InputError, QuantdeskRuntimeError, SchemaError
from quantdesk.quant_core.schema import coerce_as_of, require_columns
from quantdesk.quant_core.settings import get_settings

__all__ = [
    "DEFAULT_TRIAL_BUDGET",
    "HoldoutAlreadyEvaluatedError",
    "HoldoutEvaluation",
    "HoldoutEvaluationFailedError",
    "HoldoutViolationError",
    "ResearchContext",
    "active_context",
    "connect_registry",
    "create_context",
    "evaluate_holdout",
    "evaluating_holdout",
    "get_context",
    "guard_holdout",
    "holdout_evaluations",
    "list_contexts",
    "outside_holdout",
    "registry_path",
    "resolve_context",
    "use_context",
    "write_transaction",
]

DEFAULT_TRIAL_BUDGET = 50
T = TypeVar("T")

# --------------------------------------------------------------------------- database


def _append_only(table: str) -> tuple[str, ...]:
    return tuple(
        f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} BEGIN "
        f"SELECT RAISE(ABORT, 'quantdesk registry is append-only: {op} on {table} refused'); END"
        for op in ("UPDATE", "DELETE")
    )


# Numbered by position (1-based). Append new migrations; never edit or reorder old ones.
_MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "contexts, trials and holdout evaluations",
        (
            """CREATE TABLE contexts (
                id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
                as_of TEXT, holdout_start TEXT, holdout_end TEXT,
                trial_budget INTEGER NOT NULL CHECK (trial_budget >= 1),
                notes TEXT NOT NULL,
                CHECK (holdout_start IS NOT NULL OR holdout_end IS NULL),
                CHECK (holdout_end IS NULL OR holdout_start <= holdout_end))""",
            """CREATE TABLE trials (
                id TEXT PRIMARY KEY, context_id TEXT NOT NULL REFERENCES contexts(id),
                number INTEGER NOT NULL, kind TEXT NOT NULL, created_at TEXT NOT NULL,
                description TEXT NOT NULL, config_hash TEXT NOT NULL, config_json TEXT NOT NULL,
                data_hash TEXT NOT NULL, code_version TEXT NOT NULL,
                n_obs INTEGER NOT NULL CHECK (n_obs >= 2), mean REAL NOT NULL,
                std REAL NOT NULL CHECK (std > 0), sr_per_period REAL NOT NULL,
                skew REAL NOT NULL, kurtosis REAL NOT NULL, first_date TEXT, last_date TEXT,
                returns_path TEXT NOT NULL, returns_sha256 TEXT NOT NULL,
                UNIQUE (context_id, number))""",
            """CREATE TABLE holdout_evaluations (
                id TEXT PRIMARY KEY, context_id TEXT NOT NULL REFERENCES contexts(id),
                hypothesis TEXT NOT NULL, hypothesis_key TEXT NOT NULL,
                description TEXT NOT NULL, config_hash TEXT, config_json TEXT,
                code_version TEXT NOT NULL, started_at TEXT NOT NULL,
                UNIQUE (context_id, hypothesis_key))""",
            """CREATE TABLE holdout_outcomes (
                evaluation_id TEXT PRIMARY KEY REFERENCES holdout_evaluations(id),
                finished_at TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
                summary_json TEXT NOT NULL)""",
            *_append_only("contexts"),
            *_append_only("trials"),
            *_append_only("holdout_evaluations"),
            *_append_only("holdout_outcomes"),
        ),
    ),
    (
        "trial period length in sessions",
        (
            # A CV trial earns one return per h-session holding period; backtests one per
            # session. Sharpes are pooled across trials in per-session units (see trials.py).
            "ALTER TABLE trials ADD COLUMN period_sessions INTEGER NOT NULL DEFAULT 1 "
            "CHECK (period_sessions >= 1)",
        ),
    ),
)


def registry_path(path: str | Path | None = None) -> Path:
    """Return the registry database file: ``path``, else ``QUANTDESK_HOME/registry.sqlite``."""
    if path is not None:
        return Path(path).expanduser().resolve()
    return (get_settings().home / "registry.sqlite").expanduser().resolve()


def connect_registry(path: str | Path | None = None) -> sqlite3.Connection:
    """Open the registry database, creating it and applying pending migrations.

    The connection is in autocommit mode (writes go through :func:`write_transaction`), has
    foreign keys on and waits up to 30 s for a lock held by another process. The database runs in
    WAL mode so that readers never block the single writer.

    Raises:
        QuantdeskRuntimeError: the file cannot be opened or was written by a newer quantdesk.
    """
    file = registry_path(path)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(file, timeout=30.0, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise QuantdeskRuntimeError(
            f"Cannot open the quantdesk registry at {file}: {exc}.",
            fix="check that QUANTDESK_HOME points to a writable local folder.",
        ) from exc
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA journal_mode = WAL")
        _migrate(conn, file)
    except BaseException:
        conn.close()
        raise
    return conn


def _schema_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if exists is None:
        return 0
    return conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]


def _migrate(conn: sqlite3.Connection, file: Path) -> None:
    version = _schema_version(conn)  # a plain read: the usual case takes no write lock
    if version > len(_MIGRATIONS):
        raise QuantdeskRuntimeError(
            f"The registry {file} has schema version {version}; this quantdesk knows "
            f"{len(_MIGRATIONS)}.",
            fix="upgrade quantdesk (a newer version wrote this registry).",
        )
    if version == len(_MIGRATIONS):
        return
    with write_transaction(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        # Re-read under the write lock: another process may have migrated meanwhile.
        version = _schema_version(conn)
        for number, (name, statements) in enumerate(_MIGRATIONS[version:], start=version + 1):
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)", (number, name, utc_now())
            )


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block in one ``BEGIN IMMEDIATE`` transaction (commit, or roll back on error).

    ``IMMEDIATE`` takes the write lock up front, so two processes never both read a count and
    then write from it.

    Raises:
        QuantdeskRuntimeError: (retryable) the lock was not obtained within the busy timeout.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise QuantdeskRuntimeError(
            f"The quantdesk registry is locked by another process ({exc}).",
            retryable=True,
            fix="retry; if it persists, look for a process stuck holding the registry.",
        ) from exc
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def utc_now() -> str:
    """Return the current UTC time as an ISO-8601 string with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _opt_date(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


# --------------------------------------------------------------------------- contexts


@dataclass(frozen=True)
class ResearchContext:
    """One line of research: point-in-time date, holdout window, trial budget, notes.

    Create with :func:`create_context`, reopen with :func:`get_context`. Contexts are immutable
    once stored (the database refuses updates), so a holdout window cannot be moved after a look.

    Attributes:
        id: Short random identifier (12 hex characters).
        name: Unique human-readable name.
        created_at: Creation time (UTC).
        as_of: Point-in-time date of the research (callers cut their data with
            ``select_as_of(frame, ctx.as_of)``); ``None`` when not set.
        holdout_start: First date of the holdout window, or ``None`` without a holdout.
        holdout_end: Last date of the window (inclusive); ``None`` means open-ended.
        trial_budget: Number of trials the tool layer allows in this context.
        notes: Free text (what is being researched, why the context was opened).
        registry: Database file the context was read from (not part of its identity).
    """

    id: str
    name: str
    created_at: datetime
    as_of: date | None
    holdout_start: date | None
    holdout_end: date | None
    trial_budget: int
    notes: str
    registry: Path | None = field(default=None, compare=False, repr=False)

    @property
    def has_holdout(self) -> bool:
        """Whether the context declares a holdout window."""
        return self.holdout_start is not None

    def holdout_label(self) -> str:
        """Return the window as text: ``[2019-01-01, 2020-12-31]``, ``[2019-01-01, open)``."""
        if self.holdout_start is None:
            return "none"
        end = "open)" if self.holdout_end is None else f"{self.holdout_end}]"
        return f"[{self.holdout_start}, {end}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary (dates as ISO strings)."""
        return {
            "id": self.id,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "as_of": _iso(self.as_of),
            "holdout_start": _iso(self.holdout_start),
            "holdout_end": _iso(self.holdout_end),
            "trial_budget": self.trial_budget,
            "notes": self.notes,
        }

    @classmethod
    def _from_row(cls, row: sqlite3.Row, registry: Path) -> ResearchContext:
        return cls(
            id=row["id"],
            name=row["name"],
            created_at=datetime.fromisoformat(row["created_at"]),
            as_of=_opt_date(row["as_of"]),
            holdout_start=_opt_date(row["holdout_start"]),
            holdout_end=_opt_date(row["holdout_end"]),
            trial_budget=row["trial_budget"],
            notes=row["notes"],
            registry=registry,
        )


def create_context(
    name: str,
    *,
    as_of: date | datetime | str | None = None,
    holdout: tuple[date | str, date | str | None] | None = None,
    trial_budget: int = DEFAULT_TRIAL_BUDGET,
    notes: str = "",
    path: str | Path | None = None,
) -> ResearchContext:
    """Create and store a research context.

    Args:
        name: Unique name (reopen the context later with ``get_context(name)``).
        as_of: Point-in-time date of the research; the holdout must end on or before it.
        holdout: ``(start, end)`` inclusive. ``end=None`` means "through ``as_of``" when
            ``as_of`` is given, else open-ended. Put the holdout at the end of the sample:
            features computed after a mid-sample holdout look back into it.
        trial_budget: Trials allowed before the tool layer refuses more (at least 1).
        notes: Free text.
        path: Registry file; default ``QUANTDESK_HOME/registry.sqlite``.

    Raises:
        InputError: empty or taken name, bad dates, holdout start after its end or after
            ``as_of``, budget below 1.
    """
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 200:
        raise InputError(
            f"Context name {name!r} is invalid.",
            fix="pass a non-empty string of at most 200 chars.",
        )
    name = name.strip()
    if isinstance(trial_budget, bool) or not isinstance(trial_budget, int) or trial_budget < 1:
        raise InputError(
            f"trial_budget={trial_budget!r} is invalid.", fix="pass a positive integer, e.g. 50."
        )
    if not isinstance(notes, str):
        raise InputError(f"notes must be a string, got {type(notes).__name__}.", fix="pass text.")
    cut = coerce_as_of(as_of)
    start, end = _parse_holdout(holdout, cut)
    ctx_id = uuid.uuid4().hex[:12]
    file = registry_path(path)
    with closing(connect_registry(file)) as conn:
        try:
            with write_transaction(conn):
                conn.execute(
                    "INSERT INTO contexts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        ctx_id,
                        name,
                        utc_now(),
                        _iso(cut),
                        _iso(start),
                        _iso(end),
                        trial_budget,
                        notes,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise InputError(
                f"A research context named {name!r} already exists in {file}.",
                fix=f"reopen it with get_context({name!r}) or choose another name.",
            ) from exc
    return get_context(ctx_id, path=file)


def _parse_holdout(
    holdout: tuple[date | str, date | str | None] | None, as_of: date | None
) -> tuple[date | None, date | None]:
    if holdout is None:
        return None, None
    if not isinstance(holdout, (tuple, list)) or len(holdout) != 2:
        raise InputError(
            f"holdout={holdout!r} is not a (start, end) pair.",
            fix="pass holdout=('2019-01-01', '2020-12-31') or ('2019-01-01', None).",
        )
    start, end = coerce_as_of(holdout[0]), coerce_as_of(holdout[1])
    if start is None:
        raise InputError("The holdout has no start date.", fix="pass holdout=(start, end).")
    if end is None:
        end = as_of
    if end is not None and start > end:
        raise InputError(
            f"The holdout starts on {start}, after its end {end}.",
            fix="pass (start, end) with start <= end (both inclusive).",
        )
    if as_of is not None and end is not None and end > as_of:
        raise InputError(
            f"The holdout ends on {end}, after the context's as_of {as_of}: data after as_of "
            "does not exist for this research.",
            fix=f"end the holdout on or before {as_of}, or move as_of.",
        )
    return start, end


def get_context(id_or_name: str, *, path: str | Path | None = None) -> ResearchContext:
    """Return the stored context with this id or name.

    Raises:
        InputError: no context has that id or name.
    """
    file = registry_path(path)
    with closing(connect_registry(file)) as conn:
        # An id wins over a name that happens to equal it.
        row = conn.execute(
            "SELECT * FROM contexts WHERE id = ? OR name = ? ORDER BY id = ? DESC LIMIT 1",
            (id_or_name, id_or_name, id_or_name),
        ).fetchone()
        if row is None:
            names = [r[0] for r in conn.execute("SELECT name FROM contexts ORDER BY created_at")]
            raise InputError(
                f"No research context with id or name {id_or_name!r} in {file} "
                f"(known: {names[:10]}{' ...' if len(names) > 10 else ''}).",
                fix="create it with create_context(...) or pick one from list_contexts().",
            )
    return ResearchContext._from_row(row, file)


def list_contexts(*, path: str | Path | None = None) -> list[ResearchContext]:
    """Return every stored context, oldest first."""
    file = registry_path(path)
    with closing(connect_registry(file)) as conn:
        rows = conn.execute("SELECT * FROM contexts ORDER BY created_at, id").fetchall()
    return [ResearchContext._from_row(r, file) for r in rows]


def resolve_context(
    context: ResearchContext | str | None, *, path: str | Path | None = None
) -> ResearchContext:
    """Return ``context`` re-read from the registry at ``path`` (``None``: the active context).

    Raises:
        InputError: ``None`` without an active context, or an unknown id or name.
    """
    if context is None:
        context = active_context()
        if context is None:
            raise InputError(
                "No research context was given and none is active.",
                fix="pass a context (id, name or ResearchContext) or wrap the call in "
                "`with use_context(ctx):`.",
            )
    key = context.id if isinstance(context, ResearchContext) else context
    if not isinstance(key, str):
        raise InputError(
            f"Expected a ResearchContext, id or name, got {type(context).__name__}.",
            fix="pass ctx, ctx.id or ctx.name.",
        )
    if path is None and isinstance(context, ResearchContext) and context.registry is not None:
        path = context.registry
    return get_context(key, path=path)


# --------------------------------------------------------------------------- active context

_ACTIVE: ContextVar[ResearchContext | None] = ContextVar("quantdesk_context", default=None)
# Id of the context whose holdout is being evaluated right now (guard lifted for it only).
_EVALUATING: ContextVar[str | None] = ContextVar("quantdesk_holdout_evaluation", default=None)


@contextmanager
def use_context(context: ResearchContext | str) -> Iterator[ResearchContext]:
    """Make ``context`` the active research context inside the ``with`` block.

    The active context is a :mod:`contextvars` variable: it follows async tasks, but new
    threads and worker processes start without one (run them under ``use_context`` too).

    Args:
        context: A context, or its id or name (read from the default registry).
    """
    ctx = context if isinstance(context, ResearchContext) else get_context(context)
    token = _ACTIVE.set(ctx)
    try:
        yield ctx
    finally:
        _ACTIVE.reset(token)


def active_context() -> ResearchContext | None:
    """Return the active research context, or ``None``."""
    return _ACTIVE.get()


# --------------------------------------------------------------------------- the guard


class HoldoutViolationError(InputError):
    """Data inside the active context's holdout window reached a quant-core entry point."""


def _touch_expr(
    frame: pl.DataFrame, ctx: ResearchContext, date_col: str, end_col: str | None
) -> tuple[pl.Expr, pl.Expr]:
    """Return (row start date, boolean 'row touches the holdout') expressions."""
    dtype = frame.schema[date_col]
    if dtype == pl.Date:
        start = pl.col(date_col)
    elif isinstance(dtype, pl.Datetime):
        start = pl.col(date_col).dt.date()
    else:
        raise SchemaError(
            f"Column {date_col!r} has type {dtype}; a date is needed to check the holdout.",
            fix=f"cast it with pl.col({date_col!r}).str.to_date() or pass date_col=.",
        )
    stop = start
    if end_col is not None and end_col in frame.columns and frame.schema[end_col] == pl.Date:
        # A label dated t uses data in (t, t1]: it reads the holdout when t1 reaches into it.
        stop = pl.max_horizontal(start, pl.col(end_col))
    touch = stop >= pl.lit(ctx.holdout_start)
    if ctx.holdout_end is not None:
        touch = touch & (start <= pl.lit(ctx.holdout_end))
    return start, touch.fill_null(True)


def _check_outside(
    frame: pl.DataFrame, ctx: ResearchContext, *, what: str, date_col: str, end_col: str | None
) -> None:
    if not isinstance(frame, pl.DataFrame):
        raise InputError(
            f"Expected a polars DataFrame as the {what}, got {type(frame).__name__}.",
            fix="convert it with polars.from_pandas(...) or pl.DataFrame(...).",
        )
    if ctx.holdout_start is None or frame.height == 0:
        return
    require_columns(frame, [date_col], what=what)
    start, touch = _touch_expr(frame, ctx, date_col, end_col)
    n_in, first_in, lo, hi = frame.select(
        touch.sum().alias("n"),
        start.filter(touch).min().alias("first"),
        start.min().alias("lo"),
        start.max().alias("hi"),
    ).row(0)
    if not n_in:
        return
    window = ctx.holdout_label()
    evaluate = "evaluate it with evaluate_holdout(...) once the hypothesis is final"
    if n_in == frame.height:
        raise HoldoutViolationError(
            f"Every row of the {what} ({lo} to {hi}) lies inside the holdout window {window} of "
            f"research context {ctx.name!r}: the holdout covers the whole sample, so nothing is "
            "left to research on.",
            fix=f"load data dated before {ctx.holdout_start} (or open a context whose holdout "
            f"leaves earlier data); {evaluate}.",
        )
    raise HoldoutViolationError(
        f"{n_in} of {frame.height} rows of the {what} touch the holdout window {window} of "
        f"research context {ctx.name!r}; the first is dated {first_in}.",
        fix=f"cut the data with outside_holdout(frame) or "
        f".filter(pl.col({date_col!r}) < date.fromisoformat('{ctx.holdout_start}')), "
        f"or {evaluate}.",
    )


def evaluating_holdout(context: ResearchContext | None = None) -> bool:
    """Whether a holdout evaluation of ``context`` (default: the active one) is running now."""
    ctx = context if context is not None else _ACTIVE.get()
    return ctx is not None and _EVALUATING.get() == ctx.id


def guard_holdout(
    frame: pl.DataFrame,
    *,
    what: str,
    date_col: str = "date",
    end_col: str | None = "t1",
    context: ResearchContext | None = None,
) -> None:
    """Refuse a frame with rows inside the active context's holdout window.

    Does nothing without an active context, when the context has no holdout, or inside
    :func:`evaluate_holdout` for that context. When the frame has a Date column ``end_col``
    (label frames carry ``t1``), a row counts as inside when its interval ``[date, t1]``
    meets the window, since its label was computed from holdout prices.

    Args:
        frame: The input of a quant-core entry point.
        what: What the frame is, for the message (e.g. ``"backtest prices"``).
        date_col: Date or Datetime column.
        end_col: Optional interval-end column, used only when present.
        context: Check this context instead of the active one.

    Raises:
        HoldoutViolationError: rows touch the holdout (the message says whether it is all of them).
        SchemaError: ``date_col`` is missing or not a date.
    """
    ctx = context if context is not None else _ACTIVE.get()
    if ctx is None or ctx.holdout_start is None or _EVALUATING.get() == ctx.id:
        return
    _check_outside(frame, ctx, what=what, date_col=date_col, end_col=end_col)


def outside_holdout(
    frame: pl.DataFrame,
    *,
    context: ResearchContext | None = None,
    date_col: str = "date",
    end_col: str | None = "t1",
) -> pl.DataFrame:
    """Return the rows of ``frame`` that :func:`guard_holdout` accepts.

    Drops every row that touches the holdout of ``context`` (default: the active context), with
    the same rule as the guard, so ``guard_holdout(outside_holdout(frame))`` never raises.
    Returns ``frame`` unchanged without a context or holdout.
    """
    ctx = context if context is not None else _ACTIVE.get()
    if ctx is None or ctx.holdout_start is None or frame.height == 0:
        return frame
    require_columns(frame, [date_col])
    _, touch = _touch_expr(frame, ctx, date_col, end_col)
    return frame.filter(~touch)


# --------------------------------------------------------------------------- holdout evaluation


class HoldoutAlreadyEvaluatedError(InputError):
    """A hypothesis was already evaluated on this context's holdout."""


class HoldoutEvaluationFailedError(QuantdeskRuntimeError):
    """The evaluation function raised; the attempt is recorded and still counts.

    Attributes:
        evaluation: The recorded attempt (status ``"failed"``); the original exception is the
            ``__cause__``.
    """

    def __init__(
        self, message: str, *, evaluation: HoldoutEvaluation[Any], fix: str | None = None
    ) -> None:
        self.evaluation = evaluation
        super().__init__(message, retryable=False, fix=fix)


@dataclass(frozen=True)
class HoldoutEvaluation(Generic[T]):
    """One recorded look at a holdout.

    Attributes:
        evaluation_id: Row id.
        context_id: The research context.
        hypothesis: The hypothesis evaluated (once per context).
        description: What the hypothesis is.
        config_hash: SHA-256 of its configuration, when one was given.
        code_version: quantdesk version and git commit at evaluation time.
        started_at: When the attempt was registered (UTC).
        finished_at: When the function returned or raised; ``None`` if it never finished.
        status: ``"ok"``, ``"failed"`` (the function raised) or ``"incomplete"`` (the process
            stopped in between, or the evaluation is still running elsewhere).
        summary_json: JSON summary of the result (its ``to_dict()`` when it has one) or error.
        result: The function's return value (only on the object returned by
            :func:`evaluate_holdout`, never stored).
    """

    evaluation_id: str
    context_id: str
    hypothesis: str
    description: str
    config_hash: str | None
    code_version: str
    started_at: datetime
    finished_at: datetime | None
    status: Literal["ok", "failed", "incomplete"]
    summary_json: str
    result: T | None = field(default=None, compare=False, repr=False)

    @property
    def summary(self) -> dict[str, Any]:
        """The recorded summary as a dictionary."""
        return json.loads(self.summary_json)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary (without ``result``)."""
        return {
            "evaluation_id": self.evaluation_id,
            "context_id": self.context_id,
            "hypothesis": self.hypothesis,
            "description": self.description,
            "config_hash": self.config_hash,
            "code_version": self.code_version,
            "started_at": self.started_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
            "status": self.status,
            "summary": self.summary,
        }


_EVAL_QUERY = (
    "SELECT e.*, o.finished_at, o.status, o.summary_json FROM holdout_evaluations e "
    "LEFT JOIN holdout_outcomes o ON o.evaluation_id = e.id"
)


def _evaluation_from_row(row: sqlite3.Row) -> HoldoutEvaluation[None]:
    return HoldoutEvaluation(
        evaluation_id=row["id"],
        context_id=row["context_id"],
        hypothesis=row["hypothesis"],
        description=row["description"],
        config_hash=row["config_hash"],
        code_version=row["code_version"],
        started_at=datetime.fromisoformat(row["started_at"]),
        finished_at=None
        if row["finished_at"] is None
        else datetime.fromisoformat(row["finished_at"]),
        status=row["status"] or "incomplete",
        summary_json=row["summary_json"] or "{}",
    )


def holdout_evaluations(
    context: ResearchContext | str | None = None, *, path: str | Path | None = None
) -> list[HoldoutEvaluation[None]]:
    """Return every recorded holdout evaluation of a context (default: the active one)."""
    ctx = resolve_context(context, path=path)
    with closing(connect_registry(ctx.registry)) as conn:
        rows = conn.execute(
            f"{_EVAL_QUERY} WHERE e.context_id = ? ORDER BY e.started_at", (ctx.id,)
        ).fetchall()
    return [_evaluation_from_row(r) for r in rows]


def _hypothesis_key(hypothesis: str) -> str:
    # Case and spacing do not make a new hypothesis: "Mom 12-1" and "mom  12-1" are one.
    return re.sub(r"\s+", " ", hypothesis.strip()).casefold()


def _summarise(value: Any) -> str:
    to_dict = getattr(value, "to_dict", None)
    payload = to_dict() if callable(to_dict) else value
    if isinstance(payload, Mapping):
        payload = dict(payload)
    return json.dumps(
        {"result_type": type(value).__qualname__, "result": payload},
        default=_short_repr,
        sort_keys=True,
    )


def _short_repr(value: Any) -> str:
    # Anything without a JSON form (a frame, a model) is summarised by its truncated repr.
    return repr(value)[:500]


def evaluate_holdout(
    context: ResearchContext | str,
    hypothesis: str,
    fn: Callable[[], T],
    *,
    description: str = "",
    config: Mapping[str, Any] | None = None,
    path: str | Path | None = None,
) -> HoldoutEvaluation[T]:
    """Evaluate a final hypothesis on the holdout, once.

    The attempt is registered before ``fn`` runs (a unique key on ``(context, hypothesis)``
    makes concurrent attempts from other processes fail), then ``fn`` runs with ``context``
    active and :func:`guard_holdout` lifted for it, and the outcome is recorded.

    Args:
        context: The research context (or its id or name); it must have a holdout.
        hypothesis: Name or id of the final hypothesis (case and spacing are ignored).
        fn: Computes the evaluation; it may read holdout data. Its return value is summarised
            with its ``to_dict()`` when it has one.
        description: What the hypothesis is.
        config: Its final configuration (hashed and stored).
        path: Registry file (default: the context's).

    Returns:
        The recorded evaluation with ``result`` set to ``fn()``.

    Raises:
        HoldoutAlreadyEvaluatedError: this hypothesis was already evaluated (or is being
            evaluated) on this holdout.
        HoldoutEvaluationFailedError: ``fn`` raised; the attempt still counts.
        InputError: no holdout, empty hypothesis, or a nested evaluation.
    """
    from quantdesk.quant_core.trials import code_version, config_hash, config_json

    ctx = resolve_context(context, path=path)
    if not ctx.has_holdout:
        raise InputError(
            f"Research context {ctx.name!r} has no holdout window to evaluate on.",
            fix="create a context with holdout=(start, end) before the search starts.",
        )
    if not isinstance(hypothesis, str) or not hypothesis.strip() or len(hypothesis) > 200:
        raise InputError(
            f"hypothesis={hypothesis!r} is invalid.",
            fix="name the final hypothesis with a non-empty string (at most 200 chars).",
        )
    if _EVALUATING.get() is not None:
        raise InputError(
            "evaluate_holdout was called inside another holdout evaluation.",
            fix="evaluate each hypothesis in its own evaluate_holdout call.",
        )
    cfg_json = None if config is None else config_json(config)
    eval_id = uuid.uuid4().hex[:16]
    started = utc_now()
    with closing(connect_registry(ctx.registry)) as conn:
        try:
            with write_transaction(conn):
                conn.execute(
                    "INSERT INTO holdout_evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        eval_id,
                        ctx.id,
                        hypothesis.strip(),
                        _hypothesis_key(hypothesis),
                        description,
                        None if config is None else config_hash(config),
                        cfg_json,
                        code_version(),
                        started,
                    ),
                )
        except sqlite3.IntegrityError:
            row = conn.execute(
                f"{_EVAL_QUERY} WHERE e.context_id = ? AND e.hypothesis_key = ?",
                (ctx.id, _hypothesis_key(hypothesis)),
            ).fetchone()
            if row is None:  # the context itself is missing (foreign key)
                raise
            raise _already_evaluated(ctx, _evaluation_from_row(row)) from None

    status: Literal["ok", "failed"] = "failed"
    error: BaseException | None = None
    value: T | None = None
    token_active, token_eval = _ACTIVE.set(ctx), _EVALUATING.set(ctx.id)
    try:
        value = fn()
        summary = _summarise(value)
        status = "ok"
    except BaseException as exc:  # recorded below, then re-raised: the look has happened
        error = exc
        summary = json.dumps({"error_type": type(exc).__qualname__, "error": str(exc)[:2000]})
    finally:
        _EVALUATING.reset(token_eval)
        _ACTIVE.reset(token_active)
    finished = utc_now()
    with closing(connect_registry(ctx.registry)) as conn, write_transaction(conn):
        conn.execute(
            "INSERT INTO holdout_outcomes VALUES (?, ?, ?, ?)", (eval_id, finished, status, summary)
        )
    record = HoldoutEvaluation(
        evaluation_id=eval_id,
        context_id=ctx.id,
        hypothesis=hypothesis.strip(),
        description=description,
        config_hash=None if config is None else config_hash(config),
        code_version=code_version(),
        started_at=datetime.fromisoformat(started),
        finished_at=datetime.fromisoformat(finished),
        status=status,
        summary_json=summary,
        result=value,
    )
    if error is not None:
        if not isinstance(error, Exception):  # KeyboardInterrupt, SystemExit: let them through
            raise error
        raise HoldoutEvaluationFailedError(
            f"The holdout evaluation of hypothesis {hypothesis.strip()!r} in research context "
            f"{ctx.name!r} raised {type(error).__name__}: {error}. The attempt is recorded and "
            "counts: the holdout may already have been read, so this hypothesis cannot be "
            "evaluated on it again.",
            evaluation=record,
            fix="report the failure; fix the code on training data only and evaluate a new, "
            "named hypothesis, or open a new research context with unseen data as its holdout.",
        ) from error
    return record


def _already_evaluated(
    ctx: ResearchContext, previous: HoldoutEvaluation[None]
) -> HoldoutAlreadyEvaluatedError:
    return HoldoutAlreadyEvaluatedError(
        f"Hypothesis {previous.hypothesis!r} was already evaluated on the holdout "
        f"{ctx.holdout_label()} of research context {ctx.name!r} at "
        f"{previous.started_at.isoformat(timespec='seconds')} (status: {previous.status}). "
        "A second look is refused: re-evaluating after seeing the holdout result would turn the "
        "holdout into another training set, and its result would no longer be an unbiased test.",
        fix="report the recorded result (holdout_evaluations(ctx)); a changed idea is a new "
        "hypothesis and deserves unseen data: open a new research context whose holdout is "
        "later data.",
    )
