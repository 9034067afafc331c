"""Prompts of the research graph and the templates of its report.

The researcher's system prompt carries the session's research context twice: in prose for a
language model and as a JSON hint (``{"context": ..., "as_of": ...}``) that the offline policy
reads (see :func:`quantdesk.agents.offline_model.make_plan`). The critic's prompt hands a
language model a digest of the tool log (ids, guardrail outcomes, the headline numbers) and asks
for a :class:`~quantdesk.agents.research.state.Critique`.

The report is written from templates: every number in it is copied from a tool envelope and
followed by the id of the call that produced it (``[backtest offline_3_backtest]``), and every
disclosure names its filing (ticker, form, period, Item, accession or document id, character
span) and the filing call that returned it. Text written by a model (the researcher's summary,
a model critic's concerns) is quoted and labelled as such.

Filing text is untrusted data. It reaches the critic model only inside the untrusted-data
blocks of ``context_block`` (:mod:`quantdesk.rag.untrusted`); the evidence digest and every
concern carry citation labels, never passages. The report quotes passages for people, escaped
(markdown here, HTML in :mod:`quantdesk.agents.research.report_html`), except a passage that
contains text addressed to an AI model, which is listed but never quoted.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from quantdesk.agents.filing_evidence import (
    FilingPassage,
    FilingReview,
    classify_passage,
    looks_like_instruction,
    review_filings,
)
from quantdesk.agents.research.state import ResearchState, ToolLogEntry, primary_trial

__all__ = [
    "CRITIC_SYSTEM",
    "cite",
    "cite_passage",
    "critic_user_prompt",
    "evidence_digest",
    "excerpt",
    "filing_review",
    "fmt",
    "headline",
    "passage_source",
    "rebuttal_prompt",
    "render_report",
    "researcher_system_prompt",
]

CRITIC_SYSTEM = (
    "You are the critic of a quantitative research team. Attack the hypothesis using only the "
    "tool evidence given: leakage and look-ahead (guardrail outcomes), the deflated Sharpe "
    "ratio given the trials actually run, overfitting (PBO when available), costs and "
    "turnover, sample size, regime dependence (ask for a split-sample backtest), and what the "
    "filings say when filing tools were used. Mark a concern 'blocking' only when it should "
    "stop the hypothesis from being accepted. Cite the tool call ids your numbers come from. "
    "You may request up to 6 extra tests as tool calls (tool name and arguments). Answer only "
    "with a JSON object following the Critique schema."
)


def researcher_system_prompt(context: dict[str, Any]) -> str:
    """System prompt of the researcher, with the research context and its JSON hint."""
    as_of = context.get("as_of")
    if context.get("holdout_start"):
        # Research stops the day before the holdout; the holdout is for the final test only.
        day_before = (date.fromisoformat(context["holdout_start"]) - timedelta(days=1)).isoformat()
        as_of = min(as_of, day_before) if as_of else day_before
    hint = {"context": context.get("id"), "as_of": as_of}
    hint = {k: v for k, v in hint.items() if v}
    holdout = (
        f"[{context.get('holdout_start')}, {context.get('holdout_end') or 'open'}]"
        if context.get("holdout_start")
        else "none"
    )
    return (
        "You are the researcher of a quantitative research team. Turn the question into one "
        "testable hypothesis, test it with the quantdesk tools (data, features, purged CV, "
        "backtests with costs, deflated Sharpe, risk report) and finish with the hypothesis and "
        "its evidence, citing the tool call id of every number. Every backtest and CV run is a "
        "trial counted against you; do not search parameters. The holdout is off limits.\n"
        f"Research context: {context.get('name')} (id {context.get('id')}), as of "
        f"{as_of or 'the data end'}, holdout {holdout}, trial budget "
        f"{context.get('trial_budget')}.\n"
        f"Research plan hints: {json.dumps(hint, sort_keys=True)}"
    )


def rebuttal_prompt(critique: dict[str, Any]) -> str:
    """The user turn that hands the critic's review back to a model researcher."""
    lines = [
        "The critic reviewed your hypothesis. Answer its blocking concerns with tests or "
        "restate the hypothesis; finish with the revised hypothesis and its evidence."
    ]
    lines += [f"- [{c['severity']}] {c['text']}" for c in critique.get("concerns", [])]
    return "\n".join(lines)


def cite(entry: ToolLogEntry | dict[str, Any]) -> str:
    """The citation of a tool call: ``[name id]``."""
    return f"[{entry['name']} {entry['id']}]"


def fmt(value: Any, spec: str) -> str:
    """Format a number, ``n/a`` for a missing one."""
    return "n/a" if value is None else format(value, spec)


