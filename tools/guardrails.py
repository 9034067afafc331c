"""Guardrails: on by default, switched off only by an explicit, recorded input field.

Every check records a :class:`~quantdesk.tools.envelope.GuardrailCheck` on the call's
:class:`ToolRun` (``passed``, ``refused``, ``overridden`` or ``not_applicable``, with a reason),
and a refusal stops the call with ``error.kind == "refused"`` and a fix.

* ``as_of``: nothing dated after ``as_of`` is read (data, labels, trial returns); ``as_of``
  may not be later than the research context's. Never overridden.
* ``holdout``: data or trial returns inside the context's holdout window are refused.
  Only :func:`~quantdesk.quant_core.research_context.evaluate_holdout` (the
  ``evaluate_holdout`` tool) reads the window, once per hypothesis.
* ``data_validation``: price-validation errors block every downstream tool. Validation runs in
  a background thread while features are computed and is settled before a trial is recorded
  or a result returned (:func:`settle_data_validation`). Never overridden.
* ``lookahead``: features are verified by perturbation before a CV or backtest uses them
  (:mod:`quantdesk.tools.lookahead`). Never overridden.
* ``leakage``: CV without purging is refused when the label horizon exceeds one session; the
  embargo defaults to the horizon. Never overridden.
* ``costs``: a backtest with zero trading costs is refused. Overridden by ``gross_study``.
* ``trial_budget``: every CV and backtest is a trial; the context's budget (default 50)
  refuses more. Never overridden.
* ``multiple_testing``: every reported Sharpe comes with its DSR given the context's trials;
  N is never set below the recorded count. Never overridden.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from time import perf_counter
from typing import TYPE_CHECKING, NoReturn

from quantdesk.tools.envelope import (
    GuardrailCheck,
    GuardrailOutcome,
    ToolInputError,
    ToolRefusedError,
)

if TYPE_CHECKING:
    import polars as pl

    from quantdesk.quant_core.research_context import ResearchContext
    from quantdesk.quant_core.trials import TrialRecord, TrialRegistry
    from quantdesk.tools.validation_cache import ValidationVerdict

__all__ = [
    "GUARDRAILS",
    "GuardrailRule",
    "ToolRun",
    "check_holdout",
    "check_loaded_as_of",
    "check_trial_budget",
    "check_trial_dates",
    "context_trial",
    "resolve_as_of",
    "settle_data_validation",
    "start_data_validation",
    "touches_holdout",
]


@dataclass(frozen=True)
class GuardrailRule:
    """A guardrail's rule and how (if at all) it can be switched off.

    Attributes:
        name: Guardrail name, as in the envelope.
        rule: What it enforces.
        override: The input field that switches it off, or ``None`` (never).
    """

    name: str
    rule: str
    override: str | None = None


GUARDRAILS: dict[str, GuardrailRule] = {
    rule.name: rule
    for rule in (
        GuardrailRule(
            "as_of",
            "Nothing dated after as_of is read; as_of may not be later than the research "
            "context's as_of.",
        ),
        GuardrailRule(
            "holdout",
            "Data inside the research context's holdout window is refused; evaluate_holdout is "
            "the only way in, once per hypothesis.",
        ),
        GuardrailRule(
            "data_validation", "Price-validation errors block every tool downstream of them."
        ),
        GuardrailRule(
            "lookahead",
            "Features are verified by perturbation (data after t changes, features at t must "
            "not) on a sample before a CV or backtest uses them.",
        ),
        GuardrailRule(
            "leakage",
            "Cross-validation without purging is refused when the label horizon exceeds one "
            "session; the embargo defaults to the label horizon.",
        ),
        GuardrailRule(
            "costs",
            "A backtest with zero trading costs is refused unless marked as a gross study.",
            override="gross_study",
        ),
        GuardrailRule(
            "trial_budget",
            "Every CV and backtest is a counted trial; a research context's trial budget "
            "(default 50) refuses further trials.",
        ),
        GuardrailRule(
            "multiple_testing",
            "Every reported Sharpe ratio comes with its deflated Sharpe ratio given the trials "
            "of its research context; N cannot be set below the recorded count.",
        ),
    )
}


class ToolRun:
    """What one tool call has checked, warned about and produced so far.

    Tool functions receive it as their second argument and record guardrail outcomes,
    warnings, the data hash and the trial id on it; the runner turns it into the envelope.

    Args:
        tool: Tool name.
        context: The research context the call runs in.
    """

    def __init__(self, tool: str, context: ResearchContext) -> None:
        self.tool = tool
        self.context = context
        self.as_of: date | None = None
        self.data_hash: str | None = None
        self.trial_id: str | None = None
        self.checks: list[GuardrailCheck] = []
        self.warnings: list[str] = []
        self.timings: dict[str, float] = {}
        self._validation: _PendingValidation | None = None

    # -- guardrail outcomes ---------------------------------------------------------------

    def record(self, name: str, outcome: GuardrailOutcome, reason: str) -> None:
        """Record a guardrail outcome (a later outcome of the same name replaces it)."""
        check = GuardrailCheck(name=name, outcome=outcome, reason=reason)
        names = [c.name for c in self.checks]
        if name in names:  # keep the first position: the envelope lists checks in order
            self.checks[names.index(name)] = check
        else:
            self.checks.append(check)

    def passed(self, name: str, reason: str) -> None:
        """Record that guardrail ``name`` passed."""
        self.record(name, "passed", reason)

    def overridden(self, name: str, reason: str) -> None:
        """Record that guardrail ``name`` was switched off by an explicit input field."""
        self.record(name, "overridden", reason)

    def not_applicable(self, name: str, reason: str) -> None:
        """Record that guardrail ``name`` has nothing to check in this call."""
        self.record(name, "not_applicable", reason)

    def refuse(self, name: str, message: str, *, fix: str | None = None) -> NoReturn:
        """Record a refusal and stop the call.

        Raises:
            ToolRefusedError: always.
        """
        self.record(name, "refused", message)
        raise ToolRefusedError(name, message, fix=fix)

    def has(self, name: str) -> bool:
        """Whether guardrail ``name`` has an outcome yet."""
        return any(c.name == name for c in self.checks)

    def warn(self, message: str) -> None:
        """Add a warning for the caller (duplicates are dropped)."""
        if message not in self.warnings:
            self.warnings.append(message)

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the block's wall-clock seconds to ``timings[phase]``."""
        started = perf_counter()
        try:
            yield
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + perf_counter() - started


