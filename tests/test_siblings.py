"""Splits grouped by sibling networks (runs sharing a seed and condition), against known
answers.

- The block splitter never puts one sibling group on both sides, keeps every class in
  training, and hits the stratification target exactly where the groups allow it (checked with
  Python sets and counts, not with the splitter's own bookkeeping).
- The groups are the per-run (seed, architecture, task, ...) of the store, as listed by hand.
- A store whose only signal is a class signature private to each sibling group (nothing a new
  network would share): splits grouped by run score far above chance (the same-class sibling in
  training gives the class away), splits grouped by sibling group score at chance, which is the
  true answer. `identify` uses sibling groups by default, says so, and the CLI takes
  `--split-by`; bad values and impossible requests are one line and exit 2.
"""

from __future__ import annotations

import numpy as np
import pytest

from lrsim.analysis.classifiers import make_classifier
from lrsim.analysis.crossval import cross_validate
from lrsim.analysis.features import TrajectoryFeatures, make_samples, synthetic_scan
from lrsim.analysis.identify import identify, plan
from lrsim.analysis.siblings import sibling_groups, split_units
from lrsim.analysis.splits import RepeatedStratifiedGroupSplit
from lrsim.cli import main
from lrsim.errors import ConfigError

FAST = dict(classifiers=["forest"], quick=True, n_splits=4, n_permutations=3)


def test_block_splits_keep_groups_whole_and_every_class_in_training():
    rng = np.random.default_rng(0)
    runs, labels, blocks = [], [], {}
    for b in range(9):  # groups of uneven composition: 1-3 runs of 2-3 classes
        for c in rng.choice(["a", "b", "c"], size=rng.integers(2, 4), replace=False):
            for k in range(rng.integers(1, 4)):
                run = f"g{b}{c}{k}"
                runs.append(run)
                labels.append(c)
                blocks[run] = f"group{b}"
    groups = np.repeat(runs, 2)  # two layers per run
    y = np.repeat(labels, 2)
    splitter = RepeatedStratifiedGroupSplit(20, 0.25, 0, blocks)
    seen = set()
    for train, test in splitter.split(np.zeros(len(y)), y, groups):
        train_groups = {blocks[r] for r in groups[train]}
        test_groups = {blocks[r] for r in groups[test]}
        assert test_groups and not train_groups & test_groups
        assert len(train) + len(test) == len(y)
        assert set(y[train]) == {"a", "b", "c"}
        seen.add(frozenset(test_groups))
    assert len(seen) > 3  # the repeats differ


def test_balanced_groups_give_the_exact_stratified_fraction():
    """8 groups of 2 runs of each of 3 classes: 25% of each class's 16 runs = 4 = 2 groups."""
    blocks = {f"s{s}{c}{k}": f"seed={s}" for s in range(8) for c in "abc" for k in range(2)}
    runs = np.array(list(blocks))
    y = np.array([r[2] for r in runs])
    for train, test in RepeatedStratifiedGroupSplit(10, 0.25, 3, blocks).split(
            np.zeros(len(y)), y, runs):
        assert len({blocks[r] for r in runs[test]}) == 2
        assert len({blocks[r] for r in runs[train]}) == 6
        for c in "abc":
            assert int(np.sum(y[test] == c)) == 4


def _sibling_store(n_groups: int = 10, per_class: int = 3, seed: int = 0):
    """Sibling groups of `per_class` runs per class (e.g. learning rates); the only signal is
    a class signature drawn afresh for every group, in every weight statistic's trajectory."""
    n = n_groups * per_class
    ds = synthetic_scan(n, planted=None, n_time=5, layers_per_arch=(2,), seed=seed)
    j = np.array([int(r[-3:]) for r in ds["run"].values])
    group = j // per_class
    ds = ds.assign_coords(seed=("run", group))
    k = np.array([("a", "b", "c").index(r) for r in ds["rule"].values])
    rng = np.random.default_rng(seed + 1)
    sig = rng.normal(size=(n_groups, 3, ds.sizes["stat"]))
    t = np.linspace(0, 1, ds.sizes["time"])
    ramp = 6.0 * sig[group, k][:, None, None, :, None, None] * t[None, :, None, None, None, None]
    ds["weights"] = ds["weights"] + ramp
    return ds


