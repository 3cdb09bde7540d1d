"""Records passed between modules: frozen dataclasses, no behaviour beyond small helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


@dataclass(frozen=True)
class PkgInfo:
    """The fields of a package's .PKGINFO that a repository needs (names as in desc)."""

    name: str
    version: str
    arch: str
    base: str = ""
    desc: str = ""
    url: str = ""
    builddate: str = ""
    packager: str = ""
    isize: str = ""
    licenses: tuple[str, ...] = ()
    replaces: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    backup: tuple[str, ...] = ()
    depends: tuple[str, ...] = ()
    optdepends: tuple[str, ...] = ()
    makedepends: tuple[str, ...] = ()
    checkdepends: tuple[str, ...] = ()
    xdata: tuple[str, ...] = ()

    @property
    def entry(self) -> str:
        """The package's directory name in a repo db: '<name>-<version>'."""
        return f"{self.name}-{self.version}"


@dataclass(frozen=True)
class Package:
    """A readable package file: its metadata, file list and checksum."""

    info: PkgInfo
    extension: str          # ".pkg.tar.zst", ".pkg.tar.gz", ...
    csize: int
    sha256: str
    files: tuple[str, ...] = ()
    pgpsig: str = ""        # base64 detached signature, when one was uploaded

    @property
    def filename(self) -> str:
        return f"{self.info.name}-{self.info.version}-{self.info.arch}{self.extension}"


@dataclass(frozen=True)
class RepoPackage:
    """One package as recorded in one arch-repo."""

    repo: str
    arch: str
    name: str
    version: str
    filename: str
    pkg_arch: str
    desc: str = field(repr=False, default="")
    published_at: int = 0

    @property
    def entry(self) -> str:
        return f"{self.name}-{self.version}"


@dataclass(frozen=True)
class KeptPackage:
    """A replaced version of a package that stays on disk (keep_versions), out of the db
    archives; `kept_at` is when it was replaced."""

    package: RepoPackage
    kept_at: int


@dataclass(frozen=True)
class PackageHold:
    """A name of an arch-repo held at a version by a rollback: no newer version of it is
    published until the hold is released. `held_by` names who rolled back."""

    repo: str
    arch: str
    name: str
    version: str
    since: int
    held_by: str = ""


@dataclass(frozen=True)
class PackageOwner:
    """Who may publish a package name in a repo: the target whose build first published
    it, or the admin (target_id None: published with the api_key)."""

    repo: str
    name: str
    target_id: int | None
    since: int = 0
    user: str | None = None   # a user's manifest builds own it (target_id then None)

    def __str__(self) -> str:
        if self.user is not None:
            return f"the builds of user '{self.user}'"
        return "the admin (api_key)" if self.target_id is None else f"target {self.target_id}"


@dataclass(frozen=True)
class TargetArch:
    id: int
    target_id: int
    value: str
    next_run: int | None = None


@dataclass(frozen=True)
class Target:
    """A build definition: a git repository or a PKGBUILD URL, built for some archs."""

    id: int
    kind: str
    url: str
    branch: str
    path: str
    repo: str
    schedule: str
    arch: tuple[TargetArch, ...] = ()
    review: str = "never"     # hold builds for review: never, changes, always
    triggers: str = "[]"      # what to notify when its builds end (a JSON list)
    agent_labels: str = "{}"  # labels an agent must have to build it (a JSON object)
    rebuild_on_dependency: bool = False  # built again when a dependency publishes


# the kinds of edges of a repo's dependency graph (depgraph.py says what each means)
DEP_NEEDS, DEP_CYCLE, DEP_UNREAD = "needs", "cycle", "unread"


@dataclass(frozen=True, order=True)
class DepEdge:
    """Target `target` depends on target `dep` (kind: needs, cycle, unread); `via` is the
    first dependency that made the edge ('foo>=1.2')."""

    target: int
    dep: int
    kind: str
    via: str


