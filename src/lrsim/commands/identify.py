"""`lrsim identify STORE --out REPORT_DIR`: identify the learning rule from a scan's
trajectories and write `report.html` (self-contained) and `results.json`."""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrsim.analysis.defaults import (
    FEATURES,
    FEATURES_DEFAULT,
    LABELS,
    N_PERMUTATIONS,
    N_PERMUTATIONS_QUICK,
    N_SPLITS,
    SPLIT_BY,
    SPLIT_BY_DEFAULT,
    TIME_AXES,
    TIME_AXIS_DEFAULT,
)
from lrsim.analysis.defaults import TARGET_ACCURACY as TARGET
from lrsim.errors import ConfigError, LrsimError
from lrsim.outdir import check_claim

if TYPE_CHECKING:
    from lrsim.analysis.results import Breakdown, ConfusedPair, HeldOut, IdentifyResult


EXAMPLES = """examples:
  lrsim identify runs/ --out report/
  lrsim identify runs/ --out report/ --label rule_optimizer --holdout architecture=64-32-16
  lrsim identify runs/ --out report/ --test other-runs/ --target 0.8 --quick
  lrsim identify runs/ --out report/ --features relative --time-axis progress
"""


def add(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "identify", help="identify the rule from a scan's trajectories; write report.html and "
        "results.json", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Identify the learning rule from what an experiment could record: the "
        "headline uses only measurable observables (and held-out runs when asked for); the "
        "loss curves are the control; model-internal quantities are reported apart.")
    r.add_argument("store", nargs="+", help="folder(s) of run files (from `lrsim scan` or "
                   "`lrsim run --out`); several are read as one training store")
    r.add_argument("--out", required=True, help="folder for report.html and results.json")
    r.add_argument("--label", default="rule", choices=LABELS, metavar="LABEL",
                   help=f"what to identify: {', '.join(LABELS)} (rule_optimizer = "
                        f"'<rule>+<optimizer>' per run; default rule)")
    r.add_argument("--holdout", metavar="KEY=VALUE",
                   help="also train on every run without KEY=VALUE and test on those with it "
                        "(e.g. architecture=64-64, task=digits, lr=0.01:0.1)")
    r.add_argument("--test", metavar="STORE2", help="also train on STORE(s), test on STORE2")
    r.add_argument("--target", default=str(TARGET), metavar="ACC",
                   help=f"accuracy the protocol search aims for, in (0, 1] (default {TARGET})")
    r.add_argument("--classifiers", nargs="+", default=["linear", "forest", "temporal"],
                   metavar="NAME", help="linear, forest, temporal (default: all three)")
    r.add_argument("--observables", nargs="+", metavar="NAME",
                   help="variables to identify from (default: every measurable one all runs "
                        "record, e.g. weights activations activity_change and, in spiking "
                        "runs, rate cv_isi fano correlation synchrony ei_balance "
                        "ei_correlation; then alignment, reported apart)")
    r.add_argument("--features", default=FEATURES_DEFAULT, choices=list(FEATURES),
                   help="how the measurable and model-internal observables are read: recorded "
                        "(the values as recorded) or relative (every statistic relative to its "
                        "value before learning: log-ratio for positive statistics, difference "
                        "scaled by the initial rms for signed ones); the loss-curve control is "
                        f"always read as recorded (default {FEATURES_DEFAULT})")
    r.add_argument("--time-axis", default=TIME_AXIS_DEFAULT, choices=list(TIME_AXES),
                   help="time points on the recorded step axis, or resampled evenly on each "
                        "network's learning progress (the fraction of the path its output "
                        "layer's activity travels; needs activity_change) "
                        f"(default {TIME_AXIS_DEFAULT})")
    r.add_argument("--split-by", default=SPLIT_BY_DEFAULT, choices=list(SPLIT_BY),
                   help="what the within-store splits keep on one side: siblings (every network "
                        "sharing a test network's seed and condition: same initial weights and "
                        "minibatches, whatever its rule or learning rate), run (each network "
                        "alone), or auto: siblings where the store allows it (a per-run seed, "
                        "4 or more sibling groups, every class in 2 or more), else run "
                        f"(default {SPLIT_BY_DEFAULT})")
    r.add_argument("--quick", action="store_true",
                   help="smaller hyperparameter grids, fewer permutations and sweep points")
    r.add_argument("--splits", type=int, default=N_SPLITS,
                   help=f"repeated grouped splits (>= 10 recommended; default {N_SPLITS})")
    r.add_argument("--permutations", type=int, default=None,
                   help=f"label permutations for the null (default {N_PERMUTATIONS}, "
                        f"{N_PERMUTATIONS_QUICK} with --quick)")
    r.add_argument("--seed", type=int, default=0, help="seed of the splits and classifiers")
    r.add_argument("--jobs", type=int, default=1, help="threads for the random forest")
    r.set_defaults(func=cmd_identify)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def open_store(path: str | Path | Sequence[str | Path]) -> Any:
    """The store at `path` (or the stores at several paths, read as one) as one Dataset with a
    `run` dimension (`lrsim.store.open_scan`), loaded: identification reads every variable
    many times (features per view and sweep)."""
    from lrsim.store import open_scan

    paths = [Path(path)] if isinstance(path, str | Path) else [Path(p) for p in path]
    for p in paths:
        if not p.is_dir():
            raise ConfigError(f"store '{p}' is not a folder of run files")
    try:
        return open_scan(paths[0] if len(paths) == 1 else paths).load()
    except LrsimError as err:  # the CLI has no errors='report': say what a user can do
        raise LrsimError(str(err).replace(", or pass errors='report')", ")")) from None


