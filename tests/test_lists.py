"""Cloud Foundry v3 list rules (vieter_lite.lists): parameters -> ListQuery, and the
pagination object with links that carry the request's filters."""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime

import pytest

from vieter_lite.errors import BadQueryParameter, Malformed
from vieter_lite.lists import (
    BUILDS,
    MAX_LABEL_REQUIREMENTS,
    TARGETS,
    Filter,
    LabelRequirement,
    ListQuery,
    ListSpec,
    TimeCondition,
    pagination,
    parse,
)

BASE = "http://pi:8000"
PATH = "/api/v2/builds"


def unix(*fields: int) -> int:
    return int(datetime(*fields, tzinfo=UTC).timestamp())


def bad(params, spec: ListSpec = BUILDS) -> BadQueryParameter:
    with pytest.raises(BadQueryParameter) as caught:
        parse(params, spec)
    return caught.value


# -- page, per_page --------------------------------------------------------------------------


def test_no_parameters_give_the_defaults():
    query = parse([], BUILDS)
    assert query == ListQuery(page=1, per_page=50, order_by="id", descending=False)
    assert (query.offset, query.times, query.labels, query.filters) == (0, (), (), ())


@pytest.mark.parametrize("name, value, page, per_page", [
    ("page", "1", 1, 50),
    ("page", "7", 7, 50),
    ("page", "007", 7, 50),
    ("per_page", "1", 1, 1),
    ("per_page", "5000", 1, 5000),
])
def test_page_and_per_page(name, value, page, per_page):
    query = parse([(name, value)], BUILDS)
    assert (query.page, query.per_page) == (page, per_page)
    assert query.offset == (page - 1) * per_page


@pytest.mark.parametrize("name, value", [
    ("page", "0"), ("page", "-1"), ("page", ""), ("page", "1.5"), ("page", " 1"),
    ("page", "+1"), ("page", "1e3"), ("page", "\u0661"), ("page", "9" * 19),
    ("per_page", "0"), ("per_page", "5001"), ("per_page", ""), ("per_page", "fifty"),
    ("per_page", "-5"),
])
def test_bad_page_or_per_page_is_a_bad_query_parameter(name, value):
    error = bad([(name, value)])
    assert error.parameter == name and error.status == 400
    assert isinstance(error, Malformed)
    assert name in error.message and repr(value) in error.message


def test_offset_follows_page_and_per_page():
    assert parse([("page", "3"), ("per_page", "20")], BUILDS).offset == 40


# -- order_by --------------------------------------------------------------------------------


@pytest.mark.parametrize("value, field, descending", [
    ("id", "id", False),
    ("-id", "id", True),
    ("created_at", "created_at", False),
    ("+created_at", "created_at", False),
    (" created_at", "created_at", False),   # '+' decoded from a query string is a space
    ("-created_at", "created_at", True),
    ("updated_at", "updated_at", False),
    ("-started_at", "started_at", True),
    ("ended_at", "ended_at", False),
])
def test_order_by(value, field, descending):
    query = parse([("order_by", value)], BUILDS)
    assert (query.order_by, query.descending) == (field, descending)


@pytest.mark.parametrize("value", ["name", "-name", "--id", "+-id", "", "-", "+",
                                   "created_at,id", "CREATED_AT", "created_at ", "status"])
def test_order_by_outside_the_whitelist(value):
    error = bad([("order_by", value)])
    assert error.parameter == "order_by"
    assert "'id', 'created_at', 'updated_at', 'started_at', 'ended_at'" in error.message


def test_order_by_whitelist_is_per_resource():
    assert bad([("order_by", "created_at")], TARGETS).parameter == "order_by"


# -- timestamps ------------------------------------------------------------------------------

T1, T2 = "2026-11-23T07:00:00Z", "2026-11-23T07:00:01Z"


@pytest.mark.parametrize("name, value, condition", [
    ("created_ats", T1, TimeCondition("created_at", "eq", (unix(2026, 11, 23, 7),))),
    ("created_ats", f"{T1},{T2}",
     TimeCondition("created_at", "eq", (unix(2026, 11, 23, 7), unix(2026, 11, 23, 7, 0, 1)))),
    ("created_ats[lt]", T1, TimeCondition("created_at", "lt", (unix(2026, 11, 23, 7),))),
    ("created_ats[lte]", T1, TimeCondition("created_at", "lte", (unix(2026, 11, 23, 7),))),
    ("updated_ats[gt]", T1, TimeCondition("updated_at", "gt", (unix(2026, 11, 23, 7),))),
    ("started_ats[gte]", T1, TimeCondition("started_at", "gte", (unix(2026, 11, 23, 7),))),
    ("ended_ats", "1970-01-01T00:00:00Z", TimeCondition("ended_at", "eq", (0,))),
    ("ended_ats", "2024-02-29T23:59:59Z",
     TimeCondition("ended_at", "eq", (unix(2024, 2, 29, 23, 59, 59),))),
])
def test_timestamp_filters(name, value, condition):
    assert parse([(name, value)], BUILDS).times == (condition,)


