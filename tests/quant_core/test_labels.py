"""Tests of quant_core.labels: golden values per kind, intervals, triple barrier, errors."""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quantdesk.quant_core.errors import DataError, InputError, InsufficientDataError
from quantdesk.quant_core.labels import LabelSpec, forward_return, labels_from_spec, make_labels

START = date(2021, 1, 4)
HAND_PRICES = [100.0, 110.0, 99.0, 99.0, 108.9]


def random_panel(
    rng: np.random.Generator, n_symbols: int = 2, n_days: int = 30, *, adj: bool = False
) -> pl.DataFrame:
    """A canonical frame of random walks with consistent OHLC and positive volumes."""
    parts = []
    for s in range(n_symbols):
        close = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n_days)))
        cols = {
            "date": [START + timedelta(days=i) for i in range(n_days)],
            "symbol": f"S{s}",
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": np.round(rng.lognormal(13.0, 0.5, n_days)),
        }
        if adj:
            cols["adj_close"] = close * np.cumprod(rng.uniform(0.99, 1.0, n_days))[::-1]
        parts.append(pl.DataFrame(cols))
    return pl.concat(parts).with_columns(pl.col("date").cast(pl.Date))


def hand_frame(prices: list[float]) -> pl.DataFrame:
    n = len(prices)
    return pl.DataFrame(
        {
            "date": [START + timedelta(days=i) for i in range(n)],
            "symbol": "A",
            "open": prices,
            "high": prices,
            "low": prices,
            "close": prices,
            "volume": [1e6] * n,
        }
    ).with_columns(pl.col("date").cast(pl.Date))


# ------------------------------------------------------------------------ hand-made goldens


@pytest.mark.parametrize(
    ("kind", "kwargs", "labels"),
    [
        ("forward_return", {}, [-0.01, -0.1, 0.1]),
        ("binary", {}, [0, 0, 1]),
        ("binary", {"threshold": -0.05}, [1, 0, 1]),
        ("ternary", {"threshold": 0.05}, [0, -1, 1]),
        ("ternary", {"threshold": 0.2}, [0, 0, 0]),
    ],
)
def test_fixed_horizon_golden(kind: str, kwargs: dict, labels: list[float]) -> None:
    frame = hand_frame(HAND_PRICES)
    out = make_labels(frame, kind, horizon=2, **kwargs)
    dates = frame["date"]
    expected = pl.DataFrame(
        {
            "date": dates[:3],
            "symbol": ["A"] * 3,
            "t0": dates[:3],
            "t1": dates[2:],
            "label": pl.Series(labels, dtype=pl.Float64 if kind == "forward_return" else pl.Int64),
            "ret": [-0.01, -0.1, 0.1],
        }
    )
    assert_frame_equal(out, expected)


def test_forward_return_shorthand(rng: np.random.Generator) -> None:
    frame = random_panel(rng)
    assert_frame_equal(forward_return(frame, 3), make_labels(frame, horizon=3))


# ------------------------------------------------------------- independent numpy references


def sigma_ref(p: np.ndarray, window: int) -> np.ndarray:
    r = p[1:] / p[:-1] - 1.0
    out = np.full(p.size, np.nan)
    for i in range(window, p.size):
        out[i] = np.std(r[i - window : i], ddof=1)
    return out


def reference_labels(p: np.ndarray, spec: LabelSpec) -> list[tuple[int, int, float, float, str]]:
    """Row-by-row reference: (row, offset of t1, label, ret, barrier) per labelled row."""
    h = spec.horizon
    sigma = sigma_ref(p, spec.vol_window)
    rows = []
    for i in range(p.size - h):
        path = p[i + 1 : i + h + 1] / p[i] - 1.0
        if spec.kind == "forward_return":
            rows.append((i, h, path[-1], path[-1], ""))
            continue
        scale = sigma[i] * math.sqrt(h)
        if spec.uses_volatility and not scale > 0:
            continue
        if spec.kind in ("binary", "ternary"):
            thr = spec.threshold * scale if spec.vol_scaled else spec.threshold
            ret = path[-1]
            if spec.kind == "binary":
                lab = float(ret > thr)
            else:
                lab = 1.0 if ret > thr else (-1.0 if ret < -thr else 0.0)
            rows.append((i, h, lab, ret, ""))
            continue
        up = spec.pt_mult * scale if spec.pt_mult else math.inf
        down = -spec.sl_mult * scale if spec.sl_mult else -math.inf
        for k, r in enumerate(path, start=1):
            if r >= up:
                rows.append((i, k, 1.0, r, "pt"))
                break
            if r <= down:
                rows.append((i, k, -1.0, r, "sl"))
                break
        else:
            lab = float(np.sign(path[-1])) if spec.vertical == "sign" else 0.0
            rows.append((i, h, lab, path[-1], "vertical"))
    return rows


