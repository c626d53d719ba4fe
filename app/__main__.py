"""Command line.

python -m app serve [--host 127.0.0.1] [--port 8000]    the service (HOST, PORT)
python -m app export powerplatform [--connector podcasts|openai] --out DIR --base-url URL
python -m app keys create --name NAME [--scopes podcasts,openai] [--models m1,m2] [--rpm N]
                   [--daily-requests N] [--monthly-tokens N] [--expires DATE] [--json]
python -m app keys list|revoke ID|usage [ID] [--days N]  [--json]   (STORE_URL picks the store)
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import import_module
from pathlib import Path

from app import __version__


def _env_port() -> int:
    raw = os.environ.get("PORT", "8000")
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) < 65536:
        sys.exit(f"PORT must be a port number (1-65535), not {raw!r}")
    return int(raw)


def _exportable() -> list[str]:
    from app.connector import Surface
    from app.registry import CONNECTORS

    return [c.name for c in CONNECTORS if Surface.POWER_PLATFORM in c.surfaces and c.powerplatform]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the API (uvicorn, bounded request heads)")
    serve.add_argument("--host", help="default: env HOST, else 127.0.0.1")
    serve.add_argument("--port", type=int, help="default: env PORT, else 8000")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="uvicorn's own log level (the app's is LOG_LEVEL)",
    )
    export = commands.add_parser("export", help="write the service's definition for a platform")
    export.add_argument("platform", choices=["powerplatform"])
    export.add_argument(
        "--connector",
        choices=_exportable(),
        default="podcasts",
        help="which upstream's actions to export (default: podcasts)",
    )
    export.add_argument("--out", type=Path, required=True, help="folder to write into")
    export.add_argument("--base-url", required=True, help="the service's public base URL")
    from app.keys_cli import add_parser as add_keys

    add_keys(commands)
    args = parser.parse_args(argv)
    if args.command == "serve":
        from app.server import serve as run_server

        host = args.host or os.environ.get("HOST", "127.0.0.1")
        port = args.port if args.port is not None else _env_port()
        run_server(host, port, log_level=args.log_level)
        return 0

    from app.registry import CONNECTORS, Settings

    if args.command == "keys":
        from app.keys_cli import run as run_keys

        return run_keys(args, Settings(), [c.name for c in CONNECTORS])

    from app.powerplatform import export as export_powerplatform

    [module] = [c.powerplatform for c in CONNECTORS if c.name == args.connector]
    assert module is not None  # noqa: S101 - offered by _exportable()
    try:
        connector = import_module(module).connector(Settings().contact_email)
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
