"""End to end, builds.sr.ht style: builds submitted as manifests (POST /api/v2/builds) run on
the real agent in rootless Podman: an inline PKGBUILD builds and is published, a pending
build waits for its start, a cancelled build's container is gone within seconds and nothing
is published, a build past its timeout ends `timeout`; each task's log holds its own part; a
failed build's webhook and email arrive (a real SMTP server in the test process)."""

from __future__ import annotations

import email
import hashlib
import hmac
import json
import pwd
import subprocess
import time
import urllib.error
import urllib.request

from conftest import API_KEY
from pacman_client import PacmanClient
from receivers import WebhookReceiver
from test_agent_e2e import AGENT_USER, pytestmark, world  # noqa: F401

REPO = "jobs"
CANCEL_LIMIT = 10.0  # seconds from the cancel to the container's end (the requirement)


def pkgbuild(name: str, build: str = "echo built") -> str:
    """One small `any` package; build() runs `build`."""
    return f"""pkgname={name}
pkgver=1.0
pkgrel=1
arch=('any')
options=(!debug !strip)
build() {{
    {build}
}}
package() {{
    install -Dm644 /dev/stdin "$pkgdir/usr/share/{name}/data" <<< '{name} data'
}}
"""


def manifest(source: dict, **fields: object) -> str:
    """A manifest as YAML would say it (JSON is YAML)."""
    return json.dumps({"repo": REPO, "arch": "x86_64", "source": source, **fields})


