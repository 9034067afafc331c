"""What the filings say, read by rules: passages, disclosures and the names a strategy holds.

The offline policy and the research graph's rule critic use filings without a language model,
so they cannot "read" a passage. They do three mechanical things instead:

* :func:`strategy_holdings`: which names a ``quantile`` strategy holds on the last date of a
  ``compute_features`` result (the backtest's bucket rule: the ``max(1, floor(q * n))`` most
  extreme names a side, ties by symbol), so the filing search can be restricted to them;
* :func:`filing_passages`: the passages of a ``search_filings`` or ``get_filing_section``
  envelope with their citations. The text is taken out of the envelope's ``context_block``
  (the untrusted-data blocks of :mod:`quantdesk.rag.untrusted`, whose delimiters a filing
  cannot forge), so the raw ``text`` field never has to be requested;
* :func:`classify_passage`: which of a fixed list of disclosure kinds a passage mentions
  (:data:`DISCLOSURE_KINDS`: a pending merger, a going-concern doubt, ...), by regular
  expressions, and whether it contains text addressed to an AI model (a prompt injection).

Nothing here copies filing text into anything a model reads as instructions: callers write
their messages from templates filled with the kinds, tickers and citation labels, and quote
excerpts only in reports for people (escaped).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from quantdesk.rag.untrusted import BLOCK_END, BLOCK_START

__all__ = [
    "DISCLOSURE_KINDS",
    "DISCLOSURE_QUERY",
    "FILING_TOOLS",
    "DisclosureKind",
    "FilingPassage",
    "FilingReview",
    "classify_passage",
    "filing_passages",
    "looks_like_instruction",
    "review_filings",
    "search_tickers",
    "strategy_holdings",
]

FILING_TOOLS = frozenset({"search_filings", "get_filing_section"})

DISCLOSURE_QUERY = (
    "pending merger agreement, acquisition or tender offer; substantial doubt about the "
    "ability to continue as a going concern; bankruptcy or restructuring; delisting notice; "
    "change in fiscal year; restatement; material weakness in internal control"
)
"""The offline policy's filing query: events that move a price for reasons no price signal sees."""


@dataclass(frozen=True)
class DisclosureKind:
    """One kind of disclosure the rules recognise.

    Attributes:
        key: Identifier, e.g. ``pending_merger``.
        label: How a report names it.
        pattern: Case-insensitive regular expression that finds it in a passage.
        why: What it means for a strategy trading the name on price signals.
    """

    key: str
    label: str
    pattern: str
    why: str


DISCLOSURE_KINDS: tuple[DisclosureKind, ...] = (
    DisclosureKind(
        "pending_merger",
        "a pending merger or acquisition",
        r"\b(?:agreement and plan of merger|merger agreement|pending merger|tender offer"
        r"|definitive agreement to (?:be )?acquire[ds]?)\b",
        "until it closes the price tracks the deal terms, not the signal, and a broken deal "
        "is a jump the signal cannot see",
    ),
    DisclosureKind(
        "going_concern",
        "substantial doubt about continuing as a going concern",
        r"\bgoing[- ]concern\b",
        "a long can lose everything; a short can become hard to borrow and squeeze on a financing",
    ),
    DisclosureKind(
        "bankruptcy",
        "a bankruptcy or restructuring risk",
        r"\b(?:bankruptcy|chapter 11|restructuring support agreement)\b",
        "returns can jump to a total loss, and the name can leave the data",
    ),
    DisclosureKind(
        "delisting",
        "a delisting risk",
        r"\b(?:delist(?:ed|ing)?|continued listing (?:rule|standard)s?)\b",
        "the name can leave the tradable universe, and its last price may not be tradable",
    ),
    DisclosureKind(
        "fiscal_year_change",
        "a change of fiscal year",
        r"\b(?:change (?:in|of) (?:our |its |the )?fiscal year|transition (?:period|report))\b",
        "reporting periods and report dates shift: fundamentals aligned by fiscal period "
        "need the transition period handled",
    ),
    DisclosureKind(
        "restatement",
        "a restatement of financial statements",
        r"\brestate(?:d|ment)?\b",
        "past fundamentals changed after the fact: point-in-time values differ from today's",
    ),
    DisclosureKind(
        "material_weakness",
        "a material weakness in internal control",
        r"\bmaterial weakness(?:es)?\b",
        "reported numbers are less reliable and a restatement more likely",
    ),
)
"""Recognised kinds, most severe first."""

_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b[^.;]{0,40}\b(?:previous|prior|above|earlier|all"
    r"|your)\b[^.;]{0,30}\b(?:instructions?|prompts?|rules)\b"
    r"|\byou are now\b|\bsystem prompt\b|\bas an ai\b",
    re.IGNORECASE,
)
_OPEN = re.compile(r"^" + re.escape(BLOCK_START) + r" n=(\d+) .*>>>$")