def test_relational_operators_combine_into_a_range_with_equality():
    query = parse([("created_ats[gte]", T1), ("created_ats[lt]", T2), ("created_ats", T1),
                   ("ended_ats[gt]", T1)], BUILDS)
    assert [(c.field, c.op) for c in query.times] == \
        [("created_at", "gte"), ("created_at", "lt"), ("created_at", "eq"), ("ended_at", "gt")]


@pytest.mark.parametrize("value", [
    "2026-11-23T07:00:00",            # no Z
    "2026-11-23T07:00:00z",
    "2026-11-23T07:00:00.5Z",         # fractional seconds
    "2026-11-23T07:00:00.000Z",
    "2026-11-23T07:00:00+00:00",      # offsets
    "2026-11-23T08:00:00+01:00",
    "2026-11-23T07:00:00Z+01:00",
    "2026-11-23",                     # a date alone
    "2026-11-23 07:00:00Z",           # no T
    "2026-11-23t07:00:00Z",
    "2026-02-30T00:00:00Z",           # not a date
    "2025-02-29T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-00-10T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "2026-11-23T24:00:00Z",
    "2026-11-23T23:60:00Z",
    "2026-12-31T23:59:60Z",           # leap second
    "2026-1-23T07:00:00Z",
    "20261123T070000Z",
    "1764000000",                     # unix seconds
    "\u0662026-11-23T07:00:00Z",      # a non-ASCII digit
    "",
    f"{T1},",                         # an empty member of the equality set
    f"{T1} ,{T2}",
])
@pytest.mark.parametrize("name", ["created_ats", "created_ats[gt]"])
def test_bad_timestamps(name, value):
    error = bad([(name, value)])
    assert error.parameter == name and name in error.message


def test_a_relational_operator_takes_one_timestamp():
    error = bad([("created_ats[lt]", f"{T1},{T2}")])
    assert error.parameter == "created_ats[lt]" and "one timestamp" in error.message


@pytest.mark.parametrize("name", ["created_ats[eq]", "created_ats[ne]", "created_ats[]",
                                  "created_ats[LT]", "updated_ats[in]"])
def test_unknown_timestamp_operator(name):
    error = bad([(name, T1)])
    assert error.parameter == name and "'lt', 'lte', 'gt', 'gte'" in error.message


# -- label_selector --------------------------------------------------------------------------


@pytest.mark.parametrize("selector, requirement", [
    ("env=prod", LabelRequirement("env", "=", ("prod",))),
    ("env==prod", LabelRequirement("env", "=", ("prod",))),
    ("env!=prod", LabelRequirement("env", "!=", ("prod",))),
    ("env in (prod,dev)", LabelRequirement("env", "in", ("prod", "dev"))),
    ("env notin (prod,dev)", LabelRequirement("env", "notin", ("prod", "dev"))),
    ("env", LabelRequirement("env", "exists")),
    ("!env", LabelRequirement("env", "!exists")),
    ("env=", LabelRequirement("env", "=", ("",))),
    (" env in ( a , b.c_d-e ) ", LabelRequirement("env", "in", ("a", "b.c_d-e"))),
    ("env in(a)", LabelRequirement("env", "in", ("a",))),
    ("example.com/env=Prod-1", LabelRequirement("example.com/env", "=", ("Prod-1",))),
    ("a.b-c.d/x_y.z", LabelRequirement("a.b-c.d/x_y.z", "exists")),
    ("! env", LabelRequirement("env", "!exists")),
    ("k" * 63 + "=" + "v" * 63, LabelRequirement("k" * 63, "=", ("v" * 63,))),
])
def test_label_requirement(selector, requirement):
    assert parse([("label_selector", selector)], BUILDS).labels == (requirement,)


def test_label_requirements_are_split_on_commas_outside_parentheses():
    labels = parse([("label_selector", "a=b,c in (d,e),!f,g notin (h),i")], BUILDS).labels
    assert labels == (LabelRequirement("a", "=", ("b",)), LabelRequirement("c", "in", ("d", "e")),
                      LabelRequirement("f", "!exists"), LabelRequirement("g", "notin", ("h",)),
                      LabelRequirement("i", "exists"))


