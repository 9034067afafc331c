"""Markdown summary of a backtest: headline metrics, "Is it real?", exposures, provenance.

:func:`build_backtest_report` turns :class:`BacktestReportInputs` (a backtest's ``returns``
frame plus whatever inference results exist) into a :class:`BacktestReport`: the numbers
(from :mod:`~quantdesk.quant_core.metrics` and :mod:`~quantdesk.quant_core.sharpe_inference`,
never computed here a second way) and the report as sections of tables and lines. The same
sections render as markdown (:func:`markdown_summary`, for agents and the CLI) and as HTML
(:mod:`~quantdesk.quant_core.tearsheet`). The inputs and their validation live in
:mod:`.report_inputs`, the document types and their markdown form in :mod:`.report_document`;
this module builds the report and re-exports their public names.

Rules the report follows:

* Every metric is taken from the *net* returns; gross returns only enter the cost drag.
* A piece that was not supplied or is undefined is said to be missing, with the reason and the
  call that would supply it; nothing is dropped silently.
* An inference result computed on another series than these net returns (a different length
  or Sharpe ratio) is flagged with a warning line.
* Verdict: with a DSR below ``dsr_threshold`` (0.95) the strategy is "not distinguishable from
  the best of N noise trials"; without a DSR the verdict is "undetermined".

Formats: return-like fractions as percentages with two decimals (``12.34%``); Sharpe, Sortino,
Calmar and beta with two decimals; probabilities (DSR, PSR, PBO) with three decimals.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import MappingProxyType
from typing import Any, TypeVar

from quantdesk.quant_core.errors import InputError
from quantdesk.quant_core.metrics import (
    PERIODS_PER_YEAR,
    PerformanceSummary,
    performance_summary,
)
from quantdesk.quant_core.report_document import (
    BacktestReport,
    ReportLine,
    ReportSection,
    ReportTable,
)
from quantdesk.quant_core.report_inputs import (
    COST_COLUMNS,
    OPTIONAL_COLUMNS,
    BacktestReportInputs,
    mean_ic_by_date,
)
from quantdesk.quant_core.sharpe_inference import (
    MinTRLResult,
    PSRResult,
    min_track_record_length,
    probabilistic_sharpe_ratio,
)
from quantdesk.quant_core.training_report import ic_summary

__all__ = [
    "COST_COLUMNS",
    "OPTIONAL_COLUMNS",
    "BacktestReport",
    "BacktestReportInputs",
    "ReportLine",
    "ReportSection",
    "ReportTable",
    "build_backtest_report",
    "markdown_summary",
    "mean_ic_by_date",
]

_T = TypeVar("_T")


def _pct(x: float) -> str:
    return f"{x:.2%}"


def _ratio(x: float) -> str:
    return f"{x:.2f}"


def _prob(x: float) -> str:
    return f"{x:.3f}"


def _trials(n: float) -> str:
    return f"{n:g} noise trial" + ("" if n == 1 else "s")


def _attempt(fn: Callable[[], _T]) -> tuple[_T | None, str | None]:
    """Run an optional statistic; an InputError becomes the reason it is missing."""
    try:
        return fn(), None
    except InputError as exc:  # recorded in the report, never swallowed
        return None, exc.message


def _unit(perf: PerformanceSummary) -> str:
    """Name of one return's period: daily series are in sessions, others in periods."""
    return "sessions" if perf.periods == PERIODS_PER_YEAR else "periods"


def _one(perf: PerformanceSummary) -> str:
    return "day" if perf.periods == PERIODS_PER_YEAR else "period"


def _same_series(
    what: str, n_obs: int, sr: float, perf: PerformanceSummary, sr_here: float
) -> ReportLine | None:
    if n_obs == perf.n_obs and math.isclose(sr, sr_here, rel_tol=1e-6, abs_tol=1e-12):
        return None
    return ReportLine(
        f"Warning: the {what} was computed on {n_obs} returns with a per-period Sharpe of "
        f"{sr:.4f}, not on these net returns ({perf.n_obs} returns, {sr_here:.4f}); its "
        "reading below does not describe this series."
    )


