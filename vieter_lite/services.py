"""The server's domain services, built once from the config (by the supervisor or a test).
Both HTTP APIs work only through these."""

from __future__ import annotations

import socket
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from vieter_lite import diskspace, triggers
from vieter_lite.agents import Agents
from vieter_lite.buildlogs import BuildLogService
from vieter_lite.config import ServerConfig
from vieter_lite.db import Database
from vieter_lite.deliveries import Deliveries
from vieter_lite.dependencies import Dependencies
from vieter_lite.errors import NO_SPACE, StartupError, full_disk
from vieter_lite.gpg import GpgError
from vieter_lite.jobs import Jobs
from vieter_lite.logs import BuildLogs
from vieter_lite.notify import SmtpSettings
from vieter_lite.queue import BuildQueue
from vieter_lite.repo import signing
from vieter_lite.repo.store import RepoStore
from vieter_lite.rollback import Rollbacks
from vieter_lite.scheduler import Scheduler
from vieter_lite.targets import Targets
from vieter_lite.tokens import Tokens

# free bytes under which a data dir that sqlite cannot open counts as full
FULL_BELOW = 1 << 20


@dataclass
class Services:
    """What the routes work with."""

    config: ServerConfig
    db: Database
    store: RepoStore
    logs: BuildLogs
    queue: BuildQueue
    scheduler: Scheduler
    targets: Targets
    tokens: Tokens
    build_logs: BuildLogService
    jobs: Jobs
    deliveries: Deliveries
    rollbacks: Rollbacks
    agents: Agents
    dependencies: Dependencies
    signer: signing.Signer | None = None


def build_services(config: ServerConfig) -> Services:
    """Open the data dir: sqlite, the repo store; finish what a crash left behind."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    db = open_database(config.data_dir)
    store = RepoStore(db, config.data_dir, config.pkg_dir, config.default_arch,
                      max_upload_size=config.max_upload_size,
                      keep_versions=config.keep_versions)
    try:
        store.signer = start_signer(config)
    except BaseException:
        db.close()
        raise
    store.recover()
    logs = BuildLogs(config.data_dir / "logs")
    logs.remove_temp_files()
    queue = BuildQueue(db, logs, config.base_image, config.default_build_timeout,
                       max_wait=config.max_poll_wait)
    scheduler = Scheduler(db, queue, logs, config.global_schedule, config.max_log_age,
                          config.log_removal_schedule)
    targets = Targets(db, scheduler, config.default_arch)
    dependencies = Dependencies(db, queue).attach()
    targets.listen(dependencies.refresh)
    deliveries = make_deliveries(db, config)
    # every end of a build passes through a change of its log's state: look at once
    logs.listen(deliveries.wake)
    return Services(config=config, db=db, store=store, logs=logs, queue=queue,
                    scheduler=scheduler, targets=targets, tokens=Tokens(db, config.api_key),
                    build_logs=BuildLogService(db, logs, config.max_log_followers),
                    jobs=Jobs(db, queue, targets, config.default_arch),
                    deliveries=deliveries, rollbacks=Rollbacks(db, store), agents=Agents(db),
                    signer=store.signer, dependencies=dependencies)


def open_database(data_dir: Path) -> Database:
    """The sqlite database; a full data disk (sqlite then cannot even map its WAL index:
    "disk I/O error") stops start-up with one line saying so."""
    path = data_dir / "vieter.sqlite"
    try:
        return Database(path)
    except sqlite3.Error as exc:
        full = full_disk(exc) is not None or diskspace.free_bytes(data_dir) < FULL_BELOW
        if not full:
            raise
        raise StartupError(f"cannot open {path}: {NO_SPACE} ({exc}); free some space "
                           "and start again") from None


def start_signer(config: ServerConfig) -> signing.Signer | None:
    """The signing key (sign = true): from <data_dir>/gnupg, sign_key_file or new."""
    if not config.sign:
        return None
    uid = signing.key_uid(config.sign_key_name, config.sign_key_email, socket.gethostname())
    try:
        return signing.Signer.start(config.data_dir / signing.HOME, uid, config.sign_key_file)
    except (GpgError, OSError) as exc:
        if full_disk(exc) is not None:
            raise StartupError(f"cannot sign (sign = true): {NO_SPACE} ({exc}); free some "
                               "space and start again") from None
        if isinstance(exc, GpgError):
            raise StartupError(f"cannot sign (sign = true): {exc}") from None
        raise


def make_deliveries(db: Database, config: ServerConfig) -> Deliveries:
    """The notifications service, from the public_url, smtp_* and trigger_* keys (its
    webhook renderer is given by whoever runs its worker: the body is /api/v2's JSON)."""
    hostname = socket.gethostname()
    smtp = SmtpSettings(host=config.smtp_host, port=config.smtp_port, user=config.smtp_user,
                        password=config.smtp_password,
                        sender=config.smtp_from or f"vieter-lite@{hostname or 'localhost'}",
                        starttls=config.smtp_starttls)
    return Deliveries(db, triggers.public_base(config.public_url, config.host, config.port,
                                               hostname),
                      smtp, delays=triggers.parse_delays(config.trigger_retry_delays))
