"""When a filing became public: ``available_at`` for every document, never too early.

A retrieval result is usable at a decision time only if the filing was public by then. The
best evidence, in order (issue 5, section 3):

1. the EDGAR acceptance time (``<ACCEPTANCE-DATETIME>`` in the SGML header, US/Eastern
   local time, converted to UTC);
2. the filing date, taken as the *end* of that day in New York (23:59:59), because the date
   alone does not say when in the day the filing appeared;
3. a conservative estimate: the period end plus the longest deadline the SEC rules allow for
   the form, including the Rule 12b-25 extension, rolled to the next business day, end of day,
   and marked ``estimated``.

Deadlines used for the estimate (the longest filer category in each case):

* 10-K (and 10-KT, 10-K405, 10-KSB): 90 days after the fiscal year end for non-accelerated
  filers (Form 10-K General Instruction A.(2)(c); 60 and 75 days for large accelerated and
  accelerated filers), plus 15 calendar days under Rule 12b-25(b)(2)(ii) (17 CFR 240.12b-25).
* 10-Q (and 10-QT, 10-QSB): 45 days after the quarter end for non-accelerated filers (Form
  10-Q General Instruction A.1; 40 days for accelerated filers), plus 5 calendar days under
  Rule 12b-25.
* 20-F: four months after the fiscal year end (Form 20-F General Instruction A.(b)), plus 15
  calendar days under Rule 12b-25.
* 11-K: 180 days after the plan's fiscal year end (Rule 15d-21, 17 CFR 240.15d-21), plus 15
  calendar days under Rule 12b-25.
* A due date on a Saturday, Sunday or federal holiday moves to the next business day
  (Rule 0-3, 17 CFR 240.0-3).

No estimate is offered where the rules do not bound the filing date, because an estimate that
can come out earlier than the real date would leak the future into a backtest:

* 8-K: the period of report is the date of the *earliest* event reported; the four-business-day
  deadline (Form 8-K General Instruction B.1) runs from each event, so a later event in the same
  report is due later, and Items 7.01 and 8.01 have no deadline at all. (The 8-K in the shared
  data was filed six business days after its period of report, under Item 8.01.)
* Amendments (``10-K/A`` ...): filed whenever a correction is needed, possibly years later.
* 6-K, proxy statements, registration statements and other forms without a periodic deadline.

These raise :class:`~quantdesk.quant_core.errors.InputError` asking for a filing date.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

from quantdesk.quant_core.errors import InputError

__all__ = [
    "EDGAR_TIMEZONE",
    "Availability",
    "Deadline",
    "available_at",
    "end_of_day_utc",
    "estimate_deadline",
    "is_business_day",
    "next_business_day",
    "normalize_form",
    "parse_acceptance_datetime",
    "parse_filing_date",
    "statutory_deadline",
]

EDGAR_TIMEZONE = ZoneInfo("America/New_York")
"""EDGAR stamps acceptance times and filing dates in US/Eastern local time."""

_END_OF_DAY = time(23, 59, 59)


class Deadline(NamedTuple):
    """The longest filing deadline for a periodic form.

    Attributes:
        days: Calendar days after the period end (0 when ``months`` is used).
        months: Calendar months after the period end (0 when ``days`` is used).
        extension_days: Calendar days of grace under Rule 12b-25 after the due date.
        rule: Where the deadline comes from, for messages and documentation.
    """

    days: int
    months: int
    extension_days: int
    rule: str


_ANNUAL_10K = Deadline(90, 0, 15, "Form 10-K Gen. Instr. A.(2)(c) + Rule 12b-25")
_QUARTERLY_10Q = Deadline(45, 0, 5, "Form 10-Q Gen. Instr. A.1 + Rule 12b-25")

_DEADLINES: dict[str, Deadline] = {
    "10-K": _ANNUAL_10K,
    "10-KT": _ANNUAL_10K,
    "10-K405": _ANNUAL_10K,
    "10-KSB": _ANNUAL_10K,
    "10-Q": _QUARTERLY_10Q,
    "10-QT": _QUARTERLY_10Q,
    "10-QSB": _QUARTERLY_10Q,
    "20-F": Deadline(0, 4, 15, "Form 20-F Gen. Instr. A.(b) + Rule 12b-25"),
    "11-K": Deadline(180, 0, 15, "Rule 15d-21 + Rule 12b-25"),
}

# Compact spellings seen in folder and file names ("10k", "10q", "8k").
_COMPACT_FORMS = {"10K": "10-K", "10Q": "10-Q", "8K": "8-K", "20F": "20-F", "6K": "6-K"}


class Availability(NamedTuple):
    """When a document became public.

    Attributes:
        at: tz-aware UTC datetime.
        estimated: True when ``at`` is a conservative estimate from the period end.
    """

    at: datetime
    estimated: bool


def normalize_form(form: str) -> str:
    """Spell a form type the way EDGAR does.

    Args:
        form: ``"10-K"``, ``"10k"``, ``"10-k/a"``, ``"10ka"`` ...

    Returns:
        Upper case with EDGAR's hyphen and ``/A`` suffix: ``"10-K"``, ``"10-K/A"``.

    Raises:
        InputError: ``form`` is blank.
    """
    text = form.strip().upper()
    if not text:
        raise InputError("Form type is blank.", fix="pass a form such as '10-K' or '10-Q'.")
    amended = text.endswith("/A")
    base = text[:-2] if amended else text
    compact = base.replace("-", "").replace(" ", "")
    if compact in _COMPACT_FORMS:
        base = _COMPACT_FORMS[compact]
    elif not amended and compact.endswith("A") and compact[:-1] in _COMPACT_FORMS:
        base, amended = _COMPACT_FORMS[compact[:-1]], True
    return f"{base}/A" if amended else base


def statutory_deadline(form: str) -> Deadline | None:
    """The longest deadline for ``form``, or ``None`` when the rules set none that bounds it.

    Args:
        form: Form type in any spelling :func:`normalize_form` accepts.

    Returns:
        The deadline for periodic reports (10-K, 10-Q, 20-F, 11-K and their variants);
        ``None`` for amendments, 8-K and every other form.
    """
    return _DEADLINES.get(normalize_form(form))


@lru_cache(maxsize=256)
def _federal_holidays(year: int) -> frozenset[date]:
    """US federal holidays of ``year``, both the holiday and its observed weekday.

    Treating both days as closed can only move a deadline later, which keeps the estimate
    conservative. Juneteenth is included for every year for the same reason.
    """

    def nth_weekday(month: int, weekday: int, n: int) -> date:
        first = date(year, month, 1)
        offset = (weekday - first.weekday()) % 7
        return first + timedelta(days=offset + 7 * (n - 1))

    def last_weekday(month: int, weekday: int) -> date:
        last = date(year, month, calendar.monthrange(year, month)[1])
        return last - timedelta(days=(last.weekday() - weekday) % 7)

    fixed = [date(year, 1, 1), date(year, 6, 19), date(year, 7, 4)]
    fixed += [date(year, 11, 11), date(year, 12, 25)]
    days = set(fixed)
    for holiday in fixed:
        if holiday.weekday() == 5:
            days.add(holiday - timedelta(days=1))
        elif holiday.weekday() == 6:
            days.add(holiday + timedelta(days=1))
    days |= {
        nth_weekday(1, 0, 3),  # Martin Luther King Jr. Day
        nth_weekday(2, 0, 3),  # Washington's Birthday
        last_weekday(5, 0),  # Memorial Day
        nth_weekday(9, 0, 1),  # Labor Day
        nth_weekday(10, 0, 2),  # Columbus Day
        nth_weekday(11, 3, 4),  # Thanksgiving
    }
    return frozenset(days)


def is_business_day(day: date) -> bool:
    """Whether EDGAR counts ``day`` as a business day (not a weekend or federal holiday).

    Args:
        day: A calendar date.
    """
    # New Year's Day on a Saturday is observed on 31 December of the year before.
    holidays = _federal_holidays(day.year) | _federal_holidays(day.year + 1)
    return day.weekday() < 5 and day not in holidays


def next_business_day(day: date) -> date:
    """``day`` itself when it is a business day, else the next one (Rule 0-3).

    Args:
        day: A calendar date.
    """
    while not is_business_day(day):
        day += timedelta(days=1)
    return day


def _add_months(day: date, months: int) -> date:
    """Add calendar months; a month-end stays a month-end (the later reading)."""
    total = day.month - 1 + months
    year, month = day.year + total // 12, total % 12 + 1
    last = calendar.monthrange(year, month)[1]
    is_month_end = day.day == calendar.monthrange(day.year, day.month)[1]
    return date(year, month, last if is_month_end else min(day.day, last))


def estimate_deadline(form: str, period_end: date) -> date:
    """The last day a filing of ``form`` for ``period_end`` can be filed under the rules.

    Args:
        form: A periodic form with a deadline (see :func:`statutory_deadline`).
        period_end: The fiscal period (or plan year) end the filing reports on.

    Returns:
        The due date plus the Rule 12b-25 grace period, each rolled to the next business day.

    Raises:
        InputError: The rules set no deadline that bounds ``form``.
    """
    deadline = statutory_deadline(form)
    if deadline is None:
        supported = ", ".join(sorted(_DEADLINES))
        raise InputError(
            f"Cannot estimate when a {normalize_form(form)!r} filing for period "
            f"{period_end.isoformat()} became public: the SEC rules set no deadline that "
            f"bounds it (amendments, 8-K events and non-periodic forms can be filed later "
            f"than any fixed delay). Estimates exist only for: {supported}.",
            fix="supply the filing date or the EDGAR acceptance time (manifest 'filing_date' "
            "column, or the full-submission.txt header).",
        )
    due = period_end + timedelta(days=deadline.days)
    if deadline.months:
        due = _add_months(period_end, deadline.months)
    due = next_business_day(due)
    return next_business_day(due + timedelta(days=deadline.extension_days))


def end_of_day_utc(day: date) -> datetime:
    """23:59:59 New York time on ``day``, in UTC.

    Args:
        day: A calendar date as EDGAR records it (Eastern time).
    """
    return datetime.combine(day, _END_OF_DAY, tzinfo=EDGAR_TIMEZONE).astimezone(UTC)


def parse_acceptance_datetime(value: datetime | str) -> datetime:
    """An EDGAR acceptance time as a tz-aware UTC datetime.

    Args:
        value: ``"20191115060224"`` (the SGML header's ``YYYYMMDDhhmmss``, Eastern time), an
            ISO string, a naive datetime (taken as Eastern time) or an aware datetime.

    Returns:
        The same instant in UTC.

    Raises:
        InputError: The string is not a recognised timestamp.
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 14 and text.isdigit():
                value = datetime.strptime(text, "%Y%m%d%H%M%S")
            else:
                value = datetime.fromisoformat(text)
        except ValueError as exc:
            raise InputError(
                f"Acceptance time {value!r} is not a timestamp.",
                fix="pass YYYYMMDDhhmmss as in <ACCEPTANCE-DATETIME>, or an ISO datetime.",
            ) from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=EDGAR_TIMEZONE)
    return value.astimezone(UTC)


