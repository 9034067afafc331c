"""The array-level backtest engine: dense prices and targets in, daily returns and costs out.

The frame-level entry points (:func:`~quantdesk.quant_core.backtest.run_backtest`,
:func:`~quantdesk.quant_core.backtest.backtest_signal`) build the arrays and call
:func:`backtest_arrays`; the model below is theirs too.

Timing. A target decided at the close of session ``t`` (the date of the weights row) trades
in session ``t + 1``, never on the bar that produced it:

* ``execution="next_close"``: at the close of ``t + 1``. The new position earns its first
  return over ``t + 1 -> t + 2``; the return of ``t + 1`` belongs to the old position.
* ``execution="next_open"``: at the open of ``t + 1``. The return of ``t + 1`` splits into
  ``close_t -> open_{t+1}`` on the old position and ``open_{t+1} -> close_{t+1}`` on the new.

Drift. At each rebalance the target weights are re-established; between rebalances the
positions (shares) are held and their weights drift with prices. Cash (``1 - sum(w)``, which
includes short proceeds) earns nothing. At trade ``k``, with ``V`` the portfolio value at the
execution prices just before it and ``w-`` the drifted weights::

    turnover_k = sum_i |w_target_i - w-_i|
    cost_k     = f * turnover_k + impact_k          (fraction of V, paid from cash)
    shares_i   = w_target_i * V / price_i

so holdings are set from the pre-cost value and the fee is paid from cash: the accounting
of vectorbt's ``Portfolio.from_orders(size_type="targetpercent", cash_sharing=True,
group_by=True, call_seq="auto", fees=f)`` (its value is fixed for every order of a bar).
The daily net returns then agree with vectorbt's to rounding, with two documented exceptions
on vectorbt's side: it cannot let cash go negative (a fully invested long-only book cannot pay
its fees, so vectorbt partially fills the buys) and it has no borrow fee.

Engine. Prices and targets are dense ``(n_dates, n_symbols)`` float64 arrays, processed in
cache-sized blocks of rows with pure numpy (no loop over dates). Between trades the value of
the book at a close is ``1 - c_k - sum(w_k) + (w_k / p_k) . p_t`` per unit of the value at
trade ``k`` (one row-wise dot product per session). The only recurrence, a trade's fee
shrinking the value that the next trade's drifted weights are measured against, is solved
exactly by :func:`~quantdesk.quant_core.costs.trade_sweep`; with impact, by vector
fixed-point rounds over all trades. See ``docs/backtest.md``.

Missing prices. A name without a close on the execution session (or without an open, for
``next_open``) cannot be traded or held: its target is set to 0 (a held position is closed at
its last known price) and a :class:`BacktestWarning` says how often. Gaps in the closes of a
held name are forward-filled (it earns 0 over the gap).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from quantdesk.quant_core.backtest_kernel import kernel_choice, simulate
from quantdesk.quant_core.costs import (
    COST_KINDS,
    CostModel,
    block_rows,
    solve_impact_costs,
    trade_sweep,
    trailing_mean,
    trailing_volatility,
)
from quantdesk.quant_core.errors import DataError, InputError, InsufficientDataError
from quantdesk.quant_core.portfolio import (
    PanelLabels,
    align_targets,
    as_panel,
    fill_missing_prices,
    require_finite_targets,
    require_valid_prices,
)

if TYPE_CHECKING:
    pass
from quantdesk.quant_core.backtest_config import BacktestConfig, BacktestWarning, coerce_config

__all__ = ["ArrayBacktest", "backtest_arrays", "session_costs"]


@dataclass(frozen=True, eq=False)
class ArrayBacktest:
    """Daily outputs of :func:`backtest_arrays`, one entry per output session.

    The output sessions are the input rows from the first execution session to the last row.
    Returns and costs are fractions of the previous close's portfolio value, so that
    ``net == gross - (commission + spread + slippage + impact + borrow)``; turnover is
    ``sum |w_target - w_drifted|`` relative to the value at the trade.

    Attributes:
        rows: Input row index of each output session (int64).
        decision_rows: Row of each executed rebalance decision.
        trade_rows: Row of each execution (``decision_rows + 1``).
        gross: Return before costs.
        net: Return after costs.
        turnover: Traded notional over the portfolio value at the trade (0 without trade).
        commission: Commission paid.
        spread: Half-spread paid.
        slippage: Slippage paid.
        impact: Square-root market impact paid.
        borrow: Borrow fee on shorts paid.
        long_exposure: Sum of long weights at the close (after any trade).
        short_exposure: Sum of ``|short weights|`` at the close.
        nav: Portfolio value at the close, relative to a start of 1.
        notes: What was adjusted (missing prices), also raised as :class:`BacktestWarning`.
    """

    rows: np.ndarray
    decision_rows: np.ndarray
    trade_rows: np.ndarray
    gross: np.ndarray
    net: np.ndarray
    turnover: np.ndarray
    commission: np.ndarray
    spread: np.ndarray
    slippage: np.ndarray
    impact: np.ndarray
    borrow: np.ndarray
    long_exposure: np.ndarray
    short_exposure: np.ndarray
    nav: np.ndarray
    notes: tuple[str, ...] = ()
    _targets: np.ndarray = field(default_factory=lambda: np.empty((0, 0)), repr=False)
    _prices: np.ndarray = field(default_factory=lambda: np.empty((0, 0)), repr=False)
    _segment: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64), repr=False)
    _value: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    _mark: np.ndarray = field(default_factory=lambda: np.empty((0, 0)), repr=False)

    def costs(self) -> dict[str, np.ndarray]:
        """Return the daily costs by kind (``commission``, ..., ``borrow``)."""
        return {kind: getattr(self, kind) for kind in COST_KINDS}

    def held_weights(self) -> np.ndarray:
        """Return the ``(n_output_sessions, n_symbols)`` weights held at each close.

        Weights are after that session's trade (if any) and relative to the portfolio value
        at the close; between rebalances they drift with prices.
        """
        seg = self._segment
        held = self._targets[seg] / self._prices[seg] * self._mark[self.rows]
        held /= self._value[:, None]
        return held


def backtest_arrays(
    close: np.ndarray,
    open: np.ndarray | None,
    weights: np.ndarray,
    *,
    rebalance: np.ndarray | None = None,
    dollar_volume: np.ndarray | None = None,
    config: BacktestConfig | Mapping[str, Any] | None = None,
    dates: Sequence[Any] | None = None,
    symbols: Sequence[str] | None = None,
) -> ArrayBacktest:
    """Backtest dense target weights on dense prices (the engine under :func:`run_backtest`).

    Args:
        close: ``(T, N)`` closes used to mark positions (and to trade at ``next_close``);
            NaN = no price that session; otherwise finite and positive.
        open: ``(T, N)`` opens, needed for ``execution="next_open"`` (else may be None).
        weights: Targets decided at the close of each row: ``(T, N)``, or one row per
            rebalance decision ``(rebalance.sum(), N)``. Must be finite on the rows used.
        rebalance: ``(T,)`` boolean mask of the decision rows that trade (default: all);
            a decision on the last row cannot execute and is ignored.
        dollar_volume: ``(T, N)`` traded value ``close * volume`` (raw, not adjusted), needed
            when the cost model has impact.
        config: A :class:`BacktestConfig` (or a mapping of its fields); defaults on.
        dates: Optional labels of the rows, used in error messages.
        symbols: Optional labels of the columns, used in error messages.

    Returns:
        The daily results from the first execution session on.

    Raises:
        InputError: Bad shapes, non-finite weights, missing opens or volumes.
        DataError: Non-positive or infinite prices; the portfolio value reaches zero.
        InsufficientDataError: No decision can execute, or impact inputs are undefined.
    """
    cfg = coerce_config(config)
    labels = PanelLabels(dates, symbols)
    mark = as_panel(close, "close")
    n_rows, n_cols = mark.shape
    if n_rows < 2 or n_cols < 1:
        raise InsufficientDataError(
            f"The close array has shape {mark.shape}; a backtest needs at least 2 sessions "
            "and 1 symbol.",
            fix="pass a (n_dates, n_symbols) array with n_dates >= 2.",
        )
    opens = None
    if cfg.execution == "next_open":
        if open is None:
            raise InputError(
                "execution='next_open' needs the open prices, got open=None.",
                fix="pass the (n_dates, n_symbols) open array, or use execution='next_close'.",
            )
        opens = as_panel(open, "open", shape=mark.shape)
    decisions, targets = align_targets(weights, rebalance, mark.shape)
    notes: list[str] = []
    raw_close = mark
    mark, execute, targets = fill_missing_prices(mark, opens, targets, decisions, labels, notes)
    for note in notes:
        warnings.warn(note, BacktestWarning, stacklevel=2)
    impact_inputs = None
    if cfg.costs.impact_coef > 0:
        if dollar_volume is None:
            raise InputError(
                f"impact_coef={cfg.costs.impact_coef} needs the dollar volume, got None.",
                fix="pass dollar_volume=close*volume (raw prices), or set impact_coef=0.",
            )
        volume = as_panel(dollar_volume, "dollar_volume", shape=mark.shape)
        window = cfg.costs.impact_window
        impact_inputs = (
            trailing_volatility(raw_close, window)[decisions],
            trailing_mean(volume, window)[decisions],
        )
    if kernel_choice() == "numba":
        result = simulate(mark, execute, targets, decisions, cfg, impact_inputs, notes)
        if result is not None:
            return result
        # not well defined (bankrupt, bad input): the numpy engine raises the precise error
    # Bad inputs (an infinite price) surface as non-finite results that _diagnose turns into a
    # DataError naming the cell; numpy's floating-point warnings on the way say nothing more.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _simulate(mark, execute, targets, decisions, cfg, impact_inputs, labels, notes)


def _rows(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``array[index]`` without a copy when ``index`` is a contiguous run."""
    if index.size and index[-1] - index[0] == index.size - 1:
        return array[index[0] : index[-1] + 1]
    return array[index]


