"""Query rewriting for filing search: drop instructions, name the line items a metric needs.

BM25 matches words, and analysts' questions are worded unlike the filings that answer them:

* they carry *instructions* ("round your answer to two decimal places", "answer in USD
  millions", "from the perspective of an investment analyst"). Those words are rare in
  filings, so BM25 gives them a high IDF and ranks whatever page happens to say "decimal";
* they name a *metric* ("return on assets", "quick ratio", "capex") while the filing prints
  the *line items* the metric is computed from ("Net income", "Total assets", "Purchases of
  property, plant and equipment"): the question and the statement page that answers it share
  no content word;
* they name a *statement* in one of several synonymous ways ("P&L", "statement of financial
  position") while the filing titles it in another ("Consolidated Statements of Operations",
  "Consolidated Balance Sheets").

:func:`rewrite_query` removes the instruction phrases and words, then appends, for every
metric or statement the question names, the standard line-item vocabulary of its textbook
definition (:data:`FINANCIAL_LEXICON`). The lexicon is general accounting vocabulary
(formulas of common ratios and the usual captions of US GAAP statements), not answers to any
question set; it expands terms, never removes the question's own content words, and it adds
nothing to a question naming no metric.

:class:`~quantdesk.rag.index.FilingIndex` searches for the rewritten text in every mode (dense,
BM25 and hybrid alike, so the modes stay comparable) and infers filters from the question as
asked. When the lexicon matched, :func:`fusion_weights` lowers the dense ranking's RRF weight
to :data:`LEXICON_DENSE_WEIGHT`: the lexical query then spells the captions of the page that
answers, usually a table of numbers, which a sentence-embedding model represents poorly.

Company names and fiscal years are kept: across a corpus they select the right filing (and
within one document every chunk's contextual header carries them equally, so they cost
nothing there).

Measured on FinanceBench (62 development questions; BENCHMARKS.md, "FinanceBench retrieval"):
within-document hybrid page recall@5 0.63 -> 0.81. The lexicon and the weight were written
and chosen on those same questions (there is no held-out split), so the figure is optimistic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "FINANCIAL_LEXICON",
    "LEXICON_DENSE_WEIGHT",
    "LexiconEntry",
    "RewrittenQuery",
    "fusion_weights",
    "rewrite_query",
]

#: RRF weight of the dense ranking (BM25 keeps 1) when the rewrite expanded a metric or a
#: statement. Any value from 0.1 to 0.5 scores within one FinanceBench question of the best.
LEXICON_DENSE_WEIGHT = 0.5


@dataclass(frozen=True)
class LexiconEntry:
    """One metric or statement and the words its filing captions use.

    Attributes:
        name: What the entry stands for ("return on assets").
        pattern: Case-insensitive regular expression that finds it in a question.
        terms: Words appended to the lexical query when the pattern matches: the line items
            of the metric's definition, or the statement's usual title.
    """

    name: str
    pattern: str
    terms: str


def _entry(name: str, pattern: str, terms: str) -> LexiconEntry:
    return LexiconEntry(name=name, pattern=pattern, terms=terms)


# Statements: each name an analyst uses, mapped to the captions US GAAP filings print.
_STATEMENTS = (
    _entry(
        "balance sheet",
        r"balance sheets?|statements? of financial (?:position|condition)",
        "consolidated balance sheets total assets total liabilities shareholders equity",
    ),
    _entry(
        "income statement",
        r"income statements?|statements? of (?:income|operations|earnings)|\bP&L\b"
        r"|profit and loss",
        "consolidated statements of operations income earnings revenue net income",
    ),
    _entry(
        "cash flow statement",
        r"cash flows? statements?|statements? of cash flows?",
        "consolidated statements of cash flows operating activities investing activities "
        "financing activities",
    ),
    _entry(
        "statement of equity",
        r"statements? of (?:(?:stockholders|shareholders)['\u2019]? )?equity",
        "consolidated statements of shareholders equity retained earnings",
    ),
)

# Metrics: the line items of each textbook definition.
_METRICS = (
    _entry("return on assets", r"return on (?:average )?assets|\bROA\b", "net income total assets"),
    _entry(
        "return on equity",
        r"return on (?:average )?(?:shareholders['\u2019]? |stockholders['\u2019]? )?equity"
        r"|\bROE\b",
        "net income total shareholders equity",
    ),
    _entry(
        "return on invested capital",
        r"return on invested capital|\bROIC\b",
        "operating income income taxes total debt shareholders equity",
    ),
    _entry(
        "fixed asset turnover",
        r"fixed assets? turnover|\bPP&E\b|property,? plant,? and equipment",
        "revenue net sales property plant and equipment net",
    ),
    _entry("asset turnover", r"(?<!fixed )assets? turnover", "revenue net sales total assets"),
    _entry(
        "inventory turnover",
        r"inventory turnover|days (?:of )?inventory|\bDIO\b",
        "inventories cost of sales cost of goods sold",
    ),
    _entry(
        "receivables turnover",
        r"receivables? turnover|days sales outstanding|\bDSO\b",
        "accounts receivable net revenue net sales",
    ),
    _entry(
        "payables turnover",
        r"payables? turnover|days payables? outstanding|\bDPO\b",
        "accounts payable cost of sales",
    ),
    _entry(
        "cash conversion cycle",
        r"cash conversion cycle|\bCCC\b",
        "inventories accounts receivable accounts payable cost of sales revenue",
    ),
    _entry(
        "quick ratio",
        r"quick ratio|acid[- ]test",
        "cash and cash equivalents marketable securities accounts receivable total current "
        "liabilities",
    ),
    _entry(
        "current ratio",
        r"current ratio|working capital|liquidity",
        "total current assets total current liabilities",
    ),
    _entry("cash ratio", r"cash ratio", "cash and cash equivalents total current liabilities"),
    _entry(
        "debt to equity",
        r"debt[- ]to[- ](?:equity|capital|assets)|leverage ratio|debt ratio|total debt"
        r"|\bindebtedness",
        "long-term debt short-term borrowings current portion total shareholders equity",
    ),
    _entry("debt", r"\bdebt\b|\bborrowings?\b", "long-term debt notes borrowings"),
    _entry(
        "interest coverage",
        r"interest coverage|times interest earned",
        "operating income interest expense",
    ),
    _entry(
        "EBITDA",
        r"\bEBITDA\b|earnings before interest,? taxes,? depreciation",
        "operating income depreciation and amortization",
    ),
    _entry("EBIT", r"\bEBIT\b|earnings before interest and taxes", "operating income"),
    _entry("gross margin", r"gross (?:profit )?margins?", "gross profit revenue cost of sales"),
    _entry(
        "operating margin",
        r"operating (?:profit )?margins?|operating income",
        "operating income revenue net sales",
    ),
    _entry(
        "net margin",
        r"net (?:profit )?margins?|profit margins?",
        "net income revenue net sales",
    ),
    _entry(
        "capital expenditure",
        r"capital expenditures?|\bcapex\b|capital spending",
        "purchases of property plant and equipment capital expenditures additions investing "
        "activities",
    ),
    _entry(
        "free cash flow",
        r"free cash flows?|\bFCF\b",
        "net cash provided by operating activities purchases of property plant and equipment",
    ),
    _entry(
        "operating cash flow",
        r"operating cash flows?|cash flows? from operati\w*|cash from operati\w*|\bOCF\b",
        "net cash provided by operating activities",
    ),
    _entry(
        "dividend",
        r"dividends?|payout ratio|retention ratio",
        "dividends paid declared per share net income",
    ),
    _entry(
        "share repurchase",
        r"(?:share|stock) (?:repurchases?|buybacks?)|buybacks?",
        "repurchases of common stock treasury stock",
    ),
    _entry(
        "earnings per share",
        r"earnings per share|\bEPS\b",
        "net income per share basic diluted",
    ),
    _entry(
        "effective tax rate",
        r"effective tax rate|tax rate",
        "provision for income taxes income before income taxes effective rate",
    ),
    _entry("accounts receivable", r"\bAR\b|receivables?", "accounts receivable trade receivables"),
    _entry("accounts payable", r"\bAP\b|payables?", "accounts payable"),
    _entry("cost of goods sold", r"\bCOGS\b|cost of goods", "cost of sales cost of goods sold"),
    _entry(
        "SG&A",
        r"\bSG&A\b|selling,? general",
        "selling general and administrative expenses",
    ),
    _entry("R&D", r"\bR&D\b", "research and development"),
    _entry("D&A", r"\bD&A\b|depreciation", "depreciation and amortization"),
    _entry("revenue", r"\brevenues?\b|\bsales\b|top line", "revenue net sales net revenues"),
    _entry(
        "net income",
        r"net income|net earnings|net profit|bottom line",
        "net income net earnings attributable",
    ),
    _entry(
        "book value",
        r"book value|tangible book",
        "total shareholders equity shares outstanding",
    ),
)

#: Every entry :func:`rewrite_query` knows: statements first, then metrics.
FINANCIAL_LEXICON: tuple[LexiconEntry, ...] = _STATEMENTS + _METRICS
_COMPILED = tuple((entry, re.compile(entry.pattern, re.IGNORECASE)) for entry in FINANCIAL_LEXICON)

# Instructions to whoever answers: how to round, which unit, which persona to adopt, which
# source to rely on. Phrases, not single words, so that content words they contain ("units",
# "defined", "provided", "base") survive elsewhere ("reporting units", "defined benefit").
_INSTRUCTIONS = re.compile(
    r"\bround(?:ed|ing)?\b[^.?!]*?\bdecimal places?\b"
    r"|\b(?:answer|respond|reply)\s+in\s+(?:units\s+of\s+)?\w+(?:\s+(?:millions?|billions?))?"
    r"|\bin\s+(?:units\s+of\s+)?(?:usd|us\s*\$|\$)\s*(?:millions?|billions?|thousands?)"
    r"|\bin\s+units\s+of\b"
    r"|\b(?:perspective|role)\s+of\s+an?\s+[\w\s]*?(?:analyst|banker|investor|manager)\b"
    r"|\byou\s+are\s+an?\s+[\w\s]*?(?:analyst|banker|investor|manager)\b"
    r"|\bto\s+the\s+best\s+of\s+your\s+abilit(?:y|ies)\b"
    r"|\b(?:is|are)\s+defined\s+as\b"
    r"|\binformation\s+provided\b",
    re.IGNORECASE,
)
# Words that frame the request rather than describe the content sought (compared in lower
# case; none is a line-item word of a filing).
_REQUEST_WORDS = frozenset(
    re.findall(
        r"\S+",
        "what which how much many please help want define answer answers question questions "
        "response respond solution give calculate compute computed extract determine using "
        "utilize utilizing based basing judgment judgments information primarily detail "
        "details shown displayed outlined clearly only assume assuming perspective analyst "
        "banker adopting resource resources round rounded decimal decimals following asked "
        "relying rely according considering here's",
    )
)
_WORDS = re.compile(r"[A-Za-z0-9&$%][A-Za-z0-9&$%.,'\u2019\-]*")


@dataclass(frozen=True)
class RewrittenQuery:
    """A question rewritten for BM25.

    Attributes:
        original: The question as asked.
        core: The question without instruction phrases and request words.
        expansion: Line-item words appended for the metrics and statements named.
        matched: Names of the lexicon entries that matched, in lexicon order.
    """

    original: str
    core: str
    expansion: str
    matched: tuple[str, ...]

    @property
    def text(self) -> str:
        """What the lexical retriever searches for: the core, then the expansion."""
        return f"{self.core} {self.expansion}".strip()


def rewrite_query(question: str, *, expand: bool = True) -> RewrittenQuery:
    """Rewrite a question for the lexical retriever.

    Args:
        question: The question or keywords.
        expand: Append the line items of the metrics and statements the question names.

    Returns:
        The rewritten query; when stripping would leave fewer than two words, the core is the
        question unchanged (a keyword query is not an instruction).
    """
    stripped = _INSTRUCTIONS.sub(" ", question)
    kept = [
        word
        for word in _WORDS.findall(stripped)
        if word.lower().rstrip(".,?") not in _REQUEST_WORDS
    ]
    core = " ".join(kept) if len(kept) >= 2 else question.strip()
    matched: list[str] = []
    terms: list[str] = []
    if expand:
        for entry, pattern in _COMPILED:
            if pattern.search(question):
                matched.append(entry.name)
                terms.append(entry.terms)
    return RewrittenQuery(
        original=question, core=core, expansion=" ".join(terms), matched=tuple(matched)
    )


def fusion_weights(rewritten: RewrittenQuery | None) -> tuple[float, float]:
    """RRF weights of (dense, BM25) for a query: BM25 is trusted more once it was expanded.

    Args:
        rewritten: The rewritten query, or ``None`` when the query was not rewritten.

    Returns:
        ``(LEXICON_DENSE_WEIGHT, 1.0)`` when a lexicon entry matched, else ``(1.0, 1.0)``.
    """
    if rewritten is not None and rewritten.matched:
        return (LEXICON_DENSE_WEIGHT, 1.0)
    return (1.0, 1.0)
