"""Cloud Foundry v3 list rules: query parameters -> ListQuery, and the pagination object.

Pure and stdlib only. A route hands `parse` the request's query pairs as decoded strings
(several pairs may share a name) and the resource's `ListSpec`; the `ListQuery` it gets
back goes to the database (`vieter_lite.db.lists`) and, with the total, to `pagination`.

Every error here is a `BadQueryParameter` (400, CF-BadQueryParameter), as Cloud Foundry
answers for unknown parameters and for invalid values of list parameters alike
(`per_page=0`, a bad timestamp, a bad label selector). 422 stays for request bodies.
"""

from __future__ import annotations

import calendar
import dataclasses
import math
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from vieter_lite.errors import BadQueryParameter

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 5000
MAX_LABEL_REQUIREMENTS = 50
TIME_OPS = ("lt", "lte", "gt", "gte")        # besides equality, `created_ats=T1,T2`
LABEL_OPS = ("=", "!=", "in", "notin", "exists", "!exists")
TIMESTAMP_FORMAT = "YYYY-MM-DDThh:mm:ssZ"

_TIMESTAMP = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")
_INTEGER = re.compile(r"[0-9]{1,18}")
_TIME_PARAM = re.compile(r"([a-z_]+)s\[([^\]]*)\]")
# Kubernetes label syntax, as Cloud Foundry uses it for metadata
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SET_REQUIREMENT = re.compile(r"(\S+?)\s+(in|notin)\s*\((.*)\)", re.DOTALL)


@dataclass(frozen=True)
class LabelRequirement:
    """One requirement of a label selector. `op` is one of LABEL_OPS; `values` holds one
    value for '=' and '!=', the set for 'in' and 'notin', nothing for the exists forms.
    '!=' and 'notin' also match resources without the key (as in Kubernetes and CF)."""

    key: str
    op: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class TimeCondition:
    """`field` (e.g. `created_at`) compared with unix seconds: op 'eq' matches any of
    `values` (whole seconds), 'lt'/'lte'/'gt'/'gte' compare with its one value."""

    field: str
    op: str
    values: tuple[int, ...]


@dataclass(frozen=True)
class Filter:
    """A resource filter parameter (`states`, `target_ids`): a comma list, OR within it.
    `choices` limits the values (empty: any non-empty string); `integer` asks for ids."""

    name: str
    choices: tuple[str, ...] = ()
    integer: bool = False


@dataclass(frozen=True)
class ListSpec:
    """What one resource's list accepts. Timestamp parameters are the field names plus
    's' (`created_at` -> `created_ats`, `created_ats[gt]`). `extra` names parameters the
    route reads itself: accepted, listed as valid and carried into the links."""

    order_fields: tuple[str, ...] = ("id",)
    timestamp_fields: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    labels: bool = False
    extra: tuple[str, ...] = ()

    def parameters(self) -> tuple[str, ...]:
        """The valid parameter names, in the order an error message lists them."""
        names = ["page", "per_page", "order_by"]
        names += [f + "s" for f in self.timestamp_fields]
        names += ["label_selector"] if self.labels else []
        names += [f.name for f in self.filters]
        return tuple(names) + self.extra


@dataclass(frozen=True)
class ListQuery:
    """A parsed list request: pure data that the database compiles against a whitelist."""

    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    order_by: str = "id"
    descending: bool = False
    times: tuple[TimeCondition, ...] = ()
    labels: tuple[LabelRequirement, ...] = ()
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()   # (name, values) in spec order
    reader: str | None = None   # only the rows this user may read (None: every row)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def values(self, name: str) -> tuple[str, ...] | None:
        """The values of resource filter `name`, or None when it was not given."""
        return dict(self.filters).get(name)


def readable_by(query: ListQuery, user: str) -> ListQuery:
    """The same query over only the rows `user` may read (a build's access:read)."""
    return dataclasses.replace(query, reader=user)


@dataclass(frozen=True)
class Page:
    """One page of a list: the records and what `pagination` needs besides the request."""

    resources: tuple
    total_results: int
    page: int
    per_page: int


# -- parse ----------------------------------------------------------------------------


def _bad(parameter: str, message: str) -> BadQueryParameter:
    return BadQueryParameter(parameter, message)


