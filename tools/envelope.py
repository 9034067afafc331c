"""The result envelope every tool returns, and the two exceptions tools raise to fill it.

A tool never raises past :func:`~quantdesk.tools.runner.run_tool`: whatever happens, the
caller (an agent, the CLI, the MCP server) gets one :class:`Envelope`, JSON-ready with
``envelope.model_dump(mode="json")``::

    {"ok": true, "tool": "deflated_sharpe", "result": {...}, "warnings": [...],
     "guardrails": [{"name": "trial_budget", "outcome": "passed", "reason": "..."}],
     "provenance": {"context_id": ..., "as_of": ..., "data_hash": ..., "trial_id": ...},
     "error": null, "timings": {...}}

``error.kind`` separates the three families of failure (``docs/design.md``): ``bad_input``
(the request itself is wrong: the message names the field and ``fix`` says what to send),
``refused`` (a guardrail said no: ``fix`` says what would be allowed) and ``runtime`` (a
failure the caller could not prevent). :attr:`Envelope.exit_code` maps them to the CLI's exit
codes: 0 ok, 1 refused or runtime, 2 bad input.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from quantdesk.quant_core.errors import InputError, QuantdeskError

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_OK",
    "EXIT_REFUSED",
    "Envelope",
    "ErrorKind",
    "GuardrailCheck",
    "GuardrailOutcome",
    "Provenance",
    "ToolError",
    "ToolInputError",
    "ToolModel",
    "ToolRefusedError",
]

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2

GuardrailOutcome = Literal["passed", "refused", "overridden", "not_applicable"]
ErrorKind = Literal["bad_input", "refused", "runtime"]
ResultT = TypeVar("ResultT")


class ToolModel(BaseModel):
    """Base of every tool input and output model: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")


class GuardrailCheck(ToolModel):
    """One guardrail evaluated during a call.

    Attributes:
        name: Guardrail name (see ``GUARDRAILS`` in :mod:`quantdesk.tools.guardrails`).
        outcome: ``passed``, ``refused``, ``overridden`` (switched off by an explicit input
            field, which ``reason`` names) or ``not_applicable``.
        reason: Why, in one or two sentences.
    """

    name: str
    outcome: GuardrailOutcome
    reason: str


class Provenance(ToolModel):
    """Where a result comes from: enough to reproduce and audit it.

    Attributes:
        tool: Tool name.
        context_id: Research context the call ran in (``None`` if it never got that far).
        context_name: Its name.
        as_of: Point-in-time date of the call (nothing dated later was read).
        data_hash: Content hash of the price data the call used, when it read any.
        config_hash: SHA-256 of the validated request (canonical JSON).
        trial_id: Trial the call recorded in the registry, if any.
        code_version: quantdesk version and git commit.
    """

    tool: str
    context_id: str | None = None
    context_name: str | None = None
    as_of: date | None = None
    data_hash: str | None = None
    config_hash: str | None = None
    trial_id: str | None = None
    code_version: str | None = None


class ToolError(ToolModel):
    """Why a call did not succeed, written for a model or a person to act on.

    Attributes:
        kind: ``bad_input``, ``refused`` or ``runtime``.
        field: The offending input field as a dotted path (``source.path``), when known.
        guardrail: The guardrail that refused (``refused`` only).
        message: What was wrong.
        fix: What to send or do instead.
        retryable: Whether the same call may succeed later (``runtime`` only).
    """

    kind: ErrorKind
    field: str | None = None
    guardrail: str | None = None
    message: str
    fix: str | None = None
    retryable: bool = False


class Envelope(ToolModel, Generic[ResultT]):
    """The outcome of one tool call.

    Attributes:
        ok: True when ``result`` holds the tool's output.
        tool: Tool name as requested.
        result: The tool's output model (``None`` when ``ok`` is false).
        warnings: Things the caller should know that did not stop the call.
        guardrails: Every guardrail evaluated, in order, with its outcome and reason.
        provenance: Context, as-of date, data and config hashes, trial id, code version.
        error: Why the call failed (``None`` when ``ok``).
        timings: Wall-clock seconds by phase (``total``, ``guardrails``, ``work``, ...).
    """

    ok: bool
    tool: str
    result: ResultT | None = None
    warnings: list[str] = Field(default_factory=list)
    guardrails: list[GuardrailCheck] = Field(default_factory=list)
    provenance: Provenance
    error: ToolError | None = None
    timings: dict[str, float] = Field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """CLI exit code: 0 ok, 2 bad input, 1 refused or runtime failure."""
        if self.ok:
            return EXIT_OK
        if self.error is not None and self.error.kind == "bad_input":
            return EXIT_BAD_INPUT
        return EXIT_REFUSED

    def to_json_dict(self) -> dict[str, Any]:
        """Return the envelope as plain JSON data (dates as ISO strings)."""
        return self.model_dump(mode="json")


class ToolRefusedError(QuantdeskError):
    """A guardrail refused the request (becomes ``error.kind == "refused"``).

    Args:
        guardrail: Name of the guardrail.
        message: Why the request is refused.
        fix: What would be allowed instead.
    """

    def __init__(self, guardrail: str, message: str, *, fix: str | None = None) -> None:
        self.guardrail = guardrail
        super().__init__(message, fix=fix)


class ToolInputError(InputError):
    """The request is malformed (becomes ``error.kind == "bad_input"``).

    Args:
        field: Dotted path of the offending field (``None`` for the whole request).
        message: What is wrong, naming the value.
        fix: What to send instead.
    """

    def __init__(self, field: str | None, message: str, *, fix: str | None = None) -> None:
        self.field = field
        super().__init__(message, fix=fix)
