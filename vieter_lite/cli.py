"""The command line.

vieter-lite server | agent | schedule | targets | logs | repos | aur | --version
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from datetime import datetime
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
    client_commands.register(commands, parser)
    return parser


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
