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
    return {"train": train, "disjoint": _store(other, root / "disjoint"),
            "extra": _store(extra, root / "extra"), "no_opt": _store(no_opt, root / "no_opt")}


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
