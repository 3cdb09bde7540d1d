"""Build statistics per time bucket (GET /api/v2/stats/builds): the query's rules and the
bucketing and percentiles, pure functions over (created_at, started_at, ended_at, state)
samples that the database reads for the window.

A build falls in the bucket of its created_at (UTC days or hours). `builds` counts every
build created in the bucket; `success`, `failed` (failed and timeout) and `cancelled` the
ended ones; `success_rate` is success / (success + failed), null without either. Durations
(ended_at - started_at) count the builds that ran to an end (success, failed, timeout);
waits (started_at - created_at) every build that started. Percentiles are nearest-rank."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vieter_lite.errors import BadQueryParameter, Invalid
from vieter_lite.lists import parse_timestamp
from vieter_lite.models import BuildSample as Sample

BUCKETS: dict[str, int] = {"day": 86400, "hour": 3600}
DEFAULT_BUCKET = "day"
DEFAULT_WINDOW = 30 * 86400     # without since: the 30 days up to until
MAX_BUCKETS = 1000
PARAMETERS = ("target_id", "bucket", "since", "until")
RAN_TO_AN_END = ("success", "failed", "timeout")
FAILED = ("failed", "timeout")
_MAX_ID = 2 ** 63 - 1


@dataclass(frozen=True)
class StatsQuery:
    bucket: str
    since: int      # the first bucket's start (since rounded down to a bucket)
    until: int      # exclusive
    target_id: int | None = None

    @property
    def size(self) -> int:
        return BUCKETS[self.bucket]


@dataclass(frozen=True)
class Bucket:
    start: int
    builds: int = 0
    success: int = 0
    failed: int = 0
    cancelled: int = 0
    success_rate: float | None = None
    duration_p50: int | None = None
    duration_max: int | None = None
    wait_p50: int | None = None
    wait_max: int | None = None


def bucket_start(moment: int, size: int) -> int:
    """The start of the (UTC) bucket holding `moment`."""
    return moment - moment % size


def bucket_count(since: int, until: int, size: int) -> int:
    """How many buckets cover [bucket_start(since), until)."""
    return max(0, math.ceil((until - bucket_start(since, size)) / size))


def percentile(values: Sequence[int], p: float) -> int | None:
    """The nearest-rank p-th percentile (0 < p <= 100) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summarise(samples: Iterable[Sample], query: StatsQuery) -> list[Bucket]:
    """One Bucket per bucket of the window, oldest first (empty ones too); samples outside
    the window are ignored."""
    size = query.size
    count = bucket_count(query.since, query.until, size)
    first = bucket_start(query.since, size)
    states: list[list[str]] = [[] for _ in range(count)]
    durations: list[list[int]] = [[] for _ in range(count)]
    waits: list[list[int]] = [[] for _ in range(count)]
    for sample in samples:
        if not first <= sample.created_at < query.until:
            continue
        index = (sample.created_at - first) // size
        states[index].append(sample.state)
        if sample.started_at is not None:
            waits[index].append(max(0, sample.started_at - sample.created_at))
            if sample.ended_at is not None and sample.state in RAN_TO_AN_END:
                durations[index].append(max(0, sample.ended_at - sample.started_at))
    out = []
    for index in range(count):
        seen = states[index]
        success = seen.count("success")
        failed = sum(seen.count(s) for s in FAILED)
        out.append(Bucket(
            start=first + index * size, builds=len(seen), success=success, failed=failed,
            cancelled=seen.count("cancelled"),
            success_rate=success / (success + failed) if success + failed else None,
            duration_p50=percentile(durations[index], 50),
            duration_max=max(durations[index], default=None),
            wait_p50=percentile(waits[index], 50), wait_max=max(waits[index], default=None)))
    return out


def _time(name: str, text: str) -> int:
    try:
        return parse_timestamp(name, text)
    except BadQueryParameter as exc:
        raise Invalid(name, "invalid", str(exc)) from None


def parse_query(params: Iterable[tuple[str, str]], now: int) -> StatsQuery:
    """The query parameters -> StatsQuery. An unknown or repeated parameter is a
    BadQueryParameter (400, as on every list); an invalid value is Invalid (422) naming it:
    bucket not day or hour, a time not YYYY-MM-DDThh:mm:ssZ, since not before until, more
    than MAX_BUCKETS buckets, a target_id that is not an id."""
    given: dict[str, str] = {}
    for name, value in params:
        if name not in PARAMETERS:
            valid = ", ".join(f"'{p}'" for p in PARAMETERS)
            raise BadQueryParameter(name, f"Unknown query parameter(s): '{name[:80]}'. "
                                          f"Valid parameters are: {valid}")
        if name in given:
            raise BadQueryParameter(name, f"{name} is given more than once")
        given[name] = value
    bucket = given.get("bucket", DEFAULT_BUCKET)
    if bucket not in BUCKETS:
        raise Invalid("bucket", "invalid", "bucket must be 'day' or 'hour'")
    size = BUCKETS[bucket]
    # without until: the end of the bucket holding now (so the last bucket is the current
    # one, whole); without since: 30 days of whole buckets up to until
    until = _time("until", given["until"]) if "until" in given \
        else bucket_start(now, size) + size
    since = _time("since", given["since"]) if "since" in given \
        else bucket_start(until - 1, size) + size - DEFAULT_WINDOW
    if since >= until:
        raise Invalid("since", "invalid", "since must be before until")
    if bucket_count(since, until, size) > MAX_BUCKETS:
        raise Invalid("since", "too_many", f"at most {MAX_BUCKETS} buckets: a shorter "
                                           f"window (since .. until) or a larger bucket")
    target_id = None
    if "target_id" in given:
        text = given["target_id"]
        if not (text.isascii() and text.isdecimal()) or len(text) > 18 \
                or not 0 < int(text) <= _MAX_ID:
            raise Invalid("target_id", "invalid", "target_id must be a target's id")
        target_id = int(text)
    return StatsQuery(bucket=bucket, since=bucket_start(since, size), until=until,
                      target_id=target_id)
