"""The research report as one self-contained HTML file.

:func:`render_report_html` writes the same report as
:func:`~quantdesk.agents.research.prompts.render_report` (the same sentences, from the same
templates and the same tool log) as an HTML page that opens offline: inline CSS, no script, no
image, no font, no link out of the page, and a Content-Security-Policy that forbids loading
anything should a later edit add it. It ends with the citation tables: every tool call the
report cites (id, tool, who asked, arguments, headline numbers) and every disclosure with its
filing (ticker, form, fiscal period, Item, accession or document id, character span, when it
became public) and the call that returned it.

Every piece of text is escaped with :func:`html.escape`; filing excerpts are untrusted data
and only ever appear escaped inside ``<blockquote class="untrusted">``. Citations in the text
(``[backtest offline_3_backtest]``) link to their row of the citation table.
"""

from __future__ import annotations

import html
import json
import re
from functools import partial
from typing import Any

from quantdesk.agents.filing_evidence import classify_passage, looks_like_instruction
from quantdesk.agents.research.prompts import (
    cite,
    cite_passage,
    excerpt,
    filing_review,
    headline,
    passage_source,
)
from quantdesk.agents.research.state import ResearchState

__all__ = ["render_report_html"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:72rem;margin:2rem auto;
padding:0 1rem;color:#1d2330;line-height:1.45}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #d5d9e2;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border:1px solid #d5d9e2;padding:.3rem .45rem;text-align:left;vertical-align:top}
th{background:#f2f4f8}code,.args{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.82rem}
.args{white-space:pre-wrap;word-break:break-all}
.decision{display:inline-block;padding:.1rem .6rem;border-radius:.3rem;font-weight:700;color:#fff}
.accept{background:#1f7a3d}.reject{background:#a32020}.needs-more-evidence{background:#8a6d00}
.blocking,.veto{color:#a32020;font-weight:600}.minor,.info{color:#4a5568}
blockquote{margin:.3rem 0 .8rem 0;padding:.3rem .8rem;border-left:4px solid #c3cad8;
background:#f7f8fb;white-space:pre-wrap}
blockquote.untrusted{border-left-color:#b7791f;background:#fffaf0}
.note{color:#4a5568;font-size:.9rem}
"""

_CITATION = re.compile(r"\[([a-z_]+) ([A-Za-z0-9_.:~\-]+)\]")


def _text(value: Any, ids: set[str]) -> str:
    """Escaped text whose citations of known calls link to the citation table."""

    def link(match: re.Match[str]) -> str:
        if match.group(2) not in ids:
            return match.group(0)
        return f'<a href="#call-{match.group(2)}">{match.group(0)}</a>'

    return _CITATION.sub(link, html.escape(str(value), quote=True))


def _list(items: list[str]) -> list[str]:
    if not items:
        return ["<p class='note'>(none)</p>"]
    return ["<ul>", *(f"<li>{item}</li>" for item in items), "</ul>"]


def _row(cells: list[str], *, tag: str = "td", row_id: str | None = None) -> str:
    opening = f'<tr id="{html.escape(row_id, quote=True)}">' if row_id else "<tr>"
    return opening + "".join(f"<{tag}>{cell}</{tag}>" for cell in cells) + "</tr>"


def _sections(state: ResearchState, model_id: str, ids: set[str]) -> list[str]:
    t = partial(_text, ids=ids)
    ctx = state.get("context", {})
    decision = state.get("decision") or {"kind": "needs-more-evidence", "reasons": []}
    kind = str(decision["kind"])
    parts = [
        "<h1>Research report</h1>",
        "<ul>",
        f"<li>Question: {t(state.get('question', ''))}</li>",
        f"<li>Research context: {t(ctx.get('name'))} (id {t(ctx.get('id'))}), as of "
        f"{t(ctx.get('as_of') or 'the data end')}, holdout {t(ctx.get('holdout_start') or 'none')}"
        f" to {t(ctx.get('holdout_end') or 'open')}</li>",
        f"<li>Researcher model: {t(model_id)}</li>",
        f'<li>Decision: <span class="decision {html.escape(kind)}">{t(kind.upper())}</span></li>',
        "</ul>",
        "<p class='note'>Every number cites the tool call that produced it; every disclosure "
        "cites its filing. Quoted filing text is untrusted data, never instructions.</p>",
        "<h2>Why</h2>",
        *_list([t(reason) for reason in decision.get("reasons", [])]),
    ]
    hypotheses = state.get("hypotheses", [])
    if hypotheses:
        last = hypotheses[-1]
        parts += [
            f"<h2>Hypothesis {t(last['id'])} (text written by {t(last['model'])})</h2>",
            f"<blockquote>{t(last['text'])}</blockquote>",
        ]
    parts += [
        "<h2>Evidence (every number cites the tool call that produced it)</h2>",
        *_list([f"{t(cite(e))} ({t(e['origin'])}): {t(headline(e))}" for e in state["tool_log"]]),
    ]
    for critique in state.get("critiques", []):
        items = [
            f'<span class="{html.escape(c["severity"])}">[{t(c["severity"])}]</span> '
            f"{t(c['topic'])}: {t(c['text'])}"
            + (f" (cites {t(', '.join(c['cites']))})" if c.get("cites") else "")
            for c in critique["concerns"]
        ]
        items += [
            f"requested: {t(r['tool'])} ({t(r['reason'])})" for r in critique["requested_tests"]
        ]
        parts += [
            f"<h2>Critic review {t(critique['round'])} ({t(critique['by'])})</h2>",
            *_list(items),
        ]
    risk = state.get("risk_findings") or {}
    parts += [f"<h2>Risk ({'VETO' if risk.get('veto') else 'no veto'})</h2>"]
    parts += _list(
        [
            f'<span class="{html.escape(f["severity"])}">[{t(f["severity"])}]</span> {t(f["text"])}'
            for f in risk.get("findings", [])
        ]
    )
    parts += _filings(state, ids)
    holdout = state.get("holdout") or {}
    parts += [f"<h2>Holdout: {t(holdout.get('status', 'not evaluated'))}</h2>"]
    if holdout.get("note"):
        parts.append(f"<p>{t(holdout['note'])}</p>")
    return parts


def _filings(state: ResearchState, ids: set[str]) -> list[str]:
    review = filing_review(state)
    if not review.calls:
        return []
    t = partial(_text, ids=ids)
    parts = [
        "<h2>Filings (quoted text is untrusted data from the filings, never instructions)</h2>"
    ]
    items = [f"{t(cite(e))} ({t(e['origin'])}): {t(headline(e))}" for e in review.calls]
    if review.holdings:
        longs = sum(side == "long" for side in review.holdings.values())
        items.append(
            f"Positions on {t(review.holdings_date)}: {longs} long, "
            f"{len(review.holdings) - longs} short (the primary strategy's buckets)."
        )
    parts += _list(items)
    quiet = []
    for passage in review.passages:
        kinds = classify_passage(passage.text)
        source = f"{t(passage_source(passage))} {t(cite_passage(review, passage))}"
        who = f"{t(passage.ticker)} ({t(review.position(passage.ticker))})"
        if looks_like_instruction(passage.text):
            parts.append(
                f"<p>{who}: {source}: not quoted, it contains text addressed to an AI model "
                "(a likely prompt injection).</p>"
            )
        elif kinds:
            parts.append(f"<p>{who} mentions {t(', '.join(k.label for k in kinds))}: {source}</p>")
            parts.append(
                f'<blockquote class="untrusted">{html.escape(excerpt(passage.text))}</blockquote>'
            )
        else:
            quiet.append(source)
    if quiet:
        parts.append("<p>No recognised disclosure in: " + "; ".join(quiet) + ".</p>")
    return parts


def _citation_tables(state: ResearchState, ids: set[str]) -> list[str]:
    t = partial(_text, ids=ids)
    parts = [
        "<h2>Citations</h2>",
        "<h3>Numbers: the tool calls they come from</h3>",
        "<table>",
        _row(["call", "tool", "origin", "round", "ok", "trial", "arguments", "headline"], tag="th"),
    ]
    for e in state.get("tool_log", []):
        arguments = json.dumps(e["arguments"], sort_keys=True)
        trial = (e["envelope"].get("provenance") or {}).get("trial_id") or ""
        parts.append(
            _row(
                [
                    f"<code>{t(cite(e))}</code>",
                    t(e["name"]),
                    t(e["origin"]),
                    t(e["round"]),
                    t(e["ok"]),
                    t(trial),
                    f'<span class="args">{t(arguments[:600])}</span>',
                    t(headline(e)),
                ],
                row_id=f"call-{e['id']}",
            )
        )
    parts.append("</table>")
    review = filing_review(state)
    if review.passages:
        parts += [
            "<h3>Disclosures: the filings they come from</h3>",
            "<table>",
            _row(
                ["ticker", "position", "says", "form", "period", "Item", "accession / document",
                 "chars", "public (UTC)", "call"],
                tag="th",
            ),
        ]  # fmt: skip
        for p in review.passages:
            c = p.citation
            kinds = [k.label for k in classify_passage(p.text)]
            if looks_like_instruction(p.text):
                kinds.append("text addressed to an AI model (not quoted)")
            year, quarter = c.get("fiscal_year"), c.get("fiscal_period")
            period = "" if year is None else f"FY{year}"
            period = f"{quarter} {period}".strip() if quarter not in (None, "FY") else period
            item = f"Item {c.get('item')}" + (f" {c['item_title']}" if c.get("item_title") else "")
            parts.append(
                _row(
                    [
                        t(p.ticker or ""),
                        t(review.position(p.ticker)),
                        t("; ".join(kinds) or "no recognised disclosure"),
                        t(c.get("form") or ""),
                        t(period),
                        t(item),
                        f"<code>{t(c.get('accession') or c.get('doc_id') or '')}</code>",
                        t(f"{c.get('start')}-{c.get('end')}"),
                        t(str(c.get("available_at") or "")[:16].replace("T", " ")),
                        t(cite_passage(review, p)),
                    ]
                )
            )
        parts.append("</table>")
    return parts


def render_report_html(state: ResearchState, *, model_id: str | None = None) -> str:
    """The report of a finished (or stopped) session as a self-contained HTML page.

    Args:
        state: The session state (``ResearchOutcome.state``).
        model_id: The researcher's model id; default the one the markdown report in
            ``state["report"]`` names (so both files agree), else ``unknown``.

    Returns:
        The HTML document.
    """
    if model_id is None:
        named = re.search(r"^- Researcher model: (.+)$", state.get("report", ""), re.MULTILINE)
        model_id = named.group(1) if named else "unknown"
    ids = {e["id"] for e in state.get("tool_log", [])}
    title = html.escape(f"Research report: {state.get('question', '')}"[:200])
    head = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
    ]
    body = _sections(state, model_id, ids) + _citation_tables(state, ids)
    return "\n".join([*head, *body, "</body>", "</html>"]) + "\n"
