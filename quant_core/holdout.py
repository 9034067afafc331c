"""The evidence boundary: the holdout guard and the one-time holdout evaluation.

* :func:`guard_holdout` is called by every quant-core entry point on its input. When a context is
  active (:func:`~.research_context.use_context`) and has a holdout, any row dated inside the
  window, or any label row whose interval ``[date, t1]`` reaches into it, raises
  :class:`HoldoutViolationError`.
* :func:`evaluate_holdout` is the only way through. It first inserts a row keyed on
  ``(context, hypothesis)`` in its own transaction, so two processes racing cannot both evaluate
  the same hypothesis, then runs the caller's function with the guard lifted and records the
  outcome. The attempt counts from the moment the row is inserted: if the function raises, or the
  process dies, the holdout has still been looked at and a second attempt is refused with
  :class:`HoldoutAlreadyEvaluatedError`.

The active-context variable lives here rather than in :mod:`.research_context` because the guard
reads it on every call; :mod:`.research_context` imports it (and re-exports this module's public
names), so this module imports contexts only lazily and no import cycle exists. Design notes:
``docs/trials_and_holdout.md``.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Callable, Mapping
from contextlib import closing
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from quantdesk.quant_core.errors import InputError, QuantdeskRuntimeError, SchemaError
from quantdesk.quant_core.registry_db import connect_registry, utc_now, write_transaction

if TYPE_CHECKING:
    import polars as pl

    from quantdesk.quant_core.research_context import ResearchContext

__all__ = [
    "HoldoutAlreadyEvaluatedError",
    "HoldoutEvaluation",
    "HoldoutEvaluationFailedError",
    "HoldoutViolationError",
    "evaluate_holdout",
    "evaluating_holdout",
    "guard_holdout",
    "holdout_evaluations",
    "outside_holdout",
]

T = TypeVar("T")

# --------------------------------------------------------------------------- active context

_ACTIVE: ContextVar[ResearchContext | None] = ContextVar("quantdesk_context", default=None)
# Id of the context whose holdout is being evaluated right now (guard lifted for it only).
_EVALUATING: ContextVar[str | None] = ContextVar("quantdesk_holdout_evaluation", default=None)


# --------------------------------------------------------------------------- the guard


class HoldoutViolationError(InputError):
    """Data inside the active context's holdout window reached a quant-core entry point."""


def _touch_expr(
    frame: pl.DataFrame, ctx: ResearchContext, date_col: str, end_col: str | None
) -> tuple[pl.Expr, pl.Expr]:
    """Return (row start date, boolean 'row touches the holdout') expressions."""
    import polars as pl

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
    import polars as pl

    from quantdesk.quant_core.schema import require_columns

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
    from quantdesk.quant_core.schema import require_columns

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
    from quantdesk.quant_core.research_context import resolve_context

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
    from quantdesk.quant_core.provenance import code_version, config_hash, config_json
    from quantdesk.quant_core.research_context import resolve_context

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
