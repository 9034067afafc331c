"""Cost-aware portfolio backtest of a target-weights (or signal) frame on canonical prices.

:func:`run_backtest` turns the frames into dense arrays, runs the engine
(:mod:`~quantdesk.quant_core.backtest_engine`, whose docstring gives the timing, drift and
cost model), returns the result as frames and counts the run as a trial of the active
research context. :func:`backtest_signal` first turns scores into weights. Both refuse prices
that reach into the context's holdout.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from quantdesk.quant_core.backtest_config import BacktestConfig, coerce_config
from quantdesk.quant_core.backtest_engine import ArrayBacktest, backtest_arrays
from quantdesk.quant_core.costs import (
    TRADING_DAYS,
)
from quantdesk.quant_core.errors import DataError, InsufficientDataError
from quantdesk.quant_core.features import price_column
from quantdesk.quant_core.portfolio import (
    DensePanel,
    WeightMethod,
    dense_panel,
    dense_targets,
    require_weights_frame,
    scores_to_weights,
)
from quantdesk.quant_core.schema import require_canonical, require_columns

if TYPE_CHECKING:
    from quantdesk.quant_core.trial_recording import RecordedRun

__all__ = ["BacktestResult", "backtest_signal", "run_backtest"]


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """A backtest of a weights frame on a price frame.

    Attributes:
        returns: One row per session from the first execution on: ``date, gross, net,
            turnover, cost_commission, cost_spread, cost_slippage, cost_impact, cost_borrow,
            long_exposure, short_exposure`` (fractions of capital; see :class:`ArrayBacktest`).
        weights: ``date, symbol, weight``: the positions held at each close (non-zero only).
        config: The configuration used.
        price_column: The price column that marked the positions.
        start: First session of ``returns``.
        end: Last session of ``returns``.
        n_sessions: Rows of ``returns``.
        n_rebalances: Trades executed.
        total_gross_return: Compounded gross return.
        total_net_return: Compounded net return.
        annual_turnover: Mean daily turnover times 252.
        cost_totals: Sum of each daily cost column (``commission`` ... ``borrow``).
        notes: What the engine adjusted (also raised as :class:`BacktestWarning`).
        run: The counted trial (net returns) and its deflated Sharpe ratio; ``None`` only when
            the net returns have no variance (``run_error`` says so).
        run_error: Why the run was not recorded as a trial, else ``None``.
    """

    returns: pl.DataFrame
    weights: pl.DataFrame
    config: BacktestConfig
    price_column: str
    start: date
    end: date
    n_sessions: int
    n_rebalances: int
    total_gross_return: float
    total_net_return: float
    annual_turnover: float
    cost_totals: dict[str, float]
    notes: tuple[str, ...] = ()
    run: RecordedRun | None = None
    run_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the summary fields and the configuration (not the frames) as plain data."""
        return {
            "config": self.config.model_dump(mode="json"),
            "price_column": self.price_column,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "n_sessions": self.n_sessions,
            "n_rebalances": self.n_rebalances,
            "total_gross_return": self.total_gross_return,
            "total_net_return": self.total_net_return,
            "annual_turnover": self.annual_turnover,
            "cost_totals": dict(self.cost_totals),
            "notes": list(self.notes),
            "trial_id": None if self.run is None else self.run.trial.trial_id,
            "dsr": None if self.run is None else self.run.dsr.dsr,
        }


def run_backtest(
    prices: pl.DataFrame,
    weights: pl.DataFrame,
    config: BacktestConfig | Mapping[str, Any] | None = None,
    **overrides: Any,
) -> BacktestResult:
    """Backtest target weights on canonical prices (the model is in the module docstring).

    Args:
        prices: Canonical price frame sorted by (symbol, date).
        weights: ``date, symbol, weight``: the portfolio decided at the close of ``date``.
            Each rebalance (``config.rebalance``) uses the latest weights dated on or before
            it; symbols absent on a weights date are not held.
        config: A :class:`BacktestConfig` or a mapping of its fields (costs on by default).
        **overrides: Fields replacing those of ``config`` (e.g. ``execution="next_open"``).

    Returns:
        The daily returns, costs, exposures and held positions, and a summary.

    Raises:
        HoldoutViolationError: The prices reach into the active research context's holdout.
        ConfigError: Invalid configuration (e.g. negative costs, zero costs without
            ``gross_study=True``).
        InputError: Bad weights (NaN, unknown symbols, all zero, duplicates).
        DataError: Bad prices (empty, constant, non-positive).
    """
    _guard_holdout(prices)
    cfg = coerce_config(config, **overrides)
    require_canonical(prices)
    price = price_column(prices) if cfg.price_column == "auto" else cfg.price_column
    require_columns(prices, [price], what="price frame")
    columns = dict.fromkeys([price, "close", "open", "volume"])
    panel = dense_panel(prices, list(columns))
    mark = panel.values[price]
    if np.array_equal(np.nanmax(mark, axis=0), np.nanmin(mark, axis=0)):
        raise DataError(
            f"Every symbol's {price!r} is constant, so every return is zero and a backtest "
            "says nothing.",
            fix="check the price file (a stale or placeholder series?).",
        )
    frame = require_weights_frame(weights, panel.symbols)
    mask, targets = dense_targets(frame, panel, cfg.rebalance)
    if not mask.any():
        raise InsufficientDataError(
            f"The first weights date {frame['date'].min()} is after the last price date "
            f"{panel.dates[-1]}.",
            fix="give weights dated within the price history.",
        )
    opens = panel.values["open"]
    if price != "close":  # the open on the same (adjusted) scale as the marking price
        opens = opens * (mark / panel.values["close"])
    dollar_volume = panel.values["close"] * panel.values["volume"]
    result = backtest_arrays(
        mark,
        opens,
        targets,
        rebalance=mask,
        dollar_volume=dollar_volume,
        config=cfg,
        dates=panel.labels.dates,
        symbols=panel.symbols,
    )
    out = _frames(result, panel, cfg, price)
    return _record_backtest_trial(out, prices, frame, price)


