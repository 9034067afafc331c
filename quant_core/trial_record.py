"""One recorded trial: its registry row (:class:`TrialRecord`) and its stored return series.

:class:`~.trials.TrialRegistry` writes each trial's returns to ``trials/<trial_id>.parquet``
next to the registry database before it inserts the row. The helpers here check the returns'
dates, build the stored ``date, ret`` frame and write it atomically and durably (temporary name,
fsync, rename, fsync of the folder), so a row never points to a missing or half-written file.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from quantdesk.quant_core.errors import DataError, QuantdeskRuntimeError, SchemaError
from quantdesk.quant_core.provenance import _sha256

__all__ = ["ANNUALIZATION", "TrialRecord"]

ANNUALIZATION = 252


@dataclass(frozen=True)
class TrialRecord:
    """One recorded trial (a row of the registry).

    Attributes:
        trial_id: Random identifier (16 hex characters), also the parquet file name.
        context_id: Research context it belongs to.
        number: 1, 2, ... in order of recording within the context.
        kind: One of :data:`~.trials.TRIAL_KINDS`.
        created_at: Recording time (UTC).
        description: Free text.
        config_hash: SHA-256 of ``config_json``.
        config_json: Canonical JSON of the configuration.
        data_hash: Content hash of the inputs (e.g. ``dataset.frame_hash(frame)``).
        code_version: :func:`~.provenance.code_version` at recording time.
        n_obs: Number of returns.
        mean: Mean per-period return.
        std: Standard deviation (``ddof=1``).
        sr_per_period: ``mean / std`` (not annualised).
        skew: Biased sample skewness.
        kurtosis: Biased sample kurtosis, RAW (normal = 3).
        first_date: First return date (``None`` for returns recorded without dates).
        last_date: Last return date.
        returns_path: Parquet file of the series (``date``, ``ret``).
        returns_sha256: SHA-256 of that file.
        period_sessions: Sessions per return (1 for daily series; ``h`` for a series of
            non-overlapping ``h``-session holding periods).
    """

    trial_id: str
    context_id: str
    number: int
    kind: str
    created_at: datetime
    description: str
    config_hash: str
    config_json: str
    data_hash: str
    code_version: str
    n_obs: int
    mean: float
    std: float
    sr_per_period: float
    skew: float
    kurtosis: float
    first_date: date | None
    last_date: date | None
    returns_path: Path
    returns_sha256: str
    period_sessions: int = 1

    @property
    def sr_per_session(self) -> float:
        """Sharpe ratio per session: ``sr_per_period / sqrt(period_sessions)``.

        Trials with different period lengths are pooled in this unit (i.i.d. scaling).
        """
        return self.sr_per_period / math.sqrt(self.period_sessions)

    @property
    def config(self) -> dict[str, Any]:
        """The configuration as a dictionary."""
        return json.loads(self.config_json)

    @property
    def sr_annualised(self) -> float:
        """Annualised Sharpe ratio (``sr_per_session * sqrt(252)``)."""
        return self.sr_per_session * math.sqrt(ANNUALIZATION)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        out = dataclasses.asdict(self)
        out.update(
            created_at=self.created_at.isoformat(),
            first_date=None if self.first_date is None else self.first_date.isoformat(),
            last_date=None if self.last_date is None else self.last_date.isoformat(),
            returns_path=str(self.returns_path),
            sr_annualised=self.sr_annualised,
            kurtosis_convention="raw",
        )
        return out


def _return_dates(returns: Any) -> pl.Series | None:
    """Return the ``date`` column of a returns frame (None without one), checked."""
    if not isinstance(returns, pl.DataFrame) or "date" not in returns.columns:
        return None
    dates = returns["date"]
    if isinstance(dates.dtype, pl.Datetime):
        dates = dates.dt.date()
    elif dates.dtype != pl.Date:
        raise SchemaError(
            f"The returns' date column has type {dates.dtype}.",
            fix="cast it to pl.Date, e.g. pl.col('date').str.to_date().",
        )
    if dates.null_count():
        raise DataError(
            f"The returns have {dates.null_count()} null date(s).", fix="drop those rows."
        )
    if not (dates.is_sorted() and dates.n_unique() == dates.len()):
        raise DataError(
            "The returns' dates are not strictly increasing (unsorted or duplicated).",
            fix="sort by date and aggregate duplicates (one return per period).",
        )
    return dates


def _series_frame(dates: pl.Series | None, values: np.ndarray) -> pl.DataFrame:
    if dates is None:
        dates = pl.Series([None] * values.size, dtype=pl.Date)
    return pl.DataFrame({"date": dates, "ret": values})


def _write_atomic(frame: pl.DataFrame, target: Path) -> str:
    """Write ``frame`` as parquet to ``target`` atomically and durably; return its SHA-256."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    content = buffer.getvalue()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
            fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise QuantdeskRuntimeError(
            f"Cannot write the trial returns to {target}: {exc}.",
            fix="check that QUANTDESK_HOME is a writable local folder with free space.",
        ) from exc
    return _sha256(content)
