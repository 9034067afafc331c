"""Research contexts: named lines of research with a point-in-time date and a locked holdout.

A :class:`ResearchContext` names one line of research: its point-in-time date ``as_of``, a
holdout window that no search may look at, a trial budget and notes. Contexts live in the
registry database (``QUANTDESK_HOME/registry.sqlite``, see :mod:`.registry_db`, shared with
:mod:`.trials`) so that separate processes (a coding agent calling one skill per command, a chat
session, a batch run) see the same contexts, trial counts and holdout locks. :func:`use_context`
makes a context active for the evidence boundary in :mod:`.holdout` (:func:`guard_holdout`,
:func:`evaluate_holdout`).

This module keeps its historical role as the import path for the whole research-context API:
it re-exports the names of :mod:`.registry_db` and :mod:`.holdout`. Design notes:
``docs/trials_and_holdout.md``.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantdesk.quant_core.errors import InputError
from quantdesk.quant_core.registry_db import (
    _MIGRATIONS,  # noqa: F401 (kept importable from here: tests read the migration list)
    connect_registry,
    registry_path,
    utc_now,
    write_transaction,
)

if TYPE_CHECKING:
    from quantdesk.quant_core.holdout import (
        HoldoutAlreadyEvaluatedError,
        HoldoutEvaluation,
        HoldoutEvaluationFailedError,
        HoldoutViolationError,
        evaluate_holdout,
        evaluating_holdout,
        guard_holdout,
        holdout_evaluations,
        outside_holdout,
    )

# Re-exported from .holdout on first access: it imports polars, which opening a context by
# name (every tool call, every CLI command) does not need.
_FROM_HOLDOUT = frozenset(
    {
        "HoldoutAlreadyEvaluatedError",
        "HoldoutEvaluation",
        "HoldoutEvaluationFailedError",
        "HoldoutViolationError",
        "evaluate_holdout",
        "evaluating_holdout",
        "guard_holdout",
        "holdout_evaluations",
        "outside_holdout",
    }
)


def __getattr__(name: str) -> Any:
    if name not in _FROM_HOLDOUT:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from quantdesk.quant_core import holdout

    value = getattr(holdout, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | _FROM_HOLDOUT)


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
    cut = None
    if as_of is not None:  # schema imports polars: not for the plain default context
        from quantdesk.quant_core.schema import coerce_as_of

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
    from quantdesk.quant_core.schema import coerce_as_of

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


@contextmanager
def use_context(context: ResearchContext | str) -> Iterator[ResearchContext]:
    """Make ``context`` the active research context inside the ``with`` block.

    The active context is a :mod:`contextvars` variable: it follows async tasks, but new
    threads and worker processes start without one (run them under ``use_context`` too).

    Args:
        context: A context, or its id or name (read from the default registry).
    """
    from quantdesk.quant_core.holdout import _ACTIVE  # the variable the guard reads

    ctx = context if isinstance(context, ResearchContext) else get_context(context)
    token = _ACTIVE.set(ctx)
    try:
        yield ctx
    finally:
        _ACTIVE.reset(token)


def active_context() -> ResearchContext | None:
    """Return the active research context, or ``None``."""
    from quantdesk.quant_core.holdout import _ACTIVE

    return _ACTIVE.get()
