"""download_filings against a fake SEC behind sec-edgar-downloader's own network layer.

Only the three gateway functions ``sec_edgar_downloader._orchestrator`` calls are replaced
(ticker map, submissions listing, file download); the library's filtering, folder layout and
error swallowing run for real. The conftest blocks sockets, so a missed patch fails loudly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from sec_edgar_downloader import _orchestrator

from quantdesk.quant_core.errors import ConfigError, InputError, QuantdeskRuntimeError
from quantdesk.rag.acquisition import discover_filings
from quantdesk.rag.download import SEC_COMPANY_ENV, SEC_EMAIL_ENV, download_filings

CIKS = {"AAPL": 320193, "MSFT": 789019}

# (ticker, form, accession, primary document, filing date)
LISTED = [
    ("AAPL", "10-K", "0000320193-24-000123", "aapl-20240928.htm", "2024-11-01"),
    ("AAPL", "10-Q", "0000320193-24-000081", "aapl-20240629.htm", "2024-08-02"),
    ("AAPL", "10-K", "0000320193-23-000106", "aapl-20230930.htm", "2023-11-03"),
    ("AAPL", "10-K/A", "0000320193-23-000200", "aapl-amend.htm", "2023-12-01"),
    ("AAPL", "10-K", "0000320193-22-000108", "aapl-20220924.htm", "2022-10-28"),
    ("MSFT", "10-K", "0000950170-24-087843", "msft-10k_20240630.htm", "2024-07-30"),
]


@dataclass
class FakeSec:
    """Answers the library's three gateway calls; ``failing`` maps URL fragments to errors."""

    failing: dict[str, Exception] = field(default_factory=dict)
    listing_fails: bool = False
    user_agents: set[str] = field(default_factory=set)
    downloads: list[str] = field(default_factory=list)

    def ticker_metadata(self, user_agent: str) -> Any:
        self.user_agents.add(user_agent)
        data = [[cik, f"{t} Inc.", t, "Nasdaq"] for t, cik in CIKS.items()]
        return {"fields": ["cik", "name", "ticker", "exchange"], "data": data}

    def listing(self, uri: str, user_agent: str) -> Any:
        self.user_agents.add(user_agent)
        if self.listing_fails:
            raise requests.HTTPError(f"429 Client Error: Too Many Requests for url: {uri}")
        cik = int(uri.split("CIK")[1].split(".")[0])
        rows = [row for row in LISTED if CIKS[row[0]] == cik]
        recent = {
            "accessionNumber": [r[2] for r in rows],
            "form": [r[1] for r in rows],
            "primaryDocument": [r[3] for r in rows],
            "filingDate": [r[4] for r in rows],
        }
        return {"filings": {"recent": recent, "files": []}}

    def download(self, uri: str, user_agent: str) -> bytes:
        self.user_agents.add(user_agent)
        self.downloads.append(uri)
        for fragment, error in self.failing.items():
            if fragment in uri:
                raise error
        return f"contents of {uri}".encode()


@pytest.fixture
def sec(monkeypatch: pytest.MonkeyPatch) -> FakeSec:
    fake = FakeSec()
    monkeypatch.setattr(_orchestrator, "get_ticker_metadata", fake.ticker_metadata)
    monkeypatch.setattr(_orchestrator, "get_list_of_available_filings", fake.listing)
    monkeypatch.setattr(_orchestrator, "download_filing", fake.download)
    monkeypatch.setenv(SEC_COMPANY_ENV, "Quantdesk Tests")
    monkeypatch.setenv(SEC_EMAIL_ENV, "tests@example.com")
    return fake


def test_successful_download_writes_the_library_layout(sec: FakeSec, tmp_path: Path, capsys):
    report = download_filings(["aapl", "MSFT"], "10-K", after="2023-01-01", dest=tmp_path)
    assert report.ok
    assert report.root == tmp_path.resolve() / "sec-edgar-filings"
    assert sorted((o.ticker, o.accession, o.status) for o in report.outcomes) == [
        ("AAPL", "0000320193-23-000106", "downloaded"),
        ("AAPL", "0000320193-24-000123", "downloaded"),
        ("MSFT", "0000950170-24-087843", "downloaded"),
    ]
    folder = report.root / "AAPL" / "10-K" / "0000320193-24-000123"
    assert (folder / "full-submission.txt").read_bytes().endswith(b"0000320193-24-000123.txt")
    assert (folder / "primary-document.html").read_bytes().endswith(b"aapl-20240928.htm")
    assert sec.user_agents == {"Quantdesk Tests tests@example.com"}
    assert capsys.readouterr().out == ""

    sources = discover_filings(tmp_path)
    assert {(s.ticker, s.form, s.accession) for s in sources} == {
        ("AAPL", "10-K", "0000320193-23-000106"),
        ("AAPL", "10-K", "0000320193-24-000123"),
        ("MSFT", "10-K", "0000950170-24-087843"),
    }
    assert all(s.primary_document and s.full_submission for s in sources)


