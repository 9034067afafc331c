"""The tool server answers ``quantdesk tool run`` exactly as the in-process path would.

Each test starts a real server (``quantdesk tool serve``) in a subprocess under the test's own
``QUANTDESK_HOME`` and working directory, and runs the client in-process (``main()``), so
the comparison is the command's own output: stdout byte for byte (the envelope's wall-clock
``timings`` values masked), stderr and exit code.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from quantdesk.cli import main as cli_main
from quantdesk.cli import tool_daemon, tool_server
from quantdesk.quant_core.research_context import create_context

STATS = {"stats": {"sharpe": 1.1, "units": "annualized", "n_obs": 1260}}
BACKTEST = {
    "source": {"kind": "demo", "seed": 7, "n_symbols": 20, "n_sessions": 300},
    "as_of": "2019-12-31",
    "strategy": {"signal": "mom_252_21"},
}
CASES: dict[str, tuple[str, bytes | dict | None]] = {
    "ok": ("deflated_sharpe", STATS),
    "refused": ("deflated_sharpe", {"context": "dated", "as_of": "2021-06-30", **STATS}),
    "malformed json": ("deflated_sharpe", b'{"stats": '),
    "bad field": ("deflated_sharpe", {"stats": {"sharpe": "high", "n_obs": 10}}),
    "not utf-8": ("deflated_sharpe", b'{"stats": "\xff"}'),
    "unknown tool": ("no_such_tool", STATS),
    "stdin": ("deflated_sharpe", None),
}
TIMINGS = re.compile(r'("timings": \{)([^}]*)(\})')


def masked(stdout: str) -> str:
    """``stdout`` with the values of the envelope's wall-clock timings set to 0."""
    return TIMINGS.sub(lambda m: m[1] + re.sub(r": [-+.\deE]+", ": 0", m[2]) + m[3], stdout)


def cli(
    args: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stdin: bytes = b"",
) -> tuple[int, str, str]:
    """Run ``quantdesk ARGS`` in this process: (exit code, stdout, stderr)."""
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        with pytest.raises(SystemExit) as exited:
            cli_main.main(args)
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def requests_served(home: Path) -> int:
    status = tool_daemon.daemon_status(home)
    assert status is not None
    return status.requests


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The client's and the server's working directory (no ``.env`` in it)."""
    work = tmp_path / "w"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def home(_isolated_home: Path) -> Path:
    return _isolated_home.resolve()


def start_server(home: Path) -> subprocess.Popen[bytes]:
    """``quantdesk tool serve`` in a subprocess with this process's environment and cwd."""
    with open(home.parent / "server.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "quantdesk.cli.main", "tool", "serve"],
            stdout=log,
            stderr=log,
        )
    deadline = time.monotonic() + 60
    while tool_daemon.daemon_status(home) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(f"no server: {(home.parent / 'server.log').read_text()}")
        time.sleep(0.05)
    return proc


