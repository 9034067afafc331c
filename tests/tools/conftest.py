"""Fixtures of the tool-layer tests: a small demo source, a data directory, envelope checks.

Test modules are imported with ``--import-mode=importlib``, so shared helpers come through
the ``tools`` fixture rather than an import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from quantdesk.tools import Envelope, run_tool


class ToolChecks:
    """Calls a tool and asserts on its envelope."""

    # 12 symbols x 700 sessions from 2015-01-02 (to September 2017): small and fast, long
    # enough for the 252-session warm-up of momentum features.
    SMALL: ClassVar[dict[str, Any]] = {"kind": "demo", "n_symbols": 12, "n_sessions": 700}
    AS_OF = "2017-06-30"
    FAST_FEATURES: ClassVar[dict[str, Any]] = {
        "names": ["ret_5", "ret_21", "rvol_21"],
        "transform": "rank",
    }

    @staticmethod
    def call(tool: str, payload: Any) -> Envelope[Any]:
        """Run a tool and check the envelope is plain JSON data, whatever the outcome."""
        env = run_tool(tool, payload)
        json.dumps(env.to_json_dict(), allow_nan=False)
        return env

    @staticmethod
    def ok(env: Envelope[Any]) -> Any:
        """Assert success and return the result."""
        assert env.ok, env.error
        assert env.exit_code == 0
        assert env.error is None
        return env.result

    @staticmethod
    def refused(env: Envelope[Any], guardrail: str) -> str:
        """Assert a refusal by ``guardrail`` and return its message."""
        assert not env.ok
        assert env.error is not None, env
        assert env.error.kind == "refused", env.error
        assert env.error.guardrail == guardrail, env.error
        assert env.exit_code == 1
        assert ToolChecks.outcome(env, guardrail) == "refused"
        assert env.error.fix
        return env.error.message

    @staticmethod
    def bad_input(env: Envelope[Any], field: str | None = None) -> str:
        """Assert a bad-input error (naming ``field`` when given) and return its message."""
        assert not env.ok
        assert env.error is not None
        assert env.error.kind == "bad_input", env.error
        assert env.exit_code == 2
        assert env.error.fix
        if field is not None:
            assert env.error.field == field, env.error
        return env.error.message

    @staticmethod
    def outcome(env: Envelope[Any], guardrail: str) -> str | None:
        """The outcome of one guardrail in the envelope (``None`` when absent)."""
        return {g.name: g.outcome for g in env.guardrails}.get(guardrail)


@pytest.fixture
def tools() -> type[ToolChecks]:
    """Envelope helpers and the small demo source."""
    return ToolChecks


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty allowed data directory (the only one)."""
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("QUANTDESK_DATA_DIRS", str(folder))
    return folder
