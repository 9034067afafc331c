"""``quantdesk backtest``, ``report``, ``context`` and ``trials`` from the command line."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from quantdesk.cli.main import main
from quantdesk.quant_core import demo_universe


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def prices_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bt") / "demo.parquet"
    demo_universe(seed=5, n_symbols=20, n_sessions=600).prices.write_parquet(path)
    return path


def test_backtest_reports_deflated_sharpe_and_counts_trials(
    prices_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    html = tmp_path / "sheet.html"
    code, out, err = run_cli(
        ["backtest", str(prices_file), "--signal", "mom_126_5", "--html", str(html)], capsys
    )
    assert code == 0, err
    assert "## Is it real?" in out
    assert "with N = 1 trials" in out
    assert html.stat().st_size > 100_000
    code, out, err = run_cli(
        ["backtest", str(prices_file), "--signal", "mom_126_5", "--rebalance", "monthly"], capsys
    )
    assert code == 0, err
    assert "with N = 2 trials" in out
    code, out, _ = run_cli(["trials", "list"], capsys)
    assert code == 0
    trial_ids = re.findall(r"\| \d+ \| ([0-9a-f]{16}) \| backtest \|", out)
    assert len(trial_ids) == 2
    code, out, err = run_cli(["report", trial_ids[0]], capsys)
    assert code == 0, err
    assert "Trial #1 (backtest)" in out


def test_zero_costs_are_refused_unless_gross_study(
    prices_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zero = ["--commission-bps", "0", "--half-spread-bps", "0", "--slippage-bps", "0"]
    code, _, err = run_cli(["backtest", str(prices_file), "--signal", "mom_126_5", *zero], capsys)
    assert code == 2
    assert "gross_study" in err
    assert "Traceback" not in err
    # a refused run is not a trial (the default context was not even created)
    assert not (Path(os.environ["QUANTDESK_HOME"]) / "trials").exists()
    code, out, err = run_cli(
        ["backtest", str(prices_file), "--signal", "mom_126_5", "--gross-study"], capsys
    )
    assert code == 0, err
    assert "Cost drag" in out


def test_context_holdout_refuses_a_backtest_on_holdout_data(
    prices_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        ["context", "new", "locked", "--holdout", "2017-01-01:", "--budget", "10"], capsys
    )
    assert code == 0, err
    assert "[2017-01-01" in out
    code, _, err = run_cli(["context", "new", "locked"], capsys)
    assert code == 2
    assert "already exists" in err
    code, _, err = run_cli(
        ["backtest", str(prices_file), "--signal", "mom_126_5", "--context", "locked"], capsys
    )
    assert code == 2
    assert "holdout" in err
    code, out, err = run_cli(
        [
            "backtest", str(prices_file), "--signal", "mom_126_5", "--context", "locked",
            "--as-of", "2016-12-30",
        ],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    code, out, _ = run_cli(["context", "list"], capsys)
    assert re.search(r"\| locked \| \w+ \| - \| \[2017-01-01, open\) \| 1 / 10 \|", out), out


def test_report_of_unknown_trial_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["report", "feedfacefeedface"], capsys)
    assert code == 2
    assert "feedfacefeedface" in err
    assert "Traceback" not in err
