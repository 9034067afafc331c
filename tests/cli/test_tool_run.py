"""``quantdesk tool run``: the short path (no typer) and the typer command print the same thing.

``quantdesk.cli.main`` serves the plain forms of ``tool run`` itself and hands everything else
to the typer application; both call ``run_tool_command``. Each case below runs through both
and compares exit code, stdout (the envelope, without its wall-clock timings) and stderr.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from quantdesk.cli import main as cli_main
from quantdesk.quant_core.research_context import create_context

STATS = {"stats": {"sharpe": 1.1, "units": "annualized", "n_obs": 1260}}


def run(
    args: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *,
    via_typer: bool,
    stdin: bytes | None = None,
) -> tuple[int, Any, str]:
    """Run ``quantdesk ARGS`` in-process; return (exit code, stdout as JSON or text, stderr)."""
    with monkeypatch.context() as patch:
        if via_typer:
            patch.setattr(cli_main, "_tool_run_args", lambda args: None)
        if stdin is not None:
            patch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        with pytest.raises(SystemExit) as exited:
            cli_main.main(args)
    out, err = capsys.readouterr()
    code = exited.value.code
    try:
        shown: Any = json.loads(out)
        shown.pop("timings")
    except ValueError:
        shown = out
    return (code if isinstance(code, int) else 0), shown, err


def request_file(tmp_path: Path, body: bytes | dict) -> str:
    path = tmp_path / "request.json"
    path.write_bytes(body if isinstance(body, bytes) else json.dumps(body).encode())
    return str(path)


CASES: dict[str, tuple[str, bytes | dict, int]] = {
    "ok": ("deflated_sharpe", STATS, 0),
    "refused": (
        "deflated_sharpe",
        {"context": "dated", "as_of": "2021-06-30", **STATS},
        1,
    ),
    "malformed json": ("deflated_sharpe", b'{"stats": ', 2),
    "bad field": ("deflated_sharpe", {"stats": {"sharpe": "high", "n_obs": 10}}, 2),
    "unknown field": ("deflated_sharpe", {**STATS, "n_trials": 1}, 2),
    "not utf-8": ("deflated_sharpe", b'{"stats": "\xff"}', 2),
    "unknown tool": ("no_such_tool", STATS, 2),
    "unknown context": ("deflated_sharpe", {"context": "nope", **STATS}, 2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_both_paths_print_the_same_envelope(
    case: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    create_context("dated", as_of="2020-12-31")
    name, body, expected = CASES[case]
    args = ["tool", "run", name, "--input", request_file(tmp_path, body)]
    assert cli_main._tool_run_args(args) is not None  # the short path takes it
    fast = run(args, capsys, monkeypatch, via_typer=False)
    slow = run(args, capsys, monkeypatch, via_typer=True)
    assert fast == slow
    code, envelope, err = fast
    assert code == expected
    assert err == ""
    assert envelope["ok"] is (expected == 0)
    if expected == 1:
        assert envelope["error"]["kind"] == "refused"
        assert envelope["error"]["guardrail"] == "as_of"
    if expected == 2:
        assert envelope["error"]["kind"] == "bad_input"


def test_both_paths_read_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stdin = json.dumps(STATS).encode()
    for args in (["tool", "run", "deflated_sharpe"], ["tool", "run", "deflated_sharpe", "-i", "-"]):
        fast = run(args, capsys, monkeypatch, via_typer=False, stdin=stdin)
        slow = run(args, capsys, monkeypatch, via_typer=True, stdin=stdin)
        assert fast == slow
        assert fast[0] == 0
        assert fast[1]["result"]["source"] == "stats"


def test_a_missing_request_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["tool", "run", "deflated_sharpe", "--input", str(tmp_path / "missing.json")]
    fast = run(args, capsys, monkeypatch, via_typer=False)
    assert fast == run(args, capsys, monkeypatch, via_typer=True)
    code, out, err = fast
    assert (code, out) == (2, "")
    assert err.startswith("error: --input ")
    assert "is not a file" in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["tool", "run", "pbo"], ("pbo", "-")),
        (["tool", "run", "pbo", "--input", "r.json"], ("pbo", "r.json")),
        (["tool", "run", "--input", "r.json", "pbo"], ("pbo", "r.json")),
        (["tool", "run", "pbo", "-i", "-"], ("pbo", "-")),
        (["tool", "run", "pbo", "--input=r.json"], ("pbo", "r.json")),
        # everything else is typer's: help, other spellings, mistakes
        (["tool", "run", "--help"], None),
        (["tool", "run", "pbo", "--help"], None),
        (["tool", "run", "pbo", "-ir.json"], None),
        (["tool", "run", "pbo", "--input"], None),
        (["tool", "run", "pbo", "--input", "-x"], None),
        (["tool", "run", "pbo", "-i", "a", "-i", "b"], None),
        (["tool", "run", "pbo", "extra"], None),
        (["tool", "run"], None),
        (["tool", "run", "--", "pbo"], None),
        (["tool", "list"], None),
        (["--version"], None),
        ([], None),
    ],
)
def test_short_path_grammar(args: list[str], expected: tuple[str, str] | None) -> None:
    assert cli_main._tool_run_args(args) == expected


def test_forms_left_to_typer_still_work(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(["tool", "run", "--help"], capsys, monkeypatch, via_typer=False)
    assert code == 0
    assert "--input" in out
    code, _, err = run(["tool", "run", "pbo", "--input"], capsys, monkeypatch, via_typer=False)
    assert code == 2
    assert "requires an argument" in err


def test_the_console_script_takes_the_short_path(tmp_path: Path) -> None:
    path = request_file(tmp_path, STATS)
    code = (
        "import sys\n"
        "from quantdesk.cli.main import main\n"
        "try:\n"
        f"    main(['tool', 'run', 'deflated_sharpe', '--input', {path!r}])\n"
        "except SystemExit as exc:\n"
        "    print(exc.code, sorted(m for m in ('typer', 'click', 'rich') if m in sys.modules),"
        " file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.strip() == "0 []"
    assert json.loads(done.stdout)["ok"] is True
    exe = Path(sys.executable).with_name("quantdesk")
    script = subprocess.run(
        [str(exe), "tool", "run", "deflated_sharpe", "--input", path],
        capture_output=True,
        text=True,
        check=False,
    )
    assert script.returncode == 0, script.stderr
    first, second = json.loads(done.stdout), json.loads(script.stdout)
    first.pop("timings")
    second.pop("timings")
    assert first == second
