"""A held-out test store says which part of its networks' condition the training runs share:
the test runs' task / activation / architecture values that training runs have too, read here
from the stores' own coordinates with Python sets, and how the CLI summary and the report put
it (a calibration store of the test condition makes the condition seen, the networks still
new)."""

from __future__ import annotations

import pytest

from lrsim.analysis.features import synthetic_scan
from lrsim.analysis.identify import identify
from lrsim.analysis.report import render
from lrsim.analysis.results import HeldOut, IdentifyResult
from lrsim.commands.identify import summary_lines

FAST = dict(quick=True, n_splits=4, n_permutations=3, classifiers=["forest"],
            observables=["weights", "loss"])


def _store(seed: int, prefix: str, task: str):
    ds = synthetic_scan(6, planted="weights.abs_q75", effect=2.0, n_time=5, seed=seed,
                        run_prefix=prefix, layers_per_arch=(2,))
    return ds.assign_coords(task=("run", [task] * ds.sizes["run"]))


@pytest.fixture(scope="module")
def new_task():
    """Training runs of task 'seen', test runs of task 'new'; both of one architecture."""
    train, test = _store(3, "r", "seen"), _store(4, "s", "new")
    return train, test, identify(train, test_ds=test, test_store="other", **FAST)


def _values(ds, key: str) -> set[str]:
    return {str(v) for v in ds[key].values}


def test_seen_values_are_those_both_stores_have(new_task):
    train, test, r = new_task
    (ho,) = r.headline.held_out
    want = {k: sorted(_values(train, k) & _values(test, k)) for k in ("architecture", "task")}
    assert ho.seen_in_training == want
    assert want == {"architecture": sorted(_values(test, "architecture")), "task": []}


def test_summary_and_report_name_the_shared_part(new_task):
    _, test, r = new_task
    arch = ", ".join(sorted(_values(test, "architecture")))
    want = f"new to training: task; also trained on: architecture {arch}"
    assert f"the test runs' condition: {want}" in "\n".join(summary_lines(r))
    assert f"their condition: {want};" in render(r)
    back = IdentifyResult.from_dict(r.to_dict())  # results.json keeps it
    assert back.headline.held_out[0].seen_in_training == r.headline.held_out[0].seen_in_training


def test_summary_and_report_say_how_far_the_test_runs_lie_from_training(new_task):
    _, _, r = new_task
    (ho,) = r.headline.held_out
    # one training condition (task 'seen', one architecture): a distance, no reference
    assert ho.distance is not None and ho.distance.test > 0 and ho.distance.conditions == {}
    line = f"the test runs lie {ho.distance.test:.1f} from the training runs"
    assert f"in feature space: {line}" in "\n".join(summary_lines(r))
    assert f"in the classifier's feature space, {line}" in render(r)
    back = IdentifyResult.from_dict(r.to_dict())
    assert back.headline.held_out[0].distance == ho.distance
    assert all(g.distance is None for g in r.generalisation)  # automatic hold-outs: not asked


def test_a_condition_never_trained_on_is_said_so(new_task):
    _, _, r = new_task
    r = IdentifyResult.from_dict(r.to_dict())  # a copy: the fixture stays as identify wrote it
    (ho,) = r.headline.held_out
    ho.seen_in_training = {"architecture": [], "task": []}
    assert "the test runs' condition: new to training: architecture, task" in "\n".join(
        summary_lines(r))
    assert "their condition: new to training: architecture, task;" in render(r)
    hint = "to identify rules in this condition, train on simulated runs of it too"
    assert f"{hint} (its architecture, task; other seeds)" in "\n".join(summary_lines(r))
    assert f"{hint}: its architecture, task, other seeds" in render(r)
    ho.seen_in_training = {"architecture": ["64"], "task": ["digits"]}
    assert ho.condition == "also trained on: architecture 64, task digits"
    assert ho.new_to_training == []
    assert hint not in "\n".join(summary_lines(r)) and hint not in render(r)
    older = HeldOut("test_store", "store", "x", 10, 10, ["a", "b"], [], {})
    assert older.condition == "" and older.seen_in_training == {}  # written before
    d = r.to_dict()
    d["headline"]["held_out"][0].pop("seen_in_training")
    assert "their condition" not in render(IdentifyResult.from_dict(d))
