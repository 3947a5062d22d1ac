"""The registry's validation and the `lrsim rules` / `lrsim run` commands, run for real."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from lrsim.errors import ConfigError
from lrsim.registry import Param, Registry
from lrsim.rules import rules


def test_registry_validates_names_and_parameters():
    reg: Registry = Registry("widget")
    reg.register("spring", lambda k=1.0, mode="a": (k, mode),
                 params={"k": Param(1.0, low=0.0, low_open=True),
                         "mode": Param("a", choices=("a", "b"))})
    assert reg.create("spring", k=2) == (2.0, "a")
    with pytest.raises(ConfigError, match="unknown widget 'sprong' \\(did you mean 'spring'\\?\\)"):
        reg.create("sprong")
    with pytest.raises(ConfigError, match=r"'k' = 0.0 is out of range; allowed \(0.0, inf\]"):
        reg.create("spring", k=0)
    with pytest.raises(ConfigError, match="one of 'a', 'b'"):
        reg.create("spring", mode="c")
    with pytest.raises(ConfigError, match="must be a number"):
        reg.create("spring", k="x")
    with pytest.raises(ConfigError, match="no hyperparameter 'q'; allowed: k, mode"):
        reg.create("spring", q=1)


def _lrsim(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lrsim.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_lrsim_rules_lists_every_rule_with_its_declarations():
    out = _lrsim("rules", "--json")
    assert out.returncode == 0, out.stderr
    listed = {r["name"]: r for r in json.loads(out.stdout)}
    assert set(listed) == set(rules.names())
    for name, row in listed.items():
        entry = rules.entry(name)
        assert row["family"] == entry.info["family"]
        assert row["locality"] == entry.info["locality"]
        assert set(row["hyperparameters"]) == set(entry.params)
    table = _lrsim("rules").stdout
    assert all(name in table for name in rules.names())


def test_lrsim_run_json(tmp_path):
    exp = tmp_path / "e.toml"
    exp.write_text('seed = 5\ndevice = "cpu"\n[task]\nname = "gaussian_mixture"\nsamples = 400\n'
                   '[model]\nhidden = [16]\n[rule]\nname = "feedback_alignment"\n'
                   '[train]\nsteps = 200\nreplicas = 2\n[observe]\nenabled = false\n')
    out = _lrsim("run", str(exp), "--json")
    assert out.returncode == 0, out.stderr
    runs = json.loads(out.stdout)["runs"]
    assert [r["seed"] for r in runs] == [5, 6]
    for r in runs:
        assert r["rule"] == "feedback_alignment" and r["optimizer"] == "sgd"
        assert r["status"] == "ok" and 0.0 <= r["test_accuracy"] <= 1.0
        assert r["final_loss"] > 0
        assert len(r["final_alignment_deg"]) == 2 and r["final_alignment_deg"][0] is None


@pytest.mark.parametrize("text,message", [
    ('[rule]\nname = "backprob"\n', "unknown rule 'backprob' (did you mean 'backprop'?)"),
    ('[train]\nlr = -1\n', "key 'train.lr'"),
    ('[trian]\nlr = 1\n', "unknown key 'trian'"),
    ('[rule]\nname = "hebb"\ndecay = -2\n', "hyperparameter 'decay'"),
])
def test_lrsim_run_bad_input_is_one_line(tmp_path, text, message):
    exp = tmp_path / "bad.toml"
    exp.write_text(text)
    out = _lrsim("run", str(exp))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1
    assert message in out.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu_in_float64():
    from lrsim.config import parse
    from lrsim.models.rate import train

    base = {"seed": 1, "dtype": "float64", "task": {"name": "gaussian_mixture"},
            "model": {"hidden": [32]}, "rule": {"name": "feedback_alignment"},
            "train": {"steps": 100, "replicas": 4, "data_order": "device"}}
    cpu = train(parse({**base, "device": "cpu"})).context.net.weights
    gpu = train(parse({**base, "device": "cuda"})).context.net.weights
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(a, b.cpu(), rtol=1e-8, atol=1e-10)


# ------------------------------------------------------------------ CLI habits

SMALL = ('seed = 5\ndevice = "cpu"\n[task]\nname = "gaussian_mixture"\nsamples = 200\n'
         '[model]\nhidden = [16]\n[rule]\nname = "feedback_alignment"\n'
         '[train]\nsteps = 30\nreplicas = 2\n[observe]\npoints = 3\n')


def test_version_and_python_m_lrsim():
    from importlib.metadata import version

    for cmd in (["-m", "lrsim", "--version"], ["-m", "lrsim.cli", "--version"]):
        out = subprocess.run([sys.executable, *cmd], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0 and out.stdout.strip() == f"lrsim {version('lrsim')}"


def test_overrides_equal_the_edited_file(tmp_path, capsys):
    """`lrsim run f.toml KEY=VALUE ...` trains exactly the experiment of the file with those
    values written in (same run ids, same numbers), and its --out copy says so."""
    from lrsim.cli import main
    from lrsim.config import load

    base = tmp_path / "f.toml"
    base.write_text(SMALL)
    edited = tmp_path / "edited.toml"
    edited.write_text(SMALL.replace('name = "feedback_alignment"', 'name = "kolen_pollack"')
                      .replace("hidden = [16]", "hidden = [12, 6]")
                      .replace("steps = 30", "steps = 30\nlr = 0.1"))
    argv = ["train.lr=0.1", "rule.name=kolen_pollack", "model.hidden=[12, 6]"]
    assert main(["run", str(edited), "--json", "--quiet"]) == 0
    want = json.loads(capsys.readouterr().out)["runs"]
    # overrides before and after the options
    assert main(["run", str(base), argv[0], "--json", *argv[1:], "--out",
                 str(tmp_path / "o"), "--quiet"]) == 0
    got = json.loads(capsys.readouterr().out)["runs"]
    assert [r["rule"] for r in got] == ["kolen_pollack"] * 2
    assert got == want
    copy = load(tmp_path / "o" / "experiment.toml")
    assert copy == load(edited)
    assert sorted(p.stem for p in (tmp_path / "o").glob("*.nc")) == sorted(
        r["run_id"] for r in want)


def test_scan_overrides_reach_the_expansion(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(SMALL.replace("replicas = 2", "replicas = 1") + '[scan]\n"seed" = [0, 1]\n')
    out = _lrsim("scan", str(f), "--dry-run", "scan.seed={range = 5}", "train.lr=[0.1, 0.2]")
    assert out.returncode == 2 and "train.lr" in out.stderr  # a list is no learning rate
    out = _lrsim("scan", str(f), "--dry-run", "scan.seed={range = 5}",
                 'scan.train.lr=[0.1, 0.2]')
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("10 runs in 1 groups")


def test_progress_in_a_pipe_is_plain_lines_and_in_a_terminal_a_bar():
    """No carriage-return frames where the output is not a terminal (log files), one line per
    interval instead; tqdm's bar in a terminal; nothing with --quiet."""
    import io

    from lrsim.progress import Progress, configure

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    log = io.StringIO()
    with Progress(5, "train", "step", stream=log, interval=0.0) as p:
        for _ in range(5):
            p.update(1, "loss 0.5")
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 5
    assert lines[-1].startswith("train: 5/5 step (100%), loss 0.5;")
    tty = Terminal()
    with Progress(5, "train", "step", stream=tty) as p:
        p.update(5)
    assert "\r" in tty.getvalue() and "5/5" in tty.getvalue()
    configure(quiet=True)
    try:
        quiet = Terminal()
        with Progress(5, "train", "step", stream=quiet) as p:
            p.update(5)
        assert quiet.getvalue() == ""
    finally:
        configure()


