"""The trial registry: every CV and backtest run, recorded append-only, and the DSR inputs.

A *trial* is one evaluated configuration: a cross-validation or a backtest whose return series
someone looked at. Selection bias grows with the number of trials, so each one is recorded in the
registry database of :mod:`.research_context` (``QUANTDESK_HOME/registry.sqlite``) with its
research context, time, config hash, data hash, code version, per-period moments and its return
series (``trials/<trial_id>.parquet`` next to the database, SHA-256 in the row). The Deflated
Sharpe Ratio of any trial then takes the number of trials N and the variance of their Sharpe
ratios from the registry (:meth:`TrialRegistry.deflated_sharpe`), so the deflation is automatic.

Conventions (shared by quant core II): returns are simple per-period returns; the
per-period Sharpe is ``mean / std`` with ``ddof=1`` and no risk-free rate; skewness and kurtosis
are the biased sample moments ``m3 / m2**1.5`` and ``m4 / m2**2`` (``scipy.stats.skew`` and
``kurtosis(fisher=False)``), kurtosis RAW (normal = 3), as Bailey & López de Prado (2014) use.

Writes are crash-safe and concurrent-safe: the parquet file is written to a temporary name,
fsynced and renamed *before* the row is inserted (a row never points to a missing file; a failed
insert removes the file), and rows are inserted inside ``BEGIN IMMEDIATE`` (trial numbers are
never duplicated across processes). Failed runs are never recorded: bad input (NaN, too few
observations, zero variance) raises before anything is written.

Effective number of trials: highly correlated trials (re-runs, small parameter tweaks) are not
independent tests. :meth:`TrialRegistry.sharpe_stats` aligns the stored return series on their
dates, computes pairwise Pearson correlations over the dates each pair shares and hands the
matrix to :func:`quantdesk.quant_core.sharpe_inference.effective_number_of_trials` (default
``"clusters"``: complete-linkage groups whose members all correlate at least 0.9, after López de
Prado 2020, *Machine Learning for Asset Managers*, §8.7; the method and its sources are
documented there). Pairs sharing fewer than ``min_overlap`` observations count as uncorrelated,
which can only raise N_eff (conservative). :meth:`TrialRegistry.deflated_sharpe` uses the plain
count N unless asked for an effective method. Design notes: ``docs/trials_and_holdout.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import polars as pl

from quantdesk.quant_core.dataset import frame_hash
from quantdesk.quant_core.errors import (
    DataError,
    InputError,
    InsufficientDataError,
    QuantdeskRuntimeError,
    SchemaError,
)
from quantdesk.quant_core.research_context import (
    ResearchContext,
    connect_registry,
    guard_holdout,
    registry_path,
    resolve_context,
    utc_now,
    write_transaction,
)

if TYPE_CHECKING:
    from quantdesk.quant_core.sharpe_inference import DSRResult

__all__ = [
    "HOLDOUT_KIND",
    "TRIAL_KINDS",
    "TrialBudgetExceededError",
    "TrialRecord",
    "TrialRegistry",
    "TrialStats",
    "code_version",
    "config_hash",
    "config_json",
]

TRIAL_KINDS: tuple[str, ...] = ("backtest", "cv", "walk_forward", "study", "other", "holdout")
# Runs made inside evaluate_holdout: recorded, but not part of the search. They are left out of
# the counts, the trial budget and the deflation of search trials, and are deflated among
# themselves (every hypothesis evaluated on the same holdout is one more look at it).
HOLDOUT_KIND = "holdout"
ANNUALIZATION = 252
EffectiveMethod = Literal["count", "clusters", "average_correlation", "participation_ratio"]
_EFFECTIVE_METHODS: tuple[str, ...] = get_args(EffectiveMethod)


class TrialBudgetExceededError(InputError):
    """A research context has used its whole trial budget."""


# --------------------------------------------------------------------------- provenance


def _git_commit(root: Path) -> str | None:
    """Read the checked-out commit from ``root/.git`` without running git (None if unknown)."""
    try:
        git_dir = root / ".git"
        if git_dir.is_file():  # a worktree: ".git" holds "gitdir: <path>"
            git_dir = (root / git_dir.read_text().split(":", 1)[1].strip()).resolve()
        head = (git_dir / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head or None
        ref = head.split(":", 1)[1].strip()
        common = git_dir
        if (git_dir / "commondir").is_file():
            common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
        for base in (git_dir, common):
            if (base / ref).is_file():
                return (base / ref).read_text().strip()
        packed = common / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                if line.endswith(f" {ref}"):
                    return line.split(" ", 1)[0]
    except (OSError, IndexError):
        return None
    return None


def code_version() -> str:
    """Return ``<quantdesk version>+g<commit>`` (or just the version outside a git checkout).

    The commit is read from the files under ``.git``; uncommitted changes are not detected.
    """
    import quantdesk

    commit = _git_commit(Path(quantdesk.__file__).resolve().parent)
    return f"{quantdesk.__version__}+g{commit[:12]}" if commit else quantdesk.__version__


def _json_default(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, (Path, uuid.UUID)):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if hasattr(value, "model_dump"):  # pydantic models
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def config_json(config: Mapping[str, Any] | Any) -> str:
    """Return the canonical JSON of a configuration (sorted keys, no spaces).

    Accepts a mapping, a pydantic model or a dataclass; dates, paths, enums, numpy values and
    sets are converted. Two configurations with the same content give the same string.

    Raises:
        InputError: the configuration holds a value with no JSON form, or NaN/inf.
    """
    payload = _json_default(config) if not isinstance(config, Mapping) else dict(config)
    try:
        return json.dumps(
            payload, sort_keys=True, separators=(",", ":"), default=_json_default, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"The configuration cannot be stored as JSON: {exc}.",
            fix="pass plain values (numbers, strings, dates, lists, dicts, pydantic models) "
            "and no NaN or infinity.",
        ) from exc


def config_hash(config: Mapping[str, Any] | Any) -> str:
    """Return the SHA-256 hex digest of :func:`config_json` of ``config``."""
    return _sha256(config_json(config).encode())


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class TrialRecord:
    """One recorded trial (a row of the registry).

    Attributes:
        trial_id: Random identifier (16 hex characters), also the parquet file name.
        context_id: Research context it belongs to.
        number: 1, 2, ... in order of recording within the context.
        kind: One of :data:`TRIAL_KINDS`.
        created_at: Recording time (UTC).
        description: Free text.
        config_hash: SHA-256 of ``config_json``.
        config_json: Canonical JSON of the configuration.
        data_hash: Content hash of the inputs (e.g. ``dataset.frame_hash(frame)``).
        code_version: :func:`code_version` at recording time.
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


