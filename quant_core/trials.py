"""The trial registry: every CV and backtest run, recorded append-only, and the DSR inputs.

A *trial* is one evaluated configuration: a cross-validation or a backtest whose return series
someone looked at. Selection bias grows with the number of trials, so each one is recorded in the
registry database of :mod:`.registry_db` (``QUANTDESK_HOME/registry.sqlite``) with its
research context, time, config hash, data hash, code version, per-period moments and its return
series (``trials/<trial_id>.parquet`` next to the database, SHA-256 in the row). The Deflated
Sharpe Ratio of any trial then takes the number of trials N and the variance of their Sharpe
ratios from the registry (:meth:`TrialRegistry.deflated_sharpe`), so the deflation is automatic.

Conventions (shared by quant core II): returns are simple per-period returns; the
per-period Sharpe is ``mean / std`` with ``ddof=1`` and no risk-free rate; skewness and kurtosis
are the biased sample moments ``m3 / m2**1.5`` and ``m4 / m2**2`` (``scipy.stats.skew`` and
``kurtosis(fisher=False)``), kurtosis RAW (normal = 3), as Bailey & López de Prado (2014) use.

Writes are crash-safe and concurrent-safe: the parquet file is written to a temporary name,
fsynced and renamed *before* the row is inserted (a row never points to a missing file; a failed
insert removes the file), and rows are inserted inside ``BEGIN IMMEDIATE`` (trial numbers are
never duplicated across processes). Failed runs are never recorded: bad input (NaN, too few
observations, zero variance) raises before anything is written.

Effective number of trials: highly correlated trials (re-runs, small parameter tweaks) are not
independent tests. :meth:`TrialRegistry.sharpe_stats` aligns the stored return series on their
dates, computes pairwise Pearson correlations over the dates each pair shares and hands the
matrix to :func:`quantdesk.quant_core.sharpe_inference.effective_number_of_trials` (default
``"clusters"``: complete-linkage groups whose members all correlate at least 0.9, after López de
Prado 2020, *Machine Learning for Asset Managers*, §8.7; the method and its sources are
documented there). Pairs sharing fewer than ``min_overlap`` observations count as uncorrelated,
which can only raise N_eff (conservative). :meth:`TrialRegistry.deflated_sharpe` uses the plain
count N unless asked for an effective method.

The code lives in :mod:`.provenance` (code version, config hash), :mod:`.trial_record`
(the row and its stored series) and :mod:`.trial_stats` (N, V, N_eff); this module holds the
registry and re-exports their public names. Design notes: ``docs/trials_and_holdout.md``.
"""

from __future__ import annotations

import hashlib
import io
import math
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from contextlib import closing
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from quantdesk.quant_core.dataset import frame_hash
from quantdesk.quant_core.errors import InputError, InsufficientDataError, QuantdeskRuntimeError
from quantdesk.quant_core.provenance import _sha256, code_version, config_hash, config_json
from quantdesk.quant_core.research_context import (
    ResearchContext,
    connect_registry,
    guard_holdout,
    registry_path,
    resolve_context,
    utc_now,
    write_transaction,
)
from quantdesk.quant_core.trial_record import (
    ANNUALIZATION,  # noqa: F401 (kept importable from here)
    TrialRecord,
    _return_dates,
    _series_frame,
    _write_atomic,
)
from quantdesk.quant_core.trial_stats import (
    EffectiveMethod,
    TrialStats,
    _aligned_correlation,  # noqa: F401 (kept importable from here: tests call it)
    _stats,
)

if TYPE_CHECKING:
    from quantdesk.quant_core.sharpe_inference import DSRResult

__all__ = [
    "HOLDOUT_KIND",
    "TRIAL_KINDS",
    "TrialBudgetExceededError",
    "TrialRecord",
    "TrialRegistry",
    "TrialStats",
    "code_version",
    "config_hash",
    "config_json",
]

TRIAL_KINDS: tuple[str, ...] = ("backtest", "cv", "walk_forward", "study", "other", "holdout")
# Runs made inside evaluate_holdout: recorded, but not part of the search. They are left out of
# the counts, the trial budget and the deflation of search trials, and are deflated among
# themselves (every hypothesis evaluated on the same holdout is one more look at it).
HOLDOUT_KIND = "holdout"


class TrialBudgetExceededError(InputError):
    """A research context has used its whole trial budget."""