def test_lrsim_run_piped_has_no_carriage_returns_and_verbose_says_what_it_does(tmp_path):
    f = tmp_path / "f.toml"
    f.write_text(SMALL)
    out = _lrsim("run", str(f), "--verbose")
    assert out.returncode == 0, out.stderr
    assert "\r" not in out.stderr + out.stdout
    assert "lrsim: " in out.stderr and "2 replica(s) x 30 steps" in out.stderr
    quiet = _lrsim("run", str(f), "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_lrsim_run_from_python_returns_the_trajectories(tmp_path):
    """`lrsim.run(path, **overrides)` returns one Dataset per replica, equal to the run files
    `lrsim run --out` writes for the same file and overrides."""
    import numpy as np
    import xarray as xr

    import lrsim
    from lrsim.cli import main
    from lrsim.store import read_run

    f = tmp_path / "f.toml"
    f.write_text(SMALL)
    runs = lrsim.run(f, train__lr=0.1, progress=False, **{"rule.name": "sign_symmetry"})
    assert main(["run", str(f), "train.lr=0.1", "rule.name=sign_symmetry", "--out",
                 str(tmp_path / "o"), "--quiet"]) == 0
    assert len(runs) == 2 and all(isinstance(ds, xr.Dataset) for ds in runs)
    for ds in runs:
        assert ds.attrs["rule"] == "sign_symmetry" and ds.attrs["lr"] == 0.1
        disk = read_run(tmp_path / "o" / f"{ds.attrs['run_id']}.nc")  # the run as in memory
        np.testing.assert_array_equal(ds["loss"].values, disk["loss"].values)
    with pytest.raises(ConfigError, match="train.lrr"):
        lrsim.run(f, train__lrr=0.1)
    with pytest.raises(ConfigError, match="finite"):
        lrsim.run(f, train__lr=float("nan"))
