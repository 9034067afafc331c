"""Run a tool on a JSON request and always return an envelope, never a traceback.

:func:`run_tool` is the single entry point of the agents, the CLI and the MCP server:

1. find the tool (unknown name: ``bad_input`` listing the known ones);
2. read the request: a JSON string or bytes, or a mapping (written to JSON first, so every
   caller goes through the same strict parser); at most :data:`MAX_PAYLOAD_BYTES`;
   malformed JSON, NaN/Infinity, too deep nesting or a non-object are ``bad_input``;
3. validate it against the tool's strict input model; each problem is reported with its
   field path (``source.path``) and a fix;
4. open the research context (``context`` field, else the active one, else ``default``) and
   run the tool inside ``use_context(ctx)``, capturing Python warnings into the envelope;
5. map what the tool raised: a guardrail refusal, a holdout violation or an exhausted trial
   budget to ``refused``; any other :class:`~quantdesk.quant_core.errors.InputError` to
   ``bad_input``; everything else to ``runtime`` (the traceback goes to the debug log only).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from quantdesk.quant_core.errors import InputError, QuantdeskRuntimeError
from quantdesk.tools.envelope import (
    Envelope,
    Provenance,
    ToolError,
    ToolInputError,
    ToolRefusedError,
)
from quantdesk.tools.guardrails import ToolRun, settle_data_validation
from quantdesk.tools.registry import ToolSpec, get_tool, tool_names

if TYPE_CHECKING:
    from quantdesk.quant_core.research_context import ResearchContext

__all__ = ["DEFAULT_CONTEXT_NAME", "MAX_PAYLOAD_BYTES", "run_tool"]

MAX_PAYLOAD_BYTES = 1_000_000
#: The context of runs made outside any research context; the name and notes of
#: ``quantdesk.quant_core.trial_recording.run_context`` (a test pins them equal).
DEFAULT_CONTEXT_NAME = "default"
DEFAULT_CONTEXT_NOTES = "Runs made outside any research context are counted here."
_MAX_PROBLEMS = 5


def _json_default(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON data")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a request")


def _read_payload(payload: Any) -> tuple[str, dict[str, Any]]:
    """Return the request as JSON text and as the parsed object.

    Raises:
        ToolInputError: anything that is not one JSON object of acceptable size.
    """
    fix_json = 'send one JSON object, e.g. {"as_of": "2019-12-31", ...}.'
    if payload is None:
        payload = "{}"
    if isinstance(payload, Mapping):
        try:
            payload = json.dumps(dict(payload), default=_json_default, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ToolInputError(
                None, f"The request cannot be written as JSON: {exc}.", fix=fix_json
            ) from None
    elif isinstance(payload, (bytes, bytearray)):
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise _too_large(len(payload))
        try:
            payload = bytes(payload).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ToolInputError(
                None, f"The request is not UTF-8 text: {exc}.", fix=fix_json
            ) from None
    elif not isinstance(payload, str):
        raise ToolInputError(
            None,
            f"The request is a {type(payload).__name__}; a JSON object is expected.",
            fix=fix_json,
        )
    if len(payload) > MAX_PAYLOAD_BYTES // 4 and len(payload.encode("utf-8")) > MAX_PAYLOAD_BYTES:
        raise _too_large(len(payload.encode("utf-8")))
    try:
        parsed = json.loads(payload, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ToolInputError(
            None,
            f"Malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}.",
            fix=fix_json,
        ) from None
    except ValueError as exc:  # NaN / Infinity
        raise ToolInputError(
            None, f"Invalid JSON value: {exc}.", fix="send finite numbers."
        ) from None
    except RecursionError:
        raise ToolInputError(
            None, "The JSON request is nested too deeply.", fix="send a flat JSON object."
        ) from None
    if not isinstance(parsed, dict):
        raise ToolInputError(
            None,
            f"The request is a JSON {type(parsed).__name__}; tools take one JSON object.",
            fix=fix_json,
        )
    return payload, parsed


def _too_large(size: int) -> ToolInputError:
    return ToolInputError(
        None,
        f"The request is {size:,} bytes; the limit is {MAX_PAYLOAD_BYTES:,}.",
        fix="send a reference to the data (a data source or trial ids) instead of the data "
        "itself, or shorten the lists.",
    )


def _field_path(loc: tuple[Any, ...], parsed: Any) -> str:
    """Dotted field path of an error, without the discriminator tags pydantic inserts."""
    parts: list[str] = []
    current = parsed
    for part in loc:
        if isinstance(current, dict) and part not in current and current.get("kind") == part:
            continue  # the tag of a discriminated union (e.g. "file" in source.file.path)
        parts.append(str(part))
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        else:
            current = None
    return ".".join(parts) or "(request)"


def _explain(exc: ValidationError, parsed: Any, spec: ToolSpec) -> ToolInputError:
    """Turn pydantic's errors into one message naming each field, and a fix."""
    problems: list[str] = []
    fixes: list[str] = []
    first_field: str | None = None
    top_fields = sorted(spec.input_model.model_fields)
    errors = exc.errors(include_url=False)
    for err in errors[:_MAX_PROBLEMS]:
        path = _field_path(tuple(err["loc"]), parsed)
        first_field = first_field or path
        kind = err["type"]
        msg = str(err["msg"]).removeprefix("Value error, ")
        if kind == "missing":
            problems.append(f"{path}: required field missing")
            fixes.append(f"add {path!r}")
        elif kind == "extra_forbidden":
            problems.append(f"{path}: unknown field")
            where = (
                f"allowed top-level fields: {top_fields}" if "." not in path else "see the schema"
            )
            fixes.append(f"remove {path!r} ({where})")
        else:
            shown = repr(err.get("input"))
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            problems.append(f"{path}: {msg} (got {shown})")
    if len(errors) > _MAX_PROBLEMS:
        problems.append(f"... and {len(errors) - _MAX_PROBLEMS} more problem(s)")
    fixes.append(f"the request schema is tool_schema({spec.name!r})['input']")
    return ToolInputError(
        first_field,
        f"Invalid request for tool {spec.name!r}: " + "; ".join(problems) + ".",
        fix="; ".join(fixes) + ".",
    )


