"""Self-contained HTML tear sheet of a backtest: interactive plotly panels plus the summary.

:func:`html_tearsheet` renders :class:`~quantdesk.quant_core.summary_report.BacktestReportInputs`
as one HTML file that opens offline: the plotly.js bundle is inlined once in ``<head>`` and
every figure is emitted without it (``include_plotlyjs=False``); there is no ``<script src>``,
no CDN and no MathJax. A tear sheet of three years of daily returns with every panel is
about 5.1-5.3 MB, of which 4.8 MB is the plotly bundle (ten years: about 5.9 MB).

Panels, each in a ``<section id="<id>-panel">`` holding a figure ``<div id="<id>">``:

* ``qd-equity``: wealth of 1 invested, net and gross (and the benchmark), with a
  linear/log toggle;
* ``qd-drawdown``: underwater curve of the net returns (:func:`metrics.drawdown_series`);
* ``qd-rolling-sharpe``: annualised Sharpe over the last 126 sessions;
* ``qd-monthly``: compounded net return of each calendar month (year x month heatmap);
* ``qd-costs``: turnover, and the cumulative sum of each ``cost_*`` column (simple sum of
  daily costs as fractions of capital, not compounded);
* ``qd-ic-rolling`` and ``qd-ic-decay``: IC by date with its 63-date rolling mean, and mean
  IC by horizon;
* ``qd-dsr``: the trial Sharpes against SR0 (the best Sharpe expected from N noise trials)
  with a DSR gauge; ``qd-pbo``: histogram of the CSCV logits (PBO = share <= 0).

A panel whose input is missing shows a sentence saying so instead of a figure. The summary
(``qd-summary``) is rendered from the report sections; every piece of text is escaped with
:func:`html.escape`, and figures carry only fixed text. Div ids are fixed, so two renders of
the same inputs are byte-identical.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import polars as pl
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from quantdesk.quant_core.errors import InputError
from quantdesk.quant_core.metrics import drawdown_series
from quantdesk.quant_core.summary_report import (
    COST_COLUMNS,
    BacktestReport,
    BacktestReportInputs,
    ReportLine,
    ReportTable,
    build_backtest_report,
    mean_ic_by_date,
)

__all__ = [
    "PANELS",
    "ROLLING_IC_WINDOW",
    "ROLLING_SHARPE_WINDOW",
    "html_tearsheet",
    "tearsheet_figures",
]

ROLLING_SHARPE_WINDOW = 126
ROLLING_IC_WINDOW = 63
_TURNOVER_WINDOW = 21
PANELS: tuple[tuple[str, str], ...] = (
    ("qd-equity", "Equity curve"),
    ("qd-drawdown", "Drawdown"),
    ("qd-rolling-sharpe", f"Rolling {ROLLING_SHARPE_WINDOW}-session Sharpe"),
    ("qd-monthly", "Monthly returns"),
    ("qd-costs", "Turnover and cost drag"),
    ("qd-ic-rolling", "Information coefficient by date"),
    ("qd-ic-decay", "IC decay by horizon"),
    ("qd-dsr", "Deflated Sharpe ratio"),
    ("qd-pbo", "Probability of backtest overfitting"),
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_CONFIG = {"displaylogo": False, "responsive": True}
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.25rem .6rem;
text-align:left}th{background:#f4f4f4}.verdict{font-size:1.05rem;padding:.5rem;
background:#fff6e0;border-left:4px solid #e0a000}.missing{color:#777;font-style:italic}
"""


def _dates(frame: pl.DataFrame) -> list[str]:
    return frame["date"].dt.to_string("%Y-%m-%d").to_list()


def _layout(fig: go.Figure, *, height: int = 420, **kwargs: object) -> go.Figure:
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin={"l": 60, "r": 30, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.15},
        **kwargs,
    )
    return fig