def parse_filing_date(value: date | str) -> date:
    """A filing date from a ``date``, ``"20191115"`` or ``"2019-11-15"``.

    Args:
        value: The date, or its compact or ISO spelling.

    Raises:
        InputError: The string is not a date.
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = value.strip()
    try:
        if len(text) == 8 and text.isdigit():
            return datetime.strptime(text, "%Y%m%d").date()
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InputError(
            f"Filing date {value!r} is not a date.",
            fix="pass YYYY-MM-DD or YYYYMMDD.",
        ) from exc


def available_at(
    *,
    form: str,
    acceptance_datetime: datetime | str | None = None,
    filing_date: date | str | None = None,
    period_end: date | str | None = None,
) -> Availability:
    """When a filing became public, from the best evidence available.

    Args:
        form: Form type as filed (``"10-K"``, ``"10-Q/A"``, ``"8-K"``; loose spellings such
            as ``"10k"`` are accepted).
        acceptance_datetime: EDGAR acceptance time (see :func:`parse_acceptance_datetime`).
        filing_date: EDGAR filing date (see :func:`parse_filing_date`).
        period_end: Fiscal period end (period of report), used only when both of the above
            are missing.

    Returns:
        ``(at, estimated)``: the acceptance time in UTC; else the end of the filing date in
        New York, in UTC; else the end of the last day the rules allow (see the module
        docstring), in UTC, with ``estimated=True``.

    Raises:
        InputError: No date was given, or only a period end for a form whose filing date the
            rules do not bound (8-K, amendments, non-periodic forms).
    """
    if acceptance_datetime is not None:
        return Availability(parse_acceptance_datetime(acceptance_datetime), False)
    if filing_date is not None:
        return Availability(end_of_day_utc(parse_filing_date(filing_date)), False)
    if period_end is None:
        raise InputError(
            f"Cannot tell when the {form!r} filing became public: no acceptance time, filing "
            "date or period end was given.",
            fix="supply at least the filing date (or the period end of a 10-K/10-Q/20-F).",
        )
    day = estimate_deadline(form, parse_filing_date(period_end))
    return Availability(end_of_day_utc(day), True)
