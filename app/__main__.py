"""CLI: `python -m app export powerplatform [--connector NAME] --out DIR --base-url URL`."""

from __future__ import annotations

import argparse
import sys
from importlib import import_module
from pathlib import Path

from app import __version__

# Connector name -> the module whose `connector(contact_email)` describes its export.
POWERPLATFORM_CONNECTORS = {
    "podcasts": "app.connectors.podcasts.powerplatform",
    "openai": "app.connectors.openai.powerplatform",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write the service's definition for a platform")
    export.add_argument("platform", choices=["powerplatform"])
    export.add_argument(
        "--connector",
        choices=sorted(POWERPLATFORM_CONNECTORS),
        default="podcasts",
        help="which upstream's actions to export (default: podcasts)",
    )
    export.add_argument("--out", type=Path, required=True, help="folder to write into")
    export.add_argument("--base-url", required=True, help="the service's public base URL")
    args = parser.parse_args(argv)

    from app.powerplatform import export as export_powerplatform
    from app.settings import Settings

    try:
        module = import_module(POWERPLATFORM_CONNECTORS[args.connector])
        connector = module.connector(Settings().contact_email)
        written = export_powerplatform(args.out, args.base_url, __version__, connector)
    except ValueError as error:
        parser.error(str(error))
    for path in written:
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    print(
        "Import: Power Apps > Custom connectors > New > Import an OpenAPI file "
        f"({written[0].name}); see the README for the steps."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
