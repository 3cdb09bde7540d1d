"""Build statistics' rules (vieter_lite/stats.py): buckets, percentiles, the summary of a
window and the query parameters, as tables."""

from __future__ import annotations

import pytest

from vieter_lite.errors import BadQueryParameter, Invalid
from vieter_lite.stats import (
    MAX_BUCKETS,
    Bucket,
    Sample,
    StatsQuery,
    bucket_count,
    bucket_start,
    parse_query,
    percentile,
    summarise,
)

DAY, HOUR = 86400, 3600
T0 = 1_790_035_200      # 2026-09-22T00:00:00Z, a day's start
NOW = T0 + 10 * DAY + 5 * HOUR + 17


@pytest.mark.parametrize("moment, size, start", [
    (T0, DAY, T0), (T0 + DAY - 1, DAY, T0), (T0 + DAY, DAY, T0 + DAY),
    (T0 + 90 * 60, HOUR, T0 + HOUR), (T0 + 59, HOUR, T0), (0, DAY, 0),
])
def test_bucket_start(moment, size, start):
    assert bucket_start(moment, size) == start


@pytest.mark.parametrize("since, until, size, count", [
    (T0, T0 + DAY, DAY, 1), (T0, T0 + DAY + 1, DAY, 2), (T0 + 5, T0 + DAY, DAY, 1),
    (T0 + DAY - 1, T0 + DAY + 1, DAY, 2), (T0, T0 + 1, HOUR, 1), (T0, T0 + DAY, HOUR, 24),
    (T0, T0, DAY, 0),
])
def test_bucket_count(since, until, size, count):
    assert bucket_count(since, until, size) == count


@pytest.mark.parametrize("values, p, result", [
    ([], 50, None), ([7], 50, 7), ([1, 2], 50, 1), ([3, 1, 2], 50, 2), ([4, 1, 3, 2], 50, 2),
    ([5, 1, 4, 2, 3], 50, 3), ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90, 9),
    ([10, 1], 100, 10), ([10, 1], 1, 1),
])
def test_percentile_is_nearest_rank(values, p, result):
    assert percentile(values, p) == result


def s(created: int, state: str, started: int | None = None, ended: int | None = None) -> Sample:
    return Sample(created, started, ended, state)


@pytest.mark.parametrize("samples, query, buckets", [
    # nothing: every bucket of the window, empty
    ([], StatsQuery("day", T0, T0 + 2 * DAY),
     [Bucket(T0), Bucket(T0 + DAY)]),
    # outcomes: failed counts timeouts; the rate leaves cancelled and unfinished out
    ([s(T0 + 1, "success", T0 + 10, T0 + 70), s(T0 + 2, "failed", T0 + 2, T0 + 32),
      s(T0 + 3, "timeout", T0 + 3, T0 + 3603), s(T0 + 4, "cancelled", T0 + 4, T0 + 5),
      s(T0 + 5, "running", T0 + 20), s(T0 + 6, "queued"), s(T0 + 7, "pending")],
     StatsQuery("day", T0, T0 + DAY),
     [Bucket(T0, builds=7, success=1, failed=2, cancelled=1, success_rate=1 / 3,
             duration_p50=60, duration_max=3600, wait_p50=0, wait_max=15)]),
    # by created_at, into hours; a build created before the window or at until is not in it
    ([s(T0 - 1, "success", T0, T0 + 9), s(T0 + 10, "success", T0 + 20, T0 + 40),
      s(T0 + HOUR + 5, "failed", T0 + HOUR + 65, T0 + HOUR + 70),
      s(T0 + 2 * HOUR, "success", T0 + 2 * HOUR, T0 + 2 * HOUR + 1)],
     StatsQuery("hour", T0, T0 + 2 * HOUR),
     [Bucket(T0, builds=1, success=1, success_rate=1.0, duration_p50=20, duration_max=20,
             wait_p50=10, wait_max=10),
      Bucket(T0 + HOUR, builds=1, failed=1, success_rate=0.0, duration_p50=5, duration_max=5,
             wait_p50=60, wait_max=60)]),
    # only cancelled and unfinished: no rate, no durations
    ([s(T0, "cancelled", T0 + 1, T0 + 2), s(T0, "queued")], StatsQuery("day", T0, T0 + 1),
     [Bucket(T0, builds=2, cancelled=1, wait_p50=1, wait_max=1)]),
    # a clock that went back (started before created) counts a wait of 0
    ([s(T0 + 50, "success", T0 + 40, T0 + 100)], StatsQuery("day", T0, T0 + DAY),
     [Bucket(T0, builds=1, success=1, success_rate=1.0, duration_p50=60, duration_max=60,
             wait_p50=0, wait_max=0)]),
])
def test_summarise(samples, query, buckets):
    assert summarise(samples, query) == buckets


