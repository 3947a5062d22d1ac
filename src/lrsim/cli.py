"""The `lrsim` command: rules | run | scan | identify | demo.

Each subcommand lives in `lrsim.commands.<name>` and exposes `add(subparsers)`. Bad input never
yields a traceback: an `LrsimError` is printed as one line on stderr with exit status 2; a
failed run exits 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from lrsim.errors import LrsimError

COMMANDS = ["rules", "run", "scan", "identify", "demo"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lrsim", description="Virtual experiments on learning rules.")
    sub = p.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"lrsim.commands.{name}").add(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LrsimError as err:
        print(f"lrsim: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lrsim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
