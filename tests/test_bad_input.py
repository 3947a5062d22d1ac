"""A catalogue of bad experiment files, each run through the real `lrsim run --out DIR`: one
clear line on stderr naming the problem, exit status 2, no traceback, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
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


def replace(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


# (id, file text, a fragment the message must contain)
CATALOGUE = [
    ("unknown-top-key", "colour = 'red'\n" + GOOD, "unknown key 'colour'"),
    ("unknown-train-key", replace("steps = 5", "steps = 5\nepochs = 3"),
     "unknown key 'train.epochs'"),
    ("unknown-rule", replace('name = "feedback_alignment"', 'name = "backpropp"'),
     "backpropp"),
    ("unknown-task", replace('name = "gaussian_mixture"', 'name = "imagenet"'), "imagenet"),
    ("unknown-optimizer", replace("steps = 5", 'steps = 5\noptimizer = "lbfgs"'), "lbfgs"),
    ("unknown-rule-hyperparameter", replace('name = "feedback_alignment"',
                                            'name = "feedback_alignment"\nalpha = 2'), "alpha"),
    ("unknown-observable", GOOD + 'observables = ["weights", "spikes"]\n',
     "unknown observable(s) 'spikes'"),
    ("unknown-stat", GOOD + 'stats = ["raw_mean", "raw_mode"]\n',
     "unknown statistic(s) 'raw_mode'"),
    ("unknown-observe-key", GOOD + "every_n = 3\n", "unknown key 'observe.every_n'"),
    ("wrong-type", replace("steps = 5", 'steps = "many"'), "train.steps"),
    ("negative-steps", replace("steps = 5", "steps = -5"), "train.steps"),
    ("zero-lr", replace("steps = 5", "steps = 5\nlr = 0.0"), "train.lr"),
    ("negative-lr", replace("steps = 5", "steps = 5\nlr = -0.1"), "train.lr"),
    ("zero-replicas", replace("replicas = 2", "replicas = 0"), "train.replicas"),
    ("empty-hidden", replace("hidden = [8, 6]", "hidden = []"), "model.hidden"),
    ("unknown-activation", replace("hidden = [8, 6]", 'hidden = [8, 6]\nactivation = "gelu"'),
     "model.activation"),
    ("units-larger-than-layer", GOOD + "units = [0, 7]\n", "observe.units: 7 units exceeds"),
    ("negative-units", GOOD + "units = [-3]\n", "observe.units"),
    ("negative-noise", GOOD + "noise = [0.0, -0.1]\n", "observe.noise"),
    ("one-point", replace("points = 2", "points = 1"), "observe.points"),
    ("unknown-schedule", GOOD + 'schedule = "cubic"\n', "observe.schedule"),
    ("missing-dataset-path", replace('name = "gaussian_mixture"\nsamples = 200',
                                     'name = "mnist"\npath = "/nonexistent/mnist"'),
     "/nonexistent/mnist"),
    ("not-toml", "name = \n[[[", "not valid TOML"),
]


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize("text,fragment", [c[1:] for c in CATALOGUE],
                         ids=[c[0] for c in CATALOGUE])
def test_bad_experiment_file(tmp_path: Path, capsys, text: str, fragment: str):
    exp_file = tmp_path / "exp.toml"
    exp_file.write_text(text)
    out = tmp_path / "out"
    code, err = run_cli(["run", str(exp_file), "--out", str(out), "--quiet"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lrsim: error: ") and "Traceback" not in err
    assert fragment in lines[0], lines[0]
    assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == ["exp.toml"]


def test_catalogue_is_large_enough():
    assert len(CATALOGUE) >= 15


def test_missing_experiment_file(tmp_path: Path, capsys):
    code, err = run_cli(["run", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "o")],
                        capsys)
    assert code == 2 and "not found" in err and len(err.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == []


def test_output_below_a_file_is_refused(tmp_path: Path, capsys):
    exp_file = tmp_path / "exp.toml"
    exp_file.write_text(GOOD)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    for out in (blocker, blocker / "sub"):
        code, err = run_cli(["run", str(exp_file), "--out", str(out), "--quiet"], capsys)
        assert code == 2 and "--out" in err and len(err.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == ["blocker", "exp.toml"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_output_not_writable(tmp_path: Path, capsys):
    exp_file = tmp_path / "exp.toml"
    exp_file.write_text(GOOD)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, err = run_cli(["run", str(exp_file), "--out", str(locked / "out")], capsys)
        assert code == 2 and "not writable" in err
        assert os.listdir(locked) == []
    finally:
        locked.chmod(0o700)


def test_real_command_line(tmp_path: Path):
    """The installed entry point in a fresh process: one line, exit 2, nothing written."""
    exp_file = tmp_path / "exp.toml"
    exp_file.write_text(GOOD + "units = [0, 7]\n")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "lrsim.cli", "run", str(exp_file), "--out",
                           str(out)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "Traceback" not in proc.stderr and "observe.units" in proc.stderr
    assert not out.exists()