def test_at_most_50_label_requirements():
    fifty = ",".join(f"k{i}=v" for i in range(MAX_LABEL_REQUIREMENTS))
    assert len(parse([("label_selector", fifty)], BUILDS).labels) == 50
    error = bad([("label_selector", fifty + ",k50=v")])
    assert error.parameter == "label_selector" and "at most 50" in error.message


@pytest.mark.parametrize("selector", [
    "", ",", "a=b,", ",a=b", "a=b,,c=d",
    "env in ()", "env in ( )", "env in (a", "env in a,b)", "env in ((a))", "env in (a)(b)",
    "env in (a) x", "env inn (a)", "env in (a,b", "(env)", "env)",
    "-env", "_env", "env-", "env=-prod", "env=prod-", "env=pro d", "env=prod=x", "env===prod",
    "!env=prod", "!=prod", "=prod", "!", "env!", "env in (-a)",
    "k" * 64, "env=" + "v" * 64,
    "Example.com/env", "/env", "a/b/c", "-a.com/env", "a..com/env", ("a" * 254) + "/env",
    "env=pr\u00f6d", "\u00e9nv", "env=prod;x", "env=prod&x",
])
def test_bad_label_selector(selector):
    error = bad([("label_selector", selector)])
    assert error.parameter == "label_selector" and "label_selector" in error.message


def test_label_selector_only_where_the_resource_has_labels():
    assert "label_selector" in bad([("label_selector", "a")], ListSpec()).message


# -- resource filters ------------------------------------------------------------------------


def test_resource_filters_are_comma_lists_in_spec_order():
    query = parse([("runners", "pi4"), ("states", "failed,timeout"), ("target_ids", "3,007"),
                   ("archs", "x86_64,aarch64"), ("repos", "bur"), ("tags", "nightly")], BUILDS)
    assert query.filters == (("states", ("failed", "timeout")), ("target_ids", ("3", "7")),
                             ("archs", ("x86_64", "aarch64")), ("repos", ("bur",)),
                             ("tags", ("nightly",)), ("runners", ("pi4",)))
    assert query.values("states") == ("failed", "timeout") and query.values("names") is None


@pytest.mark.parametrize("state", ["pending", "queued", "running", "success", "failed",
                                   "timeout", "cancelled"])
def test_every_v2_state_is_a_filter_value(state):
    assert parse([("states", state)], BUILDS).values("states") == (state,)


@pytest.mark.parametrize("name, value", [
    ("states", "bogus"), ("states", "failed,bogus"), ("states", "FAILED"), ("states", ""),
    ("states", "failed,"), ("target_ids", "x"), ("target_ids", "3,x"), ("target_ids", "-1"),
    ("target_ids", ""), ("archs", "a,,b"), ("repos", ""),
])
def test_bad_resource_filter_values(name, value):
    error = bad([(name, value)])
    assert error.parameter == name and name in error.message


# -- unknown and repeated parameters ---------------------------------------------------------


def test_unknown_parameter_lists_the_valid_ones():
    assert bad([("x", "1")]).message == (
        "Unknown query parameter(s): 'x'. Valid parameters are: 'page', 'per_page', "
        "'order_by', 'created_ats', 'updated_ats', 'started_ats', 'ended_ats', "
        "'label_selector', 'states', 'target_ids', 'archs', 'repos', 'tags', 'runners', "
        "'since_last_success'")


def test_error_messages_shorten_long_values():
    error = bad([("page", "x" * 10_000)])
    assert len(error.message) < 200 and "x" * 77 + "..." in error.message
    assert len(bad([("y" * 5000, "1")]).message) < 400


def test_every_unknown_parameter_is_named_once():
    error = bad([("page", "1"), ("limit", "5"), ("offset", "2"), ("limit", "6")])
    assert error.message.startswith("Unknown query parameter(s): 'limit', 'offset'. ")


@pytest.mark.parametrize("name", ["created_ats", "created_ats[gt]", "label_selector", "states",
                                  "page_size", "order", "Page", "created_at", "ids"])
def test_parameters_outside_the_spec_are_unknown(name):
    spec = ListSpec(order_fields=("id",), filters=(Filter("names"),))
    error = bad([(name, "x")], spec)
    assert error.message == (f"Unknown query parameter(s): '{name}'. Valid parameters are: "
                             "'page', 'per_page', 'order_by', 'names'")


def test_targets_take_their_own_parameters():
    query = parse([("repos", "bur"), ("archs", "x86_64"), ("label_selector", "env")], TARGETS)
    assert query.values("repos") == ("bur",)
    assert query.labels == (LabelRequirement("env", "exists"),)
    assert bad([("created_ats", T1)], TARGETS).message.endswith(
        "Valid parameters are: 'page', 'per_page', 'order_by', 'label_selector', 'repos', 'archs'")


