"""Every CV and backtest run is a counted trial: turning runs into trial series and recording them.

Entry points (:func:`~quantdesk.quant_core.training.train_cv`,
:func:`~quantdesk.quant_core.backtest.run_backtest`) call :func:`record_run` when they finish,
so a run is counted whether or not its caller remembers to. The trial goes to the active
research context (:func:`~quantdesk.quant_core.research_context.use_context`); without one it
goes to the context named ``default``, created on first use. A run that fails records nothing.
A run made inside :func:`~quantdesk.quant_core.research_context.evaluate_holdout` is recorded
with kind
``"holdout"``: it is not a trial of the search (it does not count towards N or the budget) and is
deflated only among the holdout looks of its context. Re-running the same configuration on the
same data is the same trial (the registry returns the existing row).

A CV run is not a daily strategy: its out-of-fold predictions come with ``h``-session forward
returns. :func:`oof_long_short_returns` turns them into a tradable series without overlap: on
every ``h``-th test date of each fold, go long the top quantile and short the bottom quantile
of the score (equal weights) and hold for ``h`` sessions, earning the realised label return.
The series is gross of costs (a signal-quality trial; backtest trials are net) and is recorded
with ``period_sessions = h`` so that the registry pools Sharpe ratios in per-session units.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from quantdesk.quant_core.errors import InputError, InsufficientDataError
from quantdesk.quant_core.research_context import (
    ResearchContext,
    active_context,
    create_context,
    evaluating_holdout,
    get_context,
)

if TYPE_CHECKING:
    from quantdesk.quant_core.sharpe_inference import DSRResult
    from quantdesk.quant_core.trials import TrialRecord

__all__ = [
    "DEFAULT_CONTEXT_NAME",
    "RecordedRun",
    "dsr_in_period_units",
    "holding_period",
    "oof_long_short_returns",
    "record_run",
    "run_context",
]

DEFAULT_CONTEXT_NAME = "default"


def run_context() -> ResearchContext:
    """Return the active research context, else the ``default`` one (created on first use)."""
    ctx = active_context()
    if ctx is not None:
        return ctx
    try:
        return get_context(DEFAULT_CONTEXT_NAME)
    except InputError:
        pass  # not created yet
    try:
        return create_context(
            DEFAULT_CONTEXT_NAME,
            notes="Runs made outside any research context are counted here.",
        )
    except InputError:
        # another process created it between our read and our write
        return get_context(DEFAULT_CONTEXT_NAME)


def holding_period(frame: pl.DataFrame) -> int:
    """Typical label length in sessions: the median of ``t1 - t0`` on the frame's own calendar.

    Args:
        frame: A frame with ``date``, ``t0`` and ``t1`` (a dataset frame).
    """
    # A panel repeats each (t0, t1) pair once per symbol: take the median over the distinct
    # pairs weighted by their counts (the same number as the median over rows, without a sort
    # of every row).
    calendar = np.sort(frame["date"].unique().to_numpy())
    pairs = frame.group_by("t0", "t1").len()
    if pairs.height == 0:
        return 1
    t0 = np.searchsorted(calendar, pairs["t0"].to_numpy())
    t1 = np.searchsorted(calendar, pairs["t1"].to_numpy())
    order = np.argsort(t1 - t0, kind="stable")
    lengths = (t1 - t0)[order]
    ends = np.cumsum(pairs["len"].to_numpy()[order])
    n = int(ends[-1])

    def at(k: int) -> int:  # the k-th smallest row length (0-based)
        return int(lengths[np.searchsorted(ends, k, side="right")])

    median = at(n // 2) if n % 2 else (at(n // 2 - 1) + at(n // 2)) / 2
    return max(1, round(float(median)))


def oof_long_short_returns(
    oof: pl.DataFrame, *, period: int, quantile: float = 0.2, min_names: int = 2
) -> pl.DataFrame:
    """Non-overlapping long-short returns of out-of-fold scores.

    Args:
        oof: ``date, fold, score`` and ``ret`` (the realised label return) or ``y_true``.
        period: Holding period in sessions (every ``period``-th test date of a fold is used).
        quantile: Share of names in each leg (at least one name per leg).
        min_names: Fewest names with a score on a date for the date to count.

    Returns:
        ``date, ret``: one row per rebalance date, sorted.

    Raises:
        InputError: bad ``period`` or ``quantile``; no ``ret``/``y_true`` column.
        InsufficientDataError: fewer than two usable rebalance dates.
    """
    if period < 1:
        raise InputError(f"period={period} must be at least 1.", fix="pass the label horizon.")
    if not 0.0 < quantile <= 0.5:
        raise InputError(f"quantile={quantile} is not in (0, 0.5].", fix="use e.g. 0.2.")
    target = "ret" if "ret" in oof.columns else "y_true"
    if target not in oof.columns:
        raise InputError(
            "The out-of-fold frame has neither 'ret' nor 'y_true'.",
            fix="train on a dataset built from make_labels output (it carries 'ret').",
        )
    dates = (
        oof.select("fold", "date")
        .unique()
        .sort("fold", "date")
        .with_columns(pl.int_range(pl.len()).over("fold").alias("k"))
        .filter(pl.col("k") % period == 0)
        .select("fold", "date")
    )
    n = pl.len()
    leg = pl.max_horizontal((n * quantile).floor(), pl.lit(1))
    # Ordinal ranks break ties by position, so the join must keep the out-of-fold order:
    # tied scores then fall into the same leg on every run.
    rank = pl.col("score").rank("ordinal")
    legs = (
        oof.join(dates, on=["fold", "date"], maintain_order="left")
        .filter(pl.col("score").is_not_null() & pl.col(target).is_not_null())
        .group_by("fold", "date")
        .agg(
            pl.col(target).filter(rank > n - leg).mean().alias("long"),
            pl.col(target).filter(rank <= leg).mean().alias("short"),
            n.alias("names"),
        )
        .filter(pl.col("names") >= min_names)
        .select("date", (pl.col("long") - pl.col("short")).alias("ret"))
        .sort("date")
    )
    # A date shared by two folds (combinatorial CV) is one holding period: average the folds.
    series = legs.group_by("date").agg(pl.col("ret").mean()).sort("date")
    if series.height < 2:
        raise InsufficientDataError(
            f"Only {series.height} rebalance date(s) with at least {min_names} scored names "
            "to form the trial series.",
            fix="use more symbols or more test dates.",
        )
    return series


class RecordedRun:
    """A recorded trial with its deflated Sharpe ratio.

    Attributes:
        trial: The registry row.
        dsr: Deflated Sharpe ratio given every trial of the context (N counts this one).
        context: The research context it was counted in.
    """

    __slots__ = ("context", "dsr", "trial")

    def __init__(self, trial: TrialRecord, dsr: DSRResult, context: ResearchContext) -> None:
        self.trial = trial
        self.dsr = dsr
        self.context = context

    def __repr__(self) -> str:
        return (
            f"RecordedRun(trial={self.trial.trial_id!r}, number={self.trial.number}, "
            f"context={self.context.name!r}, dsr={self.dsr.dsr:.4f})"
        )

    def summary_line(self) -> str:
        """One line for reports: trial number, context, annualised Sharpe, DSR and its N."""
        return (
            f"trial #{self.trial.number} in research context '{self.context.name}': "
            f"annualised Sharpe {self.trial.sr_annualised:+.2f}, deflated Sharpe ratio "
            f"{self.dsr.dsr:.3f} given {self.dsr.n_trials:g} trial(s)"
            + (" (passes 0.95)" if self.dsr.passed(0.95) else " (below 0.95: not significant)")
        )


def record_run(
    kind: str,
    returns: pl.DataFrame,
    *,
    config: Mapping[str, Any] | Any,
    data_hash: str,
    description: str = "",
    period_sessions: int = 1,
    column: str | None = None,
) -> RecordedRun:
    """Record a finished run in the run context and deflate its Sharpe by the context's trials.

    Args:
        kind: Trial kind (``"cv"``, ``"backtest"``).
        returns: ``date, <series>`` frame of the run's returns.
        config: Configuration that produced the run.
        data_hash: Content hash of the inputs.
        description: Free text.
        period_sessions: Sessions per return.
        column: Series to record when ``returns`` has several.

    Returns:
        The trial and its DSR.
    """
    from quantdesk.quant_core.trials import HOLDOUT_KIND, TrialRegistry

    ctx = run_context()
    registry = TrialRegistry(ctx.registry)
    if evaluating_holdout(ctx):
        # a look at the holdout is recorded, but it is not one more trial of the search
        kind = HOLDOUT_KIND
    trial = registry.record(
        ctx,
        kind,
        returns,
        config=config,
        data_hash=data_hash,
        description=description,
        column=column,
        period_sessions=period_sessions,
    )
    dsr = registry.deflated_sharpe(ctx, trial, kind=HOLDOUT_KIND if kind == HOLDOUT_KIND else None)
    return RecordedRun(trial, dsr, ctx)


def dsr_in_period_units(dsr: DSRResult, period_sessions: int) -> DSRResult:
    """Express a per-session DSR result in units of ``period_sessions``-session periods.

    The registry pools Sharpe ratios per session; a report on a CV trial shows its own
    ``h``-session returns. Scaling Sharpes by ``sqrt(h)``, variances by ``h`` and dividing the
    observation count by ``h`` leaves the z-statistic, the DSR and the PSR unchanged.
    """
    import dataclasses
    import math

    if period_sessions == 1:
        return dsr
    root = math.sqrt(period_sessions)
    return dataclasses.replace(
        dsr,
        sr=dsr.sr * root,
        sr0=dsr.sr0 * root,
        sr_std=dsr.sr_std * root,
        n_obs=dsr.n_obs // period_sessions,
        var_trial_sharpes=(
            None if dsr.var_trial_sharpes is None else dsr.var_trial_sharpes * period_sessions
        ),
        annualization=max(1, round(dsr.annualization / period_sessions)),
    )
