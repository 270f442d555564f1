"""Command line: ``smartapp evaluate`` (design.md, Contract 1).

Exit status: 0 on success, 2 with a one-line message on stderr for input that cannot be
evaluated (never a traceback for bad input).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import NoReturn

from fhir_mappings.record import InputError, build_record, load_json_input
from smartapp.config import ConfigError
from smartapp.evaluation_json import to_json, to_text
from smartapp.rules.evaluate import CPZ_METHODS, evaluate
from smartapp.rules.ruleset import PROFILES

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {message}\n")


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="smartapp", description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    ev = commands.add_parser("evaluate", help="evaluate one patient's FHIR Bundle or NDJSON file")
    ev.add_argument("path", type=Path, help="FHIR R4 Bundle (JSON) or NDJSON of resources")
    ev.add_argument("--as-of", type=_iso_date, default=None, help="evaluation date (default today)")
    ev.add_argument("--profile", choices=PROFILES, default="us-fda")
    ev.add_argument("--format", choices=("json", "text"), default="json")
    ev.add_argument(
        "--cpz-method",
        choices=CPZ_METHODS,
        default="gardner-2010",
        help="chlorpromazine-equivalence method for TRS trials",
    )
    serve = commands.add_parser("serve", help="run the app under gunicorn (production)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=0, help="processes (default 2 x cores + 1)")
    serve.add_argument("--threads", type=int, default=4, help="threads per process")
    serve.add_argument("--access-log", action="store_true")
    db = commands.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=("upgrade",), help="upgrade: migrate to the latest schema")
    return parser


def _serve(args: argparse.Namespace) -> int:
    from smartapp.serve import ServeOptions, serve

    serve(
        ServeOptions(args.host, args.port, args.workers, args.threads, access_log=args.access_log)
    )
    return 0


def _db(args: argparse.Namespace) -> int:
    import os

    from smartapp.app import default_instance_path, instance_database_url
    from smartapp.config import load_config
    from smartapp.persistence import Database

    config = load_config()
    os.makedirs(default_instance_path(), exist_ok=True)
    database = Database(instance_database_url(config))
    database.upgrade()
    database.dispose()
    sys.stdout.write("database schema is up to date\n")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    record = build_record(load_json_input(args.path))
    as_of = args.as_of or date.today()
    evaluation = evaluate(record, as_of, args.profile, cpz_method=args.cpz_method)
    if args.format == "text":
        sys.stdout.write(to_text(evaluation))
    else:
        sys.stdout.write(json.dumps(to_json(evaluation), indent=2, ensure_ascii=False) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = {"evaluate": _evaluate, "serve": _serve, "db": _db}[args.command]
    try:
        return command(args)
    except (InputError, ConfigError) as exc:
        sys.stderr.write(f"smartapp: {exc}\n")
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    raise SystemExit(main())