def _headline(perf: PerformanceSummary, drag: Any) -> ReportSection:
    cost_drag, by_kind = drag

    def undefined(name: str) -> str:
        reason = next((n.split(": ", 1)[1] for n in perf.notes if n.startswith(name)), "")
        return f"undefined ({reason})" if reason else "undefined"

    def opt(value: float | None, fmt: Callable[[float], str], name: str) -> str:
        return undefined(name) if value is None else fmt(value)

    years = perf.n_obs / perf.periods
    rows = [
        ("Period", f"{perf.start} to {perf.end}, {perf.n_obs} {_unit(perf)} ({years:.1f} years)"),
        ("Total return", _pct(perf.total_return)),
        ("CAGR", _pct(perf.cagr)),
        ("Annual volatility", _pct(perf.annual_volatility)),
        ("Sharpe (annualised)", _ratio(perf.sharpe)),
        ("Sortino", opt(perf.sortino, _ratio, "sortino")),
        ("Max drawdown", _pct(perf.max_drawdown)),
        ("Max drawdown duration", f"{perf.max_drawdown_duration} {_unit(perf)}"),
        ("Calmar", opt(perf.calmar, _ratio, "calmar")),
        ("Hit rate", opt(perf.hit_rate, _pct, "hit_rate")),
        (
            "Annual turnover",
            "not available (no turnover column)"
            if perf.annual_turnover is None
            else f"{perf.annual_turnover:.2f}x",
        ),
        (
            "Cost drag (gross - net, annualised)",
            "not available (no gross or cost_* columns)" if cost_drag is None else _pct(cost_drag),
        ),
        (f"VaR 95% (1 {_one(perf)})", _pct(perf.var_95)),
        (f"CVaR 95% (1 {_one(perf)})", _pct(perf.cvar_95)),
        ("Skew / kurtosis (raw, normal = 3)", f"{perf.skew:.2f} / {perf.kurtosis:.2f}"),
    ]
    if perf.alpha is not None and perf.beta is not None:
        rows += [("Alpha vs benchmark (annual)", _pct(perf.alpha)), ("Beta", _ratio(perf.beta))]
    else:
        rows.append(("Alpha / beta", "not computed (no benchmark given)"))
    blocks: list[ReportTable | ReportLine] = [ReportTable(("metric", "value"), tuple(rows))]
    if by_kind:
        parts = ", ".join(f"{k.removeprefix('cost_')} {_pct(v)}" for k, v in by_kind.items())
        blocks.append(ReportLine(f"Cost drag by kind (annualised): {parts}."))
    blocks += [ReportLine(f"Note: {note}") for note in perf.notes]
    return ReportSection("Headline (net of costs)", tuple(blocks))


