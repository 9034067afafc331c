"""Shared input types of the tools: the request base, ISO dates, symbols and data sources.

Tools receive *references* to data, never the data: a :data:`DataSource` names a price file
under an allowed data directory (``{"kind": "file", "path": "prices/x.parquet"}``) or the
seeded synthetic demo market (``{"kind": "demo", "seed": 7}``). Every tool re-reads the data
it needs, so a coding agent can call one tool per command with no state in between.

Inputs are validated strictly (``"5"`` is not an integer, ``true`` is not a number) so that a
caller learns about a wrong type instead of having it silently converted; dates are ISO
strings ``YYYY-MM-DD`` only. This module imports pydantic and nothing heavy: the registry
builds every schema from it without loading polars, numpy or the models.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, StringConstraints

from quantdesk.tools.envelope import ToolModel

__all__ = [
    "MAX_SYMBOLS",
    "ContextRef",
    "DataSource",
    "DemoSource",
    "FileSource",
    "IsoDate",
    "Symbol",
    "ToolInput",
]

MAX_SYMBOLS = 2000
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MIN_YEAR, _MAX_YEAR = 1900, 2200


def _iso_date(value: Any) -> date:
    """Accept ``YYYY-MM-DD`` strings (and ``date`` objects from Python callers) only."""
    if isinstance(value, date) and not isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and _ISO_DATE.match(value.strip()):
        try:
            parsed = date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a calendar date; write YYYY-MM-DD") from None
    else:
        raise ValueError(
            f"{value!r} is not an ISO date; write dates as YYYY-MM-DD, e.g. 2019-12-31"
        )
    if not _MIN_YEAR <= parsed.year <= _MAX_YEAR:
        raise ValueError(f"{parsed} is outside the years {_MIN_YEAR}-{_MAX_YEAR}")
    return parsed


IsoDate = Annotated[
    date,
    BeforeValidator(_iso_date),
    Field(json_schema_extra={"pattern": _ISO_DATE.pattern, "examples": ["2019-12-31"]}),
]
"""A date written ``YYYY-MM-DD`` (years 1900-2200)."""

Symbol = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-^=]*$")
]
"""A ticker: letters, digits and ``. _ - ^ =``, at most 32 characters."""

ContextRef = Annotated[str, StringConstraints(min_length=1, max_length=200)]
"""A research context id or name."""


class ToolInput(ToolModel):
    """Fields every tool takes.

    Attributes:
        context: Research context id or name. Omitted: the active context (in-process
            callers) or the context named ``default``.
        as_of: Point-in-time date: nothing dated after it is read. Research tools need it,
            or a research context that sets one (a later date than the context's is refused).
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    context: ContextRef | None = Field(
        default=None,
        description="Research context id or name; omitted: the active one, else 'default'.",
    )
    as_of: IsoDate | None = Field(
        default=None,
        description="Point-in-time date YYYY-MM-DD: nothing dated after it is read. Defaults "
        "to the research context's as_of when it has one.",
    )


class _SourceBase(ToolModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    symbols: list[Symbol] | None = Field(
        default=None,
        max_length=MAX_SYMBOLS,
        description="Keep only these symbols (case-sensitive); omitted: all.",
    )
    start: IsoDate | None = Field(default=None, description="First date to keep, YYYY-MM-DD.")


class FileSource(_SourceBase):
    """A price file or folder of per-symbol files under an allowed data directory.

    Attributes:
        kind: ``"file"``.
        path: Relative to an allowed data directory (``QUANTDESK_DATA_DIRS``), or absolute
            inside one. ``..`` and symbolic links that leave the directories are refused.
        columns: Explicit ``{"source column": "canonical column"}`` mapping (e.g.
            ``{"Adj Close": "adj_close"}``); vendor aliases are recognised without it.
        symbols: Keep only these symbols.
        start: First date to keep.
    """

    kind: Literal["file"]
    path: str = Field(min_length=1, max_length=1024, description="Parquet/CSV file or folder.")
    columns: dict[Annotated[str, StringConstraints(max_length=100)], str] | None = Field(
        default=None, max_length=32, description="Source-to-canonical column names."
    )


class DemoSource(_SourceBase):
    """The seeded synthetic market (offline; no file needed).

    Attributes:
        kind: ``"demo"``.
        preset: ``"demo"`` (50 symbols x 1512 sessions from 2015-01-02 with a planted 12-1
            momentum effect that switches off after 80% of the sessions) or ``"noise"`` (100
            symbols, nothing to find).
        seed: Generator seed.
        n_symbols: Override the number of symbols.
        n_sessions: Override the number of sessions.
        symbols: Keep only these symbols (``SYN000`` ...).
        start: First date to keep.
    """

    kind: Literal["demo"]
    preset: Literal["demo", "noise"] = "demo"
    seed: int = Field(default=7, ge=0, le=2**32 - 1)
    n_symbols: int | None = Field(default=None, ge=3, le=2000)
    n_sessions: int | None = Field(default=None, ge=60, le=5040)


DataSource = Annotated[FileSource | DemoSource, Field(discriminator="kind")]
"""Where the prices come from: ``{"kind": "file", ...}`` or ``{"kind": "demo", ...}``."""