def _registry_file() -> Path:
    """``QUANTDESK_HOME/registry.sqlite``, resolved as :mod:`quantdesk.quant_core.settings` does.

    The common case (``QUANTDESK_HOME`` or its default, no ``.env`` file) is read from the
    environment directly: pydantic-settings costs ~20 ms to import, a third of a one-shot
    CLI call. Anything else (a ``.env`` file, a variable that could fail validation,
    variants of a name differing in case) goes through the settings themselves. A test pins
    the two equal.
    """
    names = [key for key in os.environ if key.lower().startswith("quantdesk_")]
    homes = [key for key in names if key.lower() == "quantdesk_home"]
    if (
        os.path.lexists(".env")
        or len(homes) > 1
        or any(k.lower() == "quantdesk_seed" for k in names)
    ):
        from quantdesk.quant_core.registry_db import registry_path

        return registry_path()
    home = os.environ[homes[0]] if homes else ".quantdesk"
    return (Path(home) / "registry.sqlite").expanduser().resolve()


def _open_context(ref: str | None) -> ResearchContext:
    """The context named ``ref``; without one the active context, else ``default``.

    ``default`` is created on first use (as ``trial_recording.run_context`` does; this path
    avoids that module's numpy and polars imports).
    """
    from quantdesk.quant_core.research_context import create_context, get_context

    if ref is None:
        # The active context lives in the holdout module: when nothing has imported it yet,
        # nothing can have made a context active (and importing it costs polars).
        holdout = sys.modules.get("quantdesk.quant_core.holdout")
        active = holdout._ACTIVE.get() if holdout is not None else None
        if active is not None:
            return active
    file = _registry_file()
    try:
        return get_context(DEFAULT_CONTEXT_NAME if ref is None else ref, path=file)
    except InputError as exc:
        if ref is not None and ref != DEFAULT_CONTEXT_NAME:
            raise ToolInputError(
                "context",
                exc.message,
                fix="create the research context first (create_context / `quantdesk context "
                "create`), or omit context to use 'default'.",
            ) from None
    try:
        return create_context(DEFAULT_CONTEXT_NAME, notes=DEFAULT_CONTEXT_NOTES, path=file)
    except InputError:  # another process created it meanwhile
        return get_context(DEFAULT_CONTEXT_NAME, path=file)


