"""EDGAR SGML submissions and parse_filing / parse_folder on synthetic files."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from quantdesk.quant_core.errors import DataError
from quantdesk.rag.documents import ParsedDocument, ParseFailure
from quantdesk.rag.parsing import FilingHints, hints_from_path, parse_filing, parse_folder
from quantdesk.rag.sgml import is_sgml_submission, main_document, parse_submission

_MAIN = """<html><body>
<p>FORM <ix:nonNumeric name="dei:DocumentType">8-K</ix:nonNumeric></p>
<p>Item 2.02 Results of Operations and Financial Condition.</p>
<p>The company announced its results; see Exhibit 99.1.</p>
<p>Item 9.01 Financial Statements and Exhibits.</p>
<table><tr><td>99.1</td><td>Press release</td></tr></table>
</body></html>"""

_SUBMISSION = f"""<SEC-DOCUMENT>0000000001-24-000007.txt : 20240131
<SEC-HEADER>0000000001-24-000007.hdr.sgml : 20240131
<ACCEPTANCE-DATETIME>20240131163015
ACCESSION NUMBER:\t\t0000000001-24-000007
CONFORMED SUBMISSION TYPE:\t8-K
PUBLIC DOCUMENT COUNT:\t\t3
CONFORMED PERIOD OF REPORT:\t20240131
ITEM INFORMATION:\t\tResults of Operations and Financial Condition
ITEM INFORMATION:\t\tFinancial Statements and Exhibits
FILED AS OF DATE:\t\t20240131

FILER:

\tCOMPANY DATA:\t
\t\tCOMPANY CONFORMED NAME:\t\t\tExample Corp
\t\tCENTRAL INDEX KEY:\t\t\t1

