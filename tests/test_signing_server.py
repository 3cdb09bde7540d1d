"""Signing on a real server process (sign = true): the key's routes, signatures served
next to their files, ?sig= uploads, a reader during a publish burst, GET /setup, turning
signing on and off across restarts, and the agent ended at stop."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import API_KEY, ServerProcess
from gpgkeys import agent_pid, gpg_available, verify
from http_clients import Response, ServerClient
from pkgfactory import make_synthetic_package
from vieter_lite import pgp

pytestmark = pytest.mark.skipif(not gpg_available(), reason="gpg, gpgv or gpg-agent missing")

KEY = {"X-Api-Key": API_KEY}


class Packages:
    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str, version: str = "1.0-1", arch: str = "x86_64") -> bytes:
        path = self.directory / f"{name}-{version}-{arch}.pkg.tar.zst"
        return make_synthetic_package(path, {"pkgname": name, "pkgver": version, "arch": arch,
                                             "size": "10"},
                                      {f"usr/share/{name}/README": b"hello\n"}).read_bytes()


@pytest.fixture
def packages(tmp_path) -> Packages:
    return Packages(tmp_path / "src")


def signed_server(data_dir: Path, **env: str) -> ServerProcess:
    return ServerProcess(data_dir, env_extra={"VIETER_SIGN": "true", **env})


@pytest.fixture
def signed(tmp_path):
    proc = signed_server(tmp_path / "data").start()
    yield ServerClient(proc)
    if proc.proc.poll() is None:
        assert proc.stop() == 0, proc.log()


def publish(client: ServerClient, body: bytes, query: str = "") -> Response:
    return client.request("POST", f"/core/publish{query}", body, KEY)


def get(client: ServerClient, path: str) -> bytes:
    resp = client.request("GET", path)
    assert resp.status == 200, resp
    return resp.body


def fingerprint(client: ServerClient) -> str:
    return json.loads(get(client, "/health"))["data"]["fingerprint"]


def test_the_key_health_and_repos_list_name_the_same_key(signed, packages):
    assert publish(signed, packages("foo")).status == 200
    resp = signed.request("GET", "/key")
    assert resp.status == 200 and resp.headers["content-type"] == "application/pgp-keys"
    assert resp.body.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert b"PRIVATE" not in resp.body
    fpr = fingerprint(signed)
    assert pgp.key_fingerprint(resp.body) == fpr
    repos = json.loads(get_v2(signed, "/api/v2/repos"))["resources"]
    assert repos[0]["sign_key_fingerprint"] == fpr
    assert repos[0]["pacman_conf"].startswith("[core]\nSigLevel = Required\nServer = ")
    assert repos[0]["links"]["key"]["href"].endswith("/key")
    pkgs = json.loads(get_v2(signed, "/api/v2/repos/core/x86_64/packages"))["resources"]
    assert pkgs[0]["signed"] is True


def get_v2(client: ServerClient, path: str) -> bytes:
    resp = client.request("GET", path, headers=KEY)
    assert resp.status == 200, resp
    return resp.body


def test_without_signing_there_is_no_key(server):
    client = ServerClient(server)
    resp = client.request("GET", "/key")
    assert resp.status == 404 and json.loads(resp.body) == {
        "message": "This server does not sign (sign = false): there is no key.", "data": ""}
    assert json.loads(get(client, "/health")) == {"message": "Healthy.", "data": ""}


def test_every_file_pacman_asks_for_has_its_signature(signed, packages):
    body = packages("foo")
    assert publish(signed, body).status == 200
    key = get(signed, "/key")
    fpr = fingerprint(signed)
    for name, data in (("foo-1.0-1-x86_64.pkg.tar.zst", body),
                       ("core.db", get(signed, "/core/x86_64/core.db")),
                       ("core.db.tar.gz", get(signed, "/core/x86_64/core.db.tar.gz")),
                       ("core.files", get(signed, "/core/x86_64/core.files")),
                       ("core.files.tar.gz", get(signed, "/core/x86_64/core.files.tar.gz"))):
        ok, status = verify(key, get(signed, f"/core/x86_64/{name}.sig"), data)
        assert ok and f"VALIDSIG {fpr}" in status, name
    for missing in ("nope.pkg.tar.zst.sig", "core.sig", "other.db.sig"):
        assert signed.request("GET", f"/core/x86_64/{missing}").status == 404


def test_an_uploaded_signature_is_kept_and_served(signed, packages, scratch_gpg):
    other = scratch_gpg.new_key("Packager <packager@example.invalid>")
    body = packages("theirs")
    theirs = scratch_gpg.sign(other, body)
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        query = "?sig=" + encode(theirs).decode().rstrip("=").replace("+", "%2B") + \
            "&force=true"
        assert publish(signed, body, query).status == 200
        assert get(signed, "/core/x86_64/theirs-1.0-1-x86_64.pkg.tar.zst.sig") == theirs


@pytest.mark.parametrize("sig, reason", [
    ("not%20base64!", "sig: not base64"),
    (base64.b64encode(b"-----BEGIN PGP SIGNATURE-----\n\nabc\n").decode(),
     "sig: the signature is ASCII-armored"),
    (base64.b64encode(b"\x00" * 40).decode(), "sig: not an OpenPGP packet"),
    ("", "sig: the signature is empty"),
])
def test_a_bad_uploaded_signature_is_a_400(signed, packages, sig, reason):
    resp = publish(signed, packages("foo"), "?sig=" + sig.replace("+", "%2B"))
    assert resp.status == 400 and json.loads(resp.body)["message"].startswith(reason), resp
    assert signed.request("GET", "/core/x86_64/core.db").status == 404  # nothing published


def test_a_reader_during_a_publish_burst_never_gets_a_mismatched_pair(signed, packages):
    """GET db, GET db.sig, GET db, over and over, while 30 publishes rewrite the db: when
    both dbs are the same, the signature between them must be that db's."""
    assert publish(signed, packages("seed")).status == 200
    bodies = [packages(f"burst{i:02d}") for i in range(30)]
    done = threading.Event()
    pairs: dict[tuple[bytes, bytes], None] = {}

    def read() -> None:
        while not done.is_set():
            first = get(signed, "/core/x86_64/core.db")
            sig = get(signed, "/core/x86_64/core.db.sig")
            if get(signed, "/core/x86_64/core.db") == first:
                pairs[(first, sig)] = None

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    with ThreadPoolExecutor(max_workers=3) as pool:  # few enough for many rewrites
        statuses = list(pool.map(lambda b: publish(signed, b).status, bodies))
    done.set()
    for reader in readers:
        reader.join(60)
    assert statuses == [200] * 30
    assert len({db for db, _ in pairs}) >= 3, "too few rewrites seen to tell anything"
    key = get(signed, "/key")
    assert [db for db, sig in pairs if not verify(key, sig, db)[0]] == []


