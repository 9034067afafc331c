"""Price-validation verdicts, cached by data hash so repeated tool calls do not re-validate.

Every research tool validates its prices before using them (the ``data_validation``
guardrail). An agent calls many tools on the same data, and validating a 1.26M-row panel
takes one to two seconds, most of a tool call's overhead. The verdict depends only on the
frame's content and the validator's code, so it is stored under
``QUANTDESK_HOME/cache/validation/<data hash>.json`` with a fingerprint of the validator (the
quantdesk version and the SHA-256 of ``validation.py``'s source), and reused when both match.
The cache is an optimisation only: a missing, corrupt or stale entry means the data is
validated again; nothing is ever skipped.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

__all__ = ["ValidationVerdict", "validation_verdict"]

_FORMAT = 1


@dataclass(frozen=True)
class ValidationVerdict:
    """What the ``data_validation`` guardrail needs from a validation report.

    Attributes:
        ok: No issue of severity ``error``.
        n_rows: Rows validated.
        n_symbols: Symbols validated.
        n_errors: Issues of severity ``error``.
        first_errors: The first three errors, one line each.
        bad_symbols: Symbols with errors (sorted).
        warnings: Warning counts by issue kind.
        cached: Whether the verdict came from the cache.
    """

    ok: bool
    n_rows: int
    n_symbols: int
    n_errors: int
    first_errors: tuple[str, ...]
    bad_symbols: tuple[str, ...]
    warnings: dict[str, int] = field(default_factory=dict)
    cached: bool = False


def _validator_fingerprint() -> str:
    """Return the quantdesk version plus the SHA-256 of the validator's source file."""
    import hashlib

    import quantdesk
    from quantdesk.quant_core import validation

    source = Path(validation.__file__).read_bytes()
    return f"{quantdesk.__version__}:{hashlib.sha256(source).hexdigest()[:16]}"


def _cache_file(data_hash: str) -> Path:
    from quantdesk.quant_core.settings import get_settings

    return get_settings().home.expanduser() / "cache" / "validation" / f"{data_hash}.json"


def _read(path: Path, code: str) -> ValidationVerdict | None:
    try:
        stored: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent or unreadable: validate again
    if stored.get("format") != _FORMAT or stored.get("validator") != code:
        return None
    try:
        verdict = stored["verdict"]
        return ValidationVerdict(
            **{
                **verdict,
                "first_errors": tuple(verdict["first_errors"]),
                "bad_symbols": tuple(verdict["bad_symbols"]),
                "cached": True,
            }
        )
    except (KeyError, TypeError):
        return None


def _write(path: Path, code: str, verdict: ValidationVerdict) -> None:
    payload = {"format": _FORMAT, "validator": code, "verdict": asdict(verdict)}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(payload))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a cache that cannot be written is simply not used


def validation_verdict(frame: pl.DataFrame, data_hash: str | None) -> ValidationVerdict:
    """Validate ``frame`` (or reuse the cached verdict for ``data_hash``).

    Args:
        frame: Canonical price frame.
        data_hash: :func:`~quantdesk.quant_core.dataset.frame_hash` of ``frame``; ``None``
            disables the cache.
    """
    from quantdesk.quant_core.validation import validate_prices

    code = _validator_fingerprint()
    path = None if data_hash is None else _cache_file(data_hash)
    if path is not None and (hit := _read(path, code)) is not None:
        return hit
    report = validate_prices(frame)
    errors = report.errors
    warned: dict[str, int] = {}
    for kind, severity, n in report.summary().iter_rows():
        if severity == "warning" and n:
            warned[kind] = int(n)
    verdict = ValidationVerdict(
        ok=report.ok,
        n_rows=report.n_rows,
        n_symbols=report.n_symbols,
        n_errors=errors.height,
        first_errors=tuple(
            f"{kind} {sym} {day}" for kind, sym, day, *_ in errors.head(3).iter_rows()
        ),
        bad_symbols=tuple(sorted(set(errors["symbol"].drop_nulls().to_list()))),
        warnings=warned,
    )
    if path is not None:
        _write(path, code, verdict)
    return verdict
