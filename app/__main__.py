"""Command line: `python -m app export powerplatform --out DIR --base-url URL`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write the service's definition for a platform")
    export.add_argument("platform", choices=["powerplatform"])
    export.add_argument("--out", type=Path, required=True, help="folder to write into")
    export.add_argument("--base-url", required=True, help="the service's public base URL")
    args = parser.parse_args(argv)

    from app.powerplatform import export as export_powerplatform

    try:
        written = export_powerplatform(args.out, args.base_url, __version__)
    except ValueError as error:
        parser.error(str(error))
    for path in written:
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    print(
        "Import: Power Apps > Custom connectors > New > Import an OpenAPI file "
        f"({written[0].name}); see the README for the three steps."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
