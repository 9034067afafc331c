"""A warm tool server for ``quantdesk tool run``: the call without the interpreter's imports.

A one-shot ``quantdesk tool run`` spends ~100 ms importing pydantic and the tool layer before
a call that takes ~1 ms. Coding agents make one such call per step, so, as mypy's ``dmypy``
or Gradle's daemon do, a server that has those imports made can answer instead:
``quantdesk tool serve`` (foreground) or ``quantdesk tool daemon start`` (background) listens
on ``<QUANTDESK_HOME>/tool-server.sock`` (mode 0600) and runs one request at a time.

The client side (:func:`forward`, called by :mod:`quantdesk.cli.main`) imports only the
standard library. It forwards a call only when the answer is the one the in-process path
would print; otherwise it returns ``None`` and the caller runs the tool itself:

* no socket, a stale socket (connection refused), a server busy for over 2 s;
* the server answers ``mismatch``: the client's ``QUANTDESK_*`` variables or working directory
  differ from the server's (the server never changes its own environment per request: the
  tools read settings and relative paths), or a quantdesk source file the server loaded has
  changed since it started (the server then exits, so that the next start loads the new code).

Protocol (newline-delimited JSON, one exchange per connection):

1. client: ``{"tool": name, "payload": text, "cwd": ..., "env": {QUANTDESK_*: ...}}``
   (``payload_b64`` instead of ``payload`` for a request that is not UTF-8);
2. server: ``{"mismatch": reason}`` (end) or ``{"ready": true}``;
3. client: ``{"go": true}``, and from here on it waits for the answer without a time limit;
4. server: ``{"envelope_json": text, "exit_code": n}`` (or ``{"stderr": line, "exit_code": n}``).

The handshake of steps 2-3 is what lets the client fall back safely: the server runs a tool
only after ``go``, and the client falls back only before sending it, so no call (and no
counted trial) can run twice. Control requests are ``{"op": "status"}`` and ``{"op": "stop"}``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import socket

# socket, base64, signal and stat are imported where used: without a server, the command
# pays only for this module and one os.path.exists.

__all__ = [
    "CONNECT_TIMEOUT",
    "SOCKET_NAME",
    "Forwarded",
    "ServerFiles",
    "ToolServer",
    "client_socket_path",
    "control",
    "forward",
    "quantdesk_env",
    "server_files",
]

SOCKET_NAME = "tool-server.sock"
PID_NAME = "tool-server.pid"
LOG_NAME = "tool-server.log"
#: Seconds the client waits to connect and for the server's ``ready`` (a busy server is
#: serial: past this the client runs the tool itself).
CONNECT_TIMEOUT = 2.0
#: A request is at most 1 MB (``runner.MAX_PAYLOAD_BYTES``); JSON escaping can inflate it.
MAX_MESSAGE_BYTES = 16_000_000


class Forwarded(NamedTuple):
    """What the server answered: print ``stdout`` and ``stderr``, exit with ``exit_code``."""

    stdout: str
    stderr: str
    exit_code: int


class ServerFiles(NamedTuple):
    """The server's files in ``QUANTDESK_HOME``."""

    socket: Path
    pid: Path
    log: Path


def server_files(home: Path) -> ServerFiles:
    """The socket, pid and log files of the tool server of ``home``."""
    return ServerFiles(home / SOCKET_NAME, home / PID_NAME, home / LOG_NAME)


def quantdesk_env() -> dict[str, str]:
    """The ``QUANTDESK_*`` variables of this process (any case, as the settings read them)."""
    return {k: v for k, v in os.environ.items() if k.upper().startswith("QUANTDESK_")}


def client_socket_path() -> str | None:
    """The socket path as the settings would resolve ``QUANTDESK_HOME``, or ``None``.

    ``None`` when only the settings can tell (a ``.env`` file may set the home, or two
    spellings of the variable): the call then runs in-process, which is always correct.
    """
    names = [k for k in os.environ if k.upper() == "QUANTDESK_HOME"]
    if len(names) > 1 or (not names and os.path.lexists(".env")):
        return None
    home = os.environ[names[0]] if names else ".quantdesk"
    return os.path.join(os.path.realpath(os.path.expanduser(home)), SOCKET_NAME)


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


