"""The index's local record of documents and chunks (SQLite), beside the vector store.

Chroma holds the vectors; this store holds what the rest of retrieval needs without a
round-trip to a (possibly remote) Chroma server: each chunk's text, metadata, content hash and
BM25 tokens, the filter columns as arrays for the lexical mask, and each document's full text
and sections for ``get_section``. A ``generation`` counter increases on every change, so a
persisted BM25 model can tell whether it is stale.

The file carries ``schema_version`` in its ``meta`` table; opening a newer file fails clearly.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import asdict, fields
from datetime import date, datetime
from pathlib import Path

import numpy as np

from quantdesk.quant_core.errors import DataError
from quantdesk.rag.chunking import Chunk
from quantdesk.rag.documents import FilingMeta, ParsedDocument, Section

__all__ = ["FILTER_COLUMNS", "ChunkStore", "StoredChunk"]

SCHEMA_VERSION = 1
#: Columns the lexical mask filters on; ``available_at`` is int64, ``fiscal_year`` int64 with
#: -1 for unknown, the rest strings with "" for unknown.
FILTER_COLUMNS = (
    "ticker",
    "company_key",
    "form",
    "fiscal_year",
    "fiscal_period",
    "item",
    "doc_id",
    "available_at",
)
_DATE_FIELDS = {"filing_date", "period_end"}
_DATETIME_FIELDS = {"acceptance_datetime", "available_at"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, meta_json TEXT NOT NULL, text TEXT NOT NULL,
    sections_json TEXT NOT NULL, available_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    row INTEGER PRIMARY KEY AUTOINCREMENT,
    chunk_id TEXT NOT NULL UNIQUE, doc_id TEXT NOT NULL, content_hash TEXT NOT NULL,
    text TEXT NOT NULL, tokens TEXT NOT NULL, metadata_json TEXT NOT NULL,
    available_at INTEGER NOT NULL, ticker TEXT NOT NULL, company_key TEXT NOT NULL,
    form TEXT NOT NULL, fiscal_year INTEGER NOT NULL, fiscal_period TEXT NOT NULL,
    item TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_doc ON chunks (doc_id);
"""


class StoredChunk:
    """A chunk as read back: id, text and flat metadata (see ``Chunk.metadata``)."""

    __slots__ = ("chunk_id", "metadata", "text")

    def __init__(self, chunk_id: str, text: str, metadata: dict[str, object]) -> None:
        self.chunk_id = chunk_id
        self.text = text
        self.metadata = metadata


def _meta_to_json(meta: FilingMeta) -> str:
    values = asdict(meta)
    for name in _DATE_FIELDS | _DATETIME_FIELDS:
        if values[name] is not None:
            values[name] = values[name].isoformat()
    return json.dumps(values, sort_keys=True)


def _meta_from_json(text: str) -> FilingMeta:
    values = json.loads(text)
    for name in _DATE_FIELDS:
        if values.get(name) is not None:
            values[name] = date.fromisoformat(values[name])
    for name in _DATETIME_FIELDS:
        if values.get(name) is not None:
            values[name] = datetime.fromisoformat(values[name])
    known = {f.name for f in fields(FilingMeta)}
    return FilingMeta(**{k: v for k, v in values.items() if k in known})