def test_partial_failure_is_reported_not_swallowed(sec: FakeSec, tmp_path: Path, capsys):
    sec.failing = {
        "0000320193-24-000123.txt": requests.HTTPError("503 Server Error: Service Unavailable"),
        "aapl-20230930.htm": requests.ConnectionError("connection reset by peer"),
    }
    report = download_filings("AAPL", ["10-K", "10-Q"], after="2023-01-01", dest=tmp_path)
    assert not report.ok
    by_accession = {o.accession: o for o in report.outcomes}
    failed = by_accession["0000320193-24-000123"]
    assert failed.status == "failed"
    assert failed.reason is not None
    assert "503 Server Error" in failed.reason
    incomplete = by_accession["0000320193-23-000106"]
    assert incomplete.status == "incomplete"
    assert incomplete.reason is not None
    assert "connection reset" in incomplete.reason
    assert by_accession["0000320193-24-000081"].status == "downloaded"
    assert [o.accession for o in report.arrived] == ["0000320193-24-000081"]
    summary = report.summary()
    assert summary.splitlines()[0] == "1 downloaded, 0 already_present, 1 incomplete, 1 failed"
    assert "failed: AAPL 10-K 0000320193-24-000123: 503 Server Error" in summary
    assert capsys.readouterr().out == ""  # the library's prints were captured

    with pytest.raises(QuantdeskRuntimeError, match="did not arrive") as info:
        download_filings("AAPL", "10-K", after="2023-01-01", dest=tmp_path, raise_on_failure=True)
    assert info.value.retryable

    # The retry fetches only what is missing; the rest is reported as already present.
    sec.failing = {}
    sec.downloads.clear()
    retry = download_filings("AAPL", ["10-K", "10-Q"], after="2023-01-01", dest=tmp_path)
    assert retry.ok
    assert {o.accession: o.status for o in retry.outcomes} == {
        "0000320193-24-000123": "downloaded",
        "0000320193-23-000106": "downloaded",
        "0000320193-24-000081": "already_present",
    }
    assert sorted(uri.rsplit("/", 1)[1] for uri in sec.downloads) == [
        "0000320193-24-000123.txt",
        "aapl-20230930.htm",
        "aapl-20240928.htm",
    ]


def test_limit_dates_and_amendments_follow_the_library(sec: FakeSec, tmp_path: Path):
    latest = download_filings("AAPL", "10-K", dest=tmp_path, limit=1)
    assert [o.accession for o in latest.outcomes] == ["0000320193-24-000123"]
    window = download_filings(
        "AAPL", "10-K", after="2022-01-01", before="2023-12-31", dest=tmp_path, include_amends=True
    )
    assert {o.accession for o in window.outcomes} == {
        "0000320193-23-000106",
        "0000320193-23-000200",
        "0000320193-22-000108",
    }
    # Amendments are saved under the base form's folder, as the library does.
    assert (window.root / "AAPL" / "10-K" / "0000320193-23-000200").is_dir()


def test_unknown_ticker_and_listing_errors_fail_only_their_requests(sec: FakeSec, tmp_path: Path):
    report = download_filings(["ZZZZ", "MSFT"], "10-K", dest=tmp_path)
    (unknown,) = [o for o in report.outcomes if o.ticker == "ZZZZ"]
    assert unknown.status == "failed"
    assert unknown.reason is not None
    assert "cannot be mapped to a CIK" in unknown.reason
    assert [o.status for o in report.outcomes if o.ticker == "MSFT"] == ["downloaded"]

    sec.listing_fails = True
    report = download_filings("MSFT", "10-K", dest=tmp_path)
    (only,) = report.outcomes
    assert (only.status, only.accession) == ("failed", None)
    assert only.reason is not None
    assert "429" in only.reason


def test_ticker_map_failure_is_a_retryable_runtime_error(
    sec: FakeSec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def offline(user_agent: str) -> Any:
        raise requests.ConnectionError("Name or service not known")

    monkeypatch.setattr(_orchestrator, "get_ticker_metadata", offline)
    with pytest.raises(QuantdeskRuntimeError, match="ticker-to-CIK map") as info:
        download_filings("AAPL", "10-K", dest=tmp_path)
    assert info.value.retryable


@pytest.mark.parametrize(
    ("company", "email", "missing"),
    [
        (None, None, [SEC_COMPANY_ENV, SEC_EMAIL_ENV]),
        ("Quantdesk", None, [SEC_EMAIL_ENV]),
        (None, "a@b.org", [SEC_COMPANY_ENV]),
    ],
)
def test_missing_sec_identity_names_the_variables(
    sec: FakeSec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, company, email, missing
):
    monkeypatch.delenv(SEC_COMPANY_ENV)
    monkeypatch.delenv(SEC_EMAIL_ENV)
    with pytest.raises(ConfigError) as info:
        download_filings("AAPL", "10-K", dest=tmp_path, company=company, email=email)
    message = str(info.value)
    assert f"missing: {', '.join(missing)}" in message
    assert SEC_COMPANY_ENV in message  # the fix names both
    assert not sec.user_agents  # refused before any request


def test_arguments_override_the_environment(sec: FakeSec, tmp_path: Path):
    download_filings("MSFT", "10-K", dest=tmp_path, company="Acme Research", email="r@acme.io")
    assert sec.user_agents == {"Acme Research r@acme.io"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"forms": "10-K/A"}, "not supported"),
        ({"forms": "NOPE"}, "not supported"),
        ({"forms": []}, "No forms given"),
        ({"tickers": " , "}, "No tickers given"),
        ({"after": "2024-02-01", "before": "2024-01-01"}, "later than"),
        ({"limit": 0}, "at least 1"),
        ({"email": "not-an-address"}, "not an e-mail address"),
    ],
)
def test_bad_requests_are_refused_before_the_network(sec: FakeSec, tmp_path: Path, kwargs, match):
    arguments: dict[str, Any] = {"tickers": "AAPL", "forms": "10-K", "dest": tmp_path, **kwargs}
    with pytest.raises(InputError, match=match):
        download_filings(**arguments)
    assert not sec.user_agents