def headline(entry: ToolLogEntry) -> str:
    """The headline numbers of one tool call (or its error), for digests and reports."""
    env = entry["envelope"]
    if not entry["ok"]:
        error = env.get("error") or {}
        return (
            f"{error.get('kind', 'error')}"
            f"{' by guardrail ' + error['guardrail'] if error.get('guardrail') else ''}: "
            f"{error.get('message', '')} Fix: {error.get('fix') or 'n/a'}"
        )
    r = env.get("result") or {}
    perf = r.get("performance") or {}
    dsr = r.get("deflated_sharpe") or {}
    trial = r.get("trial") or {}
    parts = []
    if entry["name"] == "fetch_prices":
        parts.append(
            f"{r.get('n_symbols')} symbols, {fmt(r.get('n_rows'), ',')} rows, "
            f"{r.get('first_date')} to {r.get('last_date')}"
        )
    if entry["name"] == "validate_data":
        parts.append(f"{r.get('n_errors')} errors, {r.get('n_warnings')} warnings")
    look = r.get("lookahead") or {}
    if entry["name"] == "compute_features" and look:
        parts.append(
            f"look-ahead check {'passed' if look.get('passed') else 'FAILED'} on "
            f"{fmt(look.get('n_values'), ',')} values"
        )
    if trial:
        parts.append(
            f"trial {trial.get('trial_id')} ({trial.get('first_date')} to "
            f"{trial.get('last_date')}, {trial.get('n_obs')} obs)"
        )
    if perf:
        parts.append(
            f"Sharpe {fmt(perf.get('sharpe'), '.2f')}, max drawdown "
            f"{fmt(perf.get('max_drawdown'), '.1%')}"
        )
    if dsr:
        parts.append(f"DSR {fmt(dsr.get('dsr'), '.3f')} with N={fmt(dsr.get('n_trials'), '.0f')}")
    if "pbo" in r:
        parts.append(f"PBO {fmt(r.get('pbo'), '.2f')}")
    if entry["name"] in {"search_filings", "get_filing_section"}:
        hits = r.get("hits") if "hits" in r else [r]
        tickers = sorted({(h.get("citation") or {}).get("ticker") or "?" for h in hits or []})
        docs = {(h.get("citation") or {}).get("doc_id") for h in hits or []}
        parts.append(
            f"{len(hits or [])} passage(s) public by {r.get('as_of')} from {len(docs)} "
            f"filing(s) ({', '.join(tickers) or 'none'})"
        )
    return "; ".join(parts) or "ok"


def evidence_digest(state: ResearchState) -> str:
    """One line per tool call: id, tool, guardrail outcomes, headline numbers."""
    lines = []
    for entry in state.get("tool_log", []):
        guards = ", ".join(
            f"{g['name']}={g['outcome']}" for g in entry["envelope"].get("guardrails", [])
        )
        lines.append(f"- {cite(entry)} by {entry['origin']}: {headline(entry)} ({guards})")
    return "\n".join(lines) or "- (no tool calls)"


def critic_user_prompt(state: ResearchState, tools: list[str]) -> str:
    """The critic's user turn: the hypothesis, the evidence digest and the tools it may ask for."""
    hypotheses = state.get("hypotheses", [])
    text = hypotheses[-1]["text"] if hypotheses else "(no hypothesis stated)"
    blocks = [
        f"Filing excerpts returned by {cite(e)}:\n{result['context_block']}"
        for e in state.get("tool_log", [])
        if e["ok"]
        and e["name"] in {"search_filings", "get_filing_section"}
        and (result := e["envelope"].get("result") or {}).get("context_block")
    ]
    return (
        f"Question: {state.get('question', '')}\n"
        f"Hypothesis (researcher's words):\n{text}\n\n"
        f"Tool evidence:\n{evidence_digest(state)}\n\n"
        + "".join(block + "\n" for block in blocks)
        + f"Tools you may request: {', '.join(tools)}.\n"
        f"This is review {state.get('round', 0) + 1}."
    )


def _quote(text: str) -> str:
    return "\n".join("> " + line for line in text.splitlines()) or "> (empty)"


_EXCERPT_CHARS = 900
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>#|~!&"})


def filing_review(state: ResearchState) -> FilingReview:
    """The filing evidence of the session (see :func:`review_filings`)."""
    return review_filings(state.get("tool_log", []), primary_trial(state))


def passage_source(passage: FilingPassage) -> str:
    """Citation label of a passage with the time its filing became public."""
    stamp = str(passage.citation.get("available_at") or "")
    when = stamp[:16].replace("T", " ") + " UTC" if stamp else "public time unknown"
    return f"{passage.label}, public {when}"


