"""A catalogue of bad input over every subcommand and flag (run, scan, identify, demo, rules,
the command line itself), each through the real CLI entry point: exit status 2, exactly one
line on stderr naming the problem, no traceback, and the folder exactly as it was (no file or
folder created, changed or removed). Cases are refused before any work, so the catalogue runs
in seconds."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lrsim.cli import main

GOOD = """\
name = "bad-input"
device = "cpu"
[task]
name = "gaussian_mixture"
samples = 200
[model]
hidden = [8, 6]
[rule]
name = "feedback_alignment"
[train]
steps = 5
replicas = 2
[observe]
points = 2
"""
SCAN = GOOD.replace("replicas = 2", "replicas = 1") + '[scan]\n"seed" = [0, 1]\n'
SPIKING = 'substrate = "spiking"\n[model]\nhidden = [8]\n[train]\nsteps = 2\n[spiking]\n'


def replace(old: str, new: str, text: str = GOOD) -> str:
    assert old in text
    return text.replace(old, new)


@dataclass(frozen=True)
class Case:
    """argv with {d} (the test's folder) and {store} (a valid run store); files written into
    {d} first; `fragment` must appear in the one line."""

    id: str
    argv: tuple[str, ...]
    fragment: str
    files: dict[str, str | bytes] = field(default_factory=dict)


def run_file(id: str, text: str | bytes, fragment: str) -> Case:
    """`lrsim run e.toml --out {d}/out` on a bad experiment file."""
    return Case(id, ("run", "{d}/e.toml", "--out", "{d}/out", "--quiet"), fragment,
                {"e.toml": text})


def scan_file(id: str, text: str, fragment: str, *extra: str) -> Case:
    return Case(id, ("scan", "{d}/s.toml", "--out", "{d}/out", "--quiet", *extra), fragment,
                {"s.toml": text})


EXPERIMENT_FILES = [
    run_file("unknown-top-key", "colour = 'red'\n" + GOOD, "unknown key 'colour'"),
    run_file("unknown-train-key", replace("steps = 5", "steps = 5\nepochs = 3"),
             "unknown key 'train.epochs'"),
    run_file("unknown-section", GOOD + "[trian]\nlr = 1\n", "unknown key 'trian'"),
    run_file("unknown-rule", replace('name = "feedback_alignment"', 'name = "backpropp"'),
             "backpropp"),
    run_file("unknown-task", replace('name = "gaussian_mixture"', 'name = "imagenet"'),
             "imagenet"),
    run_file("unknown-optimizer", replace("steps = 5", 'steps = 5\noptimizer = "lbfgs"'),
             "lbfgs"),
    run_file("unknown-rule-hyperparameter", replace('name = "feedback_alignment"',
                                                    'name = "feedback_alignment"\nalpha = 2'),
             "alpha"),
    run_file("unknown-observable", GOOD + 'observables = ["weights", "spikes"]\n',
             "unknown observable(s) 'spikes'"),
    run_file("unknown-stat", GOOD + 'stats = ["raw_mean", "raw_mode"]\n',
             "unknown statistic(s) 'raw_mode'"),
    run_file("unknown-observe-key", GOOD + "every_n = 3\n", "unknown key 'observe.every_n'"),
    run_file("wrong-type", replace("steps = 5", 'steps = "many"'), "train.steps"),
    run_file("quoted-number", replace("steps = 5", 'steps = "5"'), "train.steps"),
    run_file("bool-for-int", replace("steps = 5", "steps = true"), "train.steps"),
    run_file("float-for-int", replace("steps = 5", "steps = 5.0"), "train.steps"),
    run_file("bool-for-float", replace("steps = 5", "steps = 5\nlr = true"), "train.lr"),
    run_file("int-for-bool", replace("hidden = [8, 6]",
                                                   "hidden = [8, 6]\nbias = 1"), "model.bias"),
    run_file("negative-steps", replace("steps = 5", "steps = -5"), "train.steps"),
    run_file("zero-lr", replace("steps = 5", "steps = 5\nlr = 0.0"), "train.lr"),
    run_file("negative-lr", replace("steps = 5", "steps = 5\nlr = -0.1"), "train.lr"),
    run_file("nan-lr", replace("steps = 5", "steps = 5\nlr = nan"), "finite"),
    run_file("inf-lr", replace("steps = 5", "steps = 5\nlr = inf"), "finite"),
    run_file("inf-init-scale", replace("hidden = [8, 6]", "hidden = [8, 6]\ninit_scale = inf"),
             "model.init_scale"),
    run_file("nan-init-scale", replace("hidden = [8, 6]",
                                       "hidden = [8, 6]\ninit_scale = nan"), "finite"),
    run_file("minus-inf-weight-decay",
             replace("steps = 5", "steps = 5\nweight_decay = -inf"), "train.weight_decay"),
    run_file("nan-noise", GOOD + "noise = [0.0, nan]\n", "observe.noise"),
    run_file("nan-rule-hyperparameter", replace('name = "feedback_alignment"',
                                                'name = "hebb"\ndecay = nan'), "finite"),
    run_file("inf-task-parameter", replace("samples = 200", "samples = 200\nseparation = inf"),
             "finite"),
    run_file("bool-task-parameter", replace("samples = 200", "samples = true"), "samples"),
    run_file("float-task-integer", replace("samples = 200", "samples = 1e12"), "integer"),
    run_file("zero-replicas", replace("replicas = 2", "replicas = 0"), "train.replicas"),
    run_file("replicas-do-not-fit", replace("replicas = 2", "replicas = 1000000"), "memory"),
    run_file("layers-do-not-fit", replace("hidden = [8, 6]", "hidden = [1000000, 1000000]"),
             "memory"),
    run_file("batch-does-not-fit",
             replace("replicas = 2", "replicas = 20000\nbatch_size = 1000000"), "memory"),
    run_file("empty-hidden", replace("hidden = [8, 6]", "hidden = []"), "model.hidden"),
    run_file("unknown-activation",
             replace("hidden = [8, 6]", 'hidden = [8, 6]\nactivation = "gelu"'),
             "model.activation"),
    run_file("units-larger-than-layer", GOOD + "units = [0, 7]\n",
             "observe.units: 7 units exceeds"),
    run_file("negative-units", GOOD + "units = [-3]\n", "observe.units"),
    run_file("negative-noise", GOOD + "noise = [0.0, -0.1]\n", "observe.noise"),
    run_file("one-point", replace("points = 2", "points = 1"), "observe.points"),
    run_file("bool-points", replace("points = 2", "points = true"), "observe.points"),
    run_file("unknown-schedule", GOOD + 'schedule = "cubic"\n', "observe.schedule"),
    run_file("negative-seed", "seed = -1\n" + GOOD, "seed"),
    run_file("float-seed", "seed = 1.5\n" + GOOD, "seed"),
    run_file("unknown-device", replace('device = "cpu"', 'device = "tpu"'), "device"),
    run_file("unknown-dtype", GOOD.replace('device = "cpu"', 'device = "cpu"\ndtype = "f16"'),
             "dtype"),
    run_file("unknown-substrate", 'substrate = "quantum"\n' + GOOD, "substrate"),
    run_file("name-not-text", replace('name = "bad-input"', "name = 5"), "name"),
    run_file("rule-not-on-substrate", 'substrate = "spiking"\n' + GOOD.replace(
        'name = "feedback_alignment"', 'name = "weight_mirror"'), "substrate"),
    run_file("spiking-unknown-key", SPIKING + "record_neuronz = 5\n", "allowed here: target"),
    run_file("spiking-huge-float", SPIKING + "record_neurons = 1e12\n",
             "spiking.record_neurons"),
    run_file("spiking-too-many-recorded", SPIKING + "record_neurons = 1000000000000\n",
             "spiking.record_neurons"),
    run_file("spiking-bool-for-int", SPIKING + "eval_samples = true\n", "eval_samples"),
    run_file("spiking-nan", SPIKING + "eta = nan\n", "finite"),
    run_file("spiking-settle-too-long", SPIKING + "trial_ms = 50.0\nsettle_ms = 60.0\n",
             "settle_ms"),
    run_file("spiking-does-not-fit", SPIKING.replace("hidden = [8]", "hidden = [1000000]") +
             "n_ref_e = 1000000\nepsilon = 1.0\n", "memory"),
    run_file("cluster-unknown-key", GOOD + "[cluster]\nqueu = 'cpu'\n",
             "allowed here: kind, queue"),
    run_file("cluster-bad-walltime", GOOD + "[cluster]\nwalltime = 'four hours'\n",
             "cluster.walltime"),
    run_file("cluster-bad-memory", GOOD + "[cluster]\nmemory = 'lots'\n", "cluster.memory"),
    run_file("cluster-zero-cores", GOOD + "[cluster]\ncores = 0\n", "cluster.cores"),
    run_file("cluster-processes-over-cores",
             GOOD + "[cluster]\ncores = 2\nprocesses = 4\n", "exceeds cores"),
    run_file("cluster-unknown-kind", GOOD + "[cluster]\nkind = 'kubernetes'\n",
             "cluster.kind"),
    run_file("cluster-newline-in-directive",
             GOOD + '[cluster]\njob_extra_directives = ["--gres=gpu\\n#SBATCH -x"]\n',
             "job_extra_directives"),
    run_file("missing-dataset-path", replace('name = "gaussian_mixture"\nsamples = 200',
                                             'name = "mnist"\npath = "/nonexistent/mnist"'),
             "/nonexistent/mnist"),
    run_file("not-toml", "name = \n[[[", "not valid TOML"),
    run_file("not-utf8", b"name = \"\xff\xfe\"\n", "not valid TOML"),
    run_file("empty-file", "", "sets nothing"),
    run_file("only-comments", "# nothing here\n\n", "sets nothing"),
]

RUN_FLAGS = [
    Case("run-missing-file", ("run", "{d}/nope.toml", "--out", "{d}/o"), "not found"),
    Case("run-folder-as-file", ("run", "{d}", "--out", "{d}/o"), "is a folder"),
    Case("run-no-file", ("run",), "required"),
    Case("run-unknown-flag", ("run", "{d}/e.toml", "--workers", "2"), "unrecognized",
         {"e.toml": GOOD}),
    Case("run-out-is-a-file", ("run", "{d}/e.toml", "--out", "{d}/blocker"), "--out",
         {"e.toml": GOOD, "blocker": "a file"}),
    Case("run-out-below-a-file", ("run", "{d}/e.toml", "--out", "{d}/blocker/sub"), "--out",
         {"e.toml": GOOD, "blocker": "a file"}),
    Case("run-out-in-proc", ("run", "{d}/e.toml", "--out", "/proc/lrsim-out"), "--out",
         {"e.toml": GOOD}),
    Case("run-out-user-files", ("run", "{d}/e.toml", "--out", "{d}/u"), "did not write",
         {"e.toml": GOOD, "u/notes.txt": "mine"}),
    Case("run-quiet-and-verbose", ("run", "{d}/e.toml", "-q", "-v"), "not allowed with",
         {"e.toml": GOOD}),
    Case("override-not-key-value", ("run", "{d}/e.toml", "lr"), "not KEY=VALUE",
         {"e.toml": GOOD}),
    Case("override-unknown-key", ("run", "{d}/e.toml", "train.lrr=0.1"),
         "unknown key 'train.lrr'", {"e.toml": GOOD}),
    Case("override-unknown-section", ("run", "{d}/e.toml", "trian.lr=0.1"),
         "unknown key 'trian'", {"e.toml": GOOD}),
    Case("override-bad-value", ("run", "{d}/e.toml", "train.lr=fast"), "train.lr",
         {"e.toml": GOOD}),
    Case("override-out-of-range", ("run", "{d}/e.toml", "train.lr=-1"), "train.lr",
         {"e.toml": GOOD}),
    Case("override-bool-for-int", ("run", "{d}/e.toml", "train.steps=true"), "train.steps",
         {"e.toml": GOOD}),
    Case("override-nan", ("run", "{d}/e.toml", "train.lr=nan"), "finite", {"e.toml": GOOD}),
    Case("override-into-a-value", ("run", "{d}/e.toml", "device.x=1"), "not a section",
         {"e.toml": GOOD}),
    Case("override-empty-value", ("run", "{d}/e.toml", "train.lr="), "not a TOML value",
         {"e.toml": GOOD}),
    Case("override-bad-key", ("run", "{d}/e.toml", "train..lr=1"), "not a dotted key",
         {"e.toml": GOOD}),
    Case("override-unknown-rule", ("run", "{d}/e.toml", "rule.name=kolen_polack"),
         "did you mean", {"e.toml": GOOD}),
    Case("override-does-not-fit", ("run", "{d}/e.toml", "model.hidden=[1000000,1000000]"),
         "memory", {"e.toml": GOOD}),
]

SCANS = [
    scan_file("scan-billion-seeds", replace("[scan]\n\"seed\" = [0, 1]",
                                            '[scan]\n"seed" = {range = 1000000000}', SCAN),
              "1,000,000,000 runs"),
    scan_file("scan-product-too-large", SCAN + '"train.lr" = {log_uniform = [0.01, 0.1]}\n'
              "samples = 100000\n", "runs"),
    scan_file("scan-units-wider-than-a-scanned-layer",
              replace("points = 2", "points = 2\nunits = [0, 5]", SCAN)
              + '"model.hidden" = [[8, 6], [8, 4]]\n',
              "(model.hidden=[8, 4], seed=0): observe.units: 5 units exceeds"),
    scan_file("scan-nan-bound", SCAN + '"train.lr" = {log_uniform = [nan, 0.1]}\n', "finite"),
    scan_file("scan-inf-bound", SCAN + '"train.weight_decay" = {uniform = [0.0, inf]}\n',
              "finite"),
    scan_file("scan-bool-samples", SCAN + "samples = true\n", "samples"),
    scan_file("scan-zero-max-group", SCAN + "max_group = 0\n", "max_group"),
    scan_file("scan-unknown-key", SCAN + '"train.lrr" = [0.1]\n', "train.lrr"),
    scan_file("scan-replicas", SCAN + '"train.replicas" = [1, 2]\n', "cannot be scanned"),
    scan_file("scan-cluster-key", SCAN + '"cluster.queue" = ["a", "b"]\n', "cannot be scanned"),
    scan_file("scan-bad-value", SCAN + '"train.lr" = [0.1, 200.0]\n', "train.lr"),
    scan_file("scan-bool-value", SCAN + '"train.steps" = [5, true]\n', "train.steps"),
    scan_file("scan-empty-range", replace('"seed" = [0, 1]', '"seed" = {range = 0}', SCAN),
              "empty"),
    scan_file("scan-zero-step", replace('"seed" = [0, 1]', '"seed" = {range = [0, 4, 0]}',
                                        SCAN), "step"),
    scan_file("scan-job-does-not-fit", SCAN + '"model.hidden" = [[8], [1000000, 1000000]]\n',
              "memory"),
    scan_file("scan-duplicate-runs", SCAN + '"train.lr" = [0.1, 0.1]\n', "same configuration"),
    Case("scan-no-out", ("scan", "{d}/s.toml"), "--out", {"s.toml": SCAN}),
    scan_file("scan-unreachable-scheduler", SCAN, "cannot connect", "--scheduler",
              "tcp://127.0.0.1:1"),
    scan_file("scan-scheduler-file-missing", SCAN, "neither an address", "--scheduler",
              "{d}/scheduler.json"),
    Case("scan-scheduler-file-not-json",
         ("scan", "{d}/s.toml", "--out", "{d}/out", "--scheduler", "{d}/sched.json"),
         "not a Dask scheduler file", {"s.toml": SCAN, "sched.json": "{not json"}),
    Case("scan-scheduler-file-stale",
         ("scan", "{d}/s.toml", "--out", "{d}/out", "--scheduler", "{d}/sched.json"),
         "cannot connect", {"s.toml": SCAN, "sched.json": '{"address": "tcp://127.0.0.1:1"}'}),
    scan_file("scan-scheduler-bad-protocol", SCAN, "not supported", "--scheduler",
              "ws://127.0.0.1:8786"),
    scan_file("scan-scheduler-no-port", SCAN, "HOST:PORT", "--scheduler", "tcp://127.0.0.1"),
    scan_file("scan-workers-zero", SCAN, "--workers", "--workers", "0"),
    scan_file("scan-workers-not-int", SCAN, "invalid int", "--workers", "x"),
    scan_file("scan-workers-do-not-fit", SCAN, "workers need about", "--workers", "100000"),
    scan_file("scan-workers-and-scheduler", SCAN, "give one or the other", "--workers", "2",
              "--scheduler", "tcp://127.0.0.1:1"),
    scan_file("scan-max-group-zero", SCAN, "--max-group", "--max-group", "0"),
    scan_file("scan-unknown-cluster", SCAN, "allowed: slurm", "--cluster", "kubernetes"),
    scan_file("scan-cluster-and-scheduler", SCAN, "one or the other", "--cluster", "slurm",
              "--scheduler", "tcp://127.0.0.1:1"),
    scan_file("scan-tls-without-scheduler", SCAN, "secure a --scheduler", "--tls-ca-file",
              "{d}/s.toml"),
    scan_file("scan-tls-file-missing", SCAN, "is not a file", "--scheduler",
              "tls://127.0.0.1:1", "--tls-ca-file", "{d}/ca.pem"),
    scan_file("scan-dashboard-without-bokeh", SCAN, "bokeh", "--dashboard"),
    scan_file("scan-out-in-proc", SCAN, "--out", "--out", "/proc/lrsim-out"),
    Case("scan-out-user-files", ("scan", "{d}/s.toml", "--out", "{d}/u"), "did not write",
         {"s.toml": SCAN, "u/draft.tmp": "mine"}),
    Case("scan-out-runs-folder", ("scan", "{d}/s.toml", "--out", "{d}/r"),
         "not a scan folder", {"s.toml": SCAN, "r/.lrsim": '{"written_by": "lrsim", '
                                                             '"kind": "runs"}'}),
    scan_file("scan-override-unknown", SCAN, "unknown key 'model.hiden'", "model.hiden=[4]"),
    scan_file("scan-override-scan-key", SCAN, "empty", "scan.seed=[]"),
    scan_file("scan-dry-run-bad-file", "[train]\nsteps = true\n", "train.steps", "--dry-run"),
]

STORE = ("identify", "{store}", "--out", "{d}/report")
IDENTIFY = [
    Case("identify-store-missing", ("identify", "{d}/nope", "--out", "{d}/r"),
         "not a folder of run files"),
    Case("identify-store-is-a-file", ("identify", "{d}/f.nc", "--out", "{d}/r"),
         "not a folder of run files", {"f.nc": "x"}),
    Case("identify-empty-store", ("identify", "{d}/empty", "--out", "{d}/r"), "no run files",
         {"empty/.keep": ""}),
    Case("identify-corrupt-store", ("identify", "{d}/bad", "--out", "{d}/r"),
         "move or delete them)", {"bad/0123456789abcdef.nc": "not netCDF"}),
    Case("identify-no-out", ("identify", "{store}"), "--out"),
    Case("identify-out-is-a-file", ("identify", "{store}", "--out", "{d}/f"), "--out",
         {"f": "x"}),
    Case("identify-out-user-files", ("identify", "{store}", "--out", "{d}/u"),
         "did not write", {"u/report.html": "<p>mine</p>"}),
    Case("identify-out-in-proc", ("identify", "{store}", "--out", "/proc/lrsim-report"),
         "--out"),
    Case("identify-bad-label", (*STORE, "--label", "colour"), "invalid choice"),
    Case("identify-bad-classifier", (*STORE, "--classifiers", "svm"), "unknown classifier"),
    Case("identify-splits-one", (*STORE, "--splits", "1"), "--splits"),
    Case("identify-splits-not-int", (*STORE, "--splits", "ten"), "invalid int"),
    Case("identify-permutations-zero", (*STORE, "--permutations", "0"), "--permutations"),
    Case("identify-jobs-zero", (*STORE, "--jobs", "0"), "--jobs"),
    Case("identify-seed-not-int", (*STORE, "--seed", "x"), "invalid int"),
    Case("identify-unknown-features", (*STORE, "--features", "absolute"),
         "argument --features: invalid choice: 'absolute'"),
    Case("identify-unknown-time-axis", (*STORE, "--time-axis", "epoch"),
         "argument --time-axis: invalid choice: 'epoch'"),
    Case("identify-test-missing", (*STORE, "--test", "{d}/nope"), "not a folder of run files"),
    Case("identify-test-is-training-store", (*STORE, "--test", "{store}"),
         "is the training store itself"),
    Case("identify-holdout-without-value", (*STORE, "--holdout"), "expected one argument"),
    Case("identify-single-class", STORE, "single value"),
]

DEMO = [
    Case("demo-workers-zero", ("demo", "--out", "{d}/demo", "--workers", "0", "--study",
                               "{d}/s.toml"), "--workers", {"s.toml": SCAN}),
    Case("demo-workers-not-int", ("demo", "--workers", "two"), "invalid int"),
    Case("demo-workers-do-not-fit", ("demo", "--out", "{d}/demo", "--workers", "100000",
                                     "--study", "{d}/s.toml"), "workers need about",
         {"s.toml": SCAN}),
    Case("demo-study-missing", ("demo", "--out", "{d}/demo", "--study", "{d}/nope.toml"),
         "not found"),
    Case("demo-study-is-a-folder", ("demo", "--out", "{d}/demo", "--study", "{d}"),
         "is a folder"),
    Case("demo-study-bad", ("demo", "--out", "{d}/demo", "--study", "{d}/s.toml"),
         "train.steps", {"s.toml": "[train]\nsteps = true\n"}),
    Case("demo-override-bad", ("demo", "--out", "{d}/demo", "--study", "{d}/s.toml",
                               "train.stepz=3"), "unknown key 'train.stepz'", {"s.toml": SCAN}),
    Case("demo-out-user-files", ("demo", "--out", "{d}/u", "--study", "{d}/s.toml"),
         "did not write", {"s.toml": SCAN, "u/mine.txt": "x"}),
    Case("demo-out-in-proc", ("demo", "--out", "/proc/lrsim-demo", "--study", "{d}/s.toml"),
         "--out", {"s.toml": SCAN}),
    Case("demo-unknown-flag", ("demo", "--scheduler", "tcp://x:1"), "unrecognized"),
]

RULES_AND_TOP = [
    Case("rules-unknown-rule", ("rules", "backprob"), "did you mean 'backprop'"),
    Case("rules-unknown-flag", ("rules", "--yaml"), "unrecognized"),
    Case("rules-quiet-and-verbose", ("rules", "--quiet", "--verbose"), "not allowed with"),
    Case("no-command", (), "required"),
    Case("unknown-command", ("train",), "invalid choice"),
    Case("unknown-top-flag", ("--colour", "rules"), "unrecognized arguments: --colour"),
]

CATALOGUE = EXPERIMENT_FILES + RUN_FLAGS + SCANS + IDENTIFY + DEMO + RULES_AND_TOP


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every file (bytes) and folder below `folder`."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else "<dir>")
            for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A valid run store of one rule (3 runs, from the real `lrsim run --out`)."""
    folder = tmp_path_factory.mktemp("store") / "runs"
    exp = folder.parent / "e.toml"
    exp.write_text(GOOD.replace("replicas = 2", "replicas = 3"))
    assert main(["run", str(exp), "--out", str(folder), "--quiet"]) == 0
    return folder


def test_catalogue_is_large_and_covers_every_subcommand():
    assert len(CATALOGUE) >= 80
    assert len({c.id for c in CATALOGUE}) == len(CATALOGUE)
    commands = {c.argv[0] for c in CATALOGUE if c.argv}
    assert {"run", "scan", "identify", "demo", "rules"} <= commands


@pytest.mark.parametrize("case", CATALOGUE, ids=[c.id for c in CATALOGUE])
def test_bad_input_is_one_line_exit_2_and_nothing_written(case: Case, tmp_path: Path, store,
                                                          capsys):
    for name, content in case.files.items():
        f = tmp_path / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(content) if isinstance(content, bytes) else f.write_text(content)
    before, store_before = snapshot(tmp_path), snapshot(store)
    argv = [a.format(d=tmp_path, store=store) for a in case.argv]
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, (code, captured.err)
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert case.fragment in lines[0], lines[0]
    assert snapshot(tmp_path) == before
    assert snapshot(store) == store_before
    assert not Path("/proc/lrsim-out").exists()


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["scan", "--help"],
                                  ["identify", "--help"], ["demo", "--help"],
                                  ["rules", "--help"], ["--version"]])