# --------------------------------------------------------------------------- checks


def resolve_as_of(run: ToolRun, requested: date | None, *, required: bool = True) -> date | None:
    """Return the call's ``as_of``: the request's, else the context's; check it.

    Args:
        run: The call.
        requested: ``as_of`` from the request.
        required: Refuse a call that has neither (research tools); otherwise ``None`` is
            returned and the guardrail is not applicable.

    Raises:
        ToolInputError: no ``as_of`` where one is required.
        ToolRefusedError: ``as_of`` later than the research context's.
    """
    ctx_as_of = run.context.as_of
    as_of = requested if requested is not None else ctx_as_of
    if as_of is None:
        if required:
            raise ToolInputError(
                "as_of",
                "as_of is required: a research tool must know the point in time it works at.",
                fix='add "as_of": "YYYY-MM-DD" (the last date whose data may be used), or '
                "run in a research context that sets as_of.",
            )
        run.not_applicable("as_of", "no as_of was given and this request reads no dated data.")
        return None
    if ctx_as_of is not None and as_of > ctx_as_of:
        run.refuse(
            "as_of",
            f"as_of={as_of} is after the as_of {ctx_as_of} of research context "
            f"{run.context.name!r}: data after it does not exist for this research.",
            fix=f"send as_of on or before {ctx_as_of} (or omit it to use {ctx_as_of}).",
        )
    run.as_of = as_of
    return as_of


def check_loaded_as_of(run: ToolRun, frame: pl.DataFrame, as_of: date | None) -> None:
    """Verify that a loaded frame has no row dated after ``as_of`` (belt and braces).

    Raises:
        ToolRefusedError: a row is dated after ``as_of`` (a provider bug; nothing is used).
    """
    last = frame["date"].max() if frame.height else None
    if as_of is None:
        run.as_of = last  # type: ignore[assignment]
        run.passed("as_of", f"no as_of given: the data ends on {last}, which becomes as_of.")
        return
    if last is not None and last > as_of:  # type: ignore[operator]
        run.refuse(
            "as_of",
            f"The loaded data runs to {last}, after as_of={as_of}.",
            fix="report this as a bug in the price provider; the data was not used.",
        )
    run.passed("as_of", f"{frame.height:,} rows read, the last dated {last} (as_of {as_of}).")


def check_holdout(run: ToolRun, frame: pl.DataFrame, *, what: str) -> None:
    """Refuse ``frame`` when it reaches into the research context's holdout window.

    Raises:
        ToolRefusedError: rows inside the holdout (outside :func:`evaluate_holdout`).
    """
    from quantdesk.quant_core.research_context import HoldoutViolationError, guard_holdout

    ctx = run.context
    if not ctx.has_holdout:
        run.not_applicable("holdout", f"research context {ctx.name!r} has no holdout window.")
        return
    try:
        guard_holdout(frame, what=what)
    except HoldoutViolationError as exc:
        before = f"as_of before {ctx.holdout_start}"
        run.refuse("holdout", exc.message, fix=f"send {before}; {exc.fix}")
    if run.tool == "evaluate_holdout":
        run.passed("holdout", f"holdout {ctx.holdout_label()} opened by evaluate_holdout.")
    else:
        run.passed("holdout", f"no row touches the holdout {ctx.holdout_label()}.")


