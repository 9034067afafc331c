"""Backtest reports: the markdown summary and the self-contained HTML tear sheet."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from plotly.offline import get_plotlyjs

from quantdesk.quant_core.errors import DataError, InputError, InsufficientDataError, SchemaError
from quantdesk.quant_core.factors import factor_exposures
from quantdesk.quant_core.metrics import (
    UndefinedMetricError,
    annual_turnover,
    performance_summary,
    sharpe_ratio,
)
from quantdesk.quant_core.multiple_testing import sharpe_confidence_interval
from quantdesk.quant_core.overfitting import probability_of_backtest_overfitting
from quantdesk.quant_core.research_context import create_context
from quantdesk.quant_core.sharpe_inference import (
    deflated_sharpe_ratio,
    min_track_record_length,
    probabilistic_sharpe_ratio,
)
from quantdesk.quant_core.summary_report import (
    COST_COLUMNS,
    BacktestReportInputs,
    build_backtest_report,
    markdown_summary,
)
from quantdesk.quant_core.tearsheet import (
    PANELS,
    ROLLING_SHARPE_WINDOW,
    html_tearsheet,
    tearsheet_figures,
)
from quantdesk.quant_core.trials import TrialRegistry

N_TRIALS = 20


def _sessions(n: int, start: dt.date = dt.date(2019, 1, 1)) -> pl.Series:
    days = pl.date_range(start, start + dt.timedelta(days=2 * n + 10), eager=True)
    return days.filter(days.dt.weekday() <= 5).head(n).alias("date")


def _returns_frame(rng: np.random.Generator, n: int = 756, drift: float = 0.0008) -> pl.DataFrame:
    gross = rng.normal(drift, 0.01, n)
    turnover = np.abs(rng.normal(0.08, 0.04, n))
    costs = {c: turnover * rng.uniform(1e-4, 4e-4) for c in COST_COLUMNS}
    net = gross - sum(costs.values())
    return pl.DataFrame(
        {
            "date": _sessions(n),
            "gross": gross,
            "net": net,
            "turnover": turnover,
            **costs,
            "long_exposure": np.full(n, 1.0),
            "short_exposure": np.full(n, -0.5),
        }
    )


@pytest.fixture
def frame(rng: np.random.Generator) -> pl.DataFrame:
    return _returns_frame(rng)


@pytest.fixture
def full_inputs(frame: pl.DataFrame, rng: np.random.Generator) -> BacktestReportInputs:
    trial_sharpes = rng.normal(0.0, 0.03, N_TRIALS)
    net = frame.select("date", "net")
    ic = pl.DataFrame(
        {
            "fold": np.repeat([0, 1], frame.height),
            "date": pl.concat([frame["date"], frame["date"]]),
            "ic": rng.normal(0.02, 0.1, 2 * frame.height),
        }
    )
    return BacktestReportInputs(
        returns=frame,
        dsr=deflated_sharpe_ratio(net, n_trials=N_TRIALS, trial_sharpes=trial_sharpes),
        pbo=probability_of_backtest_overfitting(rng.normal(0.0, 0.01, (240, 6)), n_splits=8),
        sharpe_ci=sharpe_confidence_interval(net, reps=200, seed=7),
        ic_by_date=ic,
        ic_decay=pl.DataFrame({"horizon": [21, 1, 5], "ic_mean": [0.01, 0.03, 0.02]}),
        trial_sharpes=tuple(trial_sharpes),
        title="Momentum 12-1",
        notes=("Synthetic returns.",),
        as_of=dt.date(2022, 1, 1),
    )


def _table(markdown: str) -> dict[str, str]:
    rows = re.findall(r"^\| (.+?) \| (.+?) \|$", markdown, flags=re.M)
    return dict(rows)


# -- markdown summary ---------------------------------------------------------------------


def test_headline_numbers_are_the_metrics(full_inputs: BacktestReportInputs) -> None:
    frame = full_inputs.returns
    perf = performance_summary(frame.select("date", "net"))
    drag = (frame["gross"] - frame["net"]).mean() * 252
    table = _table(markdown_summary(full_inputs))
    expected = {
        "CAGR": f"{perf.cagr:.2%}",
        "Annual volatility": f"{perf.annual_volatility:.2%}",
        "Sharpe (annualised)": f"{perf.sharpe:.2f}",
        "Sortino": f"{perf.sortino:.2f}",
        "Max drawdown": f"{perf.max_drawdown:.2%}",
        "Max drawdown duration": f"{perf.max_drawdown_duration} sessions",
        "Calmar": f"{perf.calmar:.2f}",
        "Hit rate": f"{perf.hit_rate:.2%}",
        "Annual turnover": f"{annual_turnover(frame):.2f}x",
        "Cost drag (gross - net, annualised)": f"{drag:.2%}",
        "VaR 95% (1 day)": f"{perf.var_95:.2%}",
        "CVaR 95% (1 day)": f"{perf.cvar_95:.2%}",
    }
    assert {k: table[k] for k in expected} == expected


def test_cost_drag_is_gross_minus_net(full_inputs: BacktestReportInputs) -> None:
    frame = full_inputs.returns
    report = build_backtest_report(full_inputs)
    assert report.cost_drag == pytest.approx(float((frame["gross"] - frame["net"]).mean()) * 252)
    # net = gross - sum(costs), so the kinds add up to the drag.
    assert sum(report.cost_drag_by_kind.values()) == pytest.approx(report.cost_drag)


def test_is_it_real_numbers(full_inputs: BacktestReportInputs) -> None:
    md = markdown_summary(full_inputs)
    net = full_inputs.returns["net"].to_numpy()
    dsr, pbo, ci = full_inputs.dsr, full_inputs.pbo, full_inputs.sharpe_ci
    assert dsr is not None
    assert pbo is not None
    assert ci is not None
    psr = probabilistic_sharpe_ratio(net)
    trl = min_track_record_length(net)
    _, lo, hi = ci.annualized
    for text in (
        f"DSR: {dsr.dsr:.3f} with N = {N_TRIALS} trials (SR0 = {dsr.sr0_annualized:.2f}",
        f"PSR: {psr.psr:.3f}",
        f"MinTRL (95%, SR* = 0): {trl.min_obs:,.0f} sessions",
        f"PBO: {pbo.pbo:.3f} over {pbo.n_combinations:,} CSCV splits of 6 variants",
        f"Bootstrap CI of Sharpe: [{lo:.2f}, {hi:.2f}] annualised",
    ):
        assert text in md
    assert "Warning" not in md  # every result was computed on these net returns


@pytest.mark.parametrize(
    ("dsr_value", "pbo_value", "verdict", "passed"),
    [
        (0.30, None, "Verdict: not distinguishable from the best of 20 noise trials", False),
        (0.9499, None, "Verdict: not distinguishable from the best of 20 noise trials", False),
        (0.95, None, "Verdict: distinguishable from the best of 20 noise trials", True),
        (0.99, 0.2, "Verdict: distinguishable from the best of 20 noise trials", True),
        (0.99, 0.6, "but PBO 0.600 >= 0.5: the selection procedure overfits", True),
    ],
)
def test_verdict_threshold(
    full_inputs: BacktestReportInputs,
    dsr_value: float,
    pbo_value: float | None,
    verdict: str,
    passed: bool,
) -> None:
    assert full_inputs.dsr is not None
    assert full_inputs.pbo is not None
    pbo = None if pbo_value is None else dataclasses.replace(full_inputs.pbo, pbo=pbo_value)
    inputs = dataclasses.replace(
        full_inputs, dsr=dataclasses.replace(full_inputs.dsr, dsr=dsr_value), pbo=pbo
    )
    report = build_backtest_report(inputs)
    assert verdict in report.verdict
    assert report.dsr_passed is passed
    assert f"**{report.verdict}**" in report.to_markdown()


def test_verdict_on_real_deflation(rng: np.random.Generator) -> None:
    strong = _returns_frame(rng, drift=0.003)  # annualised Sharpe near 4.5
    weak = _returns_frame(rng, drift=0.0003)
    for frame, n_trials, passed in ((strong, 5, True), (weak, 200, False)):
        dsr = deflated_sharpe_ratio(
            frame.select("date", "net"), n_trials=n_trials, var_trial_sharpes=0.03**2
        )
        report = build_backtest_report(BacktestReportInputs(returns=frame, dsr=dsr))
        assert report.dsr_passed is passed
        assert ("not distinguishable" in report.verdict) is not passed


def test_missing_pieces_are_said_to_be_missing(frame: pl.DataFrame) -> None:
    md = markdown_summary(BacktestReportInputs(returns=frame.select("date", "net")))
    table = _table(md)
    assert table["Annual turnover"] == "not available (no turnover column)"
    assert table["Cost drag (gross - net, annualised)"].startswith("not available")
    assert table["Alpha / beta"] == "not computed (no benchmark given)"
    assert table["data hash"] == "not recorded"
    for text in (
        "DSR: not computed (no trial registry context)",
        "PBO: not computed",
        "Bootstrap CI of Sharpe: not computed",
        "IC by date: not given.",
        "IC decay: not given.",
        "Factor exposure\n\n- Not computed",
        "Verdict: undetermined",
    ):
        assert text in md


def test_undefined_min_trl_is_explained(rng: np.random.Generator) -> None:
    losing = _returns_frame(rng, drift=-0.001)
    md = markdown_summary(BacktestReportInputs(returns=losing))
    assert "MinTRL (95%, SR* = 0): undefined (The Sharpe ratio" in md


def test_result_of_another_series_is_flagged(full_inputs: BacktestReportInputs) -> None:
    gross = full_inputs.returns.select("date", "gross")
    inputs = dataclasses.replace(
        full_inputs, dsr=deflated_sharpe_ratio(gross, n_trials=3, var_trial_sharpes=1e-4)
    )
    assert "Warning: the DSR was computed on 756 returns" in markdown_summary(inputs)


def test_benchmark_alpha_beta(frame: pl.DataFrame, rng: np.random.Generator) -> None:
    bench = pl.DataFrame({"date": frame["date"], "spy": rng.normal(0.0004, 0.01, frame.height)})
    table = _table(markdown_summary(BacktestReportInputs(returns=frame, benchmark=bench)))
    perf = performance_summary(frame.select("date", "net"), benchmark=bench)
    assert table["Beta"] == f"{perf.beta:.2f}"
    assert table["Alpha vs benchmark (annual)"] == f"{perf.alpha:.2%}"


def test_factor_exposure_table(frame: pl.DataFrame, rng: np.random.Generator) -> None:
    mkt = rng.normal(0.0004, 0.01, frame.height)
    factors = pl.DataFrame(
        {
            "date": frame["date"],
            "mkt_rf": mkt,
            "smb": rng.normal(0, 0.005, frame.height),
            "hml": rng.normal(0, 0.005, frame.height),
            "rf": np.full(frame.height, 1e-4),
        }
    )
    exposure = factor_exposures(frame.select("date", "net"), factors, model="ff3", excess=False)
    md = markdown_summary(BacktestReportInputs(returns=frame, factor_exposure=exposure))
    table = re.findall(r"^\| (mkt_rf|smb|hml) \| (\S+) \| (\S+) \|", md, flags=re.M)
    assert table == [
        (f, f"{exposure.betas[f]:.4f}", f"{exposure.t_stats[f]:.2f}") for f in exposure.factors
    ]
    assert f"FF3 regression, {exposure.start} to {exposure.end}, n = {frame.height}" in md


def test_provenance_defaults_to_the_trial(frame: pl.DataFrame) -> None:
    ctx = create_context("report-test")
    record = TrialRegistry().record(
        ctx, "backtest", frame, column="net", config={"lookback": 252}, data_hash="abc123"
    )
    inputs = BacktestReportInputs(returns=frame, trial=record)
    md = markdown_summary(inputs)
    assert "Warning" not in md  # the recorded trial is this net series
    table = _table(md)
    assert table["data hash"] == "abc123"
    assert table["config hash"] == record.config_hash
    assert table["research context"] == ctx.id
    assert table["trial"] == f"{record.trial_id} (#1, backtest)"
    with pytest.raises(InputError, match="data_hash='other' disagrees with the trial's"):
        BacktestReportInputs(returns=frame, trial=record, data_hash="other")


def test_from_backtest(frame: pl.DataFrame) -> None:
    inputs = BacktestReportInputs.from_backtest(SimpleNamespace(returns=frame), title="x")
    assert inputs.title == "x"
    assert set(inputs.returns.columns) == set(frame.columns)
    with pytest.raises(InputError, match="has no 'returns' polars frame"):
        BacktestReportInputs.from_backtest(object())


def _bad(frame: pl.DataFrame, case: str) -> object:
    if case == "empty":
        return frame.head(0)
    if case == "nan":
        return frame.with_columns(
            net=pl.when(pl.int_range(pl.len()) == 3).then(float("nan")).otherwise("net")
        )
    if case == "null_net":
        return frame.with_columns(net=pl.lit(None, dtype=pl.Float64))
    if case == "no_net":
        return frame.drop("net")
    if case == "no_date":
        return frame.drop("date")
    if case == "datetime":
        return frame.with_columns(pl.col("date").cast(pl.Datetime))
    if case == "unsorted":
        return frame.reverse()
    if case == "duplicate":
        return pl.concat([frame.head(3), frame.slice(2)])
    if case == "nan_cost":
        return frame.with_columns(cost_spread=pl.lit(float("inf")))
    if case == "string_net":
        return frame.with_columns(pl.col("net").cast(pl.String))
    return frame.to_dict()


@pytest.mark.parametrize(
    ("case", "error", "match"),
    [
        ("empty", InsufficientDataError, "returns frame is empty"),
        ("nan", DataError, r"column 'net' have 1 NaN/inf value\(s\), first at row 3"),
        ("null_net", DataError, "null value"),
        ("no_net", SchemaError, r"lacks column\(s\) \['net'\]"),
        ("no_date", SchemaError, r"lacks column\(s\) \['date'\]"),
        ("datetime", SchemaError, "not Date"),
        ("unsorted", DataError, "not strictly increasing"),
        ("duplicate", DataError, "not strictly increasing"),
        ("nan_cost", DataError, "cost_spread"),
        ("string_net", SchemaError, "column 'net' has dtype String"),
        ("dict", InputError, "must be a polars DataFrame"),
    ],
)
def test_bad_returns_frame(frame: pl.DataFrame, case: str, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        BacktestReportInputs(returns=_bad(frame, case))  # type: ignore[arg-type]


def test_nan_return_is_a_data_error(frame: pl.DataFrame) -> None:
    net = frame["net"].to_numpy().copy()
    net[5] = np.nan
    with pytest.raises(DataError, match="NaN/inf"):
        BacktestReportInputs(returns=frame.with_columns(net=pl.Series(net)))


def test_bad_companions(full_inputs: BacktestReportInputs, frame: pl.DataFrame) -> None:
    psr = probabilistic_sharpe_ratio(frame["net"].to_numpy())
    with pytest.raises(InputError, match="dsr must be a DSRResult, got PSRResult"):
        BacktestReportInputs(returns=frame, dsr=psr)  # type: ignore[arg-type]
    two = pl.DataFrame({"date": frame["date"], "a": frame["net"], "b": frame["net"]})
    with pytest.raises(InputError, match="expected one series besides 'date'"):
        BacktestReportInputs(returns=frame, benchmark=two)
    with pytest.raises(SchemaError, match="ic_decay frame lacks"):
        BacktestReportInputs(returns=frame, ic_decay=pl.DataFrame({"horizon": [1]}))
    with pytest.raises(InputError, match="dsr_threshold"):
        BacktestReportInputs(returns=frame, dsr_threshold=95)
    constant = frame.with_columns(net=pl.lit(0.001))
    with pytest.raises(UndefinedMetricError, match="zero variance"):
        markdown_summary(BacktestReportInputs(returns=constant))
    short_bench = pl.DataFrame({"date": frame["date"].head(10), "spy": np.zeros(10) + 0.001})
    with pytest.raises(DataError, match="benchmark lacks"):
        markdown_summary(BacktestReportInputs(returns=frame, benchmark=short_bench))


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(min_value=3, max_value=300),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    drift=st.floats(min_value=-0.002, max_value=0.002),
)
def test_sharpe_in_summary_is_the_metric(n: int, seed: int, drift: float) -> None:
    net = np.random.default_rng(seed).normal(drift, 0.01, n)
    inputs = BacktestReportInputs(returns=pl.DataFrame({"date": _sessions(n), "net": net}))
    report = build_backtest_report(inputs)
    assert _table(report.to_markdown())["Sharpe (annualised)"] == f"{sharpe_ratio(net):.2f}"
    assert report.dsr_passed is None
    assert report.verdict.startswith("Verdict: undetermined")


# -- HTML tear sheet ----------------------------------------------------------------------


@pytest.fixture
def full_html(full_inputs: BacktestReportInputs) -> str:
    return html_tearsheet(full_inputs)


def test_html_is_self_contained(full_html: str) -> None:
    assert re.search(r"<(script|link|img|iframe)[^>]*\b(src|href)\s*=", full_html) is None
    bundle = get_plotlyjs()
    assert full_html.count(bundle[:200]) == 1
    assert full_html.count("plotly.js v") == 1
    rest = full_html.replace(bundle, "")
    assert "http://" not in rest
    assert "https://" not in rest
    assert len(full_html) < 6_000_000


def test_all_panels_present(full_html: str) -> None:
    assert '<section id="qd-summary">' in full_html
    for panel_id, _ in PANELS:
        assert f'<div id="{panel_id}" class="plotly-graph-div"' in full_html
        assert f'Plotly.newPlot(                        "{panel_id}"' in full_html
    assert full_html.count('class="missing"') == 0


def test_missing_panels_say_so(frame: pl.DataFrame) -> None:
    page = html_tearsheet(BacktestReportInputs(returns=frame.select("date", "net").head(100)))
    missing = {"qd-rolling-sharpe", "qd-costs", "qd-ic-rolling", "qd-ic-decay", "qd-dsr", "qd-pbo"}
    for panel_id, _ in PANELS:
        assert (f'<div id="{panel_id}"' in page) is (panel_id not in missing)
    assert page.count('<p class="missing">Not shown: ') == len(missing)
    assert "fewer than the 126-session window" in page


def test_html_is_deterministic_and_written(
    full_inputs: BacktestReportInputs, full_html: str, tmp_path: Path
) -> None:
    target = tmp_path / "tearsheet.html"
    assert html_tearsheet(full_inputs, target) == full_html
    assert target.read_text(encoding="utf-8") == full_html
    with pytest.raises(InputError, match="Cannot write the tear sheet"):
        html_tearsheet(full_inputs, tmp_path / "no" / "such" / "dir.html")


def test_title_and_notes_are_escaped(full_inputs: BacktestReportInputs) -> None:
    evil = "<script>alert('x')</script>"
    inputs = dataclasses.replace(full_inputs, title=evil, notes=(f"note {evil}",))
    page = html_tearsheet(inputs)
    assert evil not in page
    assert "<title>&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;</title>" in page
    assert "<li>note &lt;script&gt;" in page
    md = markdown_summary(inputs)
    assert md.startswith("# \\<script>alert('x')\\</script>\n")


def test_summary_html_carries_the_verdict(
    full_inputs: BacktestReportInputs, full_html: str
) -> None:
    verdict = build_backtest_report(full_inputs).verdict
    assert f'<p class="verdict"><strong>{html.escape(verdict)}</strong></p>' in full_html


def test_figure_values(full_inputs: BacktestReportInputs) -> None:
    figures = tearsheet_figures(full_inputs)
    assert list(figures) == [panel_id for panel_id, _ in PANELS]
    net = full_inputs.returns["net"].to_numpy()
    rolling = figures["qd-rolling-sharpe"].data[0].y  # type: ignore[union-attr]
    assert np.isnan(rolling[ROLLING_SHARPE_WINDOW - 2])
    assert rolling[-1] == pytest.approx(sharpe_ratio(net[-ROLLING_SHARPE_WINDOW:]))
    equity = figures["qd-equity"].data[0].y  # type: ignore[union-attr]
    assert equity[-1] == pytest.approx(math.prod(1.0 + net))
    heat = figures["qd-monthly"].data[0]  # type: ignore[union-attr]
    first_month = full_inputs.returns.filter(
        (pl.col("date").dt.year() == 2019) & (pl.col("date").dt.month() == 1)
    )["net"]
    assert heat.y[0] == "2019"
    assert heat.z[0][0] == pytest.approx(float(np.prod(1.0 + first_month.to_numpy()) - 1.0))
    costs = figures["qd-costs"]
    stacked = [t for t in costs.data if t.stackgroup == "costs"]  # type: ignore[union-attr]
    assert [t.name for t in stacked] == [c.removeprefix("cost_") for c in COST_COLUMNS]
    assert stacked[0].y[-1] == pytest.approx(full_inputs.returns["cost_commission"].sum())


def test_log_scale_option(full_inputs: BacktestReportInputs) -> None:
    figures = tearsheet_figures(full_inputs, log_scale=True)
    assert figures["qd-equity"].layout.yaxis.type == "log"  # type: ignore[union-attr]
