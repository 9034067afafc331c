"""Tests for quant_core.factors: French file parsing, factor regressions, real-data exposures."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from scipy import stats

from quantdesk.quant_core.errors import DataError, InputError, InsufficientDataError, SchemaError
from quantdesk.quant_core.factors import (
    FACTOR_FILES,
    factor_exposures,
    load_fama_french,
)
from quantdesk.quant_core.loaders import load_prices
from quantdesk.quant_core.metrics import UndefinedMetricError

# The layout of French's original downloads: preamble, header with an empty first field,
# CRLF line ends and a copyright footer after a blank line.
FF3_TEXT = (
    "This file was created by CMPT_ME_BEME_RETS_DAILY using the 202412 CRSP database.\r\n"
    "The Tbill return is the simple daily rate.\r\n"
    "\r\n"
    ",Mkt-RF,SMB,HML,RF\r\n"
    "19260701,    0.10,   -0.25,   -0.27,   0.009\r\n"
    "19260702,    0.45,   -0.33,   -0.06,   0.009\r\n"
    "19260706,    0.17,    0.30,   -0.39,   0.009\r\n"
    "\r\n"
    " Copyright 2025 Kenneth R. French\r\n"
)
FF5_TEXT = (
    "This file was created by CMPT_ME_BEME_OP_INV_RETS_DAILY using the 202412 CRSP database.\n"
    "The 1-month TBill return is from Ibbotson and Associates, Inc.\n"
    "\n"
    "Date,Mkt-RF,SMB,HML,RMW,CMA,RF\n"
    "19630701,   -0.67,    0.02,   -0.35,    0.03,    0.13,   0.012\n"
    "19630702,    0.79,   -0.28,    0.28,   -0.08,   -0.21,   0.012"
)


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(text.encode("latin-1"))
    return path


def test_parses_french_layout_into_decimals(tmp_path: Path) -> None:
    path = _write(tmp_path, "F-F_Research_Data_Factors_daily.CSV", FF3_TEXT)
    expected = pl.DataFrame(
        {
            "date": [dt.date(1926, 7, 1), dt.date(1926, 7, 2), dt.date(1926, 7, 6)],
            "mkt_rf": [0.0010, 0.0045, 0.0017],
            "smb": [-0.0025, -0.0033, 0.0030],
            "hml": [-0.0027, -0.0006, -0.0039],
            "rf": [0.00009, 0.00009, 0.00009],
        }
    )
    assert_frame_equal(load_fama_french(path), expected, check_exact=False, rel_tol=1e-12)
    # A folder works too (the file name is matched case-insensitively), and CAPM keeps Mkt-RF.
    assert_frame_equal(
        load_fama_french(tmp_path, model="capm"),
        expected.select("date", "mkt_rf", "rf"),
        check_exact=False,
        rel_tol=1e-12,
    )


def test_parses_five_factor_file(tmp_path: Path) -> None:
    _write(tmp_path, FACTOR_FILES["ff5"].lower(), FF5_TEXT)
    frame = load_fama_french(tmp_path, model="ff5")
    assert frame.columns == ["date", "mkt_rf", "smb", "hml", "rmw", "cma", "rf"]
    assert frame.row(0) == pytest.approx(
        (dt.date(1963, 7, 1), -0.0067, 0.0002, -0.0035, 0.0003, 0.0013, 0.00012)
    )


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("Date,SMB,HML\n20200102,0.1,0.2\n", "no header line"),
        (",Mkt-RF,SMB,HML,RF\n202001,0.1,0.2,0.3,0.01\n", "no daily rows"),
        (",Mkt-RF,SMB,HML,RF\n20200102,0.1,0.2,0.3\n", "does not have 5 fields"),
        (",Mkt-RF,SMB,HML,RF\n20200102,-99.99,0.2,0.3,0.01\n", "missing-value code"),
        (",Mkt-RF,SMB,HML,RF\n20200102,abc,0.2,0.3,0.01\n", "unparseable"),
        (",Mkt-RF,SMB,HML,RF\n20201302,0.1,0.2,0.3,0.01\n", "bad date"),
        (",Mkt-RF,SMB,HML,RF\n20200103,0.1,0.2,0.3,0.01\n20200102,0.1,0.2,0.3,0.01\n", "order"),
    ],
)
def test_malformed_files_raise(tmp_path: Path, text: str, match: str) -> None:
    path = _write(tmp_path, "factors.csv", text)
    with pytest.raises(DataError, match=match):
        load_fama_french(path)


def test_path_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_fama_french(tmp_path / "nope")
    _write(tmp_path, "other.csv", FF3_TEXT)
    with pytest.raises(InputError, match="has no F-F_Research_Data_5_Factors"):
        load_fama_french(tmp_path, model="ff5")
    with pytest.raises(DataError, match=r"lacks factor column\(s\) \['rmw', 'cma'\]"):
        load_fama_french(tmp_path / "other.csv", model="ff5")
    with pytest.raises(InputError, match="model='ff4'"):
        load_fama_french(tmp_path, model="ff4")  # type: ignore[arg-type]
    monkeypatch.setenv("QUANTDESK_SHARED_DATA", str(tmp_path / "absent"))
    with pytest.raises(InputError, match="shared data folder was not found") as info:
        load_fama_french()
    assert "QUANTDESK_SHARED_DATA" in str(info.value.fix)


def _synthetic_factors(seed: int, n: int = 1500) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    days = [dt.date(2001, 1, 1) + dt.timedelta(days=i) for i in range(n)]
    f = rng.normal(0.0, [0.011, 0.006, 0.006, 0.004, 0.004], size=(n, 5))
    rf = np.full(n, 0.0001)
    names = ["mkt_rf", "smb", "hml", "rmw", "cma"]
    return pl.DataFrame({"date": days, **dict(zip(names, f.T, strict=True)), "rf": rf})


TRUE_BETAS = {"mkt_rf": 1.2, "smb": -0.4, "hml": 0.3, "rmw": 0.2, "cma": -0.1}


def _returns(factors: pl.DataFrame, betas: dict[str, float], alpha: float, noise: float, seed: int):
    rng = np.random.default_rng(seed)
    r = factors["rf"] + alpha + rng.normal(0.0, noise, factors.height)
    for name, b in betas.items():
        r = r + b * factors[name]
    return pl.DataFrame({"date": factors["date"], "strategy": r})


@pytest.mark.parametrize("model", ["capm", "ff3", "ff5"])
def test_recovers_planted_betas(model: str) -> None:
    factors = _synthetic_factors(3)
    names = {"capm": ["mkt_rf"], "ff3": ["mkt_rf", "smb", "hml"], "ff5": list(TRUE_BETAS)}[model]
    planted = {k: TRUE_BETAS[k] for k in names}
    res = factor_exposures(_returns(factors, planted, 2e-4, 0.005, 4), factors, model=model)
    assert res.factors == tuple(names)
    for name, beta in planted.items():
        # Within four standard errors of the planted loading (and the SE is small).
        assert abs(res.betas[name] - beta) < 4 * res.std_errors[name] < 0.2
    assert abs(res.alpha_daily - 2e-4) < 4 * res.std_errors["alpha"]
    assert res.alpha_annual == pytest.approx((1 + res.alpha_daily) ** 252 - 1)
    assert res.n_obs == 1500
    assert res.n_unmatched == 0
    assert res.r_squared > 0.7


def test_capm_matches_scipy_linregress() -> None:
    factors = _synthetic_factors(5)
    returns = _returns(factors, {"mkt_rf": 0.8}, 1e-4, 0.01, 6)
    res = factor_exposures(returns, factors, model="capm")
    y = (returns["strategy"] - factors["rf"]).to_numpy()
    fit = stats.linregress(factors["mkt_rf"].to_numpy(), y)
    assert res.betas["mkt_rf"] == pytest.approx(fit.slope, rel=1e-10)
    assert res.alpha_daily == pytest.approx(fit.intercept, rel=1e-8)
    assert res.std_errors["mkt_rf"] == pytest.approx(fit.stderr, rel=1e-10)
    assert res.std_errors["alpha"] == pytest.approx(fit.intercept_stderr, rel=1e-10)
    assert res.r_squared == pytest.approx(fit.rvalue**2, rel=1e-10)
    assert res.p_values["mkt_rf"] == pytest.approx(fit.pvalue, rel=1e-6, abs=1e-300)


def _reference_newey_west(X: np.ndarray, e: np.ndarray, lags: int) -> np.ndarray:
    """Textbook double loop over sessions, as an independent check."""
    n, p = X.shape
    meat = np.zeros((p, p))
    for t in range(n):
        meat += e[t] ** 2 * np.outer(X[t], X[t])
    for lag in range(1, lags + 1):
        w = 1 - lag / (lags + 1)
        for t in range(lag, n):
            meat += (
                w * e[t] * e[t - lag] * (np.outer(X[t], X[t - lag]) + np.outer(X[t - lag], X[t]))
            )
    bread = np.linalg.inv(X.T @ X)
    return bread @ meat @ bread


@pytest.mark.parametrize("lags", [0, 1, 5])
def test_newey_west_matches_reference(lags: int) -> None:
    factors = _synthetic_factors(7, n=300)
    # Autocorrelated noise so that the HAC correction matters.
    rng = np.random.default_rng(8)
    eps = np.convolve(rng.normal(0, 0.004, 302), [1.0, 0.6, 0.3], mode="valid")
    returns = _returns(factors, {"mkt_rf": 1.0, "smb": 0.5, "hml": -0.2}, 0.0, 1e-9, 9)
    returns = returns.with_columns(pl.col("strategy") + eps)
    res = factor_exposures(returns, factors, cov_type="newey-west", hac_lags=lags)
    X = np.column_stack([np.ones(300), factors.select("mkt_rf", "smb", "hml").to_numpy()])
    y = (returns["strategy"] - factors["rf"]).to_numpy()
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    se = np.sqrt(np.diag(_reference_newey_west(X, y - X @ coef, lags)))
    got = [res.std_errors[k] for k in ("alpha", "mkt_rf", "smb", "hml")]
    np.testing.assert_allclose(got, se, rtol=1e-9)
    assert res.hac_lags == lags
    auto = factor_exposures(returns, factors, cov_type="newey-west")
    assert auto.hac_lags == 5  # floor(4 * 3 ** (2 / 9))


def test_alignment_and_input_errors() -> None:
    factors = _synthetic_factors(11, n=200)
    returns = _returns(factors, {"mkt_rf": 1.0}, 0.0, 0.01, 12)
    later = returns.with_columns(pl.col("date") + dt.timedelta(days=150))
    res = factor_exposures(later, factors, model="capm", min_obs=40)
    assert (res.n_obs, res.n_unmatched) == (50, 150)
    assert res.start == dt.date(2001, 1, 1) + dt.timedelta(days=150)
    with pytest.raises(InsufficientDataError, match="Only 50 of 200 return dates"):
        factor_exposures(later, factors, model="capm")
    with pytest.raises(DataError, match="repeated dates"):
        factor_exposures(pl.concat([returns, returns]), factors)
    with pytest.raises(SchemaError, match="not Date"):
        factor_exposures(returns.with_columns(pl.col("date").cast(pl.Datetime)), factors)
    with pytest.raises(SchemaError, match=r"lacks \['rmw', 'cma'\]"):
        factor_exposures(returns, factors.drop("rmw", "cma"), model="ff5")
    with pytest.raises(InputError, match="'date' column"):
        factor_exposures(returns["strategy"], factors)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="cov_type"):
        factor_exposures(returns, factors, cov_type="hc3")  # type: ignore[arg-type]
    flat = returns.with_columns(pl.lit(0.0).alias("strategy"))
    with pytest.raises(UndefinedMetricError, match="constant"):
        factor_exposures(flat, factors, excess=False)
    with pytest.raises(DataError, match="NaN"):
        factor_exposures(returns.with_columns(pl.lit(float("nan")).alias("strategy")), factors)


def test_excess_flag_and_exact_fit() -> None:
    factors = _synthetic_factors(13, n=120)
    # Returns equal to the market return exactly: beta 1, alpha 0, R² 1, no warnings.
    market = factors.select("date", (pl.col("mkt_rf") + pl.col("rf")).alias("spy"))
    res = factor_exposures(market, factors, model="capm")
    assert res.betas["mkt_rf"] == pytest.approx(1.0, rel=1e-10)
    assert res.alpha_daily == pytest.approx(0.0, abs=1e-15)
    assert res.r_squared == pytest.approx(1.0)
    # Without the rf subtraction the constant rf shows up in alpha.
    raw = factor_exposures(market, factors, model="capm", excess=False)
    assert raw.alpha_daily == pytest.approx(1e-4, rel=1e-8)


def test_result_serialises() -> None:
    factors = _synthetic_factors(17, n=300)
    res = factor_exposures(_returns(factors, TRUE_BETAS, 0.0, 0.005, 18), factors, model="ff5")
    d = res.to_dict()
    json.dumps(d)
    assert d["betas"].keys() == set(TRUE_BETAS)
    assert set(d["t_stats"]) == {"alpha", *TRUE_BETAS}
    md = res.to_markdown()
    assert "| mkt_rf |" in md
    assert "FF5 regression" in md
    with pytest.raises(TypeError):
        res.betas["smb"] = 0.0  # type: ignore[index]


@settings(max_examples=50, deadline=None)
@given(
    betas=st.lists(st.floats(-2.0, 2.0), min_size=3, max_size=3),
    alpha=st.floats(-1e-3, 1e-3),
    seed=st.integers(0, 2**16),
)
def test_noise_free_returns_are_recovered(betas: list[float], alpha: float, seed: int) -> None:
    assume(max(abs(b) for b in betas) > 1e-3)
    factors = _synthetic_factors(seed, n=80)
    planted = dict(zip(["mkt_rf", "smb", "hml"], betas, strict=True))
    res = factor_exposures(_returns(factors, planted, alpha, 0.0, seed), factors, min_obs=60)
    for name, beta in planted.items():
        assert res.betas[name] == pytest.approx(beta, abs=1e-9)
    assert res.alpha_daily == pytest.approx(alpha, abs=1e-12)


@pytest.mark.realdata
def test_real_french_files(shared_data: Path) -> None:
    ff3 = load_fama_french(model="ff3")
    ff5 = load_fama_french(shared_data / "fama_french", model="ff5")
    assert ff3.height == 25901
    assert ff5.height == 15481
    assert (ff3["date"].min(), ff3["date"].max()) == (dt.date(1926, 7, 1), dt.date(2024, 12, 31))
    assert ff5["date"].min() == dt.date(1963, 7, 1)
    assert ff3.row(1) == pytest.approx((dt.date(1926, 7, 2), 0.0045, -0.0033, -0.0006, 0.00009))
    # Decimal units: no daily market move above 25% (1929 and 1987 included).
    assert ff3["mkt_rf"].abs().max() < 0.25


@pytest.mark.realdata
def test_real_etf_exposures(shared_data: Path) -> None:
    prices = load_prices(
        shared_data / "prices" / "yfinance_adjusted_ohlcv_2005_2024.parquet",
        symbols=["SPY", "IWM"],
    )
    rets = prices.select(
        "date",
        "symbol",
        (pl.col("close") / pl.col("close").shift(1).over("symbol") - 1).alias("r"),
    ).drop_nulls()
    ff3 = load_fama_french(model="ff3")

    def fit(symbol: str):
        frame = rets.filter(pl.col("symbol") == symbol).select("date", "r")
        return factor_exposures(frame, ff3, cov_type="newey-west")

    spy, iwm = fit("SPY"), fit("IWM")
    # SPY is the large-cap market: beta near 1, a small-cap tilt below 0, a near-perfect fit.
    assert 0.95 < spy.betas["mkt_rf"] < 1.03
    assert -0.25 < spy.betas["smb"] < 0.0
    assert spy.r_squared > 0.97
    assert abs(spy.t_stats["alpha"]) < 2
    assert spy.n_unmatched == 0
    # IWM is the Russell 2000: strongly loaded on size.
    assert iwm.betas["smb"] > 0.7