@dataclass(frozen=True)
class TrialStats:
    """What the DSR needs from a context's trials.

    Attributes:
        context_id: The research context.
        kind: Trial kind the statistics were restricted to (``None``: all kinds).
        n_trials: Number of trials N.
        var_trial_sharpes: Variance (``ddof=1``) of the per-period trial Sharpes; 0.0 when N = 1
            (one trial involves no selection).
        mean_trial_sharpe: Mean per-period trial Sharpe.
        max_trial_sharpe: Largest per-period trial Sharpe.
        n_effective: Effective number of independent trials (equals N with ``method="count"``).
        mean_correlation: Mean pairwise correlation ρ̄ of the aligned return series (``None``
            when not computed).
        method: ``"count"`` (N_eff = N) or ``"mean_correlation"`` (N_eff = ρ̄ + (1 - ρ̄) N).
        min_overlap: Fewest shared observations for a pair's correlation to be used.
        trial_ids: The trials included, in recording order.
    """

    context_id: str
    kind: str | None
    n_trials: int
    var_trial_sharpes: float
    mean_trial_sharpe: float
    max_trial_sharpe: float
    n_effective: float
    mean_correlation: float | None
    method: str
    min_overlap: int
    trial_ids: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        out = dataclasses.asdict(self)
        out["trial_ids"] = list(self.trial_ids)
        return out


# --------------------------------------------------------------------------- the registry