def _holding_dots(
    targets: np.ndarray,
    price_k: np.ndarray,
    mark: np.ndarray,
    first: int,
    segment: np.ndarray,
    hold_pos: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Holdings' value at the closes ``first + hold_pos`` (net and ``sum |.|``), per V-_k."""
    if hold_pos.size == 0:
        return np.empty(0), np.empty(0)
    # Over every session from the first trade (a contiguous run of closes, no gather; the
    # trade sessions' values are dropped): cheaper than gathering the closes between trades.
    n_out, n_cols = segment.size, targets.shape[1]
    dot, dot_abs = np.empty(n_out), np.empty(n_out)
    shares = targets / price_k  # per unit V-_k, one row per trade
    short = shares.min(axis=1) < 0.0
    step = block_rows(n_cols)
    buffer = np.empty((step, n_cols))
    for a in range(0, n_out, step):
        b = min(n_out, a + step)
        seg = segment[a:b]
        held = np.take(shares, seg, axis=0, out=buffer[: b - a], mode="clip")
        marks = mark[first + a : first + b]
        dot[a:b] = np.vecdot(held, marks)
        if short[seg].any():
            dot_abs[a:b] = np.vecdot(np.abs(held, out=held), marks)
        else:  # a long book: |shares| = shares
            dot_abs[a:b] = dot[a:b]
    return dot[hold_pos], dot_abs[hold_pos]


def _simulate(
    mark: np.ndarray,
    execute: np.ndarray,
    targets: np.ndarray,
    decisions: np.ndarray,
    cfg: BacktestConfig,
    impact_inputs: tuple[np.ndarray, np.ndarray] | None,
    labels: PanelLabels,
    notes: list[str],
) -> ArrayBacktest:
    """Run the vectorised simulation (the model is in the module docstring)."""
    n_rows = mark.shape[0]
    trades = decisions + 1
    first = int(trades[0])
    at_close = cfg.execution == "next_close"
    costs = cfg.costs
    price_k = _rows(execute, trades)  # execution prices, one row per trade
    # Shorts are found block by block in the passes below (a long book's short value is 0,
    # so it pays no borrow), which spares a pass over all the targets here.
    rate = costs.borrow_rate_daily

    # Segment k = the sessions from trade k up to the one before trade k + 1.
    n_out = n_rows - first
    at_trade = trades - first
    segment = np.zeros(n_out, dtype=np.int64)
    segment[at_trade[1:]] = 1
    np.cumsum(segment, out=segment)
    hold = np.ones(n_out, dtype=bool)
    hold[at_trade] = False
    hold_pos = np.flatnonzero(hold)  # sessions between trades
    dot_h, abs_h = _holding_dots(targets, price_k, mark, first, segment, hold_pos)
    # Borrow of session t is charged on the short value held at the close of t - 1.
    borrow_hold = np.zeros(trades.size)
    if rate > 0.0:
        short_h = 0.5 * (abs_h - dot_h)
        borrow_hold = rate * np.bincount(segment[hold_pos], weights=short_h, minlength=trades.size)
    close_k = None if at_close else _rows(mark, trades)
    sweep = trade_sweep(targets, price_k, close_k, borrow_hold, rate, costs.linear_rate, True)
    if not np.isfinite(sweep.sum_w).all():
        require_finite_targets(targets, decisions, labels)
    if impact_inputs is None:
        cost, turnover, growth = sweep.cost, sweep.turnover, sweep.growth
        impact = np.zeros(trades.size)
    else:
        cost, turnover, growth, impact = solve_impact_costs(
            sweep,
            targets,
            price_k,
            costs,
            float(cfg.capital or 0.0),
            *impact_inputs,
            lambda k, col: labels.at(int(decisions[k]), col),
        )

    dot, dot_abs = np.empty(n_out), np.empty(n_out)
    dot[hold_pos], dot_abs[hold_pos] = dot_h, abs_h
    if sweep.close_dot is not None and sweep.close_abs is not None:
        dot[at_trade], dot_abs[at_trade] = sweep.close_dot, sweep.close_abs
    else:  # just after a trade at the close, the holdings are worth sum(w) exactly
        dot[at_trade], dot_abs[at_trade] = sweep.sum_w, sweep.sum_abs
    short_value = 0.5 * (dot_abs - dot)
    borrow_in = np.zeros(n_out)
    if rate > 0.0:
        total = np.cumsum(short_value)
        before = total - short_value
        borrow_in = rate * (before - before[at_trade][segment])
    growth = np.concatenate([[1.0], growth])
    value = 1.0 - cost[segment] - sweep.sum_w[segment] + dot - borrow_in
    if at_close:
        value[at_trade] = 1.0 - cost
    if not (growth.min() > 0.0 and value.min() > 0.0):
        _diagnose(mark, execute, targets, growth, value, trades, first, labels)
    previous = np.concatenate([[1.0], value[:-1]])
    step = value / previous
    step[at_trade] *= growth
    net = step - 1.0
    scale = growth / previous[at_trade]  # V-_k over the previous close's value
    out, daily_turnover = session_costs(
        costs, n_out, at_trade, turnover, scale, impact, short_value, value
    )
    gross = net + sum(out[kind] for kind in COST_KINDS)
    return ArrayBacktest(
        rows=np.arange(first, n_rows, dtype=np.int64),
        decision_rows=decisions,
        trade_rows=trades,
        gross=gross,
        net=net,
        turnover=daily_turnover,
        long_exposure=(dot + short_value) / value,
        short_exposure=short_value / value,
        nav=np.cumprod(growth)[segment] * value,
        notes=tuple(notes),
        _targets=targets,
        _prices=price_k,
        _segment=segment,
        _value=value,
        _mark=mark,
        **out,
    )


def session_costs(
    costs: CostModel,
    n_out: int,
    at_trade: np.ndarray,
    turnover: np.ndarray,
    scale: np.ndarray,
    impact: np.ndarray,
    short_value: np.ndarray,
    value: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The daily cost columns (by kind, see ``COST_KINDS``) and the daily turnover.

    Shared by the numpy engine and the compiled kernel, so both report costs the same way.
    Trade costs land on the trade sessions ``at_trade``, scaled from the value at the trade
    to the previous close's (``scale``); the borrow fee of a session is paid on the short
    book held from the previous close.

    Args:
        costs: The cost model (linear rates by kind, daily borrow rate).
        n_out: Output sessions.
        at_trade: Output row of each trade.
        turnover: Turnover of each trade (relative to the value at the trade).
        scale: Value at each trade over the previous close's value.
        impact: Impact cost of each trade (relative to the value at the trade).
        short_value: Value of the short book at each close.
        value: Portfolio value at each close (any common unit with ``short_value``).
    """
    out: dict[str, np.ndarray] = {}
    for kind, kind_rate in costs.kind_rates.items():
        out[kind] = np.zeros(n_out)
        out[kind][at_trade] = kind_rate * turnover * scale
    out["impact"] = np.zeros(n_out)
    out["impact"][at_trade] = impact * scale
    out["borrow"] = np.zeros(n_out)
    out["borrow"][1:] = costs.borrow_rate_daily * short_value[:-1] / value[:-1]
    daily_turnover = np.zeros(n_out)
    daily_turnover[at_trade] = turnover
    return out, daily_turnover


def _diagnose(
    mark: np.ndarray,
    execute: np.ndarray,
    targets: np.ndarray,
    growth: np.ndarray,
    value: np.ndarray,
    trades: np.ndarray,
    first: int,
    labels: PanelLabels,
) -> None:
    """Raise the error that explains a non-finite or non-positive portfolio value."""
    for name, prices in (("close", mark), ("open", execute)):
        if not np.isfinite(prices.max()):
            require_valid_prices(np.where(np.isnan(prices), 1.0, prices), name, labels)
    if not np.isfinite(targets).all():
        raise InputError(
            "The weights overflow the portfolio value.",
            fix="scale the weights to fractions of capital.",
        )
    low = np.flatnonzero(~(value > 0.0))
    at = int(low[0]) + first if low.size else int(trades[np.flatnonzero(~(growth > 0.0))[0]])
    raise DataError(
        f"The portfolio value falls to zero or below at {labels.at(at)}: the strategy is "
        "bankrupt and later returns are meaningless.",
        fix="lower the gross exposure (leverage) of the weights.",
    )
