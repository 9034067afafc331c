"""Entry point of the ``quantdesk`` command.

The CLI is thin: it parses arguments, calls the library and prints. A caller's mistake
(:class:`~quantdesk.quant_core.errors.InputError`) becomes one line on stderr and exit code 2;
a runtime failure becomes one line and exit code 1. Neither shows a traceback (set
``QUANTDESK_DEBUG=1`` to see one).

``quantdesk tool run NAME [--input FILE|-]`` is what coding agents call, one process per
step, so it takes a short path: this module parses those few forms itself and runs the tool
without importing typer, click or rich (the typer application, :mod:`quantdesk.cli.app`,
costs more to import than the call). Any other form, including ``--help`` and options in
other spellings, goes to the typer application, which defines the same command and calls
the same :func:`run_tool_command`; a test runs both paths on the same requests. With a tool
server running (``quantdesk tool daemon start``), :func:`run_tool_command` forwards the call to
it over a Unix socket, importing only the standard library (:mod:`quantdesk.cli.tool_server`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quantdesk.cli.app import app

__all__ = ["app", "envelope_text", "error_line", "main", "run_tool_command"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from quantdesk.cli.app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_tool_command(name: str, input_path: str) -> int:
    """Run tool ``name`` on the JSON request in ``input_path`` (``-``: standard input).

    Prints the envelope as indented JSON on standard output. When a tool server is running
    for this ``QUANTDESK_HOME`` (see :mod:`quantdesk.cli.tool_server`), the call is made
    there and its answer printed; it is the text this process would print, and whenever the
    server cannot promise that, the tool runs here.

    Returns:
        The envelope's exit code: 0 ok, 1 refused or failed at run time, 2 bad request.

    Raises:
        InputError: ``input_path`` is not a file.
    """
    payload = _read_request(input_path)
    # tool_server imports only the standard library: no pydantic unless the call runs here
    from quantdesk.cli.tool_server import forward

    served = forward(name, payload)
    if served is not None:
        sys.stdout.write(served.stdout)
        sys.stdout.flush()
        if served.stderr:
            sys.stderr.write(served.stderr)
            sys.stderr.flush()
        return served.exit_code
    from quantdesk.tools.runner import run_tool

    envelope = run_tool(name, payload)
    sys.stdout.write(envelope_text(envelope))
    sys.stdout.flush()
    return envelope.exit_code


def envelope_text(envelope: Any) -> str:
    """The text ``quantdesk tool run`` prints for ``envelope`` (also the tool server's)."""
    return json.dumps(envelope.to_json_dict(), indent=2) + "\n"


def _read_request(input_path: str) -> str | bytes:
    from quantdesk.quant_core.errors import InputError

    if input_path == "-":
        # bytes when possible: a request that is not UTF-8 becomes a bad_input envelope
        stdin = getattr(sys.stdin, "buffer", None)
        return stdin.read() if stdin is not None else sys.stdin.read()
    path = Path(input_path)
    if not path.is_file():
        raise InputError(
            f"--input {input_path!r} is not a file.",
            fix="give the path of a JSON request file, or - to read standard input.",
        )
    return path.read_bytes()


def _tool_run_args(args: list[str]) -> tuple[str, str] | None:
    """``(name, input)`` when ``args`` is ``tool run NAME`` with at most one plain ``--input``.

    Accepted: ``--input X``, ``-i X`` or ``--input=X`` before or after ``NAME``, where
    ``NAME`` and ``X`` do not start with ``-`` (``X`` may be ``-`` itself). Everything else
    returns ``None`` and is parsed by typer.
    """
    if args[:2] != ["tool", "run"]:
        return None
    rest, names, given = args[2:], [], []
    while rest:
        token = rest.pop(0)
        if token in ("--input", "-i") and rest:
            given.append(rest.pop(0))
        elif token.startswith("--input="):
            given.append(token.removeprefix("--input="))
        elif token.startswith("-"):
            return None
        else:
            names.append(token)
    plain = all(value == "-" or not value.startswith("-") for value in given)
    if len(names) != 1 or len(given) > 1 or not plain:
        return None
    return names[0], given[0] if given else "-"


def error_line(exc: Exception) -> tuple[str, int]:
    """The line printed for quantdesk error ``exc`` and the exit code (2 input, else 1)."""
    from quantdesk.quant_core.errors import InputError, QuantdeskRuntimeError

    retry = isinstance(exc, QuantdeskRuntimeError) and exc.retryable
    line = f"error: {exc}{' (retrying may help)' if retry else ''}\n"
    return line, 2 if isinstance(exc, InputError) else 1


def _handled(call: Callable[[], Any]) -> Any:
    """Run ``call``; quantdesk errors become one line on stderr and exit 2 (input) or 1."""
    from quantdesk.quant_core.errors import QuantdeskError

    try:
        return call()
    except QuantdeskError as exc:
        if os.environ.get("QUANTDESK_DEBUG", "") not in ("", "0"):
            raise
        line, code = error_line(exc)
        sys.stderr.write(line)
        sys.stderr.flush()
        sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Run the command line; map quantdesk errors to one line and an exit code.

    Args:
        argv: The arguments after the program name; default ``sys.argv[1:]``.

    Raises:
        SystemExit: always, with the command's exit code (as a click application does).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    fast = _tool_run_args(args)
    if fast is not None:
        sys.exit(_handled(lambda: run_tool_command(*fast)))

    def typer_app() -> None:
        from quantdesk.cli.app import app

        app(args=args, prog_name="quantdesk", standalone_mode=True)

    _handled(typer_app)


if __name__ == "__main__":
    main()