SPECS = [
    LabelSpec(kind="forward_return", horizon=4),
    LabelSpec(kind="binary", horizon=3, threshold=0.01),
    LabelSpec(kind="ternary", horizon=5, threshold=0.02),
    LabelSpec(kind="ternary", horizon=5, threshold=0.5, vol_scaled=True, vol_window=6),
    LabelSpec(kind="binary", horizon=2, threshold=0.3, vol_scaled=True, vol_window=4),
    LabelSpec(kind="triple_barrier", horizon=6, pt_mult=1.0, sl_mult=1.0, vol_window=5),
    LabelSpec(kind="triple_barrier", horizon=8, pt_mult=0.5, sl_mult=2.0, vol_window=10),
    LabelSpec(kind="triple_barrier", horizon=5, pt_mult=None, sl_mult=0.7, vertical="zero"),
    LabelSpec(kind="triple_barrier", horizon=5, pt_mult=0.3, sl_mult=None),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.kind}-h{s.horizon}")
@pytest.mark.parametrize("adj", [False, True])
def test_labels_match_row_by_row_reference(
    rng: np.random.Generator, spec: LabelSpec, adj: bool
) -> None:
    frame = random_panel(rng, n_symbols=2, n_days=40, adj=adj)
    out = labels_from_spec(frame, spec)
    price = "adj_close" if adj else "close"
    for symbol in ("S0", "S1"):
        part = frame.filter(pl.col("symbol") == symbol)
        got = out.filter(pl.col("symbol") == symbol)
        ref = reference_labels(part[price].to_numpy(), spec)
        assert got.height == len(ref)
        dates = part["date"]
        assert got["date"].to_list() == [dates[i] for i, *_ in ref]
        assert got["t1"].to_list() == [dates[i + k] for i, k, *_ in ref]
        np.testing.assert_allclose(got["label"].to_numpy(), [r[2] for r in ref], rtol=1e-12)
        np.testing.assert_allclose(got["ret"].to_numpy(), [r[3] for r in ref], rtol=1e-12)
        if spec.kind == "triple_barrier":
            assert got["barrier"].to_list() == [r[4] for r in ref]
    assert set(out["label"].unique().to_list()) <= (
        {-1, 0, 1} if spec.kind != "forward_return" else set(out["label"].to_list())
    )


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.kind}-h{s.horizon}")
def test_intervals_and_layout(rng: np.random.Generator, spec: LabelSpec) -> None:
    frame = random_panel(rng, n_symbols=3, n_days=35)
    out = labels_from_spec(frame, spec)
    extra = ["barrier"] if spec.kind == "triple_barrier" else []
    assert out.columns == ["date", "symbol", "t0", "t1", "label", "ret", *extra]
    assert out.schema["t0"] == pl.Date
    assert out.schema["t1"] == pl.Date
    assert (out["t0"] == out["date"]).all()
    assert (out["t1"] > out["t0"]).all()
    assert_frame_equal(out, out.sort("symbol", "date"))
    # No label may reach past its horizon: t1 is at most h sessions after t0.
    pos = frame.with_columns(pl.int_range(pl.len()).over("symbol").alias("pos"))
    t0_pos = out.join(pos, on=["symbol", "date"])["pos"]
    t1_pos = out.join(pos, left_on=["symbol", "t1"], right_on=["symbol", "date"])["pos"]
    assert ((t1_pos - t0_pos) <= spec.horizon).all()
    per_symbol = 35 - spec.horizon - (spec.vol_window if spec.uses_volatility else 0)
    assert out.height == 3 * per_symbol


def test_triple_barrier_without_barriers_is_forward_sign(rng: np.random.Generator) -> None:
    frame = random_panel(rng)
    tb = make_labels(frame, "triple_barrier", horizon=4, pt_mult=None, sl_mult=None, vol_window=3)
    fwd = make_labels(frame, horizon=4).filter(pl.col("date").is_in(tb["date"].implode()))
    assert (tb["barrier"] == "vertical").all()
    assert_frame_equal(
        tb.select("date", "symbol", "t1", "ret"), fwd.select("date", "symbol", "t1", "ret")
    )
    assert (tb["label"] == fwd["ret"].sign().cast(pl.Int64)).all()


def test_triple_barrier_tiny_barriers_touch_next_session(rng: np.random.Generator) -> None:
    frame = random_panel(rng)
    out = make_labels(frame, "triple_barrier", horizon=5, pt_mult=1e-9, sl_mult=1e-9)
    nxt = make_labels(frame, horizon=1).join(out.select("date", "symbol"), on=["date", "symbol"])
    assert_frame_equal(out.select("t1", "ret"), nxt.select("t1", "ret"))
    assert (out["label"] == nxt["ret"].sign().cast(pl.Int64)).all()


