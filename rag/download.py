"""Downloading filings from SEC EDGAR through sec-edgar-downloader, with an honest report.

The library (5.x) prints and swallows per-filing errors and only returns a count. So the list
of filings it will fetch is taken from the library's own listing first
(``_orchestrator.aggregate_filings_to_download``, the same filters ``Downloader.get`` applies),
and after the download each planned filing is checked on disk: whatever did not arrive is
reported with the error the library printed (captured, so it never pollutes the caller's
output). Filings land in the layout :func:`~quantdesk.rag.acquisition.scan_filings` reads.

The SEC's fair-access policy wants a company name and e-mail in every request's User-Agent:
they come from the arguments, the settings or ``QUANTDESK_SEC_COMPANY`` /
``QUANTDESK_SEC_EMAIL``, and a clear error names what is missing.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from quantdesk.quant_core.errors import ConfigError, InputError, QuantdeskRuntimeError
from quantdesk.quant_core.settings import get_settings
from quantdesk.rag.acquisition import FULL_SUBMISSION, PRIMARY_STEM, ROOT_FOLDER
from quantdesk.rag.point_in_time import normalize_form, parse_filing_date

__all__ = [
    "SEC_COMPANY_ENV",
    "SEC_EMAIL_ENV",
    "DownloadOutcome",
    "DownloadReport",
    "download_filings",
]

SEC_COMPANY_ENV = "QUANTDESK_SEC_COMPANY"
SEC_EMAIL_ENV = "QUANTDESK_SEC_EMAIL"

_PRINTED_ERROR = re.compile(r"accession number\D*?(\d{10}-\d{2}-\d{6}):?\s*(.*)")

Status = Literal["downloaded", "already_present", "incomplete", "failed"]


@dataclass(frozen=True)
class DownloadOutcome:
    """What happened to one planned filing (or to a whole ticker/form request).

    Attributes:
        ticker: Ticker or CIK as requested (upper case).
        form: Form requested.
        accession: The filing's accession number; ``None`` when the request failed before
            any filing was listed.
        status: ``"downloaded"``, ``"already_present"`` (on disk before the call),
            ``"incomplete"`` (full submission arrived, primary document did not) or ``"failed"``.
        folder: The filing's folder, when it was planned.
        reason: The error, for ``"incomplete"`` and ``"failed"``.
    """

    ticker: str
    form: str
    accession: str | None
    status: Status
    folder: Path | None
    reason: str | None = None


@dataclass(frozen=True)
class DownloadReport:
    """The result of :func:`download_filings`.

    Attributes:
        root: The ``sec-edgar-filings`` folder the filings were written under.
        outcomes: One entry per planned filing, plus one per failed ticker/form request.
    """

    root: Path
    outcomes: tuple[DownloadOutcome, ...]

    @property
    def arrived(self) -> tuple[DownloadOutcome, ...]:
        """Filings now complete on disk (downloaded now or before)."""
        return tuple(o for o in self.outcomes if o.status in ("downloaded", "already_present"))

    @property
    def failures(self) -> tuple[DownloadOutcome, ...]:
        """Filings (or requests) that did not fully arrive."""
        return tuple(o for o in self.outcomes if o.status in ("incomplete", "failed"))

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failures

    def summary(self) -> str:
        """One line of counts, then one line per failure."""
        counts = dict.fromkeys(("downloaded", "already_present", "incomplete", "failed"), 0)
        for outcome in self.outcomes:
            counts[outcome.status] += 1
        lines = [", ".join(f"{count} {status}" for status, count in counts.items())]
        for o in self.failures:
            lines.append(f"{o.status}: {o.ticker} {o.form} {o.accession or '-'}: {o.reason}")
        return "\n".join(lines)


def _setting(name: str, env: str) -> str | None:
    """A setting from :class:`Settings` when it declares it, else the environment."""
    value = getattr(get_settings(), name, None) or os.environ.get(env) or ""
    return str(value).strip() or None


def _sec_identity(company: str | None, email: str | None) -> tuple[str, str]:
    """Company name and e-mail for the SEC's fair-access User-Agent header."""
    company = (company or "").strip() or _setting("sec_company", SEC_COMPANY_ENV) or ""
    email = (email or "").strip() or _setting("sec_email", SEC_EMAIL_ENV) or ""
    missing = [
        env for env, value in ((SEC_COMPANY_ENV, company), (SEC_EMAIL_ENV, email)) if not value
    ]
    if missing:
        raise ConfigError(
            f"SEC EDGAR requires a company name and e-mail address in every request; "
            f"missing: {', '.join(missing)}.",
            fix=f"set {SEC_COMPANY_ENV}='Your Company' and {SEC_EMAIL_ENV}='you@example.com' "
            "(environment or .env), or pass company= and email=.",
        )
    if "@" not in email or any(ch.isspace() for ch in email):
        raise ConfigError(
            f"SEC contact e-mail {email!r} is not an e-mail address.",
            fix=f"set {SEC_EMAIL_ENV} to an address such as you@example.com.",
        )
    return company, email


