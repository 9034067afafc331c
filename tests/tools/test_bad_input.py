"""Bad requests come back as ``bad_input`` naming the field and the fix, never a traceback."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from quantdesk.quant_core import demo_universe
from quantdesk.tools import MAX_PAYLOAD_BYTES, allowed_data_dirs, run_tool


def test_unknown_tool_lists_the_known_ones(tools) -> None:
    env = run_tool("train_everything", {})
    message = tools.bad_input(env, "tool")
    assert "train_everything" in message
    assert "walk_forward_cv" in env.error.fix


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ("{not json", "Malformed JSON at line 1 column 2"),
        ('{"as_of": "2019-12-31",}', "Malformed JSON"),
        ("[1, 2]", "JSON list"),
        ('"text"', "JSON str"),
        ('{"stats": {"sharpe": NaN, "n_obs": 10}}', "NaN"),
        ('{"stats": {"sharpe": Infinity, "n_obs": 10}}', "Infinity"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (b"\xff\xfe{}", "not UTF-8"),
        (12, "int"),
    ],
)
def test_malformed_requests(tools, payload: object, needle: str) -> None:
    message = tools.bad_input(run_tool("deflated_sharpe", payload))
    assert needle in message


def test_oversized_request(tools) -> None:
    big = '{"returns": [' + ",".join(["0.001"] * 200_000) + "]}"
    assert len(big) > MAX_PAYLOAD_BYTES
    message = tools.bad_input(run_tool("deflated_sharpe", big))
    assert "limit is 1,000,000" in message


def test_list_length_is_capped(tools) -> None:
    symbols = [f"S{i}" for i in range(2001)]
    env = run_tool("fetch_prices", {"source": {**tools.SMALL, "symbols": symbols}})
    message = tools.bad_input(env, "source.symbols")
    assert "at most 2000" in message


@pytest.mark.parametrize(
    ("payload", "field", "needle"),
    [
        ({"as_of": "2019-12-31"}, "source", "required field missing"),
        ({"source": {"kind": "demo"}, "as_of": "2019-12-31", "colour": 1}, "colour", "unknown"),
        ({"source": {"kind": "demo", "sede": 3}, "as_of": "2019-12-31"}, "source.sede", "unknown"),
        ({"source": {"kind": "ftp"}, "as_of": "2019-12-31"}, "source", "'file', 'demo'"),
        ({"source": {"kind": "file"}, "as_of": "2019-12-31"}, "source.path", "missing"),
        (
            {"source": {"kind": "demo", "seed": "7"}, "as_of": "2019-12-31"},
            "source.seed",
            "integer",
        ),
        ({"source": {"kind": "demo", "seed": True}}, "source.seed", "integer"),
        ({"source": {"kind": "demo"}, "as_of": "31/12/2019"}, "as_of", "YYYY-MM-DD"),
        ({"source": {"kind": "demo"}, "as_of": "2019-02-30"}, "as_of", "calendar date"),
        ({"source": {"kind": "demo"}, "as_of": 20191231}, "as_of", "YYYY-MM-DD"),
        ({"source": {"kind": "demo"}, "as_of": "2019-12-31T00:00:00"}, "as_of", "YYYY-MM-DD"),
        ({"source": {"kind": "demo", "start": "0001-01-01"}}, "source.start", "1900"),
        ({"source": {"kind": "demo", "symbols": ["A B"]}}, "source.symbols.0", "pattern"),
        ({"source": {"kind": "demo"}, "preview_rows": 51}, "preview_rows", "50"),
    ],
)
def test_field_errors_name_the_field(tools, payload: dict, field: str, needle: str) -> None:
    message = tools.bad_input(run_tool("fetch_prices", payload), field)
    assert needle in message
    assert "fetch_prices" in message


def test_every_problem_is_listed_with_a_fix(tools) -> None:
    env = run_tool("walk_forward_cv", {"source": {"kind": "demo"}, "cv": {"n_splits": 1}, "x": 1})
    message = tools.bad_input(env)
    assert "cv.n_splits" in message
    assert "x: unknown field" in message
    assert "remove 'x'" in env.error.fix
    assert "tool_schema('walk_forward_cv')" in env.error.fix


def test_research_tools_need_as_of(tools) -> None:
    message = tools.bad_input(run_tool("validate_data", {"source": tools.SMALL}), "as_of")
    assert "as_of is required" in message


def test_mapping_payload_may_hold_dates(tools) -> None:
    env = run_tool("fetch_prices", {"source": tools.SMALL, "as_of": date(2016, 6, 30)})
    assert tools.ok(env).last_date <= date(2016, 6, 30)


def test_unknown_context(tools) -> None:
    env = run_tool("list_trials", {"context": "nobody-made-this"})
    message = tools.bad_input(env, "context")
    assert "nobody-made-this" in message


def test_unknown_demo_symbol(tools) -> None:
    env = run_tool("fetch_prices", {"source": {**tools.SMALL, "symbols": ["AAPL"]}})
    assert "AAPL" in tools.bad_input(env, "source.symbols")


def test_bad_feature_name_names_its_position(tools) -> None:
    env = run_tool(
        "compute_features",
        {"source": tools.SMALL, "as_of": tools.AS_OF, "features": {"names": ["ret_5", "beta_9"]}},
    )
    assert "beta_9" in tools.bad_input(env, "features.names.1")


def test_bad_model_params(tools) -> None:
    env = run_tool(
        "walk_forward_cv",
        {"source": tools.SMALL, "as_of": tools.AS_OF, "model": {"params": {"seed": 1}}},
    )
    assert "seed" in tools.bad_input(env, "model.params")


# --------------------------------------------------------------------------- paths


def _write_prices(path: Path) -> None:
    frame = demo_universe(3, n_symbols=4, n_sessions=300).prices
    frame.write_parquet(path)


@pytest.mark.parametrize(
    "raw",
    ["../secret.parquet", "prices/../../secret.parquet", "/etc/passwd", "~/secret.parquet"],
)
def test_paths_outside_the_data_dirs_are_refused(tools, data_dir: Path, raw: str) -> None:
    _write_prices(data_dir.parent / "secret.parquet")
    env = run_tool("fetch_prices", {"source": {"kind": "file", "path": raw}})
    message = tools.bad_input(env, "source.path")
    assert "outside the allowed data directories" in message
    assert "QUANTDESK_DATA_DIRS" in env.error.fix


def test_symlink_out_of_the_data_dir_is_refused(tools, data_dir: Path) -> None:
    secret = data_dir.parent / "secret.parquet"
    _write_prices(secret)
    (data_dir / "link.parquet").symlink_to(secret)
    env = run_tool("fetch_prices", {"source": {"kind": "file", "path": "link.parquet"}})
    assert "outside" in tools.bad_input(env, "source.path")


def test_symlink_inside_a_folder_is_refused(tools, data_dir: Path) -> None:
    secret = data_dir.parent / "secret.parquet"
    _write_prices(secret)
    (data_dir / "folder").mkdir()
    (data_dir / "folder" / "AAA.parquet").symlink_to(secret)
    env = run_tool("fetch_prices", {"source": {"kind": "file", "path": "folder"}})
    assert "link to a file outside" in tools.bad_input(env, "source.path")


def test_missing_file_and_bad_suffix(tools, data_dir: Path) -> None:
    assert "No file or folder" in tools.bad_input(
        run_tool("fetch_prices", {"source": {"kind": "file", "path": "nope.parquet"}}),
        "source.path",
    )
    (data_dir / "notes.txt").write_text("hello")
    assert ".txt" in tools.bad_input(
        run_tool("fetch_prices", {"source": {"kind": "file", "path": "notes.txt"}}),
        "source.path",
    )
    assert "NUL" in tools.bad_input(
        run_tool("fetch_prices", {"source": {"kind": "file", "path": "a\u0000b"}}),
        "source.path",
    )


def test_files_inside_the_data_dir_load(tools, data_dir: Path) -> None:
    (data_dir / "prices").mkdir()
    _write_prices(data_dir / "prices" / "demo.parquet")
    relative = tools.call(
        "fetch_prices", {"source": {"kind": "file", "path": "prices/demo.parquet"}}
    )
    absolute = tools.call(
        "fetch_prices",
        {"source": {"kind": "file", "path": str(data_dir / "prices" / "demo.parquet")}},
    )
    assert tools.ok(relative).data_hash == tools.ok(absolute).data_hash
    assert tools.ok(relative).n_symbols == 4


def test_unreadable_file_is_bad_input(tools, data_dir: Path) -> None:
    (data_dir / "broken.csv").write_text("date,close\n2020-01-01,abc\n")
    env = run_tool("fetch_prices", {"source": {"kind": "file", "path": "broken.csv"}})
    tools.bad_input(env)


def test_data_dirs_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QUANTDESK_DATA_DIRS", os.pathsep.join([str(tmp_path), str(tmp_path)]))
    assert allowed_data_dirs() == (tmp_path.resolve(),)
    monkeypatch.delenv("QUANTDESK_DATA_DIRS")
    (tmp_path / "shared").mkdir()
    monkeypatch.setenv("QUANTDESK_SHARED_DATA", str(tmp_path / "shared"))
    assert allowed_data_dirs() == ((tmp_path / "shared").resolve(), Path("data").resolve())
    # a shared folder that does not exist is not offered
    monkeypatch.setenv("QUANTDESK_SHARED_DATA", str(tmp_path / "absent"))
    assert allowed_data_dirs() == (Path("data").resolve(),)


def test_file_source_keeps_its_columns_mapping(tools, data_dir: Path) -> None:
    frame = demo_universe(3, n_symbols=3, n_sessions=300).prices.rename({"close": "Last"})
    frame.write_csv(data_dir / "renamed.csv")
    env = run_tool(
        "fetch_prices",
        {"source": {"kind": "file", "path": "renamed.csv", "columns": {"Last": "close"}}},
    )
    assert "close" in tools.ok(env).columns
    assert isinstance(pl.read_csv(data_dir / "renamed.csv"), pl.DataFrame)
