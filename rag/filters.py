"""Infer search filters (company, fiscal year, fiscal period, form) from a question.

The extractor is deliberately conservative: a filter that is wrong removes the right passage
from every ranking, while a missing filter only costs precision. So:

* a company matches by ticker only when the ticker is written in capitals in the question and
  is not a common financial acronym ("EPS", "CEO", ...), and by name only when the name's words
  are capitalised in the question ("Target's revenue", not "price target");
* a multi-word company name also matches by a prefix no other name shares ("JPMorgan" for
  "JPMorgan Chase & Co", "Apple Hospitality" for "Apple Hospitality REIT, Inc.");
* with several years in the question ("from FY2021 to FY2022") the latest wins, since the
  later filing reports both years;
* the form is set only when the question names it ("10-K", "annual report", "quarterly report").

Company names come from a :class:`CompanyDirectory`: the SEC ticker file
(``reference/sec_company_tickers_edgartools_2024-05.json`` in the shared data, through
:func:`load_sec_company_tickers`) merged with the companies the index itself holds.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from quantdesk.quant_core.errors import DataError, InputError

__all__ = [
    "ChunkFilter",
    "CompanyDirectory",
    "InferredFilters",
    "as_of_timestamp",
    "company_key",
    "filter_attempts",
    "infer_filters",
    "load_sec_company_tickers",
]

# Written as one string each for readability; split into words at import.
_NAME_SUFFIXES = frozenset(
    re.findall(
        r"\S+",
        "inc incorporated corp corporation co company companies ltd limited plc llc lp holdings "
        "holding group sa ag nv se the com de class new",
    )
)
# Capitalised words that are tickers of some listed company but in a question are almost
# always an acronym or an ordinary word.
_NOT_TICKERS = frozenset(
    re.findall(
        r"\S+",
        "A I AN AND ARE AS AT BE BY CEO CFO COO CTO DO EPS ETF EBIT EBITDA FCF FOR FX FY GAAP GDP "
        "HAS HOW IN IPO IS IT ITS LLC M&A NA NO NOT OF OK ON OR Q1 Q2 Q3 Q4 ROA ROE ROI ROIC SEC "
        "SG&A SO THE TO TTM US USA USD WAS WE WHAT WHO YOY YTD AI API CAGR CAPEX COGS DIO DPO DSO "
        "ESG EU EV FIFO IRS LIFO MD&A NASDAQ NYSE OCF OPEX PE R&D UK",
    )
)
_CONNECTORS = frozenset({"of", "and", "the", "de", "for"})
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9&.\-'\u2019]*")
_YEAR = re.compile(
    r"\b(?:FY\s?'?(?P<fy>\d{4}|\d{2})|fiscal(?:\s+year)?\s+(?P<fiscal>\d{4})|(?P<bare>(?:19|20)\d{2}))\b",
    re.IGNORECASE,
)
_QUARTER = re.compile(
    r"\b(?:Q(?P<q>[1-4])|(?P<word>first|second|third|fourth)\s+(?:fiscal\s+)?quarter)\b",
    re.IGNORECASE,
)
_QUARTER_WORDS = {"first": 1, "second": 2, "third": 3, "fourth": 4}
_FORMS = (
    (re.compile(r"\b10-?K\b|\bannual report\b", re.IGNORECASE), "10-K"),
    (re.compile(r"\b10-?Q\b|\bquarterly report\b", re.IGNORECASE), "10-Q"),
    (re.compile(r"\b8-?K\b|\bcurrent report\b", re.IGNORECASE), "8-K"),
)


def _name_tokens(name: str) -> tuple[str, ...]:
    """Lower-case name words without legal suffixes: "AMAZON COM INC" -> ("amazon",)."""
    words = re.findall(r"[a-z0-9]+", name.lower().replace("&", " "))
    while words and words[-1] in _NAME_SUFFIXES:
        words.pop()
    while words and words[0] == "the":
        words.pop(0)
    return tuple(words)


def company_key(name: str) -> str:
    """A normalised company name for exact matching: "The Coca-Cola Company" -> "coca cola"."""
    return " ".join(_name_tokens(name))


@dataclass(frozen=True)
class _Entry:
    ticker: str | None
    company: str


@dataclass
class CompanyDirectory:
    """Company names and tickers the extractor can recognise.

    Build it with :meth:`from_pairs` or :func:`load_sec_company_tickers`, and combine
    directories with :meth:`merged` (the left one wins on conflicts).
    """

    _names: dict[tuple[str, ...], _Entry] = field(default_factory=dict)
    _tickers: dict[str, _Entry] = field(default_factory=dict)
    _prefixes: dict[tuple[str, ...], _Entry | None] | None = field(default=None, repr=False)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str | None, str | None]]) -> CompanyDirectory:
        """Build from ``(ticker, company name)`` pairs; either may be ``None``."""
        directory = cls()
        for ticker, company in pairs:
            directory._add(ticker.upper() if ticker else None, company)
        return directory

    def _add(self, ticker: str | None, company: str | None) -> None:
        entry = _Entry(ticker=ticker, company=company or ticker or "")
        self._prefixes = None
        if ticker:
            self._tickers.setdefault(ticker, entry)
        tokens = _name_tokens(company) if company else ()
        if tokens:
            self._names.setdefault(tokens, entry)

    def merged(self, other: CompanyDirectory) -> CompanyDirectory:
        """A new directory with this one's entries, then ``other``'s where not already known."""
        result = CompanyDirectory(dict(self._names), dict(self._tickers))
        for tokens, entry in other._names.items():
            result._names.setdefault(tokens, entry)
        for ticker, entry in other._tickers.items():
            result._tickers.setdefault(ticker, entry)
        return result

    def __len__(self) -> int:
        return len(self._names) + len(self._tickers)

    def _prefix_aliases(self) -> dict[tuple[str, ...], _Entry | None]:
        """Proper prefixes of multi-word names, mapped to their name when only one has them.

        Ambiguous prefixes map to ``None``; one-word prefixes shorter than four characters
        are left out ("new", "first" and the like start too many names).
        """
        if self._prefixes is None:
            prefixes: dict[tuple[str, ...], _Entry | None] = {}
            for tokens, entry in self._names.items():
                for size in range(1, len(tokens)):
                    prefix = tokens[:size]
                    if size == 1 and len(prefix[0]) < 4:
                        continue
                    seen = prefixes.get(prefix, entry)
                    prefixes[prefix] = entry if seen == entry else None
            self._prefixes = prefixes
        return self._prefixes

    def find(self, question: str) -> tuple[str | None, str | None, str | None]:
        """The ``(ticker, company, evidence)`` of the company the question names, if any.

        Tickers first (capitalised, not an acronym), then the longest run of capitalised
        question words that is a whole company name or a prefix only one name has.
        """
        words = [_strip_possessive(match.group()) for match in _WORD.finditer(question)]
        for word in words:
            bare = word.rstrip(".")
            if bare.isupper() and len(bare) >= 2 and bare not in _NOT_TICKERS:
                entry = self._tickers.get(bare)
                if entry is not None:
                    return entry.ticker, entry.company, word
        # One token per alphanumeric run ("Coca-Cola" -> coca, cola), each remembering
        # whether the word it came from was capitalised.
        flat = [
            (token, word[:1].isupper() or word[:1].isdigit() or token in _CONNECTORS)
            for word in words
            for token in re.findall(r"[a-z0-9]+", word.lower())
        ]
        prefixes = self._prefix_aliases()
        longest = max((len(tokens) for tokens in self._names), default=0)
        for size in range(min(longest, 8), 0, -1):
            for first in range(0, len(flat) - size + 1):
                window = flat[first : first + size]
                if not all(capital for _, capital in window) or window[0][0] in _CONNECTORS:
                    continue
                tokens = tuple(token for token, _ in window)
                entry = self._names.get(tokens) or prefixes.get(tokens)
                if entry is not None:
                    return entry.ticker, entry.company, " ".join(tokens)
        return None, None, None


def _strip_possessive(word: str) -> str:
    for suffix in ("'s", "'S", "\u2019s", "'"):
        if word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def load_sec_company_tickers(path: Path | str) -> CompanyDirectory:
    """Load the SEC ``company_tickers.json`` layout: ``{"0": {"cik_str", "ticker", "title"}}``.

    Raises:
        DataError: The file is missing or not in that layout.
    """
    path = Path(path)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        pairs = [(str(row["ticker"]), str(row["title"])) for row in rows.values()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(
            f"Cannot read SEC company tickers from {path}: {exc}.",
            fix="pass the SEC company_tickers.json file (shared data: reference/).",
        ) from exc
    return CompanyDirectory.from_pairs(pairs)


@dataclass(frozen=True)
class InferredFilters:
    """Filters read from a question; ``None`` means "do not filter on this".

    Attributes:
        ticker: Ticker of the company named, when the directory knows it.
        company: Registrant name of the company named.
        fiscal_year: The latest fiscal year named.
        fiscal_period: ``"Q1"``..``"Q4"`` when a quarter is named.
        form: ``"10-K"``, ``"10-Q"`` or ``"8-K"`` when named.
        evidence: The question fragments each filter came from.
    """

    ticker: str | None = None
    company: str | None = None
    fiscal_year: int | None = None
    fiscal_period: str | None = None
    form: str | None = None
    evidence: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """True when nothing was inferred."""
        found = (self.ticker, self.company, self.fiscal_year, self.fiscal_period, self.form)
        return not any(value is not None for value in found)


def infer_filters(question: str, *, companies: CompanyDirectory | None = None) -> InferredFilters:
    """Read company, fiscal year, fiscal quarter and form from a question.

    Args:
        question: The user's question.
        companies: Names and tickers to recognise; no company filter without one.

    Returns:
        The filters found, with the fragments they came from.

    Raises:
        InputError: ``question`` is not a string.
    """
    if not isinstance(question, str):
        raise InputError(
            f"question must be a string, got {type(question).__name__}.", fix="pass the text."
        )
    evidence: list[str] = []
    ticker = company = None
    if companies is not None:
        ticker, company, found = companies.find(question)
        if found:
            evidence.append(found)
    years: list[int] = []
    for match in _YEAR.finditer(question):
        raw = match.group("fy") or match.group("fiscal") or match.group("bare")
        year = int(raw) if len(raw) == 4 else 2000 + int(raw)
        years.append(year)
        evidence.append(match.group())
    quarter = _QUARTER.search(question)
    fiscal_period = None
    if quarter:
        number = quarter.group("q") or _QUARTER_WORDS[quarter.group("word").lower()]
        fiscal_period = f"Q{number}"
        evidence.append(quarter.group())
    form = None
    for pattern, name in _FORMS:
        found_form = pattern.search(question)
        if found_form:
            form = name
            evidence.append(found_form.group())
            break
    return InferredFilters(
        ticker=ticker,
        company=company,
        fiscal_year=max(years) if years else None,
        fiscal_period=fiscal_period,
        form=form,
        evidence=tuple(evidence),
    )


_MARKET = ZoneInfo("America/New_York")
_CLOSE = time(16, 0)


def as_of_timestamp(as_of: date | datetime | str) -> int:
    """The decision time ``as_of`` as UTC epoch seconds, rounded down.

    A datetime is taken as given (naive means UTC). A date, or an ISO date string, means the
    US market close (16:00 New York time) of that day, the project's decision time for a bar
    dated that day: a filing accepted after the close is not available to that decision.
    Rounding down, against ``available_at`` rounded up, never admits a chunk early.

    Raises:
        InputError: ``as_of`` is missing, of the wrong type, or not an ISO date/datetime.
    """
    if isinstance(as_of, str):
        text = as_of.strip()
        try:
            as_of = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            raise InputError(
                f"as_of={text!r} is not an ISO date or datetime.",
                fix="write e.g. '2023-12-31' or '2023-12-31T21:00:00+00:00'.",
            ) from None
    if isinstance(as_of, datetime):
        moment = as_of if as_of.tzinfo is not None else as_of.replace(tzinfo=ZoneInfo("UTC"))
    elif isinstance(as_of, date):
        moment = datetime.combine(as_of, _CLOSE, tzinfo=_MARKET)
    else:
        raise InputError(
            f"as_of must be a date, datetime or ISO string, got {type(as_of).__name__}: {as_of!r}.",
            fix="pass the decision time, e.g. '2023-12-31'; every search needs one.",
        )
    return math.floor(moment.timestamp())


FilterValue = str | int | Sequence[str] | Sequence[int] | None


def _values(value: FilterValue) -> tuple[str | int, ...]:
    if value is None:
        return ()
    if isinstance(value, str | int):
        return (value,)
    return tuple(value)


@dataclass(frozen=True)
class ChunkFilter:
    """Which chunks a search may return; applied inside both retrievers.

    Every field but ``as_of`` is optional; a sequence means "any of these".

    Attributes:
        as_of: Decision time in UTC epoch seconds: only chunks with ``available_at <= as_of``.
        ticker: Upper-case ticker(s).
        company_key: Normalised company name(s) (see :func:`company_key`).
        form: Form type(s), e.g. ``"10-K"``.
        fiscal_year: Fiscal year(s).
        fiscal_period: ``"FY"``, ``"Q1"``..``"Q4"``.
        item: Section key(s): ``"1A"``, ``"I-2"``, ``"page-12"``.
        doc_id: Document id(s).
    """

    as_of: int
    ticker: FilterValue = None
    company_key: FilterValue = None
    form: FilterValue = None
    fiscal_year: FilterValue = None
    fiscal_period: FilterValue = None
    item: FilterValue = None
    doc_id: FilterValue = None

    def equalities(self) -> dict[str, tuple[str | int, ...]]:
        """The set filters, field name to accepted values."""
        fields = ("ticker", "company_key", "form", "fiscal_year", "fiscal_period", "item", "doc_id")
        out = {name: _values(getattr(self, name)) for name in fields}
        if out["ticker"]:
            out["ticker"] = tuple(str(t).upper() for t in out["ticker"])
        if out["form"]:
            out["form"] = tuple(str(f).upper() for f in out["form"])
        return {name: values for name, values in out.items() if values}

    def chroma_where(self) -> dict[str, object]:
        """The filter as a Chroma ``where`` clause."""
        clauses: list[dict[str, object]] = [{"available_at": {"$lte": self.as_of}}]
        for name, values in self.equalities().items():
            if len(values) == 1:
                clauses.append({name: {"$eq": values[0]}})
            else:
                clauses.append({name: {"$in": list(values)}})
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def mask(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Boolean row mask over column arrays (``available_at`` int64, others as stored)."""
        keep = columns["available_at"] <= self.as_of
        for name, values in self.equalities().items():
            keep &= np.isin(columns[name], np.asarray(values))
        return keep


