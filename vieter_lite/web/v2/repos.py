"""/api/v2/repos: repos with their arch-repos, and their packages (Cloud Foundry lists)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import bottle

from vieter_lite import lists
from vieter_lite.repo.store import ListedPackage
from vieter_lite.web.http import base_url
from vieter_lite.web.v2.common import V2, list_response, page_of, parse_list
from vieter_lite.web.v2.shapes import package_json, repo_json

if TYPE_CHECKING:
    from vieter_lite.services import Services

REPOS = lists.ListSpec(order_fields=("name",))
PACKAGES = lists.ListSpec(order_fields=("name", "published_at"),
                          filters=(lists.Filter("names"),))


def register(app: bottle.Bottle, services: Services) -> None:
    store = services.store

    @app.get("/api/v2/repos", scope="repos:read", **V2)
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

    @app.get("/api/v2/repos/<repo>/<arch>/packages", scope="repos:read", **V2)
    def list_packages(repo: str, arch: str) -> Any:
        query = parse_list(PACKAGES)
        found = store.listed_packages(repo, arch)
        wanted = query.values("names")
        if wanted is not None:
            found = [p for p in found if p.package.name in wanted]
        order = "name" if query.order_by == "id" else query.order_by

        def key(listed: ListedPackage) -> Any:
            return (getattr(listed.package, order), listed.package.name)

        page, total = page_of(query, found, key=key)
        base = base_url()
        return list_response(query, page, total, lambda p: package_json(p, base))

    @app.get("/api/v2/repos/<repo>/<arch>/packages/<name>", scope="repos:read", **V2)
    def get_package(repo: str, arch: str, name: str) -> Any:
        return package_json(store.listed_package(repo, arch, name), base_url(), fields=True)