@dataclass(frozen=True)
class FilingPassage:
    """One retrieved passage and where it comes from.

    Attributes:
        call_id: The tool call that returned it.
        rank: Its rank in that call's result, from 1.
        chunk_id: The index's passage id.
        citation: The tool's citation (``label``, ``ticker``, ``form``, ``fiscal_year``,
            ``fiscal_period``, ``item``, ``accession``, ``doc_id``, ``start``, ``end``,
            ``available_at``, ...).
        text: The passage as quoted in the untrusted-data block (untrusted).
    """

    call_id: str
    rank: int
    chunk_id: str
    citation: Mapping[str, Any]
    text: str

    @property
    def label(self) -> str:
        """One-line citation, e.g. ``SYN042 10-Q Q2 FY2020, Item I-2 (doc, chars 10-500)``."""
        return str(self.citation.get("label") or self.chunk_id)

    @property
    def ticker(self) -> str | None:
        """The filer's ticker, when known."""
        value = self.citation.get("ticker")
        return str(value) if value else None


def _blocks(context_block: str) -> dict[int, str]:
    """Texts of the untrusted-data blocks by their ``n``."""
    blocks: dict[int, str] = {}
    current: int | None = None
    lines: list[str] = []
    for line in context_block.splitlines():
        opening = _OPEN.match(line)
        if current is None and opening:
            current, lines = int(opening.group(1)), []
        elif current is not None and line == BLOCK_END:
            blocks[current] = "\n".join(lines)
            current = None
        elif current is not None:
            lines.append(line)
    return blocks


def filing_passages(call_id: str, name: str, envelope: Mapping[str, Any]) -> list[FilingPassage]:
    """The passages of a successful ``search_filings`` or ``get_filing_section`` envelope.

    Args:
        call_id: Id of the tool call.
        name: Tool name.
        envelope: The tool's JSON envelope.

    Returns:
        The passages in rank order; empty for a failed call or another tool.
    """
    result = envelope.get("result") or {}
    if not envelope.get("ok") or name not in FILING_TOOLS or not result:
        return []
    texts = _blocks(str(result.get("context_block") or ""))
    if name == "search_filings":
        hits = list(result.get("hits") or [])
    else:
        hits = [
            {
                "rank": 1,
                "chunk_id": f"{result.get('doc_id')}:{result.get('item')}",
                "citation": result.get("citation") or {},
            }
        ]
    return [
        FilingPassage(
            call_id=call_id,
            rank=int(hit.get("rank") or number),
            chunk_id=str(hit.get("chunk_id")),
            citation=dict(hit.get("citation") or {}),
            text=texts.get(number, ""),
        )
        for number, hit in enumerate(hits, start=1)
    ]


def classify_passage(text: str) -> list[DisclosureKind]:
    """The disclosure kinds a passage mentions, most severe first."""
    return [kind for kind in DISCLOSURE_KINDS if re.search(kind.pattern, text, re.IGNORECASE)]


def looks_like_instruction(text: str) -> bool:
    """Whether a passage contains text addressed to an AI model (a likely prompt injection)."""
    return _INSTRUCTION.search(text) is not None


def _signal_column(row: Mapping[str, Any], signal: str) -> str | None:
    for column in row:
        if column == signal or column.endswith("_" + signal):
            return column
    return None


def strategy_holdings(
    features: Mapping[str, Any], strategy: Mapping[str, Any]
) -> dict[str, str] | None:
    """The names a ``quantile`` strategy holds on the last date of a ``compute_features`` result.

    Args:
        features: The ``result`` of ``compute_features`` (``latest`` rows, ``n_symbols``).
        strategy: The backtest's ``strategy`` arguments (``signal``, ``higher_is_better``,
            ``method``, ``side``, ``quantile``; the backtest's defaults when absent).

    Returns:
        ``{symbol: "long" | "short"}``, or ``None`` when it cannot be known: another weighting
        method (every name is held), the signal is not among the columns, or ``latest`` does
        not cover the whole cross-section.
    """
    latest: Iterable[Mapping[str, Any]] = features.get("latest") or []
    rows = list(latest)
    if strategy.get("method", "quantile") != "quantile" or not rows:
        return None
    if len(rows) < int(features.get("n_symbols") or 0):
        return None
    column = _signal_column(rows[0], str(strategy.get("signal", "mom_252_21")))
    if column is None:
        return None
    scored = [
        (str(r["symbol"]), float(r[column]))
        for r in rows
        if isinstance(r.get(column), int | float) and math.isfinite(float(r[column]))
    ]
    if not scored:
        return None
    k = max(1, math.floor(len(scored) * float(strategy.get("quantile", 0.2))))
    sign = 1.0 if strategy.get("higher_is_better", True) else -1.0
    # as the engine does: each bucket takes its k most extreme names, ties by symbol
    best = sorted(scored, key=lambda s: (-sign * s[1], s[0]))[:k]
    held = {symbol: "long" for symbol, _ in best}
    if strategy.get("side", "dollar_neutral") != "long_only":
        worst = sorted(scored, key=lambda s: (sign * s[1], s[0]))[:k]
        held.update({symbol: "short" for symbol, _ in worst if symbol not in held})
    return held


