"""HTML / inline-XBRL to clean text: paragraphs, table rows, hidden content, dei facts, offsets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.rag.html_text import html_to_text

_IXBRL = """<html><head><title>t</title><style>p {color: red}</style></head><body>
<div style="display:none"><ix:header><ix:hidden>
<ix:nonNumeric name="dei:DocumentFiscalYearFocus" contextRef="c">2024</ix:nonNumeric>
<ix:nonNumeric name="dei:DocumentFiscalPeriodFocus" contextRef="c">FY</ix:nonNumeric>
<ix:nonNumeric name="dei:EntityCentralIndexKey" contextRef="c">0000320193</ix:nonNumeric>
</ix:hidden><ix:resources>context noise</ix:resources></ix:header></div>
<div><span>FORM <ix:nonNumeric name="dei:DocumentType" contextRef="c">10-K</ix:nonNumeric>
</span></div>
<div><span>For the fiscal year ended
<ix:nonNumeric name="dei:DocumentPeriodEndDate" contextRef="c">September&#160;28</ix:nonNumeric>,
2024</span></div>
<p>Trading symbol <ix:nonNumeric name="dei:TradingSymbol" contextRef="c">AAPL</ix:nonNumeric>
and <ix:nonNumeric name="dei:TradingSymbol" contextRef="c">AAPL29</ix:nonNumeric></p>
<table>
<tr><td/><td>2024</td><td></td><td>2023</td></tr>
<tr><td>Net sales</td><td>$</td><td>391,035</td><td>$</td><td>383,285</td></tr>
<tr><td>Other income</td><td>(565</td><td>)</td><td>12.5</td><td>%</td></tr>
</table>
<div>After&#160;&#160;the   table<br/>next line</div>
<script>var hidden = 1;</script>
</body></html>"""


def test_dei_facts_are_read_from_hidden_header_and_visible_text() -> None:
    result = html_to_text(_IXBRL)
    assert result.dei == {
        "dei:DocumentFiscalYearFocus": "2024",
        "dei:DocumentFiscalPeriodFocus": "FY",
        "dei:EntityCentralIndexKey": "0000320193",
        "dei:DocumentType": "10-K",
        "dei:DocumentPeriodEndDate": "September 28",
        "dei:TradingSymbol": "AAPL",  # the first of several share classes
    }


def test_hidden_head_script_and_style_content_is_dropped() -> None:
    text = html_to_text(_IXBRL).text
    for noise in ("context noise", "var hidden", "color: red", "0000320193"):
        assert noise not in text
    assert text.startswith("FORM 10-K\n\nFor the fiscal year ended September 28, 2024")


def test_tables_become_rows_with_currency_and_parentheses_glued() -> None:
    text = html_to_text(_IXBRL).text
    assert "2024 | 2023\nNet sales | $391,035 | $383,285\nOther income | (565) | 12.5%" in text


def test_paragraphs_collapse_white_space_and_break_at_br() -> None:
    text = html_to_text(_IXBRL).text
    assert text.endswith("After the table\n\nnext line")


def test_source_offsets_point_at_the_element_that_opens_each_block() -> None:
    html = '<div id="a"></div><hr/><div class="h"><span>Item 1.</span> Business</div><p>Body</p>'
    result = html_to_text(html)
    assert result.text == "Item 1. Business\n\nBody"
    assert result.source_offset(0) == html.index('<div class="h">')
    assert result.source_offset(result.text.index("Body")) == html.index("<p>")
    assert result.source_offset(len(result.text)) == len(html)


def test_a_heading_laid_out_as_a_table_starts_at_the_outer_element() -> None:
    html = (
        "<p>before</p><div class='x'><table><tr><td/><td/></tr>"
        "<tr><td>Item 7.</td><td>MD&amp;A</td></tr></table></div>"
    )
    result = html_to_text(html)
    assert result.text == "before\n\nItem 7. | MD&A"
    assert result.source_offset(result.text.index("Item 7.")) == html.index("<div class='x'>")


def test_sloppy_html_with_unclosed_and_stray_tags_still_converts() -> None:
    html = "<body><p>one<p>two</font></b><div>three</div><td>cell</body>"
    assert html_to_text(html).text == "one\n\ntwo\n\nthree\n\ncell"


@pytest.mark.parametrize(
    ("cells", "row"),
    [
        (["Revenue", "$", "1,200", "$", "900"], "Revenue | $1,200 | $900"),
        (["Margin", "41.2", "%"], "Margin | 41.2%"),
        (["Loss", "$", "(12", ")"], "Loss | $(12)"),
        (["", "", ""], None),
    ],
)
def test_row_rendering_golden(cells: list[str], row: str | None) -> None:
    html = "<table><tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr></table>"
    assert (html_to_text(html).text or None) == row


_WORDS = st.text(alphabet="abcdefgh ", min_size=1, max_size=12).filter(str.strip)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["div", "p", "td"]), _WORDS), min_size=1, max_size=8))
def test_block_offsets_are_monotone_and_inside_the_source(blocks: list[tuple[str, str]]) -> None:
    parts = []
    for tag, words in blocks:
        parts.append(
            f"<table><tr><td>{words}</td></tr></table>"
            if tag == "td"
            else f"<{tag}>{words}</{tag}>"
        )
    html = "<body>" + "".join(parts) + "</body>"
    result = html_to_text(html)
    assert list(result.block_starts) == sorted(result.block_starts)
    assert list(result.block_sources) == sorted(result.block_sources)
    assert all(0 <= s < len(html) for s in result.block_sources)
    for start, source in zip(result.block_starts, result.block_sources, strict=True):
        first_word = result.text[start:].split()[0]
        assert first_word in html[source:]