def _equity(inputs: BacktestReportInputs, log_scale: bool) -> go.Figure:
    frame, x = inputs.returns, _dates(inputs.returns)
    fig = go.Figure()
    series = [(c, frame[c]) for c in ("net", "gross") if c in frame.columns]
    if inputs.benchmark is not None:
        value = next(c for c in inputs.benchmark.columns if c != "date")
        joined = frame.select("date").join(inputs.benchmark, on="date", how="left")
        series.append(("benchmark", joined[value]))
    for name, values in series:
        wealth = np.cumprod(1.0 + values.to_numpy())
        fig.add_trace(go.Scatter(x=x, y=wealth, name=name, mode="lines"))
    buttons = [
        {"label": kind, "method": "relayout", "args": [{"yaxis.type": kind}]}
        for kind in ("linear", "log")
    ]
    return _layout(
        fig,
        title="Wealth of 1 invested",
        yaxis={"type": "log" if log_scale else "linear"},
        updatemenus=[
            {"type": "buttons", "direction": "right", "x": 1.0, "y": 1.12, "buttons": buttons}
        ],
    )


def _drawdown(inputs: BacktestReportInputs) -> go.Figure:
    dd = drawdown_series(inputs.returns["net"])
    fig = go.Figure(go.Scatter(x=_dates(inputs.returns), y=dd, fill="tozeroy", name="drawdown"))
    return _layout(fig, title="Drawdown of the net returns", yaxis={"tickformat": ".0%"})


def _rolling_sharpe(inputs: BacktestReportInputs, report: BacktestReport) -> go.Figure | str:
    w, frame = ROLLING_SHARPE_WINDOW, inputs.returns
    if frame.height < w:
        return (
            f"Not shown: the returns span {frame.height} sessions, fewer than the "
            f"{w}-session window."
        )
    net = pl.col("net")
    std = net.rolling_std(w, ddof=1)
    # A window of identical returns has no Sharpe; leave a gap instead of a spike.
    sharpe = pl.when(std > 1e-14).then(net.rolling_mean(w) / std * math.sqrt(inputs.periods))
    values = frame.select(sharpe.alias("sharpe"))["sharpe"].to_numpy()
    fig = go.Figure(go.Scatter(x=_dates(frame), y=values, name=f"{w}-session Sharpe"))
    fig.add_hline(y=report.performance.sharpe, line_dash="dash", annotation_text="full sample")
    return _layout(fig, title=f"Annualised Sharpe over {w} sessions")


def _monthly(inputs: BacktestReportInputs) -> go.Figure:
    monthly = (
        inputs.returns.group_by(
            pl.col("date").dt.year().alias("year"), pl.col("date").dt.month().alias("month")
        )
        .agg(((pl.col("net") + 1.0).product() - 1.0).alias("ret"))
        .pivot(on="month", on_columns=list(range(1, 13)), index="year", values="ret")
        .sort("year")
    )
    z = monthly.select([str(m) for m in range(1, 13)]).to_numpy()
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(_MONTHS),
            y=[str(y) for y in monthly["year"]],
            colorscale="RdYlGn",
            zmid=0.0,
            texttemplate="%{z:.1%}",
            hovertemplate="%{y} %{x}: %{z:.2%}<extra></extra>",
            colorbar={"tickformat": ".0%"},
        )
    )
    return _layout(fig, title="Net return by month", height=max(260, 60 + 28 * monthly.height))


def _costs(inputs: BacktestReportInputs) -> go.Figure | str:
    frame, x = inputs.returns, _dates(inputs.returns)
    kinds = [c for c in COST_COLUMNS if c in frame.columns]
    if "turnover" not in frame.columns and not kinds:
        return "Not shown: the returns frame has no turnover or cost_* columns."
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        subplot_titles=(
            "Turnover (fraction of capital traded)"
            + ("" if "turnover" in frame.columns else ": not in the returns frame"),
            "Cumulative cost drag by kind" + ("" if kinds else ": no cost_* columns"),
        ),
    )
    if "turnover" in frame.columns:
        turnover = frame["turnover"]
        fig.add_trace(
            go.Scatter(
                x=x, y=turnover.to_numpy(), name="daily turnover", mode="lines", opacity=0.4
            ),
            row=1,
            col=1,
        )
        smooth = turnover.rolling_mean(_TURNOVER_WINDOW, min_samples=1).to_numpy()
        fig.add_trace(
            go.Scatter(x=x, y=smooth, name=f"{_TURNOVER_WINDOW}-session mean", mode="lines"),
            row=1,
            col=1,
        )
    for kind in kinds:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=frame[kind].cum_sum().to_numpy(),
                name=kind.removeprefix("cost_"),
                mode="lines",
                stackgroup="costs",
            ),
            row=2,
            col=1,
        )
    fig.update_yaxes(tickformat=".1%", row=2, col=1)
    return _layout(fig, height=560)


