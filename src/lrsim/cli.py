"""The `lrsim` command: rules | run | scan | identify | demo (also `python -m lrsim`).

Each subcommand lives in `lrsim.commands.<name>` and exposes `add(subparsers)`; every one takes
`--quiet` and `--verbose`, and `run`, `scan` and `demo` take `KEY=VALUE` overrides of the
experiment file anywhere after the subcommand. Bad input never yields a traceback: a usage
error or an `LrsimError` is one line on stderr with exit status 2; Ctrl-C is one line and exit
status 130; a failed run exits 1.
"""

from __future__ import annotations

import argparse
import importlib
import re
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from lrsim.errors import Interrupted, LrsimError

COMMANDS = ["rules", "run", "scan", "identify", "demo"]
OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*=")
EXAMPLES = """\
examples:
  lrsim rules                                  every learning rule and its hyperparameters
  lrsim run experiments/demo.toml              one experiment, K replicas trained together
  lrsim run f.toml train.lr=0.1 rule.name=kolen_pollack --out runs/kp
  lrsim scan study.toml --out runs/study       a parameter scan on an embedded Dask cluster
  lrsim identify runs/study --out report       which rule? -> report/report.html
  lrsim demo                                   the whole pipeline, small
  python -m lrsim --version
"""


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line (exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(2)


def _common(p: argparse.ArgumentParser) -> None:
    """--quiet and --verbose on a subcommand (where the command has not declared them)."""
    have = {s for a in p._actions for s in a.option_strings}
    group = p.add_mutually_exclusive_group()
    if "--quiet" not in have:
        group.add_argument("-q", "--quiet", action="store_true",
                           help="no progress display, only results and errors")
    if "--verbose" not in have:
        group.add_argument("-v", "--verbose", action="store_true",
                           help="also say what lrsim is doing (phases, settings, cluster)")
    p.formatter_class = argparse.RawDescriptionHelpFormatter


def build_parser() -> argparse.ArgumentParser:
    from lrsim import __version__

    p = Parser(prog="lrsim", description="Virtual experiments on learning rules.",
               epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"lrsim {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           parser_class=Parser)
    for name in COMMANDS:
        importlib.import_module(f"lrsim.commands.{name}").add(sub)
    for name, sp in sub.choices.items():
        _common(sp)
        if not sp.epilog:
            sp.epilog = _fallback_epilog(name)
    return p


def _fallback_epilog(name: str) -> str:
    if name == "identify":
        return ("examples:\n"
                "  lrsim identify runs/study --out report\n"
                "  lrsim identify runs/study --out r --label rule_family --quick\n"
                "  lrsim identify runs/study --out r --holdout architecture=64-32\n"
                "  lrsim identify runs/a --out r --test runs/b")
    return ""


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line; `KEY=VALUE` words anywhere after `run`, `scan` or `demo` are
    overrides."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        sub = parser._subparsers._group_actions[0].choices[args.command]  # type: ignore
        if hasattr(args, "overrides") and all(OVERRIDE.match(e) for e in extra):
            args.overrides = list(args.overrides or []) + extra
        else:
            bad = [e for e in extra if not OVERRIDE.match(e)] or extra
            sub.error(f"unrecognized arguments: {' '.join(bad)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse(argv)
    except SystemExit as done:  # --help, --version, or a usage error (already printed)
        return int(done.code or 0) if not isinstance(done.code, str) else 2
    from lrsim.progress import configure

    configure(quiet=getattr(args, "quiet", False), verbose=getattr(args, "verbose", False))
    previous = _catch_ctrl_c()
    try:
        return _run(args)
    finally:
        configure()  # main() called from Python leaves the process as it found it
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _catch_ctrl_c() -> Any:
    """Ctrl-C silences the teardown's noise from the moment it arrives (a Dask client
    collected while its event loop is gone prints "Exception ignored in ...", possibly before
    the one line lrsim prints), then interrupts as Python's default handler would. Returns the
    previous handler, or None where none can be installed (not the main thread)."""
    def on_sigint(signum: int, frame: Any) -> None:
        _quiet_shutdown()
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, on_sigint)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except Interrupted as err:
        _quiet_shutdown()
        print(f"lrsim: {err}", file=sys.stderr)
        return 130
    except LrsimError as err:
        print(f"lrsim: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _quiet_shutdown()
        print("lrsim: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("lrsim: error: out of memory; use fewer replicas, smaller layers or a smaller "
              "batch", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `lrsim rules | head`
        return 0


def _quiet_shutdown() -> None:
    """After Ctrl-C, the interrupted machinery (a Dask client whose event loop is gone) may
    complain while the interpreter exits; the one line that was printed says all there is."""
    import logging

    from lrsim.scan.worker_logging import quiet_loggers

    sys.unraisablehook = lambda _: None
    for logger in quiet_loggers():
        logger.setLevel(logging.CRITICAL + 1)


if __name__ == "__main__":
    sys.exit(main())