def _is_it_real(
    inputs: BacktestReportInputs,
    perf: PerformanceSummary,
    psr: tuple[PSRResult | None, str | None],
    trl: tuple[MinTRLResult | None, str | None],
    trl0: tuple[MinTRLResult | None, str | None],
) -> tuple[ReportSection, str, bool | None]:
    lines: list[ReportLine] = [
        ReportLine(
            f"Raw Sharpe: {_ratio(perf.sharpe)} (annualised, net): before any allowance for "
            "the number of variants tried."
        )
    ]
    sr_here = perf.sharpe / math.sqrt(perf.periods)
    dsr, thr = inputs.dsr, inputs.dsr_threshold
    if dsr is None:
        lines.append(
            ReportLine(
                "DSR: not computed (no trial registry context): without the number of trials "
                "behind this strategy its Sharpe cannot be deflated. Pass "
                "dsr=TrialRegistry().deflated_sharpe(...)."
            )
        )
    else:
        passed = dsr.dsr >= thr
        lines.append(
            ReportLine(
                f"DSR: {_prob(dsr.dsr)} with N = {dsr.n_trials:g} trials (SR0 = "
                f"{_ratio(dsr.sr0_annualized)} annualised, the best Sharpe expected from "
                f"{_trials(dsr.n_trials)}): {'passes' if passed else 'fails'} the {thr:g} "
                f"threshold. The probability that the true Sharpe beats what luck alone "
                f"delivers in {dsr.n_trials:g} tries is {dsr.dsr:.1%}."
            )
        )
        warn = _same_series("DSR", dsr.n_obs, dsr.sr, perf, sr_here)
        lines += [warn] if warn else []
    psr_result, psr_reason = psr
    if psr_result is None:
        lines.append(ReportLine(f"PSR: undefined ({(psr_reason or '').rstrip('.')})."))
    else:
        lines.append(
            ReportLine(
                f"PSR: {_prob(psr_result.psr)}: probability that the true Sharpe is above 0 "
                f"given {psr_result.n_obs} returns, skew {psr_result.skew:.2f} and kurtosis "
                f"{psr_result.kurtosis:.2f}, with no allowance for multiple trials."
            )
        )
    lines.append(_trl_line("0", *trl, perf))
    if dsr is not None:
        lines.append(_trl_line("SR0", *trl0, perf))
    lines += _pbo_lines(inputs)
    ci = inputs.sharpe_ci
    if ci is None:
        lines.append(
            ReportLine(
                "Bootstrap CI of Sharpe: not computed. Pass "
                "sharpe_ci=sharpe_confidence_interval(net returns)."
            )
        )
    else:
        _, lo, hi = ci.annualized
        where = "excludes" if lo > 0.0 or hi < 0.0 else "includes"
        lines.append(
            ReportLine(
                f"Bootstrap CI of Sharpe: [{_ratio(lo)}, {_ratio(hi)}] annualised ({ci.level:.0%},"
                f" {ci.method} bootstrap, {ci.interval}, {ci.reps} reps, seed {ci.seed}): it "
                f"{where} zero."
            )
        )
        warn = _same_series("bootstrap CI", ci.n_obs, ci.sr, perf, sr_here)
        lines += [warn] if warn else []
    if inputs.trial is not None:
        warn = _same_series(
            "recorded trial", inputs.trial.n_obs, inputs.trial.sr_per_period, perf, sr_here
        )
        lines += [warn] if warn else []
    verdict, passed_flag = _verdict(inputs)
    lines.append(ReportLine(verdict, emphasis=True))
    return ReportSection("Is it real?", tuple(lines)), verdict, passed_flag


def _trl_line(
    against: str, result: MinTRLResult | None, reason: str | None, perf: PerformanceSummary
) -> ReportLine:
    label = f"MinTRL (95%, SR* = {against})"
    if result is None:
        return ReportLine(f"{label}: undefined ({(reason or '').rstrip('.')}).")
    enough = "long enough" if result.min_obs <= perf.n_obs else "too short"
    return ReportLine(
        f"{label}: {result.min_obs:,.0f} {_unit(perf)} ({result.min_years:.1f} years) vs a track "
        f"record of {perf.n_obs:,} {_unit(perf)} ({perf.n_obs / perf.periods:.1f} years): the "
        f"record is {enough} to call the Sharpe above {against} at 95% confidence."
    )


def _pbo_lines(inputs: BacktestReportInputs) -> list[ReportLine]:
    pbo = inputs.pbo
    if pbo is None:
        return [
            ReportLine(
                "PBO: not computed: it needs the returns matrix of every variant tried. Pass "
                "pbo=probability_of_backtest_overfitting(matrix)."
            )
        ]
    reading = (
        "the selection is no better than chance"
        if pbo.pbo >= 0.5
        else "the in-sample choice mostly carries out of sample"
    )
    slope = (
        "undefined"
        if pbo.degradation_slope is None
        else f"{pbo.degradation_slope:.2f} (OOS on IS {pbo.metric})"
    )
    return [
        ReportLine(
            f"PBO: {_prob(pbo.pbo)} over {pbo.n_combinations:,} CSCV splits of "
            f"{pbo.n_strategies} variants: in {pbo.pbo:.1%} of splits the in-sample best ranked "
            f"at or below the out-of-sample median; {reading} (0.5 = pure chance)."
        ),
        ReportLine(
            f"PBO detail: probability of an out-of-sample loss {_prob(pbo.prob_oos_loss)}; "
            f"performance degradation slope {slope}."
        ),
    ]


