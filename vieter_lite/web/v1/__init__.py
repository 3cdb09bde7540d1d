"""Vieter's /api/v1: routes, JSON shapes and error texts."""

from vieter_lite.web.v1.routes import register

__all__ = ["register"]