class ChunkStore:
    """SQLite file of documents and chunks.

    Any thread may use it, one at a time: the owner serialises calls (:class:`FilingIndex`
    holds a lock around each public method, since ``add`` spans several store calls).

    Args:
        path: The database file (created with its folder when missing).

    Raises:
        DataError: The file was written by a newer schema version.
    """

    _BATCH = 500

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Not tied to the opening thread: FilingIndex is used from worker threads and
        # serialises every call with its lock, which this connection relies on.
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        version = self.get_meta("schema_version")
        if version is None:
            self.set_meta("schema_version", str(SCHEMA_VERSION))
        elif int(version) > SCHEMA_VERSION:
            raise DataError(
                f"{path} has chunk-store schema {version}; this quantdesk reads up to "
                f"{SCHEMA_VERSION}.",
                fix="upgrade quantdesk or index into a new folder.",
            )
        self._db.commit()

    def get_meta(self, key: str) -> str | None:
        """A value of the ``meta`` table."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Set a value of the ``meta`` table (committed with the next change)."""
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @property
    def generation(self) -> int:
        """Increases on every committed change to the chunks."""
        return int(self.get_meta("generation") or 0)

    def commit(self, *, changed: bool) -> None:
        """Commit, bumping the generation when chunks changed."""
        if changed:
            self.set_meta("generation", str(self.generation + 1))
        self._db.commit()

    def chunk_hashes(self, doc_id: str) -> dict[str, str]:
        """``chunk_id -> content_hash`` of one document's stored chunks."""
        rows = self._db.execute(
            "SELECT chunk_id, content_hash FROM chunks WHERE doc_id = ?", (doc_id,)
        )
        return dict(rows.fetchall())

    def put_document(self, document: ParsedDocument, available_at: int) -> None:
        """Insert or replace a document's metadata, text and sections."""
        sections = document.sections or (
            Section(key="body", title="", text=document.text, start=0, end=len(document.text)),
        )
        # A section's text is the document text between its offsets (the shared contract);
        # store it only if a parser ever broke that, so get_section returns what was indexed.
        records = [
            asdict(s) | {"text": None if document.text[s.start : s.end] == s.text else s.text}
            for s in sections
        ]
        self._db.execute(
            "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?)",
            (
                document.meta.doc_id,
                _meta_to_json(document.meta),
                document.text,
                json.dumps(records),
                available_at,
            ),
        )

    def upsert_chunks(self, chunks: Sequence[Chunk], tokens: Sequence[Sequence[str]]) -> None:
        """Insert chunks, or update them in place (keeping their row) when the id exists."""
        records = []
        for chunk, terms in zip(chunks, tokens, strict=True):
            metadata = chunk.metadata()
            records.append(
                (
                    chunk.chunk_id,
                    chunk.meta.doc_id,
                    chunk.content_hash,
                    chunk.text,
                    " ".join(terms),
                    json.dumps(metadata, sort_keys=True),
                    metadata["available_at"],
                    metadata.get("ticker", ""),
                    metadata.get("company_key", ""),
                    metadata.get("form", ""),
                    metadata.get("fiscal_year", -1),
                    metadata.get("fiscal_period", ""),
                    chunk.item,
                )
            )
        self._db.executemany(
            """INSERT INTO chunks (chunk_id, doc_id, content_hash, text, tokens, metadata_json,
                   available_at, ticker, company_key, form, fiscal_year, fiscal_period, item)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (chunk_id) DO UPDATE SET
                   doc_id = excluded.doc_id, content_hash = excluded.content_hash,
                   text = excluded.text, tokens = excluded.tokens,
                   metadata_json = excluded.metadata_json, available_at = excluded.available_at,
                   ticker = excluded.ticker, company_key = excluded.company_key,
                   form = excluded.form, fiscal_year = excluded.fiscal_year,
                   fiscal_period = excluded.fiscal_period, item = excluded.item""",
            records,
        )

    def delete_chunks(self, chunk_ids: Iterable[str]) -> None:
        """Remove chunks by id."""
        self._db.executemany("DELETE FROM chunks WHERE chunk_id = ?", [(c,) for c in chunk_ids])

    def chunks(self, chunk_ids: Sequence[str]) -> dict[str, StoredChunk]:
        """Stored chunks by id (ids not in the store are absent from the result)."""
        found: dict[str, StoredChunk] = {}
        for offset in range(0, len(chunk_ids), self._BATCH):
            batch = list(chunk_ids[offset : offset + self._BATCH])
            marks = ",".join("?" * len(batch))
            rows = self._db.execute(
                f"SELECT chunk_id, text, metadata_json FROM chunks WHERE chunk_id IN ({marks})",
                batch,
            )
            for chunk_id, text, metadata in rows:
                found[chunk_id] = StoredChunk(chunk_id, text, json.loads(metadata))
        return found

    def lexical_rows(self) -> tuple[list[list[str]], dict[str, np.ndarray]]:
        """Every chunk's tokens and filter columns (plus ``chunk_id``), in row order."""
        cursor = self._db.execute(
            f"SELECT chunk_id, tokens, {', '.join(FILTER_COLUMNS)} FROM chunks ORDER BY row"
        )
        rows = cursor.fetchall()
        tokens = [row[1].split() for row in rows]
        return tokens, self._columns(rows)

    def filter_columns(self) -> dict[str, np.ndarray]:
        """Filter columns (plus ``chunk_id``) in row order, without the tokens."""
        cursor = self._db.execute(
            f"SELECT chunk_id, '', {', '.join(FILTER_COLUMNS)} FROM chunks ORDER BY row"
        )
        return self._columns(cursor.fetchall())

    @staticmethod
    def _columns(rows: list[tuple[object, ...]]) -> dict[str, np.ndarray]:
        columns: dict[str, np.ndarray] = {"chunk_id": np.array([r[0] for r in rows], dtype=str)}
        for position, name in enumerate(FILTER_COLUMNS, start=2):
            values = [row[position] for row in rows]
            if name in ("available_at", "fiscal_year"):
                columns[name] = np.array(values, dtype=np.int64)
            else:
                columns[name] = np.array(values, dtype=str)
        return columns

    def document(self, doc_id: str) -> tuple[FilingMeta, str, tuple[Section, ...]] | None:
        """A stored document's metadata, full text and sections."""
        row = self._db.execute(
            "SELECT meta_json, text, sections_json FROM documents WHERE doc_id = ?", (doc_id,)
        ).fetchone()
        if row is None:
            return None
        meta_json, text, sections_json = row
        sections = tuple(
            Section(**(item | {"text": item["text"] or text[item["start"] : item["end"]]}))
            for item in json.loads(sections_json)
        )
        return _meta_from_json(meta_json), text, sections

    def documents(self, *, as_of: int | None = None) -> list[FilingMeta]:
        """Metadata of stored documents (only those public by ``as_of`` when given)."""
        query = "SELECT meta_json FROM documents"
        params: tuple[int, ...] = ()
        if as_of is not None:
            query += " WHERE available_at <= ?"
            params = (as_of,)
        return [
            _meta_from_json(row[0]) for row in self._db.execute(query + " ORDER BY doc_id", params)
        ]

    def counts(self) -> tuple[int, int]:
        """``(documents, chunks)``."""
        documents = self._db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        chunks = self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return int(documents), int(chunks)

    def close(self) -> None:
        """Close the database."""
        self._db.close()
