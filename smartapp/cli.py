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
from typing import Any, NoReturn

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
    demo = commands.add_parser(
        "demo", help="the app with a sandbox EHR of synthetic patients on 127.0.0.1 (try it)"
    )
    demo.add_argument("--port", type=int, default=8080, help="port (0: any free port)")
    _sandbox_parser(commands)
    return parser


def _sandbox_parser(commands: Any) -> None:
    sandbox = commands.add_parser("sandbox", help="the synthetic patients on a FHIR server")
    actions = sandbox.add_subparsers(dest="sandbox_command", required=True, parser_class=_Parser)
    load = actions.add_parser("load", help="load the synthetic patients (idempotent PUTs)")
    load.add_argument("--fhir-base", required=True, help="FHIR R4 base URL")
    load.add_argument("--bearer", default=None, help="access token for the FHIR server")
    load.add_argument(
        "--patient", action="append", default=[], help="load only this patient (repeatable)"
    )
    load.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    actions.add_parser("list", help="print each synthetic patient's name and story")


def _serve(args: argparse.Namespace) -> int:
    from smartapp.serve import ServeOptions, serve

    serve(
        ServeOptions(args.host, args.port, args.workers, args.threads, access_log=args.access_log)
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from smartapp.sandbox.demo import run_demo

    run_demo(port=args.port)  # a port in use: werkzeug says so on stderr and exits 1
    return 0


def _db(args: argparse.Namespace) -> int:
    from smartapp.app import upgrade_database
    from smartapp.config import load_config

    upgrade_database(load_config())
    sys.stdout.write("database schema is up to date\n")
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    from smartapp.fhir_client import FhirClient, FhirError
    from smartapp.sandbox import load

    if args.sandbox_command == "list":
        for name, story in load.stories():
            sys.stdout.write(f"{name}\t{story}\n")
        return 0
    try:
        chosen = load.select(args.patient)
    except KeyError as exc:
        raise InputError(
            f"no synthetic patient {exc.args[0]!r} (see: smartapp sandbox list)"
        ) from None
    try:
        with FhirClient(args.fhir_base, args.bearer, timeout=args.timeout) as client:
            done = load.load_patients(client, chosen, lambda p: print(p.line(), flush=True))
    except (ValueError, FhirError) as exc:
        raise InputError(f"sandbox load: {exc}") from None
    sys.stdout.write(f"{len(done)} patients loaded into {args.fhir_base}\n")
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
    commands = {
        "evaluate": _evaluate,
        "serve": _serve,
        "db": _db,
        "sandbox": _sandbox,
        "demo": _demo,
    }
    command = commands[args.command]
    try:
        return command(args)
    except (InputError, ConfigError) as exc:
        sys.stderr.write(f"smartapp: {exc}\n")
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    raise SystemExit(main())
