"""``quantdesk tool daemon start|stop|status``: the tool server as a background process.

The server itself, its protocol and the client are in :mod:`quantdesk.cli.tool_server`; this
module starts a detached ``quantdesk tool serve`` for a ``QUANTDESK_HOME``, asks it for its
status and stops it, cleaning up its socket and pid files.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

from quantdesk.cli.tool_server import control, server_files

__all__ = ["DaemonStatus", "daemon_start", "daemon_status", "daemon_stop"]


class DaemonStatus(NamedTuple):
    """A running server's status (see :meth:`ToolServer.status`)."""

    pid: int
    uptime: float
    requests: int
    socket: str
    cwd: str


def daemon_status(home: Path) -> DaemonStatus | None:
    """The status of the tool server of ``home``; ``None`` when none answers."""
    answer = control(server_files(home).socket, "status")
    if answer is None or "pid" not in answer:
        return None
    return DaemonStatus(
        int(answer["pid"]),
        float(answer["uptime"]),
        int(answer["requests"]),
        str(answer["socket"]),
        str(answer["cwd"]),
    )


def daemon_start(home: Path, timeout: float = 60.0) -> tuple[DaemonStatus, bool]:
    """Start a detached server for ``home`` in this directory and environment.

    Returns:
        Its status, and whether it was started now (``False``: one was already running).

    Raises:
        QuantdeskRuntimeError: the server did not come up (its log's last lines are shown).
    """
    import subprocess

    from quantdesk.quant_core.errors import QuantdeskRuntimeError

    running = daemon_status(home)
    if running is not None:
        return running, False
    files = server_files(home)
    home.mkdir(parents=True, exist_ok=True)
    with open(files.log, "ab") as log:
        # -P: the working directory is not put on sys.path (a folder there named like a
        # module must not shadow it); a new session: the server outlives this shell.
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "quantdesk.cli.main", "tool", "serve"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = daemon_status(home)
        if status is not None:
            return status, True
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    else:
        proc.terminate()
    tail = files.log.read_text(errors="replace").strip().splitlines()[-3:]
    raise QuantdeskRuntimeError(
        f"The tool server did not start (exit status {proc.poll()}): {' | '.join(tail)}",
        fix=f"run `quantdesk tool serve` in the foreground to see why; log: {files.log}.",
    )


def daemon_stop(home: Path, timeout: float = 60.0) -> int | None:
    """Stop the server of ``home`` and remove its socket and pid files.

    Returns:
        The pid of the stopped server; ``None`` when none was running (stale files of a
        dead server are removed).
    """
    files = server_files(home)
    # A busy server is serial: the stop request waits until its current call is done.
    answer = control(files.socket, "stop", timeout=timeout)
    pid = int(answer["pid"]) if answer and "pid" in answer else None
    if pid is not None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.02)
    for path in (files.socket, files.pid):
        if os.path.lexists(path) and (pid is not None or not _live_pid_file(files.pid)):
            path.unlink()
    return pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # our own child would linger as a zombie until reaped: count that as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def _live_pid_file(path: Path) -> bool:
    """Whether ``path`` names a live process (then its socket is not ours to remove)."""
    try:
        return _alive(int(path.read_text().strip()))
    except (OSError, ValueError):
        return False