def _record_backtest_trial(
    result: BacktestResult, prices: pl.DataFrame, weights: pl.DataFrame, price: str
) -> BacktestResult:
    """Count the backtest as a trial of the run context (see ``trial_recording``)."""
    from quantdesk.quant_core.dataset import frame_hash
    from quantdesk.quant_core.metrics import UndefinedMetricError
    from quantdesk.quant_core.trial_recording import record_run

    data_hash = frame_hash(
        pl.concat(
            [
                prices.select("date", "symbol", pl.col(price).alias("value")),
                weights.select("date", "symbol", pl.col("weight").alias("value")),
            ]
        )
    )
    try:
        run = record_run(
            "backtest",
            result.returns.select("date", "net"),
            config=result.config.model_dump(mode="json"),
            data_hash=data_hash,
            description=f"{result.config.rebalance} rebalance, {result.config.execution}, "
            f"{weights['symbol'].n_unique()} names",
        )
    except (UndefinedMetricError, InsufficientDataError) as exc:
        # constant or too short net returns: there is no Sharpe ratio to count
        return dataclasses.replace(result, run_error=str(exc))
    return dataclasses.replace(result, run=run)


def backtest_signal(
    prices: pl.DataFrame,
    scores: pl.DataFrame,
    *,
    method: WeightMethod = "quantile",
    config: BacktestConfig | Mapping[str, Any] | None = None,
    score_col: str = "score",
    **weight_options: Any,
) -> BacktestResult:
    """Turn scores into weights (:func:`scores_to_weights`) and backtest them.

    Args:
        prices: Canonical price frame.
        scores: ``date, symbol, <score_col>``: the signal known at the close of ``date``.
        method: ``"quantile"``, ``"proportional"`` or ``"vol_scaled"``.
        config: Backtest configuration (see :func:`run_backtest`).
        score_col: Name of the score column.
        **weight_options: :class:`~quantdesk.quant_core.portfolio.WeightSpec` fields
            (``side``, ``quantile``, ``gross``, ``net``, ``max_weight``, ``vol_window``).

    Returns:
        The :class:`BacktestResult`.
    """
    _guard_holdout(prices)
    weights = scores_to_weights(
        scores, method=method, prices=prices, score_col=score_col, **weight_options
    )
    return run_backtest(prices, weights, config)


def _guard_holdout(prices: pl.DataFrame) -> None:
    try:
        from quantdesk.quant_core.research_context import guard_holdout
    except ModuleNotFoundError as exc:
        if exc.name != "quantdesk.quant_core.research_context":
            raise
        return  # no research-context module installed: there is no holdout to protect
    guard_holdout(prices, what="backtest prices")


def _frames(
    result: ArrayBacktest, panel: DensePanel, cfg: BacktestConfig, price: str
) -> BacktestResult:
    days = panel.dates[result.rows]
    columns = {
        "date": days,
        "gross": result.gross,
        "net": result.net,
        "turnover": result.turnover,
        **{f"cost_{kind}": values for kind, values in result.costs().items()},
        "long_exposure": result.long_exposure,
        "short_exposure": result.short_exposure,
    }
    returns = pl.DataFrame(columns).with_columns(pl.col("date").cast(pl.Date))
    held = result.held_weights()
    row, col = np.nonzero(held)
    positions = pl.DataFrame(
        {
            "date": days[row],
            "symbol": np.asarray(panel.symbols, dtype=object)[col],
            "weight": held[row, col],
        },
        schema={"date": pl.Date, "symbol": pl.String, "weight": pl.Float64},
    )
    return BacktestResult(
        returns=returns,
        weights=positions,
        config=cfg,
        price_column=price,
        start=days[0].item(),
        end=days[-1].item(),
        n_sessions=int(days.size),
        n_rebalances=int(result.trade_rows.size),
        total_gross_return=float(np.prod(1.0 + result.gross) - 1.0),
        total_net_return=float(result.nav[-1] - 1.0),
        annual_turnover=float(result.turnover.mean() * TRADING_DAYS),
        cost_totals={kind: float(values.sum()) for kind, values in result.costs().items()},
        notes=result.notes,
    )
