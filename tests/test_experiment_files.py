"""Every experiment file shipped in experiments/ reads, validates and expands into runs (what
`lrsim run` / `lrsim scan` do before any training), and the anchor study's calibration stores
hold their test condition with networks the test store does not have."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrsim.config import load, validate_registries
from lrsim.scan.expand import expand

EXPERIMENTS = sorted(Path(__file__).parents[1].joinpath("experiments").glob("*.toml"))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_shipped_experiment_expands(path: Path):
    exp = validate_registries(load(path), str(path))
    runs = expand(exp, str(path))
    assert runs, f"{path.name} expands to no runs"
    assert len({r.run_id for r in runs}) == len(runs)


def _networks(name: str) -> list[dict]:
    path = Path(__file__).parents[1] / "experiments" / f"{name}.toml"
    return [{**r.config, "seed": r.seed, "lr": r.lr}
            for r in expand(validate_registries(load(path), str(path)), str(path))]


@pytest.mark.parametrize("test_store, calibration_store",
                         [("anchor-test", "anchor-calibration"),
                          ("anchor-test2", "anchor-calibration2"),
                          ("seven-rules-test", "seven-rules-calibration")])
def test_calibration_store_is_the_test_condition_with_other_networks(test_store,
                                                                     calibration_store):
    """Same task, activation, architecture, classes and recorded observables as its test
    store; 4 networks per class, none with a seed or learning rate of a test network."""
    test, calib = _networks(test_store), _networks(calibration_store)

    def condition(r: dict) -> tuple:
        return r["task"]["name"], r["model"]["activation"], tuple(r["model"]["hidden"])

    assert {condition(r) for r in calib} == {condition(r) for r in test}
    classes = {(r["rule"]["name"], r["train"]["optimizer"]) for r in test}
    assert len(calib) == 4 * len(classes)
    per_class = {c: sum((r["rule"]["name"], r["train"]["optimizer"]) == c for r in calib)
                 for c in classes}
    assert set(per_class.values()) == {4}
    assert not {r["seed"] for r in calib} & {r["seed"] for r in test}
    assert not {r["lr"] for r in calib} & {r["lr"] for r in test}
    assert {tuple(r["observe"]["observables"]) for r in calib} == \
        {tuple(r["observe"]["observables"]) for r in test}


TRAINING_STORES = ("anchor-train", "anchor-tasks", "anchor-tasks2", "anchor-tasks3",
                   "anchor-activations", "anchor-variants", "anchor-conditions")


TEST_CONDITIONS = {"anchor-test": ("gaussian_mixture", "elu", (192, 144, 112)),
                   "anchor-test2": ("checkerboard", "silu", (176, 104))}


@pytest.mark.parametrize("test_store", sorted(TEST_CONDITIONS))
@pytest.mark.parametrize("name", TRAINING_STORES)
def test_no_training_store_has_the_test_condition_s_task_activation_or_architecture(
        name, test_store):
    test = _networks(test_store)
    tasks = {r["task"]["name"] for r in test}
    activations = {r["model"]["activation"] for r in test}
    architectures = {tuple(r["model"]["hidden"]) for r in test}
    task, activation, hidden = TEST_CONDITIONS[test_store]
    assert (tasks, activations, architectures) == ({task}, {activation}, {hidden})
    for r in _networks(name):
        assert r["task"]["name"] not in tasks
        assert r["model"]["activation"] not in activations
        assert tuple(r["model"]["hidden"]) not in architectures


def test_the_two_test_conditions_share_no_task_activation_or_architecture_and_no_class():
    """The second test store is a second condition, not more networks of the first: it shares
    none of the three with it, and has the same 6 classes, 24 networks each."""
    first, second = TEST_CONDITIONS["anchor-test"], TEST_CONDITIONS["anchor-test2"]
    assert all(a != b for a, b in zip(first, second))
    classes = [(r["rule"]["name"], r["train"]["optimizer"]) for r in _networks("anchor-test2")]
    assert {c: classes.count(c) for c in set(classes)} == {
        (rule, opt): 24 for rule in ("backprop", "feedback_alignment", "information_alignment")
        for opt in ("momentum", "adam")}
