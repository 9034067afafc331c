"""``quantdesk backtest``: a cost-aware backtest of a signal, counted as a trial, with a report."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
import typer

from quantdesk.cli._output import echo_markdown
from quantdesk.cli.data_commands import (
    SOURCE_HELP,
    _as_of_opt,
    _column_opt,
    _load,
    _start_opt,
    _symbols_opt,
)
from quantdesk.quant_core.errors import InputError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["backtest_command"]


def backtest_command(
    source: Path = typer.Argument(..., help=SOURCE_HELP, exists=True),
    signal: str = typer.Option("mom_252_21", help="Feature used as the score (higher = long)."),
    reverse: bool = typer.Option(False, help="Go long the lowest scores instead."),
    method: str = typer.Option("quantile", help="quantile | proportional | vol_scaled."),
    side: str = typer.Option("long_short", help="long_only | long_short | dollar_neutral."),
    quantile: float = typer.Option(0.2, help="Share of names per leg (quantile method)."),
    gross: float = typer.Option(1.0, help="Gross exposure (sum of |weights|)."),
    max_weight: float | None = typer.Option(None, help="Cap on |weight| per name."),
    rebalance: str = typer.Option("weekly", help="daily | weekly | monthly."),
    execution: str = typer.Option("next_close", help="next_close | next_open (never same bar)."),
    commission_bps: float = typer.Option(1.0, help="Commission, bps of traded value."),
    half_spread_bps: float = typer.Option(2.0, help="Half the bid-ask spread, bps."),
    slippage_bps: float = typer.Option(1.0, help="Slippage, bps of traded value."),
    borrow_bps: float = typer.Option(50.0, help="Annual borrow fee on shorts, bps."),
    gross_study: bool = typer.Option(
        False, help="Explicitly study gross returns with all costs at zero."
    ),
    benchmark: str | None = typer.Option(
        None, help="Symbol in the data used as the benchmark (alpha/beta)."
    ),
    factors: str | None = typer.Option(
        None,
        help="ff3 | ff5: Fama-French exposures (files from QUANTDESK_SHARED_DATA/fama_french).",
    ),
    seed: int = typer.Option(7, min=0, help="Seed of the bootstrap confidence interval."),
    context: str | None = typer.Option(
        None, help="Research context (name or id) the trial is counted in (default: default)."
    ),
    symbols: str | None = _symbols_opt,
    start: datetime | None = _start_opt,
    as_of: datetime | None = _as_of_opt,
    column: list[str] | None = _column_opt,
    html: Path | None = typer.Option(None, help="Also write a self-contained HTML tear sheet."),
) -> None:
    """Backtest a signal with costs and a one-bar execution lag; report whether it is real."""
    import polars as pl

    from quantdesk.quant_core.backtest import backtest_signal
    from quantdesk.quant_core.backtest_config import BacktestConfig
    from quantdesk.quant_core.costs import CostModel
    from quantdesk.quant_core.features import compute_features
    from quantdesk.quant_core.multiple_testing import sharpe_confidence_interval
    from quantdesk.quant_core.research_context import get_context, use_context
    from quantdesk.quant_core.summary_report import BacktestReportInputs, markdown_summary
    from quantdesk.quant_core.trials import TrialRegistry
    from quantdesk.quant_core.validation import validate_prices

    prices = _load(source, symbols, start, as_of, column)
    validate_prices(prices).raise_on_error()
    factor_frame = None
    if factors is not None:  # fail before the run is counted as a trial
        from quantdesk.quant_core.factors import load_fama_french

        if factors not in ("ff3", "ff5"):
            raise InputError(f"--factors {factors!r} is unknown.", fix="use ff3 or ff5.")
        factor_frame = load_fama_french(model=factors)
    ctx = get_context(context) if context else None
    costs = (
        CostModel.zero()
        if gross_study
        else CostModel(
            commission_bps=commission_bps,
            half_spread_bps=half_spread_bps,
            slippage_bps=slippage_bps,
            borrow_bps_annual=borrow_bps,
        )
    )
    config = BacktestConfig(
        execution=execution,  # type: ignore[arg-type]
        rebalance=rebalance,  # type: ignore[arg-type]
        costs=costs,
        gross_study=gross_study,
    )
    with use_context(ctx) if ctx is not None else nullcontext():
        scores = (
            compute_features(prices, [signal], cross_sectional=None)
            .select("date", "symbol", (pl.col(signal) * (-1.0 if reverse else 1.0)).alias("score"))
            .drop_nulls()
        )
        if scores.height == 0:
            raise InputError(
                f"Signal {signal!r} has no value anywhere in the data (too short a history).",
                fix="use a shorter window or load more history.",
            )
        weight_options: dict[str, object] = {"side": side, "quantile": quantile, "gross": gross}
        if max_weight is not None:
            weight_options["max_weight"] = max_weight
        result = backtest_signal(prices, scores, method=method, config=config, **weight_options)  # type: ignore[arg-type]
    bench = _benchmark_returns(prices, benchmark) if benchmark else None
    net = result.returns.select("date", "net")
    exposure = None
    if factor_frame is not None:
        from quantdesk.quant_core.factors import factor_exposures

        # long-short books are self-financing: regress raw returns, not excess over cash
        exposure = factor_exposures(
            net,
            factor_frame,
            model=factors,  # type: ignore[arg-type]
            excess=side == "long_only",
            cov_type="newey-west",
        )
    ci = sharpe_confidence_interval(net, seed=seed)
    registry = TrialRegistry()
    run = result.run
    inputs = BacktestReportInputs.from_backtest(
        result,
        benchmark=bench,
        factor_exposure=exposure,
        sharpe_ci=ci,
        dsr=None if run is None else run.dsr,
        trial=None if run is None else run.trial,
        trial_sharpes=None
        if run is None
        else [r.sr_per_session for r in registry.trials(run.trial.context_id)],
        title=f"Backtest of {'-' if reverse else ''}{signal}: {side}, {rebalance} rebalance, "
        f"{execution}",
        as_of=as_of.date() if as_of else None,
    )
    echo_markdown(markdown_summary(inputs))
    if html is not None:
        from quantdesk.quant_core.tearsheet import html_tearsheet

        html_tearsheet(inputs, html)
        click.echo(f"\nwrote the tear sheet to {html}")


def _benchmark_returns(prices: pl.DataFrame, symbol: str) -> pl.DataFrame:
    import polars as pl

    from quantdesk.quant_core.features import price_column

    price = price_column(prices)
    series = prices.filter(pl.col("symbol") == symbol)
    if series.height < 2:
        raise InputError(
            f"Benchmark symbol {symbol!r} is not in the data.",
            fix="pass a symbol of the loaded prices (e.g. SPY) or drop --benchmark.",
        )
    return series.select("date", (pl.col(price).pct_change()).alias("net")).drop_nulls()