def test_triple_barrier_hand_path() -> None:
    # An alternating history gives sigma*sqrt(3) of about 2%: the +0.5% move at row 5 stays
    # inside the barriers and the +3% at row 6 touches the upper one.
    prices = [100.0, 101.0, 100.0, 101.0, 100.0, 100.5, 103.0, 90.0, 100.0]
    frame = hand_frame(prices)
    out = make_labels(frame, "triple_barrier", horizon=3, vol_window=4, pt_mult=1.0, sl_mult=1.0)
    sigma = np.std(np.diff(prices[:5]) / prices[:4], ddof=1)
    assert out["barrier"].to_list()[0] == "pt"
    assert out.item(0, "t1") == frame.item(6, "date")
    assert out.item(0, "ret") == pytest.approx(0.03)
    assert 0.005 < sigma * math.sqrt(3) < 0.03


# ---------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"horizon": 0}, "horizon=0"),
        ({"horizon": -2}, "horizon=-2"),
        ({"kind": "quaternary"}, "kind='quaternary'"),
        ({"kind": "ternary", "threshold": -0.1}, "threshold >= 0"),
        ({"kind": "triple_barrier", "pt_mult": 0.0}, "pt_mult=0.0"),
        ({"threshold": float("nan")}, "threshold=nan"),
        ({"vol_window": 1}, "vol_window=1"),
        ({"vertical": "up"}, "vertical='up'"),
    ],
)
def test_invalid_settings(rng: np.random.Generator, kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        make_labels(random_panel(rng), **kwargs)


def test_label_spec_forbids_extra_fields() -> None:
    with pytest.raises(ValueError, match="extra"):
        LabelSpec(kind="binary", horizn=5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"horizon": 30}, "horizon=30 needs at least 31 sessions.*longest symbol has 30"),
        ({"horizon": 29}, None),
        ({"kind": "triple_barrier", "horizon": 10, "vol_window": 20}, "vol_window=20"),
        ({"kind": "ternary", "vol_scaled": True, "horizon": 25, "vol_window": 5}, "horizon <= 24"),
    ],
)
def test_horizon_too_long(rng: np.random.Generator, kwargs: dict, match: str | None) -> None:
    frame = random_panel(rng, n_days=30)
    if match is None:
        assert make_labels(frame, **kwargs).height == 2
        return
    with pytest.raises(InsufficientDataError, match=match):
        make_labels(frame, **kwargs)


def test_bad_frames_and_prices(rng: np.random.Generator) -> None:
    frame = random_panel(rng, adj=True)
    with pytest.raises(DataError, match="not sorted"):
        make_labels(frame.sort("date"))
    with pytest.raises(DataError, match="as_of=2000-01-01"):
        make_labels(frame, as_of="2000-01-01")
    broken = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(None).otherwise("adj_close").alias("adj_close")
    )
    with pytest.raises(DataError, match="'adj_close'"):
        make_labels(broken)
    # A bad *close* does not matter when labels use adj_close.
    make_labels(frame.with_columns(pl.lit(-1.0).alias("close")))


def test_as_of_keeps_only_labels_known_by_then(rng: np.random.Generator) -> None:
    frame = random_panel(rng, n_days=40)
    cut = START + timedelta(days=30)
    for kind in ("forward_return", "triple_barrier"):
        out = make_labels(frame, kind, horizon=4, vol_window=5, as_of=cut)
        assert out["t1"].max() <= cut
        cut_frame = frame.filter(pl.col("date") <= cut)
        assert_frame_equal(out, make_labels(cut_frame, kind, horizon=4, vol_window=5))


def _load_yfinance(folder: Path) -> pl.DataFrame:
    raw = pl.read_parquet(folder / "prices" / "yfinance_adjusted_ohlcv_2005_2024.parquet")
    return (
        raw.select(
            pl.col("date").cast(pl.Date),
            pl.col("ticker").alias("symbol"),
            *(pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close", "volume")),
        )
        .filter(pl.col("close") > 0)
        .sort("symbol", "date")
    )


@pytest.mark.realdata
def test_real_panel_labels(shared_data: Path) -> None:
    frame = _load_yfinance(shared_data)
    n_symbols = frame["symbol"].n_unique()
    fwd = make_labels(frame, horizon=21)
    assert fwd.height == frame.height - 21 * n_symbols
    assert fwd["ret"].is_finite().all()
    tb = make_labels(frame, "triple_barrier", horizon=10, pt_mult=2.0, sl_mult=1.0)
    assert set(tb["barrier"].unique().to_list()) == {"pt", "sl", "vertical"}
    assert (tb["t1"] > tb["t0"]).all()
    # Wider profit-taking than stop-loss barrier: fewer pt than sl touches on average.
    counts = dict(tb.group_by("barrier").len().iter_rows())
    assert counts["pt"] < counts["sl"]
