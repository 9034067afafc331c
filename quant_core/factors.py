"""Fama-French factor data and factor exposures (time-series OLS with optional Newey-West).

:func:`load_fama_french` reads Kenneth French's daily CSV files (Data Library:
``F-F_Research_Data_Factors_daily.CSV`` for the three-factor model of Fama & French 1993,
``F-F_Research_Data_5_Factors_2x3_daily.CSV`` for the five-factor model of Fama & French
2015). They come with a text preamble, ``YYYYMMDD`` dates, values in *percent* and sometimes a
copyright footer; the loader returns decimals. The files are not redistributable: quantdesk
never ships them, it reads them from ``<shared_data>/fama_french`` or a path you give.

:func:`factor_exposures` regresses a strategy's daily returns (minus the risk-free rate when
``excess=True``) on the factors::

    r_t - rf_t = alpha + sum_k beta_k * f_{k,t} + e_t

Standard errors are classical OLS, ``s^2 (X'X)^-1`` with ``s^2 = e'e / (n - p)``, or
Newey & West (1987) HAC: ``(X'X)^-1 S (X'X)^-1`` with
``S = sum_t e_t^2 x_t x_t' + sum_{l=1..L} w_l sum_t e_t e_{t-l} (x_t x_{t-l}' + x_{t-l} x_t')``
and Bartlett weights ``w_l = 1 - l / (L + 1)``, without a small-sample correction. The
default lag is Newey & West's (1994) rule ``floor(4 (n / 100) ** (2 / 9))``. The annualised
alpha compounds the daily one, ``(1 + alpha) ** 252 - 1``, as :func:`metrics.alpha_beta`
does (empyrical's convention).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import polars as pl
from scipy import stats

from quantdesk.quant_core.errors import DataError, InputError, InsufficientDataError, SchemaError
from quantdesk.quant_core.metrics import PERIODS_PER_YEAR, UndefinedMetricError, as_returns
from quantdesk.quant_core.settings import shared_data_dir

__all__ = [
    "FACTOR_FILES",
    "FACTOR_MODELS",
    "FactorExposure",
    "factor_exposures",
    "load_fama_french",
]

FactorModel = Literal["capm", "ff3", "ff5"]
FACTOR_MODELS: dict[str, tuple[str, ...]] = {
    "capm": ("mkt_rf",),
    "ff3": ("mkt_rf", "smb", "hml"),
    "ff5": ("mkt_rf", "smb", "hml", "rmw", "cma"),
}
FACTOR_FILES: dict[str, str] = {
    "capm": "F-F_Research_Data_Factors_daily.CSV",
    "ff3": "F-F_Research_Data_Factors_daily.CSV",
    "ff5": "F-F_Research_Data_5_Factors_2x3_daily.CSV",
}
_HEADER = re.compile(r"^[ \t]*(?:date)?[ \t]*,[ \t]*mkt-rf[^\n]*$", re.IGNORECASE | re.MULTILINE)
_DAILY_ROW = r"^\s*\d{8}\s*,"
# French's files code a missing observation as -99.99 or -999.
_MISSING_CODE = -99.99


def _check_model(model: str) -> tuple[str, ...]:
    if model not in FACTOR_MODELS:
        raise InputError(f"model={model!r} is unknown.", fix=f"use one of {sorted(FACTOR_MODELS)}.")
    return FACTOR_MODELS[model]


def _resolve(path_or_dir: str | Path | None, model: str) -> Path:
    if path_or_dir is None:
        root = shared_data_dir()
        if root is None:
            raise InputError(
                "No Fama-French data: the shared data folder was not found.",
                fix="pass load_fama_french(path_or_dir=...) or set QUANTDESK_SHARED_DATA to a "
                "folder with fama_french/ (Kenneth French's daily CSV files).",
            )
        path = root / "fama_french"
    else:
        path = Path(path_or_dir).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise InputError(
            f"Fama-French path {str(path)!r} does not exist.",
            fix="pass the daily CSV file or the folder that holds it.",
        )
    wanted = FACTOR_FILES[model].lower()
    matches = [p for p in sorted(path.iterdir()) if p.name.lower() == wanted]
    if not matches:
        raise InputError(
            f"{str(path)!r} has no {FACTOR_FILES[model]} (needed for model={model!r}); it "
            f"holds {sorted(p.name for p in path.iterdir())}.",
            fix="download the daily file from Kenneth French's Data Library into that folder, "
            "or pass the file path.",
        )
    return matches[0]


def _parse(path: Path) -> pl.DataFrame:
    """Columns ``date`` plus lower-case factor names, values still in percent."""
    text = path.read_text(encoding="latin-1").replace("\r\n", "\n")
    header = _HEADER.search(text)
    if header is None:
        raise DataError(
            f"{path.name} has no header line with 'Mkt-RF'.",
            fix="pass an unmodified daily factor file from Kenneth French's Data Library.",
        )
    names = ["date"] + [c.strip().lower().replace("-", "_") for c in header.group(0).split(",")[1:]]
    lines = pl.Series("line", text[header.end() :].strip("\n").split("\n"))
    is_row = lines.str.contains(_DAILY_ROW)
    # The daily block runs from the header to the first other line (blank, footer, ...).
    n_rows = int(is_row.arg_min() or 0) if not is_row.all() else lines.len()
    if n_rows == 0:
        raise DataError(
            f"{path.name} has no daily rows (YYYYMMDD dates) after its header.",
            fix="pass a *daily* factor file; the monthly files use YYYYMM dates.",
        )
    parts = lines.head(n_rows).str.split(",")
    bad = parts.list.len() != len(names)
    if bad.any():
        raise DataError(
            f"{path.name}: row {lines[int(bad.arg_max() or 0)]!r} does not have "
            f"{len(names)} fields {names}.",
            fix="re-download the file; it looks truncated or edited.",
        )
    frame = pl.DataFrame({"_p": parts}).select(
        pl.col("_p")
        .list.get(0)
        .str.strip_chars()
        .str.to_date("%Y%m%d", strict=False)
        .alias("date"),
        *[
            pl.col("_p").list.get(i).str.strip_chars().cast(pl.Float64, strict=False).alias(n)
            for i, n in enumerate(names[1:], start=1)
        ],
    )
    values = names[1:]
    broken = frame.filter(
        pl.any_horizontal([pl.col(c).is_null() for c in names])
        | pl.any_horizontal([pl.col(c) <= _MISSING_CODE for c in values])
    )
    if broken.height:
        raise DataError(
            f"{path.name} has {broken.height} row(s) with a bad date, an unparseable value or "
            f"a missing-value code (-99.99/-999), first {broken.row(0, named=True)}.",
            fix="re-download the file, or cut the period with missing factors.",
        )
    if not frame["date"].is_sorted() or frame["date"].n_unique() != frame.height:
        raise DataError(
            f"{path.name} has dates out of order or repeated.",
            fix="re-download the file; daily dates must be strictly increasing.",
        )
    return frame


def load_fama_french(
    path_or_dir: str | Path | None = None, *, model: FactorModel = "ff3"
) -> pl.DataFrame:
    """Load Fama-French daily factors in decimal units.

    Args:
        path_or_dir: A daily factor CSV, or a folder holding French's file for ``model``.
            Default: ``<shared_data>/fama_french`` (``QUANTDESK_SHARED_DATA``).
        model: ``"ff3"`` (three-factor file), ``"ff5"`` (five-factor file) or ``"capm"``
            (market factor of the three-factor file).

    Returns:
        Frame ``date, mkt_rf, smb, hml[, rmw, cma], rf`` (``date, mkt_rf, rf`` for CAPM),
        Float64 decimals (0.0045 = 0.45%), sorted by date.

    Raises:
        InputError: unknown model, or the file or folder is absent.
        DataError: the file cannot be parsed or lacks the model's factors.
    """
    factors = _check_model(model)
    path = _resolve(path_or_dir, model)
    frame = _parse(path)
    missing = [c for c in (*factors, "rf") if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path.name} lacks factor column(s) {missing} for model={model!r}; it has "
            f"{frame.columns[1:]}.",
            fix=f"use {FACTOR_FILES[model]} for this model.",
        )
    return frame.select("date", *[(pl.col(c) / 100.0).alias(c) for c in (*factors, "rf")])


@dataclass(frozen=True, slots=True)
class FactorExposure:
    """Result of a time-series factor regression (see the module docstring for formulas).

    Attributes:
        model: ``capm``, ``ff3`` or ``ff5``.
        factors: Factor names in regression order.
        excess: Whether the risk-free rate was subtracted from the returns.
        cov_type: ``"ols"`` or ``"newey-west"``.
        hac_lags: Newey-West lag ``L`` (None for OLS).
        alpha_daily: Regression intercept, per session.
        alpha_annual: ``(1 + alpha_daily) ** periods - 1``.
        betas: Factor loadings by name.
        std_errors, t_stats, p_values: By name, including ``"alpha"`` (two-sided, Student t
            with ``n - p`` degrees of freedom).
        r_squared, adj_r_squared: Centred R² and its degrees-of-freedom adjustment.
        residual_vol_annual: Residual standard deviation (ddof = p) times sqrt(periods).
        n_obs: Sessions in the regression (returns dates found in the factor data).
        n_unmatched: Return dates without factor data (left out).
        start, end: First and last regression date.
        periods: Periods per year.
    """

    model: str
    factors: tuple[str, ...]
    excess: bool
    cov_type: str
    hac_lags: int | None
    alpha_daily: float
    alpha_annual: float
    betas: MappingProxyType[str, float]
    std_errors: MappingProxyType[str, float]
    t_stats: MappingProxyType[str, float]
    p_values: MappingProxyType[str, float]
    r_squared: float
    adj_r_squared: float
    residual_vol_annual: float
    n_obs: int
    n_unmatched: int
    start: date
    end: date
    periods: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (mappings as dicts, dates as ISO strings)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, MappingProxyType):
                value = dict(value)
            elif isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out

    def to_markdown(self) -> str:
        """Coefficient table plus fit statistics."""
        se = "Newey-West" if self.cov_type == "newey-west" else "OLS"
        lines = [
            f"{self.model.upper()} regression, {self.start} to {self.end}, n={self.n_obs}, "
            f"{'excess' if self.excess else 'raw'} returns, {se} standard errors"
            + (f" (L={self.hac_lags})" if self.hac_lags is not None else ""),
            "",
            "| term | coef | t | p |",
            "|---|---|---|---|",
            f"| alpha (daily) | {self.alpha_daily:.6f} | {self.t_stats['alpha']:.2f} | "
            f"{self.p_values['alpha']:.3g} |",
        ]
        lines += [
            f"| {f} | {self.betas[f]:.4f} | {self.t_stats[f]:.2f} | {self.p_values[f]:.3g} |"
            for f in self.factors
        ]
        lines.append(
            f"\nalpha (annual) {self.alpha_annual:.2%}, R² {self.r_squared:.3f}, "
            f"residual vol {self.residual_vol_annual:.2%}"
        )
        return "\n".join(lines)


def _newey_west(X: np.ndarray, resid: np.ndarray, xtx_inv: np.ndarray, lags: int) -> np.ndarray:
    scores = X * resid[:, None]
    meat = scores.T @ scores
    for lag in range(1, lags + 1):
        gamma = scores[lag:].T @ scores[:-lag]
        meat += (1.0 - lag / (lags + 1.0)) * (gamma + gamma.T)
    return xtx_inv @ meat @ xtx_inv


def _returns_frame(returns: pl.DataFrame, column: str | None) -> pl.DataFrame:
    if not isinstance(returns, pl.DataFrame) or "date" not in returns.columns:
        raise InputError(
            "factor_exposures needs a polars frame with a 'date' column and one return series.",
            fix="pass e.g. pl.DataFrame({'date': dates, 'net': returns}).",
        )
    if returns.schema["date"] != pl.Date:
        raise SchemaError(
            f"The returns' date column has type {returns.schema['date']}, not Date.",
            fix="cast it: frame.with_columns(pl.col('date').cast(pl.Date)).",
        )
    values = as_returns(returns, column=column)
    out = pl.DataFrame({"date": returns["date"], "r": values})
    if out["date"].n_unique() != out.height:
        raise DataError(
            "The returns frame has repeated dates.",
            fix="pass one return per session (aggregate a panel into portfolio returns first).",
        )
    return out


def factor_exposures(
    returns: pl.DataFrame,
    factors: pl.DataFrame | None = None,
    *,
    model: FactorModel = "ff3",
    excess: bool = True,
    column: str | None = None,
    cov_type: Literal["ols", "newey-west"] = "ols",
    hac_lags: int | None = None,
    min_obs: int = 60,
    periods: int = PERIODS_PER_YEAR,
) -> FactorExposure:
    """Regress daily returns on Fama-French factors.

    Args:
        returns: Frame ``date, <series>`` of daily simple returns in decimals.
        factors: Output of :func:`load_fama_french`; loaded for ``model`` when None.
        model: ``"capm"``, ``"ff3"`` or ``"ff5"``.
        excess: Subtract the factor file's ``rf`` from the returns first (right for a
            fully invested portfolio). Pass False for self-financing long-short returns or
            returns that are already in excess of cash.
        column: Return column when the frame has several series.
        cov_type: ``"ols"`` or ``"newey-west"`` (HAC, for autocorrelated residuals).
        hac_lags: Newey-West lag; default ``floor(4 (n / 100) ** (2 / 9))``.
        min_obs: Fewest matched sessions accepted.
        periods: Periods per year, for the annualised alpha and residual volatility.

    Raises:
        InsufficientDataError: fewer than ``min_obs`` return dates have factor data.
        InputError: bad arguments; DataError/SchemaError: bad frames.
    """
    names = _check_model(model)
    if isinstance(periods, bool) or not isinstance(periods, int) or periods < 1:
        raise InputError(f"periods={periods!r} must be a positive integer.", fix="use 252.")
    if cov_type not in ("ols", "newey-west"):
        raise InputError(f"cov_type={cov_type!r} is unknown.", fix="use 'ols' or 'newey-west'.")
    frame = _returns_frame(returns, column)
    if factors is None:
        factors = load_fama_french(model=model)
    needed = [*names, "rf"] if excess else list(names)
    missing = [c for c in ["date", *needed] if c not in factors.columns]
    if missing:
        raise SchemaError(
            f"The factor frame lacks {missing} for model={model!r}; it has {factors.columns}.",
            fix=f"load it with load_fama_french(model={model!r}).",
        )
    data = frame.join(factors.select("date", *needed), on="date", how="inner").sort("date")
    n, p = data.height, len(names) + 1
    if n < max(min_obs, p + 2):
        raise InsufficientDataError(
            f"Only {n} of {frame.height} return dates have factor data "
            f"(factors cover {factors['date'].min()} to {factors['date'].max()}); "
            f"need at least {max(min_obs, p + 2)}.",
            fix="use returns inside the factor data's range, or lower min_obs.",
        )
    y = data["r"].to_numpy() - (data["rf"].to_numpy() if excess else 0.0)
    if y.max() == y.min():
        raise UndefinedMetricError(
            f"Factor regression undefined: the {'excess ' if excess else ''}returns are "
            f"constant over these {n} dates.",
            fix="check that the strategy traded in this period.",
        )
    X = np.column_stack([np.ones(n), data.select(names).to_numpy()])
    if np.linalg.matrix_rank(X) < p:
        raise DataError(
            f"The factors {list(names)} are collinear (or constant) over these {n} dates.",
            fix="use a longer period or a smaller model.",
        )
    xtx_inv = np.linalg.inv(X.T @ X)
    coef = xtx_inv @ (X.T @ y)
    resid = y - X @ coef
    rss = float(resid @ resid)
    if cov_type == "newey-west":
        lags = hac_lags if hac_lags is not None else math.floor(4 * (n / 100) ** (2 / 9))
        if lags < 0 or lags >= n:
            raise InputError(f"hac_lags={lags} must lie in [0, {n - 1}].", fix="use e.g. 5.")
        cov = _newey_west(X, resid, xtx_inv, lags)
    else:
        lags = None
        cov = rss / (n - p) * xtx_inv
    se = np.sqrt(np.diag(cov))
    # An exact fit (returns that *are* a factor mix) has se == 0: t = +-inf and p = 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, coef / se, np.copysign(np.inf, coef))
    pv = 2.0 * stats.t.sf(np.abs(t), df=n - p)
    terms = ["alpha", *names]
    r2 = 1.0 - rss / float(((y - y.mean()) ** 2).sum())
    return FactorExposure(
        model=model,
        factors=tuple(names),
        excess=excess,
        cov_type=cov_type,
        hac_lags=lags,
        alpha_daily=float(coef[0]),
        alpha_annual=float((1.0 + coef[0]) ** periods - 1.0),
        betas=MappingProxyType(dict(zip(names, map(float, coef[1:]), strict=True))),
        std_errors=MappingProxyType(dict(zip(terms, map(float, se), strict=True))),
        t_stats=MappingProxyType(dict(zip(terms, map(float, t), strict=True))),
        p_values=MappingProxyType(dict(zip(terms, map(float, pv), strict=True))),
        r_squared=r2,
        adj_r_squared=1.0 - (1.0 - r2) * (n - 1) / (n - p),
        residual_vol_annual=math.sqrt(rss / (n - p) * periods),
        n_obs=n,
        n_unmatched=frame.height - n,
        start=data["date"].min(),
        end=data["date"].max(),
        periods=periods,
    )
