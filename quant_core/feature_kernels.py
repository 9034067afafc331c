"""Dense numpy kernels behind :func:`~quantdesk.quant_core.features.compute_features`.

The polars expressions of :mod:`quantdesk.quant_core.features` define every feature; this
module computes the same values several times faster, for ``compute_features``.

Layout. A canonical frame is sorted by ``(symbol, date)``, so every symbol is one run of
rows. :class:`PanelLayout` places the runs as the rows of (symbol x position) matrices,
padded after each symbol's last session. Kernels work along axis 1, where a shift by ``k``
sessions is a slice and never crosses from one symbol into another.

Causality, bit for bit. The value at position ``i`` depends only on positions ``<= i`` of
the same matrix row, through operations whose order does not depend on what follows ``i``
or on the other rows (running sums are sequential; the Wilder recursion is a causal IIR
filter). Padding sits after a symbol's last session, so it never reaches a real position.
Hence changing or dropping data after t cannot change a feature at t in the last bit, and
neither can the way symbols are grouped into matrices.

Exactness. Shifted ratios (``ret``, ``rev``, ``mom``) are the same IEEE operations as the
expressions, and RSI runs the same kernel on both paths: equal to the last bit. Rolling means
and variances (:func:`rolling_mean`, :func:`rolling_moments`) add only values inside each
window, as deviations from an anchor inside it, so nothing cancels against the rest of the
history; they stay within a few ulps of an extended-precision two-pass value, and identical
values give exactly their value as mean and 0 as variance, as in polars (which keeps the "no
dispersion -> null" rule of ``volz`` on the same rows).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl

__all__ = [
    "REL_EPS",
    "TRADING_DAYS_PER_YEAR",
    "FeatureSpec",
    "PanelBlock",
    "PanelLayout",
    "dense_features",
    "rolling_mean",
    "rolling_moments",
    "wilder_rsi",
]

TRADING_DAYS_PER_YEAR = 252
# Relative floor under which a dispersion counts as zero (volz, cross-sectional z-scores).
REL_EPS = 1e-12


class FeatureSpec(Protocol):
    """What the kernels need of a parsed feature (:class:`~.features.FeatureDef` has it)."""

    @property
    def name(self) -> str: ...  # noqa: D102
    @property
    def family(self) -> str: ...  # noqa: D102
    @property
    def window(self) -> int: ...  # noqa: D102
    @property
    def skip(self) -> int: ...  # noqa: D102
    @property
    def warmup(self) -> int: ...  # noqa: D102


@dataclass(frozen=True)
class PanelBlock:
    """Some symbols laid out as the rows of one (symbol x position) matrix.

    Attributes:
        rows: The frame rows of the block's symbols, in matrix order: a slice when they are
            consecutive, else an index array.
        lengths: Rows of each of the block's symbols.
        cells: Flat positions of the real (not padding) matrix cells, in row order; ``None``
            when every symbol fills the width (then the matrix is a plain reshape).
    """

    rows: slice | np.ndarray
    lengths: np.ndarray
    cells: np.ndarray | None

    @classmethod
    def of(cls, lengths: np.ndarray, rows: slice | np.ndarray) -> PanelBlock:
        """The block of symbols with these run lengths, stored at ``rows`` of the frame."""
        width = int(lengths.max(initial=0))
        if (lengths == width).all():
            return cls(rows=rows, lengths=lengths, cells=None)
        cells = np.flatnonzero(np.arange(width)[None, :] < lengths[:, None])
        return cls(rows=rows, lengths=lengths, cells=cells)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_symbols, width)``."""
        return (self.lengths.size, int(self.lengths.max(initial=0)))

    def to_matrix(self, column: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Lay the block's rows of a frame column out as a matrix, ``fill`` after each run."""
        values = np.asarray(column, dtype=np.float64)[self.rows]
        if self.cells is None:
            return values.reshape(self.shape)
        matrix = np.full(self.shape, fill)
        matrix.reshape(-1)[self.cells] = values
        return matrix

    def to_rows(self, matrix: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Read a matrix back in the order of :attr:`rows` (into ``out`` if given)."""
        flat = matrix.reshape(-1)
        if self.cells is not None:
            return np.take(flat, self.cells, out=out)
        if out is None:
            return flat
        out[...] = flat
        return out


@dataclass(frozen=True)
class PanelLayout:
    """Where the rows of a ``(symbol, date)``-sorted frame sit in dense matrices.

    Symbols are cut into blocks of about ``_BLOCK_CELLS`` cells, so that a kernel's
    temporaries stay in the CPU cache (about 1.3x faster than one big matrix). When one
    matrix would hold more than ``_MAX_FILL`` cells per row (a few long histories among many
    short ones), symbols are first grouped by length. Kernels work row by row, so the
    blocking never changes a value.

    Attributes:
        n_rows: Rows of the frame.
        blocks: The matrices; together their rows cover the frame once.
    """

    n_rows: int
    blocks: tuple[PanelBlock, ...]

    @classmethod
    def from_symbols(cls, symbol: pl.Series) -> PanelLayout:
        """Build the layout from the symbol column of a frame sorted by ``(symbol, date)``."""
        if symbol.len() == 0:
            return cls(n_rows=0, blocks=())
        return cls.from_lengths(symbol.rle().struct.field("len").to_numpy())

    @classmethod
    def from_lengths(cls, lengths: np.ndarray) -> PanelLayout:
        """Build the layout from the run length of each symbol, in frame order."""
        lengths = np.asarray(lengths, dtype=np.int64)
        n_rows = int(lengths.sum())
        starts = np.cumsum(lengths) - lengths
        in_order = lengths.size * int(lengths.max(initial=0)) <= _MAX_FILL * n_rows
        groups = [np.arange(lengths.size)] if in_order else _length_groups(lengths)
        blocks = []
        for group in groups:
            per_block = max(1, _BLOCK_CELLS // int(lengths[group].max()))
            for first in range(0, group.size, per_block):
                members = group[first : first + per_block]
                sizes = lengths[members]
                if in_order:  # consecutive symbols: their rows are one contiguous range
                    start = int(starts[members[0]])
                    rows: slice | np.ndarray = slice(start, start + int(sizes.sum()))
                else:
                    offsets = np.cumsum(sizes) - sizes
                    rows = np.arange(int(sizes.sum())) + np.repeat(starts[members] - offsets, sizes)
                blocks.append(PanelBlock.of(sizes, rows))
        return cls(n_rows=n_rows, blocks=tuple(blocks))

    def map(self, columns: Sequence[np.ndarray | None], kernel: _Kernel) -> dict[str, np.ndarray]:
        """Run ``kernel`` on each block's matrices of ``columns``; gather results in row order.

        ``kernel`` takes the matrices (``None`` stays ``None``; padding is 1.0, harmless in
        ratios and logarithms) and returns named result matrices.
        """
        out: dict[str, np.ndarray] = {}
        for block in self.blocks:
            matrices = [None if c is None else block.to_matrix(c, fill=1.0) for c in columns]
            for name, matrix in kernel(matrices).items():
                if len(self.blocks) == 1:
                    out[name] = block.to_rows(matrix)
                    continue
                if name not in out:
                    out[name] = np.empty(self.n_rows)
                if isinstance(block.rows, slice):  # gather straight into the output
                    block.to_rows(matrix, out=out[name][block.rows])
                else:
                    out[name][block.rows] = block.to_rows(matrix)
        return out


# A matrix may hold at most this many cells per frame row before symbols are grouped.
_MAX_FILL = 2
# About 1 MiB per float64 matrix: a kernel's dozen temporaries then fit in the cache.
_BLOCK_CELLS = 1 << 17
_Kernel = Callable[[list[np.ndarray | None]], dict[str, np.ndarray]]


def _length_groups(lengths: np.ndarray) -> list[np.ndarray]:
    """Symbol indices grouped so that each group's matrix has at most ``_MAX_FILL`` x its rows.

    Greedy from the longest symbol down: a group takes the next symbols while
    ``count x longest <= _MAX_FILL x rows``; each group is returned in frame order.
    """
    groups, current, rows = [], [], 0
    for index in np.argsort(-lengths, kind="stable").tolist():
        length = int(lengths[index])
        longest = int(lengths[current[0]]) if current else length
        if current and (len(current) + 1) * longest > _MAX_FILL * (rows + length):
            groups.append(np.sort(np.array(current)))
            current, rows = [], 0
        current.append(index)
        rows += length
    groups.append(np.sort(np.array(current)))
    return groups


def _blocks(x: np.ndarray, w: int) -> np.ndarray:
    """A fresh ``(rows, n_blocks, w)`` copy of ``x``, zero-padded to whole blocks at the end."""
    n_rows, length = x.shape
    n_blocks = max(-(-length // w), 1)
    out = np.zeros((n_rows, n_blocks * w))
    out[:, :length] = x
    return out.reshape(n_rows, n_blocks, w)


def _prefix_sums(blocks: np.ndarray) -> np.ndarray:
    """Prefix sums restarted at every block, in place (the sequential order of np.cumsum)."""
    # w vectorised adds across all blocks: about three times faster than numpy's accumulate
    # on short rows, and the same additions in the same order.
    for k in range(1, blocks.shape[2]):
        blocks[:, :, k] += blocks[:, :, k - 1]
    return blocks


def _suffix_sums(blocks: np.ndarray) -> np.ndarray:
    """Suffix sums (from each position to its block's end) within every block, in place."""
    for k in range(blocks.shape[2] - 2, -1, -1):
        blocks[:, :, k] += blocks[:, :, k + 1]
    return blocks


def _windows(prefix: np.ndarray, suffix: np.ndarray) -> np.ndarray:
    """Window sums ``prefix[b, r] + suffix[b - 1, r + 1]`` (overwrites ``prefix``).

    The window ending at offset ``r`` of block ``b`` is block ``b`` up to ``r`` plus block
    ``b - 1`` after ``r`` (nothing when ``r = w - 1``); ``suffix`` may lack the last block.
    """
    n_blocks = prefix.shape[1]
    prefix[:, 1:, :-1] += suffix[:, : n_blocks - 1, 1:]
    return prefix


def _flat(blocks: np.ndarray, length: int) -> np.ndarray:
    """The ``(rows, length)`` view of a ``(rows, n_blocks, w)`` array, without the padding."""
    return blocks.reshape(blocks.shape[0], -1)[:, :length]


def rolling_mean(x: np.ndarray, w: int) -> np.ndarray:
    """Mean of ``x[:, i-w+1 .. i]`` at every ``i >= w - 1`` (entries before are meaningless).

    The anchor plus the mean deviation from it (:func:`_anchored_sums`): every value added
    is in the window, so nothing cancels against the rest of the history, and a window of
    identical values has exactly that value as its mean (``ma_dist`` is then exactly 0).
    """
    anchor, total, _ = _anchored_sums(x, w, squares=False)
    total /= w
    total += anchor
    return _flat(total, x.shape[1])


def rolling_moments(
    x: np.ndarray, w: int, *, mean: bool = True
) -> tuple[np.ndarray | None, np.ndarray]:
    """Rolling mean and sample variance (ddof=1) of the ``w`` values ending at each position.

    Valid from position ``w - 1``; ``w >= 2``. Sums are taken around an anchor inside each
    window (:func:`_anchored_sums`): the mean is exact to a few ulps and the one-pass
    variance cancels only against the window's own spread, never against the values' size,
    a level shift or an earlier outlier. Windows of up to ``_DIRECT_MAX_WINDOW`` values, which
    can be nearly equal by chance, get the two-pass formula around that mean instead. Either
    way identical values give exactly 0 (every deviation from the anchor is 0), as in polars.

    Args:
        x: ``(rows, positions)`` matrix; windows run along axis 1.
        w: Window length.
        mean: Also return the mean (else ``None`` in its place, which saves two passes).
    """
    length = x.shape[1]
    anchor, total, squares = _anchored_sums(x, w, squares=w > _DIRECT_MAX_WINDOW)
    if squares is None:
        # two passes: the mean, then the squared deviations from it, one lag at a time
        total /= w
        total += anchor
        average = _flat(total, length)
        variance = np.zeros(x.shape)
        for lag in range(w if length >= w else 0):
            deviation = x[:, w - 1 - lag : length - lag] - average[:, w - 1 :]
            deviation *= deviation
            variance[:, w - 1 :] += deviation
        variance /= w - 1
        return (average if mean else None), variance
    variance = total * total
    variance /= w
    np.subtract(squares, variance, out=variance)
    variance /= w - 1
    np.maximum(variance, 0.0, out=variance)  # rounding can leave a tiny negative
    if not mean:
        return None, _flat(variance, length)
    total /= w
    total += anchor
    return _flat(total, length), _flat(variance, length)


# Windows up to this length get the two-pass variance: a handful of values can be nearly
# equal by chance, and the one-pass formula would then cancel most of their digits.
_DIRECT_MAX_WINDOW = 8


def _anchored_sums(
    x: np.ndarray, w: int, *, squares: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Anchor, sum of deviations and (optionally) of squared deviations over each window.

    Every window ending in block ``b`` (blocks of ``w`` positions) contains the block's first
    value, its anchor: a prefix sum of block ``b`` plus a suffix sum of block ``b - 1``, both
    around that anchor. Causal: a suffix of block ``b - 1`` around block ``b``'s first value
    only serves windows that end at or after it. Arrays come in block shape (see
    :func:`_flat`); the anchor as ``(rows, n_blocks, 1)``.
    """
    blocks = _blocks(x, w)
    first = blocks[:, :, :1].copy()
    sums: list[np.ndarray] = []
    for power in (1, 2) if squares else (1,):
        around_own, around_next = blocks - first, blocks[:, :-1] - first[:, 1:]
        if power == 2:
            around_own *= around_own
            around_next *= around_next
        sums.append(_windows(_prefix_sums(around_own), _suffix_sums(around_next)))
    return first, sums[0], (sums[1] if squares else None)


def wilder_rsi(change: np.ndarray, w: int) -> np.ndarray:
    """Wilder's RSI along axis 1 from price changes (``change[:, 0]`` is ignored).

    The recursion ``a_k = a_{k-1} + (x_k - a_{k-1}) / w`` is seeded at position ``w`` with the
    plain mean of the changes at positions ``1..w`` (summed in order, so the seed does not
    depend on the matrix shape), then one ``scipy.signal.lfilter`` call runs it down every
    row at once: the filter is causal, so trailing padding never reaches a real position.

    Returns:
        RSI in [0, 100] from position ``w``; NaN before, and where gains and losses are both 0.
    """
    moves = change[:, 1:]
    return _rsi(np.maximum(moves, 0.0), np.maximum(-moves, 0.0), w)


def _rsi(gains: np.ndarray, losses: np.ndarray, w: int) -> np.ndarray:
    """RSI from gains and losses, ``gains[:, j - 1]`` being the gain into position ``j``."""
    n_rows, length = gains.shape[0], gains.shape[1] + 1
    out = np.full((n_rows, length), np.nan)
    if length <= w:
        return out
    gain, loss = _wilder_average(gains, w), _wilder_average(losses, w)
    total = gain + loss
    gain *= 100.0
    # Gains and losses are >= 0, so a zero total means 0 / 0: NaN, which becomes null.
    with np.errstate(invalid="ignore"):
        np.divide(gain, total, out=out[:, w:])
    return out


def _wilder_average(moves: np.ndarray, w: int) -> np.ndarray:
    """Wilder's average at positions ``w..`` of moves indexed as in :func:`_rsi`."""
    from scipy.signal import lfilter

    alpha = 1.0 / w
    seed = moves[:, 0].copy()
    for k in range(1, w):
        seed += moves[:, k]
    seed /= w
    average = np.empty((moves.shape[0], moves.shape[1] + 1 - w))
    average[:, 0] = seed
    if average.shape[1] > 1:
        average[:, 1:], _ = lfilter(
            [alpha], [1.0, alpha - 1.0], moves[:, w:], axis=1, zi=((1.0 - alpha) * seed)[:, None]
        )
    return average


def _lagged_ratio(p: np.ndarray, lead: int, lag: int) -> np.ndarray:
    """``p[:, i - lead] / p[:, i - lag]`` for ``i >= lag`` (``lead < lag``), NaN before."""
    length = p.shape[1]
    out = np.empty(p.shape)
    out[:, :lag] = np.nan
    if length > lag:
        np.divide(p[:, lag - lead : length - lead], p[:, : length - lag], out=out[:, lag:])
    return out


class _Panel:
    """Shared intermediates of one block's features, built on first use.

    Arithmetic runs in place only in the expressions' order of operations (same IEEE results).
    """

    def __init__(self, price: np.ndarray, volume: np.ndarray | None) -> None:
        self.price = price
        self.volume = volume
        self._log_returns: np.ndarray | None = None
        self._log_volume: np.ndarray | None = None
        self._moves: tuple[np.ndarray, np.ndarray] | None = None

    def log_returns(self) -> np.ndarray:
        if self._log_returns is None:
            p = self.price
            log_ret = np.zeros(p.shape)
            # like the expressions: the log of the ratio, not a difference of logs
            np.divide(p[:, 1:], p[:, :-1], out=log_ret[:, 1:])
            np.log(log_ret[:, 1:], out=log_ret[:, 1:])  # position 0 is in no full window
            self._log_returns = log_ret
        return self._log_returns

    def log_volume(self) -> np.ndarray:
        if self._log_volume is None:
            assert self.volume is not None, "volz needs the volume column"
            # volumes of zero are floored at one share before the logarithm
            log_v = np.maximum(self.volume, 1.0)
            np.log(log_v, out=log_v)
            self._log_volume = log_v
        return self._log_volume

    def moves(self) -> tuple[np.ndarray, np.ndarray]:
        """Gains and losses of the price, shared by every RSI window."""
        if self._moves is None:
            change = self.price[:, 1:] - self.price[:, :-1]
            self._moves = (np.maximum(change, 0.0), np.maximum(-change, 0.0))
        return self._moves

    def feature(self, spec: FeatureSpec) -> np.ndarray:
        """The feature as a matrix, NaN where the expression gives null."""
        p, w = self.price, spec.window
        if spec.family in ("ret", "mom"):
            out = _lagged_ratio(p, spec.skip, w)
            out -= 1.0
        elif spec.family == "rev":
            out = _lagged_ratio(p, 0, w)
            np.subtract(1.0, out, out=out)
        elif spec.family == "rvol":
            _, out = rolling_moments(self.log_returns(), w, mean=False)
            np.sqrt(out, out=out)
            out *= math.sqrt(TRADING_DAYS_PER_YEAR)
        elif spec.family == "ma_dist":
            out = rolling_mean(p, w)
            np.divide(p, out, out=out)
            out -= 1.0
        elif spec.family == "volz":
            out = self._volume_zscore(w)
        elif spec.family == "rsi":
            out = _rsi(*self.moves(), w)
        else:
            raise ValueError(f"unknown feature family {spec.family!r}")
        out[:, : spec.warmup] = np.nan
        return out

    def _volume_zscore(self, w: int) -> np.ndarray:
        log_v = self.log_volume()
        out = np.full(log_v.shape, np.nan)
        if log_v.shape[1] <= w:
            return out
        mean, var = rolling_moments(log_v, w)
        assert mean is not None
        # statistics of the w sessions before t: the window ending at t - 1
        mean, std = mean[:, w - 1 : -1], np.sqrt(var[:, w - 1 : -1])
        z = log_v[:, w:] - mean
        with np.errstate(invalid="ignore", divide="ignore"):
            z /= std
        # a window without dispersion has no z-score (std is exactly 0 when it is constant)
        z[~(std > REL_EPS * np.abs(mean))] = np.nan
        out[:, w:] = z
        return out


def dense_features(
    price: np.ndarray,
    volume: np.ndarray | None,
    layout: PanelLayout,
    specs: Iterable[FeatureSpec],
) -> dict[str, np.ndarray]:
    """Compute features for every row of a ``(symbol, date)``-sorted frame.

    Args:
        price: The price column in row order (finite and positive, as checked by the caller).
        volume: The volume column in row order (finite, >= 0); only needed for ``volz``.
        layout: :meth:`PanelLayout.from_symbols` of the frame's symbol column.
        specs: Parsed features (:class:`~quantdesk.quant_core.features.FeatureDef`).

    Returns:
        Feature name -> float64 values in row order, NaN where the feature is null (warm-up
        rows and undefined values), in the order of ``specs``.
    """
    specs = list(specs)

    def kernel(matrices: list[np.ndarray | None]) -> dict[str, np.ndarray]:
        price_matrix, volume_matrix = matrices
        assert price_matrix is not None
        panel = _Panel(price_matrix, volume_matrix)
        return {spec.name: panel.feature(spec) for spec in specs}

    return layout.map([price, volume], kernel)
