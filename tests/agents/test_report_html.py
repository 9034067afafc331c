"""The HTML report: self-contained, escaped, and carrying every citation of the markdown one."""

from __future__ import annotations

import re
from datetime import date, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from quantdesk.agents.offline_model import OfflineModel
from quantdesk.agents.research import ResearchOutcome, run_research
from quantdesk.agents.research.report_html import render_report_html
from quantdesk.agents.research.runtime import ToolThread
from quantdesk.cli.research_command import DEMO_QUESTION
from quantdesk.rag.documents import FilingMeta, ParsedDocument, Section
from quantdesk.rag.sample_filings import sample_filings
from quantdesk.tools.filing_tools import forget_filing_indexes

SCRIPT = "<script>alert('pwned')</script>"
_CALL_CITATION = re.compile(r"\[[a-z_]+ [A-Za-z0-9_.:~\-]+\]")
_FILING_CITATION = re.compile(r"FICTIONAL-[A-Z0-9\-]+, chars \d+-\d+")


class Page(HTMLParser):
    """Collects what a browser would see: tags, attributes, text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.closed: list[str] = []
        self.text: list[str] = []
        self.untrusted: list[str] = []
        self._quote_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "blockquote" and dict(attrs).get("class") == "untrusted":
            self._quote_depth += 1

    def handle_endtag(self, tag: str) -> None:
        self.closed.append(tag)
        if tag == "blockquote" and self._quote_depth:
            self._quote_depth -= 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._quote_depth:
            self.untrusted.append(data)


def parse(page: str) -> Page:
    parser = Page()
    parser.feed(page)
    parser.close()
    return parser


def planted_filing() -> ParsedDocument:
    """A filing of a held name (SYN048, long on 2020-10-19) with markup in its text."""
    body = (
        "[FICTIONAL test filing] On September 1, 2020 we signed a merger agreement with "
        f"Acme {SCRIPT} Holdings & Co. under which Acme will acquire us for $20 a share."
    )
    block = f"Item I-2. Management's Discussion and Analysis\n{body}"
    moment = datetime.fromisoformat("2020-09-10T20:30:00+00:00")
    meta = FilingMeta(
        ticker="SYN048", cik=None, company="Planted Test Co. (FICTIONAL)", form="10-Q",
        accession=None, filing_date=moment.date(), acceptance_datetime=moment,
        period_end=date(2020, 6, 30), fiscal_year=2020, fiscal_period="Q2",
        available_at=moment, available_at_estimated=False,
        source_path="fictional://test/planted.txt", doc_id="FICTIONAL-SYN048-10Q-2020Q2",
    )  # fmt: skip
    return ParsedDocument(meta, block, (Section("I-2", "MD&A", block, 0, len(block)),))


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> ResearchOutcome:
    """The demo session, on the sample filings plus the planted one."""
    from quantdesk.rag.embeddings import HashingEmbedder
    from quantdesk.rag.index import FilingIndex
    from quantdesk.tools.filing_tools import register_filing_index

    home = tmp_path_factory.mktemp("home")

    def build() -> None:
        index = FilingIndex(home / "filings", embedder=HashingEmbedder(256), embedding_cache=False)
        index.add([*sample_filings(), planted_filing()])
        register_filing_index(index)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QUANTDESK_HOME", str(home))
        tools = ToolThread()
        try:
            tools.run(build)
            return run_research(DEMO_QUESTION, model=OfflineModel(), tool_runner=tools)
        finally:
            tools.close()
            forget_filing_indexes()


def test_the_html_report_carries_every_citation_of_the_markdown(outcome: ResearchOutcome) -> None:
    page = render_report_html(outcome.state)
    parsed = parse(page)
    text = "".join(parsed.text)
    markdown = outcome.report
    calls = set(_CALL_CITATION.findall(markdown))
    filings = set(_FILING_CITATION.findall(markdown))
    assert len(calls) >= 10
    assert "FICTIONAL-SYN048-10Q-2020Q2, chars 0-" in " ".join(filings)
    assert len(filings) >= 8
    missing = {c for c in calls | filings if c not in text}
    assert not missing
    assert "Researcher model: offline" in text
    # every tool call has its row in the citation table, and every in-page link lands on one
    anchors = {a["id"] for _, a in parsed.tags if a.get("id")}
    for entry in outcome.state["tool_log"]:
        assert f"call-{entry['id']}" in anchors
    links = [a["href"] for tag, a in parsed.tags if tag == "a"]
    assert links
    assert all(href is not None and href[1:] in anchors for href in links)
    # every disclosure row names its filing: ticker, form, period, Item, document id
    rows = re.findall(r"<tr>(.*?)</tr>", page)
    merger = [r for r in rows if "FICTIONAL-SYN042-10Q-2020Q2" in r]
    assert len(merger) == 2  # Items I-2 and II-1A
    items = set()
    for row in merger:
        cells = re.findall(r"<td>(.*?)</td>", row)
        assert cells[:5] == [
            "SYN042",
            "held long on 2020-10-19",
            "a pending merger or acquisition",
            "10-Q",
            "Q2 FY2020",
        ]
        items.add(cells[5].split(" ")[1])
        assert cells[6] == "<code>FICTIONAL-SYN042-10Q-2020Q2</code>"
    assert items == {"I-2", "II-1A"}


def test_the_html_report_is_self_contained_and_escapes_filing_text(
    outcome: ResearchOutcome,
) -> None:
    page = render_report_html(outcome.state)
    parsed = parse(page)
    names = [tag for tag, _ in parsed.tags]
    assert "script" not in names
    assert not {"img", "link", "iframe", "object", "embed", "base", "form"} & set(names)
    for tag in ("table", "ul", "blockquote", "html", "body"):
        assert names.count(tag) == parsed.closed.count(tag), tag
    assert not [a for _, a in parsed.tags if a.get("src")]
    assert "Content-Security-Policy" in page
    # the planted markup is shown as text inside the untrusted quote, never run
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in page
    assert any(SCRIPT in quote for quote in parsed.untrusted)
    assert "Holdings & Co." in "".join(parsed.untrusted)
    # and the markdown escapes it too (a markdown viewer would otherwise render the tag)
    assert SCRIPT not in outcome.report
    assert "\\<script\\>alert" in outcome.report


def test_a_report_without_filings_escapes_the_question() -> None:
    state: dict[str, Any] = {
        "question": "Is <b>momentum</b> & reversal real?",
        "context": {"id": "c1", "name": "default", "as_of": None},
        "tool_log": [],
        "hypotheses": [],
        "critiques": [],
        "decision": {"kind": "needs-more-evidence", "reasons": ["no trial"], "cites": []},
        "report": "# Research report\n\n- Researcher model: test:function\n",
    }
    page = render_report_html(state)  # type: ignore[arg-type]
    parsed = parse(page)
    assert "b" not in [tag for tag, _ in parsed.tags]
    assert "Is <b>momentum</b> & reversal real?" in "".join(parsed.text)
    assert "Researcher model: test:function" in "".join(parsed.text)
    assert "Filings" not in "".join(parsed.text)


def test_cli_report_paths(tmp_path: Path) -> None:
    from quantdesk.cli.research_command import report_paths

    for given in ("out/r", "out/r.md", "out/r.html"):
        assert report_paths(tmp_path / given, "t1") == (
            tmp_path / "out/r.md",
            tmp_path / "out/r.html",
        )
    markdown, page = report_paths(None, "abc")
    assert (markdown.name, page.name, markdown.parent.name) == ("abc.md", "abc.html", "reports")
