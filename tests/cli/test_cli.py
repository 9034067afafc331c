"""The command line: help, version, data commands, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from quantdesk import __version__
from quantdesk.cli.main import main
from quantdesk.quant_core.synthetic import demo_universe, noise_universe


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``quantdesk ARGS`` in-process; return (exit code, stdout, stderr)."""
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def small_prices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prices") / "demo.parquet"
    market = demo_universe(seed=3, n_symbols=12, n_sessions=400)
    market.prices.write_parquet(path)
    return path


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0
    assert out.strip() == f"quantdesk {__version__}"
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    for group in ("data", "model", "demo"):
        assert group in out
    for group in ("data", "model"):
        code, out, _ = run_cli([group, "--help"], capsys)
        assert code == 0
        assert "Usage" in out


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).with_name("quantdesk")
    result = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_data_load_prints_summary_and_writes(
    small_prices: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "cut.csv"
    code, out, err = run_cli(
        ["data", "load", str(small_prices), "--as-of", "2015-06-30", "--out", str(out_file)], capsys
    )
    assert code == 0, err
    assert "12 symbols" in out
    written = pl.read_csv(out_file, try_parse_dates=True)
    assert written["symbol"].n_unique() == 12
    assert written["date"].max() == date(2015, 6, 30)


def test_data_validate_clean_file_exits_zero(
    small_prices: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["data", "validate", str(small_prices)], capsys)
    assert code == 0, err
    assert out.strip()


def test_data_validate_exits_one_on_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = noise_universe(seed=3, n_symbols=5, n_sessions=300).prices.with_columns(
        pl.when(pl.int_range(pl.len()) == 10).then(-1.0).otherwise(pl.col("close")).alias("close")
    )
    path = tmp_path / "bad.parquet"
    bad.write_parquet(path)
    code, out, _ = run_cli(["data", "validate", str(path)], capsys)
    assert code == 1
    assert "non_positive_price" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["data", "load", "{prices}", "--symbols", "NOPE"], "NOPE"),
        (["data", "load", "{prices}", "--as-of", "31/12/2019"], "--as-of"),
        (["data", "load", "{prices}", "--column", "nonsense"], "--column"),
        (["data", "load", "{missing}"], "does not exist"),
        (["data", "load", "{prices}", "--out", "{tmp}/x.json"], ".json"),
        (["model", "train", "{prices}", "--label", "quartile"], "quartile"),
        (["model", "train", "{prices}", "--horizon", "0"], "--horizon"),
        (["model", "train", "{prices}", "--signal", "mom_bogus"], "mom_bogus"),
        (["nosuchcommand"], "nosuchcommand"),
    ],
)
def test_user_mistakes_give_one_line_and_exit_2(
    args: list[str],
    needle: str,
    small_prices: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    filled = [
        a.format(prices=small_prices, missing=tmp_path / "missing.parquet", tmp=tmp_path)
        for a in args
    ]
    code, _, err = run_cli(filled, capsys)
    assert code == 2, err
    assert needle in err
    assert "Traceback" not in err


def test_model_train_save_and_predict(
    small_prices: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = tmp_path / "model"
    code, out, err = run_cli(
        [
            "model", "train", str(small_prices),
            "--signal", "mom_63_5", "--features", "ret_5,ret_21,mom_63_5,rvol_21",
            "--label", "binary", "--horizon", "5", "--folds", "3", "--model", "linear",
            "--save", str(model_dir), "--oof", str(tmp_path / "oof.parquet"),
        ],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "Walk-forward study" in out
    assert (tmp_path / "oof.parquet").exists()
    preds_path = tmp_path / "preds.csv"
    code, out, err = run_cli(
        ["model", "predict", str(model_dir), str(small_prices), "--out", str(preds_path)], capsys
    )
    assert code == 0, err
    preds = pl.read_csv(preds_path)
    assert preds.height == 12  # one row per symbol on the last date