def filter_attempts(
    question: str,
    explicit: ChunkFilter,
    directory: CompanyDirectory,
    *,
    tickers: set[str],
    company_keys: set[str],
) -> list[ChunkFilter]:
    """Filters to try, strictest first, when a search infers filters from its question.

    The inferred company is used only when the index holds it (by ticker, else by normalised
    name); explicit filters always win. The list holds the explicit filter plus everything
    inferred, then the explicit filter plus the company alone; the caller appends the
    explicit filter as the last resort.

    Args:
        question: The search query.
        explicit: The filters the caller gave (including ``as_of``).
        directory: Names and tickers to recognise.
        tickers: Tickers present in the index.
        company_keys: Normalised company names present in the index.
    """
    inferred = infer_filters(question, companies=directory)
    who: dict[str, object] = {}
    if explicit.ticker is None and explicit.company_key is None:
        if inferred.ticker and inferred.ticker in tickers:
            who = {"ticker": inferred.ticker}
        elif inferred.company and company_key(inferred.company) in company_keys:
            who = {"company_key": company_key(inferred.company)}
    rest = {
        name: value
        for name, value in (
            ("form", inferred.form),
            ("fiscal_year", inferred.fiscal_year),
            ("fiscal_period", inferred.fiscal_period),
        )
        if value is not None and getattr(explicit, name) is None
    }
    attempts = []
    if who or rest:
        attempts.append(replace(explicit, **who, **rest))  # type: ignore[arg-type]
    if who and rest:
        attempts.append(replace(explicit, **who))  # type: ignore[arg-type]
    return attempts
