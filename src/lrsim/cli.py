"""The `lrsim` command: rules | run | scan | identify | demo.

Bad input never yields a traceback: an `LrsimError` is printed as one line on stderr and the
exit status is 2. A failed run is exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from lrsim.errors import LrsimError


def cmd_rules(args: argparse.Namespace) -> int:
    from lrsim.rules import rules

    rows = []
    for name in rules.names():
        e = rules.entry(name)
        hp = ", ".join(f"{k}={p.default!r} {p.describe()}" for k, p in e.params.items()) or "-"
        rows.append({"name": name, "family": e.info["family"], "locality": e.info["locality"],
                     "substrates": list(e.info["substrates"]),
                     "signals": sorted(e.info["signals"]),
                     "hyperparameters": {k: {"default": p.default, "allowed": p.describe(),
                                             "doc": p.doc} for k, p in e.params.items()},
                     "summary": e.doc.splitlines()[0] if e.doc else "",
                     "_hp": hp})
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "_hp"} for r in rows], indent=2))
        return 0
    w = max(len(r["name"]) for r in rows)
    print(f"{'rule':<{w}}  {'family':<18} {'locality':<17} {'substrates':<13} hyperparameters")
    for r in rows:
        print(f"{r['name']:<{w}}  {r['family']:<18} {r['locality']:<17} "
              f"{','.join(r['substrates']):<13} {r['_hp']}")
    return 0


def _print_runs(summaries: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"runs": summaries}, indent=2))
        return
    print(f"{'seed':>5} {'rule':<26} {'optimizer':<9} {'final_loss':>10} {'test_acc':>8}  status")
    for s in summaries:
        acc = "-" if s.get("test_accuracy") is None else f"{s['test_accuracy']:.4f}"
        loss = "nan" if s.get("final_loss") is None else f"{s['final_loss']:.4f}"
        extra = f" at step {s['diverged_step']}" if s.get("diverged_step") is not None else ""
        line = (f"{s['seed']:>5} {s['rule']:<26} {s['optimizer']:<9} {loss:>10} {acc:>8}  "
                f"{s['status']}{extra}")
        if s.get("final_alignment_deg"):
            angles = ", ".join("-" if a is None else f"{a:.1f}"
                               for a in s["final_alignment_deg"])
            line += f"  angle(B,W^T) [{angles}] deg"
        print(line)


def cmd_run(args: argparse.Namespace) -> int:
    from lrsim.config import load
    from lrsim.experiment import run_experiment

    exp = load(args.file)
    outcome = run_experiment(exp, progress=not args.json and not args.quiet)
    _print_runs(outcome.summaries, args.json)
    return 0 if all(s["status"] != "failed" for s in outcome.summaries) else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lrsim", description="Virtual experiments on learning rules.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("rules", help="list rules: family, locality, substrates, hyperparameters")
    r.add_argument("--json", action="store_true", help="print as JSON")
    r.set_defaults(func=cmd_rules)

    r = sub.add_parser("run", help="run one experiment file")
    r.add_argument("file", help="experiment file (TOML)")
    r.add_argument("--json", action="store_true", help="print the per-run summary as JSON")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)
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