def _verdict(inputs: BacktestReportInputs) -> tuple[str, bool | None]:
    dsr, thr = inputs.dsr, inputs.dsr_threshold
    if dsr is None:
        return (
            "Verdict: undetermined: no DSR, so the Sharpe ratio cannot be judged against the "
            "number of trials behind it.",
            None,
        )
    if dsr.dsr < thr:
        return (
            f"Verdict: not distinguishable from the best of {_trials(dsr.n_trials)} "
            f"(DSR {_prob(dsr.dsr)} < {thr:g}).",
            False,
        )
    text = (
        f"Verdict: distinguishable from the best of {_trials(dsr.n_trials)} "
        f"(DSR {_prob(dsr.dsr)} >= {thr:g})"
    )
    if inputs.pbo is not None and inputs.pbo.pbo >= 0.5:
        text += f", but PBO {_prob(inputs.pbo.pbo)} >= 0.5: the selection procedure overfits"
    return text + ".", True


def _signal(inputs: BacktestReportInputs) -> ReportSection:
    blocks: list[ReportTable | ReportLine] = []
    if inputs.ic_by_date is None:
        blocks.append(ReportLine("IC by date: not given."))
    else:
        s = ic_summary(mean_ic_by_date(inputs.ic_by_date)["ic"].to_numpy())
        blocks.append(
            ReportLine(
                f"IC by date: mean {s.mean:.4f}, IR {s.ir:.3f} (per date), t {s.t_stat:.2f}, "
                f"positive on {s.hit_rate:.1%} of {s.n_dates} dates (overlapping horizons "
                "inflate t)."
            )
        )
    if inputs.ic_decay is None:
        blocks.append(ReportLine("IC decay: not given."))
    else:
        rows = tuple(
            (str(h), f"{v:.4f}")
            for h, v in zip(inputs.ic_decay["horizon"], inputs.ic_decay["ic_mean"], strict=True)
        )
        blocks.append(ReportTable(("horizon", "mean IC"), rows))
    return ReportSection("Signal (information coefficient)", tuple(blocks))


def _factors(inputs: BacktestReportInputs) -> ReportSection:
    fe = inputs.factor_exposure
    if fe is None:
        return ReportSection(
            "Factor exposure", (ReportLine("Not computed (pass factor_exposure=...)."),)
        )
    rows = [
        (
            "alpha (daily)",
            f"{fe.alpha_daily:.6f}",
            f"{fe.t_stats['alpha']:.2f}",
            f"{fe.p_values['alpha']:.3g}",
        )
    ]
    rows += [
        (f, f"{fe.betas[f]:.4f}", f"{fe.t_stats[f]:.2f}", f"{fe.p_values[f]:.3g}")
        for f in fe.factors
    ]
    se = "Newey-West" if fe.cov_type == "newey-west" else "OLS"
    return ReportSection(
        "Factor exposure",
        (
            ReportLine(
                f"{fe.model.upper()} regression, {fe.start} to {fe.end}, n = {fe.n_obs}, {se} "
                f"standard errors: alpha {_pct(fe.alpha_annual)} a year, R² "
                f"{fe.r_squared:.3f}, residual vol {_pct(fe.residual_vol_annual)}."
            ),
            ReportTable(("term", "coef", "t", "p"), tuple(rows)),
        ),
    )


