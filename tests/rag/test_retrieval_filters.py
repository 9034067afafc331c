"""The filter extractor: company, fiscal year, quarter and form read from a question."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from quantdesk.quant_core.errors import DataError
from quantdesk.rag.filters import (
    ChunkFilter,
    CompanyDirectory,
    company_key,
    infer_filters,
    load_sec_company_tickers,
)

DIRECTORY = CompanyDirectory.from_pairs(
    [
        ("AAPL", "Apple Inc."),
        ("APLE", "Apple Hospitality REIT, Inc."),
        ("KO", "COCA COLA CO"),
        ("TGT", "TARGET CORP"),
        ("JPM", "JPMORGAN CHASE & CO"),
        ("BAC", "BANK OF AMERICA CORP /DE/"),
        ("JNJ", "JOHNSON & JOHNSON"),
        ("MMM", "3M CO"),
        ("AMZN", "AMAZON COM INC"),
        ("AI", "C3.ai, Inc."),
        (None, "Activision Blizzard"),
    ]
)


@pytest.mark.parametrize(
    ("question", "ticker", "year", "period", "form"),
    [
        ("What is the FY2018 capital expenditure amount for 3M?", "MMM", 2018, None, None),
        ("Apple's revenue in fiscal 2023 according to its 10-K?", "AAPL", 2023, None, "10-K"),
        ("Did Coca-Cola raise its dividend between FY2021 and FY2022?", "KO", 2022, None, None),
        ("What is the price target for the stock?", None, None, None, None),
        ("How did Target's margins change in Q3 2023?", "TGT", 2023, "Q3", None),
        ("What drove JPMorgan's net interest income in 2022?", "JPM", 2022, None, None),
        ("Bank of America deposits in its annual report", "BAC", None, None, "10-K"),
        ("Johnson & Johnson talc litigation, second quarter FY23", "JNJ", 2023, "Q2", None),
        ("Show AAPL risk factors from the quarterly report", "AAPL", None, None, "10-Q"),
        ("How does AI affect EPS for the CEO?", None, None, None, None),
        ("Amazon.com net sales 2017", "AMZN", 2017, None, None),
        ("Apple Hospitality occupancy", "APLE", None, None, None),
        ("What did the 8-K filed by Apple say?", "AAPL", None, None, "8-K"),
    ],
)  # fmt: skip
def test_infer_filters_golden(
    question: str, ticker: str | None, year: int | None, period: str | None, form: str | None
) -> None:
    found = infer_filters(question, companies=DIRECTORY)
    assert (found.ticker, found.fiscal_year, found.fiscal_period, found.form) == (
        ticker,
        year,
        period,
        form,
    )


def test_company_without_ticker_is_found_by_name() -> None:
    found = infer_filters("Activision Blizzard FY2019 revenue", companies=DIRECTORY)
    assert found.ticker is None
    assert found.company == "Activision Blizzard"
    assert "activision blizzard" in found.evidence


def test_no_directory_means_no_company_filter() -> None:
    found = infer_filters("Apple FY2020 revenue")
    assert (found.ticker, found.company, found.fiscal_year) == (None, None, 2020)
    assert not found.empty
    assert infer_filters("what changed?").empty


def test_merged_directory_prefers_the_left_entries() -> None:
    index_names = CompanyDirectory.from_pairs([(None, "3M")])
    merged = index_names.merged(DIRECTORY)
    found = infer_filters("Is 3M capital intensive?", companies=merged)
    assert (found.ticker, found.company) == (None, "3M")
    assert len(merged) >= len(DIRECTORY)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("The Coca-Cola Company", "coca cola"),
        ("COCA COLA CO", "coca cola"),
        ("AMAZON COM INC", "amazon"),
        ("Johnson & Johnson", "johnson johnson"),
    ],
)
def test_company_key_golden(name: str, key: str) -> None:
    assert company_key(name) == key


def test_chunk_filter_where_clause_and_mask_agree() -> None:
    columns = {
        "available_at": np.array([10, 20, 30, 40]),
        "ticker": np.array(["AAA", "BBB", "AAA", "AAA"]),
        "form": np.array(["10-K", "10-K", "10-Q", "10-K"]),
        "fiscal_year": np.array([2020, 2021, -1, 2022]),
    }
    chunk_filter = ChunkFilter(as_of=35, ticker="aaa", form=["10-K", "10-Q"], fiscal_year=None)
    assert chunk_filter.mask(columns).tolist() == [True, False, True, False]
    assert chunk_filter.chroma_where() == {
        "$and": [
            {"available_at": {"$lte": 35}},
            {"ticker": {"$eq": "AAA"}},
            {"form": {"$in": ["10-K", "10-Q"]}},
        ]
    }
    assert ChunkFilter(as_of=5).chroma_where() == {"available_at": {"$lte": 5}}


def test_bad_ticker_file_is_a_data_error(tmp_path: Path) -> None:
    bad = tmp_path / "tickers.json"
    bad.write_text('[{"ticker": "X"}]', encoding="utf-8")
    with pytest.raises(DataError, match="tickers"):
        load_sec_company_tickers(bad)


@pytest.mark.realdata
def test_sec_ticker_file_resolves_real_companies(shared_data: Path) -> None:
    directory = load_sec_company_tickers(
        shared_data / "reference" / "sec_company_tickers_edgartools_2024-05.json"
    )
    cases = {
        "What was Microsoft's cloud revenue in FY2023?": "MSFT",
        "Nike advertising spend": "NKE",
        "How large is Boeing's backlog?": "BA",
        "NVDA data center growth": "NVDA",
    }
    for question, ticker in cases.items():
        assert infer_filters(question, companies=directory).ticker == ticker, question
