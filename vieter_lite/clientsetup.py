"""Pure: what setting up a pacman client for a repo takes: its pacman.conf stanza (added,
or updated in place), the pacman-key steps, and the same as a POSIX shell script (GET
/setup) for machines without vieter-lite. `vieter-lite client setup` runs the steps."""

from __future__ import annotations

import re
import shlex

SIGNED = "Required"
UNSIGNED = "Optional TrustAll"
SETTINGS = ("SigLevel", "Server")


# what a server URL in a pacman.conf line and a shell script may be: scheme, host (a name
# or an [IPv6] address), port, and a path of plain segments; nothing a shell or awk reads
_BASE_URL = re.compile(r"https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?"
                       r"(/[A-Za-z0-9._~%+@-]+)*", re.ASCII)


def check_base_url(url: str) -> str:
    """The server's base URL without a trailing '/'; ValueError for anything else."""
    base = url.rstrip("/")
    if not _BASE_URL.fullmatch(base):
        raise ValueError(f"'{url}' is not a server URL like http://host:8000")
    return base


def server_line(base_url: str) -> str:
    return f"Server = {base_url}/$repo/$arch"


def siglevel_line(signed: bool) -> str:
    return f"SigLevel = {SIGNED if signed else UNSIGNED}"


def _trim(line: str) -> str:
    return line.strip(" \t\r")


def _section(line: str) -> str | None:
    trimmed = _trim(line)
    if len(trimmed) >= 2 and trimmed[0] == "[" and trimmed[-1] == "]":
        return trimmed[1:-1]
    return None


def _setting(line: str) -> str | None:
    trimmed = _trim(line)
    return _trim(trimmed.split("=", 1)[0]) if "=" in trimmed else None


def with_repo(text: str, repo: str, base_url: str, signed: bool) -> str:
    """pacman.conf with the repo's section holding our SigLevel and Server lines right
    after its header (its other SigLevel and Server lines dropped, every other line
    kept), or with the section appended when there is none. AWK_PROGRAM does the same."""
    wanted = [siglevel_line(signed), server_line(base_url)]
    out: list[str] = []
    inside = found = False
    for line in text.splitlines():
        name = _section(line)
        if name is not None:
            inside = name == repo
            out.append(line)
            if inside and not found:
                out += wanted
                found = True
            continue
        if inside and _setting(line) in SETTINGS:
            continue
        out.append(line)
    if not found:
        if out and _trim(out[-1]):
            out.append("")
        out += [f"[{repo}]", *wanted]
    return "\n".join(out) + "\n"


# with_repo in awk (POSIX): repo, siglevel and server come in as -v variables
AWK_PROGRAM = r"""
function trim(x) { gsub(/^[ \t\r]+|[ \t\r]+$/, "", x); return x }
function emit(line) { print line; last = trim(line) }
{
  s = trim($0)
  if (length(s) >= 2 && substr(s, 1, 1) == "[" && substr(s, length(s), 1) == "]") {
    inside = (substr(s, 2, length(s) - 2) == repo)
    emit($0)
    if (inside && !found) { emit(siglevel); emit(server); found = 1 }
    next
  }
  if (inside && index(s, "=") > 0) {
    k = trim(substr(s, 1, index(s, "=") - 1))
    if (k == "SigLevel" || k == "Server") next
  }
  emit($0)
}
END {
  if (!found) {
    if (last != "") print ""
    print "[" repo "]"; print siglevel; print server
  }
}
"""


def pacman_key(args: list[str], conf: str, gpgdir: str | None) -> list[str]:
    """A pacman-key command on the keyring that pacman.conf (or --gpgdir) names."""
    return ["pacman-key", "--config", conf, *(["--gpgdir", gpgdir] if gpgdir else []), *args]


def shell_script(base_url: str, repo: str, fingerprint: str | None) -> str:
    """The steps as a POSIX sh script, to run as root (`curl -fsS URL/setup?repo=R | sh`).
    PACMAN_CONF and PACMAN_GPGDIR choose another pacman.conf and keyring."""
    q = shlex.quote
    lines = ["#!/bin/sh",
             f"# vieter-lite: let pacman use the repository {repo} of {base_url}",
             f"# (SigLevel = {SIGNED if fingerprint else UNSIGNED}). Run it as root:",
             f"#   curl -fsS {q(f'{base_url}/setup?repo={repo}')} | sh",
             "# PACMAN_CONF (default /etc/pacman.conf) and PACMAN_GPGDIR (default: the",
             "# GPGDir of that file) choose another pacman.conf and keyring.",
             "set -eu",
             f"url={q(base_url)}",
             f"repo={q(repo)}",
             'conf="${PACMAN_CONF:-/etc/pacman.conf}"',
             'tmp=$(mktemp -d)',
             "trap 'rm -rf \"$tmp\"' EXIT"]
    if fingerprint:
        lines += [f"fingerprint={q(fingerprint)}",
                  'set -- --config "$conf"',
                  'if [ -n "${PACMAN_GPGDIR:-}" ]; then set -- "$@" --gpgdir "$PACMAN_GPGDIR"; fi',
                  'echo "fetching the signing key $fingerprint from $url/key"',
                  'curl -fsS "$url/key" -o "$tmp/key.asc"',
                  'pacman-key "$@" --add "$tmp/key.asc"',
                  'pacman-key "$@" --lsign-key "$fingerprint"']
    lines += [f"awk -v repo=\"$repo\" -v siglevel={q(siglevel_line(bool(fingerprint)))} "
              "-v server=\"Server = $url/\\$repo/\\$arch\" "
              f"{q(AWK_PROGRAM.strip())} \"$conf\" > \"$tmp/pacman.conf\"",
              'if cmp -s "$tmp/pacman.conf" "$conf"; then',
              '  echo "$conf: [$repo] is set up already"',
              "else",
              '  cat "$tmp/pacman.conf" > "$conf"',
              '  echo "$conf: [$repo] set up; pacman -Sy reads it"',
              "fi", ""]
    return "\n".join(lines)