def parse_target(value: str | float) -> float:
    """--target as a float in (0, 1]; ConfigError otherwise."""
    try:
        target = float(value)
    except (TypeError, ValueError):
        target = math.nan
    if not 0 < target <= 1:
        raise ConfigError(f"--target must be an accuracy in (0, 1], e.g. 0.9 (got {value!r})")
    return target


def run_identify(store: str | Path | Sequence[str | Path], out: str | Path, *,
                 label: str = "rule",
                 holdout: str | None = None, test: str | Path | None = None,
                 classifiers: Sequence[str] = ("linear", "forest", "temporal"),
                 quick: bool = False, splits: int = N_SPLITS, permutations: int | None = None,
                 seed: int = 0, jobs: int = 1, progress: bool | None | Any = None,
                 observables: Sequence[str] | None = None, target: str | float = TARGET,
                 features: str = FEATURES_DEFAULT, time_axis: str = TIME_AXIS_DEFAULT,
                 split_by: str = SPLIT_BY_DEFAULT) -> tuple[Path, IdentifyResult]:
    """Check the request, open the store(s), run `lrsim.analysis.identify.identify`, write the
    report; return (path of report.html, result). `store`: a folder of run files, or several
    read as one training store. `progress`: None (a bar in a terminal,
    plain lines in a log, nothing under --quiet), False (nothing), True, or a
    `lrsim.analysis.progress.Progress`."""
    from lrsim.analysis.identify import check_feature_names, identify
    from lrsim.analysis.labels import check_label_name
    from lrsim.analysis.progress import Progress
    from lrsim.analysis.report import write_report
    from lrsim.analysis.siblings import check_split_by

    check_label_name(label)
    target = parse_target(target)
    if splits < 2:
        raise ConfigError(f"--splits must be >= 2 (got {splits})")
    if permutations is not None and permutations < 1:
        raise ConfigError(f"--permutations must be >= 1 (got {permutations})")
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1 (got {jobs})")
    check_feature_names(features, time_axis)
    check_split_by(split_by)
    stores = [store] if isinstance(store, str | Path) else list(store)
    if len({Path(s).resolve() for s in stores}) < len(stores):
        raise ConfigError(f"a training store is given twice ({', '.join(map(str, stores))}); "
                          "give each once")
    if test is not None and any(Path(test).resolve() == Path(s).resolve() for s in stores):
        raise ConfigError(f"--test {test} is the training store itself; give a store of other "
                          f"runs (networks never trained on)")
    out = Path(out)
    check_claim(out, "report")
    prog = progress if isinstance(progress, Progress) else Progress("identify", progress)
    ds = open_store(stores)
    test_ds = open_store(test) if test is not None else None
    with _torch_threads(1):
        result = identify(ds, label=label, classifiers=list(classifiers), holdout=holdout,
                          test_ds=test_ds, quick=quick, n_splits=splits,
                          n_permutations=permutations, target=target, random_state=seed,
                          n_jobs=jobs, progress=prog, store=", ".join(map(str, stores)),
                          test_store="" if test is None else str(test),
                          observables=observables, features=features, time_axis=time_axis,
                          split_by=split_by)
    prog.say("writing the report")
    return write_report(result, out), result