def _shown(text: str) -> str:
    """A client's value as an error message repeats it: at most 80 characters."""
    return text if len(text) <= 80 else text[:77] + "..."


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def parse_timestamp(parameter: str, text: str) -> int:
    """`YYYY-MM-DDThh:mm:ssZ` (UTC, whole seconds, a real date) -> unix seconds."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise _bad(parameter, f"{parameter}: '{_shown(text)}' is not a timestamp; timestamps "
                              f"are formatted as '{TIMESTAMP_FORMAT}' (UTC)")
    try:
        year, month, day, hour, minute, second = (int(g) for g in match.groups())
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise _bad(parameter, f"{parameter}: '{_shown(text)}' is not a valid date and "
                              f"time") from None
    return calendar.timegm(moment.timetuple())


def _integer(parameter: str, text: str, lowest: int, highest: int | None) -> int:
    value = int(text) if _INTEGER.fullmatch(text) else None
    if value is None or value < lowest or (highest is not None and value > highest):
        bounds = f"from {lowest} to {highest}" if highest is not None else f">= {lowest}"
        raise _bad(parameter, f"{parameter} must be an integer {bounds}, not '{_shown(text)}'")
    return value


def _order(text: str, spec: ListSpec) -> tuple[str, bool]:
    # a literal '+' arrives as ' ' once the query string is decoded: both mean ascending
    descending = text[:1] == "-"
    name = text[1:] if text[:1] in ("-", "+", " ") else text
    if name not in spec.order_fields:
        raise _bad("order_by", f"order_by can only be: {_quoted(spec.order_fields)} "
                               f"(prefixed with '-' for descending, '+' or nothing for "
                               f"ascending), not '{_shown(text)}'")
    return name, descending


def _time_condition(name: str, value: str) -> TimeCondition:
    match = _TIME_PARAM.fullmatch(name)
    if match is None:
        field, op = name[:-1], "eq"
        values = tuple(parse_timestamp(name, v) for v in value.split(","))
    else:
        field, op = match.groups()
        if op not in TIME_OPS:
            raise _bad(name, f"{name}: unknown operator '{op}' (one of {_quoted(TIME_OPS)}; "
                             f"equality is {field}s=T1,T2)")
        if "," in value:
            raise _bad(name, f"{name} takes one timestamp, not a list: '{_shown(value)}'")
        values = (parse_timestamp(name, value),)
    return TimeCondition(field, op, values)


def _filter_values(rule: Filter, text: str) -> tuple[str, ...]:
    values = tuple(text.split(","))
    for value in values:
        if value == "":
            raise _bad(rule.name, f"{rule.name}: empty value in '{_shown(text)}'")
        if rule.choices and value not in rule.choices:
            raise _bad(rule.name, f"{rule.name}: '{_shown(value)}' is not one of "
                                  f"{_quoted(rule.choices)}")
        if rule.integer and not _INTEGER.fullmatch(value):
            raise _bad(rule.name, f"{rule.name}: '{_shown(value)}' is not an id")
    if rule.integer:
        values = tuple(str(int(v)) for v in values)
    return values


def is_label_key(key: str) -> bool:
    """A label key: an optional DNS subdomain prefix (at most 253 characters) and '/',
    then a name of at most 63 characters."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253
                  or not all(_DNS_LABEL.fullmatch(p) for p in prefix.split("."))):
        return False
    return len(name) <= 63 and _LABEL_NAME.fullmatch(name) is not None


def is_label_value(value: str) -> bool:
    """A label value: empty, or a name of at most 63 characters."""
    return value == "" or (len(value) <= 63 and _LABEL_NAME.fullmatch(value) is not None)


