"""`lrsim run FILE [KEY=VALUE ...] [--out DIR]`: one experiment, in-process, with progress.

With `--out DIR`, the trajectories are written as one netCDF file per replica
(`DIR/<run_id>.nc`, see `lrsim.store`) plus a copy of the experiment file
(`DIR/experiment.toml`; with overrides, the file with the overrides set). The file, the
overrides, the memory the experiment needs and DIR are checked before training; on bad input
nothing is written.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from lrsim.errors import LrsimError
from lrsim.outdir import check_claim, claim, write_atomic

EXPERIMENT_COPY = "experiment.toml"
EPILOG = """\
examples:
  lrsim run experiments/demo.toml
  lrsim run experiments/demo.toml train.lr=0.1 rule.name=kolen_pollack
  lrsim run experiments/demo.toml train.steps=200 model.hidden=[32] --json
  lrsim run experiments/demo.toml --out runs/demo     # + one netCDF trajectory per replica

KEY=VALUE overrides set keys of the file (section.key); VALUE is a TOML value (0.1, true,
[64, 64], "text"; a bare word is text) and is checked exactly like the file.
"""
log = logging.getLogger("lrsim")


def add(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="run one experiment file",
                       description="Train the experiment's replicas in this process.",
                       epilog=EPILOG)
    r.add_argument("file", help="experiment file (TOML)")
    r.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="set a key of the file, e.g. train.lr=0.1")
    r.add_argument("--json", action="store_true", help="print the per-run summary as JSON")
    r.add_argument("--out", metavar="DIR", default=None,
                   help="write one trajectory file per replica (netCDF) into DIR")
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
    from lrsim.budget import check_memory, human
    from lrsim.config import load_with_text
    from lrsim.experiment import run_experiment

    exp, text = load_with_text(args.file, args.overrides or [])
    need = check_memory(exp, args.file)
    out = Path(args.out).expanduser() if args.out else None
    if out is not None:
        check_writable(out)
    log.info("%s: %s substrate, rule %s, %d replica(s) x %d steps; about %s of memory",
             args.file, exp.substrate, exp.rule.name, exp.train.replicas, exp.train.steps,
             human(need))
    outcome = run_experiment(exp, observe=out is not None,
                             progress=not args.json and not args.quiet)
    if out is not None:
        written = write_outputs(outcome.datasets, text, out)
        if not args.json:
            print(f"wrote {len(written)} run file(s) and {EXPERIMENT_COPY} to {out}")
    _print_runs(outcome.summaries, args.json)
    return 0 if all(s["status"] != "failed" for s in outcome.summaries) else 1


def check_writable(out: Path) -> None:
    """Refuse (LrsimError) an output folder lrsim may not write, creating nothing: DIR must not
    exist under a writable folder, be empty, or be lrsim's own run folder (`lrsim.outdir`); it
    must be writable."""
    check_claim(out, "runs")


def write_outputs(datasets: list, experiment: str | Path, out: Path) -> list[Path]:
    """One file per run (`lrsim.store.write_run`) and the experiment's copy (its text, or the
    file at that path), each written to a temporary name and renamed."""
    from lrsim.store import write_run

    text = experiment.read_text() if isinstance(experiment, Path) else experiment
    claim(out, "runs")
    try:
        written = [write_run(ds, out) for ds in datasets]
        write_atomic(out / EXPERIMENT_COPY, text)
    except OSError as err:
        raise LrsimError(f"--out '{out}': cannot write: {err.strerror or err}") from None
    return written
