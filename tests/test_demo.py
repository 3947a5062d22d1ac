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
    captured = capsys.readouterr()
    printed = captured.out
    page = Path(re.search(r"report: (\S+report\.html)", printed).group(1))
    assert page.is_file() and page == (out / "report" / "report.html").resolve()
    assert len(list((out / "store").glob("*.nc"))) == 12
    results = json.loads((out / "report" / "results.json").read_text())
    assert results["classes"] == ["backprop", "feedback_alignment", "sanger"]
    assert results["n_runs"] + results["runs_by_status"].get("diverged", 0) == 12
    head = results["headline"]
    assert set(head["section"]["scores"]) == {"linear", "forest", "temporal"}
    assert head["section"]["observables"] == ["weights", "activations", "activity_change"]
    assert results["settings"]["n_splits"] >= 10
    assert {s["value"] for s in head["breakdown"]["units"]} == {0, 4}
    assert "recording protocol" in results["protocol"]["sentence"]
    # the summary leads with the measurable headline; progress went to stderr as plain lines
    assert "HEADLINE, measurable only (weights, activations, activity_change)" in printed
    progress = [ln for ln in captured.err.splitlines() if ln.startswith("identify: ")]
    assert progress[0].startswith("identify: 12 runs") or progress[0].startswith("identify: ")
    assert progress[-1] == "identify: writing the report"
    assert not any("\r" in ln for ln in progress)


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
    head = results["headline"]
    forest = head["section"]["scores"]["forest"]
    print(f"demo: measurable, forest per layer {forest['accuracy']:.3f} +/- "
          f"{forest['accuracy_sem']:.3f}, per network {forest['run_accuracy']:.3f}; "
          f"everything recorded {results['model_internal']['everything']['accuracy']:.3f}")
    # measured on the demo study: ~0.56 per layer, ~0.66 per network (chance 0.14)
    assert forest["run_accuracy"] >= 3 * results["chance"]
    assert head["null"]["p_value"] <= 0.05
    assert results["model_internal"]["everything"]["accuracy"] >= 0.75
    held = [h for h in results["generalisation"] if h["key"] == "architecture"]
    assert len(held) == 2 and all("forest" in h["scores"] for h in held)
    assert results["control"]["matched"]["attempts"]


def _write_store(ds, folder):
    from lrsim.analysis.features import split_runs
    from lrsim.store import write_run

    for one in split_runs(ds):
        write_run(one, folder)
    return folder


def test_identify_cli_trains_on_one_store_and_tests_on_another(tmp_path, capsys):
    """Two stores of the same planted signal (other seeds, other run ids): the classifier
    trained on the first must carry over to the second."""
    from lrsim.analysis.features import synthetic_scan

    a = _write_store(synthetic_scan(8, planted="weights.abs_q75", effect=8.0, n_time=5, seed=3),
                     tmp_path / "a")
    b = _write_store(synthetic_scan(4, planted="weights.abs_q75", effect=8.0, n_time=5, seed=4,
                                    run_prefix="s"), tmp_path / "b")
    out = tmp_path / "report"
    argv = ["identify", str(a), "--out", str(out), "--test", str(b), "--holdout",
            "architecture=32-32", "--classifiers", "forest", "--quick", "--permutations", "2",
            "--splits", "4", "--quiet"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "report:" in captured.out and captured.err == ""  # --quiet: no progress
    assert f"HELD OUT --test {b} (24 training runs, 12 test runs), measurable only:" in \
        captured.out
    assert "HELD OUT architecture=32-32" in captured.out
    results = json.loads((out / "results.json").read_text())
    held = {h["kind"]: h for h in results["headline"]["held_out"]}
    assert results["n_runs"] == 24 and held["test_store"]["n_test_runs"] == 12
    assert held["test_store"]["scores"]["forest"]["accuracy"] >= 0.9
    assert held["holdout"]["n_test_runs"] == 12
    assert results["importance"][0]["channel"] == "weights.abs_q75"
    assert main(["identify", str(a), "--out", str(out), "--test", str(a)]) == 2
    assert "is the training store itself" in capsys.readouterr().err
    c = _write_store(synthetic_scan(8, planted="weights.abs_q75", effect=8.0, n_time=5, seed=3),
                     tmp_path / "c")  # a copy of a's runs in another folder
    assert main(["identify", str(a), "--out", str(tmp_path / "r2"), "--test", str(c)]) == 2
    err = capsys.readouterr().err
    assert "shares 24 run id(s)" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r2").exists()
