"""Fuzzing the text formats besides packages: .SRCINFO, the cron dialect, the list query
parameters (Cloud Foundry's) and build manifests. Each either reads its input or raises
what it documents (SrcinfoError, CronError, BadQueryParameter, Invalid), and each round trip
it has holds: .SRCINFO sections -> text -> the same sections; a schedule -> its value
lists -> the same schedule, whose next run matches with no match before it; a list query
-> its pagination links -> the same query; a build -> its manifest -> the same build."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import replace
from datetime import datetime, timedelta

from hypothesis import example
from hypothesis import strategies as st

from fuzzing import fuzz
from vieter_lite import cron, lists
from vieter_lite import manifest as mf
from vieter_lite.errors import BadQueryParameter, Invalid
from vieter_lite.models import Build
from vieter_lite.repo import srcinfo

# -- .SRCINFO ---------------------------------------------------------------------------

SRCINFO_KEY = st.one_of(st.sampled_from(["pkgdesc", "pkgver", "pkgrel", "epoch", "arch",
                                         "depends", "makedepends", "checkdepends",
                                         "provides", "depends_x86_64", "source", "sha256sums"]),
                        st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True))
# a value as makepkg writes it: one line (makepkg's lines end at '\n' only), no whitespace
# at either end
SRCINFO_VALUE = st.one_of(
    st.just(""),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\n\r"),
            max_size=15).filter(lambda v: v == v.strip(" \t\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0")
                                and v.strip() == v),
    st.sampled_from(["glibc>=2.38", "foo=1", "a = b", "x\u2028pkgname = evil", "y\x0cz"]))
SECTION = st.tuples(st.from_regex(r"[a-z0-9][a-z0-9@._+-]{0,15}", fullmatch=True),
                    st.lists(st.tuples(SRCINFO_KEY, SRCINFO_VALUE), max_size=6))


def render_srcinfo(base: tuple, packages: list[tuple]) -> str:
    """A .SRCINFO as `makepkg --printsrcinfo` lays it out."""
    out = []
    for kind, (name, values) in [("pkgbase", base)] + [("pkgname", p) for p in packages]:
        out.append(f"{kind} = {name}\n")
        out += [f"\t{key} = {value}\n" for key, value in values]
        out.append("\n")
    return "".join(out)


@fuzz(base=SECTION, packages=st.lists(SECTION, min_size=1, max_size=3))
@example(base=("a", [("pkgdesc", "x\u2028pkgname = evil")]), packages=[("a", [])])
def test_srcinfo_sections_survive_a_round_trip(base, packages):
    got = srcinfo.parse(render_srcinfo(base, packages))
    assert got.base == srcinfo.Section(base[0], tuple(base[1]))
    assert got.packages == tuple(srcinfo.Section(n, tuple(v)) for n, v in packages)
    for arch in ("x86_64", "aarch64"):
        got.for_arch(arch)


SRCINFO_ALPHABET = st.sampled_from(list("= \t\n\r_-") + ["pkgbase", "pkgname", "depends",
                                                        " = ", "\u2028", "\x85", "\x0c",
                                                        "foo", ">=", "1.0"])


@fuzz(text=st.one_of(st.lists(SRCINFO_ALPHABET, max_size=40).map("".join), st.text()))
def test_any_srcinfo_text_is_a_srcinfo_or_an_error(text):
    try:
        got = srcinfo.parse(text)
    except srcinfo.SrcinfoError:
        return
    assert got.pkgbase and got.packages
    got.for_arch("x86_64")


@fuzz(text=st.text(max_size=20), version=st.text(max_size=10))
def test_a_dependency_reads_back_to_its_text(text, version):
    dep = srcinfo.parse_dep(text)
    assert str(dep) == text and dep.op in ("", *srcinfo.OPERATORS)
    srcinfo.meets(dep, dep.name, version, ())

# -- cron -------------------------------------------------------------------------------


def _term(lo: int, hi: int) -> st.SearchStrategy[str]:
    value = st.integers(lo, hi)
    return st.one_of(
        st.just("*"), value.map(str),
        st.tuples(value, value).map(lambda ab: f"{min(ab)}-{max(ab)}"),
        st.tuples(st.sampled_from(["*", str(lo)]), st.integers(1, hi - lo)).map(
            lambda t: f"{t[0]}/{t[1]}"),
        st.tuples(value, value, st.integers(1, hi - lo)).map(
            lambda t: f"{min(t[:2])}-{max(t[:2])}/{t[2]}"))


FIELD_TEXTS = [st.lists(_term(lo, hi), min_size=1, max_size=3).map(",".join)
               for _, lo, hi in cron.FIELDS]
EXPRESSION = st.tuples(*FIELD_TEXTS, st.integers(2, 4), st.sampled_from([" ", "  ", "\t"])).map(
    lambda t: t[5].join(t[:t[4]]))
MOMENT = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1))


def _matches(schedule: cron.Schedule, dt: datetime) -> bool:
    return (dt.minute in schedule.minutes and dt.hour in schedule.hours
            and dt.day in schedule.days and dt.month in schedule.months)


@fuzz(expression=EXPRESSION, after=MOMENT)
@example(expression="0 0 29 2", after=datetime(2096, 3, 1))  # 8 years to the next 29 February
def test_a_schedule_reads_back_from_its_values_and_runs_when_it_matches(expression, after):
    try:
        schedule = cron.parse(expression)
    except cron.CronError as exc:  # e.g. day 31 in a month of 30 days only
        assert "never occurs" in str(exc)
        return
    listed = " ".join(",".join(map(str, sorted(values))) for values in (
        schedule.minutes, schedule.hours, schedule.days, schedule.months))
    assert cron.parse(listed) == schedule
    upcoming = cron.next_after(schedule, after)
    assert upcoming > after and _matches(schedule, upcoming) and upcoming.second == 0
    start = after.replace(second=0, microsecond=0)
    if upcoming - start <= timedelta(days=2):  # no matching minute is skipped
        minute = start + timedelta(minutes=1)
        while minute < upcoming:
            assert not _matches(schedule, minute), (expression, after, minute)
            minute += timedelta(minutes=1)


CRON_ALPHABET = st.sampled_from(list("*/-,0123456789 \t\n") + ["60", "24", "32", "13", "00",
                                                                 "٣", "\u00a0", "-1", "99" * 9])


@fuzz(text=st.one_of(st.lists(CRON_ALPHABET, max_size=20).map("".join), st.text(max_size=20)))
def test_any_cron_text_is_a_schedule_or_a_cron_error(text):
    try:
        schedule = cron.parse(text)
    except cron.CronError as exc:
        assert str(exc)
        return
    assert _matches(schedule, cron.next_after(schedule, datetime(2024, 1, 1)))

# -- list queries -------------------------------------------------------------------------


SPECS = {"builds": lists.BUILDS, "targets": lists.TARGETS, "agents": lists.AGENTS,
         "deliveries": lists.DELIVERIES}
TIMESTAMP = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1)).map(
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"))
LABEL_KEY = st.from_regex(r"([a-z0-9]{1,5}\.[a-z]{2,3}/)?[A-Za-z0-9]([A-Za-z0-9_.-]{0,8}"
                          r"[A-Za-z0-9])?", fullmatch=True)
NAME_VALUE = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,8}[A-Za-z0-9])?", fullmatch=True)
LABEL_VALUE = st.one_of(st.just(""), NAME_VALUE)
REQUIREMENT = st.one_of(
    st.tuples(LABEL_KEY, st.sampled_from(["=", "==", "!=", " = ", " != "]), LABEL_VALUE).map(
        "".join),
    st.tuples(LABEL_KEY, st.sampled_from([" in ", " notin ", " in"]),
              st.lists(NAME_VALUE, min_size=1, max_size=3)).map(
        lambda t: f"{t[0]}{t[1]}({','.join(t[2])})"),
    LABEL_KEY, LABEL_KEY.map(lambda k: "!" + k))
WORDS = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters=","),
                min_size=1, max_size=8)


def _valid_pairs(spec: lists.ListSpec) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Query pairs this spec accepts, in any order."""
    options: dict[str, st.SearchStrategy[str]] = {
        "page": st.integers(1, 10**6).map(str), "per_page": st.integers(1, 5000).map(str),
        "order_by": st.tuples(st.sampled_from(["", "-", "+", " "]),
                              st.sampled_from(spec.order_fields)).map("".join)}
    for field in spec.timestamp_fields:
        options[field + "s"] = st.lists(TIMESTAMP, min_size=1, max_size=3).map(",".join)
        for op in lists.TIME_OPS:
            options[f"{field}s[{op}]"] = TIMESTAMP
    if spec.labels:
        options["label_selector"] = st.lists(REQUIREMENT, min_size=1, max_size=4).map(",".join)
    for rule in spec.filters:
        item = st.sampled_from(rule.choices) if rule.choices else \
            st.integers(0, 10**9).map(str) if rule.integer else WORDS
        options[rule.name] = st.lists(item, min_size=1, max_size=3).map(",".join)
    return st.fixed_dictionaries({}, optional=options).flatmap(
        lambda d: st.permutations(list(d.items())))


