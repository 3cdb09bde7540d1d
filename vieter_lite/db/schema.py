"""The database schema: migrations applied in order, keyed on PRAGMA user_version."""

MIGRATIONS: tuple[str, ...] = (
    # 1: repositories
    """
    CREATE TABLE arch_repos (
        repo TEXT NOT NULL,
        arch TEXT NOT NULL,
        generation INTEGER NOT NULL DEFAULT 1,
        written INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (repo, arch)
    );
    CREATE TABLE packages (
        repo TEXT NOT NULL,
        arch TEXT NOT NULL,
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        pkg_arch TEXT NOT NULL,
        filename TEXT NOT NULL,
        published_at INTEGER NOT NULL,
        desc TEXT NOT NULL,
        db_member BLOB NOT NULL,
        files_member BLOB NOT NULL,
        bucket INTEGER NOT NULL,
        PRIMARY KEY (repo, arch, name),
        FOREIGN KEY (repo, arch) REFERENCES arch_repos (repo, arch) ON DELETE CASCADE
    );
    CREATE INDEX packages_by_file ON packages (repo, arch, filename);
    CREATE INDEX packages_by_bucket ON packages (repo, arch, bucket);
    CREATE TABLE buckets (
        repo TEXT NOT NULL,
        arch TEXT NOT NULL,
        bucket INTEGER NOT NULL,
        generation INTEGER NOT NULL,
        PRIMARY KEY (repo, arch, bucket),
        FOREIGN KEY (repo, arch) REFERENCES arch_repos (repo, arch) ON DELETE CASCADE
    );
    """,
    # 2: targets and builds (a v1 build log is a finished build; a v1 job a queued one)
    """
    CREATE TABLE targets (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        branch TEXT NOT NULL DEFAULT '',
        path TEXT NOT NULL DEFAULT '',
        repo TEXT NOT NULL,
        schedule TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE target_archs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        target_id INTEGER NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
        value TEXT NOT NULL,
        next_run INTEGER,
        UNIQUE (target_id, value)
    );
    CREATE INDEX target_archs_due ON target_archs (next_run);
    CREATE TABLE builds (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        target_id INTEGER NOT NULL,
        arch TEXT NOT NULL,
        status TEXT NOT NULL,
        force INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        repo TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL DEFAULT '',
        url TEXT NOT NULL DEFAULT '',
        branch TEXT NOT NULL DEFAULT '',
        path TEXT NOT NULL DEFAULT '',
        base_image TEXT NOT NULL DEFAULT '',
        timeout INTEGER NOT NULL DEFAULT 0,
        started_at INTEGER,
        ended_at INTEGER,
        exit_code INTEGER,
        runner TEXT NOT NULL DEFAULT '',
        lease_expires INTEGER,
        expiries INTEGER NOT NULL DEFAULT 0,
        token_hash TEXT,
        log_done INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX builds_by_target ON builds (target_id, id);
    CREATE INDEX builds_by_status ON builds (status, arch, id);
    CREATE UNIQUE INDEX builds_by_token ON builds (token_hash) WHERE token_hash IS NOT NULL;
    CREATE INDEX builds_by_start ON builds (started_at);
    CREATE TABLE tasks (
        build_id INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        PRIMARY KEY (build_id, name)
    );
    """,
    # 3: who owns each package name of a repo (target_id NULL: the api_key), the pkgbase a
    # build has published (fixed by its first publish), and how often a build was handed back
    """
    CREATE TABLE package_owners (
        repo TEXT NOT NULL,
        name TEXT NOT NULL,
        target_id INTEGER,
        since INTEGER NOT NULL,
        PRIMARY KEY (repo, name)
    );
    ALTER TABLE builds ADD COLUMN pkgbase TEXT NOT NULL DEFAULT '';
    ALTER TABLE builds ADD COLUMN releases INTEGER NOT NULL DEFAULT 0;
    """,
    # 4: named API tokens. Only the sha256 hex of a secret is kept. Scopes, repos and archs
    # are space-separated names (empty repos/archs: all). A revoked token keeps its row
    # (revoked_at set) and frees its name for a new token.
    """
    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        user TEXT NOT NULL,
        scopes TEXT NOT NULL,
        repos TEXT NOT NULL DEFAULT '',
        archs TEXT NOT NULL DEFAULT '',
        secret_hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        last_used_at INTEGER,
        revoked_at INTEGER
    );
    CREATE UNIQUE INDEX tokens_by_name ON tokens (name) WHERE revoked_at IS NULL;
    """,
    # 5: labels of builds and targets (metadata.labels, one value per key), build tags, an
    # index behind every filter and order of the /api/v2 lists (db/lists.py); a build's
    # updated_at is its latest lifecycle time, COALESCE(ended_at, started_at, created_at)
    """
    CREATE TABLE build_labels (
        build_id INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (build_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX build_labels_by_value ON build_labels (key, value);
    CREATE TABLE target_labels (
        target_id INTEGER NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (target_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX target_labels_by_value ON target_labels (key, value);
    CREATE TABLE build_tags (
        build_id INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        position INTEGER NOT NULL,
        PRIMARY KEY (build_id, tag)
    ) WITHOUT ROWID;
    CREATE INDEX build_tags_by_tag ON build_tags (tag);
    CREATE INDEX builds_by_state ON builds (status);
    CREATE INDEX builds_by_created ON builds (created_at);
    CREATE INDEX builds_by_end ON builds (ended_at);
    CREATE INDEX builds_by_update ON builds (COALESCE(ended_at, started_at, created_at));
    CREATE INDEX builds_by_arch ON builds (arch);
    CREATE INDEX builds_by_repo ON builds (repo);
    CREATE INDEX builds_by_runner ON builds (runner);
    CREATE INDEX targets_by_repo ON targets (repo);
    CREATE INDEX target_archs_by_value ON target_archs (value);
    """,
    # 6: the packages each build published (name, version, pkg arch, file), for /api/v2; a
    # target's review rule and its triggers (a JSON list; targets made before: none, never)
    """
    ALTER TABLE targets ADD COLUMN review TEXT NOT NULL DEFAULT 'never';
    ALTER TABLE targets ADD COLUMN triggers TEXT NOT NULL DEFAULT '[]';
    CREATE TABLE build_packages (
        build_id INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        arch TEXT NOT NULL,
        filename TEXT NOT NULL,
        PRIMARY KEY (build_id, name, version)
    ) WITHOUT ROWID;
    """,
    # 7: the build log as a resource of its own (/api/v2's log lifecycle): a stable uuid
    # (given on first use), when its text or status last changed, and where each task's part
    # of it begins (the log's size when the task was reported running)
    """
    ALTER TABLE builds ADD COLUMN log_uuid TEXT;
    ALTER TABLE builds ADD COLUMN log_updated_at INTEGER;
    CREATE UNIQUE INDEX builds_by_log_uuid ON builds (log_uuid) WHERE log_uuid IS NOT NULL;
    ALTER TABLE tasks ADD COLUMN log_start INTEGER;
    """,
    # 8: builds.sr.ht's jobs. A build submitted with a manifest has no target (target_id
    # 0) and keeps the manifest as submitted; every build has an owner (the submitting
    # token's user, '' for the api_key and the scheduler), a note, access lists and
    # triggers (JSON lists), the environment exported to makepkg (a JSON object), the review
    # rule it runs under and, while it is held, why and the diff. A build's source (the
    # files of its PKGBUILD's directory as a tar) is kept per build: an inline PKGBUILD, or
    # the fetched source a review compares with the last successful build's. Package names
    # a target-less build published belong to its owner (package_owners.user).
    """
    ALTER TABLE builds ADD COLUMN owner TEXT NOT NULL DEFAULT '';
    ALTER TABLE builds ADD COLUMN note TEXT NOT NULL DEFAULT '';
    ALTER TABLE builds ADD COLUMN access_read TEXT NOT NULL DEFAULT '["*"]';
    ALTER TABLE builds ADD COLUMN access_write TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE builds ADD COLUMN triggers TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE builds ADD COLUMN environment TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE builds ADD COLUMN review TEXT NOT NULL DEFAULT 'never';
    ALTER TABLE builds ADD COLUMN hold_reason TEXT;
    ALTER TABLE builds ADD COLUMN hold_diff TEXT;
    CREATE INDEX builds_by_owner ON builds (owner);
    CREATE TABLE build_manifests (
        build_id INTEGER PRIMARY KEY REFERENCES builds (id) ON DELETE CASCADE,
        manifest TEXT NOT NULL
    );
    CREATE TABLE build_sources (
        build_id INTEGER PRIMARY KEY REFERENCES builds (id) ON DELETE CASCADE,
        bundle BLOB NOT NULL,
        sha256 TEXT NOT NULL,
        approved INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    );
    ALTER TABLE package_owners ADD COLUMN user TEXT;
    """,
    # 9: notifications of ended builds (their triggers). A build that ended and whose
    # triggers were not yet turned into deliveries has notified = 0 (the few such builds,
    # with the open ones, are what the partial index holds); turning them into deliveries
    # and setting notified happen in one transaction, so an end before a crash is still
    # notified after it. Builds that ended before this migration count as notified. A
    # delivery keeps what it sends (the webhook's body, the email's message) so every
    # attempt sends the same; each attempt is kept with the answer or the error.
    """
    ALTER TABLE builds ADD COLUMN notified INTEGER NOT NULL DEFAULT 0;
    UPDATE builds SET notified = 1 WHERE status IN ('success', 'failed', 'timeout', 'cancelled');
    CREATE INDEX builds_to_notify ON builds (id) WHERE notified = 0;
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        build_id INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
        uuid TEXT NOT NULL UNIQUE,
        action TEXT NOT NULL,
        destination TEXT NOT NULL,
        condition TEXT NOT NULL,
        spec TEXT NOT NULL,
        payload BLOB NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX deliveries_by_build ON deliveries (build_id);
    CREATE INDEX deliveries_due ON deliveries (next_at) WHERE status = 'pending';
    CREATE TABLE delivery_attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
        build_id INTEGER NOT NULL,
        at INTEGER NOT NULL,
        response_status INTEGER,
        response TEXT NOT NULL DEFAULT '',
        error TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX delivery_attempts_by_build ON delivery_attempts (build_id, id);
    CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_id);
    """,
    # 10: replaced versions kept on disk (keep_versions), newest-replaced last by id; each
    # is out of the db archives but its file stays, next to the current one. A rollback can
    # hold a name of an arch-repo at a version: no newer version is published until the
    # hold is released. Both go with their arch-repo.
    """
    CREATE TABLE kept_packages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        repo TEXT NOT NULL,
        arch TEXT NOT NULL,
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        pkg_arch TEXT NOT NULL,
        filename TEXT NOT NULL,
        published_at INTEGER NOT NULL,
        desc TEXT NOT NULL,
        kept_at INTEGER NOT NULL,
        UNIQUE (repo, arch, name, version),
        FOREIGN KEY (repo, arch) REFERENCES arch_repos (repo, arch) ON DELETE CASCADE
    );
    CREATE INDEX kept_packages_by_file ON kept_packages (repo, arch, filename);
    CREATE TABLE package_holds (
        repo TEXT NOT NULL,
        arch TEXT NOT NULL,
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        since INTEGER NOT NULL,
        held_by TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (repo, arch, name),
        FOREIGN KEY (repo, arch) REFERENCES arch_repos (repo, arch) ON DELETE CASCADE
    ) WITHOUT ROWID;
    """,
    # 11: registered build agents (each with its own token: token_id NULL for the api_key),
    # their archs and labels (key=value, the labels builds may ask for), when they were last
    # seen (every poll) and how often they poll; the labels a target's builds need in an agent
    # (a JSON object, copied into each build as it is made), and which agent claimed a build
    """
    CREATE TABLE agents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        token_id INTEGER,
        version TEXT NOT NULL DEFAULT '',
        slots INTEGER NOT NULL DEFAULT 1,
        poll_period INTEGER NOT NULL,
        registered_at INTEGER NOT NULL,
        last_seen_at INTEGER NOT NULL
    );
    CREATE INDEX agents_by_seen ON agents (last_seen_at);
    CREATE INDEX agents_by_registered ON agents (registered_at);
    CREATE TABLE agent_archs (
        agent_id INTEGER NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
        value TEXT NOT NULL,
        PRIMARY KEY (agent_id, value)
    ) WITHOUT ROWID;
    CREATE INDEX agent_archs_by_value ON agent_archs (value);
    CREATE TABLE agent_labels (
        agent_id INTEGER NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (agent_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX agent_labels_by_value ON agent_labels (key, value);
    ALTER TABLE targets ADD COLUMN agent_labels TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE builds ADD COLUMN agent_labels TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE builds ADD COLUMN agent_id INTEGER;
    CREATE INDEX builds_by_agent ON builds (agent_id) WHERE status = 'running';
    """,
    # 12: builds in dependency order. What `makepkg --printsrcinfo` said of each target's
    # PKGBUILD per arch (the latest build that read it), the edges of each repo's
    # dependency graph (depgraph.py: needs, cycle, unread; `via` the dependency that made
    # the edge), kept in step with the .SRCINFOs and the targets; and whether a target is
    # built again when a dependency publishes a new version
    """
    CREATE TABLE target_srcinfo (
        target_id INTEGER NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
        arch TEXT NOT NULL,
        build_id INTEGER NOT NULL,
        pkgbase TEXT NOT NULL,
        srcinfo TEXT NOT NULL,
        read_at INTEGER NOT NULL,
        PRIMARY KEY (target_id, arch)
    ) WITHOUT ROWID;
    CREATE TABLE target_deps (
        target_id INTEGER NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
        arch TEXT NOT NULL,
        dep_id INTEGER NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        via TEXT NOT NULL,
        PRIMARY KEY (target_id, arch, dep_id)
    ) WITHOUT ROWID;
    CREATE INDEX target_deps_by_dep ON target_deps (dep_id, arch);
    ALTER TABLE targets ADD COLUMN rebuild_on_dependency INTEGER NOT NULL DEFAULT 0;
    """,
    # 13: the dashboard. Each target's builds per arch by end time, the successful ones
    # and the failed or timed-out ones (the builds list's since_last_success: per target
    # and arch the last success, then the failures after it); and the builds by creation
    # time, of all targets or of one, with every column build statistics read (a window
    # is read from the index alone, the readers' condition included)
    """
    CREATE INDEX builds_last_success ON builds (target_id, arch, ended_at)
        WHERE status = 'success';
    CREATE INDEX builds_failed_by_target ON builds (target_id, arch, ended_at)
        WHERE status IN ('failed', 'timeout');
    CREATE INDEX builds_stats ON builds
        (created_at, started_at, ended_at, status, exit_code, owner, access_read);
    CREATE INDEX builds_stats_by_target ON builds
        (target_id, created_at, started_at, ended_at, status, exit_code, owner, access_read);
    """,
)