@pytest.fixture
def server(home: Path, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = start_server(home)
    yield proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0, (home.parent / "server.log").read_text()


def run_case(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    name, body = CASES[case]
    if body is None:
        return cli(["tool", "run", name], capsys, mp, stdin=json.dumps(STATS).encode())
    path = tmp_path / f"{case.replace(' ', '_')}.json"
    path.write_bytes(body if isinstance(body, bytes) else json.dumps(body).encode())
    return cli(["tool", "run", name, "--input", str(path)], capsys, mp)


def test_the_server_prints_what_the_in_process_path_prints(
    home: Path,
    workdir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    create_context("dated", as_of="2020-12-31")
    alone = {case: run_case(case, tmp_path, capsys, monkeypatch) for case in CASES}
    proc = start_server(home)
    try:
        served = {case: run_case(case, tmp_path, capsys, monkeypatch) for case in CASES}
        assert requests_served(home) == len(CASES)  # every call went to the server
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0
    expected_codes = {"ok": 0, "refused": 1, "stdin": 0}
    for case in CASES:
        code, out, err = served[case]
        assert (code, masked(out), err) == (alone[case][0], masked(alone[case][1]), alone[case][2])
        assert code == expected_codes.get(case, 2), case
        assert err == ""
        assert out == json.dumps(json.loads(out), indent=2) + "\n"
    # the server removed its socket and pid file when it stopped
    assert not (home / tool_server.SOCKET_NAME).exists()
    assert not (home / "tool-server.pid").exists()


def test_the_socket_is_private(server: subprocess.Popen[bytes], home: Path) -> None:
    mode = os.stat(home / tool_server.SOCKET_NAME).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600
    assert int((home / "tool-server.pid").read_text()) == server.pid


def test_other_quantdesk_settings_run_in_process(
    server: subprocess.Popen[bytes],
    home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served = run_case("ok", tmp_path, capsys, monkeypatch)
    monkeypatch.setenv("QUANTDESK_SEED", "3")
    seeded = run_case("ok", tmp_path, capsys, monkeypatch)
    assert requests_served(home) == 1  # the mismatched call ran here
    assert seeded[0] == 0
    assert masked(seeded[1]) == masked(served[1])
    monkeypatch.delenv("QUANTDESK_SEED")
    monkeypatch.chdir(tmp_path)  # another working directory: relative paths would differ
    assert run_case("ok", tmp_path, capsys, monkeypatch)[0] == 0
    assert requests_served(home) == 1


def test_a_stale_socket_falls_back_and_stays(
    home: Path,
    workdir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alone = run_case("ok", tmp_path, capsys, monkeypatch)
    path = home / tool_server.SOCKET_NAME
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))  # a socket file nobody listens on, as after a crash
    code, out, err = run_case("ok", tmp_path, capsys, monkeypatch)
    assert (code, masked(out), err) == (0, masked(alone[1]), "")
    assert stat.S_ISSOCK(os.lstat(path).st_mode)  # the client removes nothing
    # a new server replaces the stale socket
    proc = start_server(home)
    proc.terminate()
    assert proc.wait(timeout=30) == 0


def test_trials_are_counted_in_the_shared_registry(
    server: subprocess.Popen[bytes],
    home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # two strategies: the registry counts one trial per distinct configuration
    paths = [tmp_path / "momentum.json", tmp_path / "reversal.json"]
    paths[0].write_text(json.dumps(BACKTEST))
    paths[1].write_text(json.dumps({**BACKTEST, "strategy": {"signal": "rev_5"}}))
    via_server = cli(["tool", "run", "backtest", "--input", str(paths[0])], capsys, monkeypatch)
    assert requests_served(home) == 1
    with monkeypatch.context() as patch:
        patch.setattr(tool_server, "forward", lambda name, payload: None)
        args = ["tool", "run", "backtest", "--input", str(paths[1])]
        in_process = cli(args, capsys, monkeypatch)
    assert via_server[0] == in_process[0] == 0
    first, second = json.loads(via_server[1]), json.loads(in_process[1])
    assert first["provenance"]["context_id"] == second["provenance"]["context_id"]
    assert first["provenance"]["trial_id"] != second["provenance"]["trial_id"]
    trials_path = tmp_path / "trials.json"
    trials_path.write_text(json.dumps({"kind": "backtest"}))
    code, out, _ = cli(
        ["tool", "run", "list_trials", "--input", str(trials_path)], capsys, monkeypatch
    )
    result = json.loads(out)["result"]
    assert (code, result["n_trials"], result["context"]["trials_used"]) == (0, 2, 2)


def test_the_client_imports_only_the_standard_library(
    server: subprocess.Popen[bytes], home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(STATS))
    code = (
        "import sys\n"
        "from quantdesk.cli.main import main\n"
        "try:\n"
        f"    main(['tool', 'run', 'deflated_sharpe', '--input', {str(path)!r}])\n"
        "except SystemExit as exc:\n"
        "    loaded = sorted(m for m in ('pydantic', 'typer', 'sqlite3') if m in sys.modules)\n"
        "    print(exc.code, loaded, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.strip() == "0 []"
    assert json.loads(done.stdout)["ok"] is True
    assert requests_served(home) == 1


def test_the_daemon_starts_reports_and_stops(home: Path, workdir: Path) -> None:
    quantdesk = [sys.executable, "-P", "-m", "quantdesk.cli.main", "tool", "daemon"]

    def daemon(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*quantdesk, command], capture_output=True, text=True, check=False)

    assert daemon("status").returncode == 1
    started = daemon("start")
    assert started.returncode == 0, started.stderr
    pid = int((home / "tool-server.pid").read_text())
    assert f"started: pid {pid}" in started.stdout
    assert "already running" in daemon("start").stdout
    status = daemon("status")
    assert status.returncode == 0
    assert f"pid: {pid}\n" in status.stdout
    assert "requests served: 0\n" in status.stdout
    assert f"socket: {home / tool_server.SOCKET_NAME}\n" in status.stdout
    stopped = daemon("stop")
    assert stopped.stdout.strip() == f"tool server {pid} stopped"
    assert not (home / tool_server.SOCKET_NAME).exists()
    assert not (home / "tool-server.pid").exists()
    # gone, or a zombie waiting for an init that does not reap (containers)
    state = Path(f"/proc/{pid}/stat")
    assert not state.exists() or state.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    assert daemon("stop").stdout.strip() == "tool server not running"


def test_a_changed_source_file_is_a_mismatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "probe.py"
    source.write_text("x = 1\n")
    old = time.time_ns() - 10**10
    os.utime(source, ns=(old, old))
    module = types.ModuleType("quantdesk._tool_server_probe")
    module.__file__ = str(source)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    server = tool_server.ToolServer(tool_server.server_files(tmp_path))
    request = {"tool": "deflated_sharpe", "cwd": os.getcwd(), "env": tool_server.quantdesk_env()}
    assert server.mismatch(request) is None
    assert server.mismatch({**request, "cwd": str(tmp_path)}) is not None
    assert server.mismatch({**request, "env": {**request["env"], "QUANTDESK_SEED": "3"}})
    os.utime(source, ns=(old + 10**9, old + 10**9))  # edited after the server loaded it
    reason = server.mismatch(request)
    assert reason is not None
    assert str(source) in reason
    assert server._stopping  # and the server exits after answering