def cmd_identify(args: argparse.Namespace) -> int:
    page, result = run_identify(args.store, args.out, label=args.label, holdout=args.holdout,
                                test=args.test, classifiers=args.classifiers, quick=args.quick,
                                splits=args.splits, permutations=args.permutations,
                                seed=args.seed, jobs=args.jobs, target=args.target,
                                progress=False if args.quiet else None,
                                observables=args.observables, features=args.features,
                                time_axis=args.time_axis, split_by=args.split_by)
    print_summary(result)
    print(f"report: {page}")
    print(f"numbers: {page.parent / 'results.json'}")
    return 0


def _acc(a: float, se: float | None = None) -> str:
    return f"{a:.3f}" + (f" +/- {se:.3f}" if se is not None else "")


def _by(b: Breakdown) -> str:
    """'  by units: all 0.57, 8 0.49 | noise: ... | time points: ...' (forest)."""
    parts = []
    for key, rows in b.factors().items():
        if key == "fraction":
            continue
        if key == "training_networks":
            vals = ", ".join(f"{p.n_train_runs or 0:.0f} {p.accuracy:.2f}" for p in rows)
        else:
            vals = ", ".join(f"{'all' if key == 'units' and p.value == 0 else f'{p.value:g}'} "
                             f"{p.accuracy:.2f}" for p in rows)
        parts.append(f"{key.replace('_', ' ')}: {vals}")
    return f"  {b.classifier} by {' | '.join(parts)}"


def _held_out_spread(ho: HeldOut) -> list[str]:
    """The forest's spread over seeds and the pairs told apart worst on the test runs, each
    pair with how often the loss-curve classifier confuses it (alike there too: the two
    classes also learn alike)."""
    lines = []
    if ho.forest_seeds:
        a = ho.forest_seeds
        lines.append(f"  forest refitted with {len(a)} seeds: per network mean "
                     f"{sum(a) / len(a):.3f} (min {min(a):.3f}, max {max(a):.3f})")
    if ho.confused_pairs:
        def ctrl(p: ConfusedPair) -> str:
            if ho.control is None:
                return ""
            return f" (loss curves {ho.control.confusion.pair_rate(p.a, p.b):.2f})"
        lines.append(f"  told apart worst on the test runs ({ho.lead}): " + ", ".join(
            f"{p.a} / {p.b} {p.rate:.2f}{ctrl(p)}" for p in ho.confused_pairs[:3]) +
            " (mean fraction called the other)")
    return lines