def test_extra_parameters_are_accepted_and_listed():
    spec = ListSpec(extra=("include",))
    assert parse([("include", "target")], spec) == ListQuery()
    assert bad([("x", "")], spec).message.endswith("'order_by', 'include'")


@pytest.mark.parametrize("pairs", [
    [("page", "1"), ("page", "2")],
    [("page", "1"), ("page", "1")],
    [("per_page", "5"), ("per_page", "5")],
    [("order_by", "id"), ("order_by", "-id")],
    [("states", "failed"), ("states", "queued")],
    [("created_ats[gt]", T1), ("created_ats[gt]", T2)],
    [("created_ats", T1), ("created_ats", T2)],
    [("label_selector", "a"), ("label_selector", "b")],
])
def test_a_repeated_parameter_is_bad(pairs):
    error = bad(pairs)
    assert error.parameter == pairs[0][0] and "more than once" in error.message


# -- pagination ------------------------------------------------------------------------------


def hrefs(links: dict) -> dict:
    return {k: (None if v is None else v["href"]) for k, v in links.items()
            if k in ("first", "last", "next", "previous")}


def page_of(href: str | None) -> int | None:
    if href is None:
        return None
    return int(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(href).query))["page"])


@pytest.mark.parametrize("page, total, pages, first, last, next_, previous", [
    (1, 120, 3, 1, 3, 2, None),        # first
    (2, 120, 3, 1, 3, 3, 1),           # middle
    (3, 120, 3, 1, 3, None, 2),        # last
    (1, 0, 1, 1, 1, None, None),       # empty: still one page
    (1, 50, 1, 1, 1, None, None),      # exactly one page
    (1, 100, 2, 1, 2, 2, None),
    (2, 101, 3, 1, 3, 3, 1),
    (5, 120, 3, 1, 3, None, 4),        # past the end: previous is page - 1, as CF
])
def test_pagination_pages(page, total, pages, first, last, next_, previous):
    query = parse([("page", str(page))], BUILDS)
    links = pagination(BASE, PATH, query, [("page", str(page))], total)
    assert (links["total_results"], links["total_pages"]) == (total, pages)
    got = {k: page_of(v) for k, v in hrefs(links).items()}
    assert got == {"first": first, "last": last, "next": next_, "previous": previous}


def test_default_hrefs_are_page_and_per_page_only():
    links = pagination(BASE + "/", PATH, parse([], BUILDS), [], 120)
    assert links["first"] == {"href": "http://pi:8000/api/v2/builds?page=1&per_page=50"}
    assert links["next"] == {"href": "http://pi:8000/api/v2/builds?page=2&per_page=50"}
    assert links["previous"] is None


CLIENT = [("states", "failed,timeout"), ("label_selector", "env=prod,tier in (a,b),!old"),
          ("page", "2"), ("created_ats[gte]", T1), ("order_by", "+created_at"),
          ("per_page", "10"), ("target_ids", "3")]


def test_every_href_carries_the_filters_per_page_and_order_in_a_stable_order():
    query = parse(CLIENT, BUILDS)
    links = pagination(BASE, PATH, query, CLIENT, 95)
    assert links["total_pages"] == 10
    for name, href in hrefs(links).items():
        assert href is not None, name
        split = urllib.parse.urlsplit(href)
        assert (split.scheme, split.netloc, split.path) == ("http", "pi:8000", PATH)
        pairs = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
        assert [n for n, _ in pairs] == ["page", "per_page", "order_by", "states",
                                         "label_selector", "created_ats[gte]", "target_ids"]
        assert pairs[1:] == [("per_page", "10"), ("order_by", "created_at")] + \
            [p for p in CLIENT if p[0] not in ("page", "per_page", "order_by")]
        assert " " not in href and "+" not in href


def test_each_href_parses_back_to_the_same_query_on_its_page():
    query = parse(CLIENT, BUILDS)
    for name, href in hrefs(pagination(BASE, PATH, query, CLIENT, 95)).items():
        assert href is not None
        again = parse(urllib.parse.parse_qsl(urllib.parse.urlsplit(href).query,
                                             keep_blank_values=True), BUILDS)
        assert again == ListQuery(**{**query.__dict__, "page": page_of(href)}), name


def test_descending_order_is_kept_in_the_hrefs():
    pairs = [("order_by", "-ended_at")]
    links = pagination(BASE, PATH, parse(pairs, BUILDS), pairs, 1)
    assert links["first"]["href"].endswith("?page=1&per_page=50&order_by=-ended_at")
