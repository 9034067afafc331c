"""Transaction and financing costs charged by the backtest.

All costs are fractions of capital. With ``traded_i = |w_target_i - w_drifted_i|`` (the traded
notional of name ``i`` as a fraction of the portfolio value at the trade):

* **commission**, **half-spread** and **slippage**: ``bps / 1e4 * traded_i``, summed over names.
  Together they are one proportional fee ``f`` (``CostModel.linear_rate``), the same as a
  ``fees=f`` order fee in vectorbt.
* **market impact** (off unless ``impact_coef > 0``), the square-root law (Almgren et al.
  2005, "Direct estimation of equity market impact"; Kyle and Obizhaeva 2016)::

      impact_i = impact_coef * sigma_i * sqrt(traded_i * capital / ADV_i) * traded_i

  ``sigma_i`` is the sample std of the name's last ``impact_window`` daily simple returns and
  ``ADV_i`` the mean of its last ``impact_window`` daily dollar volumes (``close * volume``),
  both known at the close of the decision date; ``capital`` is the portfolio value in
  currency at the trade. The price moves by ``impact_coef * sigma * sqrt(participation)``
  against the order, and the whole order pays that move.
* **borrow**: ``borrow_bps_annual / 1e4 / 252`` per session on the short market value held
  overnight into the session.

Defaults (on unless set to zero): commission 1 bp, half-spread 2 bps, slippage 1 bp (4 bps per
unit of turnover in total) and borrow 50 bps a year; impact off. A backtest without any
trading cost must say so with ``BacktestConfig(gross_study=True)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from quantdesk.quant_core.errors import ConfigError, InsufficientDataError

__all__ = [
    "COST_KINDS",
    "TRADING_DAYS",
    "CostModel",
    "TradeSweep",
    "block_rows",
    "config_error",
    "exact_turnover",
    "impact_cost",
    "solve_impact_costs",
    "trade_sweep",
    "trailing_mean",
    "trailing_volatility",
]

TRADING_DAYS = 252
#: Cost columns of a backtest, in the order of ``BacktestResult.returns``.
COST_KINDS: tuple[str, ...] = ("commission", "spread", "slippage", "impact", "borrow")
_BPS = 1e4


def config_error(exc: ValidationError, what: str, fix: str) -> ConfigError:
    """Turn a pydantic ``ValidationError`` into a :class:`ConfigError` naming each bad field."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or what}={err.get('input')!r}: {err['msg']}"
        for err in exc.errors()
    )
    return ConfigError(f"Invalid {what}: {problems}.", fix=fix)


