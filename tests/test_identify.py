"""The identification study against planted answers.

- A label planted in one measurable statistic: the headline (measurable observables only)
  finds it, cross-validated and on held-out runs (`--holdout`, a `--test` store), each with its
  confusion matrix and breakdown; the trajectory panel of that statistic shows the planted
  ramp (class k rises by effect * k over training).
- A label carried only by `alignment` (model-internal): the headline is at chance and the
  model-internal section is high.
- Typed results: `results.json` is the dataclasses' dict; the CLI's defaults have one source.
- Bad input: one line, exit 2, nothing written, before any fit.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from lrsim.analysis import defaults
from lrsim.analysis.features import split_runs, synthetic_scan
from lrsim.analysis.identify import identify, plan
from lrsim.analysis.labels import with_label
from lrsim.analysis.null import default_permutations
from lrsim.analysis.progress import Progress
from lrsim.analysis.report import render
from lrsim.analysis.results import IdentifyResult
from lrsim.cli import main
from lrsim.errors import ConfigError
from lrsim.store import write_run

PLANTED = "weights.abs_q75"
EFFECT = 8.0
FAST = dict(classifiers=["forest"], quick=True, n_splits=4, n_permutations=3)


def _planted(seed: int = 3, prefix: str = "r", n: int = 8):
    return synthetic_scan(n, planted=PLANTED, effect=EFFECT, n_time=5, seed=seed,
                          run_prefix=prefix)


def _alignment_only(seed: int = 5):
    """No signal anywhere but in `alignment`: a ramp of 3 * k over training for class k."""
    ds = synthetic_scan(8, planted=None, n_time=5, seed=seed)
    k = np.array([("a", "b", "c").index(r) for r in ds["rule"].values], float)
    t = np.linspace(0, 1, ds.sizes["time"])
    ds["alignment"] = ds["alignment"] + 3.0 * k[:, None, None] * t[None, :, None]
    return ds


@pytest.fixture(scope="module")
def planted_result():
    return identify(_planted(), holdout="architecture=32", test_ds=_planted(4, "s", 4),
                    test_store="other", **FAST)


@pytest.fixture(scope="module")
def alignment_result():
    return identify(_alignment_only(), **FAST)


def test_headline_finds_the_planted_statistic(planted_result):
    r = planted_result
    assert r.headline.section.observables == ["weights", "activations", "activity_change"]
    assert "alignment" not in r.headline.section.observables
    f = r.headline.section.scores["forest"]
    assert f.accuracy >= 0.9 and f.run_accuracy >= 0.9
    assert r.headline.null.q95 < 0.7 and r.headline.null.p_value == pytest.approx(1 / 4)
    assert r.importance[0].channel == PLANTED
    b = r.headline.breakdown
    assert [p.value for p in b.units] == [0, 10] and [p.value for p in b.noise] == [0.0, 0.5]
    assert [p.value for p in b.time_points] == [3, 5]
    assert all(p.accuracy >= 0.8 for p in b.units + b.noise)


def test_held_out_tests_are_in_the_headline(planted_result):
    held = {h.kind: h for h in planted_result.headline.held_out}
    assert set(held) == {"holdout", "test_store"}
    ho, ts = held["holdout"], held["test_store"]
    assert (ho.key, ho.value, ho.n_test_runs, ho.n_train_runs) == ("architecture", "32", 12, 12)
    assert (ts.value, ts.n_train_runs, ts.n_test_runs) == ("other", 24, 12)
    for h in (ho, ts):
        s = h.scores["forest"]
        assert s.accuracy >= 0.9 and s.run_accuracy >= 0.9
        counts = np.asarray(s.confusion.counts)
        assert s.confusion.classes == ["a", "b", "c"]
        assert np.trace(counts) / counts.sum() == pytest.approx(s.accuracy)
        assert {p.value for p in h.breakdown.units} == {0, 10}
        assert {p.value for p in h.breakdown.time_points} == {3, 5}
        assert h.control is not None and h.control.accuracy < 0.75  # loss curves are noise


def test_trajectory_panel_shows_the_planted_ramp(planted_result):
    """Class k's abs_q75 of the weights rises by EFFECT * k from the first to the last point
    (plus pure noise, averaged over 2-3 layers and 8 runs)."""
    panels = {p.observable: p for p in planted_result.trajectories}
    assert set(panels) == {"weights", "activations", "activity_change", "alignment", "loss",
                           "test_accuracy"}
    w = panels["weights"]
    assert w.statistic == "abs_q75" and w.kind == "measurable"
    assert w.progress == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    rise = {b.label: b.mean[-1] - b.mean[0] for b in w.bands}
    for k, c in enumerate("abc"):
        assert rise[c] == pytest.approx(EFFECT * k, abs=1.2), rise
    assert all(lo <= m <= hi for b in w.bands for lo, m, hi in zip(b.lower, b.mean, b.upper))
    assert panels["alignment"].kind == "model-internal" and panels["loss"].kind == "control"


def test_alignment_alone_gives_a_chance_headline_and_a_high_internal_section(alignment_result):
    r = alignment_result
    assert r.model_internal_observables == ["alignment"]
    head = r.headline.section.scores["forest"]
    assert abs(head.accuracy - 1 / 3) < 0.17, head.accuracy
    assert r.headline.null.at_chance or head.accuracy < r.headline.null.q95 + 0.1
    mi = r.model_internal
    alone = {o.name: o for o in mi.alone}
    assert alone["alignment"].accuracy >= 0.9
    assert mi.everything.accuracy >= 0.8 and mi.added_to_measurable > 0.3
    kinds = {o.name: o.kind for o in r.per_observable}
    assert kinds["alignment"] == "model-internal" and kinds["weights"] == "measurable"
    assert kinds["loss"] == "control"
    assert r.protocol.cheapest is None and r.protocol.best is not None
    assert "No recording protocol tried reached 90%" in r.protocol.sentence


def test_results_are_typed_and_json_safe(planted_result):
    d = planted_result.to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert back["headline"]["section"]["scores"]["forest"]["accuracy"] == pytest.approx(
        planted_result.headline.section.scores["forest"].accuracy)
    assert back["settings"]["n_permutations"] == 3 and back["settings"]["target"] == 0.9
    assert isinstance(planted_result, IdentifyResult)
    # results.json holds the whole result: it reads back into the dataclasses, unchanged
    again = IdentifyResult.from_dict(back)
    assert again.to_dict() == back
    assert again.headline.held_out[0].scores["forest"].confusion.classes == ["a", "b", "c"]
    def text(html):  # the page without its figures' bytes
        return re.sub(r'src="data:image/png;base64,[^"]*"', "src", html)

    assert text(render(again)) == text(render(planted_result))


def test_rule_optimizer_label_is_derived_per_run():
    ds = synthetic_scan(4, planted=None, n_time=3)
    ds = ds.assign_coords(optimizer=("run", np.where(np.arange(ds.sizes["run"]) % 2, "adam",
                                                     "sgd")))
    out = with_label(ds, "rule_optimizer")
    want = [f"{r}+{o}" for r, o in zip(ds["rule"].values, ds["optimizer"].values)]
    assert list(out["rule_optimizer"].values) == want
    assert plan(ds, label="rule_optimizer").classes == sorted(set(want))
    with pytest.raises(ConfigError, match="needs per-run rule and optimizer"):
        with_label(ds.drop_vars("optimizer"), "rule_optimizer")


def test_cli_defaults_have_one_source(capsys):
    assert main(["identify", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert (f"(default {defaults.N_PERMUTATIONS}, {defaults.N_PERMUTATIONS_QUICK} with --quick)"
            in text)
    assert f"(default {defaults.TARGET_ACCURACY})" in text
    assert "rule_optimizer" in text
    assert default_permutations(False) == defaults.N_PERMUTATIONS
    assert default_permutations(True) == defaults.N_PERMUTATIONS_QUICK


def _store(ds, folder):
    for one in split_runs(ds):
        write_run(one, folder)
    return folder


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    train = _store(_planted(n=4), root / "train")
    other = synthetic_scan(3, rules=("x", "y"), planted=None, n_time=5, run_prefix="o")
    extra = synthetic_scan(3, rules=("a", "z"), planted=None, n_time=5, run_prefix="e")
    no_opt = _planted(n=4, prefix="n").drop_vars("optimizer")
    no_change = _planted(n=4, prefix="c").drop_vars("activity_change")
    return {"train": train, "disjoint": _store(other, root / "disjoint"),
            "extra": _store(extra, root / "extra"), "no_opt": _store(no_opt, root / "no_opt"),
            "no_change": _store(no_change, root / "no_change")}


@pytest.mark.parametrize("args, message", [
    (["--label", "colour"], r"argument --label: invalid choice: 'colour' \(choose from "
                            r"'?rule'?, '?rule_family'?, '?optimizer'?, '?rule_optimizer'?\)"),
    (["--target", "0"], r"--target must be an accuracy in \(0, 1\]"),
    (["--target", "1.5"], r"--target must be an accuracy in \(0, 1\]"),
    (["--target", "nan"], r"--target must be an accuracy in \(0, 1\]"),
    (["--target", "high"], r"--target must be an accuracy in \(0, 1\], e\.g\. 0\.9 \(got 'high'\)"),
    (["--test", "{disjoint}"], r"--test store has no rule in common with the training runs "
                               r"\(test: x, y; training: a, b, c\)"),
    (["--test", "{extra}"], r"--test store has rule z, which the training runs lack"),
    (["--holdout", "rule=a"], r"--holdout rule=a has no rule in common with the training runs"),
    (["--holdout", "colour=red"], r"'colour' is not a per-run key of this store; allowed: "),
    (["--label", "optimizer", "--store", "no_opt"], r"--label optimizer: the store has no "
                                                   r"per-run 'optimizer' \(per-run keys: "),
    (["--features", "absolute"], r"argument --features: invalid choice: 'absolute' \(choose "
                                 r"from '?recorded'?, '?relative'?\)"),
    (["--time-axis", "epoch"], r"argument --time-axis: invalid choice: 'epoch'"),
    (["--time-axis", "progress", "--store", "no_change"],
     r"--time-axis progress needs activity_change \(learning progress is the path the output "
     r"layer's activity travels\), which the store does not record \(it has activations, "),
])
def test_bad_input_is_one_line_exit_2_nothing_written(stores, tmp_path, capsys, args, message):
    store = stores["train"]
    if "--store" in args:
        i = args.index("--store")
        store = stores[args[i + 1]]
        args = args[:i] + args[i + 2:]
    args = [a.format(**{k: str(v) for k, v in stores.items()}) for a in args]
    out = tmp_path / "report"
    assert main(["identify", str(store), "--out", str(out), "--quick", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(("lrsim: error: ", "lrsim identify: error: ")), err
    assert err.count("\n") == 1, err
    assert re.search(message, err), err
    assert not out.exists()


def test_progress_lines_and_quiet():
    """Not a terminal: plain lines (no \\r), at most one per interval and one at the end of a
    phase that lasted that long; off: nothing."""
    import io

    buf = io.StringIO()
    p = Progress("identify", stream=buf, interval=0.0)
    assert p.mode == "lines"
    with p.phase("cross-validation: forest", 3, "splits") as tick:
        for _ in range(3):
            tick()
    p.say("writing the report")
    lines = buf.getvalue().splitlines()
    assert [ln.split(" (")[0] for ln in lines[:3]] == [
        "identify: cross-validation: forest: 1/3 splits", "identify: cross-validation: "
        "forest: 2/3 splits", "identify: cross-validation: forest: 3/3 splits"]
    assert lines[-1] == "identify: writing the report"
    assert "\r" not in buf.getvalue()
    slow = io.StringIO()
    with Progress("identify", stream=slow, interval=3600).phase("x", 5) as tick:
        for _ in range(5):
            tick()
    assert slow.getvalue() == ""  # a phase shorter than the interval says nothing
    quiet = io.StringIO()
    q = Progress("identify", enabled=False, stream=quiet)
    with q.phase("x", 2) as tick:
        tick()
    q.say("y")
    assert quiet.getvalue() == ""


def test_confused_pairs_from_a_known_matrix():
    from lrsim.analysis.results import Confusion

    c = Confusion(["a", "b", "c"], [[6, 4, 0], [2, 8, 0], [0, 1, 9]])
    pairs = c.confused_pairs(0.1)
    assert [(p.a, p.b) for p in pairs] == [("a", "b")]
    assert pairs[0].rate == pytest.approx((0.4 + 0.2) / 2)
    assert [(p.a, p.b) for p in c.confused_pairs(0.04)] == [("a", "b"), ("b", "c")]


# -- features that transfer: --features relative | recorded, --time-axis step | progress -------

# the power of a network's scale s each synthetic statistic carries (var: s^2, sq_var: s^4, ...)
_POWER = {"raw_var": 2, "abs_var": 2, "sq_mean": 2, "sq_median": 2, "sq_q75": 2, "sq_var": 4}


def _scaled(scales, prefix, seed, n=6, effect=3.0):
    """Runs that differ by rule only in the ratio weights.abs_q75(t) / weights.abs_q75(t_0)
    = 1 + effect * k * t / T (class k) and otherwise by a per-network scale s (every statistic
    carries s to its power, as it would if a network's weights and activity were s times
    larger), on top of log-normal noise. `task` names the scale. Relative to initial values,
    s cancels; as recorded, networks of an unseen scale lie outside everything seen."""
    ds = synthetic_scan(n, planted=None, n_time=5, seed=seed, run_prefix=prefix,
                        layers_per_arch=(2,)).isel(units=[0], noise=[0])
    ds = ds.drop_vars(["loss", "test_accuracy"])  # no control: keeps the study small
    rng = np.random.default_rng(seed)
    k = np.array([("a", "b", "c").index(r) for r in ds["rule"].values], float)
    s = np.array([scales[i % len(scales)] for i in range(ds.sizes["run"])], float)
    t = np.linspace(0, 1, ds.sizes["time"])
    power = np.array([_POWER.get(st, 1) for st in ds["stat"].values], float)
    for obs in ("weights", "activations", "activity_change"):
        da = ds[obs].transpose("run", "time", "layer", "stat", "units", "noise")
        val = np.exp(0.1 * rng.normal(size=da.shape))
        val *= s[:, None, None, None, None, None] ** power[None, None, None, :, None, None]
        if obs == "weights":
            j = list(ds["stat"].values).index("abs_q75")
            val[:, :, :, j] *= 1 + effect * k[:, None, None, None, None] * t[None, :, None, None,
                                                                           None]
        ds[obs] = (da.dims, np.where(np.isfinite(da.values), val, np.nan))
    return ds.assign_coords(task=("run", [f"scale{int(v)}" for v in s]))


@pytest.fixture(scope="module")
def scale_results():
    """The same study (hold out scale 10, test on a store of scale 100) read both ways; the
    weights (measurable) and alignment (model-internal) only, to keep it small."""
    train, test = _scaled((1, 10), "r", 0), _scaled((100,), "s", 1, n=3)
    return {f: identify(train, holdout="task=scale10", test_ds=test, test_store="scale100",
                        features=f, observables=["weights", "alignment"], **FAST)
            for f in ("recorded", "relative")}


def test_relative_features_transfer_across_scales_recorded_do_not(scale_results):
    """Every held-out test (--holdout, --test, the automatic hold-outs) reads the features
    asked for: relative to initial values they identify networks of an unseen scale, as
    recorded they are at chance (1/3)."""
    rel, rec = scale_results["relative"], scale_results["recorded"]
    assert rel.features.features == "relative" and rel.features.reference == "initial"
    assert rec.features.features == "recorded" and rec.features.reference == "none"
    for r in (rel, rec):
        assert [h.name for h in r.headline.held_out] == ["task=scale10", "--test scale100"]
        assert [g.name for g in r.generalisation] == ["task=scale1", "task=scale10"]
        assert r.importance[0].channel == "weights.abs_q75"
    for h in (*rel.headline.held_out, *rel.generalisation):
        assert h.scores["forest"].accuracy >= 0.7, (h.name, h.scores["forest"].accuracy)
    for h in (*rec.headline.held_out, *rec.generalisation):
        assert h.scores["forest"].accuracy <= 0.45, (h.name, h.scores["forest"].accuracy)
    # within the store (both scales in training) and per observable, relative is better too
    assert rel.headline.section.scores["forest"].accuracy >= 0.9
    weights = {r: next(o for o in x.per_observable if o.name == "weights").accuracy
               for r, x in scale_results.items()}
    # (within the store both scales are trained on, so the gap is smaller; 4 splits of 6 test
    # runs, grouped by sibling networks, move it by ~0.1)
    assert weights["relative"] >= 0.9 > weights["recorded"] + 0.1, weights
    assert rel.protocol.best.accuracy >= 0.9


def test_the_features_are_stated_and_read_back(scale_results):
    r = scale_results["relative"]
    want = "relative to initial value, time on the step axis"
    assert r.features.description == want
    back = IdentifyResult.from_dict(json.loads(json.dumps(r.to_dict(), allow_nan=False)))
    assert back.features == r.features
    assert f"features: {want}" in render(r)
    from lrsim.commands.identify import summary_lines

    assert f"  features: {want}" in summary_lines(r)
    # a results.json from before features were a choice reads back as recorded, step axis
    old = r.to_dict()
    del old["features"]
    assert IdentifyResult.from_dict(old).features.description == (
        "values as recorded, time on the step axis")


def test_the_control_reads_its_curves_as_recorded():
    """With --features relative --time-axis progress the sweeps read the loss curve as
    recorded on the step axis: sign(x) log(1 + |x|) of the stored values (numpy), plus depth;
    the measurable observables as asked."""
    from lrsim.analysis.features import TrajectoryFeatures, make_samples
    from lrsim.analysis.sweeps import SweepScorer

    ds = synthetic_scan(2, planted=None, n_time=4, layers_per_arch=(2,))
    sweep = SweepScorer(ds, "rule", None, None, units=0, noise=0.0, reference="initial",
                        time_axis="progress", as_recorded=["loss", "test_accuracy"])
    s = sweep.samples(["loss"])
    loss = ds["loss"].values
    want = np.repeat(np.sign(loss) * np.log1p(np.abs(loss)), 2, axis=0)  # 2 layers per run
    np.testing.assert_allclose(s.X[:, :-1], want)
    w = sweep.samples(["weights"])
    ref = make_samples(ds, TrajectoryFeatures(["weights"], reference="initial",
                                              time_axis="progress"))
    np.testing.assert_array_equal(w.X, ref.X)
    assert not np.allclose(w.X, make_samples(ds, TrajectoryFeatures(["weights"])).X)


def test_cli_features_and_time_axis(tmp_path, capsys):
    """`--features relative --time-axis progress` end to end: stated in the summary, the
    report and results.json; the defaults come from `lrsim.analysis.defaults`."""
    small = _planted(n=3).drop_vars(["loss", "test_accuracy"]).isel(units=[0], noise=[0])
    store = _store(small, tmp_path / "runs")
    out = tmp_path / "report"
    assert main(["identify", str(store), "--out", str(out), "--quick", "--quiet",
                 "--classifiers", "forest", "--splits", "2", "--permutations", "1",
                 "--observables", "weights", "--features", "relative",
                 "--time-axis", "progress"]) == 0
    want = "relative to initial value, time on the learning-progress axis"
    assert f"  features: {want}" in capsys.readouterr().out.splitlines()
    got = json.loads((out / "results.json").read_text())["features"]
    assert got == {"features": "relative", "reference": "initial", "time_axis": "progress",
                   "description": want}
    assert f"features: {want}" in (out / "report.html").read_text()
    assert main(["identify", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default {defaults.FEATURES_DEFAULT})" in text
    assert f"(default {defaults.TIME_AXIS_DEFAULT})" in text
    assert plan(_planted(n=2)).features == defaults.FEATURES_DEFAULT


def test_feature_choices_are_checked_before_any_fit():
    ds = _planted(n=2)
    with pytest.raises(ConfigError, match=r"--features must be one of recorded, relative "
                                          r"\(got 'absolute'\)"):
        identify(ds, features="absolute", **FAST)
    with pytest.raises(ConfigError, match=r"--time-axis must be one of step, progress"):
        identify(ds, time_axis="epoch", **FAST)
    with pytest.raises(ConfigError, match=r"--time-axis progress needs activity_change .* "
                                          r"which the --test store does not record"):
        plan(ds, time_axis="progress", test_ds=_planted(4, "s", 2).drop_vars("activity_change"))


def test_several_training_stores_are_read_as_one(tmp_path, capsys):
    """`lrsim identify A B`: the runs of both stores train the classifier (the summary and
    results.json count them and name both); a store given twice, a copy of a run in both, or
    --test equal to one of them is one line, exit 2, nothing written."""
    small = lambda prefix, seed: _planted(n=3, prefix=prefix, seed=seed).drop_vars(  # noqa: E731
        ["loss", "test_accuracy"]).isel(units=[0], noise=[0])
    a = _store(small("a", 1), tmp_path / "a")
    b = _store(small("b", 2), tmp_path / "b")
    fast = ["--quick", "--quiet", "--classifiers", "forest", "--splits", "2",
            "--permutations", "1", "--observables", "weights"]
    out = tmp_path / "report"
    assert main(["identify", str(a), str(b), "--out", str(out), *fast]) == 0
    got = json.loads((out / "results.json").read_text())
    assert got["store"] == f"{a}, {b}"
    assert got["n_runs"] == 18  # 3 rules x 3 runs in each store
    capsys.readouterr()
    copy = tmp_path / "copy"
    copy.mkdir()
    first = sorted(a.glob("*.nc"))[0]
    (copy / first.name).write_bytes(first.read_bytes())
    for args, message in (([str(a), str(a)], r"a training store is given twice"),
                          ([str(a), str(copy)], rf"run {first.stem} is in both '{a}' and "
                                                rf"'{copy}' \(a copy\?\); open each store once"),
                          ([str(a), str(b), "--test", str(b)],
                           r"--test .* is the training store itself")):
        bad_out = tmp_path / "bad"
        assert main(["identify", *args, "--out", str(bad_out), *fast]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and re.search(message, err), err
        assert not bad_out.exists()