def _config_hash(inputs: Any) -> str:
    text = json.dumps(inputs.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _quant_core_refusal(exc: InputError) -> tuple[str, str | None] | None:
    """``(guardrail, fix)`` when ``exc`` is a holdout or trial-budget refusal, else ``None``.

    The classes are looked up among the loaded modules only: an exception cannot be an
    instance of a class that was never imported, and importing them would cost polars and
    numpy on every failed call.
    """
    holdout = sys.modules.get("quantdesk.quant_core.holdout")
    if holdout is not None and isinstance(exc, holdout.HoldoutViolationError):
        # the library's fix names Python calls; a tool caller acts through requests
        return "holdout", (
            "send an as_of that stops before the holdout window for research; look at the "
            "holdout only with the evaluate_holdout tool, once the hypothesis is final."
        )
    if holdout is not None and isinstance(exc, holdout.HoldoutAlreadyEvaluatedError):
        return "holdout", exc.fix
    trials = sys.modules.get("quantdesk.quant_core.trials")
    if trials is not None and isinstance(exc, trials.TrialBudgetExceededError):
        return "trial_budget", exc.fix
    return None


def _classify(exc: Exception, run: ToolRun | None) -> ToolError:
    """Map an exception raised by a tool to the envelope's error."""
    if isinstance(exc, ToolRefusedError):
        return ToolError(kind="refused", guardrail=exc.guardrail, message=exc.message, fix=exc.fix)
    if isinstance(exc, ToolInputError):
        return ToolError(kind="bad_input", field=exc.field, message=exc.message, fix=exc.fix)
    if run is not None and isinstance(exc, InputError):
        refusal = _quant_core_refusal(exc)
        if refusal is not None:  # the quant core's refusals are guardrails
            guardrail, fix = refusal
            run.record(guardrail, "refused", exc.message)
            return ToolError(kind="refused", guardrail=guardrail, message=exc.message, fix=fix)
    if isinstance(exc, InputError):
        return ToolError(kind="bad_input", message=exc.message, fix=exc.fix)
    if isinstance(exc, QuantdeskRuntimeError):
        return ToolError(kind="runtime", message=exc.message, fix=exc.fix, retryable=exc.retryable)
    debug = os.environ.get("QUANTDESK_DEBUG", "") not in ("", "0")
    import logging  # only for internal errors: not worth its import on every call

    logger = logging.getLogger(__name__)
    logger.log(logging.ERROR if debug else logging.DEBUG, "tool raised", exc_info=exc)
    return ToolError(
        kind="runtime",
        message=f"Internal error ({type(exc).__name__}): {str(exc)[:500]}",
        fix="this is a quantdesk bug, not a problem with the request: report it with the "
        "request; QUANTDESK_DEBUG=1 logs the traceback.",
    )


def run_tool(name: str, payload: str | bytes | Mapping[str, Any] | None = None) -> Envelope[Any]:
    """Run tool ``name`` on ``payload`` and return its envelope; never raises.

    Args:
        name: A registered tool name (see :func:`~quantdesk.tools.registry.list_tools`).
        payload: The request: JSON text or bytes, or a mapping (dates may be ``date``
            objects); ``None`` means ``{}``.

    Returns:
        The :class:`~quantdesk.tools.envelope.Envelope`; ``envelope.exit_code`` is the CLI's
        exit code (0 ok, 1 refused or runtime, 2 bad input).
    """
    started = perf_counter()
    label = name if isinstance(name, str) else repr(name)
    spec = get_tool(name)
    if spec is None:
        error = ToolError(
            kind="bad_input",
            field="tool",
            message=f"Unknown tool {label[:100]!r}.",
            fix=f"use one of {tool_names()}.",
        )
        return Envelope(
            ok=False,
            tool=label[:100],
            provenance=Provenance(tool=label[:100]),
            error=error,
            timings={"total": perf_counter() - started},
        )
    timings: dict[str, float] = {}
    run: ToolRun | None = None
    inputs = None
    caught: list[warnings.WarningMessage] = []
    try:
        text, parsed = _read_payload(payload)
        try:
            inputs = spec.input_model.model_validate_json(text, strict=True)
        except ValidationError as exc:
            raise _explain(exc, parsed, spec) from None
        timings["validate"] = perf_counter() - started
        run = ToolRun(spec.name, _open_context(inputs.context))
        from quantdesk.quant_core.research_context import use_context

        with use_context(run.context), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with run.timed("tool"):
                try:
                    result = spec.function(inputs, run)
                finally:
                    # A pending price validation decides first: when the data is invalid,
                    # that refusal explains any later failure, and no result goes out.
                    settle_data_validation(run)
        error = None
    except Exception as exc:  # every failure becomes an envelope; see _classify
        result, error = None, _classify(exc, run)
    if run is not None:
        for message in caught:
            run.warn(f"{message.category.__name__}: {message.message}")
        if error is None:
            for guardrail in spec.guardrails:
                if not run.has(guardrail):
                    run.not_applicable(guardrail, "this request did not involve it.")
    provenance = Provenance(tool=spec.name)
    if run is not None and inputs is not None:
        from quantdesk.quant_core.provenance import code_version

        provenance = Provenance(
            tool=spec.name,
            context_id=run.context.id,
            context_name=run.context.name,
            as_of=run.as_of,
            data_hash=run.data_hash,
            config_hash=_config_hash(inputs),
            trial_id=run.trial_id,
            code_version=code_version(),
        )
        timings.update(run.timings)
    timings["total"] = perf_counter() - started
    fields: dict[str, Any] = {
        "tool": spec.name,
        "warnings": [] if run is None else run.warnings,
        "guardrails": [] if run is None else run.checks,
        "provenance": provenance,
        "timings": timings,
    }
    try:
        return Envelope[spec.output_model](  # type: ignore[name-defined]
            ok=error is None, result=result, error=error, **fields
        )
    except ValidationError as exc:  # a tool returned something its output model rejects
        return Envelope(ok=False, error=_classify(exc, run), **fields)
