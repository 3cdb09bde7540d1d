"""Build manifests and job submissions as builds.sr.ht takes them: the YAML manifest (repo,
arch, source, image, force, timeout, environment, review) and the JSON body of a submission
(manifest or target_id, note, tags, access lists, triggers, labels, execute). Pure: no I/O;
every rule broken is an Invalid naming its field (`manifest.source.git`, `tags[2]`)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from vieter_lite import agents, names, targets, tokens
from vieter_lite.errors import Invalid
from vieter_lite.models import REVIEW_RULES, Build

MAX_TEXT = 320 * 1024          # characters of a manifest (an inline PKGBUILD and the rest)
MAX_PKGBUILD = 256 * 1024      # bytes of an inline PKGBUILD (UTF-8)
MAX_NODES = 2000               # YAML nodes of a manifest, an alias counted each time it is used
MAX_DEPTH = 8                  # nesting of a manifest's mappings and lists
MAX_FLOW = 2 * MAX_DEPTH       # nesting of '[' and '{' the scanner reads on
MAX_TIMEOUT = 86400            # seconds
MAX_ENVIRONMENT = 64           # variables
MAX_ENV_NAME = 128
MAX_ENV_VALUE = 4096
MAX_ENV_TOTAL = 32 * 1024      # characters of all names and values together
MAX_NOTE = 4096
MAX_TAGS = 10
MAX_TAG = 64
MAX_ACCESS = tokens.MAX_ITEMS
MAX_BRANCH = 255
MAX_PATH = 1024
MAX_IMAGE = 255
MAX_TARGET_ID = 2**63 - 1
SOURCE_KINDS = ("git", "url", "pkgbuild")
GIT_SCHEMES = ("https", "http", "git", "ssh")

MANIFEST_KEYS = ("repo", "arch", "source", "image", "force", "timeout", "environment",
                 "review", "agent_labels")
SOURCE_KEYS = ("git", "branch", "path", "url", "pkgbuild")
BODY_KEYS = ("manifest", "target_id", "arch", "force", "note", "tags", "access:read",
             "access:write", "triggers", "execute", "metadata")
METADATA_KEYS = ("labels",)

_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*", re.ASCII)
# names the shell or the dynamic loader act on, and the build's own variables: a build's
# environment may not set them
RESERVED_ENV = frozenset({"BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "IFS", "PS4",
                          "PROMPT_COMMAND", "CDPATH", "GLOBIGNORE", "PATH", "HOME", "PKGDEST"})
RESERVED_ENV_PREFIXES = ("VL_", "LD_")
_TAG = re.compile(r"[a-z0-9_.:-]+", re.ASCII)
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]*", re.ASCII)
_BRANCH_BAD = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|^[-/.]|[/.]$|\.lock$|//")


@dataclass(frozen=True)
class Source:
    """Where the PKGBUILD comes from: a git repository (branch, path inside it), a URL of
    the PKGBUILD, or the PKGBUILD's text itself."""

    kind: str   # 'git' | 'url' | 'pkgbuild'
    url: str = ""
    branch: str = ""
    path: str = ""
    pkgbuild: str = ""


@dataclass(frozen=True)
class Manifest:
    """A checked manifest. `image` '' and `timeout` None: the server's defaults. `text` is
    the manifest as submitted."""

    repo: str
    arch: str
    source: Source
    image: str
    force: bool
    timeout: int | None
    environment: dict[str, str]
    review: str
    text: str
    agent_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Submission:
    """A checked `POST /api/v2/builds` body: a manifest, or a target to build once (its
    archs when `arch` is None)."""

    manifest: Manifest | None
    target_id: int | None
    arch: str | None
    force: bool
    note: str
    tags: tuple[str, ...]
    labels: dict[str, str]
    access_read: tuple[str, ...]
    access_write: tuple[str, ...]
    triggers: list[dict[str, Any]]
    execute: bool


# -- reading YAML safely -------------------------------------------------------------------

