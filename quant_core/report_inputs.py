"""What a backtest report is built from: :class:`BacktestReportInputs` and its validation.

The inputs are a backtest's ``returns`` frame plus whatever inference results exist (DSR, PBO,
Sharpe interval, factor exposure, IC series, the trial record). They are checked once, when the
object is built, so that the report builder (:func:`~.summary_report.build_backtest_report`) and
the renderers (markdown, :mod:`~.tearsheet`) never meet a bad frame: frames must have the needed
columns, Date ``date`` strictly increasing, finite numeric values; result objects must be of the
right type; provenance given next to a ``trial`` must agree with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import polars as pl

from quantdesk.quant_core.errors import DataError, InputError, InsufficientDataError, SchemaError
from quantdesk.quant_core.factors import FactorExposure
from quantdesk.quant_core.metrics import PERIODS_PER_YEAR, as_returns
from quantdesk.quant_core.multiple_testing import SharpeIntervalResult
from quantdesk.quant_core.overfitting import PBOResult
from quantdesk.quant_core.sharpe_inference import DSRResult
from quantdesk.quant_core.trials import TrialRecord

__all__ = [
    "COST_COLUMNS",
    "OPTIONAL_COLUMNS",
    "BacktestReportInputs",
    "mean_ic_by_date",
]

COST_COLUMNS = ("cost_commission", "cost_spread", "cost_slippage", "cost_impact", "cost_borrow")
OPTIONAL_COLUMNS = ("gross", "turnover", *COST_COLUMNS, "long_exposure", "short_exposure")


def _frame(frame: Any, what: str, required: tuple[str, ...], fix: str) -> pl.DataFrame:
    """Check a frame: type, columns, non-empty, Date ``date``, finite numeric values."""
    if not isinstance(frame, pl.DataFrame):
        raise InputError(
            f"The {what} must be a polars DataFrame, not {type(frame).__name__}.", fix=fix
        )
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise SchemaError(f"The {what} lacks column(s) {missing}; it has {frame.columns}.", fix=fix)
    if frame.height == 0:
        raise InsufficientDataError(f"The {what} is empty.", fix=fix)
    for col in required:
        dtype = frame.schema[col]
        if col == "date" and dtype != pl.Date:
            raise SchemaError(
                f"The {what} column 'date' has dtype {dtype}, not Date.",
                fix="cast it: frame.with_columns(pl.col('date').cast(pl.Date)).",
            )
        if col != "date" and not dtype.is_numeric():
            raise SchemaError(
                f"The {what} column {col!r} has dtype {dtype}.", fix="cast to Float64."
            )
        if frame[col].null_count():
            raise DataError(
                f"The {what} column {col!r} has {frame[col].null_count()} null value(s).",
                fix="drop or fill them explicitly before reporting.",
            )
        if col != "date":
            as_returns(frame[col], what=f"{what} column {col!r}")  # NaN/inf -> DataError
    return frame


def _unique_sorted_dates(frame: pl.DataFrame, what: str) -> None:
    steps = frame["date"].diff().drop_nulls()
    if steps.len() and steps.min() <= timedelta(0):  # type: ignore[operator]
        bad = int((frame["date"].diff() <= timedelta(0)).arg_max() or 0)
        raise DataError(
            f"The {what} dates are not strictly increasing (row {bad}: {frame['date'][bad]} after "
            f"{frame['date'][bad - 1]}).",
            fix="sort by date and keep one row per date, e.g. frame.sort('date').unique('date').",
        )


def _check_type(value: Any, cls: type, name: str, fix: str) -> None:
    if value is not None and not isinstance(value, cls):
        raise InputError(f"{name} must be a {cls.__name__}, got {type(value).__name__}.", fix=fix)


def mean_ic_by_date(ic_by_date: pl.DataFrame) -> pl.DataFrame:
    """Mean IC per date (``date, ic``), sorted: folds of combinatorial CV share dates."""
    return ic_by_date.group_by("date").agg(pl.col("ic").mean()).sort("date")


@dataclass(frozen=True, eq=False)  # eq would compare polars frames element-wise
class BacktestReportInputs:
    """Everything a backtest report can show; only ``returns`` is required.

    Attributes:
        returns: A backtest's returns frame: ``date`` (Date, strictly increasing) and ``net``
            are required; ``gross``, ``turnover``, ``cost_*``, ``long_exposure`` and
            ``short_exposure`` (:data:`OPTIONAL_COLUMNS`) are used when present.
        benchmark: Benchmark returns ``date, <series>`` covering every return date.
        dsr: Deflated Sharpe ratio of these net returns (e.g. from the trial registry).
        pbo: Probability of backtest overfitting of the search that produced the strategy.
        sharpe_ci: Bootstrap confidence interval of the Sharpe of these net returns.
        factor_exposure: Factor regression of these returns.
        ic_by_date: Per-date information coefficient ``date, ic`` (extra columns such as
            ``fold`` allowed; several rows per date are averaged).
        ic_decay: Mean IC by label horizon ``horizon, ic_mean``.
        trial: The registry record of this backtest.
        trial_sharpes: Per-period Sharpe ratios of every trial behind ``dsr`` (for the plot).
        title: Report title (any text; renderers escape it).
        notes: Free-text notes shown at the end.
        context_id, as_of, data_hash, config_hash, code_version: Provenance; the hashes,
            context and code version default to the ``trial``'s, and must agree with it.
        periods: Periods per year.
        dsr_threshold: DSR at or above which the strategy passes (0.95).
    """

    returns: pl.DataFrame
    benchmark: pl.DataFrame | None = None
    dsr: DSRResult | None = None
    pbo: PBOResult | None = None
    sharpe_ci: SharpeIntervalResult | None = None
    factor_exposure: FactorExposure | None = None
    ic_by_date: pl.DataFrame | None = None
    ic_decay: pl.DataFrame | None = None
    trial: TrialRecord | None = None
    trial_sharpes: tuple[float, ...] | None = None
    title: str = "Backtest report"
    notes: tuple[str, ...] = ()
    context_id: str | None = None
    as_of: date | str | None = None
    data_hash: str | None = None
    config_hash: str | None = None
    code_version: str | None = None
    periods: int = PERIODS_PER_YEAR
    dsr_threshold: float = 0.95

    def __post_init__(self) -> None:
        fix = "pass BacktestResult.returns (date, net, gross, turnover, cost_* ...)."
        present = [c for c in OPTIONAL_COLUMNS if c in getattr(self.returns, "columns", ())]
        frame = _frame(self.returns, "returns frame", ("date", "net", *present), fix)
        as_returns(frame["net"], what="net returns", min_obs=2)
        _unique_sorted_dates(frame, "returns frame")
        object.__setattr__(self, "returns", frame.select("date", "net", *present))
        if self.benchmark is not None:
            values = [c for c in getattr(self.benchmark, "columns", []) if c != "date"]
            bfix = "pass a frame 'date, <benchmark return>', e.g. spy.select('date', 'ret')."
            if len(values) != 1:
                raise InputError(
                    f"The benchmark frame has columns {values}; expected one "
                    "series besides 'date'.",
                    fix=bfix,
                )
            bench = _frame(self.benchmark, "benchmark frame", ("date", values[0]), bfix)
            _unique_sorted_dates(bench, "benchmark frame")
        if self.ic_by_date is not None:
            _frame(
                self.ic_by_date,
                "ic_by_date frame",
                ("date", "ic"),
                "pass training_report.ic_by_date(...) output (date, ic).",
            )
        if self.ic_decay is not None:
            decay = _frame(
                self.ic_decay,
                "ic_decay frame",
                ("horizon", "ic_mean"),
                "pass one row per label horizon: horizon, ic_mean.",
            )
            object.__setattr__(self, "ic_decay", decay.sort("horizon"))
        for value, cls, name in (
            (self.dsr, DSRResult, "dsr"),
            (self.pbo, PBOResult, "pbo"),
            (self.sharpe_ci, SharpeIntervalResult, "sharpe_ci"),
            (self.factor_exposure, FactorExposure, "factor_exposure"),
            (self.trial, TrialRecord, "trial"),
        ):
            _check_type(value, cls, name, f"pass the result object of the {name} function.")
        if self.trial_sharpes is not None:
            sharpes = as_returns(self.trial_sharpes, what="trial_sharpes")
            object.__setattr__(self, "trial_sharpes", tuple(float(x) for x in sharpes))
        self._normalise_text()

    def _normalise_text(self) -> None:
        notes = (self.notes,) if isinstance(self.notes, str) else tuple(self.notes)
        object.__setattr__(self, "notes", tuple(str(n) for n in notes))
        object.__setattr__(self, "title", str(self.title))
        if isinstance(self.periods, bool) or not isinstance(self.periods, int) or self.periods < 1:
            raise InputError(
                f"periods={self.periods!r} must be a positive integer.",
                fix="use 252 for daily returns.",
            )
        if not (isinstance(self.dsr_threshold, float | int) and 0.0 < self.dsr_threshold < 1.0):
            raise InputError(
                f"dsr_threshold={self.dsr_threshold!r} is not in (0, 1).", fix="use 0.95."
            )
        if self.trial is None:
            return
        for name in ("context_id", "data_hash", "config_hash", "code_version"):
            given, recorded = getattr(self, name), getattr(self.trial, name)
            if given is None:
                object.__setattr__(self, name, recorded)
            elif given != recorded:
                raise InputError(
                    f"{name}={given!r} disagrees with the trial's {recorded!r} "
                    f"(trial {self.trial.trial_id}).",
                    fix=f"drop {name}= (it defaults to the trial's) or report the right trial.",
                )

    @classmethod
    def from_backtest(cls, result: Any, **kwargs: Any) -> BacktestReportInputs:
        """Build the inputs from a ``BacktestResult`` (anything with a ``returns`` frame).

        Args:
            result: The backtest result.
            **kwargs: Any other field of :class:`BacktestReportInputs`.
        """
        returns = getattr(result, "returns", None)
        if not isinstance(returns, pl.DataFrame):
            raise InputError(
                f"{type(result).__name__} has no 'returns' polars frame.",
                fix="pass the BacktestResult of run_backtest(...), or build "
                "BacktestReportInputs(returns=frame) directly.",
            )
        return cls(returns=returns, **kwargs)
