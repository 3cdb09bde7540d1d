"""Pure: the desc and files entries of a pacman repo db, as repo-add 6.1+ writes them.

One field table drives both rendering and parsing.
"""

from __future__ import annotations

from vieter_lite.models import Package, PkgInfo

# (desc key, attribute of Package/PkgInfo, multi-valued), in repo-add's order.
DESC_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("FILENAME", "filename", False),
    ("NAME", "name", False),
    ("BASE", "base", False),
    ("VERSION", "version", False),
    ("DESC", "desc", False),
    ("GROUPS", "groups", True),
    ("CSIZE", "csize", False),
    ("ISIZE", "isize", False),
    ("SHA256SUM", "sha256", False),
    ("PGPSIG", "pgpsig", False),
    ("URL", "url", False),
    ("LICENSE", "licenses", True),
    ("ARCH", "arch", False),
    ("BUILDDATE", "builddate", False),
    ("PACKAGER", "packager", False),
    ("REPLACES", "replaces", True),
    ("CONFLICTS", "conflicts", True),
    ("PROVIDES", "provides", True),
    ("DEPENDS", "depends", True),
    ("OPTDEPENDS", "optdepends", True),
    ("MAKEDEPENDS", "makedepends", True),
    ("CHECKDEPENDS", "checkdepends", True),
)
_PACKAGE_ATTRS = {"filename", "csize", "sha256", "pgpsig"}


def _values(pkg: Package, attr: str, multi: bool) -> tuple[str, ...]:
    value = getattr(pkg if attr in _PACKAGE_ATTRS else pkg.info, attr)
    return tuple(value) if multi else (str(value),)


def render_desc(pkg: Package) -> str:
    """The desc text; a key is left out when its first value is empty (format_entry)."""
    out = []
    for key, attr, multi in DESC_FIELDS:
        values = _values(pkg, attr, multi)
        if values and values[0]:
            out.append(f"%{key}%\n" + "".join(v + "\n" for v in values) + "\n")
    return "".join(out)


def render_files(files: tuple[str, ...] | list[str]) -> str:
    """The files text: %FILES% then one path a line, no trailing blank line."""
    return "%FILES%\n" + "".join(f + "\n" for f in files)


def parse_desc(text: str) -> dict[str, list[str]]:
    """desc (or files) text -> {KEY: [values]}; the inverse of the renderers."""
    result: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.split("\n"):
        if current is None and len(line) > 2 and line.startswith("%") and line.endswith("%"):
            current = result.setdefault(line[1:-1], [])
        elif line == "":
            current = None
        elif current is not None:
            current.append(line)
    return result


def package_from_desc(text: str, files_text: str = "") -> Package:
    """Rebuild a Package record from its desc (and files) text."""
    fields = parse_desc(text)
    info_kwargs: dict[str, object] = {}
    pkg_kwargs: dict[str, object] = {}
    for key, attr, multi in DESC_FIELDS:
        values = fields.get(key, [])
        value: object = tuple(values) if multi else (values[0] if values else "")
        if attr in _PACKAGE_ATTRS:
            pkg_kwargs[attr] = value
        else:
            info_kwargs[attr] = value
    filename = str(pkg_kwargs.pop("filename"))
    info = PkgInfo(**info_kwargs)  # type: ignore[arg-type]
    stem = f"{info.name}-{info.version}-{info.arch}"
    extension = filename[len(stem):] if filename.startswith(stem) else ""
    files = tuple(parse_desc(files_text).get("FILES", [])) if files_text else ()
    return Package(info=info, extension=extension, csize=int(str(pkg_kwargs["csize"]) or 0),
                   sha256=str(pkg_kwargs["sha256"]), pgpsig=str(pkg_kwargs["pgpsig"]),
                   files=files)

