"""Tests for quant_core.research_context: contexts, the holdout guard and holdout evaluations."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from quantdesk.quant_core.errors import InputError, QuantdeskRuntimeError, SchemaError
from quantdesk.quant_core.research_context import (
    _MIGRATIONS,
    DEFAULT_TRIAL_BUDGET,
    HoldoutAlreadyEvaluatedError,
    HoldoutEvaluationFailedError,
    HoldoutViolationError,
    ResearchContext,
    active_context,
    connect_registry,
    create_context,
    evaluate_holdout,
    get_context,
    guard_holdout,
    holdout_evaluations,
    list_contexts,
    outside_holdout,
    registry_path,
    use_context,
)

D = dt.date
HOLDOUT = ("2020-01-01", "2020-12-31")


def _dates(start: dt.date, n: int) -> pl.DataFrame:
    return pl.DataFrame({"date": pl.date_range(start, start + dt.timedelta(n - 1), eager=True)})


def _ctx(start: dt.date | None, end: dt.date | None) -> ResearchContext:
    """An in-memory context (the guard reads only the window)."""
    return ResearchContext(
        id="c0ffee000000",
        name="mem",
        created_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        as_of=None,
        holdout_start=start,
        holdout_end=end,
        trial_budget=50,
        notes="",
    )


# --------------------------------------------------------------------------- contexts


def test_create_get_list_roundtrip() -> None:
    ctx = create_context("momentum", as_of="2020-12-31", holdout=HOLDOUT, notes="12-1 momentum")
    home = Path(os.environ["QUANTDESK_HOME"])  # the autouse temporary home
    assert registry_path() == (home / "registry.sqlite").resolve()
    assert ctx.registry == registry_path()
    assert len(ctx.id) == 12
    assert (ctx.as_of, ctx.holdout_start, ctx.holdout_end) == (
        D(2020, 12, 31),
        D(2020, 1, 1),
        D(2020, 12, 31),
    )
    assert ctx.trial_budget == DEFAULT_TRIAL_BUDGET == 50
    assert ctx.created_at.tzinfo is not None
    assert get_context(ctx.id) == ctx
    assert get_context("momentum") == ctx
    other = create_context("carry")
    assert [c.name for c in list_contexts()] == ["momentum", "carry"]
    assert not other.has_holdout
    assert other.holdout_label() == "none"
    assert ctx.to_dict()["holdout_start"] == "2020-01-01"


@pytest.mark.parametrize(
    ("as_of", "holdout", "expected"),
    [
        (None, ("2019-01-01", "2019-06-30"), (D(2019, 1, 1), D(2019, 6, 30))),
        ("2020-12-31", ("2020-01-01", None), (D(2020, 1, 1), D(2020, 12, 31))),
        (None, ("2020-01-01", None), (D(2020, 1, 1), None)),
        ("2020-12-31", ("2020-12-31", "2020-12-31"), (D(2020, 12, 31), D(2020, 12, 31))),
        (None, None, (None, None)),
    ],
)
def test_holdout_window_forms(
    as_of: str | None, holdout: tuple | None, expected: tuple[dt.date | None, dt.date | None]
) -> None:
    ctx = create_context("ctx", as_of=as_of, holdout=holdout)
    assert (ctx.holdout_start, ctx.holdout_end) == expected
    assert get_context("ctx") == ctx


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"holdout": ("2020-12-31", "2020-01-01")}, "starts on 2020-12-31, after its end"),
        ({"as_of": "2020-06-30", "holdout": HOLDOUT}, "after the context's as_of 2020-06-30"),
        ({"as_of": "2019-12-31", "holdout": ("2020-01-01", None)}, "after its end"),
        ({"holdout": ("2020-01-01",)}, "not a \\(start, end\\) pair"),
        ({"holdout": ("01/01/2020", None)}, "not an ISO date"),
        ({"holdout": (None, "2020-01-01")}, "no start date"),
        ({"trial_budget": 0}, "trial_budget=0"),
        ({"trial_budget": True}, "trial_budget=True"),
        ({"trial_budget": 2.5}, "trial_budget=2.5"),
        ({"notes": 3}, "notes must be a string"),
    ],
)
def test_create_context_rejects_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match) as info:
        create_context("bad", **kwargs)
    assert info.value.fix
    assert list_contexts() == []  # nothing written


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, None])
def test_create_context_rejects_bad_names(name: object) -> None:
    with pytest.raises(InputError, match="Context name"):
        create_context(name)  # type: ignore[arg-type]


def test_names_are_unique_and_lookup_errors_list_known_names() -> None:
    create_context("alpha")
    with pytest.raises(InputError, match="named 'alpha' already exists") as info:
        create_context(" alpha ")
    assert "get_context('alpha')" in str(info.value)
    with pytest.raises(InputError, match=r"No research context .*'beta'.*known: \['alpha'\]"):
        get_context("beta")


def test_contexts_are_append_only_in_the_database() -> None:
    ctx = create_context("locked", holdout=HOLDOUT)
    with sqlite3.connect(registry_path()) as conn:
        with pytest.raises(sqlite3.IntegrityError, match="append-only: UPDATE on contexts"):
            conn.execute("UPDATE contexts SET holdout_start = '2021-01-01'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only: DELETE on contexts"):
            conn.execute("DELETE FROM contexts")
    assert get_context("locked") == ctx


def test_migrations_are_recorded_once_and_newer_schemas_refused() -> None:
    for _ in range(3):
        connect_registry().close()
    with sqlite3.connect(registry_path()) as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations").fetchall()
        assert [v for v, _ in rows] == list(range(1, len(_MIGRATIONS) + 1))
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.execute("INSERT INTO schema_migrations VALUES (99, 'future', 'now')")
    with pytest.raises(QuantdeskRuntimeError, match="schema version 99"):
        connect_registry()


# --------------------------------------------------------------------------- the guard


def test_guard_is_a_no_op_without_an_active_holdout() -> None:
    frame = _dates(D(2020, 1, 1), 10)
    guard_holdout(frame, what="prices")  # no active context
    with use_context(_ctx(None, None)):
        guard_holdout(frame, what="prices")  # context without holdout
    with use_context(_ctx(D(2020, 1, 1), D(2020, 12, 31))):
        guard_holdout(frame.clear(), what="prices")  # empty frame


def test_guard_checks_an_explicit_context_without_activating_it() -> None:
    window = _ctx(D(2020, 1, 1), None)
    with pytest.raises(HoldoutViolationError):
        guard_holdout(_dates(D(2020, 6, 1), 3), what="returns", context=window)
    assert active_context() is None


def test_guard_names_the_window_the_first_date_and_the_fix() -> None:
    frame = _dates(D(2019, 12, 20), 20)
    window = _ctx(D(2020, 1, 1), D(2020, 12, 31))
    with use_context(window), pytest.raises(HoldoutViolationError) as info:
        guard_holdout(frame, what="backtest prices")
    message = str(info.value)
    assert isinstance(info.value, InputError)
    assert "8 of 20 rows of the backtest prices" in message
    assert "[2020-01-01, 2020-12-31]" in message
    assert "first is dated 2020-01-01" in message
    assert "evaluate it with evaluate_holdout(...) once the hypothesis is final" in message
    assert "outside_holdout(frame)" in message


def test_guard_detects_a_holdout_covering_the_whole_sample() -> None:
    frame = _dates(D(2020, 3, 2), 30)
    window = _ctx(D(2020, 1, 1), None)
    with use_context(window), pytest.raises(HoldoutViolationError, match="whole sample") as info:
        guard_holdout(frame, what="prices")
    assert "[2020-01-01, open)" in str(info.value)
    assert "2020-03-02 to 2020-03-31" in str(info.value)


@pytest.mark.parametrize(
    ("start", "end", "first", "n", "refused"),
    [
        (D(2020, 1, 1), D(2020, 1, 31), D(2019, 12, 1), 31, False),  # ends the day before
        (D(2020, 1, 1), D(2020, 1, 31), D(2019, 12, 2), 31, True),  # last row on the start
        (D(2020, 1, 1), D(2020, 1, 31), D(2020, 2, 1), 10, False),  # after the window
        (D(2020, 1, 1), D(2020, 1, 31), D(2020, 1, 31), 10, True),  # first row on the end
        (D(2020, 1, 1), None, D(2030, 1, 1), 3, True),  # open-ended window
    ],
)
def test_guard_golden_boundaries(
    start: dt.date, end: dt.date | None, first: dt.date, n: int, refused: bool
) -> None:
    frame = _dates(first, n)
    with use_context(_ctx(start, end)):
        if refused:
            with pytest.raises(HoldoutViolationError):
                guard_holdout(frame, what="prices")
        else:
            guard_holdout(frame, what="prices")


def test_guard_checks_label_intervals_and_datetimes() -> None:
    labels = pl.DataFrame(
        {"date": [D(2019, 12, 27), D(2019, 12, 30)], "t1": [D(2019, 12, 31), D(2020, 1, 3)]}
    )
    with use_context(_ctx(D(2020, 1, 1), D(2020, 12, 31))):
        # the second label was computed from holdout prices although it is dated before
        with pytest.raises(
            HoldoutViolationError, match=r"1 of 2 rows .* first is dated 2019-12-30"
        ):
            guard_holdout(labels, what="labels")
        guard_holdout(labels, what="labels", end_col=None)
        assert outside_holdout(labels).height == 1
        stamps = pl.DataFrame({"ts": [dt.datetime(2020, 6, 1, 15, 30)]})
        with pytest.raises(HoldoutViolationError):
            guard_holdout(stamps, what="ticks", date_col="ts")


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (pl.DataFrame({"day": [D(2020, 1, 1)]}), SchemaError),
        (pl.DataFrame({"date": ["2020-01-01"]}), SchemaError),
        ({"date": [D(2020, 1, 1)]}, InputError),
    ],
)
def test_guard_rejects_malformed_frames(frame: object, error: type[Exception]) -> None:
    with use_context(_ctx(D(2020, 1, 1), None)), pytest.raises(error):
        guard_holdout(frame, what="prices")  # type: ignore[arg-type]


@settings(max_examples=80, deadline=None)
@given(
    offsets=st.lists(st.integers(0, 60), min_size=1, max_size=30, unique=True),
    horizons=st.lists(st.integers(0, 5), min_size=30, max_size=30),
    start=st.integers(0, 60),
    length=st.one_of(st.none(), st.integers(0, 20)),
)
def test_outside_holdout_keeps_exactly_what_the_guard_accepts(
    offsets: list[int], horizons: list[int], start: int, length: int | None
) -> None:
    base = D(2020, 1, 1)
    dates = [base + dt.timedelta(o) for o in sorted(offsets)]
    t1 = [d + dt.timedelta(h) for d, h in zip(dates, horizons, strict=False)]
    frame = pl.DataFrame({"date": dates, "t1": t1})
    lo = base + dt.timedelta(start)
    hi = None if length is None else lo + dt.timedelta(length)
    ctx = _ctx(lo, hi)
    kept = outside_holdout(frame, context=ctx)
    expected = [
        (d, e) for d, e in zip(dates, t1, strict=True) if not (e >= lo and (hi is None or d <= hi))
    ]
    assert kept.rows() == expected
    with use_context(ctx):
        guard_holdout(kept, what="labels")
        if kept.height < frame.height:
            with pytest.raises(HoldoutViolationError):
                guard_holdout(frame, what="labels")
        else:
            assert_frame_equal(kept, frame)


def test_use_context_nests_and_resets() -> None:
    first = create_context("first")
    second = create_context("second")
    assert active_context() is None
    with use_context("first") as a:
        assert a == first
        assert active_context() == first
        with use_context(second):
            assert active_context() == second
        assert active_context() == first
    assert active_context() is None


# --------------------------------------------------------------------------- evaluation


class _Result:
    def to_dict(self) -> dict[str, float]:
        return {"sharpe": 1.25, "dsr": 0.97}


def test_evaluate_holdout_lifts_the_guard_once_and_records_the_outcome() -> None:
    ctx = create_context("final", as_of="2020-12-31", holdout=HOLDOUT)
    holdout_prices = _dates(D(2020, 1, 1), 30)

    def evaluate() -> _Result:
        assert active_context() == ctx
        guard_holdout(holdout_prices, what="holdout prices")  # lifted for this context
        return _Result()

    done = evaluate_holdout(ctx, "Momentum 12-1", evaluate, description="d", config={"k": 1})
    assert done.status == "ok"
    assert isinstance(done.result, _Result)
    assert done.summary == {"result": {"dsr": 0.97, "sharpe": 1.25}, "result_type": "_Result"}
    assert len(done.config_hash or "") == 64
    assert active_context() is None
    with use_context(ctx), pytest.raises(HoldoutViolationError):
        guard_holdout(holdout_prices, what="prices")  # locked again afterwards

    with pytest.raises(HoldoutAlreadyEvaluatedError) as info:
        evaluate_holdout(ctx.name, "  momentum   12-1 ", lambda: 1)
    message = str(info.value)
    assert (
        "'Momentum 12-1' was already evaluated on the holdout [2020-01-01, 2020-12-31]" in message
    )
    assert "status: ok" in message
    assert "another training set" in message
    assert isinstance(info.value, InputError)

    other = evaluate_holdout(ctx, "carry", lambda: {"x": float("nan")})
    assert other.status == "ok"
    stored = holdout_evaluations(ctx)
    assert [e.hypothesis for e in stored] == ["Momentum 12-1", "carry"]
    assert stored[0].to_dict()["summary"] == done.summary
    assert stored[0].result is None


def test_a_failed_evaluation_counts_and_says_so() -> None:
    ctx = create_context("fails", holdout=HOLDOUT)

    def broken() -> None:
        raise ZeroDivisionError("no trades in the holdout")

    with pytest.raises(
        HoldoutEvaluationFailedError, match="attempt is recorded and counts"
    ) as info:
        evaluate_holdout(ctx, "h", broken)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert info.value.evaluation.status == "failed"
    assert not info.value.retryable
    (stored,) = holdout_evaluations(ctx)
    assert stored.summary == {
        "error": "no trades in the holdout",
        "error_type": "ZeroDivisionError",
    }
    with pytest.raises(HoldoutAlreadyEvaluatedError, match="status: failed"):
        evaluate_holdout(ctx, "h", lambda: 1)


def test_interrupts_pass_through_but_are_recorded() -> None:
    ctx = create_context("interrupted", holdout=HOLDOUT)

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate_holdout(ctx, "h", interrupted)
    assert [e.status for e in holdout_evaluations(ctx)] == ["failed"]


@pytest.mark.parametrize(
    ("holdout", "hypothesis", "match"),
    [
        (None, "h", "has no holdout window"),
        (HOLDOUT, "", "hypothesis='' is invalid"),
        (HOLDOUT, "x" * 201, "is invalid"),
    ],
)
def test_evaluate_holdout_rejects_bad_requests(
    holdout: tuple | None, hypothesis: str, match: str
) -> None:
    ctx = create_context("c", holdout=holdout)
    with pytest.raises(InputError, match=match):
        evaluate_holdout(ctx, hypothesis, lambda: 1)
    assert holdout_evaluations(ctx) == []


def test_nested_evaluations_are_refused() -> None:
    ctx = create_context("nested", holdout=HOLDOUT)

    def nested() -> None:
        evaluate_holdout(ctx, "inner", lambda: 1)

    with pytest.raises(HoldoutEvaluationFailedError) as info:
        evaluate_holdout(ctx, "outer", nested)
    assert "inside another holdout evaluation" in str(info.value.__cause__)
    assert [e.hypothesis for e in holdout_evaluations(ctx)] == ["outer"]


# --------------------------------------------------------------------------- other processes

_CHILD = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from quantdesk.quant_core.research_context import (
        HoldoutAlreadyEvaluatedError, evaluate_holdout,
    )
    go = Path(sys.argv[1])
    while not go.exists():
        time.sleep(0.005)
    try:
        evaluate_holdout("race", "h1", lambda: time.sleep(0.2) or {"ok": True})
    except HoldoutAlreadyEvaluatedError:
        print("refused")
    else:
        print("evaluated")
    """
)


def _spawn(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_racing_for_the_holdout_evaluate_once(tmp_path: Path) -> None:
    create_context("race", holdout=HOLDOUT)
    go = tmp_path / "go"
    children = [_spawn(_CHILD, str(go)) for _ in range(2)]
    time.sleep(0.5)
    go.touch()
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        outputs.append(out.strip())
    assert sorted(outputs) == ["evaluated", "refused"]
    assert [e.status for e in holdout_evaluations("race")] == ["ok"]


def test_a_process_that_dies_mid_evaluation_still_used_its_look(tmp_path: Path) -> None:
    ctx = create_context("crash", holdout=HOLDOUT)
    code = (
        "import os\n"
        "from quantdesk.quant_core.research_context import evaluate_holdout\n"
        "evaluate_holdout('crash', 'h', lambda: os._exit(3))\n"
    )
    child = _spawn(code)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 3, err
    (stored,) = holdout_evaluations(ctx)
    assert (stored.status, stored.finished_at) == ("incomplete", None)
    with pytest.raises(HoldoutAlreadyEvaluatedError, match="status: incomplete"):
        evaluate_holdout(ctx, "h", lambda: 1)
