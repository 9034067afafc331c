"""The light path of one tool call: the shortcuts it takes equal what they stand in for.

``quantdesk tool run deflated_sharpe`` is a one-shot process, so the call avoids heavy imports:
the registry file is found without pydantic-settings, the default context is opened without
``trial_recording``, the recorded Sharpe ratios are read without ``trials``. Each test below
pins a shortcut to the library function it replaces.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from quantdesk.quant_core import trial_recording
from quantdesk.quant_core.registry_db import registry_path
from quantdesk.quant_core.research_context import create_context, use_context
from quantdesk.quant_core.sharpe_inference import deflated_sharpe_ratio
from quantdesk.quant_core.trials import TrialRegistry
from quantdesk.tools import inference_tools, runner
from quantdesk.tools.inference_tools import SharpeStats, recorded_sharpes

HEAVY = ("typer", "click", "rich", "pydantic_settings", "scipy", "sklearn", "lightgbm")


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"QUANTDESK_HOME": "relative/home"},
        {"QUANTDESK_HOME": "~/qd-home"},
        {"QUANTDESK_HOME": ""},
        {"quantdesk_home": "lower/case"},
        {"QUANTDESK_HOME": "a", "Quantdesk_Home": "b"},
        {"QUANTDESK_SEED": "12", "QUANTDESK_MODEL": "offline"},
    ],
)
def test_registry_file_is_the_settings_one(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QUANTDESK_HOME", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert runner._registry_file() == registry_path()


@pytest.mark.parametrize("dotenv", ["QUANTDESK_HOME=from-dotenv\n", "QUANTDESK_SEED=3\n"])
def test_registry_file_reads_a_dotenv_file_like_the_settings(
    dotenv: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QUANTDESK_HOME", raising=False)
    (tmp_path / ".env").write_text(dotenv)
    assert runner._registry_file() == registry_path()


def test_an_invalid_setting_fails_like_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quantdesk.quant_core.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUANTDESK_SEED", "-1")
    with pytest.raises(ConfigError):
        registry_path()
    with pytest.raises(ConfigError):
        runner._registry_file()


def test_default_context_is_the_one_runs_are_recorded_in() -> None:
    assert runner.DEFAULT_CONTEXT_NAME == trial_recording.DEFAULT_CONTEXT_NAME
    opened = runner._open_context(None)  # creates it
    assert opened == trial_recording.run_context()
    assert opened.notes == runner.DEFAULT_CONTEXT_NOTES
    # and the other way round: the library creates it, the runner finds it
    assert runner._open_context("default") == opened


def test_the_active_context_wins_over_default() -> None:
    ctx = create_context("active-one")
    with use_context(ctx):
        assert runner._open_context(None) == ctx == trial_recording.run_context()
    assert runner._open_context(None).name == "default"


def test_recorded_sharpes_equal_the_trial_registry(rng: np.random.Generator) -> None:
    ctx = create_context("sharpes")
    registry = TrialRegistry(ctx.registry)
    assert recorded_sharpes(ctx) == []
    for k, (kind, period) in enumerate(
        [("cv", 5), ("backtest", 1), ("holdout", 1), ("cv", 21), ("other", 1)]
    ):
        returns = rng.normal(0.0005 * k, 0.01, 300)
        registry.record(
            ctx, kind, returns, config={"k": k}, data_hash="d" * 64, period_sessions=period
        )
    other = create_context("other")
    registry.record(other, "cv", rng.normal(0, 0.01, 300), config={}, data_hash="e" * 64)
    expected = [r.sr_per_session for r in registry.trials(ctx)]
    assert len(expected) == 4  # the holdout evaluation and the other context are left out
    assert recorded_sharpes(ctx) == expected


@pytest.mark.parametrize(
    ("recorded", "stats"),
    [
        ([], {"sharpe": 1.1, "n_obs": 1260}),
        ([0.02, -0.01, 0.05], {"sharpe": 1.1, "n_obs": 1260, "skew": -0.4, "kurtosis": 5.0}),
        ([0.01] * 3 + [0.013], {"sharpe": 0.04, "units": "per_period", "n_obs": 500}),
        (list(np.linspace(-0.05, 0.08, 40)), {"sharpe": 2.5, "n_obs": 300, "kurtosis": 9.0}),
    ],
)
def test_stats_dsr_equals_the_numpy_route(recorded: list[float], stats: dict) -> None:
    """The stdlib variance gives the DSR of ``trial_sharpes=`` (numpy's ddof=1 variance)."""
    given = SharpeStats(**stats)
    fast = inference_tools._from_stats(given, recorded)
    sr = given.sharpe / math.sqrt(252) if given.units == "annualized" else given.sharpe
    sharpes = [*recorded, sr]
    slow = deflated_sharpe_ratio(
        sr=sr,
        n_obs=given.n_obs,
        skew=given.skew,
        kurtosis=given.kurtosis,
        n_trials=len(sharpes),
        trial_sharpes=sharpes if len(sharpes) > 1 else None,
    )
    for field in ("dsr", "psr", "sr0", "z", "sr_std"):
        assert getattr(fast, field) == pytest.approx(getattr(slow, field), rel=1e-12, abs=1e-15)
    assert fast.n_trials == slow.n_trials


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"import json, sys; {code}; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {m.split(".")[0] for m in json.loads(out.stdout.strip().splitlines()[-1])}


_CALL = (
    "from quantdesk.tools.runner import run_tool; "
    "env = run_tool('deflated_sharpe', {'stats': {'sharpe': 1.1, 'n_obs': 1260}}); "
    "assert env.ok, env.error; env.to_json_dict()"
)


def test_a_stats_call_loads_no_cli_settings_or_ml_library() -> None:
    assert not set(HEAVY) & _modules_after(_CALL)


def test_a_stats_call_loads_neither_numpy_nor_polars() -> None:
    assert not {"numpy", "polars"} & _modules_after(_CALL)


def test_settings_and_contexts_import_without_pydantic_settings_or_polars() -> None:
    loaded = _modules_after(
        "import quantdesk.quant_core.settings, quantdesk.quant_core.research_context"
    )
    assert not {"pydantic_settings", "polars", "numpy"} & loaded


def test_lazy_names_are_the_real_ones() -> None:
    from quantdesk.quant_core import holdout, research_context, settings

    for name in research_context._FROM_HOLDOUT:
        assert getattr(research_context, name) is getattr(holdout, name)
    assert isinstance(settings.get_settings(), settings.Settings)
    assert settings.Settings.__module__ == "quantdesk.quant_core.settings"
    assert settings.Settings.__name__ == "Settings"
    assert "home" in settings.Settings.model_fields