def _read_line(conn: socket.socket, buffer: bytearray) -> dict[str, Any] | None:
    """The next JSON line from ``conn`` (``buffer`` keeps what follows it); ``None`` at EOF."""
    while b"\n" not in buffer:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buffer += chunk
        if len(buffer) > MAX_MESSAGE_BYTES:
            raise ValueError("message too long")
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    value = json.loads(line)
    if not isinstance(value, dict):
        raise ValueError("a message is one JSON object")
    return value


def forward(name: str, payload: str | bytes) -> Forwarded | None:
    """Run tool ``name`` on ``payload`` in the tool server; ``None``: run it in-process.

    Raises:
        QuantdeskRuntimeError: the server stopped after it had accepted the call (the call
            may have run, so running it again here could count a trial twice).
    """
    path = client_socket_path()
    if path is None or not os.path.exists(path):
        return None
    import socket

    request: dict[str, Any] = {"tool": name, "cwd": os.getcwd(), "env": quantdesk_env()}
    if isinstance(payload, str):
        request["payload"] = payload
    else:
        try:
            request["payload"] = payload.decode("utf-8")
        except UnicodeDecodeError:
            import base64

            request["payload_b64"] = base64.b64encode(payload).decode("ascii")
    line = json.dumps(request).encode() + b"\n"
    if len(line) > MAX_MESSAGE_BYTES:
        return None
    buffer = bytearray()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(CONNECT_TIMEOUT)
        try:
            conn.connect(path)
            conn.sendall(line)
            answer = _read_line(conn, buffer)
            if answer is None or answer.get("ready") is not True:
                return None  # mismatch, or a server going away: it ran nothing
            _send(conn, {"go": True})
        except (OSError, ValueError):
            return None  # refused (stale socket), busy, or closed before go: nothing ran
        conn.settimeout(None)
        try:
            result = _read_line(conn, buffer)
        except (OSError, ValueError):
            result = None
    if result is None or not isinstance(result.get("exit_code"), int):
        from quantdesk.quant_core.errors import QuantdeskRuntimeError

        raise QuantdeskRuntimeError(
            f"The tool server ({path}) stopped during the call to {name!r}; the call may "
            "or may not have run.",
            fix="check `quantdesk tool daemon status`, and the context's trials (tool "
            "list_trials) before repeating a call that records one.",
        )
    return Forwarded(
        str(result.get("envelope_json", "")), str(result.get("stderr", "")), result["exit_code"]
    )


def control(path: Path, op: str, timeout: float = CONNECT_TIMEOUT) -> dict[str, Any] | None:
    """Send control request ``op`` (``status``, ``stop``); the answer, ``None`` if unreachable."""
    import socket

    buffer = bytearray()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        try:
            conn.connect(str(path))
            _send(conn, {"op": op})
            return _read_line(conn, buffer)
        except (OSError, ValueError):
            return None


