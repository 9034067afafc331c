"""A compiled per-session kernel of the backtest engine (numba), used when numba is installed.

The kernel walks the sessions once and keeps the book the obvious way, as shares and cash (the
model of :mod:`quantdesk.quant_core.backtest_engine`, per unit of starting capital):

* each session ``t`` first pays the borrow fee on the short value held at the close of
  ``t - 1`` from cash;
* at a trade (execution session of decision ``k``) the value ``V = cash + shares . price`` at
  the execution prices is known before any fee, so the drifted weights
  ``shares * price / V``, the turnover ``sum |w_k - drifted|``, the fee
  ``(f * turnover + impact) * V`` and the new shares ``w_k * V / price`` follow directly;
  the fee is paid from cash;
* at each close, the value ``cash + shares . close`` and the short value
  ``sum max(-shares * close, 0)``.

Walking forward, the fee recurrence that the vectorised engine solves (a trade's fee shrinks
the value the next trade's drifted weights are measured against) needs no iteration: the
previous fees are already in the cash when the next trade is priced, and each trade's fee is
a closed-form function of ``V`` (square-root impact included: ``V`` in currency is
``capital * V``). So the kernel is exact by construction, like the reference loop of the tests.

Numerics: the row sums are compiled with ``fastmath={"reassoc", "nsz"}`` so that LLVM may
vectorise them (a sum in a different order, rounding differences of order 1e-16 relative);
divisions are never replaced by reciprocals (no ``arcp``), and NaN/inf semantics are kept
(no ``nnan``/``ninf``), so a bad input still shows up as a non-finite value. On any anomaly
(non-finite or non-positive value, undefined impact) :func:`simulate` returns ``None`` and
the caller runs the numpy engine, which raises the precise error.

Kernel choice: ``QUANTDESK_BACKTEST_KERNEL`` = ``auto`` (default: numba when importable),
``numba`` or ``numpy`` (see :func:`kernel_choice`). The first call compiles the kernel
(``cache=True`` stores it in ``__pycache__``, so later processes load it instead).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from quantdesk.quant_core.costs import COST_KINDS
from quantdesk.quant_core.errors import ConfigError

if TYPE_CHECKING:
    from quantdesk.quant_core.backtest_config import BacktestConfig
    from quantdesk.quant_core.backtest_engine import ArrayBacktest

__all__ = ["KERNEL_ENV", "Kernel", "kernel_choice", "numba_available", "simulate"]

KERNEL_ENV = "QUANTDESK_BACKTEST_KERNEL"
Kernel = Literal["numpy", "numba"]
_CHOICES = ("auto", "numba", "numpy")
# Reassociation lets LLVM vectorise the row sums; no arcp (exact divisions), no nnan/ninf
# (a NaN from a bad input must survive to the checks after the kernel).
_FASTMATH = {"reassoc", "nsz"}


def numba_available() -> bool:
    """Whether numba can be imported (without importing it)."""
    return importlib.util.find_spec("numba") is not None


def kernel_choice(environ: Mapping[str, str] | None = None) -> Kernel:
    """The backtest kernel to run, from ``QUANTDESK_BACKTEST_KERNEL`` (default ``auto``).

    Args:
        environ: The environment to read (default ``os.environ``).

    Returns:
        ``"numba"`` when asked for, or on ``auto`` when numba is importable; else ``"numpy"``.

    Raises:
        ConfigError: An unknown value, or ``numba`` asked for but not installed.
    """
    value = (os.environ if environ is None else environ).get(KERNEL_ENV, "auto").strip().lower()
    if value not in _CHOICES:
        raise ConfigError(
            f"{KERNEL_ENV}={value!r} is not a backtest kernel.",
            fix=f"set {KERNEL_ENV} to one of {', '.join(_CHOICES)} (or unset it).",
        )
    if value == "numpy":
        return "numpy"
    if numba_available():
        return "numba"
    if value == "numba":
        raise ConfigError(
            f"{KERNEL_ENV}=numba but numba is not installed.",
            fix=f"pip install numba, or set {KERNEL_ENV}=auto to fall back to numpy.",
        )
    return "numpy"


def _compiled() -> Any:
    """The jitted session loop (numba is imported on first use only: it costs ~0.3 s)."""
    global _KERNEL
    if _KERNEL is None:
        import numba

        _KERNEL = numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)(_session_loop)
    return _KERNEL


_KERNEL: Any = None


def _session_loop(
    mark: np.ndarray,
    execute: np.ndarray,
    targets: np.ndarray,
    trades: np.ndarray,
    next_close: bool,
    fee: float,
    borrow_rate: float,
    coef: float,
    capital: float,
    sigma: np.ndarray,
    adv: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Shares-and-cash walk over the sessions from the first trade (see the module docstring).

    Returns:
        Per output session: the value at the close, the long and the short market value
        (all per unit of starting capital); per trade: the value ``V`` just before it, the
        turnover and the impact (a fraction of ``V``); and the flat index ``k * N + i`` of
        the first trade whose impact is undefined (-1 if none).
    """
    n_rows, n_cols = mark.shape
    n_trades = targets.shape[0]
    first = trades[0]
    n_out = n_rows - first
    nav = np.empty(n_out)
    long_value = np.empty(n_out)
    short_value = np.empty(n_out)
    before = np.empty(n_trades)
    turnover = np.empty(n_trades)
    impact = np.zeros(n_trades)
    shares = np.zeros(n_cols)
    cash, short_prev, k, undefined = 1.0, 0.0, 0, -1
    for t in range(first, n_rows):
        cash -= borrow_rate * short_prev
        close = mark[t]
        j = t - first
        if k < n_trades and trades[k] == t:
            price, w = execute[t], targets[k]
            held = 0.0
            for i in range(n_cols):
                held += shares[i] * price[i]
            value = cash + held
            scale = 1.0 / value
            cost = 0.0
            if coef > 0.0:
                for i in range(n_cols):
                    size = abs(w[i] - shares[i] * price[i] * scale)
                    if size > 0.0:
                        move = coef * sigma[k, i] * np.sqrt(size * capital * value / adv[k, i])
                        if not np.isfinite(move) and undefined < 0:
                            undefined = k * n_cols + i
                        cost += move * size
            impact[k] = cost
            traded, total, longs = 0.0, 0.0, 0.0
            for i in range(n_cols):
                traded += abs(w[i] - shares[i] * price[i] * scale)
                shares[i] = w[i] * value / price[i]
                total += w[i]
                longs += max(w[i], 0.0)
            cost += fee * traded
            before[k], turnover[k] = value, traded
            cash = value * (1.0 - total) - cost * value
            k += 1
            if next_close:  # just after a trade at the close the book is worth w * V
                nav[j] = value * (1.0 - cost)
                long_value[j] = longs * value
                short_prev = (longs - total) * value
                short_value[j] = short_prev
                continue
        dot, short = 0.0, 0.0
        for i in range(n_cols):
            held_i = shares[i] * close[i]
            dot += held_i
            short += max(-held_i, 0.0)
        nav[j] = cash + dot
        long_value[j] = dot + short
        short_value[j] = short
        short_prev = short
    return nav, long_value, short_value, before, turnover, impact, undefined