def _shown(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _check_graph(root: yaml.Node, field: str) -> None:
    """Before anything is built from the document: at most MAX_NODES nodes, an alias counted
    every time it is used (so a few lines of nested aliases or merge keys cannot expand to
    millions), at most MAX_DEPTH levels (a cycle counts on until a bound stops it), and no
    key twice in one mapping."""
    seen = 0
    stack: list[tuple[yaml.Node, int, str]] = [(root, 0, field)]
    while stack:
        node, depth, path = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise Invalid(field, "too_large", f"more than {MAX_NODES} YAML nodes "
                          "(aliases counted each time they are used)")
        if depth > MAX_DEPTH:
            raise Invalid(field, "too_deep", f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1, f"{path}[{i}]") for i, child in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key, value in node.value:
                where = path
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    where = f"{path}.{key.value[:64]}"
                    if key.value in keys:
                        raise Invalid(where, "duplicate", "key given twice")
                    keys.add(key.value)
                stack.append((key, depth + 1, path))
                stack.append((value, depth + 1, where))


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, stopping at once at a flow collection ('[', '{') nested deeper
    than MAX_FLOW (without the bound, a text of brackets costs the scanner about a second
    before the parser runs out of stack)."""

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        if self.flow_level >= MAX_FLOW:
            raise yaml.scanner.ScannerError(None, None, f"flow collections nested deeper "
                                            f"than {MAX_FLOW} levels", self.get_mark())
        super().fetch_flow_collection_start(TokenClass)


def load_yaml(text: str, field: str = "manifest") -> Any:
    """`text` as YAML (JSON is YAML too) with PyYAML's safe loader, or Invalid("manifest")
    for anything hostile or broken: too long, not one document, too many nodes, too deep,
    a tag the safe loader refuses, a value Python cannot hold."""
    if not isinstance(text, str):
        raise Invalid(field, "invalid", "the manifest is YAML text (a string)")
    if len(text) > MAX_TEXT:
        raise Invalid(field, "too_large", f"longer than {MAX_TEXT} characters")
    loader = None
    try:
        loader = _Loader(text)  # refuses NULs, surrogates, ... at once
        node = loader.get_single_node()
        if node is None:
            raise Invalid(field, "missing", "the manifest is empty")
        _check_graph(node, field)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise Invalid(field, "yaml", f"not valid YAML: {str(exc)[:500]}") from None
    except RecursionError:
        raise Invalid(field, "too_deep", "nested too deeply") from None
    except (ValueError, OverflowError) as exc:  # int('9' * 5000), a 13th month, ...
        raise Invalid(field, "yaml", f"a value cannot be read: {str(exc)[:200]}") from None
    finally:
        if loader is not None:
            loader.dispose()


# -- field rules -----------------------------------------------------------------------------

def _mapping(field: str, value: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    """A mapping with string keys out of `allowed` (field '': the body itself)."""
    if not isinstance(value, dict):
        raise Invalid(field or "body", "invalid", "a mapping")
    for key in value:
        if not isinstance(key, str) or key not in allowed:
            where = (f"{field}.{key[:64]}" if field else key[:64]) if isinstance(key, str) \
                else field or "body"
            raise Invalid(where, "unknown", f"unknown key {_shown(key)}; valid keys are "
                          + ", ".join(allowed))
    return value


def _string(field: str, value: Any, limit: int, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise Invalid(field, "invalid", "a string")
    if not value and not empty:
        raise Invalid(field, "missing", "must not be empty")
    if len(value) > limit:
        raise Invalid(field, "too_long", f"longer than {limit} characters")
    return value


def _flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(field, "invalid", "true or false")
    return value


def _integer(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(field, "invalid", "an integer")
    if not low <= value <= high:
        raise Invalid(field, "out_of_range", f"between {low} and {high}")
    return value


def _named(field: str, value: Any, check: Any) -> str:
    """A repo or arch name through names.check_*."""
    if not isinstance(value, str):
        raise Invalid(field, "invalid", "a string")
    try:
        return str(check(value))
    except ValueError as exc:
        raise Invalid(field, "invalid", str(exc)) from None


def _arch(field: str, value: Any) -> str:
    _named(field, value, names.check_arch)
    try:
        return targets.check_archs((value,))[0]
    except Invalid as exc:
        raise Invalid(field, exc.code, exc.message) from None


def _branch(field: str, value: Any) -> str:
    branch = _string(field, value, MAX_BRANCH)
    if _BRANCH_BAD.search(branch):
        raise Invalid(field, "invalid", "not a git branch or tag name")
    return branch


def _path(field: str, value: Any) -> str:
    path = _string(field, value, MAX_PATH)
    if path.startswith("/") or any(ch < " " or ch in "\x7f\\" for ch in path) \
            or ".." in path.split("/"):
        raise Invalid(field, "invalid", "a relative path inside the repository (no '..')")
    return path


def _image(field: str, value: Any) -> str:
    image = _string(field, value, MAX_IMAGE)
    if not _IMAGE.fullmatch(image):
        raise Invalid(field, "invalid", "not an image reference")
    return image


def _environment(field: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise Invalid(field, "invalid", "a mapping of names to strings")
    if len(value) > MAX_ENVIRONMENT:
        raise Invalid(field, "too_many", f"at most {MAX_ENVIRONMENT} variables")
    total = 0
    for name, text in value.items():
        if not isinstance(name, str) or len(name) > MAX_ENV_NAME or not _ENV_NAME.fullmatch(name):
            raise Invalid(field, "invalid", f"invalid variable name {_shown(name)} "
                          "(capitals, digits and '_', not starting with a digit)")
        if name.startswith(RESERVED_ENV_PREFIXES) or name in RESERVED_ENV:
            raise Invalid(f"{field}.{name}", "reserved", f"{name} may not be set by a build")
        where = f"{field}.{name}"
        _string(where, text, MAX_ENV_VALUE, empty=True)
        if "\0" in text:
            raise Invalid(where, "invalid", "no NUL characters")
        total += len(name) + len(text)
    if total > MAX_ENV_TOTAL:
        raise Invalid(field, "too_large", f"more than {MAX_ENV_TOTAL} characters in all")
    return dict(value)


def _source(field: str, value: Any) -> Source:
    source = _mapping(field, value, SOURCE_KEYS)
    kinds = [k for k in ("git", "url", "pkgbuild") if k in source]
    if len(kinds) != 1:
        raise Invalid(field, "invalid" if kinds else "missing",
                      "exactly one of git, url, pkgbuild")
    kind = kinds[0]
    for extra in ("branch", "path"):
        if extra in source and kind != "git":
            raise Invalid(f"{field}.{extra}", "invalid", f"{extra} goes only with git")
    if kind == "git":
        url = targets.check_url(f"{field}.git", source["git"], GIT_SCHEMES)
        branch = _branch(f"{field}.branch", source["branch"]) if "branch" in source else ""
        path = _path(f"{field}.path", source["path"]) if "path" in source else ""
        return Source("git", url=url, branch=branch, path=path)
    if kind == "url":
        return Source("url", url=targets.check_url(f"{field}.url", source["url"]))
    text = _string(f"{field}.pkgbuild", source["pkgbuild"], MAX_PKGBUILD)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PKGBUILD:
        raise Invalid(f"{field}.pkgbuild", "too_long", f"larger than {MAX_PKGBUILD} bytes")
    if "\0" in text:
        raise Invalid(f"{field}.pkgbuild", "invalid", "no NUL characters")
    return Source("pkgbuild", pkgbuild=text)


def parse_manifest(text: str, default_arch: str, field: str = "manifest") -> Manifest:
    """A manifest's text -> Manifest, or Invalid naming the first field that breaks a rule
    (`manifest.source.git`)."""
    doc = _mapping(field, load_yaml(text, field), MANIFEST_KEYS)
    if "repo" not in doc:
        raise Invalid(f"{field}.repo", "missing", "repo is required")
    repo = _named(f"{field}.repo", doc["repo"], names.check_repo)
    arch = _arch(f"{field}.arch", doc["arch"]) if "arch" in doc else default_arch
    if "source" not in doc:
        raise Invalid(f"{field}.source", "missing", "source is required")
    source = _source(f"{field}.source", doc["source"])
    image = _image(f"{field}.image", doc["image"]) if "image" in doc else ""
    force = _flag(f"{field}.force", doc["force"]) if "force" in doc else False
    timeout = _integer(f"{field}.timeout", doc["timeout"], 1, MAX_TIMEOUT) \
        if "timeout" in doc else None
    environment = _environment(f"{field}.environment", doc["environment"]) \
        if "environment" in doc else {}
    review = "never" if source.kind == "pkgbuild" else "changes"
    if "review" in doc:
        if source.kind == "pkgbuild":
            raise Invalid(f"{field}.review", "invalid", "an inline PKGBUILD is reviewed as "
                          "it is submitted: review goes only with git or url")
        if not isinstance(doc["review"], str) or doc["review"] not in REVIEW_RULES:
            raise Invalid(f"{field}.review", "invalid", "one of " + ", ".join(REVIEW_RULES))
        review = doc["review"]
    agent_labels = agents.check_labels(f"{field}.agent_labels", doc["agent_labels"]) \
        if "agent_labels" in doc else {}
    return Manifest(repo=repo, arch=arch, source=source, image=image, force=force,
                    timeout=timeout, environment=environment, review=review, text=text,
                    agent_labels=agent_labels)


# -- the submission body ---------------------------------------------------------------------

def _text(field: str, value: Any, limit: int) -> str:
    """Plain text (shown as text, never as markup): no control characters but tab and
    line breaks."""
    text = _string(field, value, limit, empty=True)
    if any((ch < " " and ch not in "\t\n\r") or ch == "\x7f" for ch in text):
        raise Invalid(field, "invalid", "no control characters")
    return text


def _list(field: str, value: Any, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid(field, "invalid", "a list")
    if len(value) > limit:
        raise Invalid(field, "too_many", f"at most {limit} items")
    return value


def _tags(value: Any) -> tuple[str, ...]:
    result: list[str] = []
    for i, tag in enumerate(_list("tags", value, MAX_TAGS)):
        where = f"tags[{i}]"
        _string(where, tag, MAX_TAG)
        if not _TAG.fullmatch(tag):
            raise Invalid(where, "invalid", "lowercase letters, digits and '-_.:' only")
        if tag in result:
            raise Invalid(where, "duplicate", f"tag {tag!r} given twice")
        result.append(tag)
    return tuple(result)


def _users(field: str, value: Any, everyone: bool) -> tuple[str, ...]:
    result: list[str] = []
    for i, user in enumerate(_list(field, value, MAX_ACCESS)):
        where = f"{field}[{i}]"
        if not isinstance(user, str):
            raise Invalid(where, "invalid", "a user name")
        if not (everyone and user == "*") and not tokens.is_user(user):
            raise Invalid(where, "invalid", "not a user name" + (" or '*'" if everyone else ""))
        if user not in result:
            result.append(user)
    return tuple(result)


def _labels(value: Any) -> dict[str, str]:
    metadata = _mapping("metadata", value, METADATA_KEYS)
    labels = metadata.get("labels", {})
    if not isinstance(labels, dict):
        raise Invalid("metadata.labels", "invalid", "a mapping of keys to values")
    targets.check_labels(labels)
    return dict(labels)


def parse_submission(body: dict[str, Any], default_arch: str) -> Submission:
    """A `POST /api/v2/builds` body (JSON, already an object) -> Submission, or Invalid
    naming the first field that breaks a rule."""
    _mapping("", body, BODY_KEYS)
    if ("manifest" in body) == ("target_id" in body):
        raise Invalid("manifest", "missing" if "manifest" not in body else "invalid",
                      "exactly one of manifest, target_id")
    manifest: Manifest | None = None
    target_id: int | None = None
    arch: str | None = None
    force = False
    if "manifest" in body:
        for key in ("arch", "force"):
            if key in body:
                raise Invalid(key, "invalid", f"{key} goes in the manifest (or with target_id)")
        manifest = parse_manifest(body["manifest"], default_arch)
    else:
        target_id = _integer("target_id", body["target_id"], 1, MAX_TARGET_ID)
        if body.get("arch") is not None:
            arch = _arch("arch", body["arch"])
        force = _flag("force", body["force"]) if "force" in body else False
    triggers = _list("triggers", body["triggers"], targets.MAX_TRIGGERS) \
        if "triggers" in body else []
    targets.check_triggers(triggers)
    return Submission(
        manifest=manifest, target_id=target_id, arch=arch, force=force,
        note=_text("note", body["note"], MAX_NOTE) if "note" in body else "",
        tags=_tags(body["tags"]) if "tags" in body else (),
        labels=_labels(body["metadata"]) if "metadata" in body else {},
        access_read=_users("access:read", body["access:read"], everyone=True)
        if "access:read" in body else ("*",),
        access_write=_users("access:write", body["access:write"], everyone=False)
        if "access:write" in body else (),
        triggers=triggers,
        execute=_flag("execute", body["execute"]) if "execute" in body else True)


# -- the manifest of an existing build ----------------------------------------------------

def manifest_of(build: Build) -> str:
    """YAML for a build that has no stored manifest (a target's build), from its record;
    parse_manifest reads it back to the same values. A build submitted with a manifest
    keeps its text (the only place an inline PKGBUILD is kept): ValueError for that kind."""
    if build.kind not in ("git", "url"):
        raise ValueError(f"a {build.kind or 'kind-less'} build has no manifest to generate")
    source: dict[str, str] = {"git": build.url} if build.kind == "git" else {"url": build.url}
    if build.kind == "git":
        source.update({k: v for k, v in (("branch", build.branch), ("path", build.path)) if v})
    doc: dict[str, Any] = {"repo": build.repo, "arch": build.arch, "source": source}
    if build.base_image:
        doc["image"] = build.base_image
    doc["force"] = build.force
    if 1 <= build.timeout <= MAX_TIMEOUT:
        doc["timeout"] = build.timeout
    try:
        environment = json.loads(build.environment or "{}")
    except ValueError:
        environment = {}
    if isinstance(environment, dict) and environment:
        doc["environment"] = environment
    if build.review in REVIEW_RULES:
        doc["review"] = build.review
    try:
        agent_labels = json.loads(build.agent_labels or "{}")
    except ValueError:
        agent_labels = {}
    if isinstance(agent_labels, dict) and agent_labels:
        doc["agent_labels"] = agent_labels
    text = str(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False,
                              allow_unicode=True))
    if yaml.safe_load(text) != doc:  # PyYAML writes U+0085 raw, and reads it as a space
        text = str(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))
    return text
