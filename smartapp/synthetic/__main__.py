"""``python -m smartapp.synthetic write DIR`` writes every scenario bundle and index.json;
``python -m smartapp.synthetic longitudinal PATH`` (or ``typical PATH``) writes a large
benchmark patient."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from smartapp.synthetic import longitudinal, scenarios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smartapp.synthetic")
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write", help="write every scenario bundle and index.json")
    write.add_argument("folder", type=Path)
    for name, helptext in (
        ("longitudinal", "write the 10-year benchmark patient"),
        ("typical", "write the 2-year load-test patient"),
    ):
        sub = commands.add_parser(name, help=helptext)
        sub.add_argument("path", type=Path)
        sub.add_argument("--as-of", type=date.fromisoformat, default=longitudinal.DEFAULT_AS_OF)
    args = parser.parse_args(argv)
    if args.command == "write":
        written = scenarios.write_all(args.folder)
        print(f"wrote {len(written)} files to {args.folder}")
        return 0
    build = longitudinal.ten_year_bundle if args.command == "longitudinal" else None
    bundle = (build or longitudinal.typical_bundle)(args.as_of)
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(scenarios.dumps(bundle), encoding="utf-8")
    print(f"wrote {args.path} ({len(bundle['entry'])} resources)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