def simulate(
    mark: np.ndarray,
    execute: np.ndarray,
    targets: np.ndarray,
    decisions: np.ndarray,
    cfg: BacktestConfig,
    impact_inputs: tuple[np.ndarray, np.ndarray] | None,
    notes: list[str],
) -> ArrayBacktest | None:
    """Run the compiled kernel on the inputs of the numpy engine's simulation.

    Args:
        mark: ``(T, N)`` closes (gaps filled), as prepared by ``backtest_arrays``.
        execute: ``(T, N)`` execution prices (the closes for ``next_close``).
        targets: ``(K, N)`` target weights, one row per decision that executes.
        decisions: ``(K,)`` decision rows.
        cfg: The backtest configuration.
        impact_inputs: ``(K, N)`` volatility and dollar volume at each decision, or None.
        notes: What the preparation adjusted.

    Returns:
        The :class:`~quantdesk.quant_core.backtest_engine.ArrayBacktest`, or ``None`` when the run
        is not well defined (bankrupt, non-finite input, undefined impact): the caller then
        runs the numpy engine, which raises the error that explains it.
    """
    from quantdesk.quant_core.backtest_engine import ArrayBacktest, session_costs

    costs = cfg.costs
    trades = decisions + 1
    # a view when the trades are consecutive sessions (daily): no 20 MB gather
    contiguous = trades[-1] - trades[0] == trades.size - 1
    price_k = execute[trades[0] : trades[-1] + 1] if contiguous else execute[trades]
    sigma, adv = impact_inputs if impact_inputs is not None else (np.empty((0, 0)),) * 2
    nav, long_value, short_value, before, turnover, impact, undefined = _compiled()(
        np.ascontiguousarray(mark, dtype=np.float64),
        np.ascontiguousarray(execute, dtype=np.float64),
        np.ascontiguousarray(targets, dtype=np.float64),
        np.ascontiguousarray(trades, dtype=np.int64),
        cfg.execution == "next_close",
        costs.linear_rate,
        costs.borrow_rate_daily,
        costs.impact_coef,
        float(cfg.capital or 0.0),
        np.ascontiguousarray(sigma, dtype=np.float64),
        np.ascontiguousarray(adv, dtype=np.float64),
    )
    well_defined = (
        undefined < 0
        and nav.min() > 0.0
        and np.isfinite(nav.max())
        and before.min() > 0.0
        and np.isfinite(turnover.sum() + long_value.sum() + short_value.sum())
    )
    if not well_defined:
        return None
    n_rows = mark.shape[0]
    first = int(trades[0])
    n_out = n_rows - first
    at_trade = trades - first
    segment = np.zeros(n_out, dtype=np.int64)
    segment[at_trade[1:]] = 1
    np.cumsum(segment, out=segment)
    previous = np.concatenate([[1.0], nav[:-1]])
    net = nav / previous - 1.0
    scale = before / previous[at_trade]  # V-_k over the previous close's value
    out, daily_turnover = session_costs(
        costs, n_out, at_trade, turnover, scale, impact, short_value, nav
    )
    gross = net + sum(out[kind] for kind in COST_KINDS)
    return ArrayBacktest(
        rows=np.arange(first, n_rows, dtype=np.int64),
        decision_rows=decisions,
        trade_rows=trades,
        gross=gross,
        net=net,
        turnover=daily_turnover,
        long_exposure=long_value / nav,
        short_exposure=short_value / nav,
        nav=nav,
        notes=tuple(notes),
        _targets=targets,
        _prices=price_k,
        _segment=segment,
        _value=nav / before[segment],
        _mark=mark,
        **out,
    )