@pytest.fixture(scope="module")
def sibling_store():
    return _sibling_store()


def test_sibling_groups_are_the_per_run_seed_and_condition(sibling_store):
    groups = sibling_groups(sibling_store)
    seeds = sibling_store["seed"].values
    arch = sibling_store["architecture"].values
    task = sibling_store["task"].values
    for i, run in enumerate(sibling_store["run"].values):
        assert groups[str(run)] == f"seed={seeds[i]}, architecture={arch[i]}, task={task[i]}"
    assert len(set(groups.values())) == 10


def test_a_signature_private_to_each_group_is_found_only_with_splits_by_run(sibling_store):
    samples = make_samples(sibling_store, TrajectoryFeatures(["weights"], units=0, noise=0.0),
                           "rule")
    blocks = sibling_groups(sibling_store)
    forest = make_classifier("forest", tune=False, quick=True)
    by_run = cross_validate(samples, forest, RepeatedStratifiedGroupSplit(6, 0.25, 0))
    by_group = cross_validate(samples, forest, RepeatedStratifiedGroupSplit(6, 0.25, 0, blocks))
    assert by_run.run_accuracy > 0.85, by_run.run_accuracy     # the leak
    assert by_group.run_accuracy < 0.6, by_group.run_accuracy   # chance (1/3): the truth


def test_identify_splits_by_siblings_by_default_and_says_so(sibling_store):
    r = identify(sibling_store, **FAST)
    assert r.settings.split_by == "siblings"
    assert "the 10 groups of runs that share seed, architecture, task" in \
        r.settings.split_description
    assert r.headline.section.scores["forest"].run_accuracy < 0.6
    assert r.control.matched is None or r.control.matched.split_by in ("siblings", "run")


def test_when_the_store_cannot_be_split_by_siblings():
    ds = synthetic_scan(6, planted=None, n_time=5, layers_per_arch=(2,))
    labels = ds["rule"].values.astype(str)
    no_seed = ds.drop_vars("seed")
    assert split_units(no_seed, labels, "auto").by == "run"
    assert "no per-run seed" in split_units(no_seed, labels, "auto").description
    with pytest.raises(ConfigError, match="--split-by siblings: the store has no per-run seed"):
        split_units(no_seed, labels, "siblings")
    few = ds.assign_coords(seed=("run", ds["seed"].values % 3))  # 3 groups
    with pytest.raises(ConfigError, match="only 3 sibling group"):
        split_units(few, labels, "siblings")
    lone = ds.assign_coords(seed=("run", np.where(labels == "a", 99, ds["seed"].values)))
    with pytest.raises(ConfigError, match=r"class\(es\) a in a single sibling group"):
        plan(lone, split_by="siblings")
    own = ds.assign_coords(seed=("run", np.arange(ds.sizes["run"])))
    assert split_units(own, labels, "auto").by == "run"
    assert "no siblings" in split_units(own, labels, "auto").description
    assert split_units(ds, labels, "auto").by == "siblings"
    assert split_units(ds, labels, "run").blocks is None


def test_cli_split_by(tmp_path, capsys):
    from lrsim.analysis.features import split_runs
    from lrsim.store import write_run

    store = tmp_path / "store"
    for one in split_runs(synthetic_scan(4, planted="weights.abs_q75", effect=8.0, n_time=5)):
        write_run(one, store)
    out = tmp_path / "report"
    assert main(["identify", str(store), "--out", str(out), "--split-by", "seeds"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--split-by: invalid choice: 'seeds'" in err, err
    assert not out.exists()
    assert main(["identify", str(store), "--out", str(out), "--quick", "--classifiers",
                 "forest", "--splits", "3", "--permutations", "2", "--split-by", "run",
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "  splits: grouped by run (asked for: --split-by run)" in text
    assert "grouped by run (asked for: --split-by run)" in (out / "report.html").read_text()
