"""available_at: acceptance time > end of filing date > conservative statutory estimate."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.quant_core.errors import InputError
from quantdesk.rag.manifest import load_manifest
from quantdesk.rag.point_in_time import (
    Availability,
    available_at,
    end_of_day_utc,
    estimate_deadline,
    is_business_day,
    next_business_day,
    normalize_form,
    statutory_deadline,
)

NEW_YORK = ZoneInfo("America/New_York")

# Longest delay, in calendar days, a filing can follow its period end and still be timely
# (the plain statutory delay plus the Rule 12b-25 grace), before any weekend/holiday roll.
# 20-F: four months are at least 120 days.
PLAIN_BOUND_DAYS = {"10-K": 90 + 15, "10-Q": 45 + 5, "20-F": 120 + 15, "11-K": 180 + 15}


@pytest.mark.parametrize(
    ("acceptance", "expected"),
    [
        ("20191115060224", datetime(2019, 11, 15, 11, 2, 24, tzinfo=UTC)),  # EST, UTC-5
        ("20230804161530", datetime(2023, 8, 4, 20, 15, 30, tzinfo=UTC)),  # EDT, UTC-4
        (datetime(2024, 3, 10, 1, 30), datetime(2024, 3, 10, 6, 30, tzinfo=UTC)),  # naive = NY
        ("2024-11-01T06:01:36-04:00", datetime(2024, 11, 1, 10, 1, 36, tzinfo=UTC)),
        (datetime(2024, 1, 2, 12, 0, tzinfo=UTC), datetime(2024, 1, 2, 12, 0, tzinfo=UTC)),
    ],
)
def test_acceptance_time_is_converted_from_eastern_to_utc(acceptance, expected):
    result = available_at(form="10-K", acceptance_datetime=acceptance, filing_date="2000-01-01")
    assert result == Availability(expected, False)
    assert result.at.tzinfo is UTC


@pytest.mark.parametrize(
    ("filing_date", "expected"),
    [
        ("20191115", datetime(2019, 11, 16, 4, 59, 59, tzinfo=UTC)),
        ("2025-08-01", datetime(2025, 8, 2, 3, 59, 59, tzinfo=UTC)),
        (date(2025, 1, 13), datetime(2025, 1, 14, 4, 59, 59, tzinfo=UTC)),
    ],
)
def test_filing_date_means_end_of_that_day_in_new_york(filing_date, expected):
    assert available_at(form="8-K", filing_date=filing_date, period_end="2019-01-01") == (
        expected,
        False,
    )


@pytest.mark.parametrize(
    ("form", "period_end", "due"),
    [
        # 2024-09-28 + 90 = Fri 2024-12-27; + 15 = Sat 2025-01-11 -> Mon 2025-01-13.
        ("10-K", date(2024, 9, 28), date(2025, 1, 13)),
        # 2023-12-31 + 90 = Sat 2024-03-30 -> Mon 04-01; + 15 = Tue 2024-04-16.
        ("10-K", date(2023, 12, 31), date(2024, 4, 16)),
        ("10k", date(2023, 12, 31), date(2024, 4, 16)),
        # 2023-07-01 + 45 = Tue 2023-08-15; + 5 = Sun 08-20 -> Mon 2023-08-21.
        ("10-Q", date(2023, 7, 1), date(2023, 8, 21)),
        # Four months after 31 December is 30 April (month end stays month end); + 15.
        ("20-F", date(2023, 12, 31), date(2024, 5, 15)),
        # 2023-12-31 + 180 = Fri 2024-06-28; + 15 = Sat 07-13 -> Mon 2024-07-15.
        ("11-K", date(2023, 12, 31), date(2024, 7, 15)),
    ],
)
def test_estimate_is_the_last_timely_day(form, period_end, due):
    assert estimate_deadline(form, period_end) == due
    assert available_at(form=form, period_end=period_end) == (end_of_day_utc(due), True)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2024, 11, 28), date(2024, 11, 29)),  # Thanksgiving
        (date(2022, 12, 24), date(2022, 12, 27)),  # Saturday; Christmas observed Monday 26th
        (date(2021, 12, 31), date(2022, 1, 3)),  # New Year 2022 (Sat) observed on 31 Dec 2021
        (date(2023, 1, 16), date(2023, 1, 17)),  # Martin Luther King Jr. Day
        (date(2024, 6, 19), date(2024, 6, 20)),  # Juneteenth
        (date(2024, 5, 27), date(2024, 5, 28)),  # Memorial Day
        (date(2024, 7, 5), date(2024, 7, 5)),  # an ordinary Friday
    ],
)
def test_next_business_day_skips_weekends_and_federal_holidays(day, expected):
    assert next_business_day(day) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10-K", "10-K"),
        ("10k", "10-K"),
        ("10-q", "10-Q"),
        ("10-K/A", "10-K/A"),
        ("10ka", "10-K/A"),
        ("8k", "8-K"),
        ("sc 13g/a", "SC 13G/A"),
        ("DEFA14A", "DEFA14A"),
        (" 20-F ", "20-F"),
    ],
)
def test_normalize_form(raw, expected):
    assert normalize_form(raw) == expected


@pytest.mark.parametrize("form", ["8-K", "10-K/A", "10-Q/A", "6-K", "S-1", "DEF 14A"])
def test_no_estimate_where_the_rules_set_no_bound(form):
    assert statutory_deadline(form) is None
    with pytest.raises(InputError, match="no deadline that bounds it") as info:
        available_at(form=form, period_end=date(2024, 3, 31))
    assert "filing date" in str(info.value)
    # With a real date every form is fine.
    assert available_at(form=form, filing_date=date(2024, 4, 2)).estimated is False


def test_no_dates_at_all_is_a_clear_error():
    with pytest.raises(InputError, match="no acceptance time, filing date or period end"):
        available_at(form="10-K")


@pytest.mark.parametrize("bad", ["2024-13-01", "yesterday"])
def test_bad_dates_are_input_errors(bad):
    with pytest.raises(InputError, match="not a"):
        available_at(form="10-K", filing_date=bad)
    with pytest.raises(InputError, match="not a timestamp"):
        available_at(form="10-K", acceptance_datetime=bad)


@settings(max_examples=100, deadline=None)
@given(
    form=st.sampled_from(sorted(PLAIN_BOUND_DAYS)),
    period_end=st.dates(min_value=date(1994, 1, 1), max_value=date(2035, 12, 31)),
    fraction=st.floats(min_value=0.0, max_value=1.0),
)
def test_estimate_is_never_earlier_than_a_timely_filing(form, period_end, fraction):
    """Any filing date the rules allow is at or before the estimate (and not far before)."""
    bound = PLAIN_BOUND_DAYS[form]
    real_filing_date = period_end + timedelta(days=round(fraction * bound))
    estimate = available_at(form=form, period_end=period_end)
    assert estimate.estimated
    assert estimate.at >= end_of_day_utc(real_filing_date)
    due = estimate.at.astimezone(NEW_YORK).date()
    assert is_business_day(due)
    # Weekend and holiday rolls add at most a few days each to the plain bound.
    assert due <= period_end + timedelta(days=bound + 12)


@settings(max_examples=100, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1994, 1, 1), max_value=datetime(2035, 12, 31)),
)
def test_filing_date_availability_is_never_before_the_acceptance_time(moment):
    """EDGAR dates a filing accepted after 17:30 (or on a closed day) the next business day."""
    day = moment.date()
    late = moment.time() >= time(17, 30)
    filing_date = next_business_day(day + timedelta(days=1) if late else day)
    by_acceptance = available_at(form="10-Q", acceptance_datetime=moment)
    by_date = available_at(form="10-Q", filing_date=filing_date)
    assert by_date.at >= by_acceptance.at
    assert by_acceptance.at == moment.replace(tzinfo=NEW_YORK).astimezone(UTC)


@settings(max_examples=100, deadline=None)
@given(day=st.dates(min_value=date(1994, 1, 1), max_value=date(2035, 12, 31)))
def test_end_of_day_is_the_last_second_of_that_new_york_day(day):
    at = end_of_day_utc(day)
    assert at.tzinfo is UTC
    assert at.astimezone(NEW_YORK).replace(tzinfo=None) == datetime.combine(day, time(23, 59, 59))


@pytest.mark.realdata
def test_estimates_are_never_earlier_than_the_real_filing_dates(shared_data: Path):
    """Manifest rows with both a period end and a filing date: estimate >= the real date."""
    rows = [
        row
        for row in load_manifest(shared_data / "filings" / "manifest.csv").rows
        if row.filing_date is not None and row.period_end is not None
    ]
    checked = 0
    for row in rows:
        real = available_at(form=row.form, filing_date=row.filing_date)
        if statutory_deadline(row.form) is None:
            # The 8-K (Item 8.01, filed six business days after its period of report) shows
            # why no estimate is offered for it.
            with pytest.raises(InputError):
                available_at(form=row.form, period_end=row.period_end)
            continue
        estimate = available_at(form=row.form, period_end=row.period_end)
        assert estimate.estimated
        assert estimate.at >= real.at, (row.ticker, row.form, row.filing_date, estimate)
        checked += 1
    assert checked == 12
