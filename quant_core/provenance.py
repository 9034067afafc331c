"""Provenance of a run: the code version and the canonical JSON and hash of a configuration.

Trials (:mod:`.trials`) and holdout evaluations (:mod:`.holdout`) store, with every row, which
code produced it (:func:`code_version`, read from ``.git`` without running git) and what it was
configured with (:func:`config_json`, canonical so that equal configurations give equal strings,
and its SHA-256 :func:`config_hash`). Two runs with the same configuration hash on the same data
are the same trial.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from quantdesk.quant_core.errors import InputError

__all__ = [
    "code_version",
    "config_hash",
    "config_json",
]


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
    np = sys.modules.get("numpy")  # a numpy value implies numpy is imported; no import here
    if np is not None and isinstance(value, np.generic):
        return value.item()
    if np is not None and isinstance(value, np.ndarray):
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
