"""`lrsim demo` end to end: a tiny study through the real pipeline (Dask LocalCluster scan ->
store -> identify -> report) in seconds, and (slow) the shipped demo study, whose random
forest must identify >= 6 rules with >= 90% accuracy per network."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lrsim.cli import main

TINY = """
name = "tiny-study"
seed = 0
device = "cpu"
[task]
name = "digits"
[model]
hidden = [16]
[rule]
name = "backprop"
[train]
lr = 0.05
steps = 60
batch_size = 32
[observe]
points = 4
units = [0, 4]
noise = [0.0, 0.2]
probe_size = 64
[scan]
"rule.name" = ["backprop", "feedback_alignment", "sanger"]
"train.lr" = [0.02, 0.05]
"seed" = {range = 2}
"""


def test_demo_end_to_end_on_a_tiny_study(tmp_path, capsys):
    study = tmp_path / "tiny.toml"
    study.write_text(TINY)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--study", str(study), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    page = Path(re.search(r"report: (\S+report\.html)", printed).group(1))
    assert page.is_file() and page == (out / "report" / "report.html").resolve()
    assert len(list((out / "store").glob("*.nc"))) == 12
    results = json.loads((out / "report" / "results.json").read_text())
    assert results["classes"] == ["backprop", "feedback_alignment", "sanger"]
    assert results["n_runs"] + results["runs_by_status"].get("diverged", 0) == 12
    assert set(results["main"]) == {"linear", "forest", "temporal"}
    assert results["settings"]["n_splits"] >= 10
    assert {s["value"] for s in results["sweeps"]["units"]} == {0, 4}
    assert "recording protocol" in results["protocol"]["sentence"]


def test_identify_refuses_bad_input(tmp_path, capsys):
    assert main(["identify", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_shipped_demo_identifies_the_rules(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    results = json.loads((out / "report" / "results.json").read_text())
    assert len(results["classes"]) >= 6
    forest = results["main"]["forest"]
    print(f"demo: forest per layer {forest['accuracy_mean']:.3f} +/- {forest['accuracy_sem']:.3f}"
          f", per network {forest['run_accuracy_mean']:.3f}")
    assert forest["run_accuracy_mean"] >= 0.90
    held = [h for h in results["generalisation"] if h["key"] == "architecture"]
    assert len(held) == 2 and all("forest" in h["results"] for h in held)
