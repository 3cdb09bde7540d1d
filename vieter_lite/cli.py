"""The command line.

vieter-lite server | agent | schedule | backup | restore | check | targets | logs | repos |
aur | --version
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path
from typing import NoReturn

from vieter_lite import __version__, config, config_text, cron
from vieter_lite import commands as client_commands
from vieter_lite.client import ClientError
from vieter_lite.errors import ConfigError, StartupError

LEVELS = {"FATAL": logging.CRITICAL, "ERROR": logging.ERROR, "WARN": logging.WARNING,
          "WARNING": logging.WARNING, "INFO": logging.INFO, "DEBUG": logging.DEBUG}


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=LEVELS.get(level, logging.WARNING), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# The settings `server` also takes as flags (they win over the file and the environment).
SERVER_FLAGS = ("host", "port", "data_dir")


def cmd_server(args: argparse.Namespace) -> int:
    from vieter_lite.supervisor import Supervisor

    for line in config_text.unknown_env_warnings(os.environ):
        print(f"vieter-lite: {line}", file=sys.stderr)
    overrides = {name: getattr(args, name) for name in SERVER_FLAGS
                 if getattr(args, name) is not None}
    cfg = config.load_server(getattr(args, "config_file", None), overrides=overrides)
    _setup_logging(cfg.log_level)
    supervisor = Supervisor(cfg)
    supervisor.install_signal_handlers()
    return supervisor.run()


def cmd_agent(args: argparse.Namespace) -> int:
    from vieter_lite.agent import main as agent_main

    if args.check:
        from vieter_lite.agent.check import check

        problems = check(getattr(args, "config_file", None), os.environ, args.image)
        for line in problems:
            print(line)
        if not problems:
            print("the agent can build here: subordinate ids, storage, runtime, network and "
                  "a test container are fine")
        return 1 if problems else 0
    settings, values = agent_main.load_settings(getattr(args, "config_file", None))
    _setup_logging(str(values["log_level"]).upper())
    return agent_main.run(settings, values)


def _data_config(args: argparse.Namespace) -> config.ServerConfig:
    """The server's config (file, VIETER_*, --data-dir) for the data dir commands."""
    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    return config.load_server(getattr(args, "config_file", None), overrides=overrides)


def cmd_backup(args: argparse.Namespace) -> int:
    from vieter_lite import backup

    cfg = _data_config(args)
    _setup_logging(cfg.log_level)
    try:
        result = backup.backup(cfg, args.dest, logs=not args.no_logs)
    except backup.BackupError as exc:
        print(f"vieter-lite: {exc}", file=sys.stderr)
        return 1
    print(f"backed up {result.packages} packages in {result.files} files "
          f"({result.bytes} bytes; {result.linked} hard-linked, {result.copied} copied; "
          f"{result.attempts} db snapshot{'s' if result.attempts > 1 else ''}) "
          f"to {result.dest}")
    for rel in result.missing:
        print(f"missing {rel}: the db names it but it was gone or changed "
              f"{backup.ATTEMPTS} times", file=sys.stderr)
    return 1 if result.missing else 0


def cmd_restore(args: argparse.Namespace) -> int:
    from vieter_lite import backup

    cfg = _data_config(args)
    try:
        count = backup.restore(cfg, args.src, force=args.force)
    except backup.BackupError as exc:
        print(f"vieter-lite: {exc}", file=sys.stderr)
        return 1
    print(f"restored {count} files into {cfg.data_dir} (packages in {cfg.pkg_dir}); the "
          "server writes the db archives when it starts")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    import json

    from vieter_lite import check, datalock

    cfg = _data_config(args)
    try:
        found = check.inspect(cfg, signatures=not args.no_signatures)
    except FileNotFoundError as exc:
        print(f"vieter-lite: {exc}", file=sys.stderr)
        return 2
    if found.problems and datalock.held(cfg.data_dir):
        # beside a running server: what a request in flight showed (an upload's temp
        # file, a file linked before its row) is gone in a second look a moment later
        time.sleep(check.SETTLE)
        again = {(p.kind, p.path) for p in check.inspect(cfg, not args.no_signatures).problems}
        found.problems = [p for p in found.problems if (p.kind, p.path) in again]
    problems = found.problems
    done: list[str] = []
    if args.repair and problems:
        try:
            done = check.repair(cfg, problems)
        except check.RepairStopped as exc:  # a full disk: what is left is reported below
            done = exc.done
            print(f"vieter-lite: {exc}", file=sys.stderr)
        except check.CheckError as exc:
            print(f"vieter-lite: {exc}", file=sys.stderr)
            return 2
        problems = check.inspect(cfg, signatures=not args.no_signatures).problems
    if args.json:
        print(json.dumps({"problems": check.as_json(found.problems), "repaired": done,
                          "remaining": check.as_json(problems),
                          "packages": found.packages, "files": found.files,
                          "signatures_checked": found.signatures_checked,
                          "signatures_not_checked": found.signatures_not_checked}, indent=1))
    else:
        for p in found.problems:
            print(p.line())
        for line in done:
            print(f"repaired: {line}")
        if args.repair:
            for p in problems:
                print(f"still wrong: {p.line()}")
        print(f"checked {found.packages} packages, {found.files} files, "
              f"{found.signatures_checked} signatures: {len(found.problems)} problems"
              + (f", {len(problems)} left after repair" if args.repair else ""),
              file=sys.stderr)
    return 1 if problems else 0


