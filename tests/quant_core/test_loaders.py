from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from quantdesk.quant_core.errors import DataError, InputError, SchemaError
from quantdesk.quant_core.loaders import load_prices
from quantdesk.quant_core.schema import canonical_schema, require_canonical

DATES = ["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07"]


def yahoo_csv(path: Path, closes: list[float], *, splits: list[float] | None = None) -> Path:
    """A per-ticker CSV the way yfinance writes it (no symbol column, 0 = no split)."""
    n = len(closes)
    pl.DataFrame(
        {
            "Date": DATES[:n],
            "Open": closes,
            "High": [c + 1 for c in closes],
            "Low": [c - 1 for c in closes],
            "Close": closes,
            "Adj Close": [c / 2 for c in closes],
            "Volume": [1000 * (i + 1) for i in range(n)],
            "Dividends": [0.0] * n,
            "Stock Splits": splits if splits is not None else [0.0] * n,
        }
    ).write_csv(path)
    return path


def long_parquet(path: Path) -> Path:
    """A long parquet file like the shared ones: ticker column, datetime dates, int volume."""
    pl.DataFrame(
        {
            "ticker": ["MSFT", "AAPL", "MSFT", "AAPL", "AAPL"],
            "date": [datetime(2020, 1, d) for d in (3, 3, 2, 2, 6)],
            "open": [10.0, 20.0, 11.0, 21.0, 22.0],
            "high": [12.0, 22.0, 12.0, 22.0, 23.0],
            "low": [9.0, 19.0, 10.0, 20.0, 21.0],
            "close": [11.0, 21.0, 11.5, 21.5, 22.5],
            "volume": [1, 2, 3, 4, 5],
        }
    ).write_parquet(path)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    yahoo_csv(tmp_path / "AAPL.csv", [100.0, 101.0, 102.0, 103.0], splits=[0.0, 0.0, 4.0, 0.0])
    yahoo_csv(tmp_path / "MSFT.csv", [50.0, 51.0, 52.0])
    (tmp_path / "README.md").write_text("not data")
    return tmp_path


def test_folder_of_yahoo_csvs_loads_canonically(folder: Path) -> None:
    frame = load_prices(folder)
    require_canonical(frame)
    assert frame.schema == canonical_schema(optional=["adj_close", "dividend", "split_factor"])
    assert frame["symbol"].to_list() == ["AAPL"] * 4 + ["MSFT"] * 3
    # yfinance's "0 = no split" becomes 1; the real split stays.
    assert frame.filter(pl.col("symbol") == "AAPL")["split_factor"].to_list() == [1, 1, 4, 1]
    assert frame["volume"].dtype == pl.Float64
    assert frame["adj_close"][0] == 50.0


def test_long_parquet_is_sorted_and_cast(tmp_path: Path) -> None:
    frame = load_prices(long_parquet(tmp_path / "px.parquet"))
    expected = pl.DataFrame(
        {
            "date": [date(2020, 1, d) for d in (2, 3, 6, 2, 3)],
            "symbol": ["AAPL", "AAPL", "AAPL", "MSFT", "MSFT"],
            "open": [21.0, 20.0, 22.0, 11.0, 10.0],
            "high": [22.0, 22.0, 23.0, 12.0, 12.0],
            "low": [20.0, 19.0, 21.0, 10.0, 9.0],
            "close": [21.5, 21.0, 22.5, 11.5, 11.0],
            "volume": [4.0, 2.0, 5.0, 3.0, 1.0],
        },
        schema=canonical_schema(),
    )
    assert_frame_equal(frame, expected)


@pytest.mark.parametrize(
    "text",
    ["2020-01-02", "20200102", "2020/01/02", "01/02/2020", "2020-01-02 00:00:00-05:00"],
)
def test_date_formats(tmp_path: Path, text: str) -> None:
    path = tmp_path / "X.csv"
    path.write_text(f"date,open,high,low,close,volume\n{text},1,2,0.5,1.5,10\n")
    assert load_prices(path)["date"].to_list() == [date(2020, 1, 2)]


def test_single_file_symbol_defaults_to_stem_or_argument(tmp_path: Path) -> None:
    path = yahoo_csv(tmp_path / "SPY.csv", [1.0, 2.0])
    assert load_prices(path)["symbol"].unique().to_list() == ["SPY"]
    assert load_prices(path, symbol="IVV")["symbol"].unique().to_list() == ["IVV"]


def test_symbol_argument_refused_when_source_has_symbols(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="symbol='AAPL'"):
        load_prices(long_parquet(tmp_path / "px.parquet"), symbol="AAPL")


def test_explicit_mapping_overrides_aliases(tmp_path: Path) -> None:
    path = yahoo_csv(tmp_path / "AAPL.csv", [100.0, 102.0])
    frame = load_prices(path, columns={"Adj Close": "close"})
    # The explicit mapping wins; the file's own Close is dropped, not duplicated.
    assert frame["close"].to_list() == [50.0, 51.0]
    assert "adj_close" not in frame.columns


def test_custom_names_need_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "px.csv"
    path.write_text("when,sym,o,h,l,px,qty\n2020-01-02,A,1,2,0.5,1.5,3\n")
    with pytest.raises(SchemaError, match="lacks column"):
        load_prices(path)
    mapping = {"when": "date", "sym": "symbol", "o": "open", "h": "high", "l": "low"}
    frame = load_prices(path, columns={**mapping, "px": "close", "qty": "volume"})
    assert frame.row(0) == (date(2020, 1, 2), "A", 1.0, 2.0, 0.5, 1.5, 3.0)


