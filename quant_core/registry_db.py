"""The registry database: connection, numbered migrations and write transactions.

Research contexts (:mod:`.research_context`), trials (:mod:`.trials`) and holdout evaluations
(:mod:`.holdout`) share one SQLite file, ``QUANTDESK_HOME/registry.sqlite``, so that separate
processes see the same contexts, trial counts and holdout locks. This module owns that file: it
opens it (WAL mode, foreign keys on, a 30 s busy timeout), applies pending migrations and runs
writes in ``BEGIN IMMEDIATE`` transactions.

The database is append-only and enforced by SQLite itself: triggers abort every UPDATE and
DELETE. Its schema evolves only through the numbered migrations in ``_MIGRATIONS`` (append new
ones, never edit old ones). Design notes: ``docs/trials_and_holdout.md``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from quantdesk.quant_core.errors import QuantdeskRuntimeError
from quantdesk.quant_core.settings import get_settings

__all__ = [
    "connect_registry",
    "registry_path",
    "utc_now",
    "write_transaction",
]


def _append_only(table: str) -> tuple[str, ...]:
    return tuple(
        f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} BEGIN "
        f"SELECT RAISE(ABORT, 'quantdesk registry is append-only: {op} on {table} refused'); END"
        for op in ("UPDATE", "DELETE")
    )


# Numbered by position (1-based). Append new migrations; never edit or reorder old ones.
_MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "contexts, trials and holdout evaluations",
        (
            """CREATE TABLE contexts (
                id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
                as_of TEXT, holdout_start TEXT, holdout_end TEXT,
                trial_budget INTEGER NOT NULL CHECK (trial_budget >= 1),
                notes TEXT NOT NULL,
                CHECK (holdout_start IS NOT NULL OR holdout_end IS NULL),
                CHECK (holdout_end IS NULL OR holdout_start <= holdout_end))""",
            """CREATE TABLE trials (
                id TEXT PRIMARY KEY, context_id TEXT NOT NULL REFERENCES contexts(id),
                number INTEGER NOT NULL, kind TEXT NOT NULL, created_at TEXT NOT NULL,
                description TEXT NOT NULL, config_hash TEXT NOT NULL, config_json TEXT NOT NULL,
                data_hash TEXT NOT NULL, code_version TEXT NOT NULL,
                n_obs INTEGER NOT NULL CHECK (n_obs >= 2), mean REAL NOT NULL,
                std REAL NOT NULL CHECK (std > 0), sr_per_period REAL NOT NULL,
                skew REAL NOT NULL, kurtosis REAL NOT NULL, first_date TEXT, last_date TEXT,
                returns_path TEXT NOT NULL, returns_sha256 TEXT NOT NULL,
                UNIQUE (context_id, number))""",
            """CREATE TABLE holdout_evaluations (
                id TEXT PRIMARY KEY, context_id TEXT NOT NULL REFERENCES contexts(id),
                hypothesis TEXT NOT NULL, hypothesis_key TEXT NOT NULL,
                description TEXT NOT NULL, config_hash TEXT, config_json TEXT,
                code_version TEXT NOT NULL, started_at TEXT NOT NULL,
                UNIQUE (context_id, hypothesis_key))""",
            """CREATE TABLE holdout_outcomes (
                evaluation_id TEXT PRIMARY KEY REFERENCES holdout_evaluations(id),
                finished_at TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
                summary_json TEXT NOT NULL)""",
            *_append_only("contexts"),
            *_append_only("trials"),
            *_append_only("holdout_evaluations"),
            *_append_only("holdout_outcomes"),
        ),
    ),
    (
        "trial period length in sessions",
        (
            # A CV trial earns one return per h-session holding period; backtests one per
            # session. Sharpes are pooled across trials in per-session units (see trials.py).
            "ALTER TABLE trials ADD COLUMN period_sessions INTEGER NOT NULL DEFAULT 1 "
            "CHECK (period_sessions >= 1)",
        ),
    ),
)


def registry_path(path: str | Path | None = None) -> Path:
    """Return the registry database file: ``path``, else ``QUANTDESK_HOME/registry.sqlite``."""
    if path is not None:
        return Path(path).expanduser().resolve()
    return (get_settings().home / "registry.sqlite").expanduser().resolve()


def connect_registry(path: str | Path | None = None) -> sqlite3.Connection:
    """Open the registry database, creating it and applying pending migrations.

    The connection is in autocommit mode (writes go through :func:`write_transaction`), has
    foreign keys on and waits up to 30 s for a lock held by another process. The database runs in
    WAL mode so that readers never block the single writer.

    Raises:
        QuantdeskRuntimeError: the file cannot be opened or was written by a newer quantdesk.
    """
    file = registry_path(path)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(file, timeout=30.0, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise QuantdeskRuntimeError(
            f"Cannot open the quantdesk registry at {file}: {exc}.",
            fix="check that QUANTDESK_HOME points to a writable local folder.",
        ) from exc
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA journal_mode = WAL")
        _migrate(conn, file)
    except BaseException:
        conn.close()
        raise
    return conn


def _schema_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if exists is None:
        return 0
    return conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]


def _migrate(conn: sqlite3.Connection, file: Path) -> None:
    version = _schema_version(conn)  # a plain read: the usual case takes no write lock
    if version > len(_MIGRATIONS):
        raise QuantdeskRuntimeError(
            f"The registry {file} has schema version {version}; this quantdesk knows "
            f"{len(_MIGRATIONS)}.",
            fix="upgrade quantdesk (a newer version wrote this registry).",
        )
    if version == len(_MIGRATIONS):
        return
    with write_transaction(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        # Re-read under the write lock: another process may have migrated meanwhile.
        version = _schema_version(conn)
        for number, (name, statements) in enumerate(_MIGRATIONS[version:], start=version + 1):
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)", (number, name, utc_now())
            )


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block in one ``BEGIN IMMEDIATE`` transaction (commit, or roll back on error).

    ``IMMEDIATE`` takes the write lock up front, so two processes never both read a count and
    then write from it.

    Raises:
        QuantdeskRuntimeError: (retryable) the lock was not obtained within the busy timeout.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise QuantdeskRuntimeError(
            f"The quantdesk registry is locked by another process ({exc}).",
            retryable=True,
            fix="retry; if it persists, look for a process stuck holding the registry.",
        ) from exc
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def utc_now() -> str:
    """Return the current UTC time as an ISO-8601 string with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")