class TrialRegistry:
    """Append-only record of the trials of every research context.

    Args:
        path: Registry database file; default ``QUANTDESK_HOME/registry.sqlite``. Return series
            are stored in ``trials/`` next to it.

    Every method that takes ``context`` accepts a :class:`ResearchContext`, its id or name, or
    ``None`` for the active context (:func:`~quantdesk.quant_core.research_context.use_context`).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = registry_path(path)
        self.folder = self.path.parent / "trials"

    def __repr__(self) -> str:
        return f"TrialRegistry(path={str(self.path)!r})"

    # -- writing -------------------------------------------------------------------------

    def record(
        self,
        context: ResearchContext | str | None,
        kind: str,
        returns: np.ndarray | pl.Series | pl.DataFrame | Sequence[float],
        *,
        config: Mapping[str, Any] | Any,
        data_hash: str | pl.DataFrame,
        description: str = "",
        column: str | None = None,
        period_sessions: int = 1,
    ) -> TrialRecord:
        """Record one completed trial and return its row.

        Everything is validated before anything is written, so a failed run leaves no trace.
        A run with the same kind, configuration hash, data hash and period length as a trial
        already in the context is that trial: the existing row is returned and nothing is added.

        Args:
            context: The research context (see the class docstring).
            kind: One of :data:`TRIAL_KINDS`.
            returns: Per-period simple returns: an array, or a polars frame ``date, <series>``
                (dates strictly increasing; pick the series with ``column=`` when there are
                several, e.g. ``column="net"`` for a backtest's returns frame).
            config: The configuration that produced the returns (mapping, pydantic model or
                dataclass), stored as canonical JSON and hashed.
            data_hash: Content hash of the inputs, or the input frame itself (hashed with
                :func:`~quantdesk.quant_core.dataset.frame_hash`).
            description: Free text.
            column: Series to use in a frame with several.
            period_sessions: Sessions covered by each return (1 for daily returns; ``h`` for
                non-overlapping ``h``-session holding periods, as in a CV trial).

        Raises:
            InputError: unknown kind or context, bad config or data hash, zero-variance returns
                (Sharpe undefined), ``period_sessions`` not a positive integer.
            DataError: NaN/inf/null returns, unsorted or duplicated dates.
            InsufficientDataError: fewer than two returns.
            HoldoutViolationError: dated returns inside the context's holdout window outside
                :func:`~quantdesk.quant_core.research_context.evaluate_holdout`.
        """
        from quantdesk.quant_core.metrics import as_returns, sample_moments

        ctx = resolve_context(context, path=self.path)
        if kind not in TRIAL_KINDS:
            raise InputError(f"Trial kind {kind!r} is unknown.", fix=f"use one of {TRIAL_KINDS}.")
        if not isinstance(description, str):
            raise InputError("description must be a string.", fix="pass text or omit it.")
        if (
            isinstance(period_sessions, bool)
            or not isinstance(period_sessions, int)
            or period_sessions < 1
        ):
            raise InputError(
                f"period_sessions={period_sessions!r} is not a positive integer.",
                fix="pass 1 for daily returns or the holding period in sessions.",
            )
        if isinstance(data_hash, pl.DataFrame):
            data_hash = frame_hash(data_hash)
        if not isinstance(data_hash, str) or not data_hash.strip() or len(data_hash) > 256:
            raise InputError(
                f"data_hash={data_hash!r} is not a content hash.",
                fix="pass frame_hash(inputs) or the input frame itself.",
            )
        cfg_json = config_json(config)
        dates = _return_dates(returns)
        values = as_returns(returns, what="trial returns", min_obs=2, column=column)
        moments = sample_moments(values)
        if dates is not None:
            guard_holdout(pl.DataFrame({"date": dates}), what="trial returns", context=ctx)

        trial_id = uuid.uuid4().hex[:16]
        relative = f"trials/{trial_id}.parquet"
        target = self.path.parent / relative
        sha = _write_atomic(_series_frame(dates, values), target)
        row = (
            trial_id,
            ctx.id,
            kind,
            utc_now(),
            description,
            _sha256(cfg_json.encode()),
            cfg_json,
            data_hash,
            code_version(),
            moments.n_obs,
            moments.mean,
            moments.std,
            moments.sharpe,
            moments.skew,
            moments.kurtosis,
            None if dates is None else dates[0].isoformat(),
            None if dates is None else dates[-1].isoformat(),
            relative,
            sha,
        )
        try:
            with closing(connect_registry(self.path)) as conn, write_transaction(conn):
                # The same configuration on the same data is the same trial: re-running it
                # selects nothing new, so it is not counted twice.
                same = conn.execute(
                    "SELECT id FROM trials WHERE context_id = ? AND kind = ? AND config_hash = ? "
                    "AND data_hash = ? AND period_sessions = ?",
                    (ctx.id, kind, row[5], data_hash, period_sessions),
                ).fetchone()
                existing = None if same is None else same[0]
                if existing is None:
                    number = conn.execute(
                        "SELECT COALESCE(MAX(number), 0) + 1 FROM trials WHERE context_id = ?",
                        (ctx.id,),
                    ).fetchone()[0]
                    conn.execute(
                        "INSERT INTO trials (id, context_id, kind, created_at, description, "
                        "config_hash, config_json, data_hash, code_version, n_obs, mean, std, "
                        "sr_per_period, skew, kurtosis, first_date, last_date, returns_path, "
                        "returns_sha256, number, period_sessions) VALUES (?, ?, ?, ?, ?, ?, ?, "
                        "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (*row, number, period_sessions),
                    )
        except BaseException:
            target.unlink(missing_ok=True)  # the row was not written: leave no orphan file
            raise
        if existing is not None:
            target.unlink(missing_ok=True)
            return self.get(existing)
        return self.get(trial_id)

    # -- reading -------------------------------------------------------------------------

    def _record(self, row: sqlite3.Row) -> TrialRecord:
        return TrialRecord(
            trial_id=row["id"],
            context_id=row["context_id"],
            number=row["number"],
            kind=row["kind"],
            created_at=datetime.fromisoformat(row["created_at"]),
            description=row["description"],
            config_hash=row["config_hash"],
            config_json=row["config_json"],
            data_hash=row["data_hash"],
            code_version=row["code_version"],
            n_obs=row["n_obs"],
            mean=row["mean"],
            std=row["std"],
            sr_per_period=row["sr_per_period"],
            skew=row["skew"],
            kurtosis=row["kurtosis"],
            first_date=None if row["first_date"] is None else date.fromisoformat(row["first_date"]),
            last_date=None if row["last_date"] is None else date.fromisoformat(row["last_date"]),
            returns_path=self.path.parent / row["returns_path"],
            returns_sha256=row["returns_sha256"],
            period_sessions=row["period_sessions"],
        )

    def get(self, trial_id: str) -> TrialRecord:
        """Return the trial with this id.

        Raises:
            InputError: no such trial in this registry.
        """
        with closing(connect_registry(self.path)) as conn:
            row = conn.execute("SELECT * FROM trials WHERE id = ?", (trial_id,)).fetchone()
        if row is None:
            raise InputError(
                f"No trial with id {trial_id!r} in {self.path}.",
                fix="list the context's trials with TrialRegistry().trials(ctx).",
            )
        return self._record(row)

    def trials(
        self, context: ResearchContext | str | None = None, *, kind: str | None = None
    ) -> list[TrialRecord]:
        """Return the trials of a context in recording order (optionally of one kind).

        Without ``kind``, runs made inside ``evaluate_holdout`` (kind ``"holdout"``) are left out:
        they are not part of the search. Pass ``kind="holdout"`` to list them.
        """
        if kind is not None and kind not in TRIAL_KINDS:
            raise InputError(f"Trial kind {kind!r} is unknown.", fix=f"use one of {TRIAL_KINDS}.")
        ctx = resolve_context(context, path=self.path)
        query = "SELECT * FROM trials WHERE context_id = ?" + (
            " AND kind = ?" if kind else f" AND kind != '{HOLDOUT_KIND}'"
        )
        params = (ctx.id, kind) if kind else (ctx.id,)
        with closing(connect_registry(self.path)) as conn:
            rows = conn.execute(query + " ORDER BY number", params).fetchall()
        return [self._record(r) for r in rows]

    def count(
        self, context: ResearchContext | str | None = None, *, kind: str | None = None
    ) -> int:
        """Return the number of search trials of a context (or of one kind, e.g. ``"holdout"``)."""
        if kind is not None and kind not in TRIAL_KINDS:
            raise InputError(f"Trial kind {kind!r} is unknown.", fix=f"use one of {TRIAL_KINDS}.")
        ctx = resolve_context(context, path=self.path)
        query = "SELECT COUNT(*) FROM trials WHERE context_id = ?" + (
            " AND kind = ?" if kind else f" AND kind != '{HOLDOUT_KIND}'"
        )
        with closing(connect_registry(self.path)) as conn:
            return conn.execute(query, (ctx.id, kind) if kind else (ctx.id,)).fetchone()[0]

    def returns(self, trial: TrialRecord | str) -> pl.DataFrame:
        """Return a trial's stored series (``date``, ``ret``), after checking its SHA-256.

        ``date`` is null for returns recorded without dates.

        Raises:
            QuantdeskRuntimeError: the file is missing or its content changed.
        """
        rec = trial if isinstance(trial, TrialRecord) else self.get(trial)
        try:
            content = rec.returns_path.read_bytes()
        except OSError as exc:
            raise QuantdeskRuntimeError(
                f"The return series of trial {rec.trial_id} is missing ({rec.returns_path}).",
                fix="restore the registry folder from a backup; quantdesk never deletes it.",
            ) from exc
        if hashlib.sha256(content).hexdigest() != rec.returns_sha256:
            raise QuantdeskRuntimeError(
                f"The return series of trial {rec.trial_id} ({rec.returns_path}) does not match "
                "its recorded SHA-256: the file was modified after recording.",
                fix="restore the file from a backup; do not edit registry files.",
            )
        return pl.read_parquet(io.BytesIO(content))

    def verify(self, context: ResearchContext | str | None = None) -> tuple[str, ...]:
        """Check every trial file of a context (all contexts with ``None``) against its hash.

        Returns:
            One message per missing or modified file; empty when everything verifies.
        """
        if context is None:
            with closing(connect_registry(self.path)) as conn:
                rows = conn.execute("SELECT * FROM trials ORDER BY rowid").fetchall()
            records = [self._record(r) for r in rows]
        else:
            records = self.trials(context)
        problems = []
        for rec in records:
            try:
                self.returns(rec)
            except QuantdeskRuntimeError as exc:
                problems.append(exc.message)
        return tuple(problems)

    # -- statistics and the deflated Sharpe ratio ----------------------------------------

    def sharpe_stats(
        self,
        context: ResearchContext | str | None = None,
        *,
        kind: str | None = None,
        method: EffectiveMethod = "clusters",
        min_correlation: float = 0.9,
        min_overlap: int = 60,
    ) -> TrialStats:
        """Return N, the variance of the trial Sharpes and the effective number of trials.

        Args:
            context: The research context.
            kind: Restrict to one trial kind (default: every trial of the context).
            method: ``"count"`` (N_eff = N, reads no return series) or a method of
                :func:`~quantdesk.quant_core.sharpe_inference.effective_number_of_trials`
                (``"clusters"``: trials correlated above ``min_correlation`` form one).
            min_correlation: Threshold of the ``"clusters"`` method.
            min_overlap: Fewest shared dates for a pair's correlation to be used; pairs with
                less overlap count as uncorrelated (which can only raise N_eff).

        Raises:
            InsufficientDataError: the context has no trials (of that kind).
        """
        ctx = resolve_context(context, path=self.path)
        records = self.trials(ctx, kind=kind)
        if not records:
            raise InsufficientDataError(
                f"Research context {ctx.name!r} has no recorded trials"
                + (f" of kind {kind!r}." if kind else "."),
                fix="record the trials with TrialRegistry().record(...) before deflating.",
            )
        series = [] if method == "count" else [self.returns(r) for r in records]
        return _stats(
            ctx.id,
            kind,
            {r.trial_id: r.sr_per_session for r in records},
            series,
            method,
            min_correlation,
            min_overlap,
        )

    def deflated_sharpe(
        self,
        context: ResearchContext | str | None = None,
        trial: TrialRecord | str | None = None,
        *,
        returns: np.ndarray | pl.Series | pl.DataFrame | None = None,
        kind: str | None = None,
        method: EffectiveMethod = "count",
        min_correlation: float = 0.9,
        min_overlap: int = 60,
        period_sessions: int = 1,
    ) -> DSRResult:
        """Deflated Sharpe ratio of one trial, with N and V taken from the context's trials.

        Give either a recorded ``trial`` (it must belong to the context) or candidate
        ``returns`` that are not recorded yet: those count as one more trial (N + 1, and their
        Sharpe joins the variance), since looking at them is a trial too.

        Args:
            context: The research context.
            trial: A recorded trial or its id.
            returns: Unrecorded candidate returns (array or ``date, <series>`` frame).
            kind: Restrict N and V to one trial kind.
            method: ``"count"`` (default: every trial counts, the conservative choice) or an
                effective-trials method (see :meth:`sharpe_stats`).
            min_correlation: Threshold of the ``"clusters"`` method.
            min_overlap: See :meth:`sharpe_stats`.
            period_sessions: Sessions per return of the candidate ``returns``.

        Returns:
            :class:`~quantdesk.quant_core.sharpe_inference.DSRResult` in per-session units
            (a trial of ``h``-session periods enters with ``SR / sqrt(h)`` over ``n * h``
            sessions, which leaves its PSR statistic unchanged), raw kurtosis, the N and V used.

        Raises:
            InputError: both or neither of ``trial`` and ``returns``; a trial of another
                context or kind; zero-variance returns.
            InsufficientDataError: no trials to deflate against.
        """
        from quantdesk.quant_core.metrics import as_returns, sample_moments
        from quantdesk.quant_core.sharpe_inference import deflated_sharpe_ratio

        if (trial is None) == (returns is None):
            raise InputError(
                "Pass exactly one of trial= (a recorded trial) or returns= (a candidate).",
                fix="e.g. registry.deflated_sharpe(ctx, trial=record.trial_id).",
            )
        ctx = resolve_context(context, path=self.path)
        records = self.trials(ctx, kind=kind)
        series = [] if method == "count" else [self.returns(r) for r in records]
        sharpes = {r.trial_id: r.sr_per_session for r in records}
        if trial is not None:
            rec = trial if isinstance(trial, TrialRecord) else self.get(trial)
            if rec.trial_id not in {r.trial_id for r in records}:
                raise InputError(
                    f"Trial {rec.trial_id} ({rec.kind}) is not among the "
                    f"{kind or 'recorded'} trials of research context {ctx.name!r}.",
                    fix="deflate a trial within its own context (and kind).",
                )
            sr, n_obs, skew, kurt = rec.sr_per_period, rec.n_obs, rec.skew, rec.kurtosis
            period = rec.period_sessions
        else:
            values = as_returns(returns, what="candidate returns", min_obs=2)
            m = sample_moments(values)
            sr, n_obs, skew, kurt = m.sharpe, m.n_obs, m.skew, m.kurtosis
            period = period_sessions
            sharpes["candidate"] = m.sharpe / math.sqrt(period)
            if method != "count":
                series.append(_series_frame(_return_dates(returns), values))
        stats = _stats(ctx.id, kind, sharpes, series, method, min_correlation, min_overlap)
        return deflated_sharpe_ratio(
            sr=sr / math.sqrt(period),
            n_obs=n_obs * period,
            skew=skew,
            kurtosis=kurt,
            n_trials=stats.n_effective,
            var_trial_sharpes=stats.var_trial_sharpes if stats.n_trials > 1 else None,
            # the moments were computed here from the stored series: the units are known
            check_plausible=False,
        )

    # -- the trial budget ----------------------------------------------------------------

    def remaining_budget(self, context: ResearchContext | str | None = None) -> int:
        """Return how many more trials the context's budget allows (0 when used up)."""
        ctx = resolve_context(context, path=self.path)
        return max(0, ctx.trial_budget - self.count(ctx))

    def check_budget(self, context: ResearchContext | str | None = None) -> None:
        """Raise :class:`TrialBudgetExceededError` when the context has no trial left.

        The registry itself never refuses a record (a run that happened is always written
        down); the tool layer calls this before starting a run.
        """
        ctx = resolve_context(context, path=self.path)
        used = self.count(ctx)
        if used >= ctx.trial_budget:
            raise TrialBudgetExceededError(
                f"Research context {ctx.name!r} has used {used} of its {ctx.trial_budget} "
                "trials: every further configuration raises the bar a real effect must clear.",
                fix="stop searching: judge the best trial with its deflated Sharpe and evaluate "
                "the final hypothesis with evaluate_holdout(...); or open a new research context "
                "(its notes should say why; these trials stay on record).",
            )


# --------------------------------------------------------------------------- helpers


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


def _aligned_correlation(series: list[pl.DataFrame], min_overlap: int) -> np.ndarray:
    """Pairwise Pearson correlation of return series aligned on their dates.

    Each pair uses the dates both series have. Series stored without dates align by position
    with each other and never with dated ones. Pairs sharing fewer than ``min_overlap``
    observations (or constant on their overlap) get 0.
    """
    keys = []
    for frame in series:
        dates = frame["date"]
        if dates.null_count() == 0:
            keys.append(dates.to_physical().to_numpy().astype(np.int64))
        else:  # dateless: a key space of its own, far from any date's day number
            keys.append(np.arange(frame.height, dtype=np.int64) + 10**9)
    union = np.unique(np.concatenate(keys))
    x = np.full((union.size, len(series)), np.nan)
    for j, (key, frame) in enumerate(zip(keys, series, strict=True)):
        x[np.searchsorted(union, key), j] = frame["ret"].to_numpy()
    present = ~np.isnan(x)
    mask = present.astype(np.float64)
    x = np.where(present, x - np.nanmean(x, axis=0), 0.0)  # centring improves the sums' precision
    with np.errstate(divide="ignore", invalid="ignore"):
        n = mask.T @ mask
        mean_i = (x.T @ mask) / n  # [i, j]: mean of series i over the dates shared with j
        var_i = ((x**2).T @ mask) / n - mean_i**2
        cov = (x.T @ x) / n - mean_i * mean_i.T
        corr = cov / np.sqrt(var_i * var_i.T)
        # A series constant on the overlap leaves a rounding residue, not a variance.
        varies = var_i > 1e-10 * (((x**2).T @ mask) / n)
    usable = (n >= min_overlap) & varies & varies.T & np.isfinite(corr)
    corr = np.where(usable, np.clip(corr, -1.0, 1.0), 0.0)
    corr = (corr + corr.T) / 2.0
    np.fill_diagonal(corr, 1.0)
    return corr


def _stats(
    context_id: str,
    kind: str | None,
    sharpes: dict[str, float],
    series: list[pl.DataFrame],
    method: str,
    min_correlation: float,
    min_overlap: int,
) -> TrialStats:
    if method not in _EFFECTIVE_METHODS:
        raise InputError(f"method={method!r} is unknown.", fix=f"use one of {_EFFECTIVE_METHODS}.")
    if isinstance(min_overlap, bool) or not isinstance(min_overlap, int) or min_overlap < 3:
        raise InputError(f"min_overlap={min_overlap!r} is invalid.", fix="pass an integer >= 3.")
    values = np.fromiter(sharpes.values(), dtype=np.float64, count=len(sharpes))
    n = values.size
    n_eff, rho = float(n), None
    if method != "count" and n > 1:
        from quantdesk.quant_core.sharpe_inference import effective_number_of_trials

        corr = _aligned_correlation(series, min_overlap)
        rho = float((corr.sum() - n) / (n * (n - 1)))
        n_eff = effective_number_of_trials(
            correlation=corr, method=method, min_correlation=min_correlation
        )
    return TrialStats(
        context_id=context_id,
        kind=kind,
        n_trials=n,
        var_trial_sharpes=float(np.var(values, ddof=1)) if n > 1 else 0.0,
        mean_trial_sharpe=float(values.mean()),
        max_trial_sharpe=float(values.max()),
        n_effective=n_eff,
        mean_correlation=rho,
        method=method,
        min_overlap=min_overlap,
        trial_ids=tuple(sharpes),
    )
