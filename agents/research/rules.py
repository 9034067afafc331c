"""Rule-driven policies of the research graph: the offline critic, the risk rules, the decision.

These rules read only the tool log, so their conclusions are as honest as the tools' numbers;
``docs/agents.md`` lists them. The decision rule applies to every session, whatever critic
ran: a language-model critic can add concerns but cannot wave through a refused guardrail, a
DSR under 0.95 or a risk veto.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from quantdesk.agents.filing_evidence import (
    DISCLOSURE_KINDS,
    FILING_TOOLS,
    DisclosureKind,
    FilingPassage,
    review_filings,
)
from quantdesk.agents.research.prompts import cite, fmt
from quantdesk.agents.research.state import (
    Concern,
    Critique,
    RequestedTest,
    ResearchState,
    RiskLimits,
    ToolLogEntry,
    primary_trial,
)

__all__ = [
    "DSR_BAR",
    "MIN_OBS",
    "decide",
    "filing_concerns",
    "latest_dsr",
    "result_of",
    "risk_assessment",
    "rule_critique",
    "split_sample_tests",
]

DSR_BAR = 0.95
MIN_OBS = 504  # two years of daily returns
_TRIAL_TOOLS = {"backtest", "walk_forward_cv"}


def result_of(entry: ToolLogEntry) -> dict[str, Any]:
    """The ``result`` of a logged envelope (empty for a failed call)."""
    return entry["envelope"].get("result") or {}


def _trial_id(entry: ToolLogEntry) -> str | None:
    return (result_of(entry).get("trial") or {}).get("trial_id")


def latest_dsr(state: ResearchState, trial_id: str) -> tuple[ToolLogEntry, dict[str, Any]] | None:
    """The most recent deflated Sharpe of ``trial_id`` in the log, with the call it came from.

    A ``deflated_sharpe`` call on the trial wins over the DSR the trial's own backtest or CV
    call reported, because it counts the trials recorded since.
    """
    for entry in reversed(state.get("tool_log", [])):
        if not entry["ok"] or _trial_id(entry) != trial_id:
            continue
        dsr = result_of(entry).get("deflated_sharpe")
        if dsr and entry["name"] in {"deflated_sharpe", *_TRIAL_TOOLS}:
            return entry, dsr
    return None


def _later_trials(state: ResearchState, after: ToolLogEntry) -> int:
    log = state.get("tool_log", [])
    start = next(i for i, e in enumerate(log) if e["id"] == after["id"])
    return sum(1 for e in log[start + 1 :] if e["ok"] and e["name"] in _TRIAL_TOOLS)


def split_sample_tests(state: ResearchState, review: int) -> list[RequestedTest]:
    """Backtests of the primary strategy on the first and second half of its sample.

    The second half starts its data early by the primary's own warm-up (the gap between the
    data's first date and the trial's first date), so its signal is defined from the half's
    first session. A fresh ``deflated_sharpe`` of the primary follows, counting both.
    """
    primary = primary_trial(state)
    if primary is None or primary["name"] != "backtest":
        return []
    trial = result_of(primary)["trial"]
    first, last = date.fromisoformat(trial["first_date"]), date.fromisoformat(trial["last_date"])
    fetched = [result_of(e) for e in state.get("tool_log", []) if e["name"] == "fetch_prices"]
    source = dict(primary["arguments"]["source"])
    data_start = source.get("start") or next(
        (r["first_date"] for r in fetched if r.get("first_date")), None
    )
    warmup = first - date.fromisoformat(data_start) if data_start else timedelta(days=366)
    middle = first + (last - first) / 2
    base = dict(primary["arguments"])
    first_half = {**base, "as_of": middle.isoformat()}
    second_half = {
        **base,
        "source": {**source, "start": (middle + timedelta(days=1) - warmup).isoformat()},
        "as_of": last.isoformat(),
    }
    refresh = {"trial_id": trial["trial_id"]}
    if "context" in base:
        refresh["context"] = base["context"]
    why = f"regime dependence: does the effect hold before and after {middle}?"
    return [
        RequestedTest(tool="backtest", arguments=first_half, reason=why),
        RequestedTest(tool="backtest", arguments=second_half, reason=why),
        RequestedTest(
            tool="deflated_sharpe",
            arguments=refresh,
            reason="DSR of the primary trial counting every trial run, the split halves included",
        ),
    ]


def _split_results(state: ResearchState) -> list[ToolLogEntry]:
    return [
        e
        for e in state.get("tool_log", [])
        if e["origin"] == "critic" and e["name"] == "backtest" and "_split_" in e["id"]
    ]


def _guardrail_concerns(state: ResearchState) -> list[Concern]:
    concerns = []
    for entry in state.get("tool_log", []):
        env = entry["envelope"]
        error = env.get("error") or {}
        if not entry["ok"]:
            refused = error.get("kind") == "refused"
            if not refused and entry["name"] in FILING_TOOLS:
                continue  # filing_concerns reports it
            guard = error.get("guardrail") or ""
            topic = guard if guard in {"leakage", "lookahead"} else "guardrail"
            text = (
                f"{cite(entry)} was refused by the {guard or '?'} guardrail: {error.get('message')}"
                if refused
                else f"{cite(entry)} failed ({error.get('kind')}): {error.get('message')}"
            )
            concerns.append(
                Concern(
                    topic=topic if refused else "evidence",
                    severity="blocking" if refused else "minor",
                    text=text,
                    cites=[entry["id"]],
                )
            )
            continue
        for check in env.get("guardrails", []):
            if check["outcome"] == "overridden":
                concerns.append(
                    Concern(
                        topic="costs" if check["name"] == "costs" else "guardrail",
                        severity="blocking" if check["name"] == "costs" else "minor",
                        text=f"{cite(entry)} overrode the {check['name']} guardrail: "
                        f"{check['reason']}",
                        cites=[entry["id"]],
                    )
                )
        look = result_of(entry).get("lookahead") or {}
        if look and look.get("passed") is False:
            concerns.append(
                Concern(
                    topic="lookahead",
                    severity="blocking",
                    text=f"{cite(entry)}: the look-ahead check failed for {look.get('leaking')}.",
                    cites=[entry["id"]],
                )
            )
    return concerns


def rule_critique(
    state: ResearchState, *, review: int, may_request: bool, tools: set[str]
) -> Critique:
    """The offline critic: concerns from the tool log, and the extra tests it asks for."""
    concerns = _guardrail_concerns(state)
    tests: list[RequestedTest] = []
    primary = primary_trial(state)
    filings = filing_concerns(state, tools)
    if primary is None:
        concerns.append(
            Concern(
                topic="evidence",
                severity="blocking",
                text="no backtest or cross-validation trial completed: nothing measured the "
                "hypothesis.",
            )
        )
        concerns += filings
        return Critique(concerns=concerns, summary=_summary(concerns))
    r = result_of(primary)
    trial = r["trial"]
    found = latest_dsr(state, trial["trial_id"])
    dsr = found[1] if found else {}
    passes = (dsr.get("dsr") or 0.0) >= DSR_BAR and (dsr.get("sharpe_annualised") or 0.0) > 0
    if found is None:
        concerns.append(
            Concern(
                topic="multiple_testing",
                severity="blocking",
                text=f"no deflated Sharpe ratio for trial {trial['trial_id']}.",
                cites=[primary["id"]],
            )
        )
    else:
        entry = found[0]
        concerns.append(
            Concern(
                topic="multiple_testing",
                severity="minor" if passes else "blocking",
                text=f"Sharpe {fmt(dsr.get('sharpe_annualised'), '.2f')} has DSR "
                f"{fmt(dsr.get('dsr'), '.3f')} given N={fmt(dsr.get('n_trials'), '.0f')} trials "
                f"{cite(entry)}: {'passes' if passes else 'fails'} the {DSR_BAR} bar.",
                cites=[entry["id"]],
            )
        )
        stale = _later_trials(state, entry)
        if stale:
            concerns.append(
                Concern(
                    topic="multiple_testing",
                    severity="blocking",
                    text=f"the DSR {cite(entry)} predates {stale} later trial(s): N is too low.",
                    cites=[entry["id"]],
                )
            )
    n_obs = trial.get("n_obs") or 0
    if n_obs < MIN_OBS:
        concerns.append(
            Concern(
                topic="sample_size",
                severity="blocking",
                text=f"only {n_obs} return observations {cite(primary)} (< {MIN_OBS}).",
                cites=[primary["id"]],
            )
        )
    if primary["name"] == "backtest":
        gross, net = r.get("total_gross_return"), r.get("total_net_return")
        if gross is not None and net is not None and gross > 0:
            drag = (gross - net) / gross
            concerns.append(
                Concern(
                    topic="costs",
                    severity="blocking" if net <= 0 else "minor",
                    text=f"costs take {drag:.0%} of the gross return (gross {gross:.1%}, net "
                    f"{net:.1%}, turnover "
                    f"{fmt((r.get('performance') or {}).get('annual_turnover'), '.1f')}x a year) "
                    f"{cite(primary)}.",
                    cites=[primary["id"]],
                )
            )
    else:
        concerns.append(
            Concern(
                topic="costs",
                severity="minor",
                text=f"{cite(primary)} scores forecasts; no backtest with costs was run.",
                cites=[primary["id"]],
            )
        )
    pbo = [e for e in state.get("tool_log", []) if e["ok"] and e["name"] == "pbo"]
    if pbo:
        value = result_of(pbo[-1]).get("pbo")
        concerns.append(
            Concern(
                topic="overfitting",
                severity="blocking" if value is not None and value > 0.5 else "minor",
                text=f"PBO {fmt(value, '.2f')} {cite(pbo[-1])}.",
                cites=[pbo[-1]["id"]],
            )
        )
    else:
        concerns.append(
            Concern(
                topic="overfitting",
                severity="minor",
                text="PBO not computed: one configuration was tested, so there was no "
                "selection among configurations to overfit.",
            )
        )
    splits = _split_results(state)
    if splits:
        sharpes = [(result_of(e).get("performance") or {}).get("sharpe") for e in splits]
        ok = all(e["ok"] for e in splits) and all(s is not None and s > 0 for s in sharpes)
        text = ", ".join(
            f"{e['id'].rsplit('_', 1)[-1]} half Sharpe {fmt(s, '.2f')} {cite(e)}"
            for e, s in zip(splits, sharpes, strict=True)
        )
        weak = ok and min(sharpes) < 0.5 * max(sharpes)  # type: ignore[type-var]
        failed = not all(e["ok"] for e in splits)
        concerns.append(
            Concern(
                topic="evidence" if failed else "regime",
                severity="minor" if ok else "blocking",
                text=text
                + (
                    ": the effect holds in both halves" + (", much weaker in one." if weak else ".")
                    if ok
                    else ": the effect does not hold in both halves."
                ),
                cites=[e["id"] for e in splits],
            )
        )
    elif passes and may_request and "backtest" in tools and primary["name"] == "backtest":
        tests = split_sample_tests(state, review)
        concerns.append(
            Concern(
                topic="regime",
                severity="blocking",
                text="regime dependence not yet checked: split-sample backtests requested.",
            )
        )
    else:
        concerns.append(
            Concern(topic="regime", severity="minor", text="regime dependence was not checked.")
        )
    concerns += filings
    return Critique(concerns=concerns, requested_tests=tests, summary=_summary(concerns))


def filing_concerns(state: ResearchState, tools: set[str]) -> list[Concern]:
    """What the filings say, as minor concerns from templates (no filing text in them).

    Per failed filing call, a summary of the search, per company mentioning a recognised
    disclosure (its position, what it means for a price signal), per passage with text
    addressed to an AI model. Minor: one name's disclosure does not refute the effect.
    """
    review = review_filings(state.get("tool_log", []), primary_trial(state))
    names = {e["id"]: e["name"] for e in review.calls}

    def minor(text: str, cites: list[str] | None = None) -> Concern:
        return Concern(topic="filings", severity="minor", text=text, cites=(cites or [])[:20])

    def cite_call(call_id: str) -> str:
        return cite({"name": names[call_id], "id": call_id})

    if not review.calls:  # (the offline policy searches after its tests: it stopped before)
        return [minor("no filing was searched.")] if "search_filings" in tools else []
    concerns = [
        minor(
            f"no filings were read {cite(e)}: {(e['envelope'].get('error') or {}).get('message')}"
            f" Fix: {(e['envelope'].get('error') or {}).get('fix') or 'n/a'} The review rests "
            "on the prices alone.",
            [e["id"]],
        )
        for e in review.calls
        if not e["ok"]
    ]
    done = [e for e in review.calls if e["ok"]]
    if done:
        as_of = sorted({str((e["envelope"].get("result") or {}).get("as_of")) for e in done})
        scope = (
            f"the {len(review.holdings)} names held on {review.holdings_date}"
            if review.holdings
            else "the companies searched"
        )
        flagged = {p.ticker for p, _ in review.flagged}
        concerns.append(
            minor(
                f"filings of {scope} {', '.join(cite(e) for e in done)}: "
                f"{len(review.passages)} passage(s) of {len({p.ticker for p in review.passages})} "
                f"company(ies), all public by {', '.join(as_of)}; {len(flagged)} company(ies) "
                "mention a disclosure that moves prices for reasons the signal does not see.",
                [e["id"] for e in done],
            )
        )
    by_ticker: dict[str | None, list[tuple[FilingPassage, list[DisclosureKind]]]] = {}
    for passage, kinds in review.flagged:
        by_ticker.setdefault(passage.ticker, []).append((passage, kinds))
    for ticker, items in by_ticker.items():
        kinds = [k for k in DISCLOSURE_KINDS if any(k in found for _, found in items)]
        calls = sorted({p.call_id for p, _ in items})
        labels = "; ".join(dict.fromkeys(p.label for p, _ in items))
        concerns.append(
            minor(
                f"{ticker or 'a filer'} ({review.position(ticker)}): its filings mention "
                f"{', '.join(k.label for k in kinds)} {' '.join(map(cite_call, calls))} "
                f"({labels}): {kinds[0].why}.",
                calls,
            )
        )
    concerns += [
        minor(
            f"{p.label} {cite_call(p.call_id)} contains text addressed to an AI model (a likely "
            "prompt injection); it stayed quoted data and changed no tool call.",
            [p.call_id],
        )
        for p in review.instructions
    ]
    return concerns


def _summary(concerns: list[Concern]) -> str:
    blocking = sum(c.severity == "blocking" for c in concerns)
    return f"{blocking} blocking and {len(concerns) - blocking} minor concern(s)."


def risk_assessment(entry: ToolLogEntry, limits: RiskLimits) -> dict[str, Any]:
    """Findings and veto from a ``risk_report`` envelope."""
    c = cite(entry)
    if not entry["ok"]:
        error = entry["envelope"].get("error") or {}
        finding = f"risk report failed {c}: {error.get('message')}"
        return {"veto": True, "findings": [{"severity": "veto", "text": finding}]}
    r = result_of(entry)
    perf, tail, sizing = r.get("performance") or {}, r.get("tail") or {}, r.get("sizing") or {}
    findings: list[dict[str, Any]] = []

    def add(bad: bool, text: str) -> None:
        findings.append({"severity": "veto" if bad else "info", "text": text + f" {c}"})

    dd, cvar = perf.get("max_drawdown"), tail.get("cvar_99")
    lev, kelly = sizing.get("recommended_leverage"), sizing.get("kelly_leverage")
    add(
        dd is None or -dd > limits.max_drawdown,
        f"max drawdown {fmt(dd, '.1%')} (limit -{limits.max_drawdown:.0%}), current "
        f"{fmt(r.get('current_drawdown'), '.1%')}",
    )
    add(
        cvar is None or -cvar > limits.max_daily_cvar_99,
        f"99% CVaR {fmt(cvar, '.2%')} a day (limit -{limits.max_daily_cvar_99:.0%})",
    )
    add(
        lev is None or lev < limits.min_recommended_leverage or (kelly is not None and kelly <= 0),
        f"sizing: recommended leverage {fmt(lev, '.2f')} (vol target "
        f"{fmt(sizing.get('vol_target_leverage'), '.2f')}, full Kelly {fmt(kelly, '.2f')})",
    )
    kill = r.get("kill_switch") or {}
    findings.append({"severity": "info", "text": f"kill switch: {kill.get('rule')} {c}"})
    exposures = r.get("exposures")
    findings.append(
        {
            "severity": "info",
            "text": (
                f"exposures: mean gross {fmt(exposures.get('mean_gross'), '.2f')}, net "
                f"{fmt(exposures.get('mean_net'), '.2f')}, max weight "
                f"{fmt(exposures.get('max_abs_weight'), '.2%')} {c}"
                if exposures
                else "exposures and capacity not assessed: a trial stores returns only "
                "(run risk_report with the strategy and a capital to see them)"
            ),
        }
    )
    return {"veto": any(f["severity"] == "veto" for f in findings), "findings": findings}


def decide(state: ResearchState) -> dict[str, Any]:
    """Accept only with DSR >= 0.95, no refusal, no veto and no blocking concern left."""
    reasons: list[str] = []
    cites: list[str] = []
    log = state.get("tool_log", [])
    refused = [e for e in log if not e["ok"] and (e["envelope"].get("error") or {}).get("kind")]
    refused = [e for e in refused if e["envelope"]["error"]["kind"] == "refused"]
    for e in refused:
        reasons.append(f"guardrail {e['envelope']['error'].get('guardrail')} refused {cite(e)}")
        cites.append(e["id"])
    primary = primary_trial(state)
    dsr_value: float | None = None
    sharpe: float | None = None
    if primary is None:
        reasons.append("no completed trial measured the hypothesis")
    else:
        found = latest_dsr(state, result_of(primary)["trial"]["trial_id"])
        if found is None:
            reasons.append(f"no DSR for the trial of {cite(primary)}")
        else:
            dsr_value, sharpe = found[1].get("dsr"), found[1].get("sharpe_annualised")
            reasons.append(
                f"DSR {fmt(dsr_value, '.3f')} (Sharpe {fmt(sharpe, '.2f')}, N="
                f"{fmt(found[1].get('n_trials'), '.0f')}) {cite(found[0])}"
            )
            cites.append(found[0]["id"])
    critiques = state.get("critiques", [])
    blocking = [
        c for c in (critiques[-1]["concerns"] if critiques else []) if c["severity"] == "blocking"
    ]
    reasons += [f"critic (blocking, {c['topic']}): {c['text']}" for c in blocking]
    risk = state.get("risk_findings") or {}
    if risk.get("veto"):
        reasons.append(
            "risk veto: "
            + "; ".join(f["text"] for f in risk.get("findings", []) if f["severity"] == "veto")
        )
    dsr_ok = dsr_value is not None and dsr_value >= DSR_BAR and (sharpe or 0.0) > 0
    if dsr_ok and not refused and not risk.get("veto") and not blocking:
        kind = "accept"
    elif (
        (dsr_value is not None and not dsr_ok)
        or risk.get("veto")
        or any(c["topic"] == "regime" for c in blocking)
    ):
        kind = "reject"
    else:
        kind = "needs-more-evidence"
    return {"kind": kind, "reasons": reasons, "cites": cites}
