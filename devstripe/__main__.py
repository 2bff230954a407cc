"""``python -m devstripe [--host H] [--port P] [--state-file PATH]``."""

from __future__ import annotations

import argparse
import logging

from aiohttp import web


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstripe")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument(
        "--state-file",
        default=None,
        help="keep objects across restarts in this pickle file (default: memory only)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    from . import install, resources
    from .server import build_app

    install()

    resources.STATE_FILE = args.state_file
    resources.store.try_load_from_disk()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s devstripe %(levelname)s %(message)s",
    )
    access_log = logging.getLogger("aiohttp.access") if args.verbose else None
    print(f"devstripe listening on http://{args.host}:{args.port}", flush=True)
    web.run_app(build_app(), host=args.host, port=args.port, access_log=access_log, print=None)


if __name__ == "__main__":
    main()