def search_tickers(
    features: Mapping[str, Any], strategy: Mapping[str, Any] | None, source: Mapping[str, Any]
) -> list[str]:
    """The tickers whose filings to search: the held names, else the universe.

    Args:
        features: The ``result`` of ``compute_features``.
        strategy: The strategy arguments (``None`` for a forecast model, which holds no fixed
            names).
        source: The data source (its ``symbols``, when the universe is restricted).

    Returns:
        Sorted tickers; empty (search every filing) when neither is known.
    """
    held = strategy_holdings(features, strategy) if strategy else None
    if held:
        return sorted(held)
    universe = sorted(str(row["symbol"]) for row in features.get("latest") or [])
    if len(universe) < int(features.get("n_symbols") or 0):  # only part of the cross-section
        universe = sorted(map(str, source.get("symbols") or []))
    return universe


@dataclass(frozen=True)
class FilingReview:
    """What the filing calls of a session returned, sorted for a rule critic and a report.

    Attributes:
        calls: The filing tool calls of the log (``id``, ``name``, ``ok``, ``envelope``, ...),
            failed ones included.
        passages: Every passage returned, once (first retrieval wins), one company's together
            (companies in order of their first passage, then rank).
        holdings: ``{symbol: "long" | "short"}`` of the primary strategy on ``holdings_date``,
            or ``None`` when unknown.
        holdings_date: The last date of the cross-section the holdings come from.
    """

    calls: tuple[Mapping[str, Any], ...]
    passages: tuple[FilingPassage, ...]
    holdings: Mapping[str, str] | None
    holdings_date: str | None

    def position(self, ticker: str | None) -> str:
        """How the strategy holds ``ticker``: ``held long on DATE``, ``not held``, ..."""
        if self.holdings is None or ticker is None:
            return "holding unknown"
        side = self.holdings.get(ticker)
        return f"held {side} on {self.holdings_date}" if side else "not held"

    @property
    def flagged(self) -> list[tuple[FilingPassage, list[DisclosureKind]]]:
        """Passages that mention a recognised disclosure, with its kinds."""
        pairs = [(p, classify_passage(p.text)) for p in self.passages]
        return [(p, kinds) for p, kinds in pairs if kinds]

    @property
    def instructions(self) -> list[FilingPassage]:
        """Passages containing text addressed to an AI model (never quoted, never obeyed)."""
        return [p for p in self.passages if looks_like_instruction(p.text)]


def review_filings(
    log: Iterable[Mapping[str, Any]], primary: Mapping[str, Any] | None
) -> FilingReview:
    """Collect the filing evidence of a tool log.

    Args:
        log: Tool log entries (``id``, ``name``, ``origin``, ``ok``, ``arguments``,
            ``envelope``), in order.
        primary: The entry of the trial under review (its ``strategy`` arguments give the
            holdings), or ``None``.

    Returns:
        The :class:`FilingReview`.
    """
    entries = list(log)
    calls = tuple(e for e in entries if e["name"] in FILING_TOOLS)
    seen: set[str] = set()
    passages = []
    for entry in calls:
        for passage in filing_passages(entry["id"], entry["name"], entry["envelope"]):
            if passage.chunk_id not in seen:
                seen.add(passage.chunk_id)
                passages.append(passage)
    # one company's passages together, companies in order of their best passage
    first = {ticker: i for i, ticker in reversed(list(enumerate(p.ticker for p in passages)))}
    passages.sort(key=lambda p: first[p.ticker])
    holdings, when = None, None
    strategy = (primary or {}).get("arguments", {}).get("strategy")
    if primary is not None and primary["name"] == "backtest" and isinstance(strategy, dict):
        stop = next(i for i, e in enumerate(entries) if e["id"] == primary["id"])
        features = [
            e["envelope"].get("result") or {}
            for e in entries[:stop]
            if e["name"] == "compute_features" and e["ok"]
        ]
        if features:
            holdings = strategy_holdings(features[-1], strategy)
            when = str(features[-1].get("last_date")) if holdings else None
    return FilingReview(calls, tuple(passages), holdings, when)
