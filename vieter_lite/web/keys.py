"""The signing key's public routes: GET /key (the ASCII-armored public key) and GET
/setup (a shell script that sets a pacman client up for a repo). No key needed, and
nothing secret in either."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bottle
from bottle import HTTPResponse, request

from vieter_lite import clientsetup
from vieter_lite.errors import BadRequest, NotFound
from vieter_lite.repo.store import checked
from vieter_lite.web.http import base_url

if TYPE_CHECKING:
    from vieter_lite.services import Services

REPO = {"api": "repo"}
KEY_TYPE = "application/pgp-keys"
TEXT = "text/plain; charset=utf-8"


def register(app: bottle.Bottle, services: Services) -> None:
    store = services.store

    @app.get("/key", scope="public", **REPO)
    def public_key() -> HTTPResponse:
        signer = services.signer
        if signer is None:
            raise NotFound("This server does not sign (sign = false): there is no key.")
        return HTTPResponse(signer.public_key, headers={"Content-Type": KEY_TYPE})

    @app.get("/setup", scope="public", **REPO)
    def setup_script() -> HTTPResponse:
        repo = request.query.getunicode("repo", default="") or ""
        if not repo:
            raise BadRequest("Missing parameter: repo (GET /setup?repo=NAME).")
        checked(repo)
        if repo not in store.repos():
            raise NotFound(f"repository '{repo}' not found")
        try:
            base = clientsetup.check_base_url(services.config.public_url or base_url())
        except ValueError as exc:
            raise BadRequest(f"{exc}: set public_url") from None
        signer = services.signer
        body = clientsetup.shell_script(base, repo, signer.fingerprint if signer else None)
        return HTTPResponse(body, headers={"Content-Type": TEXT})
