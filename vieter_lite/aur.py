"""AUR RPC v5 client (search and info), at a configurable address (config key aur_url)."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable
from typing import Any

from vieter_lite.client import Client, ClientError

DEFAULT_URL = "https://aur.archlinux.org"
INFO_BATCH = 100  # names per info call, well under the AUR's URL length limit


class Aur:
    """The AUR's /rpc endpoint: search by name/description, info by exact names."""

    def __init__(self, url: str = DEFAULT_URL, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self._http = Client(self.url, "", timeout)

    def git_url(self, package_base: str) -> str:
        """Where the AUR keeps a package base's git repository."""
        return f"{self.url}/{urllib.parse.quote(package_base, safe='+@._-')}.git"

    def _rpc(self, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode([("v", "5")] + params)
        try:
            _, _, raw = self._http.request("GET", "/rpc?" + query)
        except ClientError as exc:
            raise ClientError(f"AUR: {exc.message}", exc.status) from None
        try:
            answer = json.loads(raw)
        except ValueError:
            raise ClientError(f"AUR: {self.url}/rpc did not answer with JSON") from None
        if not isinstance(answer, dict):
            raise ClientError(f"AUR: {self.url}/rpc answered something unexpected")
        if answer.get("type") == "error":
            raise ClientError(f"AUR: {answer.get('error') or 'error'}")
        results = answer.get("results")
        if not isinstance(results, list):
            raise ClientError(f"AUR: {self.url}/rpc answered without results")
        return [r for r in results if isinstance(r, dict) and isinstance(r.get("Name"), str)]

    def search(self, term: str) -> list[dict[str, Any]]:
        """Packages whose name or description contains `term`, sorted by name."""
        found = self._rpc([("type", "search"), ("arg", term)])
        return sorted(found, key=lambda r: r["Name"])

    def info(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        """{name: package} for the names the AUR knows (unknown names are absent)."""
        wanted = list(dict.fromkeys(names))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), INFO_BATCH):
            batch = wanted[start:start + INFO_BATCH]
            for result in self._rpc([("type", "info")] + [("arg[]", n) for n in batch]):
                found[result["Name"]] = result
        return found