def _split_requirements(text: str) -> list[str]:
    """Split on commas outside parentheses; parentheses must pair and not nest."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
            if depth > 1:
                raise ValueError("nested '('")
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ValueError("')' without '('")
        elif char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += char
    if depth:
        raise ValueError("'(' without ')'")
    return parts + [current]


def _requirement(text: str) -> LabelRequirement:
    text = text.strip()
    if not text:
        raise ValueError("empty requirement")
    set_match = _SET_REQUIREMENT.fullmatch(text)
    values: tuple[str, ...]
    if text.startswith("!") and not text.startswith("!="):
        key, op, values = text[1:].strip(), "!exists", ()
    elif set_match is not None:
        key, op = set_match.group(1), set_match.group(2)
        inside = set_match.group(3).strip()
        if not inside:
            raise ValueError(f"'{op}' needs at least one value")
        values = tuple(v.strip() for v in inside.split(","))
    elif "!=" in text:
        key, value = text.split("!=", 1)
        key, op, values = key.strip(), "!=", (value.strip(),)
    elif "=" in text:
        key, value = text.split("=", 1)
        value = value[1:] if value.startswith("=") else value
        key, op, values = key.strip(), "=", (value.strip(),)
    else:
        key, op, values = text, "exists", ()
    if not is_label_key(key):
        raise ValueError(f"'{_shown(key)}' is not a label key")
    for value in values:
        if not is_label_value(value):
            raise ValueError(f"'{_shown(value)}' is not a label value")
    return LabelRequirement(key, op, values)


def parse_label_selector(text: str) -> tuple[LabelRequirement, ...]:
    """`env=prod,tier in (a,b),!old` -> requirements (ANDed); at most 50."""
    try:
        requirements = tuple(_requirement(r) for r in _split_requirements(text))
    except ValueError as error:
        raise _bad("label_selector", f"label_selector: invalid value '{_shown(text)}': {error}; "
                                     f"requirements are k=v, k==v, k!=v, k in (a,b), "
                                     f"k notin (a,b), k and !k, separated by commas") from None
    if len(requirements) > MAX_LABEL_REQUIREMENTS:
        raise _bad("label_selector", f"label_selector: at most {MAX_LABEL_REQUIREMENTS} "
                                     f"requirements, not {len(requirements)}")
    return requirements


def _is_time_parameter(name: str, spec: ListSpec) -> bool:
    """`created_ats` or `created_ats[op]` (any op: a bad one is a bad value, not unknown)."""
    match = _TIME_PARAM.fullmatch(name)
    field = match.group(1) if match else name[:-1] if name.endswith("s") else ""
    return field in spec.timestamp_fields


def _known(name: str, spec: ListSpec) -> bool:
    return name in spec.parameters() or _is_time_parameter(name, spec)


def parse(params: Iterable[tuple[str, str]], spec: ListSpec) -> ListQuery:
    """Read a list request's query pairs (decoded strings) under `spec`'s rules.
    Raises BadQueryParameter: unknown parameters (all named, with the valid ones), a
    parameter given twice, or an invalid value (naming the parameter)."""
    pairs = list(params)
    unknown = [name for name, _ in pairs if not _known(name, spec)]
    if unknown:
        names = _quoted(dict.fromkeys(map(_shown, unknown)))
        raise _bad(unknown[0], f"Unknown query parameter(s): {names}. "
                               f"Valid parameters are: {_quoted(spec.parameters())}")
    given: dict[str, str] = {}
    for name, value in pairs:
        if name in given:
            raise _bad(name, f"{name} is given more than once")
        given[name] = value
    page = _integer("page", given["page"], 1, None) if "page" in given else 1
    per_page = _integer("per_page", given["per_page"], 1, MAX_PER_PAGE) \
        if "per_page" in given else DEFAULT_PER_PAGE
    order_by, descending = _order(given["order_by"], spec) if "order_by" in given \
        else ("id", False)
    times = tuple(_time_condition(name, value) for name, value in given.items()
                  if _is_time_parameter(name, spec))
    labels = parse_label_selector(given["label_selector"]) if "label_selector" in given else ()
    filters = tuple((rule.name, _filter_values(rule, given[rule.name]))
                    for rule in spec.filters if rule.name in given)
    return ListQuery(page=page, per_page=per_page, order_by=order_by, descending=descending,
                     times=times, labels=labels, filters=filters)


# -- pagination -------------------------------------------------------------------------


def total_pages(total_results: int, per_page: int) -> int:
    """At least 1, also for an empty list."""
    return max(1, math.ceil(total_results / per_page))


def _href(base_url: str, path: str, page: int, query: ListQuery,
          kept: list[tuple[str, str]]) -> dict[str, str]:
    pairs = [("page", str(page)), ("per_page", str(query.per_page))]
    if query.order_by != "id" or query.descending:
        pairs.append(("order_by", ("-" if query.descending else "") + query.order_by))
    pairs += kept
    text = urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote, safe=",:()!")
    return {"href": f"{base_url.rstrip('/')}{path}?{text}"}


def pagination(base_url: str, path: str, query: ListQuery,
               raw_params: Iterable[tuple[str, str]], total_results: int) -> dict:
    """The CF pagination object for `query`'s page of a list of `total_results`. Each href
    is `base_url` + `path` with page, per_page, order_by (when not the default; '+' is
    written as no prefix) and then the client's other parameters in the order it sent
    them. `next`/`previous` are null at the ends (previous is page - 1 from any page > 1,
    as CF does, also past the last page)."""
    kept = [(n, v) for n, v in raw_params if n not in ("page", "per_page", "order_by")]
    last = total_pages(total_results, query.per_page)
    return {
        "total_results": total_results,
        "total_pages": last,
        "first": _href(base_url, path, 1, query, kept),
        "last": _href(base_url, path, last, query, kept),
        "next": _href(base_url, path, query.page + 1, query, kept)
        if query.page < last else None,
        "previous": _href(base_url, path, query.page - 1, query, kept)
        if query.page > 1 else None,
    }


# -- the lists of /api/v2 -------------------------------------------------------------------

BUILD_STATES = ("pending", "queued", "running", "success", "failed", "timeout", "cancelled")

BUILDS = ListSpec(
    order_fields=("id", "created_at", "updated_at", "started_at", "ended_at"),
    timestamp_fields=("created_at", "updated_at", "started_at", "ended_at"),
    filters=(Filter("states", choices=BUILD_STATES), Filter("target_ids", integer=True),
             Filter("archs"), Filter("repos"), Filter("tags"), Filter("runners"),
             Filter("since_last_success", choices=("true", "false"))),
    labels=True)

TARGETS = ListSpec(order_fields=("id",), filters=(Filter("repos"), Filter("archs")),
                   labels=True)

# registered build agents (db/agents.py AGENTS_TABLE), their labels selectable
AGENTS = ListSpec(order_fields=("id", "name", "last_seen_at", "registered_at"),
                  timestamp_fields=("last_seen_at", "registered_at"),
                  filters=(Filter("names"), Filter("archs")), labels=True)

# the attempts to deliver a build's notifications (created_at: when the attempt was made)
DELIVERIES = ListSpec(order_fields=("id", "created_at"), timestamp_fields=("created_at",),
                      filters=(Filter("actions", choices=("webhook", "email")),))
