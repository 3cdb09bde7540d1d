"""Table tests for vieter_lite.cron (vectors from vieter-behaviour.md section 9.3)."""

import itertools
from datetime import UTC, datetime

import pytest

from vieter_lite.cron import (
    CronError,
    Schedule,
    expand_field,
    expand_term,
    next_after,
    next_n,
    next_tuple,
    parse,
)


def at(text: str) -> datetime:
    """'YYYY-MM-DD HH:MM[:SS]' -> naive datetime."""
    return datetime.fromisoformat(text)


# --- parse must fail --------------------------------------------------------------------

MUST_FAIL = [
    ("4 *-7", "'*' cannot be combined with a range in the hour field"),
    ("4 *-7/4", "'*' cannot be combined with a range in the hour field"),
    ("4 7/*", "invalid step '\\*' in the hour field"),
    ("0 0 30 2", "day 30 never occurs in month 2"),
    ("0 /5", "invalid number '' in the hour field"),
    ("0  ", "not enough parts"),
    ("0", "not enough parts"),
    ("      0", "not enough parts"),
    ("       0      ", "not enough parts"),
    ("1 2 3 4~9", "invalid number '4~9' in the month field"),
    ("1 1-3-5", "more than one '-' in the hour field"),
    ("0 5/2-5", "invalid step '2-5' in the hour field"),
    ("", "not enough parts"),
    ("1 1/2/3", "more than one '/' in the hour field"),
    ("*5 8", "invalid number '\\*5' in the minute field"),
    ("x 8", "invalid number 'x' in the minute field"),
    # consequences of the rules
    ("1 2 3 4 5", "too many parts"),
    ("60 0", "60 is out of range 0-59 in the minute field"),
    ("0 24", "24 is out of range 0-23 in the hour field"),
    ("0 0 0", "0 is out of range 1-31 in the day field"),
    ("0 0 1 13", "13 is out of range 1-12 in the month field"),
    ("*/60 0", "step 60 is too large"),
    ("*/0 0", "step size zero"),
    ("0 5-3", "range '5-3' starts after it ends"),
    ("0 0 31 2", "day 31 never occurs in month 2"),
    ("0 0 31 4,6,9,11", "day 31 never occurs in month 4,6,9,11"),
    ("0 0 30,31 2", "day 30,31 never occurs in month 2"),
    ("+5 0", "invalid number '\\+5' in the minute field"),
    ("-5 0", "invalid number '' in the minute field"),
    ("\u0665 0", "invalid number '\u0665' in the minute field"),  # ARABIC-INDIC DIGIT FIVE
    ("5 1,,2", "invalid number '' in the hour field"),
    ("5 3,", "invalid number '' in the hour field"),
    ("5 0x1", "invalid number '0x1' in the hour field"),
    ("5 1_0", "invalid number '1_0' in the hour field"),
    ("5 */+2", "invalid step '\\+2' in the hour field"),
]


@pytest.mark.parametrize("expr, message", MUST_FAIL)
def test_parse_must_fail(expr, message):
    with pytest.raises(CronError, match=message) as info:
        parse(expr)
    assert str(info.value).startswith(f"Invalid cron expression {expr!r}: ")
    assert info.value.expression == expr


def test_error_message_is_human_readable():
    with pytest.raises(CronError) as info:
        parse("4 *-7")
    assert str(info.value) == (
        "Invalid cron expression '4 *-7': '*' cannot be combined with a range in the hour field"
    )
    assert info.value.field == "hour"
    assert isinstance(info.value, ValueError)


# --- parse must succeed -----------------------------------------------------------------


def test_missing_trailing_fields_are_stars():
    a, b, c = parse("5 5"), parse("5 5 *"), parse("5 5 * *")
    assert a == b == c
    assert a.minutes == {5} and a.hours == {5}
    assert a.days == frozenset(range(1, 32)) and a.months == frozenset(range(1, 13))
    assert (a.expression, c.expression) == ("5 5", "5 5 * *")


@pytest.mark.parametrize("expr", ["0 1 2 3 ", " 0 1 2 3", "0   1  2 3", "0\t1 2\t3"])
def test_spaces_around_and_between_fields(expr):
    s = parse(expr)
    assert (s.minutes, s.hours, s.days, s.months) == ({0}, {1}, {2}, {3})


def test_parse_value_sets():
    s = parse("0 3-7/4,7-19")
    assert s.hours == {3, *range(7, 20)}
    assert isinstance(s, Schedule) and isinstance(s.hours, frozenset)


@pytest.mark.parametrize("expr", ["0 0 29 2", "0 0 30 1,2", "0 0 31 2,4,5", "*/59 0"])
def test_parse_valid_day_month_and_step(expr):
    parse(expr)


def test_star_slash_59_is_zero_and_59():
    assert parse("*/59 0").minutes == {0, 59}


# --- term and field expansion -----------------------------------------------------------

