"""The migration runner: statements split the way sqlite reads them (triggers included), and a
database made by the first released schema upgraded in place with its rows kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from vieter_lite.db import Database
from vieter_lite.db.base import Base, statements
from vieter_lite.db.schema import MIGRATIONS

FIRST_RELEASE = Path(__file__).parent / "data" / "schema-first-release.sql"
FIRST_RELEASE_VERSION = 2

TRIGGER_MIGRATIONS = (
    """
    CREATE TABLE items (name TEXT PRIMARY KEY, note TEXT NOT NULL DEFAULT '');
    CREATE TABLE removed (name TEXT NOT NULL, note TEXT NOT NULL);
    -- a trigger body holds statements of its own; each ends with ';'
    CREATE TRIGGER items_removed AFTER DELETE ON items BEGIN
        INSERT INTO removed (name, note) VALUES (OLD.name, 'gone; for good');
        DELETE FROM items WHERE name = OLD.name || ';';
    END;
    INSERT INTO items (name) VALUES ('a;b');
    """,
)


class TriggerDatabase(Base):
    migrations = TRIGGER_MIGRATIONS


def test_statements_keep_trigger_bodies_and_strings_whole():
    found = [s.strip() for s in statements(TRIGGER_MIGRATIONS[0])]
    assert len(found) == 4, found
    assert found[2].startswith("-- a trigger body") and found[2].endswith("END;")
    assert found[3] == "INSERT INTO items (name) VALUES ('a;b');"


def test_statements_refuse_an_unfinished_statement():
    with pytest.raises(ValueError, match="incomplete SQL statement"):
        list(statements("CREATE TABLE a (x); CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1;"))


def test_a_migration_with_a_trigger_runs_and_the_trigger_works(tmp_path):
    db = TriggerDatabase(tmp_path / "t.sqlite")
    try:
        assert db._one("PRAGMA user_version")[0] == 1
        assert [r["name"] for r in db._all("SELECT name FROM items")] == ["a;b"]
        db._run("DELETE FROM items WHERE name = 'a;b'")
        assert [tuple(r) for r in db._all("SELECT name, note FROM removed")] == \
            [("a;b", "gone; for good")]
    finally:
        db.close()


def test_released_migrations_are_never_edited():
    """A database made by a release has run its migrations already: changing one would
    leave those databases different from new ones. Add a migration instead."""
    text = FIRST_RELEASE.read_text()
    body = text.split("\n", 1)[1].rsplit(f"PRAGMA user_version = {FIRST_RELEASE_VERSION};", 1)[0]
    assert "".join(MIGRATIONS[:FIRST_RELEASE_VERSION]) == body


def _first_release_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(FIRST_RELEASE.read_text())
    conn.executescript("""
        INSERT INTO arch_repos (repo, arch, generation, written) VALUES ('core', 'x86_64', 3, 3);
        INSERT INTO packages (repo, arch, name, version, pkg_arch, filename, published_at, desc,
                              db_member, files_member, bucket)
            VALUES ('core', 'x86_64', 'hello', '1.0-1', 'x86_64',
                    'hello-1.0-1-x86_64.pkg.tar.zst', 1700000000, '%NAME%\nhello\n',
                    x'00', x'01', 7);
        INSERT INTO buckets (repo, arch, bucket, generation) VALUES ('core', 'x86_64', 7, 2);
        INSERT INTO targets (kind, url, repo, schedule) VALUES ('git', 'https://e.org/h.git',
                                                               'core', '0 3');
        INSERT INTO target_archs (target_id, value, next_run) VALUES (1, 'x86_64', 1700003600);
        INSERT INTO builds (target_id, arch, status, created_at, repo, kind, url, started_at,
                            ended_at, exit_code, log_done)
            VALUES (1, 'x86_64', 'success', 1700000000, 'core', 'git', 'https://e.org/h.git',
                    1700000001, 1700000100, 0, 1);
        INSERT INTO builds (target_id, arch, status, created_at, repo, kind, url, timeout)
            VALUES (1, 'x86_64', 'queued', 1700000200, 'core', 'git', 'https://e.org/h.git', 60);
        INSERT INTO tasks (build_id, name, status) VALUES (2, 'setup', 'pending');
    """)
    conn.commit()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == FIRST_RELEASE_VERSION
    conn.close()


def test_a_first_release_database_is_upgraded_and_keeps_its_rows(tmp_path):
    path = tmp_path / "vieter.sqlite"
    _first_release_db(path)
    db = Database(path)
    try:
        assert db._one("PRAGMA user_version")[0] == len(MIGRATIONS)
        pkg = db.package("core", "x86_64", "hello")
        assert pkg is not None and (pkg.version, pkg.filename, pkg.published_at) == \
            ("1.0-1", "hello-1.0-1-x86_64.pkg.tar.zst", 1700000000)
        assert db.written_generation("core", "x86_64") == 3
        target = db.target(1)
        assert target is not None and target.schedule == "0 3"
        assert [(a.value, a.next_run) for a in target.arch] == [("x86_64", 1700003600)]
        done, queued = db.build(1), db.build(2)
        assert done is not None and (done.status, done.exit_code, done.started_at) == \
            ("success", 0, 1700000001)
        assert queued is not None and queued.status == "queued" and queued.timeout == 60
        assert queued.tasks == (("setup", "pending"),)
        # the new columns and tables start empty: names published before are nobody's yet
        assert db._one("SELECT pkgbase, releases FROM builds WHERE id = 2")[:] == ("", 0)
        assert db.package_owner("core", "hello") is None
    finally:
        db.close()
    # opening it again runs nothing twice
    again = Database(path)
    try:
        assert again._one("PRAGMA user_version")[0] == len(MIGRATIONS)
        assert again.package("core", "x86_64", "hello") is not None
    finally:
        again.close()