class CostModel(BaseModel):
    """Explicit costs of trading and of holding shorts (see the module docstring).

    Attributes:
        commission_bps: Broker commission per unit of traded notional, in basis points.
        half_spread_bps: Half the bid-ask spread paid on every trade, in basis points.
        slippage_bps: Extra execution shortfall per unit traded, in basis points.
        borrow_bps_annual: Annual fee on the short market value, in basis points.
        impact_coef: Square-root impact coefficient ``Y`` (0 = no impact; 0.1-1 is typical).
            Needs ``BacktestConfig.capital`` and volumes.
        impact_window: Sessions in the trailing volatility and average dollar volume.

    Raises:
        ConfigError: A negative, non-finite or out-of-range value (named in the message).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    commission_bps: float = Field(default=1.0, ge=0.0, le=1000.0)
    half_spread_bps: float = Field(default=2.0, ge=0.0, le=1000.0)
    slippage_bps: float = Field(default=1.0, ge=0.0, le=1000.0)
    borrow_bps_annual: float = Field(default=50.0, ge=0.0, le=100_000.0)
    impact_coef: float = Field(default=0.0, ge=0.0, le=100.0)
    impact_window: int = Field(default=20, ge=2, le=2520)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(
                exc,
                "cost model",
                "costs are non-negative finite numbers in basis points (e.g. "
                "commission_bps=1.0); to study a strategy without costs use "
                "BacktestConfig(gross_study=True).",
            ) from None

    @classmethod
    def zero(cls) -> CostModel:
        """Return a cost model with every cost set to zero (for gross studies only)."""
        return cls(commission_bps=0.0, half_spread_bps=0.0, slippage_bps=0.0, borrow_bps_annual=0.0)

    @property
    def linear_rate(self) -> float:
        """Proportional fee per unit of traded notional: commission + half-spread + slippage."""
        return (self.commission_bps + self.half_spread_bps + self.slippage_bps) / _BPS

    @property
    def kind_rates(self) -> dict[str, float]:
        """Fee per unit traded of each proportional cost kind (commission, spread, slippage)."""
        return {
            "commission": self.commission_bps / _BPS,
            "spread": self.half_spread_bps / _BPS,
            "slippage": self.slippage_bps / _BPS,
        }

    @property
    def borrow_rate_daily(self) -> float:
        """Borrow fee per session on the short market value."""
        return self.borrow_bps_annual / _BPS / TRADING_DAYS

    @property
    def has_trading_costs(self) -> bool:
        """Whether any cost is charged on trades (proportional fees or impact)."""
        return self.linear_rate > 0.0 or self.impact_coef > 0.0

    @property
    def is_zero(self) -> bool:
        """Whether every cost, borrow included, is zero."""
        return not self.has_trading_costs and self.borrow_bps_annual == 0.0


def trailing_mean(values: np.ndarray, window: int, *, min_obs: int = 1) -> np.ndarray:
    """Mean of the last ``window`` rows (the current row included) of each column.

    NaN entries are missing and skipped; the result is NaN where fewer than ``min_obs``
    values are available.

    Args:
        values: ``(n_dates, n_symbols)`` array.
        window: Rows in the window, >= 1.
        min_obs: Fewest non-missing values for a defined mean.

    Returns:
        An array of the same shape.
    """
    present = ~np.isnan(values)
    total = _window_sum(np.where(present, values, 0.0), window)
    count = _window_sum(present.astype(np.float64), window)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= min_obs, total / count, np.nan)


def trailing_volatility(close: np.ndarray, window: int) -> np.ndarray:
    """Sample std (ddof=1) of the last ``window`` daily simple returns, known at each close.

    Row ``t`` uses the returns ending at ``t`` (closes ``t - window`` to ``t``); NaN closes
    are missing. The result is NaN where fewer than two returns are available.

    Args:
        close: ``(n_dates, n_symbols)`` closes (NaN = no price).
        window: Returns in the window, >= 2.

    Returns:
        An array of the same shape (row 0 is NaN).
    """
    ret = np.full(close.shape, np.nan)
    ret[1:] = close[1:] / close[:-1] - 1.0
    present = ~np.isnan(ret)
    x = np.where(present, ret, 0.0)
    count = _window_sum(present.astype(np.float64), window)
    mean = _window_sum(x, window)
    sq = _window_sum(x * x, window)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = mean / count
        var = (sq - count * mean * mean) / (count - 1.0)
        return np.where(count >= 2, np.sqrt(np.maximum(var, 0.0)), np.nan)


def _window_sum(x: np.ndarray, window: int) -> np.ndarray:
    csum = np.cumsum(x, axis=0)
    out = csum.copy()
    out[window:] -= csum[:-window]
    return out


def impact_cost(
    traded: np.ndarray,
    sigma: np.ndarray,
    adv: np.ndarray,
    capital: np.ndarray | float,
    coef: float,
) -> np.ndarray:
    """Square-root market impact of each trade as a fraction of capital.

    Args:
        traded: ``|Δw|`` per name, fractions of the portfolio value at the trade.
        sigma: Daily volatility of each name at the decision.
        adv: Average daily dollar volume of each name at the decision.
        capital: Portfolio value in currency at the trade (broadcast against ``traded``).
        coef: Impact coefficient ``Y``.

    Returns:
        ``coef * sigma * sqrt(traded * capital / adv) * traded``, elementwise.
    """
    size = np.abs(traded)
    with np.errstate(invalid="ignore", divide="ignore"):
        cost = coef * sigma * np.sqrt(size * capital / adv) * size
    # A name that is not traded pays nothing, even where its volume or volatility is unknown.
    return np.where(size > 0.0, cost, 0.0)


# Block size of the sweeps: the few (rows x N) float64 blocks of 1 MiB in use stay in the
# last-level cache, few enough blocks that numpy's per-call overhead is small (measured best
# of 128 KiB - 4 MiB at 500 x 5,000), and reusing them avoids page-faulting fresh 20 MB
# temporaries on every operation.
_BLOCK_BYTES = 1 << 20


def block_rows(n_cols: int) -> int:
    """Rows per block of the blocked passes over ``(rows, n_cols)`` float64 arrays."""
    return max(8, _BLOCK_BYTES // (8 * n_cols))


def _row_sum(a: np.ndarray) -> np.ndarray:
    return np.einsum("ij->i", a)


@dataclass(frozen=True)
class TradeSweep:
    """Per-trade results of :func:`trade_sweep` (index k = trade).

    Attributes:
        sum_w: Sum of the target weights.
        sum_abs: Sum of ``|target weights|``.
        close_dot: ``next_open`` only: the new holdings at the close, per unit ``V-_k``.
        close_abs: ``next_open`` only: the same with ``|shares|``.
        growth: ``V-_k / V-_{k-1}``, the value growth from trade ``k - 1`` to trade ``k``
            after the fee of trade ``k - 1`` (k >= 1).
        cost: Proportional fees of trade k, a fraction of ``V-_k``.
        turnover: ``sum |w_k - w-_k|`` of trade k.
    """

    sum_w: np.ndarray
    sum_abs: np.ndarray
    close_dot: np.ndarray | None
    close_abs: np.ndarray | None
    growth: np.ndarray
    cost: np.ndarray
    turnover: np.ndarray


@dataclass(frozen=True)
class _Brackets:
    """Trade k's turnover as a function of ``e`` on ``[0, edge_k]`` (arrays over k >= 1).

    ``at_zero`` and ``at_edge`` are the turnover at ``e = 0`` and ``e = edge`` without the
    ``near`` names, whose trade may change sign inside the bracket; every other name's
    ``|trade|`` is linear there. ``near`` holds those names as ``(trade index - 1, trade at
    e = 0, drifted weight)``: their ``|trade - e * drifted|`` is summed exactly.
    """

    at_zero: np.ndarray
    at_edge: np.ndarray
    edge: np.ndarray
    near: tuple[np.ndarray, np.ndarray, np.ndarray]


def trade_sweep(
    targets: np.ndarray,
    price_k: np.ndarray,
    close_k: np.ndarray | None,
    borrow_hold: np.ndarray,
    borrow_rate: float,
    fee: float,
    has_shorts: bool,
) -> TradeSweep:
    """One blocked pass over the trades: exposures, drift, then the exact turnover and fees.

    With ``u`` the holdings of trade ``k - 1`` valued at trade ``k``'s prices (per unit
    ``V-_{k-1}``) and ``D0`` the growth before fees, trade ``k`` moves each name by
    ``d_i - e * m_i`` with ``m = u / D0``, ``d = w_k - m`` and ``e = D0 / D - 1 >= 0`` from the
    previous fee (``D = D0 - c_{k-1}``): the turnover is a convex, piecewise-linear function
    of ``e``, and the fee ``c_k = fee * turnover_k(e_k)`` feeds the next trade. Per block of
    trades the pass brackets ``e`` in ``[0, edge]`` (``edge`` is 1.25 times the largest ``e``
    the fees at ``e = 0`` imply), evaluates the turnover at both ends and picks out the few
    names whose trade changes sign inside (``d_i`` and ``d_i - edge * m_i`` differ). Every
    other name's ``|trade|`` is linear on the bracket, so the turnover there is a line plus
    a short exact sum, and :func:`_solve_fees` solves the fee recurrence on it exactly; a
    trade whose ``e`` leaves its bracket is evaluated densely instead.

    Args:
        targets: ``(K, N)`` target weights.
        price_k: ``(K, N)`` execution prices.
        close_k: ``(K, N)`` closes of the execution sessions (``next_open``), else None.
        borrow_hold: Borrow charged in segment k on the sessions after its trade session,
            per unit ``V-_k`` (the trade session's own short value is added here).
        borrow_rate: Borrow fee per session.
        fee: Proportional fee per unit traded.
        has_shorts: Whether any target may be negative (each block then checks its own).

    Returns:
        The per-trade sums, growth, fees and turnover.
    """
    n_trades, n_cols = targets.shape
    sum_w, sum_abs, turnover = np.empty(n_trades), np.empty(n_trades), np.empty(n_trades)
    growth0 = np.empty(n_trades - 1)
    at_zero, at_edge, edge = np.empty(n_trades - 1), np.empty(n_trades - 1), np.zeros(n_trades - 1)
    close_dot = close_abs = None
    first = targets[0]
    sum_w[0], sum_abs[0] = first.sum(), np.abs(first).sum()
    turnover[0] = sum_abs[0]  # from a flat book
    if close_k is not None:
        close_dot, close_abs = np.empty(n_trades), np.empty(n_trades)
        shares = first / price_k[0]
        close_dot[0], close_abs[0] = shares @ close_k[0], np.abs(shares) @ close_k[0]
    step = block_rows(n_cols)
    work = np.empty((step + 1, n_cols))
    trade = np.empty((step, n_cols))
    temp = np.empty((step, n_cols))
    near = np.empty((step, n_cols), dtype=bool)
    picked: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for a in range(1, n_trades, step):
        b = min(n_trades, a + step)
        m, new, prev = b - a, targets[a:b], slice(a - 1, b - 1)
        # the new trades' own shares only matter for their value at the close (next_open)
        end = b if close_k is not None else b - 1
        shares = np.divide(targets[a - 1 : end], price_k[a - 1 : end], out=work[: end - a + 1])
        # |w| only where the block holds a short (the sign of a share count is its weight's)
        shorts = has_shorts and bool(min(shares.min(), new[-1].min()) < 0.0)
        sum_w[a:b] = _row_sum(new)
        sum_abs[a:b] = _row_sum(np.abs(new, out=temp[:m])) if shorts else sum_w[a:b]
        if close_dot is not None and close_abs is not None and close_k is not None:
            close_dot[a:b] = np.vecdot(shares[1:], close_k[a:b])
            close_abs[a:b] = (
                np.vecdot(np.abs(shares[1:], out=temp[:m]), close_k[a:b])
                if shorts
                else close_dot[a:b]
            )
        drifted = shares[:m]
        drifted *= price_k[a:b]
        g0 = 1.0 - sum_w[prev] + _row_sum(drifted)
        if borrow_rate > 0.0:
            if close_dot is not None and close_abs is not None:
                short = 0.5 * (close_abs[prev] - close_dot[prev])
            else:
                short = 0.5 * (sum_abs[prev] - sum_w[prev])
            g0 -= borrow_hold[prev] + borrow_rate * short
        growth0[prev] = g0
        moved = np.multiply(drifted, (1.0 / g0)[:, None], out=drifted)
        diff = np.subtract(new, moved, out=trade[:m])
        at_zero[prev] = turnover[a:b] = _row_sum(np.abs(diff, out=temp[:m]))
        if fee == 0.0:
            continue
        before = fee * turnover[a - 1 : b - 1]  # the previous fees at e = 0
        with np.errstate(divide="ignore", invalid="ignore"):
            top = float(np.max(before / (g0 - before)))
        if not (top >= 0.0 and np.isfinite(top)):  # bankrupt: left to the dense fallback
            at_edge[prev] = at_zero[prev]
            continue
        width = 1.25 * top if top > 0.0 else fee
        far = np.multiply(moved, -width, out=temp[:m])
        far += diff  # the trades at e = width
        crossed = np.less(np.multiply(diff, far, out=diff), 0.0, out=near[:m])
        np.abs(far, out=far)
        at_edge[prev] = _row_sum(far)
        edge[prev] = width
        flat = np.flatnonzero(crossed)
        picked.append((flat + (a - 1) * n_cols, moved.ravel()[flat], far.ravel()[flat]))
    growth = growth0.copy()
    cost = fee * turnover
    if fee > 0.0 and n_trades > 1:
        index, moved_c, far_c = (
            (np.concatenate(part) for part in zip(*picked, strict=True))
            if picked
            else (np.empty(0, np.int64), np.empty(0), np.empty(0))
        )
        row = index // n_cols
        base_c = targets[row + 1, index - row * n_cols] - moved_c
        at_zero -= np.bincount(row, np.abs(base_c), minlength=n_trades - 1)
        at_edge -= np.bincount(row, far_c, minlength=n_trades - 1)
        brackets = _Brackets(at_zero, at_edge, edge, (row, base_c, moved_c))
        cost, turnover[1:] = _solve_fees(
            growth0,
            cost,
            fee,
            brackets,
            lambda k, e: _dense_turnover(targets, price_k, growth0, k, e),
        )
        growth -= cost[:-1]
    return TradeSweep(sum_w, sum_abs, close_dot, close_abs, growth, cost, turnover)


def _dense_turnover(
    targets: np.ndarray, price_k: np.ndarray, growth0: np.ndarray, k: np.ndarray, e: np.ndarray
) -> np.ndarray:
    """Turnover of trades ``k + 1`` at ``e``, densely (outside their bracket)."""
    moved = targets[k] / price_k[k] * price_k[k + 1]
    moved *= (1.0 / growth0[k])[:, None]  # (called under the solver's np.errstate)
    diff = targets[k + 1] - moved
    return np.abs(diff - e[:, None] * moved).sum(axis=1)


def _solve_fees(
    g0: np.ndarray,
    cost: np.ndarray,
    fee: float,
    brackets: _Brackets,
    dense: Callable[[np.ndarray, np.ndarray], np.ndarray],
    *,
    prune: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``c_k = fee * turnover_k(e_k)``, ``e_k = g0_k / (g0_k - c_{k-1}) - 1``, exactly.

    ``cost`` starts at the fees at ``e = 0``. The vector fixed point is exact after at most
    K rounds (``c_k`` only depends on earlier fees) and a contraction with factor about
    ``fee * gross``, so it stops after a few. With many near names (high fees), from the
    third round on those whose trade is far from zero at the current ``e`` (64 times the
    last move of ``e``) join the lines with their sign there; at the solution each such sign
    is checked, and if one changed the fixed point is solved again without this shortcut.
    """
    row, base_c, moved_c = brackets.near
    edge = brackets.edge
    level = brackets.at_zero
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(edge > 0.0, (brackets.at_edge - level) / edge, 0.0)
    start, cost = cost, cost.copy()
    folded: list[tuple[np.ndarray, ...]] = []
    excess = np.zeros(g0.size)
    turnover = level
    # A bankrupt book (g0 <= fee) gives inf or NaN here; the caller diagnoses it.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for i in range(cost.size):
            before, last = cost[:-1], excess
            excess = before / (g0 - before)
            if prune and i >= 2 and row.size > g0.size:
                margin = 64.0 * np.abs(excess - last) + 1e-12 * (excess + fee)
                value = base_c - excess[row] * moved_c
                keep = np.abs(value) <= margin[row] * np.abs(moved_c)
                out = ~keep
                sign = np.sign(value[out])
                level = level + np.bincount(row[out], sign * base_c[out], minlength=g0.size)
                slope = slope - np.bincount(row[out], sign * moved_c[out], minlength=g0.size)
                folded.append((row[out], base_c[out], moved_c[out], sign))
                row, base_c, moved_c = row[keep], base_c[keep], moved_c[keep]
            turnover = level + excess * slope
            near = np.abs(base_c - excess[row] * moved_c)
            turnover += np.bincount(row, near, minlength=g0.size)
            outside = np.flatnonzero(~((excess >= 0.0) & (excess <= edge)))
            if outside.size:
                turnover[outside] = dense(outside, excess[outside])
            update = fee * turnover
            if np.array_equal(update, cost[1:], equal_nan=True):
                break
            cost[1:] = update
    for f_row, f_base, f_moved, sign in folded:
        with np.errstate(invalid="ignore", over="ignore"):
            held = sign * (f_base - excess[f_row] * f_moved) >= 0.0
        if not held.all():
            return _solve_fees(g0, start, fee, brackets, dense, prune=False)
    return cost, turnover


def exact_turnover(
    targets: np.ndarray, price_k: np.ndarray, growth: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-trade |w_k - u_k / D_k| at a known growth ``D`` (rows k >= 1), and its sum."""
    traded = np.abs(targets)
    drifted = targets[:-1] / price_k[:-1] * price_k[1:] / growth[:, None]
    np.abs(np.subtract(targets[1:], drifted, out=drifted), out=traded[1:])
    return traded, traded.sum(axis=1)


def solve_impact_costs(
    sweep: TradeSweep,
    targets: np.ndarray,
    price_k: np.ndarray,
    costs: CostModel,
    capital: float,
    sigma: np.ndarray,
    adv: np.ndarray,
    where: Callable[[int, int], str],
) -> tuple[np.ndarray, ...]:
    """Costs with square-root impact: fixed-point rounds over all trades at once.

    Args:
        sweep: The pass of :func:`trade_sweep` over the same trades.
        targets: ``(K, N)`` target weights.
        price_k: ``(K, N)`` execution prices.
        costs: The cost model (``impact_coef > 0``).
        capital: Starting capital in currency.
        sigma: ``(K, N)`` daily volatility at each decision.
        adv: ``(K, N)`` average dollar volume at each decision.
        where: Describes trade ``k``, column ``i`` in error messages.

    Returns:
        ``(cost, turnover, growth, impact)`` per trade (growth for k >= 1).

    Raises:
        InsufficientDataError: A traded name has no volatility or dollar volume yet.
    """
    fee, coef = costs.linear_rate, costs.impact_coef
    cost, growth = sweep.cost, sweep.growth
    growth0 = growth + cost[:-1]
    for _ in range(cost.size + 1):
        traded, turnover = exact_turnover(targets, price_k, growth)
        value = capital * np.cumprod(np.concatenate([[1.0], growth]))
        per_name = impact_cost(traded, sigma, adv, value[:, None], coef)
        if not np.isfinite(per_name).all():
            row, col = (int(x) for x in np.argwhere(~np.isfinite(per_name))[0])
            raise InsufficientDataError(
                f"The impact cost of trading {where(row, col)} is undefined: trailing "
                f"volatility {sigma[row, col]} and average dollar volume {adv[row, col]} over "
                f"impact_window={costs.impact_window} sessions.",
                fix="start the weights after at least 2 priced sessions with positive "
                "volume, drop names without volume, or set impact_coef=0.",
            )
        impact = per_name.sum(axis=1)
        update = fee * turnover + impact
        if np.array_equal(update, cost):
            break
        cost = update
        growth = growth0 - cost[:-1]
    return cost, turnover, growth, impact