@dataclass(frozen=True)
class TargetDependencies:
    """What agents read of a target's PKGBUILD, per arch (the build that read it, its
    pkgbase, when), and the targets it depends on: (arch, target id, kind, the dependency
    that made the edge); kinds as depgraph.py names them (needs, cycle, unread)."""

    read: dict[str, tuple[int, str, int]] = field(default_factory=dict)
    edges: tuple[tuple[str, int, str, str], ...] = ()


TASK_NAMES = ("setup", "source", "build", "publish")
BUILD_STATES = ("pending", "queued", "running", "success", "failed", "timeout", "cancelled")
TASK_STATES = ("pending", "running", "success", "failed", "skipped")
ACTIVE_STATES = ("queued", "running")
OPEN_STATES = ("pending", "queued", "running")
FINAL_STATES = ("success", "failed", "timeout", "cancelled")
# the exit code an agent records for a build it killed at its timeout
TIMEOUT_EXIT = 124
NO_TARGET = 0   # the target id of a build submitted with a manifest
REVIEW_RULES = ("changes", "never", "always")


@dataclass(frozen=True)
class Build:
    """One build of one target on one arch: a queued job, a running build, or a finished
    build (which /api/v1 shows as a build log)."""

    id: int
    target_id: int
    arch: str
    status: str
    force: bool
    created_at: int
    repo: str = ""
    kind: str = ""
    url: str = ""
    branch: str = ""
    path: str = ""
    base_image: str = ""
    timeout: int = 0
    started_at: int | None = None
    ended_at: int | None = None
    exit_code: int | None = None
    runner: str = ""
    lease_expires: int | None = None
    expiries: int = 0
    log_done: bool = False
    tasks: tuple[tuple[str, str], ...] = ()
    pkgbase: str = ""       # fixed by the build's first publish
    releases: int = 0       # times an agent handed it back
    owner: str = ""         # the submitting token's user; '' the api_key or the scheduler
    note: str = ""
    access_read: tuple[str, ...] = ("*",)
    access_write: tuple[str, ...] = ()
    triggers: str = "[]"    # what to notify when it ends (a JSON list)
    environment: str = "{}"  # exported to makepkg (a JSON object of names to values)
    review: str = "never"   # the review rule it runs under: never, changes, always
    hold_reason: str | None = None   # why a pending build waits ('review'), None: not held
    hold_diff: str | None = None     # what changed since the last successful build
    agent_labels: str = "{}"  # labels an agent must have to claim it (a JSON object)
    agent_id: int | None = None      # the registered agent that claimed it

    @property
    def has_target(self) -> bool:
        """False for a build submitted with a manifest (it has no target: id 0)."""
        return self.target_id != NO_TARGET

    @property
    def publisher(self) -> tuple[int | None, str | None]:
        """Who owns the names it publishes: its target, or (a manifest's build) its owner's
        builds ('api_key' for the api_key's)."""
        if self.has_target:
            return self.target_id, None
        return None, self.owner or "api_key"

    @property
    def state(self) -> str:
        """Its status as /api/v2 names it: a failed build with the agent's timeout exit code
        (recorded before timeouts had their own status) is a timeout."""
        if self.status == "failed" and self.exit_code == TIMEOUT_EXIT:
            return "timeout"
        return self.status


@dataclass(frozen=True)
class BuildSpec:
    """A build to make: of a target (target_id), or of a manifest (target_id NO_TARGET,
    the manifest's text kept as submitted; an inline PKGBUILD is its source bundle).
    `execute` False: it waits as pending for a start."""

    target_id: int
    arch: str
    repo: str
    kind: str
    url: str = ""
    branch: str = ""
    path: str = ""
    base_image: str = ""
    timeout: int = 0
    force: bool = False
    owner: str = ""
    note: str = ""
    tags: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    access_read: tuple[str, ...] = ("*",)
    access_write: tuple[str, ...] = ()
    triggers: str = "[]"
    environment: str = "{}"
    review: str = "never"
    execute: bool = True
    manifest: str | None = None
    bundle: bytes | None = None
    agent_labels: str = "{}"