@st.composite
def _spec_and_pairs(draw: st.DrawFn) -> tuple[lists.ListSpec, list[tuple[str, str]]]:
    spec = SPECS[draw(st.sampled_from(sorted(SPECS)))]
    return spec, draw(_valid_pairs(spec))


@fuzz(case=_spec_and_pairs(), total=st.integers(0, 10**7))
def test_a_list_query_reads_back_from_its_pagination_links(case, total):
    spec, pairs = case
    query = lists.parse(pairs, spec)
    links = lists.pagination("http://h:8000", "/api/v2/x", query, pairs, total)
    for name, page in (("first", 1), ("last", links["total_pages"]),
                       ("next", query.page + 1), ("previous", query.page - 1)):
        if links[name] is None:
            continue
        href = urllib.parse.urlsplit(links[name]["href"])
        back = urllib.parse.parse_qsl(href.query, keep_blank_values=True)
        assert lists.parse(back, spec) == replace(query, page=page), (name, links[name])


QUERY_NAME = st.one_of(st.sampled_from(["page", "per_page", "order_by", "label_selector",
                                        "states", "target_ids", "created_ats",
                                        "created_ats[gt]", "created_ats[]", "created_ats[eq]",
                                        "names", "repos", "xs"]), st.text(max_size=8))
