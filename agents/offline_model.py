"""The offline model: an honest, rule-driven research policy, not a fake language model.

It is the default when no provider key is configured, so that a research session runs on a
fresh machine with no network. It speaks the same protocol as an LLM: it reads the
conversation, answers with tool calls built for the tools offered in the request, and, once
the tool results are in, writes its answer from fixed templates filled with those results.
Every answer starts by saying that the offline policy, not a language model, produced it, and
every number in it names the tool call it came from.

The plan (see :func:`make_plan`) is read from the last user message:

* **hypothesis family**, from keywords (first match wins, in this order):

  ==============  ==================================  =====================================
  family          keywords                            test
  ==============  ==================================  =====================================
  ``ml``          ml, machine learning, lightgbm,     ``walk_forward_cv``: LightGBM on 7
                  gradient boosting, predict...       standard features, purged walk-forward
  ``reversal``    reversal, mean reversion,           ``backtest``: long recent losers
                  short-term, contrarian              (``rev_5``), weekly
  ``volatility``  volatility, low-vol, low-risk,      ``backtest``: long low realised vol
                  betting against beta                (``rvol_63``, lower is better), monthly
  ``momentum``    momentum, trend, 12-1, winners      ``backtest``: 12-1 momentum
                  (also the default)                  (``mom_252_21``), weekly
  ==============  ==================================  =====================================

* **horizon**: "N-day"/"N sessions" (default 5 sessions): the ML label horizon, and the
  rebalance frequency of the rule families (1 daily, up to 10 weekly, longer monthly);
* **dates**: ``as of YYYY-MM-DD`` (or the last ISO date in the message); otherwise the last
  date ``fetch_prices`` reports. ``from YYYY-MM-DD`` sets the first date;
* **universe**: a ``*.parquet``/``*.csv`` path (a file source), ``noise`` (the demo market's
  nothing-to-find preset), otherwise the seeded demo market; upper-case tickers after
  "symbols"/"tickers" restrict it;
* explicit hints override all of that: a JSON object in a system or user message with any of
  ``source``, ``as_of``, ``context``, ``family``, ``horizon``.

Tool sequence (tools absent from the request are skipped): ``fetch_prices`` ->
``validate_data`` -> ``compute_features`` -> ``backtest`` (rule families) or
``walk_forward_cv`` (``ml``) -> ``deflated_sharpe`` and ``risk_report`` on the recorded trial
-> ``search_filings`` -> answer. A refusal or error stops the sequence and the answer reports it
with the tool's fix; the policy never retries with other parameters (that would be an
uncounted search).

The filing search (last, same as-of) looks for disclosures that move prices for reasons no
price signal sees, in the names the strategy holds on the last date (else the universe). The
policy reads only its citations, never the passages (retrieved text stays data); a failed
search (no filings indexed) is reported and the answer goes on without filings.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from quantdesk.agents.filing_evidence import DISCLOSURE_QUERY, search_tickers
from quantdesk.agents.messages import Message, ModelRequest, ModelResponse, StreamEvent, ToolCall
from quantdesk.agents.testing import response_events

__all__ = [
    "FAMILIES",
    "OFFLINE_MODEL_ID",
    "OfflineModel",
    "ResearchPlan",
    "make_plan",
    "render_answer",
]

OFFLINE_MODEL_ID = "offline"
Family = Literal["momentum", "reversal", "volatility", "ml"]

FAMILIES: dict[str, dict[str, Any]] = {
    "ml": {
        "keywords": r"\b(ml|machine[- ]learning|lightgbm|gradient[- ]boost\w*|predict\w*"
        r"|classifier)\b",
        "description": "a LightGBM model on the standard price/volume features predicts "
        "forward returns out of sample (purged walk-forward CV)",
        "features": ["mom_252_21", "ret_21", "rev_5", "rvol_63", "volz_21", "rsi_14", "ma_dist_50"],
    },
    "reversal": {
        "keywords": r"\b(reversal|revert\w*|mean[- ]reversion|short[- ]term|contrarian)\b",
        "description": "last week's losers outperform last week's winners (short-term reversal)",
        "features": ["rev_5", "ret_21", "rvol_63"],
        "strategy": {"signal": "rev_5", "higher_is_better": True},
    },
    "volatility": {
        "keywords": r"\b(volatility|low[- ]vol\w*|low[- ]risk|betting against beta)\b",
        "description": "low realised-volatility stocks beat high-volatility stocks on a "
        "risk-adjusted basis (low-volatility anomaly)",
        "features": ["rvol_63", "rvol_21", "mom_252_21"],
        "strategy": {"signal": "rvol_63", "higher_is_better": False},
    },
    "momentum": {
        "keywords": r"\b(momentum|trend\w*|12-1|winners)\b",
        "description": "past 12-month winners (skipping the last month) keep outperforming "
        "past losers (cross-sectional 12-1 momentum)",
        "features": ["mom_252_21", "ret_21", "rvol_63"],
        "strategy": {"signal": "mom_252_21", "higher_is_better": True},
    },
}
"""The documented hypothesis families, in keyword-matching order (momentum is the default)."""

_ISO = r"(\d{4}-\d{2}-\d{2})"
_TICKERS = re.compile(
    r"\b(?:symbols?|tickers?|universe)\s*[:=]?\s*((?:[A-Z][A-Z0-9.\-]{0,9}[ ,]*)+)"
)


@dataclass(frozen=True)
class ResearchPlan:
    """What the offline policy will test.

    Attributes:
        question: The user's request, verbatim.
        family: Hypothesis family (a key of :data:`FAMILIES`).
        horizon: Label horizon / holding period in sessions.
        source: Data source reference sent to every tool.
        as_of: Point-in-time date, or ``None`` (then ``fetch_prices``'s last date).
        context: Research context id or name, or ``None`` (the tools' default).
        assumptions: What the plan assumed because the request did not say.
    """

    question: str
    family: Family = "momentum"
    horizon: int = 5
    source: dict[str, Any] = field(default_factory=lambda: {"kind": "demo", "seed": 7})
    as_of: str | None = None
    context: str | None = None
    assumptions: tuple[str, ...] = ()

    @property
    def rebalance(self) -> str:
        """Rebalance frequency of the rule families, from the horizon."""
        return "daily" if self.horizon <= 1 else "weekly" if self.horizon <= 10 else "monthly"

    @property
    def description(self) -> str:
        """One-line statement of the hypothesis."""
        return str(FAMILIES[self.family]["description"])


def _json_hints(messages: list[Message]) -> dict[str, Any]:
    hints: dict[str, Any] = {}
    decoder = json.JSONDecoder()
    for message in messages:
        if message.role not in {"system", "user"}:
            continue
        text = message.content
        for start in (m.start() for m in re.finditer(r"\{", text)):
            try:
                obj, _ = decoder.raw_decode(text, start)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict) and {"source", "as_of", "context", "family", "horizon"} & set(
                obj
            ):
                hints.update(obj)
    return hints


def make_plan(messages: list[Message]) -> ResearchPlan:
    """Turn the conversation's last user message (and any JSON hints) into a plan."""
    users = [m for m in messages if m.role == "user"]
    question = users[-1].content.strip() if users else ""
    lower = question.lower()
    assumptions: list[str] = []
    family: Family = "momentum"
    for name, spec in FAMILIES.items():
        if re.search(spec["keywords"], lower):
            family = name  # type: ignore[assignment]
            break
    else:
        assumptions.append("no hypothesis family named: tested 12-1 momentum (the default)")
    horizon_match = re.search(r"\b(\d{1,3})[- ]?(?:day|days|session|sessions|d)\b", lower)
    horizon = int(horizon_match.group(1)) if horizon_match else 5
    if not horizon_match:
        assumptions.append("no horizon given: 5 sessions")
    horizon = min(max(horizon, 1), 252)
    source: dict[str, Any] = {"kind": "demo", "seed": 7}
    path = re.search(r"([\w./\-]+\.(?:parquet|csv))\b", question)
    if path:
        source = {"kind": "file", "path": path.group(1)}
    elif re.search(r"\bnoise\b", lower):
        source = {"kind": "demo", "preset": "noise", "seed": 7}
    else:
        assumptions.append("no data named: the seeded demo market (synthetic)")
    tickers = _TICKERS.search(question)
    if tickers:
        names = [t for t in re.split(r"[ ,]+", tickers.group(1)) if t]
        if len(names) >= 3:
            source = {**source, "symbols": names}
    as_of_match = re.search(r"as[ -]of\s+" + _ISO, lower) or None
    dates = re.findall(_ISO, question)
    start_match = re.search(r"\bfrom\s+" + _ISO, lower)
    as_of = as_of_match.group(1) if as_of_match else None
    if as_of is None and dates and not (start_match and len(dates) == 1):
        as_of = dates[-1]
    if start_match:
        source = {**source, "start": start_match.group(1)}
    if as_of is None:
        assumptions.append("no as-of date: the data's last date")
    plan = ResearchPlan(question, family, horizon, source, as_of, None, tuple(assumptions))
    hints = _json_hints(messages)
    if hints:
        updates = {
            k: hints[k] for k in ("source", "as_of", "context", "family", "horizon") if k in hints
        }
        if updates.get("family") not in (None, *FAMILIES):
            updates.pop("family")
        plan = replace(plan, **updates)
    return plan


def _result_of(content: str) -> dict[str, Any]:
    try:
        data = json.loads(content)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _num(value: Any, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _cite(call: ToolCall) -> str:
    return f"[{call.name} {call.id}]"


def _evidence_line(call: ToolCall, envelope: dict[str, Any]) -> str:
    """One templated line per successful tool result, every number cited."""
    r = envelope.get("result") or {}
    c = _cite(call)
    if call.name == "fetch_prices":
        return (
            f"- Data {c}: {r.get('n_symbols')} symbols, {_num(r.get('n_rows'), ',')} rows, "
            f"{r.get('first_date')} to {r.get('last_date')}."
        )
    if call.name == "validate_data":
        return f"- Validation {c}: {r.get('n_errors')} errors, {r.get('n_warnings')} warnings."
    if call.name == "compute_features":
        look = r.get("lookahead") or {}
        return (
            f"- Features {c}: {', '.join(r.get('columns') or [])}; look-ahead check "
            f"{'passed' if look.get('passed') else 'FAILED'} on "
            f"{_num(look.get('n_values'), ',')} values."
        )
    if call.name == "backtest":
        p = r.get("performance") or {}
        trial = r.get("trial") or {}
        return (
            f"- Backtest {c} (trial #{trial.get('number')}, {trial.get('first_date')} to "
            f"{trial.get('last_date')}): net Sharpe {_num(p.get('sharpe'), '.2f')}, CAGR "
            f"{_num(p.get('cagr'), '.1%')}, volatility {_num(p.get('annual_volatility'), '.1%')}, "
            f"max drawdown {_num(p.get('max_drawdown'), '.1%')}, turnover "
            f"{_num(p.get('annual_turnover'), '.1f')}x a year."
        )
    if call.name == "walk_forward_cv":
        ic = r.get("ic") or {}
        trial = r.get("trial") or {}
        return (
            f"- Walk-forward CV {c} (trial #{trial.get('number')}, {len(r.get('folds') or [])} "
            f"purged folds): mean IC {_num(ic.get('mean'), '.3f')} "
            f"(t {_num(ic.get('t_stat'), '.1f')}, "
            f"positive on {_num(ic.get('hit_rate'), '.0%')} of dates), Sharpe of the trial "
            f"{_num(trial.get('sharpe_annualised'), '.2f')}."
        )
    if call.name == "deflated_sharpe":
        d = r.get("deflated_sharpe") or {}
        return (
            f"- Deflated Sharpe {c}: DSR {_num(d.get('dsr'), '.3f')} given N="
            f"{_num(d.get('n_trials'), '.0f')} trials of this research context "
            f"({'passes' if d.get('passes_0_95') else 'fails'} the 0.95 bar)."
        )
    if call.name == "risk_report":
        p = r.get("performance") or {}
        tail = r.get("tail") or {}
        sizing = r.get("sizing") or {}
        return (
            f"- Risk {c}: max drawdown {_num(p.get('max_drawdown'), '.1%')}, 99% CVaR "
            f"{_num(tail.get('cvar_99'), '.2%')} a day, recommended leverage "
            f"{_num(sizing.get('recommended_leverage'), '.2f')}."
        )
    if call.name == "search_filings":
        hits = r.get("hits") or []
        filings = sorted({(h.get("citation") or {}).get("doc_id") for h in hits} - {None})
        tickers = sorted({(h.get("citation") or {}).get("ticker") for h in hits} - {None})
        return (
            f"- Filings {c}: {len(hits)} passage(s) from {len(filings)} filing(s) public by "
            f"{r.get('as_of')} ({', '.join(tickers) or 'no company'}); the critic reads them."
        )
    return f"- {call.name} {c}: ok."


def _verdict(done: list[tuple[ToolCall, dict[str, Any], bool]]) -> str:
    by_name = {call.name: (call, env) for call, env, _ in done}
    if "deflated_sharpe" not in by_name:
        return "INCONCLUSIVE: the test did not reach the deflated Sharpe ratio (see above)."
    call, env = by_name["deflated_sharpe"]
    d = (env.get("result") or {}).get("deflated_sharpe") or {}
    sharpe, dsr = d.get("sharpe_annualised"), d.get("dsr")
    if sharpe is None or dsr is None:
        return "INCONCLUSIVE: the deflated Sharpe ratio could not be computed."
    if sharpe > 0 and dsr >= 0.95:
        return (
            f"SUPPORTED in-sample: Sharpe {sharpe:.2f} with DSR {dsr:.3f} >= 0.95 {_cite(call)}. "
            "Not yet confirmed on the holdout."
        )
    return (
        f"NOT SUPPORTED: Sharpe {sharpe:.2f} with DSR {dsr:.3f} < 0.95 {_cite(call)}; the "
        "result is indistinguishable from the best of that many noise trials."
    )


def render_answer(
    plan: ResearchPlan,
    done: list[tuple[ToolCall, dict[str, Any], bool]],
    *,
    offered_tools: list[str],
) -> str:
    """The offline policy's final answer, from templates filled with the tool results."""
    lines = [
        f"Model: {OFFLINE_MODEL_ID} (quantdesk's rule-driven research policy, not a language "
        "model; every number below is copied from the cited tool call).",
        f"Question: {plan.question or '(none given)'}",
        f"Hypothesis ({plan.family}): {plan.description}.",
        f"Plan: source {json.dumps(plan.source, sort_keys=True)}, as of "
        f"{plan.as_of or 'the last date of the data'}, horizon {plan.horizon} sessions.",
    ]
    if plan.assumptions:
        lines.append("Assumed: " + "; ".join(plan.assumptions) + ".")
    if not offered_tools:
        lines.append("No tools were offered in this request, so nothing was tested.")
        return "\n".join(lines)
    lines.append("Evidence:")
    for call, envelope, is_error in done:
        if (is_error or not envelope.get("ok", True)) and call.name == "search_filings":
            error = envelope.get("error") or {}
            lines.append(
                f"- Filings {_cite(call)}: none read ({error.get('kind', 'error')}): "
                f"{error.get('message', 'no message')} The answer rests on the prices alone."
            )
        elif is_error or not envelope.get("ok", True):
            error = envelope.get("error") or {}
            lines.append(
                f"- {call.name} {_cite(call)} stopped the study ({error.get('kind', 'error')}): "
                f"{error.get('message', 'no message')} Fix: {error.get('fix') or 'n/a'}"
            )
        else:
            lines.append(_evidence_line(call, envelope))
            if call.name == "validate_data" and (envelope.get("result") or {}).get(
                "blocks_downstream"
            ):
                lines.append("- The data has blocking errors: the study stops here.")
    lines.append("Verdict: " + _verdict(done))
    lines.append(
        "Limits: one pre-registered configuration per family (no parameter search); the "
        "holdout was not evaluated; a rule-driven policy cannot judge regime dependence or "
        "economic rationale beyond these numbers."
    )
    return "\n".join(lines)


class OfflineModel:
    """The rule-driven default model (``offline``): plans, calls tools, reports from templates.

    Stateless: every decision is derived from the conversation, so a resumed or replayed
    session takes the same path. Usage is zero tokens (no language model runs).

    Args:
        name: Ignored variant name (``offline:<name>``), accepted for the registry.
    """

    model_id = OFFLINE_MODEL_ID

    def __init__(self, name: str | None = None) -> None:
        self.name = name

    # The pieces of the conversation since the last user message: the plan's progress.
    @staticmethod
    def _progress(messages: list[Message]) -> list[tuple[ToolCall, dict[str, Any], bool]]:
        last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
        calls: dict[str, ToolCall] = {}
        done: list[tuple[ToolCall, dict[str, Any], bool]] = []
        for message in messages[last_user + 1 :]:
            for call in message.tool_calls:
                calls[call.id] = call
            for result in message.tool_results:
                call = calls.get(result.tool_call_id)
                if call is not None:
                    done.append((call, _result_of(result.content), result.is_error))
        return done

    def _next_call(
        self,
        plan: ResearchPlan,
        done: list[tuple[ToolCall, dict[str, Any], bool]],
        offered: set[str],
    ) -> tuple[str, dict[str, Any]] | None:
        called = {call.name: envelope for call, envelope, _ in done}
        common: dict[str, Any] = {"source": plan.source}
        if plan.context:
            common["context"] = plan.context
        as_of = plan.as_of or (called.get("fetch_prices", {}).get("result") or {}).get("last_date")
        dated = {**common, "as_of": as_of} if as_of else dict(common)
        spec = FAMILIES[plan.family]
        ctx = {"context": plan.context} if plan.context else {}
        trial_id = None
        for name in ("backtest", "walk_forward_cv"):
            trial = ((called.get(name) or {}).get("result") or {}).get("trial") or {}
            trial_id = trial_id or trial.get("trial_id")
        steps: list[tuple[str, dict[str, Any]]] = [
            ("fetch_prices", {**dated, "preview_rows": 0}),
            ("validate_data", dated),
            (
                "compute_features",
                {
                    **dated,
                    "features": {"names": spec["features"], "transform": "rank"},
                    # the last cross-section tells which names the strategy holds (filings)
                    "latest_rows": 100,
                },
            ),
        ]
        if plan.family == "ml":
            steps.append(
                (
                    "walk_forward_cv",
                    {
                        **dated,
                        "features": {"names": spec["features"], "transform": "rank"},
                        "label": {"kind": "forward_return", "horizon": plan.horizon},
                        "model": {"kind": "lightgbm", "seed": 7, "num_threads": 1},
                        "cv": {"splitter": "walk_forward", "n_splits": 5, "purge": True},
                    },
                )
            )
        else:
            strategy = {
                **spec["strategy"],
                "transform": "rank",
                "side": "dollar_neutral",
                "rebalance": plan.rebalance,
            }
            steps.append(("backtest", {**dated, "strategy": strategy}))
        if trial_id:
            steps.append(("deflated_sharpe", {**ctx, "trial_id": trial_id}))
            steps.append(("risk_report", {**ctx, "trial_id": trial_id}))
            if as_of:
                steps.append(("search_filings", self._filing_search(plan, called, ctx, as_of)))
        for name, arguments in steps:
            if name in offered and name not in called:
                return name, arguments
        return None

    @staticmethod
    def _filing_search(
        plan: ResearchPlan, called: dict[str, dict[str, Any]], ctx: dict[str, Any], as_of: str
    ) -> dict[str, Any]:
        """``search_filings`` arguments: disclosures of the held names (else the universe)."""
        features = (called.get("compute_features") or {}).get("result") or {}
        tickers = search_tickers(features, FAMILIES[plan.family].get("strategy"), plan.source)
        arguments = {**ctx, "query": DISCLOSURE_QUERY, "as_of": as_of, "k": 10, "infer": False}
        return {**arguments, "ticker": tickers} if tickers else arguments

    def decide(self, req: ModelRequest) -> ModelResponse:
        """The next step for this conversation: one tool call, or the final answer."""
        messages = list(req.messages)
        plan = make_plan(messages)
        done = self._progress(messages)
        stopped = any(is_error or not envelope.get("ok", True) for _, envelope, is_error in done)
        blocked = any(
            call.name == "validate_data" and (envelope.get("result") or {}).get("blocks_downstream")
            for call, envelope, _ in done
        )
        offered = {tool.name for tool in req.tools}
        step = None if stopped or blocked else self._next_call(plan, done, offered)
        if step is not None:
            name, arguments = step
            turn = sum(1 for m in messages if m.role == "assistant")
            call = ToolCall(id=f"offline_{turn}_{name}", name=name, arguments=arguments)
            text = f"[offline policy] step {len(done) + 1}: {name}"
            return ModelResponse(
                model=self.model_id, text=text, tool_calls=[call], stop_reason="tool_use"
            )
        text = render_answer(plan, done, offered_tools=sorted(offered))
        if req.output_schema is not None:
            text = json.dumps({"model": self.model_id, "answer": text})
        return ModelResponse(model=self.model_id, text=text, stop_reason="end_turn")

    async def request(self, req: ModelRequest) -> ModelResponse:
        """Answer one request (see :meth:`decide`)."""
        return self.decide(req)

    async def stream(self, req: ModelRequest) -> AsyncIterator[StreamEvent]:
        """The same answer as stream events."""
        for event in response_events(self.decide(req)):
            yield event