class ToolServer:
    """The server: binds the socket, answers one connection at a time until stopped.

    Args:
        files: Its socket, pid and log files (see :func:`server_files`).
    """

    def __init__(self, files: ServerFiles) -> None:
        self.files = files
        self.started = time.time()
        self.requests = 0
        self.cwd = os.getcwd()
        self.env = quantdesk_env()
        self._stopping = False
        self._busy = False
        self._inode: int | None = None
        self._mtimes: dict[str, int] = {}
        self._started_ns = time.time_ns()

    # --- the code it runs -----------------------------------------------------------------
    def changed_source(self) -> str | None:
        """The first loaded quantdesk source file changed since the server started, if any.

        A module first seen now counts as changed when its file is newer than the start.
        """
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if not (name == "quantdesk" or name.startswith("quantdesk.")) or not file:
                continue
            try:
                mtime = os.stat(file).st_mtime_ns
            except OSError:
                return file
            known = self._mtimes.setdefault(file, mtime)
            if mtime != known or mtime > self._started_ns:
                return file
        return None

    def mismatch(self, request: dict[str, Any]) -> str | None:
        """Why this server cannot answer ``request`` as the client's own process would."""
        if request.get("cwd") != self.cwd:
            return f"working directory {request.get('cwd')!r} is not the server's {self.cwd!r}"
        if request.get("env") != self.env:
            return "the QUANTDESK_* environment differs from the server's"
        changed = self.changed_source()
        if changed is not None:
            self._stopping = True  # serve the new code from a new process
            return f"{changed} changed since the server started"
        return None

    def status(self) -> dict[str, Any]:
        """Pid, start time, uptime, requests served, socket, working directory."""
        return {
            "pid": os.getpid(),
            "started": self.started,
            "uptime": time.time() - self.started,
            "requests": self.requests,
            "socket": str(self.files.socket),
            "cwd": self.cwd,
        }

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        """The answer to a tool request, as the in-process path would print it."""
        import base64

        from quantdesk.cli.main import envelope_text, error_line
        from quantdesk.quant_core.errors import QuantdeskError
        from quantdesk.tools.runner import run_tool

        payload: str | bytes = (
            request["payload"]
            if "payload" in request
            else base64.b64decode(str(request.get("payload_b64", "")))
        )
        try:
            envelope = run_tool(str(request["tool"]), payload)
        except QuantdeskError as exc:  # e.g. settings that fail validation
            line, code = error_line(exc)
            return {"stderr": line, "exit_code": code}
        return {"envelope_json": envelope_text(envelope), "exit_code": envelope.exit_code}

    # --- the socket -------------------------------------------------------------------------
    def handle(self, conn: socket.socket) -> None:
        """Answer one connection (a tool request or a control request)."""
        conn.settimeout(CONNECT_TIMEOUT)
        buffer = bytearray()
        request = _read_line(conn, buffer)
        if request is None:
            return
        if request.get("op") == "status":
            _send(conn, self.status())
        elif request.get("op") == "stop":
            self._stopping = True
            _send(conn, {"stopping": True, "pid": os.getpid()})
        elif isinstance(request.get("tool"), str):
            reason = self.mismatch(request)
            if reason is not None:
                _send(conn, {"mismatch": reason})
                return
            _send(conn, {"ready": True})
            go = _read_line(conn, buffer)
            if go is None or go.get("go") is not True:
                return  # the client gave up and runs the tool itself
            self._busy = True
            try:
                answer = self.run(request)
            finally:
                self._busy = False
            self.requests += 1
            _send(conn, answer)
        else:
            _send(conn, {"error": "unknown request"})

    def _bind(self) -> socket.socket:
        import socket
        import stat

        from quantdesk.quant_core.errors import InputError

        path = self.files.socket
        path.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(path):
            if control(path, "status") is not None:
                raise InputError(
                    f"A tool server is already listening on {path}.",
                    fix="use it, or stop it first with `quantdesk tool daemon stop`.",
                )
            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                raise InputError(
                    f"{path} exists and is not a socket.",
                    fix="move that file away; the tool server needs this path.",
                )
            path.unlink()  # a stale socket: its server is gone
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # mode 0600 from the start, not after a chmod
        try:
            listener.bind(str(path))
        except OSError as exc:
            listener.close()
            raise InputError(
                f"Cannot listen on {path}: {exc}.",
                fix="set QUANTDESK_HOME to a shorter local path (sockets allow ~100 bytes).",
            ) from None
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        self._inode = os.stat(path).st_ino
        listener.listen(16)
        return listener

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True
        if not self._busy:  # between requests: leave accept(); during one: after it
            raise SystemExit(0)

    def serve_forever(self) -> None:
        """Warm up, listen until stopped (``stop`` request, SIGTERM/SIGINT/SIGHUP), clean up."""
        import signal

        from quantdesk.cli.main import envelope_text
        from quantdesk.tools.registry import list_tools
        from quantdesk.tools.runner import run_tool

        list_tools()  # import every tool module now, not during the first call
        # An envelope built and written (a bad request: it touches no registry or context).
        envelope_text(run_tool("deflated_sharpe", "{}"))
        self.changed_source()  # record the mtimes of what is loaded
        listener = self._bind()
        self.files.pid.write_text(f"{os.getpid()}\n")
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        print(f"tool server {os.getpid()} listening on {self.files.socket}", flush=True)
        try:
            while not self._stopping:
                conn, _ = listener.accept()
                with conn:
                    try:
                        self.handle(conn)
                    except (OSError, ValueError) as exc:  # a client that went away
                        print(f"connection dropped: {exc}", file=sys.stderr, flush=True)
        finally:
            listener.close()
            self._cleanup()

    def _cleanup(self) -> None:
        # Only our own files: a newer server may have taken the path meanwhile.
        try:
            if os.stat(self.files.socket).st_ino == self._inode:
                self.files.socket.unlink()
        except OSError:
            pass  # already gone
        try:
            if self.files.pid.read_text().strip() == str(os.getpid()):
                self.files.pid.unlink()
        except OSError:
            pass  # already gone
