"""Repository routes: GET|HEAD /:repo/:arch/:filename, POST|PUT
/:repo/publish, DELETEs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bottle
from bottle import HTTPResponse, request

from vieter_lite.errors import BadRequest, Forbidden, NotFound
from vieter_lite.repo import signing
from vieter_lite.repo.store import checked
from vieter_lite.web import files
from vieter_lite.web.auth import caller
from vieter_lite.web.http import envelope, query_flag, request_body

if TYPE_CHECKING:
    from vieter_lite.services import Services

REPO = {"api": "repo"}


def register(app: bottle.Bottle, services: Services) -> None:
    store = services.store

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
