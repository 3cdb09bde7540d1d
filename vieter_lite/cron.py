"""Vieter's 2-4 field cron dialect (minute hour day month), evaluated with croniter."""

from __future__ import annotations

import calendar
import dataclasses
import re
from collections.abc import Iterable
from datetime import datetime

from croniter import croniter

__all__ = [
    "CronError",
    "Schedule",
    "expand_field",
    "expand_term",
    "next_after",
    "next_n",
    "next_tuple",
    "parse",
]

# (name, minimum, maximum) of the four fields, in order.
FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12))

# Days per month, counting 29 February as valid (it fires in leap years only).
_MAX_DAYS = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}

# 29 February is at most 8 years away (e.g. 2096 -> 2104); croniter must search that far.
_MAX_YEARS = 9

_NUMBER = re.compile(r"[0-9]+")  # ASCII digits only: no sign, spaces or Unicode digits


class CronError(ValueError):
    """An invalid cron expression, field or term; str() is a human-readable message."""

    def __init__(self, reason: str, expression: str | None = None, field: str | None = None):
        self.reason = reason
        self.expression = expression
        self.field = field
        message = f"{reason} in the {field} field" if field else reason
        if expression is not None:
            message = f"Invalid cron expression {expression!r}: {message}"
        super().__init__(message)


def _listed(values: Iterable[int]) -> str:
    return ",".join(map(str, sorted(values)))


def _number(text: str, what: str = "number") -> int:
    if not _NUMBER.fullmatch(text):
        raise CronError(f"invalid {what} {text!r}")
    return int(text)


def _in_range(value: int, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise CronError(f"{value} is out of range {lo}-{hi}")
    return value


def expand_term(term: str, lo: int, hi: int) -> set[int]:
    """Values allowed by one term: `*`, `a`, `a-b`, `*/n`, `a/n` or `a-b/n`."""
    if term.count("/") > 1:
        raise CronError(f"term {term!r} has more than one '/'")
    if term.count("-") > 1:
        raise CronError(f"term {term!r} has more than one '-'")
    base, slash, step_text = term.partition("/")
    step = 1
    if slash:
        step = _number(step_text, "step")
        if step == 0:
            raise CronError(f"step size zero is not allowed in {term!r}")
        if step > hi - lo:
            raise CronError(f"step {step} is too large in {term!r} (at most {hi - lo})")
    if base == "*":
        start, end = lo, hi
    elif "*" in base and "-" in base:
        raise CronError("'*' cannot be combined with a range")
    elif "-" in base:
        a_text, _, b_text = base.partition("-")
        start = _in_range(_number(a_text), lo, hi)
        end = _in_range(_number(b_text), lo, hi)
        if start > end:
            raise CronError(f"range {base!r} starts after it ends")
    else:
        start = _in_range(_number(base), lo, hi)
        end = hi if slash else start
    return set(range(start, end + 1, step))


def expand_field(text: str, lo: int, hi: int) -> set[int]:
    """Values allowed by a comma-separated list of terms (the union of the terms)."""
    values: set[int] = set()
    for term in text.split(","):
        values |= expand_term(term, lo, hi)
    return values


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A parsed expression. Equality compares the value sets, not the spelling."""

    expression: str = dataclasses.field(compare=False)
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]

    def croniter_expression(self) -> str:
        """The equivalent standard 5-field expression (day of week is always `*`)."""
        sets = (self.minutes, self.hours, self.days, self.months)
        parts = [
            "*" if len(values) == hi - lo + 1 else _listed(values)
            for values, (_, lo, hi) in zip(sets, FIELDS, strict=True)
        ]
        return " ".join(parts) + " *"


def parse(expr: str) -> Schedule:
    """Parse `minute hour [day [month]]`; missing trailing fields are `*`."""
    parts = [p for p in expr.replace("\t", " ").split(" ") if p]
    if len(parts) < 2:
        raise CronError("not enough parts (need at least minute and hour)", expr)
    if len(parts) > 4:
        raise CronError("too many parts (at most minute, hour, day and month)", expr)
    parts += ["*"] * (4 - len(parts))
    sets = []
    for text, (name, lo, hi) in zip(parts, FIELDS, strict=True):
        try:
            sets.append(frozenset(expand_field(text, lo, hi)))
        except CronError as e:
            raise CronError(e.reason, expr, name) from None
    minutes, hours, days, months = sets
    if not any(d <= _MAX_DAYS[m] for d in days for m in months):
        raise CronError(f"day {_listed(days)} never occurs in month {_listed(months)}", expr)
    return Schedule(expr, minutes, hours, days, months)


def next_after(schedule: Schedule | str, dt: datetime) -> datetime:
    """The earliest matching minute strictly after dt's minute, in dt's tzinfo (aware or naive).

    Seconds and microseconds of dt are ignored. For aware datetimes in zones with DST,
    croniter's handling applies (a wall-clock time skipped by the change fires at the
    first minute after it).
    """
    if isinstance(schedule, str):
        schedule = parse(schedule)
    it = croniter(
        schedule.croniter_expression(),
        dt.replace(second=0, microsecond=0),
        max_years_between_matches=_MAX_YEARS,
    )
    return it.get_next(datetime)


def next_n(schedule: Schedule | str, dt: datetime, n: int) -> list[datetime]:
    """The next n matches after dt, strictly increasing."""
    if isinstance(schedule, str):
        schedule = parse(schedule)
    result = []
    for _ in range(n):
        dt = next_after(schedule, dt)
        result.append(dt)
    return result


Minute = tuple[int, int, int, int, int]  # (year, month, day, hour, minute)


def next_tuple(schedule: Schedule | str, ref: Minute) -> Minute:
    """next_after on a raw (year, month, day, hour, minute) tuple, as Vieter's C function.

    The day may exceed the month's length (e.g. 31 November): such a reference lies after
    every real minute of that month, so it is treated as the month's last minute.
    """
    year, month, day, hour, minute = ref
    last_day = calendar.monthrange(year, month)[1] if 1 <= month <= 12 else 0
    if last_day and last_day < day <= 31 and 0 <= hour <= 23 and 0 <= minute <= 59:
        dt = datetime(year, month, last_day, 23, 59)
    else:
        dt = datetime(year, month, day, hour, minute)  # raises ValueError when invalid
    n = next_after(schedule, dt)
    return (n.year, n.month, n.day, n.hour, n.minute)