def _provenance(inputs: BacktestReportInputs) -> ReportSection:
    trial = inputs.trial

    def shown(value: Any) -> str:
        return "not recorded" if value is None else str(value)

    rows = [
        ("research context", shown(inputs.context_id)),
        ("as of", shown(inputs.as_of)),
        ("data hash", shown(inputs.data_hash)),
        ("config hash", shown(inputs.config_hash)),
        ("code version", shown(inputs.code_version)),
        (
            "trial",
            "not recorded"
            if trial is None
            else f"{trial.trial_id} (#{trial.number}, {trial.kind})",
        ),
    ]
    blocks: list[ReportTable | ReportLine] = [ReportTable(("field", "value"), tuple(rows))]
    blocks += [ReportLine(note) for note in inputs.notes]
    return ReportSection("Provenance and notes", tuple(blocks))


def _cost_drag(inputs: BacktestReportInputs) -> tuple[float | None, dict[str, float]]:
    frame, periods = inputs.returns, inputs.periods
    kinds = [c for c in COST_COLUMNS if c in frame.columns]
    by_kind = {c: float(frame[c].mean()) * periods for c in kinds}  # type: ignore[arg-type]
    if "gross" in frame.columns:
        drag = float((frame["gross"] - frame["net"]).mean()) * periods  # type: ignore[arg-type]
    elif kinds:
        drag = math.fsum(by_kind.values())
    else:
        drag = None
    return drag, by_kind


def build_backtest_report(inputs: BacktestReportInputs) -> BacktestReport:
    """Compute every number of the report and lay out its sections.

    Args:
        inputs: The validated report inputs.

    Returns:
        A :class:`BacktestReport`; ``.to_markdown()`` renders it.

    Raises:
        UndefinedMetricError: constant net returns (Sharpe undefined).
        DataError: the benchmark lacks some return dates.
    """
    if not isinstance(inputs, BacktestReportInputs):
        raise InputError(
            f"Expected BacktestReportInputs, got {type(inputs).__name__}.",
            fix="wrap the backtest with BacktestReportInputs.from_backtest(result, ...).",
        )
    frame = inputs.returns
    turnover = frame.select("turnover") if "turnover" in frame.columns else None
    perf = performance_summary(
        frame.select("date", "net"),
        benchmark=inputs.benchmark,
        turnover=turnover,
        periods=inputs.periods,
    )
    net = frame["net"].to_numpy()
    psr = _attempt(lambda: probabilistic_sharpe_ratio(net, annualization=inputs.periods))
    trl = _attempt(lambda: min_track_record_length(net, annualization=inputs.periods))
    trl0: tuple[MinTRLResult | None, str | None] = (None, "no DSR given")
    if inputs.dsr is not None:
        sr0 = inputs.dsr.sr0
        trl0 = _attempt(
            lambda: min_track_record_length(net, sr_benchmark=sr0, annualization=inputs.periods)
        )
    drag = _cost_drag(inputs)
    real, verdict, passed = _is_it_real(inputs, perf, psr, trl, trl0)
    sections = (
        _headline(perf, drag),
        real,
        _signal(inputs),
        _factors(inputs),
        _provenance(inputs),
    )
    return BacktestReport(
        title=inputs.title,
        performance=perf,
        cost_drag=drag[0],
        cost_drag_by_kind=MappingProxyType(drag[1]),
        psr=psr[0],
        min_trl=trl[0],
        min_trl_sr0=trl0[0],
        dsr_passed=passed,
        verdict=verdict,
        sections=sections,
    )


def markdown_summary(inputs: BacktestReportInputs) -> str:
    """Compact markdown summary of a backtest, for agents and the CLI.

    Args:
        inputs: Returns frame plus optional DSR, PBO, CI, exposures, IC and provenance.

    Returns:
        Markdown text: headline table, "Is it real?" with a verdict line, signal, factor
        exposure and provenance sections.
    """
    return build_backtest_report(inputs).to_markdown()