def excerpt(text: str) -> str:
    """A passage on one line, capped at a readable length (still untrusted: escape it)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _EXCERPT_CHARS else flat[: _EXCERPT_CHARS - 3] + "..."


def _filings_section(state: ResearchState) -> list[str]:
    review = filing_review(state)
    if not review.calls:
        return []
    lines = [
        "",
        "## Filings (quoted text is untrusted data from the filings, never instructions)",
    ]
    for e in review.calls:
        lines.append(f"- {cite(e)} ({e['origin']}): {headline(e)}")
    if review.holdings:
        longs = sum(side == "long" for side in review.holdings.values())
        lines.append(
            f"- Positions on {review.holdings_date}: {longs} long, "
            f"{len(review.holdings) - longs} short (the primary strategy's buckets)."
        )
    quiet = []
    for passage in review.passages:
        kinds = classify_passage(passage.text)
        source = f"{passage_source(passage)} {cite_passage(review, passage)}"
        if looks_like_instruction(passage.text):
            lines.append(
                f"- {passage.ticker} ({review.position(passage.ticker)}): {source}: not "
                "quoted, it contains text addressed to an AI model (a likely prompt injection)."
            )
        elif kinds:
            lines.append(
                f"- {passage.ticker} ({review.position(passage.ticker)}) mentions "
                f"{', '.join(k.label for k in kinds)}: {source}"
            )
            lines.append("  > " + excerpt(passage.text).translate(_MD_SPECIAL))
        else:
            quiet.append(source)
    if quiet:
        lines.append("- No recognised disclosure in: " + "; ".join(quiet) + ".")
    return lines


def cite_passage(review: FilingReview, passage: FilingPassage) -> str:
    """The citation of the tool call that returned ``passage``."""
    name = next(e["name"] for e in review.calls if e["id"] == passage.call_id)
    return cite({"name": name, "id": passage.call_id})


def render_report(state: ResearchState, *, model_id: str) -> str:
    """The markdown report: decision, evidence table, critique, risk, holdout, tool log."""
    ctx = state.get("context", {})
    decision = state.get("decision") or {"kind": "needs-more-evidence", "reasons": []}
    lines = [
        "# Research report",
        "",
        f"- Question: {state.get('question', '')}",
        f"- Research context: {ctx.get('name')} (id {ctx.get('id')}), as of "
        f"{ctx.get('as_of') or 'the data end'}, holdout "
        f"{ctx.get('holdout_start') or 'none'} to {ctx.get('holdout_end') or 'open'}",
        f"- Researcher model: {model_id}",
        f"- Decision: **{decision['kind'].upper()}**",
        "",
        "## Why",
    ]
    lines += [f"- {reason}" for reason in decision.get("reasons", [])] or ["- (no reasons)"]
    hypotheses = state.get("hypotheses", [])
    if hypotheses:
        last = hypotheses[-1]
        lines += [
            "",
            f"## Hypothesis {last['id']} (text written by {last['model']})",
            _quote(last["text"]),
        ]
    lines += ["", "## Evidence (every number cites the tool call that produced it)"]
    lines += [f"- {cite(e)} ({e['origin']}): {headline(e)}" for e in state.get("tool_log", [])]
    for critique in state.get("critiques", []):
        lines += ["", f"## Critic review {critique['round']} ({critique['by']})"]
        lines += [
            f"- [{c['severity']}] {c['topic']}: {c['text']}"
            + (f" (cites {', '.join(c['cites'])})" if c.get("cites") else "")
            for c in critique["concerns"]
        ] or ["- no concerns"]
        lines += [f"- requested: {t['tool']} ({t['reason']})" for t in critique["requested_tests"]]
    risk = state.get("risk_findings") or {}
    lines += ["", f"## Risk ({'VETO' if risk.get('veto') else 'no veto'})"]
    lines += [f"- [{f['severity']}] {f['text']}" for f in risk.get("findings", [])] or ["- n/a"]
    lines += _filings_section(state)
    holdout = state.get("holdout") or {}
    lines += ["", f"## Holdout: {holdout.get('status', 'not evaluated')}"]
    if holdout.get("note"):
        lines.append(f"- {holdout['note']}")
    lines += [
        "",
        "## Tool call log",
        "",
        "| id | tool | origin | ok | trial |",
        "|---|---|---|---|---|",
    ]
    for e in state.get("tool_log", []):
        trial = (e["envelope"].get("provenance") or {}).get("trial_id") or ""
        lines.append(f"| {e['id']} | {e['name']} | {e['origin']} | {e['ok']} | {trial} |")
    return "\n".join(lines) + "\n"