def test_duplicates_are_kept_for_validation(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    rows = ["2020-01-03,A,1,2,0.5,1.5,3", "2020-01-02,A,1,2,0.5,1.5,3"]
    path.write_text("date,symbol,open,high,low,close,volume\n" + "\n".join(rows * 2) + "\n")
    frame = load_prices(path)
    assert frame.height == 4
    assert frame["date"].is_sorted()


def test_symbols_start_and_as_of(folder: Path) -> None:
    frame = load_prices(folder, symbols="AAPL", start="2020-01-03", as_of=date(2020, 1, 6))
    assert frame["symbol"].unique().to_list() == ["AAPL"]
    assert frame["date"].to_list() == [date(2020, 1, 3), date(2020, 1, 6)]


@pytest.fixture(scope="module")
def panel_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("panel") / "panel.parquet"
    days = pl.date_range(date(2020, 1, 1), date(2020, 3, 31), eager=True)
    pl.DataFrame(
        {
            "Date": pl.concat([days, days]),
            "Symbol": ["A"] * days.len() + ["B"] * days.len(),
            "Open": 1.0,
            "High": 2.0,
            "Low": 0.5,
            "Close": 1.5,
            "Volume": 7,
        }
    ).write_parquet(path)
    return path


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(cut=st.dates(min_value=date(2020, 1, 1), max_value=date(2020, 6, 30)))
def test_as_of_never_returns_later_rows(panel_file: Path, cut: date) -> None:
    full = load_prices(panel_file)
    frame = load_prices(panel_file, as_of=cut)
    assert frame["date"].max() <= cut
    assert_frame_equal(frame, full.filter(pl.col("date") <= cut))


def test_unknown_symbols_are_named(folder: Path) -> None:
    with pytest.raises(InputError, match=r"\['NOPE'\].*'AAPL', 'MSFT'"):
        load_prices(folder, symbols=["AAPL", "NOPE"])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"as_of": "31/12/2020"}, InputError, "not an ISO date"),
        ({"as_of": 20201231}, InputError, "as_of must be"),
        ({"start": "2020-02-01", "as_of": "2020-01-01"}, InputError, "after as_of"),
        ({"as_of": "1999-01-01"}, DataError, "No rows left"),
        ({"symbols": []}, InputError, "non-empty"),
        ({"columns": {"Close": "price"}}, InputError, "unknown canonical"),
        ({"columns": {"Px": "close"}}, InputError, "lacks"),
    ],
)
def test_bad_arguments(folder: Path, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        load_prices(folder, **kwargs)


def test_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_prices(tmp_path / "missing.parquet")
    (tmp_path / "prices.xlsx").write_text("x")
    with pytest.raises(InputError, match="Unsupported"):
        load_prices(tmp_path / "prices.xlsx")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no"):
        load_prices(empty)
    (tmp_path / "broken.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="Could not read"):
        load_prices(tmp_path / "broken.parquet")


@pytest.mark.parametrize(
    ("body", "error", "match"),
    [
        ("2020-13-45,1,2,0.5,1.5,3\n", DataError, "could not be parsed"),
        ("", DataError, "has no rows"),
        ("2020-01-02,1,2,0.5,n/a,3\n", DataError, "non-numeric"),
    ],
)
def test_bad_contents(tmp_path: Path, body: str, error: type, match: str) -> None:
    path = tmp_path / "X.csv"
    path.write_text("date,open,high,low,close,volume\n" + body)
    with pytest.raises(error, match=match):
        load_prices(path)


def test_ambiguous_columns(tmp_path: Path) -> None:
    path = tmp_path / "X.csv"
    path.write_text("date,ticker,symbol,open,high,low,close,volume\n2020-01-02,A,A,1,2,0.5,1,3\n")
    with pytest.raises(InputError, match="several columns"):
        load_prices(path)


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("name", "n_symbols", "optional"),
    [
        ("alphavantage_raw_adj_1999_2020", 53, ["adj_close", "dividend", "split_factor"]),
        ("yfinance_adjusted_ohlcv_2005_2024", 41, []),
        ("yfinance_raw_and_adjclose_etfs_2005_2024", 21, ["adj_close"]),
    ],
)
def test_shared_files_load_in_one_call(
    shared_data: Path, name: str, n_symbols: int, optional: list[str]
) -> None:
    frame = load_prices(shared_data / "prices" / f"{name}.parquet")
    require_canonical(frame)
    assert frame.schema == canonical_schema(optional=optional)
    assert frame["symbol"].n_unique() == n_symbols


@pytest.mark.realdata
def test_alpha_vantage_corporate_actions_survive(shared_data: Path) -> None:
    path = shared_data / "prices" / "alphavantage_raw_adj_1999_2020.parquet"
    frame = load_prices(path, symbols=["AAPL"], as_of="2020-12-31")
    splits = frame.filter(pl.col("split_factor") != 1.0)
    assert splits["date"].to_list() == [
        date(2000, 6, 21),
        date(2005, 2, 28),
        date(2014, 6, 9),
        date(2020, 8, 31),
    ]
    assert frame["dividend"].gt(0).sum() == 34