EXPAND_OK = [
    ("*", 0, 5, {0, 1, 2, 3, 4, 5}),
    ("4", 0, 5, {4}),
    ("*/4", 0, 20, {0, 4, 8, 12, 16, 20}),
    ("*/3", 1, 8, {1, 4, 7}),
    ("5/4", 2, 22, {5, 9, 13, 17, 21}),
    ("4-8", 0, 9, {4, 5, 6, 7, 8}),
    ("4-8/2", 0, 9, {4, 6, 8}),
    ("3-7/4", 0, 23, {3, 7}),
    ("3/4", 0, 23, {3, 7, 11, 15, 19, 23}),
    ("007", 0, 9, {7}),
]


@pytest.mark.parametrize("term, lo, hi, expected", EXPAND_OK)
def test_expand_term(term, lo, hi, expected):
    assert expand_term(term, lo, hi) == expected


EXPAND_FAIL = [
    ("10", 0, 6, "10 is out of range 0-6"),
    ("0", 2, 6, "0 is out of range 2-6"),
    ("x", 0, 6, "invalid number 'x'"),
    ("*/21", 0, 20, "step 21 is too large"),
    ("*/0", 0, 20, "step size zero"),
    ("10/4", 0, 5, "10 is out of range 0-5"),
    ("2/4", 5, 10, "2 is out of range 5-10"),
    (" 5", 0, 9, "invalid number ' 5'"),
    ("5 ", 0, 9, "invalid number '5 '"),
]


@pytest.mark.parametrize("term, lo, hi, message", EXPAND_FAIL)
def test_expand_term_fails(term, lo, hi, message):
    with pytest.raises(CronError, match=message):
        expand_term(term, lo, hi)


def test_expand_field_is_union_of_terms():
    assert expand_field("*/2,2/3", 1, 8) == {1, 2, 3, 5, 7, 8}


# --- next -------------------------------------------------------------------------------

NEXT = [
    ("0    3         ", "2002-01-01 03:00", "2002-01-02 03:00"),
    ("0    3         ", "2002-01-01 04:00", "2002-01-02 03:00"),
    ("0 3-7/4,7-19", "2002-01-01 04:00", "2002-01-01 07:00"),
    ("0 3", "2002-11-30 04:00", "2002-12-01 03:00"),
    ("0 3", "2002-12-31 04:00", "2003-01-01 03:00"),
    ("0 3", "2002-01-01 00:00", "2002-01-01 03:00"),
    ("0 3/4", "2002-01-01 04:00", "2002-01-01 07:00"),
    # extra vectors
    ("0 0 31", "2002-04-15 00:00", "2002-05-31 00:00"),
    ("*/15 *", "2002-01-01 10:14", "2002-01-01 10:15"),
    ("*/15 *", "2002-01-01 10:15", "2002-01-01 10:30"),
    ("0 3", "2002-01-01 03:00:59", "2002-01-02 03:00"),
    ("59 23 31 12", "2002-12-31 23:59", "2003-12-31 23:59"),
    ("0 0 29 2", "2023-03-01 00:00", "2024-02-29 00:00"),
    ("0 0 29 2", "2096-03-01 00:00", "2104-02-29 00:00"),  # 2100 is not a leap year
    ("0 0 31 2,4,5", "2002-01-01 00:00", "2002-05-31 00:00"),
    ("* *", "2002-01-01 10:14:30", "2002-01-01 10:15"),
]


@pytest.mark.parametrize("expr, ref, expected", NEXT)
def test_next_after(expr, ref, expected):
    assert next_after(expr, at(ref)) == at(expected)
    assert next_after(parse(expr), at(ref)) == at(expected)


def test_next_tuple_accepts_invalid_day_as_reference():
    assert next_tuple("0 3", (2002, 11, 31, 4, 0)) == (2002, 12, 1, 3, 0)
    assert next_tuple("0 3", (2002, 2, 30, 0, 0)) == (2002, 3, 1, 3, 0)
    assert next_tuple("0 3", (2002, 12, 31, 4, 0)) == (2003, 1, 1, 3, 0)


def test_next_tuple_rejects_impossible_fields():
    with pytest.raises(ValueError):
        next_tuple("0 3", (2002, 13, 1, 0, 0))
    with pytest.raises(ValueError):
        next_tuple("0 3", (2002, 11, 32, 0, 0))


def test_next_after_keeps_aware_timezone():
    result = next_after("30 12", datetime(2024, 5, 1, 13, 0, 7, tzinfo=UTC))
    assert result == datetime(2024, 5, 2, 12, 30, tzinfo=UTC)
    assert result.tzinfo is UTC


def test_next_after_keeps_naive():
    assert next_after("30 12", datetime(2024, 5, 1, 13, 0)).tzinfo is None


def test_next_n_strictly_increasing():
    times = next_n("*/20 1,2", at("2002-01-01 01:30"), 5)
    expected = ["01-01 01:40", "01-01 02:00", "01-01 02:20", "01-01 02:40", "01-02 01:00"]
    assert times == [at(f"2002-{t}") for t in expected]
    assert all(a < b for a, b in itertools.pairwise(times))
    assert next_n("0 3", at("2002-01-01 00:00"), 0) == []


def test_next_after_rejects_invalid_expression_with_message():
    with pytest.raises(CronError, match="Invalid cron expression 'x 8'"):
        next_after("x 8", at("2002-01-01 00:00"))
