"""The backtest report as a document: sections of tables and lines, and its markdown form.

:func:`~.summary_report.build_backtest_report` fills a :class:`BacktestReport` (the numbers and
the sections); :meth:`BacktestReport.to_markdown` renders it for agents and the CLI, and
:mod:`~.tearsheet` renders the same sections as HTML. Text is escaped on the way out, so a title
or note can never inject a table cell or raw HTML.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quantdesk.quant_core.metrics_summary import PerformanceSummary
    from quantdesk.quant_core.sharpe_inference import MinTRLResult, PSRResult

__all__ = [
    "BacktestReport",
    "ReportLine",
    "ReportSection",
    "ReportTable",
]


@dataclass(frozen=True)
class ReportTable:
    """A table of preformatted text cells."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class ReportLine:
    """One line of prose; ``emphasis`` marks the verdict."""

    text: str
    emphasis: bool = False


@dataclass(frozen=True)
class ReportSection:
    """A titled run of tables and lines."""

    title: str
    blocks: tuple[ReportTable | ReportLine, ...]


@dataclass(frozen=True)
class BacktestReport:
    """The numbers of a backtest report and its sections.

    Attributes:
        title: Report title (raw text; renderers escape it).
        performance: Metrics of the net returns.
        cost_drag: Annualised ``mean(gross - net) * periods`` (``None`` without cost data).
        cost_drag_by_kind: Annualised mean of each ``cost_*`` column present.
        psr: ``PSR(0)`` of the net returns (``None`` when undefined, see ``sections``).
        min_trl: Minimum track record to beat a zero Sharpe at 95% (``None``: Sharpe <= 0).
        min_trl_sr0: Same against the DSR's SR0 (``None`` without a DSR or when SR <= SR0).
        dsr_passed: ``dsr >= dsr_threshold``; ``None`` when no DSR was given.
        verdict: One-sentence verdict.
        sections: The report body.
    """

    title: str
    performance: PerformanceSummary
    cost_drag: float | None
    cost_drag_by_kind: Mapping[str, float]
    psr: PSRResult | None
    min_trl: MinTRLResult | None
    min_trl_sr0: MinTRLResult | None
    dsr_passed: bool | None
    verdict: str
    sections: tuple[ReportSection, ...] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the numbers (not the prose)."""
        return {
            "title": self.title,
            "performance": self.performance.to_dict(),
            "cost_drag": self.cost_drag,
            "cost_drag_by_kind": dict(self.cost_drag_by_kind),
            "psr": None if self.psr is None else self.psr.to_dict(),
            "min_trl": None if self.min_trl is None else self.min_trl.to_dict(),
            "min_trl_sr0": None if self.min_trl_sr0 is None else self.min_trl_sr0.to_dict(),
            "dsr_passed": self.dsr_passed,
            "verdict": self.verdict,
        }

    def to_markdown(self) -> str:
        """Render the report as markdown (pipes in cells and HTML-like tags escaped)."""
        out = [f"# {_md(self.title)}"]
        for section in self.sections:
            out += ["", f"## {section.title}"]
            in_list = False
            for block in section.blocks:
                if isinstance(block, ReportLine) and not block.emphasis:
                    out += ([] if in_list else [""]) + [f"- {_md(block.text)}"]
                    in_list = True
                    continue
                out.append("")
                if isinstance(block, ReportTable):
                    out += _markdown_table(block)
                else:
                    out.append(f"**{_md(block.text)}**")
                in_list = False
        return "\n".join(out) + "\n"


def _md(text: str) -> str:
    """One line of markdown text; ``<tag`` is backslash-escaped so no renderer runs raw HTML."""
    return re.sub(r"<(?=[A-Za-z/!?])", r"\\<", " ".join(str(text).split()))


def _markdown_table(table: ReportTable) -> list[str]:
    def row(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(_md(c).replace("|", "\\|") for c in cells) + " |"

    return [row(table.header), "|" + "---|" * len(table.header), *map(row, table.rows)]
