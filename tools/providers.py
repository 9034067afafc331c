"""Price providers behind the :data:`~quantdesk.tools.inputs.DataSource` references.

A provider turns a source reference into a canonical price frame cut at ``as_of``. Two ship
here: :class:`LocalFileProvider` (parquet/CSV files under the allowed data directories) and
:class:`DemoProvider` (the seeded synthetic market). A network provider implements the same
:class:`PriceProvider` protocol, adds its source model to the ``DataSource`` union and its
kind to :data:`PROVIDERS`; nothing else in the tool layer changes.

Allowed data directories (no path traversal): ``QUANTDESK_DATA_DIRS`` lists them, separated
by ``os.pathsep``; without it, the shared data folder (``QUANTDESK_SHARED_DATA``, default
``../shared/data``) and ``./data``. A path is resolved with :meth:`pathlib.Path.resolve`,
which follows symbolic links and ``..``, and must land inside one of them; so must every file
of a folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from quantdesk.tools.envelope import ToolInputError
from quantdesk.tools.inputs import DemoSource, FileSource

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "DATA_DIRS_ENV",
    "PROVIDERS",
    "DemoProvider",
    "LocalFileProvider",
    "PriceProvider",
    "allowed_data_dirs",
    "provider_for",
    "resolve_data_path",
]

DATA_DIRS_ENV = "QUANTDESK_DATA_DIRS"
_SUFFIXES = (".parquet", ".pq", ".csv")


def allowed_data_dirs() -> tuple[Path, ...]:
    """Return the resolved data directories tools may read (see the module docstring).

    Read on every call, so tests and long-running servers see a changed environment.
    """
    from quantdesk.quant_core.settings import get_settings, shared_data_dir

    raw = get_settings().data_dirs  # QUANTDESK_DATA_DIRS, from the environment or .env
    if raw.strip():
        entries = [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]
    else:
        shared = shared_data_dir()
        entries = [*([shared] if shared is not None else []), Path("data")]
    return tuple(dict.fromkeys(p.resolve() for p in entries))


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def resolve_data_path(raw: str, *, field: str = "source.path") -> Path:
    """Resolve a requested data path and check it stays inside an allowed directory.

    A relative path is tried against each allowed directory in order (the first that
    exists wins). Absolute paths must resolve inside one of them.

    Raises:
        ToolInputError: a NUL byte, a path outside the allowed directories (also through a
            symbolic link or ``..``), a missing path or an unsupported file type.
    """
    roots = allowed_data_dirs()
    listed = ", ".join(str(r) for r in roots) or "(none)"
    if "\x00" in raw:
        raise ToolInputError(field, "The path contains a NUL byte.", fix="send a plain file path.")
    requested = Path(raw).expanduser()
    candidates = [requested] if requested.is_absolute() else [root / requested for root in roots]
    resolved = [c.resolve() for c in candidates]
    inside = [r for r in resolved if _inside(r, roots)]
    if not inside:
        raise ToolInputError(
            field,
            f"The path {raw!r} resolves outside the allowed data directories ({listed}).",
            fix="give a path inside one of them (relative paths are resolved against them); "
            f"to allow another folder, add it to {DATA_DIRS_ENV}.",
        )
    existing = [r for r in inside if r.exists()]
    if not existing:
        raise ToolInputError(
            field,
            f"No file or folder {raw!r} in the allowed data directories ({listed}).",
            fix="check the spelling; paths are relative to a data directory, e.g. "
            "'prices/yfinance_adjusted_ohlcv_2005_2024.parquet'.",
        )
    path = existing[0]
    if path.is_file() and path.suffix.lower() not in _SUFFIXES:
        raise ToolInputError(
            field,
            f"{raw!r} is a {path.suffix or 'suffix-less'} file; prices are read from "
            f"{'/'.join(_SUFFIXES)} files.",
            fix="convert the file to parquet or CSV, or point at a folder of them.",
        )
    if path.is_dir():
        for child in path.iterdir():
            if child.suffix.lower() in _SUFFIXES and not _inside(child.resolve(), roots):
                raise ToolInputError(
                    field,
                    f"The folder {raw!r} holds {child.name!r}, a link to a file outside the "
                    f"allowed data directories ({listed}).",
                    fix="remove the link or copy the file into the data directory.",
                )
    return path


class PriceProvider(Protocol):
    """Anything that turns a source reference into a canonical price frame."""

    def load(self, source: Any, *, as_of: date | None) -> pl.DataFrame:
        """Return the canonical frame of ``source`` with no row dated after ``as_of``.

        Args:
            source: The source model this provider serves.
            as_of: Point-in-time cut (``None``: everything the source has).

        Raises:
            ToolInputError: the reference is invalid (path, symbols, columns).
            InputError: the data cannot be read or breaks the canonical contract.
        """
        ...


@dataclass(frozen=True)
class LocalFileProvider:
    """Parquet/CSV files and folders inside the allowed data directories."""

    def load(self, source: FileSource, *, as_of: date | None) -> pl.DataFrame:
        """Load ``source`` with :func:`~quantdesk.quant_core.loaders.load_prices`."""
        from quantdesk.quant_core.loaders import load_prices

        path = resolve_data_path(source.path)
        return load_prices(
            path,
            columns=source.columns,
            symbols=source.symbols,
            start=source.start,
            as_of=as_of,
        )


@dataclass(frozen=True)
class DemoProvider:
    """The seeded synthetic market of :mod:`quantdesk.quant_core.synthetic`."""

    def load(self, source: DemoSource, *, as_of: date | None) -> pl.DataFrame:
        """Generate the market, then keep the requested symbols and dates."""
        import polars as pl

        from quantdesk.quant_core.schema import select_as_of
        from quantdesk.quant_core.synthetic import demo_universe, noise_universe

        overrides: dict[str, int] = {}
        if source.n_symbols is not None:
            overrides["n_symbols"] = source.n_symbols
        if source.n_sessions is not None:
            overrides["n_sessions"] = source.n_sessions
        make = demo_universe if source.preset == "demo" else noise_universe
        frame = make(source.seed, **overrides).prices
        if source.symbols is not None:
            known = set(frame["symbol"].unique().to_list())
            unknown = [s for s in source.symbols if s not in known]
            if unknown:
                raise ToolInputError(
                    "source.symbols",
                    f"Unknown demo symbol(s) {unknown[:10]}; the demo market has "
                    f"{len(known)} symbols {min(known)} to {max(known)}.",
                    fix="use names like 'SYN000' or omit symbols.",
                )
            frame = frame.filter(pl.col("symbol").is_in(source.symbols))
        if source.start is not None:
            frame = frame.filter(pl.col("date") >= source.start)
        return select_as_of(frame, as_of)


PROVIDERS: dict[str, Callable[[], PriceProvider]] = {
    "file": LocalFileProvider,
    "demo": DemoProvider,
}
"""Provider factory by source ``kind``; a network provider registers its kind here."""


def provider_for(source: FileSource | DemoSource) -> PriceProvider:
    """Return the provider serving ``source.kind``.

    Raises:
        ToolInputError: no provider for that kind.
    """
    factory = PROVIDERS.get(source.kind)
    if factory is None:
        raise ToolInputError(
            "source.kind",
            f"No price provider for source kind {source.kind!r}.",
            fix=f"use one of {sorted(PROVIDERS)}.",
        )
    return factory()