class V2:
    """/api/v2 with the api_key: JSON in, JSON out."""

    def __init__(self, url: str):
        self.url = url

    def call(self, method: str, path: str, body: object = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"X-Api-Key": API_KEY,
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def ok(self, method: str, path: str, body: object = None) -> dict:
        status, raw = self.call(method, path, body)
        assert status in (200, 201), (method, path, status, raw[:2000])
        return json.loads(raw) if raw else {}

    def submit(self, text: str, execute: bool = True) -> dict:
        return self.ok("POST", "/api/v2/builds", {"manifest": text, "execute": execute})

    def build(self, build_id: int) -> dict:
        return self.ok("GET", f"/api/v2/builds/{build_id}")

    def log(self, build_id: int, task: str | None = None) -> str:
        path = f"/api/v2/builds/{build_id}/" + (f"tasks/{task}/log" if task else "log/content")
        status, raw = self.call("GET", path)
        assert status == 200, (path, status, raw[:500])
        return raw.decode(errors="replace")

    def db(self) -> bytes:
        status, raw = self.call("GET", f"/{REPO}/x86_64/{REPO}.db")
        return raw if status == 200 else b""


def tasks(build: dict) -> dict[str, str]:
    return {t["name"]: t["status"] for t in build["tasks"]}


def wait_until(what: str, check, timeout: float = 180, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def ended(api: V2, build_id: int, timeout: float = 180) -> dict:
    """The build once it ended, or waits (pending) with a hold."""
    def over() -> dict | None:
        build = api.build(build_id)
        waiting = build["status"] in ("queued", "running") or \
            (build["status"] == "pending" and not build.get("hold"))
        return None if waiting else build
    return wait_until(f"build {build_id} to end", over, timeout)


def containers_of(build_id: int) -> list[str]:
    """The build's containers in the agent user's Podman store (any state)."""
    home = pwd.getpwnam(AGENT_USER).pw_dir
    done = subprocess.run(
        ["runuser", "-u", AGENT_USER, "--", "env", "-u", "XDG_RUNTIME_DIR", f"HOME={home}",
         "podman", "ps", "-a", "-q", "--filter", f"label=io.vieter-lite.build={build_id}"],
        cwd="/", capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.split()


def test_an_inline_pkgbuild_builds_with_its_environment_and_is_published(world, tmp_path):
    api = V2(world["server"].url)
    text = manifest({"pkgbuild": pkgbuild("jobs-inline", 'echo "greeting: $E2E_GREETING"')},
                    environment={"E2E_GREETING": "hello from the manifest"})
    build_id = api.submit(text)["id"]
    build = ended(api, build_id)
    assert build["status"] == "success", (api.log(build_id), world["agent_log"].read_text())
    assert tasks(build) == {"setup": "success", "source": "success", "build": "success",
                            "publish": "success"}
    setup, source, making, publish = (api.log(build_id, t)
                                      for t in ("setup", "source", "build", "publish"))
    assert f"vieter-lite agent: build {build_id} (an inline PKGBUILD)" in setup
    assert "the source from the server: 1 file(s)" in source and "+ git" not in source
    assert "makepkg --nobuild" in source and "greeting:" not in source
    assert "greeting: hello from the manifest" in making and "==> Finished making" in making
    assert "+ publish jobs-inline-1.0-1-any.pkg.tar" in publish and "makepkg" not in publish

    pacman = PacmanClient(tmp_path / "root", {REPO: world["server"].url + "/$repo/$arch"})
    pacman.sync_db()
    assert pacman.search_sync(REPO).get("jobs-inline") == "1.0-1"


def test_a_pending_build_waits_for_its_start_and_a_new_source_for_its_review(world):
    """Submitted with execute false, it waits; started, the agent fetches its git source and
    hands it over; the first source of a manifest under review "changes" is held; approved
    (start again), the agent builds it from the server's copy."""
    api = V2(world["server"].url)
    git = {"git": world["git_url"], "branch": "main", "path": "sub"}
    build_id = api.submit(manifest(git, force=True), execute=False)["id"]
    time.sleep(3)  # the agent polls every second: three polls pass it by
    waiting = api.build(build_id)
    assert (waiting["status"], waiting["runner"] or "") == ("pending", ""), waiting
    api.ok("POST", f"/api/v2/builds/{build_id}/start")

    held = ended(api, build_id)
    assert held["status"] == "pending", (api.log(build_id), world["agent_log"].read_text())
    assert held["hold"]["reason"] == "review" and "+pkgbase=e2e-git" in held["hold"]["diff"]
    first = api.log(build_id, "source")
    assert "+ git clone" in first and "the source: 1 file(s)" in first
    assert "makepkg" not in api.log(build_id)
    wait_until("the agent's word on the hold", lambda: f"build {build_id} waits for a review"
               in world["agent_log"].read_text(), timeout=30)

    api.ok("POST", f"/api/v2/builds/{build_id}/start")
    build = ended(api, build_id)
    assert build["status"] == "success", (api.log(build_id), world["agent_log"].read_text())
    assert tasks(build) == {"setup": "success", "source": "success", "build": "success",
                            "publish": "success"}
    # the source task's part runs from the fetch through the hold to the server's copy
    # (a held build keeps its setup and source parts where they began)
    source = api.log(build_id, "source")
    fetched, approved = source.index("+ git clone"), source.index("the source from the server")
    assert fetched < source.index("the build waits for review") < approved
    assert source.count("+ git clone") == 1 and "makepkg --nobuild" in source[approved:]
    making = api.log(build_id, "build")
    assert "==> Finished making: e2e-git 1.0-1" in making and "+ git clone" not in making


def test_cancel_kills_the_container_and_a_timeout_ends_the_build(world):
    """Both at once (the agent has two slots): a build cancelled while makepkg runs, and a
    build past its timeout of 15 s."""
    api = V2(world["server"].url)
    slow = 'echo "sleeping now"; sleep 300'
    cancelled_id = api.submit(manifest({"pkgbuild": pkgbuild("jobs-cancel", slow)}))["id"]
    timed_id = api.submit(manifest({"pkgbuild": pkgbuild("jobs-timeout", slow)},
                                   timeout=15))["id"]
    wait_until("the cancelled build's makepkg",
               lambda: "sleeping now" in api.log(cancelled_id), timeout=240)
    assert containers_of(cancelled_id), "no container of the running build"
    db_before = api.db()

    cancelled_at = time.monotonic()
    api.ok("POST", f"/api/v2/builds/{cancelled_id}/cancel")
    wait_until("the container to go", lambda: not containers_of(cancelled_id),
               timeout=60, every=0.1)
    gone_after = time.monotonic() - cancelled_at
    print(f"cancel to container gone: {gone_after:.2f}s")
    assert gone_after < CANCEL_LIMIT

    build = api.build(cancelled_id)
    assert build["status"] == "cancelled", build
    assert tasks(build)["publish"] != "success"
    log = api.log(cancelled_id)
    assert "+ publish" not in log and "Finished making" not in log
    wait_until("the agent's word on the stop",
               lambda: f"build {cancelled_id} stopped" in world["agent_log"].read_text(),
               timeout=30)

    timed = ended(api, timed_id, timeout=120)
    assert timed["status"] == "timeout", (api.log(timed_id), world["agent_log"].read_text())
    assert tasks(timed)["build"] == "failed" and tasks(timed)["publish"] == "skipped"
    assert "build killed after its timeout of 15 s" in api.log(timed_id, "build")
    assert not containers_of(timed_id)
    assert api.db() == db_before, "a cancelled or timed-out build published something"
    assert api.build(cancelled_id)["status"] == "cancelled"


def test_a_source_with_a_symlink_fails_the_build_naming_it(world):
    """A git source whose PKGBUILD directory holds a link: refused before it reaches the
    server, the build fails in its source task, nothing is built."""
    repo = world["base"] / "git" / "linkpkg"
    repo.mkdir()
    (repo / "PKGBUILD").write_text(pkgbuild("jobs-link"))
    (repo / "evil").symlink_to("/etc/passwd")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "link"], check=True)
    api = V2(world["server"].url)
    url = world["git_url"].rsplit("/", 1)[0] + "/linkpkg"
    build_id = api.submit(manifest({"git": url}, review="never"))["id"]
    build = ended(api, build_id)
    assert build["status"] == "failed", (api.log(build_id), world["agent_log"].read_text())
    assert tasks(build) == {"setup": "success", "source": "failed", "build": "skipped",
                            "publish": "skipped"}
    source = api.log(build_id, "source")
    assert "the source is refused: evil is a symbolic link (to '/etc/passwd')" in source
    assert "makepkg" not in api.log(build_id)


def test_a_failed_build_sends_its_webhook_and_its_email(world):
    """A manifest build that fails on the real agent: its webhook trigger arrives signed
    with the build's JSON, and its email reaches the SMTP server, each once."""
    api = V2(world["server"].url)
    secret = "e2e-secret"
    with WebhookReceiver() as hook:
        text = manifest({"pkgbuild": pkgbuild("jobs-fails", "echo boom; false")})
        build_id = api.ok("POST", "/api/v2/builds", {
            "manifest": text, "tags": ["e2e"],
            "triggers": [{"action": "webhook", "condition": "failure", "url": hook.url,
                          "secret": secret},
                         {"action": "email", "condition": "failure", "to": "me@e2e.invalid",
                          "cc": ["you@e2e.invalid"]},
                         {"action": "webhook", "condition": "success", "url": hook.url}]})["id"]
        build = ended(api, build_id)
        assert build["status"] == "failed", api.log(build_id)
        [got] = hook.wait_for(1)  # (bench/triggers.py measures how soon it arrives)
        assert got.headers["x-vieter-event"] == "build"
        signature = hmac.new(secret.encode(), got.body, hashlib.sha256).hexdigest()
        assert got.headers["x-vieter-signature"] == f"sha256={signature}"
        sent = json.loads(got.body)
        assert (sent["id"], sent["status"], sent["tags"]) == (build_id, "failed", ["e2e"])
        assert sent["triggers"][0]["secret"] == "********"
        [(sender, recipients, raw)] = world["smtp"].wait_for(1)
        message = email.message_from_bytes(raw)
        assert message["Subject"] == f"[e2e] build #{build_id} failed"
        assert sender == "vieter@e2e.invalid"
        assert sorted(recipients) == ["me@e2e.invalid", "you@e2e.invalid"]
        text_body = message.get_payload(decode=True).decode()
        assert "failed" in text_body and f"/api/v2/builds/{build_id}" in text_body
        deliveries = api.ok("GET", f"/api/v2/builds/{build_id}/deliveries")
        assert deliveries["pagination"]["total_results"] == 2  # not the success webhook
        time.sleep(1)
        assert len(hook.requests) == 1


def commit(repo, files: dict[str, str], message: str) -> None:
    """Write `files` into the git repository and commit them."""
    for name, text in files.items():
        (repo / name).write_text(text)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", message], check=True)


def test_review_of_a_git_target_holds_changes_and_builds_version_bumps(world):
    """A target under review "changes" in a real git repository: its first build is held
    and approved; a version-only bump then builds at once; a new .install script and a
    changed build() hold the next build with that diff, and approving it publishes."""
    api = V2(world["server"].url)
    repo = world["base"] / "git" / "reviewpkg"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    commit(repo, {"PKGBUILD": pkgbuild("jobs-review")}, "1.0")
    target = api.ok("POST", "/api/v2/targets", {
        "kind": "git", "url": world["git_url"].replace("gitpkg", "reviewpkg"),
        "branch": "main", "repo": REPO, "arch": ["x86_64"], "schedule": "0 3 1 1",
        "review": "changes"})

    def run() -> dict:
        build_id = api.ok("POST", "/api/v2/builds", {"target_id": target["id"]})["id"]
        return ended(api, build_id)

    first = run()
    assert first["status"] == "pending" and first["hold"]["reason"] == "review", first
    api.ok("POST", f"/api/v2/builds/{first['id']}/start")
    assert ended(api, first["id"])["status"] == "success", api.log(first["id"])

    commit(repo, {"PKGBUILD": pkgbuild("jobs-review").replace("pkgver=1.0", "pkgver=1.1")},
           "1.1")
    bumped = run()
    assert bumped["status"] == "success" and bumped["hold"] is None, api.log(bumped["id"])

    changed = pkgbuild("jobs-review", "echo built; echo fetch-more || true").replace(
        "pkgver=1.0", "pkgver=1.2")
    changed = changed.replace("options=(", "install=jobs-review.install\noptions=(")
    commit(repo, {"PKGBUILD": changed, "jobs-review.install": "post_install() { :; }\n"},
           "1.2")
    held = run()
    assert held["status"] == "pending", api.log(held["id"])
    diff = held["hold"]["diff"]
    assert "-    echo built\n" in diff and "+    echo built; echo fetch-more || true" in diff
    assert "+install=jobs-review.install" in diff
    assert "+++ b/jobs-review.install" in diff and "+post_install() { :; }" in diff
    assert "makepkg" not in api.log(held["id"], "build")
    api.ok("POST", f"/api/v2/builds/{held['id']}/start")
    assert ended(api, held["id"])["status"] == "success", api.log(held["id"])
    versions = {p["name"]: p["version"] for p in api.build(held["id"])["packages"]}
    assert versions == {"jobs-review": "1.2-1"}