class _PendingValidation:
    """Price validation running in a thread while the tool computes features and labels.

    Validation reads the frame only and has no side effect, so it can overlap the work that
    needs no verdict yet; :func:`settle_data_validation` waits for it before anything is
    recorded or returned.
    """

    def __init__(self, frame: pl.DataFrame, data_hash: str | None) -> None:
        from quantdesk.tools.validation_cache import validation_verdict

        self.verdict: ValidationVerdict | None = None
        self.error: BaseException | None = None

        def work() -> None:
            try:
                self.verdict = validation_verdict(frame, data_hash)
            except BaseException as exc:  # handed to the waiting thread, which raises it
                self.error = exc

        self.thread = threading.Thread(target=work, name="quantdesk-validation", daemon=True)
        self.thread.start()

    def wait(self) -> ValidationVerdict:
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.verdict is not None
        return self.verdict


def start_data_validation(run: ToolRun, frame: pl.DataFrame) -> None:
    """Start validating ``frame`` in the background (cached by ``run.data_hash``).

    The ``data_validation`` guardrail is decided by :func:`settle_data_validation`, which tools
    call before recording a trial and the runner calls before returning any result.
    """
    settle_data_validation(run)
    run._validation = _PendingValidation(frame, run.data_hash)


def settle_data_validation(run: ToolRun) -> None:
    """Wait for a pending validation; errors refuse the call, warnings are passed on.

    Raises:
        ToolRefusedError: the validator found errors.
    """
    pending, run._validation = run._validation, None
    if pending is None:
        return
    with run.timed("guardrails"):
        verdict = pending.wait()
    if not verdict.ok:
        run.refuse(
            "data_validation",
            f"Price validation found {verdict.n_errors} error(s), first: "
            f"{'; '.join(verdict.first_errors)}. Downstream tools do not run on data that "
            "cannot be right.",
            fix="run validate_data for the full list; repair the file, or exclude the "
            f"affected symbol(s) {list(verdict.bad_symbols[:10])} with source.symbols.",
        )
    if verdict.warnings:
        run.warn(f"price validation warnings (kept): {verdict.warnings}")
    cached = " (cached verdict for this data hash)" if verdict.cached else ""
    run.passed(
        "data_validation",
        f"{verdict.n_rows:,} rows of {verdict.n_symbols} symbols: no errors, "
        f"{sum(verdict.warnings.values())} warning(s){cached}.",
    )


def check_trial_budget(run: ToolRun) -> None:
    """Refuse a new trial when the research context has used its budget.

    Raises:
        ToolRefusedError: the budget is used up.
    """
    from quantdesk.quant_core.trials import TrialBudgetExceededError, TrialRegistry

    ctx = run.context
    registry = TrialRegistry(ctx.registry)
    try:
        registry.check_budget(ctx)
    except TrialBudgetExceededError as exc:
        run.refuse("trial_budget", exc.message, fix=exc.fix)
    used = registry.count(ctx)
    run.passed(
        "trial_budget",
        f"{used} of {ctx.trial_budget} trials used in research context {ctx.name!r}; this "
        f"run will be trial #{used + 1}.",
    )


def context_trial(registry: TrialRegistry, run: ToolRun, trial_id: str) -> TrialRecord:
    """Return trial ``trial_id`` of the call's research context.

    Raises:
        ToolInputError: no such trial in this context.
    """
    from quantdesk.quant_core.errors import InputError

    try:
        record = registry.get(trial_id)
    except InputError:
        record = None
    if record is None or record.context_id != run.context.id:
        raise ToolInputError(
            "trial_id",
            f"No trial {trial_id!r} in research context {run.context.name!r}.",
            fix="list the context's trials with list_trials and pass one of their trial_id.",
        )
    return record


def touches_holdout(context: ResearchContext, record: TrialRecord) -> bool:
    """Whether a trial's returns are dated inside the context's holdout window."""
    start, end = context.holdout_start, context.holdout_end
    if start is None or record.last_date is None or record.first_date is None:
        return False
    return record.last_date >= start and (end is None or record.first_date <= end)


def check_trial_dates(run: ToolRun, records: list[TrialRecord], as_of: date | None) -> None:
    """Refuse trials whose returns run past ``as_of`` or into the holdout window.

    A trial series dated inside the holdout can only come from a holdout evaluation; reading
    it elsewhere would be a second look at the holdout.

    Raises:
        ToolRefusedError: a trial ends after ``as_of`` or touches the holdout.
    """
    inside = [r for r in records if touches_holdout(run.context, r)]
    if inside:
        run.refuse(
            "holdout",
            f"Trial {inside[0].trial_id} has returns inside the holdout window "
            f"{run.context.holdout_label()} of research context {run.context.name!r}.",
            fix="use trials of the search period; holdout results are read once, through "
            "evaluate_holdout (list_trials shows the recorded evaluations).",
        )
    if run.context.has_holdout:
        run.passed("holdout", f"no trial read touches the holdout {run.context.holdout_label()}.")
    if as_of is None:
        return
    late = [r for r in records if r.last_date is not None and r.last_date > as_of]
    if late:
        latest = max(r.last_date for r in late if r.last_date is not None)
        run.refuse(
            "as_of",
            f"Trial {late[0].trial_id} has returns up to {late[0].last_date}, after as_of={as_of}.",
            fix=f"send as_of on or after {latest}, or leave such trials out.",
        )
    run.passed("as_of", f"every trial read ends on or before {as_of}.")