def _ic_rolling(inputs: BacktestReportInputs) -> go.Figure | str:
    if inputs.ic_by_date is None:
        return "Not shown: no IC by date was given (ic_by_date=...)."
    ic = mean_ic_by_date(inputs.ic_by_date)
    x = _dates(ic)
    fig = go.Figure(go.Bar(x=x, y=ic["ic"].to_numpy(), name="IC", opacity=0.4))
    rolling = ic["ic"].rolling_mean(ROLLING_IC_WINDOW, min_samples=1).to_numpy()
    fig.add_trace(go.Scatter(x=x, y=rolling, name=f"{ROLLING_IC_WINDOW}-date mean"))
    return _layout(fig, title="Spearman IC by date")


def _ic_decay(inputs: BacktestReportInputs) -> go.Figure | str:
    if inputs.ic_decay is None:
        return "Not shown: no IC decay was given (ic_decay=...)."
    decay = inputs.ic_decay
    fig = go.Figure(go.Bar(x=[str(h) for h in decay["horizon"]], y=decay["ic_mean"].to_numpy()))
    return _layout(fig, title="Mean IC by label horizon", xaxis={"type": "category"})


def _dsr(inputs: BacktestReportInputs) -> go.Figure | str:
    dsr = inputs.dsr
    if dsr is None:
        return "Not shown: no DSR was given (no trial registry context)."
    scale = math.sqrt(dsr.annualization)
    fig = make_subplots(
        rows=1, cols=2, column_widths=[0.65, 0.35], specs=[[{"type": "xy"}, {"type": "domain"}]]
    )
    if inputs.trial_sharpes is not None:
        sharpes = np.sort(np.asarray(inputs.trial_sharpes)) * scale
        bars = go.Bar(x=np.arange(1, sharpes.size + 1), y=sharpes, name="trial Sharpes")
    else:
        bars = go.Bar(x=["observed", "SR0"], y=[dsr.sr_annualized, dsr.sr0_annualized])
    fig.add_trace(bars, row=1, col=1)
    fig.add_hline(
        y=dsr.sr0_annualized,
        line_dash="dash",
        line_color="red",
        row=1,
        col=1,
        annotation_text=f"SR0 (best of {dsr.n_trials:g} noise trials)",
    )
    fig.add_hline(
        y=dsr.sr_annualized, line_color="black", row=1, col=1, annotation_text="this strategy"
    )
    threshold = inputs.dsr_threshold
    fig.add_trace(
        go.Indicator(
            mode="gauge+number",
            value=dsr.dsr,
            number={"valueformat": ".3f"},
            title={"text": "DSR"},
            gauge={
                "axis": {"range": [0.0, 1.0]},
                "bar": {"color": "seagreen" if dsr.dsr >= threshold else "firebrick"},
                "threshold": {"value": threshold, "line": {"color": "black", "width": 3}},
            },
        ),
        row=1,
        col=2,
    )
    return _layout(fig, title="Annualised trial Sharpes against SR0", showlegend=False)


def _pbo(inputs: BacktestReportInputs) -> go.Figure | str:
    pbo = inputs.pbo
    if pbo is None:
        return "Not shown: no PBO was given (probability_of_backtest_overfitting(...))."
    fig = go.Figure(go.Histogram(x=pbo.logits, nbinsx=40, name="logit"))
    fig.add_vline(x=0.0, line_dash="dash", line_color="red")
    return _layout(
        fig,
        title=f"CSCV logits of the in-sample best: PBO = {pbo.pbo:.3f} (share <= 0)",
        xaxis={"title": {"text": "logit of the OOS relative rank"}},
        showlegend=False,
    )


