"""Repository routes: GET / (a page), GET|HEAD /:repo/:arch/:filename, POST|PUT
/:repo/publish, DELETEs."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import bottle
from bottle import HTTPResponse, request

from vieter_lite import __version__
from vieter_lite.errors import BadRequest, Forbidden, NotFound
from vieter_lite.repo import signing
from vieter_lite.repo.store import checked
from vieter_lite.web import files
from vieter_lite.web.auth import caller
from vieter_lite.web.http import envelope, query_flag, request_body

if TYPE_CHECKING:
    from vieter_lite.services import Services

REPO = {"api": "repo"}


def index_page(version: str, base_url: str, repos: dict[str, dict[str, int]],
               fingerprint: str | None = None) -> str:
    """The page at /: the version, each repo with its pacman.conf stanza (and, signed,
    how to trust the key), where the API is described. Every value is escaped."""
    e = html.escape
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>vieter-lite {e(version)}</title></head><body>",
             f"<h1>vieter-lite {e(version)}</h1>",
             "<p>An Arch Linux package repository. To use a repository, add its stanza to "
             "<code>/etc/pacman.conf</code>.</p>"]
    if not repos:
        parts.append("<p>No repositories yet: publishing a package creates one.</p>")
    if fingerprint:
        parts.append(f"<p>Packages and databases are signed by the key {e(fingerprint)} "
                     f"(<a href=\"/key\">/key</a>). To trust it and add a repository, run "
                     "as root <code>vieter-lite client setup URL REPO</code>, or the script "
                     "at <code>/setup?repo=REPO</code>.</p>")
    siglevel = "SigLevel = Required\n" if fingerprint else ""
    for repo, archs in repos.items():
        counts = ", ".join(f"{e(arch)} ({count})" for arch, count in archs.items())
        parts += [f"<h2>{e(repo)}</h2>", f"<p>Packages per arch: {counts}</p>",
                  f"<pre>[{e(repo)}]\n{siglevel}Server = {e(base_url)}/$repo/$arch</pre>"]
    parts += ["<p>The HTTP API (publishing, targets, builds, logs) is described in the "
              "sections &ldquo;HTTP API&rdquo; of vieter-lite&rsquo;s <code>README.md</code>."
              "</p>", "</body></html>", ""]
    return "\n".join(parts)


def register(app: bottle.Bottle, services: Services) -> None:
    store = services.store

    @app.get("/", scope="public", **REPO)
    def index() -> HTTPResponse:
        """No key needed: what a browser pointed at the server sees."""
        parts = request.urlparts  # the scheme and host the client used
        signer = services.signer
        body = index_page(__version__, f"{parts.scheme}://{parts.netloc}", store.repos(),
                          signer.fingerprint if signer else None)
        return HTTPResponse(body.encode(), headers={"Content-Type": "text/html; charset=utf-8"})

    @app.route("/<repo>/<arch>/<filename>", method=["GET", "HEAD"], scope="public", **REPO)
    def get_file(repo: str, arch: str, filename: str) -> HTTPResponse:
        if repo.lower() == "api":
            raise NotFound("Not found.")
        checked(repo, arch)
        db_file = store.db_file(repo, arch, filename)  # the archives and their .sig
        if db_file is not None:
            return files.send_file(db_file)
        if ".pkg" in filename:  # a package file or its .sig
            return files.send_file(store.package_file(repo, arch, filename))
        pkg = store.desc_entry(repo, arch, filename)
        if pkg is None:
            raise NotFound("Not found.")
        body = pkg.desc.encode()
        return files.send(body, len(body), pkg.published_at, files.TEXT)

    @app.route("/<repo>", method=["GET", "HEAD"], scope="public", **REPO)
    @app.route("/<repo>/<arch>", method=["GET", "HEAD"], scope="public", **REPO)
    def no_listing(repo: str, arch: str = "") -> HTTPResponse:
        """A repo or arch-repo path is no file: 404, like any other path without one
        (not a 405 because the path also names something one may DELETE)."""
        raise NotFound("Not found.")

    # curl -T sends PUT; the api_key, or a build token for this repo
    @app.route("/<repo>/publish", method=["POST", "PUT"], scope="repos:publish", **REPO)
    def publish(repo: str) -> HTTPResponse:
        who = caller()
        if who.principal is not None and not who.principal.may_use_repo(repo):
            raise Forbidden(f"this token may not publish to '{repo}'")
        build = who.build
        checked(repo)
        store.check_publisher(repo, build)  # before the body is read
        force = query_flag("force")
        sig = request.query.getunicode("sig", default=None)
        signature = None if sig is None else signing.decode_signature(sig)
        if request.content_type.startswith("multipart/"):
            raise BadRequest("send the package file itself as the request body "
                             "(curl -T FILE or --data-binary @FILE), not a form")
        upload, sha256 = store.receive_upload(*request_body())
        try:
            result = store.publish(repo, upload, sha256, force=force, build=build,
                                   signature=signature)
        finally:
            upload.unlink(missing_ok=True)
        return envelope({"name": result.name, "version": result.version,
                         "archs": list(result.archs)})

    @app.delete("/<repo>/<arch>/<pkg>", scope="repos:delete", **REPO)
    def delete_package(repo: str, arch: str, pkg: str) -> HTTPResponse:
        store.remove_package(repo, arch, pkg)
        return envelope(message=f"Package '{pkg}' removed from {repo}/{arch}.")

    @app.delete("/<repo>/<arch>", scope="repos:delete", **REPO)
    def delete_arch_repo(repo: str, arch: str) -> HTTPResponse:
        store.remove_arch_repo(repo, arch)
        return envelope(message=f"Arch-repo {repo}/{arch} removed.")

    @app.delete("/<repo>", scope="repos:delete", **REPO)
    def delete_repo(repo: str) -> HTTPResponse:
        store.remove_repo(repo)
        return envelope(message=f"Repository '{repo}' removed.")