def cmd_schedule(args: argparse.Namespace) -> int:
    expression = " ".join(args.expression)
    schedule = cron.parse(expression)
    for moment in cron.next_n(schedule, datetime.now().astimezone(), args.count):
        print(moment.strftime("%Y-%m-%d %H:%M:%S"))
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (exit status 2), pointing at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("-f", "--config-file", default=argparse.SUPPRESS,
                        help=f"TOML config file (default: {config.SYSTEM_CONFIG} and "
                        "~/.vieterrc when present)")
    parser = _Parser(prog="vieter-lite", parents=[common],
                     description="A small Arch Linux repository and build server.")
    parser.add_argument("--version", action="version", version=f"vieter-lite {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    server = commands.add_parser(
        "server", parents=[common], help="run the repository server",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Run the repository server. Settings come from, in increasing order of "
            f"precedence: the defaults, {config.SYSTEM_CONFIG} and ~/.vieterrc when present "
            "(or only the file given with -f), VIETER_<KEY> environment variables, then the "
            "flags below.", 80), epilog=config_text.key_help())
    for name in SERVER_FLAGS:
        server.add_argument("--" + name.replace("_", "-"), dest=name, metavar=name.upper(),
                            help=f"overrides {name} and {config.env_var(name)}")
    server.set_defaults(func=cmd_server)
    agent = commands.add_parser("agent", parents=[common],
                                help="run a build agent (builds jobs in rootless Podman)")
    agent.add_argument("--check", action="store_true",
                       help="check this user's rootless Podman set-up (one line per problem, "
                       "with its fix; exit 1 when there is one) instead of running")
    agent.add_argument("--image", help="the image --check runs its test container from "
                       "(default: the newest local builder image)")
    agent.set_defaults(func=cmd_agent)
    schedule = commands.add_parser("schedule", help="print the next run times of a cron expression")
    schedule.add_argument("expression", nargs="+", help="e.g. '0 3' or '*/15 * * *'")
    schedule.add_argument("-n", "--count", type=int, default=5, help="how many (default 5)")
    schedule.set_defaults(func=cmd_schedule)
    _add_data_commands(commands, common)
    client_commands.register(commands, parser)
    return parser


def _add_data_commands(commands: argparse._SubParsersAction,
                       common: argparse.ArgumentParser) -> None:
    """backup, restore and check: on the server's data dir, from its config."""
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument("--data-dir", help="the server's data dir (default: its config's)")
    backup = commands.add_parser(
        "backup", parents=[common, data_dir],
        help="copy a (running) server's db, packages, signing key and logs to DEST",
        description="A consistent copy of the server's data (sqlite's online backup, "
        "then the files that copy names, hard-linked where they can be), with a manifest "
        "of sha256s. The server may run. DEST must not exist or be empty.")
    backup.add_argument("dest", type=Path, metavar="DEST")
    backup.add_argument("--no-logs", action="store_true", help="leave the build logs out")
    backup.set_defaults(func=cmd_backup)
    restore = commands.add_parser(
        "restore", parents=[common, data_dir],
        help="put a backup back into the data dir (the server stopped)",
        description="Verify a backup's sha256s and put it into the configured data dir "
        "and pkg_dir; the server's next start writes the db archives.")
    restore.add_argument("src", type=Path, metavar="SRC")
    restore.add_argument("--force", action="store_true",
                         help="replace the data the data dir holds")
    restore.set_defaults(func=cmd_restore)
    check = commands.add_parser(
        "check", parents=[common, data_dir],
        help="compare sqlite, the package files and the db archives (exit 1 when wrong)",
        description="One line per thing wrong: missing-file, bad-sha256, "
        "missing-kept-file, orphan, temp-file, missing-archive, stale-archive, "
        "bad-signature. Read-only (safe beside a running server) unless --repair, "
        "which needs the server stopped.")
    check.add_argument("--repair", action="store_true", help="fix what can be fixed")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.add_argument("--no-signatures", action="store_true",
                       help="do not verify signatures with gpg (faster)")
    check.set_defaults(func=cmd_check)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows here, not after main() returned
        return code
    except (ConfigError, cron.CronError) as exc:
        print(f"vieter-lite: {exc}", file=sys.stderr)
        return 2
    except ClientError as exc:
        print(f"vieter-lite: {exc.message}", file=sys.stderr)
        return 1
    except StartupError as exc:
        print(f"vieter-lite: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `vieter-lite logs content 3 | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        return 130