def summary_lines(r: IdentifyResult) -> list[str]:
    """The CLI summary: the headline (measurable only; held out when asked; per network), the
    control, the model-internal section, the protocol and its frontier."""
    h = r.headline
    lines = [f"{r.n_runs} runs, {r.n_samples} samples (run x layer), {len(r.classes)} classes "
             f"of {r.label}; chance {r.chance:.3f}"]
    left = r.observables_left_out
    if left:
        lines.append(f"  recorded by only some runs, left out: "
                     f"{', '.join(f'{o} ({n} lack it)' for o, n in left.items())}")
    lines.append(f"HEADLINE, measurable only ({', '.join(r.measurable_observables)}), "
                 f"{h.section.scores[h.section.best].n_splits} grouped splits: per layer, "
                 f"per network")
    lines.append(f"  features: {r.features.description}")
    lines.append(f"  splits: {r.settings.split_description}")
    for clf, s in h.section.scores.items():
        lines.append(f"  {clf:<9} {_acc(s.accuracy, s.accuracy_sem)}   per network "
                     f"{_acc(s.run_accuracy, s.run_accuracy_sem)}")
    lines.append(f"  permutation null (forest) {h.null.mean:.3f}, 95th pct {h.null.q95:.3f}, "
                 f"p = {h.null.p_value:.3f}")
    lines.append(_by(h.breakdown))
    costs = h.halving_costs()
    if costs:
        lines.append("  halving the training networks costs (per layer): " + ", ".join(
            f"{name} {cost:+.3f} +/- {se:.3f} ({'still rising' if rises else 'no clear gain'})"
            for name, cost, se, rises in costs))
    if h.confused_pairs:
        lines.append("  told apart worst (" + h.section.best + "): " + ", ".join(
            f"{p.a} / {p.b} {p.rate:.2f}" for p in h.confused_pairs[:5]) +
            " (mean fraction called the other)")
    for ho in h.held_out:
        lines.append(f"HELD OUT {ho.name} ({ho.n_train_runs} training runs, {ho.n_test_runs} "
                     f"test runs), measurable only:")
        if ho.condition:
            lines.append(f"  the test runs' condition: {ho.condition}")
        if ho.new_to_training:
            lines.append("  to identify rules in this condition, train on simulated runs of it "
                         "too (its " + ", ".join(ho.new_to_training) + "; other seeds)")
        if ho.distance is not None:
            lines.append(f"  in feature space: {ho.distance.text}")
        for clf, s in ho.scores.items():
            mark = ("   <- leads (chosen by within-store cross-validation)"
                    if clf == ho.lead and len(ho.scores) > 1 else "")
            lines.append(f"  {clf:<9} {_acc(s.accuracy, s.accuracy_se)}   per network "
                         f"{s.run_accuracy:.3f}{mark}")
        lines += _held_out_spread(ho)
        if ho.breakdown is not None:
            lines.append(_by(ho.breakdown))
        if ho.control is not None:
            lines.append(f"  loss-curve classifier (forest) {ho.control.accuracy:.3f}")
    if r.control is not None:
        best = r.control.loss_curve.best
        lc = r.control.loss_curve.scores[best]
        hs = h.section.scores[h.section.best]
        lines.append(f"CONTROL, loss-curve classifier ({', '.join(r.control.observables)}): "
                     f"best {best} {_acc(lc.accuracy, lc.accuracy_sem)}; the best measurable "
                     f"classifier adds {hs.accuracy - lc.accuracy:+.3f}")
        m = r.control.matched
        if m is not None and m.loss_curve is not None:
            cal = f"{m.caliper:g} s.d." if math.isfinite(m.caliper) else "none"
            dropped = f", unmatchable: {', '.join(m.dropped_classes)}" if m.dropped_classes \
                else ""
            verdict = ("matched" if m.matched else "NOT fully matched: " + (
                "imbalanced" if m.at_chance else "loss curves still identify the class"))
            if m.matched and not math.isfinite(m.caliper):
                verdict = "no matching needed"
            lines.append(f"  matched on loss curves ({m.n_sets} runs x {len(m.classes)} "
                         f"classes, caliper {cal}, max SMD {m.max_smd:.2f}{dropped}): "
                         f"loss-curve classifier "
                         f"{m.loss_curve.accuracy:.3f} (p = {m.loss_curve_null.p_value:.3f}, "
                         f"{verdict}); measurable {m.measurable.accuracy:.3f} (p = "
                         f"{m.measurable_null.p_value:.3f}, chance {m.chance:.3f}): "
                         f"{m.added:+.3f}")
        elif m is not None:
            lines.append("  matched on loss curves: no matched set of runs could be formed")
    if r.model_internal is not None:
        mi = r.model_internal
        alone = ", ".join(f"{o.name} alone {o.accuracy:.3f}" for o in mi.alone)
        lines.append(f"MODEL-INTERNAL (not measurable, not in the headline; forest): {alone}; "
                     f"everything recorded {mi.everything.accuracy:.3f} "
                     f"({mi.added_to_measurable:+.3f} over measurable)")
    lines.append(r.protocol.sentence)
    if r.protocol.frontier:
        lines.append(f"  cost-accuracy frontier ({r.protocol.frontier[0].observable}; units, "
                     f"noise, time points: accuracy, cheapest first):")
        lines += [f"    {'all' if p.units == 0 else p.units} units, noise {p.noise:g}, "
                  f"{p.time_points} time points: {p.accuracy:.3f} +/- {p.accuracy_sem:.3f}"
                  for p in r.protocol.frontier]
    return lines


def print_summary(result: IdentifyResult) -> None:
    """Print `summary_lines`."""
    for line in summary_lines(result):
        print(line)