QUERY_VALUE = st.one_of(st.sampled_from(["1", "0", "-1", "5001", "id", "-id", "+id", ",",
                                         "a,,b", "2024-02-30T00:00:00Z", "x in (a", "!", "=",
                                         "a in ()", "queued", "1e3", "٣"]),
                        st.text(max_size=12))


@fuzz(spec=st.sampled_from(sorted(SPECS)),
      pairs=st.lists(st.tuples(QUERY_NAME, QUERY_VALUE), max_size=4))
def test_any_list_query_is_a_query_or_a_bad_query_parameter(spec, pairs):
    try:
        query = lists.parse(pairs, SPECS[spec])
    except BadQueryParameter as exc:
        assert isinstance(exc.parameter, str) and exc.message and exc.status == 400
        return
    lists.pagination("http://h", "/x", query, pairs, 100)

# -- manifests ------------------------------------------------------------------------------


ENV_NAME = st.from_regex(r"[A-UW-Z_][A-Z0-9_]{0,10}", fullmatch=True).filter(
    lambda n: n not in mf.RESERVED_ENV and not n.startswith(mf.RESERVED_ENV_PREFIXES))
ENV_VALUE = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"],
                                  exclude_characters="\0"), max_size=20)


@fuzz(repo=st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._+@-]{0,20}", fullmatch=True).filter(
          lambda r: r.lower() != "api"),
      arch=st.from_regex(r"[A-Za-z0-9_]{1,10}", fullmatch=True).filter(lambda a: a != "any"),
      kind=st.sampled_from(["git", "url"]),
      url=st.from_regex(r"https://[a-z]{1,8}\.org/[A-Za-z0-9._~/#?=&:@'\"-]{0,20}",
                        fullmatch=True),
      branch=st.from_regex(r"([a-z][a-z0-9_]{0,8}(/[a-z][a-z0-9_]{0,8})?)?", fullmatch=True),
      force=st.booleans(), timeout=st.integers(-5, mf.MAX_TIMEOUT + 5),
      environment=st.dictionaries(ENV_NAME, ENV_VALUE, max_size=4),
      labels=st.dictionaries(st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True),
                             st.from_regex(r"[a-z0-9]{0,6}", fullmatch=True), max_size=3),
      review=st.sampled_from(["never", "changes", "always", "", "odd"]))
@example(repo="r", arch="a", kind="git", url="https://a.org/", branch="", force=False,
         timeout=0, environment={"A": "\x85"}, labels={}, review="never")  # came back " "
def test_a_build_reads_back_from_its_manifest(repo, arch, kind, url, branch, force, timeout,
                                              environment, labels, review):
    build = Build(id=1, target_id=1, arch=arch, status="queued", force=force, created_at=0,
                  repo=repo, kind=kind, url=url, branch=branch if kind == "git" else "",
                  timeout=timeout, environment=json.dumps(environment), review=review,
                  agent_labels=json.dumps(labels))
    got = mf.parse_manifest(mf.manifest_of(build), "other")
    assert (got.repo, got.arch, got.source.kind, got.source.url, got.source.branch) == \
        (repo, arch, kind, url, build.branch)
    assert (got.force, got.environment, got.agent_labels) == (force, environment, labels)
    assert got.timeout == (timeout if 1 <= timeout <= mf.MAX_TIMEOUT else None)
    assert got.review == (review if review in ("never", "changes", "always") else "changes")


VALID_MANIFEST = ("repo: bur\narch: x86_64\nsource:\n  git: https://e.org/x.git\n  branch: main\n"
                  "timeout: 60\nenvironment:\n  CFLAGS: -O2\nagent_labels:\n  gpu: 'yes'\n")


@fuzz(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 3),
                               st.text(max_size=4)), min_size=1, max_size=4))
def test_an_edited_manifest_is_a_manifest_or_invalid(edits):
    text = VALID_MANIFEST
    for where, cut, insert in edits:
        at = int(where * len(text))
        text = text[:at] + insert + text[at + cut:]
    try:
        got = mf.parse_manifest(text, "x86_64")
    except Invalid as exc:
        assert exc.field.startswith("manifest") and exc.code and exc.status == 400
        return
    assert got.text == text