def q(**params: str) -> StatsQuery:
    return parse_query(list(params.items()), NOW)


def test_defaults_are_30_days_of_days_up_to_the_end_of_today():
    query = q()
    assert query == StatsQuery("day", T0 - 19 * DAY, T0 + 11 * DAY)
    assert bucket_count(query.since, query.until, DAY) == 30


@pytest.mark.parametrize("params, query", [
    ({"bucket": "hour"}, StatsQuery("hour", NOW - NOW % HOUR + HOUR - 30 * DAY,
                                    NOW - NOW % HOUR + HOUR)),
    ({"since": "2026-09-22T00:00:00Z", "until": "2026-09-24T00:00:00Z"},
     StatsQuery("day", T0, T0 + 2 * DAY)),
    ({"since": "2026-09-22T13:30:00Z", "until": "2026-09-22T15:00:00Z", "bucket": "hour"},
     StatsQuery("hour", T0 + 13 * HOUR, T0 + 15 * HOUR)),
    ({"target_id": "7", "until": "2026-09-23T00:00:00Z"},
     StatsQuery("day", T0 - 29 * DAY, T0 + DAY, 7)),
])
def test_parse_query(params, query):
    assert q(**params) == query


@pytest.mark.parametrize("params, field", [
    ({"bucket": "week"}, "bucket"),
    ({"since": "yesterday"}, "since"),
    ({"until": "2026-02-30T00:00:00Z"}, "until"),
    ({"since": "2026-09-23T00:00:00Z", "until": "2026-09-23T00:00:00Z"}, "since"),
    ({"since": "2026-09-24T00:00:00Z", "until": "2026-09-23T00:00:00Z"}, "since"),
    ({"bucket": "hour", "since": "2026-08-01T00:00:00Z"}, "since"),   # 1 000+ hours
    ({"target_id": "x"}, "target_id"), ({"target_id": "0"}, "target_id"),
    ({"target_id": "-1"}, "target_id"), ({"target_id": "9" * 19}, "target_id"),
])
def test_invalid_values_are_invalid_naming_the_parameter(params, field):
    with pytest.raises(Invalid) as caught:
        q(**params)
    assert caught.value.field == field


def test_at_most_max_buckets():
    since = NOW - NOW % HOUR - (MAX_BUCKETS - 1) * HOUR
    assert bucket_count(q(bucket="hour", since=_ts(since), until=_ts(NOW)).since, NOW,
                        HOUR) == MAX_BUCKETS
    with pytest.raises(Invalid):
        q(bucket="hour", since=_ts(since - 1), until=_ts(NOW))


@pytest.mark.parametrize("pairs, parameter", [
    ([("colour", "red")], "colour"), ([("bucket", "day"), ("bucket", "hour")], "bucket"),
])
def test_unknown_or_repeated_parameters_are_bad_query_parameters(pairs, parameter):
    with pytest.raises(BadQueryParameter) as caught:
        parse_query(pairs, NOW)
    assert caught.value.parameter == parameter


def _ts(seconds: int) -> str:
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
