"""/api/v2/repos: repos with their arch-repos, their packages (Cloud Foundry lists), and
rolling a package back to a kept version."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import bottle

from vieter_lite import lists, names
from vieter_lite.errors import Forbidden, Invalid
from vieter_lite.repo.store import ListedPackage
from vieter_lite.tokens import Principal
from vieter_lite.web.auth import caller
from vieter_lite.web.http import base_url, json_body
from vieter_lite.web.v2.common import (
    DASHBOARD,
    V2,
    list_response,
    no_content,
    page_of,
    parse_list,
    principal,
)
from vieter_lite.web.v2.shapes import package_json, repo_json

if TYPE_CHECKING:
    from vieter_lite.services import Services

REPOS = lists.ListSpec(order_fields=("name",))
PACKAGES = lists.ListSpec(order_fields=("name", "published_at"),
                          filters=(lists.Filter("names"),))
ROLLBACK_FIELDS = ("version", "hold_version")


def rollback_request(body: dict[str, Any]) -> tuple[str, bool]:
    """(version, hold_version) from a rollback's JSON body; 422 naming the field."""
    unknown = sorted(set(body) - set(ROLLBACK_FIELDS))
    if unknown:
        raise Invalid(unknown[0], "unknown",
                      f"unknown field; the fields are {', '.join(ROLLBACK_FIELDS)}")
    version = body.get("version")
    if version is None or version == "":
        raise Invalid("version", "missing", "version is required")
    if not isinstance(version, str):
        raise Invalid("version", "invalid", "version must be a string")
    try:
        names.check_version(version)
    except ValueError as exc:
        raise Invalid("version", "invalid", str(exc)) from None
    hold = body.get("hold_version", False)
    if not isinstance(hold, bool):
        raise Invalid("hold_version", "invalid", "hold_version must be true or false")
    return version, hold


def rollback_caller() -> Principal:
    """The principal of a rollback or release: a build token (which the publish scope
    otherwise lets in) may do neither."""
    if caller().build is not None:
        raise Forbidden("a build token may not roll packages back or release holds")
    return principal()


def register(app: bottle.Bottle, services: Services) -> None:
    store, rollbacks, config = services.store, services.rollbacks, services.config

    @app.get("/api/v2/repos", scope="repos:read", **DASHBOARD)
    def list_repos() -> Any:
        query = parse_list(REPOS)
        if query.order_by == "id":
            query = dataclasses.replace(query, order_by="name")
        repos = store.repos()
        page, total = page_of(query, list(repos), key=lambda name: name)
        base = base_url()
        signer = services.signer
        return list_response(query, page, total, lambda name: repo_json(
            name, repos[name], {a: store.archive_mtime(name, a) for a in repos[name]}, base,
            signer.fingerprint if signer else None))

    @app.get("/api/v2/repos/<repo>/<arch>/packages", scope="repos:read", **DASHBOARD)
    def list_packages(repo: str, arch: str) -> Any:
        query = parse_list(PACKAGES)
        found = store.listed_packages(repo, arch)
        kept, holds = rollbacks.kept_by_name(repo, arch), rollbacks.holds(repo, arch)
        wanted = query.values("names")
        if wanted is not None:
            found = [p for p in found if p.package.name in wanted]
        order = "name" if query.order_by == "id" else query.order_by

        def key(listed: ListedPackage) -> Any:
            return (getattr(listed.package, order), listed.package.name)

        page, total = page_of(query, found, key=key)
        base = base_url()
        return list_response(query, page, total, lambda p: package_json(
            p, base, kept.get(p.package.name), holds.get(p.package.name)))

    def detail(repo: str, arch: str, name: str) -> Any:
        listed = store.listed_package(repo, arch, name)
        versions = rollbacks.versions(repo, arch, name)
        return package_json(listed, base_url(), [v.package.version for v in versions[1:]],
                            rollbacks.hold(repo, arch, name), versions)

    @app.get("/api/v2/repos/<repo>/<arch>/packages/<name>", scope="repos:read", **DASHBOARD)
    def get_package(repo: str, arch: str, name: str) -> Any:
        return detail(repo, arch, name)

    @app.post("/api/v2/repos/<repo>/<arch>/packages/<name>/rollback", scope="repos:publish",
              **V2)
    def rollback(repo: str, arch: str, name: str) -> Any:
        who = rollback_caller()
        version, hold = rollback_request(json_body(config.max_api_body))
        rollbacks.rollback(repo, arch, name, version, who, hold)
        return detail(repo, arch, name)

    @app.delete("/api/v2/repos/<repo>/<arch>/packages/<name>/hold", scope="repos:publish",
                **V2)
    def release_hold(repo: str, arch: str, name: str) -> Any:
        rollbacks.release(repo, arch, name, rollback_caller())
        return no_content()