def tearsheet_figures(
    inputs: BacktestReportInputs,
    report: BacktestReport | None = None,
    *,
    log_scale: bool = False,
) -> dict[str, go.Figure | str]:
    """Build every panel: a plotly figure, or the sentence saying why it is missing.

    Args:
        inputs: The report inputs.
        report: The computed report (built from ``inputs`` when omitted).
        log_scale: Start the equity curve on a log axis.

    Returns:
        A dict keyed by the panel ids of :data:`PANELS`, in that order.
    """
    report = build_backtest_report(inputs) if report is None else report
    return {
        "qd-equity": _equity(inputs, log_scale),
        "qd-drawdown": _drawdown(inputs),
        "qd-rolling-sharpe": _rolling_sharpe(inputs, report),
        "qd-monthly": _monthly(inputs),
        "qd-costs": _costs(inputs),
        "qd-ic-rolling": _ic_rolling(inputs),
        "qd-ic-decay": _ic_decay(inputs),
        "qd-dsr": _dsr(inputs),
        "qd-pbo": _pbo(inputs),
    }


def _summary_html(report: BacktestReport) -> list[str]:
    esc = html.escape
    out: list[str] = []
    for section in report.sections:
        out.append(f"<h2>{esc(section.title)}</h2>")
        in_list = False
        for block in section.blocks:
            is_item = isinstance(block, ReportLine) and not block.emphasis
            if in_list and not is_item:
                out.append("</ul>")
            if is_item and not in_list:
                out.append("<ul>")
            in_list = is_item
            if isinstance(block, ReportTable):
                head = "".join(f"<th>{esc(h)}</th>" for h in block.header)
                body = "".join(
                    "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>"
                    for row in block.rows
                )
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif block.emphasis:
                out.append(f'<p class="verdict"><strong>{esc(block.text)}</strong></p>')
            else:
                out.append(f"<li>{esc(block.text)}</li>")
        if in_list:
            out.append("</ul>")
    return out


def html_tearsheet(
    inputs: BacktestReportInputs,
    path: str | Path | None = None,
    *,
    log_scale: bool = False,
) -> str:
    """Render the self-contained HTML tear sheet; write it to ``path`` when given.

    Args:
        inputs: Returns frame plus optional DSR, PBO, CI, exposures, IC and provenance.
        path: File to write (UTF-8); its folder must exist.
        log_scale: Start the equity curve on a log axis (a button toggles it).

    Returns:
        The HTML document.

    Raises:
        InputError: ``inputs`` is not a :class:`BacktestReportInputs`, or ``path`` cannot
            be written.
    """
    report = build_backtest_report(inputs)
    figures = tearsheet_figures(inputs, report, log_scale=log_scale)
    title = html.escape(report.title)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{title}</title>",
        f"<style>{_CSS}</style>",
        # The one inlined plotly.js bundle; every figure below is emitted without it.
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head>",
        "<body>",
        f"<h1>{title}</h1>",
        '<section id="qd-summary">',
        *_summary_html(report),
        "</section>",
    ]
    for panel_id, heading in PANELS:
        parts += [f'<section id="{panel_id}-panel">', f"<h2>{html.escape(heading)}</h2>"]
        figure = figures[panel_id]
        if isinstance(figure, str):
            parts.append(f'<p class="missing">{html.escape(figure)}</p>')
        else:
            parts.append(
                pio.to_html(
                    figure,
                    config=_CONFIG,
                    include_plotlyjs=False,
                    full_html=False,
                    div_id=panel_id,
                    default_height=f"{figure.layout.height}px",
                )
            )
        parts.append("</section>")
    parts += ["</body>", "</html>", ""]
    document = "\n".join(parts)
    if path is not None:
        target = Path(path)
        try:
            target.write_text(document, encoding="utf-8")
        except OSError as exc:
            raise InputError(
                f"Cannot write the tear sheet to {str(target)!r}: {exc.strerror}.",
                fix="pass a path in an existing, writable folder.",
            ) from None
    return document
