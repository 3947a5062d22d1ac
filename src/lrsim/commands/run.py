"""`lrsim run FILE`: one experiment, in-process, with a progress bar."""

from __future__ import annotations

import argparse
import json


def add(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="run one experiment file")
    r.add_argument("file", help="experiment file (TOML)")
    r.add_argument("--json", action="store_true", help="print the per-run summary as JSON")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)


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
