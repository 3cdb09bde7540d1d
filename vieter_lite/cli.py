"""The command line: vieter-lite server | schedule | --version."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime

from vieter_lite import __version__, config, cron
from vieter_lite.errors import ConfigError

LEVELS = {"FATAL": logging.CRITICAL, "ERROR": logging.ERROR, "WARN": logging.WARNING,
          "WARNING": logging.WARNING, "INFO": logging.INFO, "DEBUG": logging.DEBUG}


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=LEVELS.get(level, logging.WARNING), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def cmd_server(args: argparse.Namespace) -> int:
    from vieter_lite.supervisor import Supervisor

    cfg = config.load_server(getattr(args, "config_file", None))
    _setup_logging(cfg.log_level)
    supervisor = Supervisor(cfg)
    supervisor.install_signal_handlers()
    return supervisor.run()


def cmd_schedule(args: argparse.Namespace) -> int:
    expression = " ".join(args.expression)
    schedule = cron.parse(expression)
    for moment in cron.next_n(schedule, datetime.now().astimezone(), args.count):
        print(moment.strftime("%Y-%m-%d %H:%M:%S"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-f", "--config-file", default=argparse.SUPPRESS,
                        help=f"TOML config file (default: {config.SYSTEM_CONFIG} and "
                        "~/.vieterrc when present)")
    parser = argparse.ArgumentParser(prog="vieter-lite", parents=[common],
                                     description="A small Arch Linux repository and build server.")
    parser.add_argument("--version", action="version", version=f"vieter-lite {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    server = commands.add_parser("server", parents=[common], help="run the repository server")
    server.set_defaults(func=cmd_server)
    schedule = commands.add_parser("schedule", help="print the next run times of a cron expression")
    schedule.add_argument("expression", nargs="+", help="e.g. '0 3' or '*/15 * * *'")
    schedule.add_argument("-n", "--count", type=int, default=5, help="how many (default 5)")
    schedule.set_defaults(func=cmd_schedule)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, cron.CronError) as exc:
        print(f"vieter-lite: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
