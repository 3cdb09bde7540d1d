"""/api/v2/targets: targets with JSON bodies, labels, triggers, a review rule and their
dependencies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bottle

from vieter_lite import lists
from vieter_lite.errors import Invalid
from vieter_lite.models import Target
from vieter_lite.targets import TargetSpec
from vieter_lite.web.http import base_url, json_body, path_id
from vieter_lite.web.v2.common import (
    DASHBOARD,
    V2,
    created,
    for_caller,
    list_response,
    no_content,
    parse_list,
)
from vieter_lite.web.v2.shapes import target_json

if TYPE_CHECKING:
    from vieter_lite.services import Services

TEXT = ("kind", "url", "branch", "path", "repo", "schedule", "review")
FIELDS = (*TEXT, "arch", "metadata", "triggers", "agent_labels", "rebuild_on_dependency")
# targets made through /api/v2 hold changed PKGBUILDs for review unless they say otherwise
DEFAULT_REVIEW = "changes"


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or "\0" in value:
        raise Invalid(name, "invalid", "a string without NUL characters")
    return value


def spec_of(body: dict[str, Any], creating: bool) -> TargetSpec:
    """A TargetSpec from a JSON body; types are checked here, rules in the domain."""
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise Invalid(unknown[0], "unknown", f"unknown field; the fields are {', '.join(FIELDS)}")
    archs = body.get("arch")
    if archs is not None:
        if isinstance(archs, str):
            archs = [archs]
        if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
            raise Invalid("arch", "invalid", "a list of architecture names")
        if not archs:
            raise Invalid("arch", "empty", "a target needs at least one arch")
    metadata = body.get("metadata")
    labels = None
    if metadata is not None:
        if not isinstance(metadata, dict) or set(metadata) - {"labels", "annotations"}:
            raise Invalid("metadata", "invalid", "an object with labels")
        labels = metadata.get("labels")
        if labels is not None and not isinstance(labels, dict):
            raise Invalid("metadata.labels", "invalid", "an object of strings")
    triggers = body.get("triggers")
    if triggers is not None and not isinstance(triggers, list):
        raise Invalid("triggers", "invalid", "a list of triggers")
    rebuild = body.get("rebuild_on_dependency")
    if rebuild is not None and not isinstance(rebuild, bool):
        raise Invalid("rebuild_on_dependency", "invalid", "true or false")
    review = _text(body, "review")
    if creating and review is None:
        review = DEFAULT_REVIEW
    return TargetSpec(kind=_text(body, "kind"), url=_text(body, "url"),
                      branch=_text(body, "branch"), path=_text(body, "path"),
                      repo=_text(body, "repo"), schedule=_text(body, "schedule"),
                      archs=None if archs is None else tuple(archs), review=review,
                      labels=labels, triggers=triggers, agent_labels=body.get("agent_labels"),
                      rebuild_on_dependency=rebuild)


def register(app: bottle.Bottle, services: Services) -> None:
    targets, config = services.targets, services.config

    def shape(target: Target) -> dict[str, Any]:
        schedule, is_global, _ = targets.plan(target.id)
        return for_caller(target_json(target, base_url(), targets.labels(target.id), schedule,
                                      is_global, targets.last_build(target.id),
                                      services.dependencies.of_target(target.id)))

    @app.get("/api/v2/targets", scope="targets:read", **DASHBOARD)
    def list_targets() -> Any:
        query = parse_list(lists.TARGETS)
        found, total = targets.page(query)
        return list_response(query, found, total, shape)

    @app.post("/api/v2/targets", scope="targets:write", **V2)
    def add_target() -> Any:
        target_id = targets.add(spec_of(json_body(config.max_api_body), creating=True))
        return created(shape(targets.get(target_id)),
                       f"{base_url()}/api/v2/targets/{target_id}")

    @app.get("/api/v2/targets/<target_id>", scope="targets:read", **DASHBOARD)
    def get_target(target_id: str) -> Any:
        return shape(targets.get(path_id(target_id)))

    @app.route("/api/v2/targets/<target_id>", method="PATCH", scope="targets:write", **V2)
    def edit_target(target_id: str) -> Any:
        number = path_id(target_id)
        return shape(targets.edit(number, spec_of(json_body(config.max_api_body),
                                                  creating=False)))

    @app.delete("/api/v2/targets/<target_id>", scope="targets:write", **V2)
    def remove_target(target_id: str) -> Any:
        targets.remove(path_id(target_id))
        return no_content()