@dataclass(frozen=True)
class BuildDetails:
    """What a build carries besides its record: tags, labels, the packages it published
    ((name, version, arch, filename)), and (a queued build) the builds of its dependencies
    it waits for."""

    tags: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    packages: list[tuple[str, str, str, str]] = field(default_factory=list)
    blocked_by: tuple[int, ...] = ()   # builds of its dependencies it waits for (queued)


@dataclass(frozen=True)
class LogRecord:
    """What sqlite keeps about a build's log (the text is a file): its uuid (None until
    first used), whether it is closed (DONE), and when it last changed."""

    build_id: int
    build_status: str
    log_id: str | None
    done: bool
    created_at: int
    updated_at: int | None


@dataclass(frozen=True)
class Claim:
    """A build an agent claimed by polling, with the build token it reports through (the
    token is handed out once; only its hash is stored)."""

    build: Build
    token: str


@dataclass(frozen=True)
class TokenSpec:
    """A token to create. `user` empty: the token's name. `repos`/`archs` empty: all.
    `expires_at`: Unix seconds or None (never); `parse_time` reads the API's RFC 3339."""

    name: str
    scopes: tuple[str, ...]
    user: str = ""
    repos: tuple[str, ...] = ()
    archs: tuple[str, ...] = ()
    expires_at: int | None = None


@dataclass(frozen=True)
class Token:
    """A stored token, without its secret. Times are Unix seconds."""

    id: int
    name: str
    user: str
    scopes: tuple[str, ...]
    repos: tuple[str, ...]
    archs: tuple[str, ...]
    created_at: int
    expires_at: int | None
    last_used_at: int | None
    revoked_at: int | None = None

    def active(self, now: int) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True)
class AgentSpec:
    """What an agent says of itself when it registers (checked by agents.validate)."""

    name: str
    archs: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)
    version: str = ""
    slots: int = 1
    poll_period: int = 30


@dataclass(frozen=True)
class Agent:
    """A registered build agent. `token_id` None: registered with the api_key. Times are
    Unix seconds; `builds` the ids of the running builds it holds."""

    id: int
    name: str
    archs: tuple[str, ...]
    labels: dict[str, str]
    version: str
    slots: int
    poll_period: int
    token_id: int | None
    registered_at: int
    last_seen_at: int
    builds: tuple[int, ...] = ()


DELIVERY_STATES = ("pending", "delivered", "failed")


@dataclass(frozen=True)
class NewDelivery:
    """A notification to send for a build that ended: one trigger that fired, with what it
    sends each time it is tried (a webhook's body, an email's message)."""

    uuid: str
    action: str          # webhook, email
    destination: str     # the webhook's URL, the email's addresses
    condition: str       # always, success, failure
    spec: str            # the trigger as stored (a JSON object; a webhook's secret too)
    payload: bytes


@dataclass(frozen=True)
class Delivery:
    """A notification of a build, pending (due at `next_at`, Unix seconds), delivered or
    failed for good, after `attempts` attempts."""

    id: int
    build_id: int
    uuid: str
    action: str
    destination: str
    condition: str
    spec: str
    payload: bytes
    status: str
    attempts: int
    next_at: float | None
    created_at: int


@dataclass(frozen=True)
class DeliveryAttempt:
    """One try of a delivery: when, the answer's status (HTTP, or SMTP's reply code; None
    when none came) and the first bytes of the answer, or the error."""

    id: int
    delivery: Delivery
    at: int
    response_status: int | None
    response: str
    error: str


class BuildSample(NamedTuple):
    """What build statistics need of one build (stats.py); `state` as /api/v2 names it.
    A tuple: a window may hold 100 000 of them."""

    created_at: int
    started_at: int | None
    ended_at: int | None
    state: str