def test_setup_answers_a_script_for_the_repo(signed, packages):
    assert publish(signed, packages("foo")).status == 200
    resp = signed.request("GET", "/setup?repo=core")
    assert resp.status == 200 and resp.headers["content-type"].startswith("text/plain")
    script = resp.body.decode()
    assert script.startswith("#!/bin/sh\n")
    assert f"fingerprint={fingerprint(signed)}" in script
    assert f"url={signed.proc.url}" in script
    assert subprocess.run(["sh", "-n"], input=resp.body).returncode == 0
    for query, status, message in (("", 400, "Missing parameter: repo"),
                                   ("?repo=../x", 400, "invalid repository name"),
                                   ("?repo=other", 404, "repository 'other' not found")):
        resp = signed.request("GET", f"/setup{query}")
        assert resp.status == status and message in json.loads(resp.body)["message"]


def wait_for_log(proc: ServerProcess, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in proc.log():
        assert time.monotonic() < deadline, f"no '{text}' in the log:\n{proc.log()}"
        time.sleep(0.1)


def agent_running(home: Path) -> bool:
    return agent_pid(home) is not None


def test_turning_signing_on_signs_what_is_there_and_off_removes_it(tmp_path, packages,
                                                                  scratch_gpg):
    data = tmp_path / "data"
    proc = ServerProcess(data).start()
    client = ServerClient(proc)
    for i in range(6):
        assert publish(client, packages(f"old{i}")).status == 200
    other = scratch_gpg.new_key("Packager <packager@example.invalid>")
    theirs = scratch_gpg.sign(other, packages("theirs"))
    query = "?sig=" + base64.urlsafe_b64encode(theirs).decode()
    assert publish(client, packages("theirs"), query).status == 200
    assert client.request("GET", "/core/x86_64/core.db.sig").status == 404
    assert proc.stop() == 0

    proc = signed_server(data).start()
    client = ServerClient(proc)
    wait_for_log(proc, "signatures: done")
    assert "signatures: signing 6 packages" in proc.log()
    key = get(client, "/key")
    assert verify(key, get(client, "/core/x86_64/core.db.sig"),
                  get(client, "/core/x86_64/core.db"))[0]
    for i in range(6):
        name = f"/core/x86_64/old{i}-1.0-1-x86_64.pkg.tar.zst"
        assert verify(key, get(client, name + ".sig"), get(client, name))[0]
    # the one-shot thread ended; the server did not
    assert json.loads(get(client, "/health"))["message"] == "Healthy."
    assert agent_running(data / "gnupg")
    assert proc.stop() == 0
    assert not agent_running(data / "gnupg")  # ended with the server

    proc = ServerProcess(data).start()
    client = ServerClient(proc)
    wait_for_log(proc, "signatures: done")
    assert client.request("GET", "/core/x86_64/core.db.sig").status == 404
    for i in range(6):
        path = f"/core/x86_64/old{i}-1.0-1-x86_64.pkg.tar.zst.sig"
        assert client.request("GET", path).status == 404
    assert get(client, "/core/x86_64/theirs-1.0-1-x86_64.pkg.tar.zst.sig") == theirs
    assert not agent_running(data / "gnupg")
    assert proc.stop() == 0