\tFILING VALUES:
\t\tFORM TYPE:\t\t8-K
</SEC-HEADER>
<DOCUMENT>
<TYPE>GRAPHIC
<SEQUENCE>3
<FILENAME>logo.jpg
<TEXT>
begin 644 logo.jpg
M_]C_X``02D9)1@`!`0$`8`!@``#_VP!#``@&!@<&!0@'!P<)"0@*#!0-#`L+
end
</TEXT>
</DOCUMENT>
<DOCUMENT>
<TYPE>8-K
<SEQUENCE>1
<FILENAME>main.htm
<DESCRIPTION>8-K
<TEXT>
{_MAIN}
</TEXT>
</DOCUMENT>
<DOCUMENT>
<TYPE>EX-99.1
<SEQUENCE>2
<FILENAME>ex991.htm
<DESCRIPTION>PRESS RELEASE
<TEXT>
<html><body><p>Example Corp reports record revenue of $1.2 billion.</p></body></html>
</TEXT>
</DOCUMENT>
</SEC-DOCUMENT>
"""


def test_header_fields_are_read_and_acceptance_time_is_converted_to_utc() -> None:
    header = parse_submission(_SUBMISSION).header
    assert header.accession == "0000000001-24-000007"
    assert header.form == "8-K"
    assert header.cik == "0000000001"
    assert header.company == "Example Corp"
    assert header.period_of_report == date(2024, 1, 31)
    assert header.filed_as_of == date(2024, 1, 31)
    # 16:30:15 New York time in January (EST, UTC-5).
    assert header.acceptance_datetime == datetime(2024, 1, 31, 21, 30, 15, tzinfo=UTC)
    assert header.items == (
        "Results of Operations and Financial Condition",
        "Financial Statements and Exhibits",
    )


def test_documents_are_split_uuencoded_ones_marked_and_the_main_one_chosen_by_type() -> None:
    submission = parse_submission(_SUBMISSION)
    assert [(d.type, d.sequence, d.uuencoded) for d in submission.documents] == [
        ("GRAPHIC", 3, True),
        ("8-K", 1, False),
        ("EX-99.1", 2, False),
    ]
    main = main_document(submission)
    assert main.filename == "main.htm"
    assert main.is_html


def test_text_that_is_not_a_submission_is_refused() -> None:
    assert not is_sgml_submission("<html><body>x</body></html>")
    with pytest.raises(DataError, match="Not an EDGAR SGML submission"):
        parse_submission("<html><body>x</body></html>")


def test_a_submission_of_binaries_only_has_no_main_document() -> None:
    binary_only = _SUBMISSION.split("<DOCUMENT>\n<TYPE>8-K")[0] + "</SEC-DOCUMENT>\n"
    with pytest.raises(DataError, match="no readable document"):
        main_document(parse_submission(binary_only))


def _write(folder: Path, relative: str, content: str) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return path


def test_parse_filing_reads_header_items_and_press_release_exhibit(tmp_path: Path) -> None:
    path = _write(tmp_path, "EXM/8-K/0000000001-24-000007/full-submission.txt", _SUBMISSION)
    document = parse_filing(path)
    assert isinstance(document, ParsedDocument)
    meta = document.meta
    assert (meta.ticker, meta.form, meta.accession, meta.doc_id) == (
        "EXM",
        "8-K",
        "0000000001-24-000007",
        "0000000001-24-000007",
    )
    assert meta.available_at == datetime(2024, 1, 31, 21, 30, 15, tzinfo=UTC)
    assert not meta.available_at_estimated
    assert [s.key for s in document.sections] == ["cover", "2.02", "9.01", "EX-99.1"]
    for section in document.sections:
        assert document.text[section.start : section.end] == section.text
    assert "record revenue of $1.2 billion" in document.sections[-1].text


def test_loose_html_uses_dei_facts_and_a_conservative_estimate(tmp_path: Path) -> None:
    html = """<html><body><div style="display:none">
    <ix:nonNumeric name="dei:DocumentType">10-Q</ix:nonNumeric>
    <ix:nonNumeric name="dei:DocumentFiscalYearFocus">2025</ix:nonNumeric>
    <ix:nonNumeric name="dei:DocumentFiscalPeriodFocus">Q3</ix:nonNumeric>
    <ix:nonNumeric name="dei:EntityCentralIndexKey">320193</ix:nonNumeric></div>
    <p>For the quarterly period ended
    <ix:nonNumeric name="dei:DocumentPeriodEndDate">June 28, 2025</ix:nonNumeric></p>
    <p>Item 1. Financial Statements</p><p>numbers</p></body></html>"""
    path = _write(tmp_path, "aapl/10q/aapl-10-q.html", html)
    document = parse_filing(path, FilingHints(ticker="aapl"))
    assert isinstance(document, ParsedDocument)
    meta = document.meta
    assert (meta.form, meta.cik, meta.fiscal_year, meta.fiscal_period) == (
        "10-Q",
        "0000320193",
        2025,
        "Q3",
    )
    assert meta.ticker == "AAPL"
    assert meta.period_end == date(2025, 6, 28)
    assert meta.available_at_estimated
    assert meta.available_at > datetime(2025, 8, 1, tzinfo=UTC)
    assert len(meta.doc_id) == 16

    with_date = parse_filing(path, FilingHints(filing_date=date(2025, 8, 1)))
    assert isinstance(with_date, ParsedDocument)
    assert not with_date.meta.available_at_estimated


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "empty"),
        ("<html><body><p>no dei facts here</p></body></html>", "form type is unknown"),
        ("<html><body><div style='display:none'>x</div></body></html>", "no text"),
    ],
)
def test_unparseable_files_give_a_failure_with_the_reason(
    tmp_path: Path, content: str, reason: str
) -> None:
    path = _write(tmp_path, "loose/doc.html", content)
    result = parse_filing(path)
    assert isinstance(result, ParseFailure)
    assert reason in result.reason
    assert result.source_path == str(path)


def test_an_8k_html_without_any_date_cannot_be_placed_in_time(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.html", _MAIN)
    result = parse_filing(path)
    assert isinstance(result, ParseFailure)
    assert "became public" in result.reason


def test_parse_folder_keeps_going_past_bad_files(tmp_path: Path) -> None:
    _write(tmp_path, "EXM/8-K/0000000001-24-000007/full-submission.txt", _SUBMISSION)
    _write(tmp_path, "EXM/8-K/0000000001-24-000007/primary-document.html", _MAIN)
    _write(tmp_path, "broken/empty.htm", "   ")
    _write(tmp_path, "LICENSE.txt", "MIT License")
    _write(tmp_path, "notes.json", "{}")
    batch = parse_folder(tmp_path)
    assert [d.meta.accession for d in batch.documents] == ["0000000001-24-000007"]
    assert [Path(f.source_path).name for f in batch.failures] == ["empty.htm"]


def test_hints_from_the_downloader_layout() -> None:
    hints = hints_from_path("/data/sec-edgar-filings/msft/10-K/0000950170-24-087843/x.html")
    assert (hints.ticker, hints.form, hints.accession) == ("MSFT", "10-K", "0000950170-24-087843")
    assert hints_from_path("/data/second_year/aapl/10q/a.html") == FilingHints()


def test_plain_text_submission_and_amendment_form(tmp_path: Path) -> None:
    body = "\n".join(
        [
            "<PAGE>",
            "ANNUAL REPORT",
            "",
            "Item 1.   Business",
            "",
            "We make widgets.",
            "",
            "<PAGE>",
            "Item 7.   Management's Discussion",
            "",
            "Sales rose.",
        ]
    )
    submission = (
        "<SEC-DOCUMENT>0000000002-99-000001.txt\n<SEC-HEADER>\n"
        "ACCESSION NUMBER:\t0000000002-99-000001\nCONFORMED SUBMISSION TYPE:\t10-K/A\n"
        "CONFORMED PERIOD OF REPORT:\t19981231\nFILED AS OF DATE:\t19990330\n"
        "COMPANY CONFORMED NAME:\tOld Co\nCENTRAL INDEX KEY:\t2\n</SEC-HEADER>\n"
        f"<DOCUMENT>\n<TYPE>10-K/A\n<SEQUENCE>1\n<TEXT>\n{body}\n</TEXT>\n</DOCUMENT>\n"
    )
    path = _write(tmp_path, "old.txt", submission)
    document = parse_filing(path)
    assert isinstance(document, ParsedDocument)
    assert document.meta.form == "10-K/A"
    assert document.meta.filing_date == date(1999, 3, 30)
    assert "<PAGE>" not in document.text
    assert [s.key for s in document.sections] == ["cover", "1", "7"]
    assert document.sections[2].text == "Item 7. Management's Discussion\n\nSales rose."
