"""Finding filings on disk: the sec-edgar-downloader layout and loose documents.

(Downloading them from EDGAR is :mod:`quantdesk.rag.download`.)

:func:`discover_filings` finds filings under a folder: the sec-edgar-downloader layout
  ``sec-edgar-filings/<TICKER or CIK>/<FORM>/<ACCESSION>/`` holding ``full-submission.txt``
  and/or ``primary-document.<ext>``, and loose primary documents described by a manifest
  (see :mod:`quantdesk.rag.manifest`) or named ``<ticker>/<form>/<ticker>-<form>-<date>.html``.

Nothing here parses a filing: :class:`FilingSource` says where the text and the SGML header
are and what the folder and manifest say about them; :func:`apply_source_metadata` merges
that into a parsed document's :class:`~quantdesk.rag.documents.FilingMeta`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Literal

from quantdesk.quant_core.errors import InputError
from quantdesk.rag.documents import ParsedDocument
from quantdesk.rag.manifest import (
    ACCESSION_PATTERN,
    Manifest,
    ManifestRow,
    filing_date_from_name,
    load_manifest,
)
from quantdesk.rag.point_in_time import (
    Availability,
    available_at,
    normalize_form,
)

__all__ = [
    "Discovery",
    "FilingSource",
    "SkippedFile",
    "apply_source_metadata",
    "discover_filings",
    "scan_filings",
]

ROOT_FOLDER = "sec-edgar-filings"
FULL_SUBMISSION = "full-submission.txt"
PRIMARY_STEM = "primary-document"
EXPECTED_SECTIONS = "expected-top-level-sections.json"

_LOOSE_SUFFIXES = {".htm", ".html"}
_LOOSE_NAME = re.compile(r"^(?P<ticker>[A-Za-z0-9.]+)-(?P<form>.+)-\d{4}-\d{2}-\d{2}\.html?$")


@dataclass(frozen=True)
class FilingSource:
    """Where one filing's files are and what is known about it without parsing it.

    Attributes:
        ticker: Symbol from the folder or manifest (upper case), when known.
        cik: 10-digit CIK from a CIK-named folder or the manifest, when known.
        form: Form type (manifest first, else the folder name), EDGAR spelling.
        accession: Accession number (folder name or manifest), when known.
        primary_document: ``primary-document.<ext>`` or the loose document, when present.
        full_submission: ``full-submission.txt`` (SGML header and every document), if present.
        expected_sections: ``expected-top-level-sections.json`` beside it, if present.
        filing_date: The filing date from the manifest or the file name; the later of the two
            when both exist and disagree (never early).
        manifest_row: The manifest row describing the filing, if any.
        layout: ``"sec-edgar-downloader"`` or ``"loose"``.
    """

    ticker: str | None
    cik: str | None
    form: str
    accession: str | None
    primary_document: Path | None
    full_submission: Path | None
    expected_sections: Path | None
    filing_date: date | None
    manifest_row: ManifestRow | None
    layout: Literal["sec-edgar-downloader", "loose"]

    @property
    def text_path(self) -> Path:
        """The file to read the text from: the primary document, else the full submission."""
        path = self.primary_document or self.full_submission
        if path is None:  # construction guarantees one of the two; keep the type honest
            raise InputError(f"Filing {self.accession or self.form} has no document file.")
        return path

    @property
    def header_path(self) -> Path | None:
        """The file holding the SGML header (acceptance time, filing date), if any."""
        return self.full_submission

    @property
    def paths(self) -> tuple[Path, ...]:
        """Every document file of the filing (primary document first)."""
        return tuple(p for p in (self.primary_document, self.full_submission) if p is not None)

    @property
    def period_end(self) -> date | None:
        """Period end from the manifest, when known."""
        return self.manifest_row.period_end if self.manifest_row else None

    def availability(self) -> Availability:
        """When the filing became public, from the filing date or the manifest's period end.

        The SGML header's acceptance time, when there is one, is more precise: the parser
        reads it, and :func:`apply_source_metadata` prefers it.

        Raises:
            InputError: No filing date is known and the period end cannot bound the form.
        """
        return available_at(
            form=self.form, filing_date=self.filing_date, period_end=self.period_end
        )


@dataclass(frozen=True)
class SkippedFile:
    """A file found while scanning that is not used, and why.

    Attributes:
        path: The file or folder.
        reason: Why it was not taken as a filing.
    """

    path: Path
    reason: str


@dataclass(frozen=True)
class Discovery:
    """What :func:`scan_filings` found.

    Attributes:
        sources: The filings, sorted by ticker, form, filing date and path.
        skipped: Candidate documents that could not be identified.
        missing: Manifest rows whose file is not on disk.
    """

    sources: tuple[FilingSource, ...]
    skipped: tuple[SkippedFile, ...]
    missing: tuple[ManifestRow, ...]


def _resolve_manifest(root: Path, manifest: Manifest | Path | str | None) -> Manifest | None:
    if isinstance(manifest, Manifest):
        return manifest
    if manifest is not None:
        return load_manifest(manifest)
    default = root / "manifest.csv"
    return load_manifest(default) if default.is_file() else None


def _later(first: date | None, second: date | None) -> date | None:
    """The later of two optional dates: a disagreement must not make a filing public early."""
    known = [day for day in (first, second) if day is not None]
    return max(known) if known else None


def _layout_source(folder: Path, files: list[Path], manifest: Manifest | None) -> FilingSource:
    """A filing in the sec-edgar-downloader layout; ``folder`` is named by its accession."""
    names = {path.name: path for path in files}
    primaries = sorted(p for p in files if p.name.startswith(f"{PRIMARY_STEM}."))
    # An HTML primary document holds the readable text; other extensions are a fallback.
    primaries.sort(key=lambda p: p.suffix.lower() not in _LOOSE_SUFFIXES)
    accession = folder.name
    row = manifest.by_accession(accession) if manifest else None
    identifier = folder.parent.parent.name
    is_cik = identifier.isdigit()
    return FilingSource(
        ticker=row.ticker if row else (None if is_cik else identifier.upper()),
        cik=row.cik if row and row.cik else (identifier.zfill(10) if is_cik else None),
        form=row.form if row else normalize_form(folder.parent.name),
        accession=accession,
        primary_document=primaries[0] if primaries else None,
        full_submission=names.get(FULL_SUBMISSION),
        expected_sections=names.get(EXPECTED_SECTIONS),
        filing_date=row.filing_date if row else None,
        manifest_row=row,
        layout="sec-edgar-downloader",
    )


def _loose_source(path: Path, manifest: Manifest | None) -> FilingSource | SkippedFile:
    """A loose primary document: described by the manifest, or by its folder and name."""
    name_date = filing_date_from_name(path.name)
    row = manifest.by_path(path) if manifest else None
    ticker = path.parent.parent.name.upper()
    form = normalize_form(path.parent.name)
    if row is None and manifest is not None and name_date is not None:
        row = manifest.find(ticker, form, name_date)
    if row is None:
        match = _LOOSE_NAME.match(path.name)
        if name_date is None or match is None or match["ticker"].upper() != ticker:
            return SkippedFile(
                path,
                "loose document not described by the manifest and not named "
                "<ticker>/<form>/<ticker>-<form>-<YYYY-MM-DD>.html",
            )
    return FilingSource(
        ticker=row.ticker if row else ticker,
        cik=row.cik if row else None,
        form=row.form if row else form,
        accession=row.accession if row else None,
        primary_document=path,
        full_submission=None,
        expected_sections=None,
        filing_date=_later(row.filing_date if row else None, name_date),
        manifest_row=row,
        layout="loose",
    )


def scan_filings(path: Path | str, *, manifest: Manifest | Path | str | None = None) -> Discovery:
    """Find every filing under ``path`` and account for what could not be used.

    Args:
        path: A folder: the download folder, its ``sec-edgar-filings`` subfolder, a folder of
            loose documents, or one holding both (like ``../shared/data/filings``).
        manifest: A loaded manifest or its CSV path; default ``<path>/manifest.csv`` if present.

    Returns:
        The filings found, the files skipped with reasons, and manifest rows not on disk.

    Raises:
        InputError: ``path`` is not a folder, or the manifest cannot be read.
    """
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise InputError(
            f"Filings folder {str(root)!r} does not exist or is not a folder.",
            fix="pass the folder holding sec-edgar-filings/ or the loose documents.",
        )
    table = _resolve_manifest(root, manifest)
    groups: dict[Path, list[Path]] = {}
    loose: list[Path] = []
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        if file.name in (FULL_SUBMISSION, EXPECTED_SECTIONS) or file.name.startswith(
            f"{PRIMARY_STEM}."
        ):
            groups.setdefault(file.parent, []).append(file)
        elif ACCESSION_PATTERN.match(file.parent.name):
            continue  # other files a filing folder may hold (exhibits, notes): not filings
        elif file.suffix.lower() in _LOOSE_SUFFIXES or (table and table.by_path(file)):
            loose.append(file)
    sources: list[FilingSource] = []
    skipped: list[SkippedFile] = []
    for folder, files in groups.items():
        documents = [f for f in files if f.name != EXPECTED_SECTIONS]
        if not ACCESSION_PATTERN.match(folder.name) or len(folder.relative_to(root).parts) < 2:
            skipped.append(SkippedFile(folder, "not a <TICKER>/<FORM>/<ACCESSION> folder"))
        elif not documents:
            skipped.append(SkippedFile(folder, "no full-submission.txt or primary-document"))
        else:
            sources.append(_layout_source(folder, files, table))
    for file in loose:
        found = _loose_source(file, table)
        if isinstance(found, SkippedFile):
            skipped.append(found)
        else:
            sources.append(found)
    used = {id(s.manifest_row) for s in sources if s.manifest_row is not None}
    missing = tuple(row for row in (table.rows if table else ()) if id(row) not in used)
    sources.sort(
        key=lambda s: (s.ticker or "", s.form, s.filing_date or date.min, str(s.text_path))
    )
    return Discovery(tuple(sources), tuple(skipped), missing)


def discover_filings(
    path: Path | str, *, manifest: Manifest | Path | str | None = None
) -> list[FilingSource]:
    """The filings under ``path`` (see :func:`scan_filings` for what was skipped).

    Args:
        path: Folder to scan.
        manifest: A loaded manifest or its CSV path; default ``<path>/manifest.csv`` if present.

    Returns:
        The filings, sorted by ticker, form, filing date and path.
    """
    return list(scan_filings(path, manifest=manifest).sources)


def apply_source_metadata(document: ParsedDocument, source: FilingSource) -> ParsedDocument:
    """Complete a parsed document's metadata with what the folder and manifest know.

    The document's own facts win (its header and ``dei`` facts describe it best); gaps are
    filled from ``source``. Filing dates from both are reconciled to the later one, then
    ``available_at`` is recomputed: acceptance time, else filing date, else the estimate.
    The accession becomes ``doc_id`` once known.

    Args:
        document: The parser's output for ``source.text_path``.
        source: Where the document was found.

    Returns:
        The document with its metadata completed.
    """
    meta, row = document.meta, source.manifest_row
    filing_date = _later(meta.filing_date, source.filing_date)
    period_end = meta.period_end or source.period_end
    accession = meta.accession or source.accession
    merged = replace(
        meta,
        ticker=meta.ticker or source.ticker,
        cik=meta.cik or source.cik,
        company=meta.company or (row.registrant if row else None),
        accession=accession,
        filing_date=filing_date,
        period_end=period_end,
        fiscal_year=meta.fiscal_year or (row.fiscal_year if row else None),
        fiscal_period=meta.fiscal_period or (row.fiscal_period if row else None),
        doc_id=accession or meta.doc_id,
    )
    try:
        at, estimated = available_at(
            form=merged.form,
            acceptance_datetime=merged.acceptance_datetime,
            filing_date=filing_date,
            period_end=period_end,
        )
    except InputError:
        # Nothing here bounds the date better than the parser did: keep its availability.
        return replace(document, meta=merged)
    merged = replace(merged, available_at=at, available_at_estimated=estimated)
    return replace(document, meta=merged)