def _as_list(values: Sequence[str] | str, what: str) -> list[str]:
    """Accept ``"AAPL,MSFT"`` or a sequence; strip, upper-case, refuse an empty list."""
    items = values.split(",") if isinstance(values, str) else list(values)
    cleaned = [item.strip().upper() for item in items if item.strip()]
    if not cleaned:
        raise InputError(f"No {what} given.", fix=f"pass at least one {what[:-1]}.")
    return cleaned


def _printed_errors(output: str) -> dict[str, str]:
    """Per-accession errors from what the library printed."""
    errors: dict[str, str] = {}
    for line in output.splitlines():
        match = _PRINTED_ERROR.search(line)
        if match:
            errors[match[1]] = match[2].strip() or "download error (no message)"
    return errors


def _has_content(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _download_one(
    downloader: Any,
    metadata: Any,
    ticker: str,
    limit: int | None,
    network_error: type[Exception],
) -> list[DownloadOutcome]:
    """Download one ticker's filings of one form and check each planned filing on disk."""
    from sec_edgar_downloader import _orchestrator

    def files(td: Any) -> tuple[Path, Path]:
        accession, primary = td.accession_number, f"{PRIMARY_STEM}{td.details_doc_suffix}"
        return (
            _orchestrator.get_save_location(metadata, accession, FULL_SUBMISSION),
            _orchestrator.get_save_location(metadata, accession, primary),
        )

    form = metadata.form
    printed = io.StringIO()
    try:
        # The library's own listing and filters: exactly what ``get`` is about to fetch.
        planned = _orchestrator.aggregate_filings_to_download(metadata, downloader.user_agent)
        present = {td.accession_number for td in planned if all(map(_has_content, files(td)))}
        with contextlib.redirect_stdout(printed):
            downloader.get(
                form,
                ticker,
                limit=limit,
                after=metadata.after,
                before=metadata.before,
                include_amends=metadata.include_amends,
                download_details=True,
            )
    except (network_error, KeyError, ValueError) as exc:
        reason = f"listing or download failed: {type(exc).__name__}: {exc}"
        return [DownloadOutcome(ticker, form, None, "failed", None, reason)]
    errors = _printed_errors(printed.getvalue())
    outcomes = []
    for td in planned:
        accession = td.accession_number
        full, primary = files(td)
        reason = errors.get(accession)
        status: Status
        if not _has_content(full):
            status, reason = "failed", reason or f"{full.name} not on disk"
        elif not _has_content(primary):
            status, reason = "incomplete", reason or f"{primary.name} not on disk"
        else:
            status = "already_present" if accession in present else "downloaded"
        outcomes.append(DownloadOutcome(ticker, form, accession, status, full.parent, reason))
    return outcomes


def download_filings(
    tickers: Sequence[str] | str,
    forms: Sequence[str] | str,
    *,
    after: date | str | None = None,
    before: date | str | None = None,
    dest: Path | str,
    company: str | None = None,
    email: str | None = None,
    limit: int | None = None,
    include_amends: bool = False,
    raise_on_failure: bool = False,
) -> DownloadReport:
    """Download filings from EDGAR and report exactly what arrived.

    Every planned filing is saved as ``<dest>/sec-edgar-filings/<TICKER>/<FORM>/<ACCESSION>/``
    with ``full-submission.txt`` and ``primary-document.<ext>``. Files already on disk are
    not fetched again.

    Args:
        tickers: Tickers or CIKs (``["AAPL", "MSFT"]`` or ``"AAPL,MSFT"``).
        forms: Form types the library supports (``["10-K", "10-Q", "8-K"]``); amendments come
            with ``include_amends``.
        after: Earliest filing date (inclusive), ``date`` or ``"YYYY-MM-DD"``.
        before: Latest filing date (inclusive); default today.
        dest: Download folder.
        company: Company name for the SEC User-Agent; default ``QUANTDESK_SEC_COMPANY``.
        email: Contact e-mail for the SEC User-Agent; default ``QUANTDESK_SEC_EMAIL``.
        limit: At most this many filings per ticker and form (the most recent).
        include_amends: Also fetch amendments (``10-K/A``), saved under the base form.
        raise_on_failure: Raise instead of returning when anything did not arrive.

    Returns:
        One outcome per planned filing and per failed ticker/form request.

    Raises:
        ConfigError: Company name or e-mail missing (names the variables).
        InputError: Unsupported form, bad dates or limit.
        QuantdeskRuntimeError: The SEC ticker map could not be fetched (retryable), or
            ``raise_on_failure`` and something did not arrive.
    """
    from sec_edgar_downloader import Downloader, _constants, _utils
    from sec_edgar_downloader._types import DownloadMetadata

    ticker_list = _as_list(tickers, "tickers")
    form_list = [normalize_form(form) for form in _as_list(forms, "forms")]
    unsupported = [form for form in form_list if form not in Downloader.supported_forms]
    if unsupported:
        raise InputError(
            f"Form(s) {unsupported} are not supported by sec-edgar-downloader.",
            fix="pass base forms such as 10-K, 10-Q, 8-K (amendments: include_amends=True); "
            "the full list is sec_edgar_downloader.Downloader.supported_forms.",
        )
    after_date = parse_filing_date(after) if after is not None else _constants.DEFAULT_AFTER_DATE
    before_date = parse_filing_date(before) if before is not None else date.today()
    if after_date > before_date:
        raise InputError(
            f"after={after_date} is later than before={before_date}.",
            fix="swap the dates or widen the range.",
        )
    if limit is not None and limit < 1:
        raise InputError(f"limit={limit} must be at least 1.", fix="pass limit>=1 or None.")
    company_name, contact = _sec_identity(company, email)
    folder = Path(dest).expanduser().resolve()

    import requests  # the library's transport; its errors are what a network failure raises

    try:
        downloader = Downloader(company_name, contact, folder)
    except (requests.RequestException, KeyError, ValueError) as exc:
        raise QuantdeskRuntimeError(
            f"Could not fetch the SEC ticker-to-CIK map: {type(exc).__name__}: {exc}",
            retryable=True,
            fix="check the network connection; the SEC allows 10 requests per second.",
        ) from exc

    outcomes: list[DownloadOutcome] = []
    for ticker in ticker_list:
        try:
            cik = _utils.validate_and_convert_ticker_or_cik(
                ticker, downloader.ticker_to_cik_mapping
            )
        except ValueError as exc:
            outcomes += [
                DownloadOutcome(ticker, f, None, "failed", None, str(exc)) for f in form_list
            ]
            continue
        for form in form_list:
            metadata = DownloadMetadata(
                folder,
                form,
                cik,
                limit or sys.maxsize,
                after_date,
                before_date,
                include_amends,
                True,  # download_details: also save the primary document
                ticker=None if _utils.is_cik(ticker) else ticker,
            )
            outcomes += _download_one(
                downloader, metadata, ticker, limit, requests.RequestException
            )
    report = DownloadReport(root=folder / ROOT_FOLDER, outcomes=tuple(outcomes))
    if raise_on_failure and not report.ok:
        raise QuantdeskRuntimeError(
            f"Some filings did not arrive:\n{report.summary()}",
            retryable=True,
            fix="run the same download again; files already on disk are not fetched twice.",
        )
    return report