# --------------------------------------------------------------------------- the registry


class TrialRegistry:
    """Append-only record of the trials of every research context.

    Args:
        path: Registry database file; default ``QUANTDESK_HOME/registry.sqlite``. Return series
            are stored in ``trials/`` next to it.

    Every method that takes ``context`` accepts a :class:`ResearchContext`, its id or name, or
    ``None`` for the active context (:func:`~quantdesk.quant_core.research_context.use_context`).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = registry_path(path)
        self.folder = self.path.parent / "trials"

    def __repr__(self) -> str:
        return f"TrialRegistry(path={str(self.path)!r})"

    # -- writing -------------------------------------------------------------------------

    def record(
        self,
        context: ResearchContext | str | None,
        kind: str,
        returns: np.ndarray | pl.Series | pl.DataFrame | Sequence[float],
        *,
        config: Mapping[str, Any] | Any,
        data_hash: str | pl.DataFrame,
        description: str = "",
        column: str | None = None,
        period_sessions: int = 1,
    ) -> TrialRecord:
        """Record one completed trial and return its row.

        Everything is validated before anything is written, so a failed run leaves no trace.
        A run with the same kind, configuration hash, data hash and period length as a trial
        already in the context is that trial: the existing row is returned and nothing is added.

        Args:
            context: The research context (see the class docstring).
            kind: One of :data:`TRIAL_KINDS`.
            returns: Per-period simple returns: an array, or a polars frame ``date, <series>``
                (dates strictly increasing; pick the series with ``column=`` when there are
                several, e.g. ``column="net"`` for a backtest's returns frame).
            config: The configuration that produced the returns (mapping, pydantic model or
                dataclass), stored as canonical JSON and hashed.
            data_hash: Content hash of the inputs, or the input frame itself (hashed with
                :func:`~quantdesk.quant_core.dataset.frame_hash`).
            description: Free text.
            column: Series to use in a frame with several.
            period_sessions: Sessions covered by each return (1 for daily returns; ``h`` for
                non-overlapping ``h``-session holding periods, as in a CV trial).

        Raises:
            InputError: unknown kind or context, bad config or data hash, zero-variance returns
                (Sharpe undefined), ``period_sessions`` not a positive integer.
            DataError: NaN/inf/null returns, unsorted or duplicated dates.
            InsufficientDataError: fewer than two returns.
            HoldoutViolationError: dated returns inside the context's holdout window outside
                :func:`~quantdesk.quant_core.research_context.evaluate_holdout`.
        """
        from quantdesk.quant_core.metrics import as_returns, sample_moments

        ctx = resolve_context(context, path=self.path)
        if kind not in TRIAL_KINDS:
            raise InputError(f"Trial kind {kind!r} is unknown.", fix=f"use one of {TRIAL_KINDS}.")
        if not isinstance(description, str):
            raise InputError("description must be a string.", fix="pass text or omit it.")
        if (
            isinstance(period_sessions, bool)
            or not isinstance(period_sessions, int)
            or period_sessions < 1
        ):
            raise InputError(
                f"period_sessions={period_sessions!r} is not a positive integer.",
                fix="pass 1 for daily returns or the holding period in sessions.",
            )
        if isinstance(data_hash, pl.DataFrame):
            data_hash = frame_hash(data_hash)
        if not isinstance(data_hash, str) or not data_hash.strip() or len(data_hash) > 256:
            raise InputError(
                f"data_hash={data_hash!r} is not a content hash.",
                fix="pass frame_hash(inputs) or the input frame itself.",
            )
        cfg_json = config_json(config)
        dates = _return_dates(returns)
        values = as_returns(returns, what="trial returns", min_obs=2, column=column)
        moments = sample_moments(values)
        if dates is not None:
            guard_holdout(pl.DataFrame({"date": dates}), what="trial returns", context=ctx)

        trial_id = uuid.uuid4().hex[:16]
        relative = f"trials/{trial_id}.parquet"
        target = self.path.parent / relative
        sha = _write_atomic(_series_frame(dates, values), target)
        row = (
            trial_id,
            ctx.id,
            kind,
            utc_now(),
            description,
            _sha256(cfg_json.encode()),
            cfg_json,
            data_hash,
            code_version(),
            moments.n_obs,
            moments.mean,
            moments.std,
            moments.sharpe,
            moments.skew,
            moments.kurtosis,
            None if dates is None else dates[0].isoformat(),
            None if dates is None else dates[-1].isoformat(),
            relative,
            sha,
        )
        try:
            with closing(connect_registry(self.path)) as conn, write_transaction(conn):
                # The same configuration on the same data is the same trial: re-running it
                # selects nothing new, so it is not counted twice.
                same = conn.execute(
                    "SELECT id FROM trials WHERE context_id = ? AND kind = ? AND config_hash = ? "
                    "AND data_hash = ? AND period_sessions = ?",
                    (ctx.id, kind, row[5], data_hash, period_sessions),
                ).fetchone()
                existing = None if same is None else same[0]
                if existing is None:
                    number = conn.execute(
                        "SELECT COALESCE(MAX(number), 0) + 1 FROM trials WHERE context_id = ?",
                        (ctx.id,),
                    ).fetchone()[0]
                    conn.execute(
                        "INSERT INTO trials (id, context_id, kind, created_at, description, "
                        "config_hash, config_json, data_hash, code_version, n_obs, mean, std, "
                        "sr_per_period, skew, kurtosis, first_date, last_date, returns_path, "
                        "returns_sha256, number, period_sessions) VALUES (?, ?, ?, ?, ?, ?, ?, "
                        "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (*row, number, period_sessions),
                    )
        except BaseException:
            target.unlink(missing_ok=True)  # the row was not written: leave no orphan file
            raise
        if existing is not None:
            target.unlink(missing_ok=True)
            return self.get(existing)
        return self.get(trial_id)

    # -- reading -------------------------------------------------------------------------

    def _record(self, row: sqlite3.Row) -> TrialRecord:
        return TrialRecord(
            trial_id=row["id"],
            context_id=row["context_id"],
            number=row["number"],
            kind=row["kind"],
            created_at=datetime.fromisoformat(row["created_at"]),
            description=row["description"],
            config_hash=row["config_hash"],
            config_json=row["config_json"],
            data_hash=row["data_hash"],
            code_version=row["code_version"],
            n_obs=row["n_obs"],
            mean=row["mean"],
            std=row["std"],
            sr_per_period=row["sr_per_period"],
            skew=row["skew"],
            kurtosis=row["kurtosis"],
            first_date=None if row["first_date"] is None else date.fromisoformat(row["first_date"]),
            last_date=None if row["last_date"] is None else date.fromisoformat(row["last_date"]),
            returns_path=self.path.parent / row["returns_path"],
            returns_sha256=row["returns_sha256"],
            period_sessions=row["period_sessions"],
        )

    def get(self, trial_id: str) -> TrialRecord:
        """Return the trial with this id.

        Raises:
            InputError: no such trial in this registry.
        """
        with closing(connect_registry(self.path)) as conn:
            row = conn.execute("SELECT * FROM trials WHERE id = ?", (trial_id,)).fetchone()
        if row is None:
            raise InputError(
                f"No trial with id {trial_id!r} in {self.path}.",
                fix="list the context's trials with TrialRegistry().trials(ctx).",
            )
        return self._record(row)

    def trials(
        self, context: ResearchContext | str | None = None, *, kind: str | None = None
    ) -> list[TrialRecord]:
        """Return the trials of a context in recording order (optionally of one kind).

        Without ``kind``, runs made inside ``evaluate_holdout`` (kind ``"holdout"``) are left out:
        they are not part of the search. Pass ``kind="holdout"`` to list them.
        """
        if kind is not None and kind not in TRIAL_KINDS:
            raise InputError(f"Trial kind {kind!r} is unknown.", fix=f"use one of {TRIAL_KINDS}.")
        ctx = resolve_context(context, path=self.path)
        query = "SELECT * FROM trials WHERE context_id = ?" + (
            " AND kind = ?" if kind else f" AND kind != '{HOLDOUT_KIND}'"
        )
        params = (ctx.id, kind) if kind else (ctx.id,)
        with closing(connect_registry(self.path)) as conn:
            rows = conn.execute(query + " ORDER BY number", params).fetchall()
        return [self._record(r) for r in rows]

    def count(
        self, context: ResearchContext | str | None = None, *, kind: str | None = None
    ) -> int:
        """Return the number of search trials of a context (or of one kind, e.g. ``"holdout"``)."""
        if kind is not None and kind not in TRIAL_KINDS:
            raise InputError(f"Trial kind {kind!r} is unknown.", fix=f"use one of {TRIAL_KINDS}.")
        ctx = resolve_context(context, path=self.path)
        query = "SELECT COUNT(*) FROM trials WHERE context_id = ?" + (
            " AND kind = ?" if kind else f" AND kind != '{HOLDOUT_KIND}'"
        )
        with closing(connect_registry(self.path)) as conn:
            return conn.execute(query, (ctx.id, kind) if kind else (ctx.id,)).fetchone()[0]

    def returns(self, trial: TrialRecord | str) -> pl.DataFrame:
        """Return a trial's stored series (``date``, ``ret``), after checking its SHA-256.

        ``date`` is null for returns recorded without dates.

        Raises:
            QuantdeskRuntimeError: the file is missing or its content changed.
        """
        rec = trial if isinstance(trial, TrialRecord) else self.get(trial)
        try:
            content = rec.returns_path.read_bytes()
        except OSError as exc:
            raise QuantdeskRuntimeError(
                f"The return series of trial {rec.trial_id} is missing ({rec.returns_path}).",
                fix="restore the registry folder from a backup; quantdesk never deletes it.",
            ) from exc
        if hashlib.sha256(content).hexdigest() != rec.returns_sha256:
            raise QuantdeskRuntimeError(
                f"The return series of trial {rec.trial_id} ({rec.returns_path}) does not match "
                "its recorded SHA-256: the file was modified after recording.",
                fix="restore the file from a backup; do not edit registry files.",
            )
        return pl.read_parquet(io.BytesIO(content))

    def verify(self, context: ResearchContext | str | None = None) -> tuple[str, ...]:
        """Check every trial file of a context (all contexts with ``None``) against its hash.

        Returns:
            One message per missing or modified file; empty when everything verifies.
        """
        if context is None:
            with closing(connect_registry(self.path)) as conn:
                rows = conn.execute("SELECT * FROM trials ORDER BY rowid").fetchall()
            records = [self._record(r) for r in rows]
        else:
            records = self.trials(context)
        problems = []
        for rec in records:
            try:
                self.returns(rec)
            except QuantdeskRuntimeError as exc:
                problems.append(exc.message)
        return tuple(problems)

    # -- statistics and the deflated Sharpe ratio ----------------------------------------

    def sharpe_stats(
        self,
        context: ResearchContext | str | None = None,
        *,
        kind: str | None = None,
        method: EffectiveMethod = "clusters",
        min_correlation: float = 0.9,
        min_overlap: int = 60,
    ) -> TrialStats:
        """Return N, the variance of the trial Sharpes and the effective number of trials.

        Args:
            context: The research context.
            kind: Restrict to one trial kind (default: every trial of the context).
            method: ``"count"`` (N_eff = N, reads no return series) or a method of
                :func:`~quantdesk.quant_core.sharpe_inference.effective_number_of_trials`
                (``"clusters"``: trials correlated above ``min_correlation`` form one).
            min_correlation: Threshold of the ``"clusters"`` method.
            min_overlap: Fewest shared dates for a pair's correlation to be used; pairs with
                less overlap count as uncorrelated (which can only raise N_eff).

        Raises:
            InsufficientDataError: the context has no trials (of that kind).
        """
        ctx = resolve_context(context, path=self.path)
        records = self.trials(ctx, kind=kind)
        if not records:
            raise InsufficientDataError(
                f"Research context {ctx.name!r} has no recorded trials"
                + (f" of kind {kind!r}." if kind else "."),
                fix="record the trials with TrialRegistry().record(...) before deflating.",
            )
        series = [] if method == "count" else [self.returns(r) for r in records]
        return _stats(
            ctx.id,
            kind,
            {r.trial_id: r.sr_per_session for r in records},
            series,
            method,
            min_correlation,
            min_overlap,
        )

    def deflated_sharpe(
        self,
        context: ResearchContext | str | None = None,
        trial: TrialRecord | str | None = None,
        *,
        returns: np.ndarray | pl.Series | pl.DataFrame | None = None,
        kind: str | None = None,
        method: EffectiveMethod = "count",
        min_correlation: float = 0.9,
        min_overlap: int = 60,
        period_sessions: int = 1,
    ) -> DSRResult:
        """Deflated Sharpe ratio of one trial, with N and V taken from the context's trials.

        Give either a recorded ``trial`` (it must belong to the context) or candidate
        ``returns`` that are not recorded yet: those count as one more trial (N + 1, and their
        Sharpe joins the variance), since looking at them is a trial too.

        Args:
            context: The research context.
            trial: A recorded trial or its id.
            returns: Unrecorded candidate returns (array or ``date, <series>`` frame).
            kind: Restrict N and V to one trial kind.
            method: ``"count"`` (default: every trial counts, the conservative choice) or an
                effective-trials method (see :meth:`sharpe_stats`).
            min_correlation: Threshold of the ``"clusters"`` method.
            min_overlap: See :meth:`sharpe_stats`.
            period_sessions: Sessions per return of the candidate ``returns``.

        Returns:
            :class:`~quantdesk.quant_core.sharpe_inference.DSRResult` in per-session units
            (a trial of ``h``-session periods enters with ``SR / sqrt(h)`` over ``n * h``
            sessions, which leaves its PSR statistic unchanged), raw kurtosis, the N and V used.

        Raises:
            InputError: both or neither of ``trial`` and ``returns``; a trial of another
                context or kind; zero-variance returns.
            InsufficientDataError: no trials to deflate against.
        """
        from quantdesk.quant_core.metrics import as_returns, sample_moments
        from quantdesk.quant_core.sharpe_inference import deflated_sharpe_ratio

        if (trial is None) == (returns is None):
            raise InputError(
                "Pass exactly one of trial= (a recorded trial) or returns= (a candidate).",
                fix="e.g. registry.deflated_sharpe(ctx, trial=record.trial_id).",
            )
        ctx = resolve_context(context, path=self.path)
        records = self.trials(ctx, kind=kind)
        series = [] if method == "count" else [self.returns(r) for r in records]
        sharpes = {r.trial_id: r.sr_per_session for r in records}
        if trial is not None:
            rec = trial if isinstance(trial, TrialRecord) else self.get(trial)
            if rec.trial_id not in {r.trial_id for r in records}:
                raise InputError(
                    f"Trial {rec.trial_id} ({rec.kind}) is not among the "
                    f"{kind or 'recorded'} trials of research context {ctx.name!r}.",
                    fix="deflate a trial within its own context (and kind).",
                )
            sr, n_obs, skew, kurt = rec.sr_per_period, rec.n_obs, rec.skew, rec.kurtosis
            period = rec.period_sessions
        else:
            values = as_returns(returns, what="candidate returns", min_obs=2)
            m = sample_moments(values)
            sr, n_obs, skew, kurt = m.sharpe, m.n_obs, m.skew, m.kurtosis
            period = period_sessions
            sharpes["candidate"] = m.sharpe / math.sqrt(period)
            if method != "count":
                series.append(_series_frame(_return_dates(returns), values))
        stats = _stats(ctx.id, kind, sharpes, series, method, min_correlation, min_overlap)
        return deflated_sharpe_ratio(
            sr=sr / math.sqrt(period),
            n_obs=n_obs * period,
            skew=skew,
            kurtosis=kurt,
            n_trials=stats.n_effective,
            var_trial_sharpes=stats.var_trial_sharpes if stats.n_trials > 1 else None,
            # the moments were computed here from the stored series: the units are known
            check_plausible=False,
        )

    # -- the trial budget ----------------------------------------------------------------

    def remaining_budget(self, context: ResearchContext | str | None = None) -> int:
        """Return how many more trials the context's budget allows (0 when used up)."""
        ctx = resolve_context(context, path=self.path)
        return max(0, ctx.trial_budget - self.count(ctx))

    def check_budget(self, context: ResearchContext | str | None = None) -> None:
        """Raise :class:`TrialBudgetExceededError` when the context has no trial left.

        The registry itself never refuses a record (a run that happened is always written
        down); the tool layer calls this before starting a run.
        """
        ctx = resolve_context(context, path=self.path)
        used = self.count(ctx)
        if used >= ctx.trial_budget:
            raise TrialBudgetExceededError(
                f"Research context {ctx.name!r} has used {used} of its {ctx.trial_budget} "
                "trials: every further configuration raises the bar a real effect must clear.",
                fix="stop searching: judge the best trial with its deflated Sharpe and evaluate "
                "the final hypothesis with evaluate_holdout(...); or open a new research context "
                "(its notes should say why; these trials stay on record).",
            )


# --------------------------------------------------------------------------- helpers
