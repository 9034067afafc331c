"""Manifest reading and filing discovery (synthetic folders and the real shared filings)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from quantdesk.quant_core.errors import DataError, InputError, SchemaError
from quantdesk.rag.acquisition import (
    apply_source_metadata,
    discover_filings,
    scan_filings,
)
from quantdesk.rag.documents import FilingMeta, ParsedDocument
from quantdesk.rag.manifest import (
    accession_year,
    filing_date_from_name,
    load_manifest,
    parse_period_end,
)
from quantdesk.rag.point_in_time import available_at, end_of_day_utc

HEADER = (
    "ticker,form,accession,filing_date,path,period_end,fiscal_year,fiscal_period,registrant,cik"
)


@pytest.mark.parametrize(
    ("text", "fiscal_year", "filed_by", "expected"),
    [
        ("June 28, 2025", None, None, date(2025, 6, 28)),
        ("20191107", None, None, date(2019, 11, 7)),
        ("2024-09-28", None, None, date(2024, 9, 28)),
        ("MAY 31", 2025, None, date(2025, 5, 31)),
        ("December 31", 2023, date(2024, 12, 31), date(2023, 12, 31)),
        ("January 26", 2025, date(2025, 2, 26), date(2025, 1, 26)),  # NVIDIA labels by end year
        ("January 28", 2024, date(2024, 12, 31), date(2024, 1, 28)),
        ("February 1", 2024, date(2025, 12, 31), date(2025, 2, 1)),  # retailers by start year
        ("January 31", 2024, None, date(2025, 1, 31)),  # ambiguous: the later year
        ("December 31", None, None, None),
        ("", 2024, None, None),
        (None, 2024, None, None),
    ],
)
def test_parse_period_end(text, fiscal_year, filed_by, expected):
    assert parse_period_end(text, fiscal_year, filed_by=filed_by) == expected


def test_parse_period_end_rejects_non_dates():
    with pytest.raises(DataError, match="'Q3 2024' is not a date"):
        parse_period_end("Q3 2024", 2024)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("aapl-10-q-2025-08-01.html", date(2025, 8, 1)),
        ("aapl-8k-20191115.txt", date(2019, 11, 15)),
        ("primary-document.html", None),
        ("x-2024-99-99.html", None),
    ],
)
def test_filing_date_from_name(name, expected):
    assert filing_date_from_name(name) == expected


@pytest.mark.parametrize(
    ("accession", "year"),
    [("0000320193-24-000123", 2024), ("0000950123-97-000001", 1997), ("0001-02", None)],
)
def test_accession_year(accession, year):
    if year is None:
        with pytest.raises(InputError, match="not an accession number"):
            accession_year(accession)
    else:
        assert accession_year(accession) == year


def _write(path: Path, text: str = "<html>filing</html>") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_load_manifest_errors_name_the_problem(tmp_path: Path):
    with pytest.raises(InputError, match="does not exist"):
        load_manifest(tmp_path / "nope.csv")
    _write(tmp_path / "a.csv", "ticker,accession\nAAPL,\n")
    with pytest.raises(SchemaError, match=r"lacks column\(s\) \['form'\]"):
        load_manifest(tmp_path / "a.csv")
    _write(tmp_path / "b.csv", f"{HEADER}\nAAPL,10-K,,,,,,,,\nMSFT,10-K,123,,,,,,,\n")
    with pytest.raises(DataError, match="line 3: accession '123'"):
        load_manifest(tmp_path / "b.csv")


@pytest.fixture
def filings_folder(tmp_path: Path) -> Path:
    """A download folder, a CIK-named filing, loose documents, oddities and a manifest."""
    root = tmp_path / "filings"
    layout = root / "sec-edgar-filings"
    msft = layout / "MSFT" / "10-K" / "0000789019-24-000099"
    _write(msft / "full-submission.txt", "<SEC-HEADER>...")
    _write(msft / "primary-document.html")
    _write(msft / "primary-document.xml", "<xml/>")
    _write(layout / "0000789019" / "8-K" / "0000789019-24-000100" / "full-submission.txt")
    _write(layout / "MSFT" / "10-Q" / "not-an-accession" / "primary-document.html")
    _write(layout / "MSFT" / "10-Q" / "0000789019-24-000101" / "expected-top-level-sections.json")
    _write(root / "second_year" / "msft" / "10k" / "msft-10-k-2025-07-30.html")
    _write(root / "second_year" / "msft" / "10q" / "msft-10-q-2025-04-30.html")  # no row
    _write(root / "second_year" / "notes.html")
    _write(root / "LICENSE.txt", "MIT")
    _write(
        root / "manifest.csv",
        f"{HEADER}\n"
        "MSFT,10-K,,2025-07-30,second_year/msft/10k/msft-10-k-2025-07-30.html,June 30,2025,FY,"
        "MICROSOFT CORP,789019\n"
        "MSFT,10-K,0000789019-24-000099,,sec-edgar-filings/MSFT/10-K/0000789019-24-000099/"
        "primary-document.html,June 30,2024,FY,MICROSOFT CORP,0000789019\n"
        'MSFT,10-Q,,2025-01-29,second_year/msft/10q/gone.html,"December 31, 2024",2025,Q2,,\n',
    )
    return root


def test_scan_finds_both_layouts_and_accounts_for_the_rest(filings_folder: Path):
    found = scan_filings(filings_folder)
    by_key = {(s.ticker, s.form, s.accession or str(s.filing_date)): s for s in found.sources}
    assert len(found.sources) == 4

    downloaded = by_key[("MSFT", "10-K", "0000789019-24-000099")]
    assert downloaded.layout == "sec-edgar-downloader"
    assert downloaded.text_path.name == "primary-document.html"  # HTML preferred for text
    assert downloaded.header_path is not None
    assert downloaded.header_path.name == "full-submission.txt"
    assert downloaded.cik == "0000789019"
    assert downloaded.period_end == date(2024, 6, 30)
    assert downloaded.availability().estimated

    by_cik = by_key[(None, "8-K", "0000789019-24-000100")]
    assert by_cik.cik == "0000789019"
    assert by_cik.text_path == by_cik.header_path
    with pytest.raises(InputError, match="filing date"):
        by_cik.availability()  # no header parsed here, no manifest row: refuse to guess

    loose = by_key[("MSFT", "10-K", "2025-07-30")]
    assert loose.manifest_row is not None
    assert loose.manifest_row.registrant == "MICROSOFT CORP"
    assert loose.cik == "0000789019"
    assert loose.availability() == (end_of_day_utc(date(2025, 7, 30)), False)

    inferred = by_key[("MSFT", "10-Q", "2025-04-30")]
    assert inferred.manifest_row is None
    assert inferred.filing_date == date(2025, 4, 30)

    skipped = {p.path.name: p.reason for p in found.skipped}
    assert set(skipped) == {"not-an-accession", "0000789019-24-000101", "notes.html"}
    assert [row.path for row in found.missing] == ["second_year/msft/10q/gone.html"]
    assert discover_filings(filings_folder) == list(found.sources)


def test_scan_of_the_layout_subfolder_and_an_explicit_manifest(filings_folder: Path):
    layout_only = discover_filings(
        filings_folder / "sec-edgar-filings", manifest=filings_folder / "manifest.csv"
    )
    assert {s.accession for s in layout_only} == {"0000789019-24-000099", "0000789019-24-000100"}
    with pytest.raises(InputError, match="does not exist"):
        scan_filings(filings_folder / "missing")


def test_a_later_file_name_date_wins_over_an_earlier_manifest_date(tmp_path: Path):
    _write(tmp_path / "x" / "10k" / "x-10-k-2025-03-02.html")
    _write(
        tmp_path / "manifest.csv",
        f"{HEADER}\nX,10-K,,2025-03-01,x/10k/x-10-k-2025-03-02.html,,,,,\n",
    )
    (source,) = discover_filings(tmp_path)
    assert source.filing_date == date(2025, 3, 2)


def _meta(**changes: object) -> FilingMeta:
    fields: dict[str, object] = {
        "ticker": None,
        "cik": None,
        "company": "MICROSOFT CORPORATION",
        "form": "10-K",
        "accession": None,
        "filing_date": None,
        "acceptance_datetime": None,
        "period_end": date(2024, 6, 30),
        "fiscal_year": 2024,
        "fiscal_period": "FY",
        "available_at": datetime(2024, 10, 15, 3, 59, 59, tzinfo=UTC),
        "available_at_estimated": True,
        "source_path": "primary-document.html",
        "doc_id": "sha-1234",
    }
    fields.update(changes)
    return FilingMeta(**fields)  # type: ignore[arg-type]


def test_apply_source_metadata_fills_gaps_and_recomputes_availability(filings_folder: Path):
    sources = {s.accession: s for s in discover_filings(filings_folder) if s.accession}
    downloaded = sources["0000789019-24-000099"]
    document = ParsedDocument(meta=_meta(), text="text", sections=())
    merged = apply_source_metadata(document, downloaded).meta
    assert merged.accession == merged.doc_id == "0000789019-24-000099"
    assert (merged.ticker, merged.cik) == ("MSFT", "0000789019")
    assert merged.company == "MICROSOFT CORPORATION"  # the document's own name wins
    assert merged.available_at_estimated
    assert (merged.available_at, True) == available_at(form="10-K", period_end=date(2024, 6, 30))

    accepted = datetime(2024, 7, 30, 20, 6, 1, tzinfo=UTC)
    document = ParsedDocument(meta=_meta(acceptance_datetime=accepted), text="t", sections=())
    merged = apply_source_metadata(document, downloaded).meta
    assert (merged.available_at, merged.available_at_estimated) == (accepted, False)

    loose = next(s for s in discover_filings(filings_folder) if s.filing_date == date(2025, 7, 30))
    merged = apply_source_metadata(ParsedDocument(_meta(), "t", ()), loose).meta
    assert merged.filing_date == date(2025, 7, 30)
    assert (merged.available_at, merged.available_at_estimated) == (
        end_of_day_utc(date(2025, 7, 30)),
        False,
    )


@pytest.mark.realdata
def test_discovers_every_shared_filing_with_an_availability(shared_data: Path):
    folder = shared_data / "filings"
    found = scan_filings(folder)
    assert (found.skipped, found.missing) == ((), ())
    layout = [s for s in found.sources if s.layout == "sec-edgar-downloader"]
    loose = [s for s in found.sources if s.layout == "loose"]
    assert (len(layout), len(loose)) == (18, 12)
    assert all(s.manifest_row is not None for s in found.sources)
    assert len({s.accession for s in layout}) == 18
    assert sum(s.expected_sections is not None for s in layout) == 14

    eight_k = next(s for s in layout if s.form == "8-K")
    assert eight_k.full_submission is not None
    assert eight_k.primary_document is None
    assert eight_k.text_path == eight_k.full_submission

    for source in loose:
        assert source.text_path.is_file()
        assert source.accession is None
        assert source.filing_date == filing_date_from_name(source.text_path.name)
        assert source.availability() == (end_of_day_utc(source.filing_date), False)

    for source in layout:
        at, estimated = source.availability()
        assert at.tzinfo is UTC
        # Only the 8-K has a real filing date; the inline-XBRL documents have none.
        assert estimated is (source.form != "8-K")
        # The accession number was assigned in the filing year: never estimate before it.
        year = 2000 + int(source.accession[11:13])
        assert at >= end_of_day_utc(date(year, 1, 1))