def test_help_and_version_exit_0(argv, capsys):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "examples:" in out or out.startswith("lrsim ")
    if argv[0] != "--version" and argv != ["--help"]:
        assert "--quiet" in out and "--verbose" in out


def test_real_command_line(tmp_path: Path):
    """The installed entry point in a fresh process: one line, exit 2, nothing written."""
    exp_file = tmp_path / "exp.toml"
    exp_file.write_text(GOOD + "units = [0, 7]\n")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "lrsim", "run", str(exp_file), "--out",
                           str(out)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "Traceback" not in proc.stderr and "observe.units" in proc.stderr
    assert not out.exists()


def test_unreachable_scheduler_is_refused_in_seconds(tmp_path: Path, capsys):
    """Before: ~30 s, then a lock, experiment.toml and manifest.json left behind."""
    import time

    f = tmp_path / "s.toml"
    f.write_text(SCAN)
    t0 = time.monotonic()
    code = main(["scan", str(f), "--out", str(tmp_path / "o"), "--scheduler",
                 "tcp://127.0.0.1:1"])
    assert code == 2 and time.monotonic() - t0 < 10
    assert "cannot connect" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_output_not_writable(tmp_path: Path, capsys):
    exp_file = tmp_path / "exp.toml"
    exp_file.write_text(GOOD)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code = main(["run", str(exp_file), "--out", str(locked / "out")])
        assert code == 2 and "no write permission" in capsys.readouterr().err
        assert os.listdir(locked) == []
    finally:
        locked.chmod(0o700)
