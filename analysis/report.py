"""The identification report: a self-contained `report.html` and `results.json`.

Both read one `IdentifyResult`; `results.json` is `IdentifyResult.to_dict()`, so every number
the page shows is in it. Figures are drawn with matplotlib's object API
(`matplotlib.figure.Figure`, no pyplot state) and embedded as base64 PNG data URIs; the page is
rendered from a Jinja2 template with autoescaping.
"""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lrsim.analysis.protocol import ALL_MEASURABLE
from lrsim.analysis.results import (
    CONTROL,
    EVERYTHING,
    MEASURABLE,
    MODEL_INTERNAL,
    Breakdown,
    Confusion,
    IdentifyResult,
    TrajectoryPanel,
)
from lrsim.outdir import claim, write_atomic

CLASSIFIER_NAMES = {"linear": "linear (logistic)", "forest": "random forest",
                    "temporal": "temporal conv net"}
KIND_COLOURS = {MEASURABLE: "#3465a4", MODEL_INTERNAL: "#75507b", CONTROL: "#c4a000",
                EVERYTHING: "#888a85"}
FACTOR_LABELS = {"units": "units recorded per layer (0 = all)", "noise": "relative noise",
                 "time_points": "time points", "fraction": "fraction of trajectory seen",
                 "training_networks": "fraction of training networks"}


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def fig_headline(r: IdentifyResult) -> str:
    """Bars per classifier: measurable observables cross-validated, held out (each test asked
    for), and the loss-curve control; chance and the permutation null's 95th percentile."""
    h = r.headline
    clfs = list(h.section.scores)
    series = [("measurable, cross-validated", [h.section.scores[c].accuracy for c in clfs],
               [h.section.scores[c].accuracy_sem for c in clfs], KIND_COLOURS[MEASURABLE])]
    for i, ho in enumerate(h.held_out):
        series.append((f"measurable, held out ({ho.name})",
                       [ho.scores[c].accuracy if c in ho.scores else math.nan for c in clfs],
                       [ho.scores[c].accuracy_se if c in ho.scores else 0.0 for c in clfs],
                       ("#f57900", "#ce5c00", "#8f5902")[i % 3]))
    if r.control is not None:
        ls = r.control.loss_curve.scores
        series.append(("loss/accuracy curves (control)", [ls[c].accuracy for c in clfs],
                       [ls[c].accuracy_sem for c in clfs], KIND_COLOURS[CONTROL]))
    fig = Figure(figsize=(6.8, 3.6))
    ax = fig.add_subplot()
    x = np.arange(len(clfs))
    w = 0.8 / len(series)
    for i, (name, vals, errs, colour) in enumerate(series):
        ax.bar(x - 0.4 + w * (i + 0.5), vals, w, yerr=errs, capsize=3, label=name, color=colour)
    ax.axhline(r.chance, color="k", ls="--", lw=1, label="chance (1/k)")
    ax.axhline(h.null.q95, color="#cc0000", ls=":", lw=1.2, label="permutation null, 95th pct")
    ax.set_xticks(x, [CLASSIFIER_NAMES.get(c, c) for c in clfs])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test accuracy (per layer)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


def fig_confusion(conf: Confusion, title: str) -> str:
    """A confusion matrix, rows normalised to the fraction of each true class."""
    frac = conf.fractions()
    n = len(conf.classes)
    fig = Figure(figsize=(1.4 + 0.55 * n, 1.0 + 0.5 * n))
    ax = fig.add_subplot()
    im = ax.imshow(frac, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(n), conf.classes, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), conf.classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=8)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{frac[i, j]:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if frac[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _png(fig)


def fig_null(r: IdentifyResult) -> str:
    """Histogram of the headline's label-permutation null with the observed accuracy."""
    null = r.headline.null
    fig = Figure(figsize=(5.0, 2.8))
    ax = fig.add_subplot()
    ax.hist(null.scores, bins=max(5, min(30, len(null.scores))), color="#888a85")
    ax.axvline(null.observed, color=KIND_COLOURS[MEASURABLE], lw=2, label="observed")
    ax.axvline(r.chance, color="k", ls="--", lw=1, label="chance (1/k)")
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy (random forest, measurable observables)")
    ax.set_ylabel("permutations")
    ax.legend(fontsize=7)
    return _png(fig)


def fig_breakdowns(r: IdentifyResult) -> str:
    """Accuracy against units recorded, noise, time points and fraction seen: the headline
    cross-validated, and each held-out test asked for."""
    curves: list[tuple[str, Breakdown, str]] = [
        ("cross-validated", r.headline.breakdown, KIND_COLOURS[MEASURABLE])]
    curves += [(f"held out ({ho.name})", ho.breakdown, "#f57900")
               for ho in r.headline.held_out if ho.breakdown is not None]
    factors = list(r.headline.breakdown.factors())
    fig = Figure(figsize=(2.3 * len(factors), 2.7))
    axes = np.atleast_1d(fig.subplots(1, len(factors), sharey=True))
    for ax, key in zip(axes, factors):
        for name, b, colour in curves:
            rows = b.factors().get(key, [])
            if not rows:
                continue
            xs = [p.value for p in rows]
            pos = (np.arange(len(xs)) if key == "units" else
                   np.log2(np.asarray(xs, float)) if key == "training_networks" else
                   np.asarray(xs, float))
            ax.errorbar(pos, [p.accuracy for p in rows], yerr=[p.accuracy_sem for p in rows],
                        marker="o", capsize=3, color=colour, label=name)
            if key == "units":
                ax.set_xticks(pos, ["all" if v == 0 else str(v) for v in xs])
            if key == "training_networks":
                ax.set_xticks(pos, [f"{v:g}" for v in xs])
        ax.axhline(r.chance, color="k", ls="--", lw=1)
        ax.axhline(r.protocol.target, color="#cc0000", ls=":", lw=1)
        ax.set_xlabel(FACTOR_LABELS[key], fontsize=8)
        ax.set_ylim(0, 1.05)
        if key == "time_points":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("accuracy (random forest)")
    if len(curves) > 1:
        axes[0].legend(fontsize=6, loc="lower right")
    return _png(fig)


def draw_panel(ax: Axes, panel: TrajectoryPanel) -> None:
    """One observable's statistic over training: per class, the mean over runs and a band of
    -/+ one standard deviation."""
    x = np.asarray(panel.progress, float)
    colours = [f"C{i % 10}" for i in range(len(panel.bands))]
    for band, colour in zip(panel.bands, colours):
        ax.plot(x, band.mean, color=colour, lw=1.4, label=f"{band.label} ({band.n_runs})")
        ax.fill_between(x, band.lower, band.upper, color=colour, alpha=0.15, lw=0)
    stat = f" ({panel.statistic})" if panel.statistic else ""
    ax.set_title(f"{panel.observable}{stat} [{panel.kind}]", fontsize=8,
                 color=KIND_COLOURS.get(panel.kind, "k"))
    ax.set_xlabel(panel.progress_label, fontsize=7)
    units = "" if panel.units is None else \
        f" [{'dimensionless' if panel.units == '1' else panel.units}]"
    over = f", mean over {' and '.join(d + 's' for d in panel.averaged_over)}" \
        if panel.averaged_over else ""
    ax.set_ylabel(f"{panel.statistic or panel.observable}{over}{units}", fontsize=7)
    ax.set_xlim(0, 1)
    ax.tick_params(labelsize=7)


def fig_trajectories(panels: list[TrajectoryPanel]) -> str | None:
    """Trajectory panels, one per observable, classes in colour (legend on the first)."""
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(3.4 * cols, 2.7 * rows + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, panel in zip(axes, panels):
        draw_panel(ax, panel)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 5),
               fontsize=7)
    return _png(fig)


def fig_observables(r: IdentifyResult) -> str:
    """Accuracy per observable (random forest), coloured by kind."""
    rows = r.per_observable
    fig = Figure(figsize=(6.0, 0.6 + 0.4 * len(rows)))
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    ax.barh(y, [o.accuracy for o in rows], xerr=[o.accuracy_sem for o in rows], capsize=3,
            color=[KIND_COLOURS.get(o.kind, "#4e9a06") for o in rows])
    ax.axvline(r.chance, color="k", ls="--", lw=1)
    ax.axvline(r.protocol.target, color="#cc0000", ls=":", lw=1)
    ax.set_yticks(y, [f"{o.name} [{o.kind}]" for o in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy (random forest)")
    return _png(fig)


def fig_frontier(r: IdentifyResult) -> str | None:
    """Accuracy against time points for every (units, noise) view of all the measurable
    observables together; the cost-accuracy frontier circled; the target dotted."""
    ps = r.protocol
    together = ALL_MEASURABLE if len(r.measurable_observables) > 1 else \
        r.measurable_observables[0]
    grid = [p for p in ps.tried if p.observable == together]
    if not grid:
        return None
    fig = Figure(figsize=(6.4, 3.4))
    ax = fig.add_subplot()
    for i, (u, n) in enumerate(sorted({(p.units, p.noise) for p in grid},
                                      key=lambda v: (-(math.inf if v[0] == 0 else v[0]),
                                                     v[1]))):
        pts = sorted((p for p in grid if p.units == u and p.noise == n),
                     key=lambda p: p.time_points)
        ax.errorbar([p.time_points for p in pts], [p.accuracy for p in pts],
                    yerr=[p.accuracy_sem for p in pts], marker="o", ms=4, capsize=2,
                    color=f"C{i % 10}",
                    label=f"{'all' if u == 0 else u} units, noise {n:g}")
    front = [p for p in ps.frontier if p.observable == together]
    ax.scatter([p.time_points for p in front], [p.accuracy for p in front], s=140,
               facecolors="none", edgecolors="k", lw=1.2, label="on the frontier", zorder=3)
    ax.axhline(ps.target, color="#cc0000", ls=":", lw=1.2, label=f"target {ps.target:.0%}")
    ax.axhline(r.chance, color="k", ls="--", lw=1, label="chance (1/k)")
    ax.set_ylim(0, 1.05)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("time points recorded")
    ax.set_ylabel("accuracy (random forest)")
    ax.set_title(f"{together}", fontsize=8)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


def fig_matched(r: IdentifyResult) -> str | None:
    """The control: the loss-curve classifier on every run and on the matched runs (with its
    null), and the measurable observables on the matched runs (with theirs)."""
    if r.control is None or r.control.matched is None or r.control.matched.loss_curve is None:
        return None
    m = r.control.matched
    bars = [("loss curves,\nall runs", r.control.loss_curve.scores[
                 "forest" if "forest" in r.control.loss_curve.scores
                 else r.control.loss_curve.best], None, KIND_COLOURS[CONTROL]),
            ("loss curves,\nmatched runs", m.loss_curve, m.loss_curve_null,
             KIND_COLOURS[CONTROL]),
            ("measurable,\nmatched runs", m.measurable, m.measurable_null,
             KIND_COLOURS[MEASURABLE])]
    fig = Figure(figsize=(5.4, 3.0))
    ax = fig.add_subplot()
    x = np.arange(len(bars))
    ax.bar(x, [b[1].accuracy for b in bars], 0.6, yerr=[b[1].accuracy_sem for b in bars],
           capsize=3, color=[b[3] for b in bars])
    for i, (_, _, null, _) in enumerate(bars):
        if null is not None:
            ax.plot([i - 0.35, i + 0.35], [null.q95] * 2, color="#cc0000", ls=":", lw=1.5)
    ax.axhline(r.chance, color="k", ls="--", lw=1, label=f"chance, all classes ({r.chance:.2f})")
    ax.axhline(m.chance, color="#555753", ls="-.", lw=1,
               label=f"chance, matched classes ({m.chance:.2f})")
    ax.plot([], [], color="#cc0000", ls=":", label="permutation null, 95th pct")
    ax.set_xticks(x, [b[0] for b in bars], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy (random forest)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


def fig_importance(r: IdentifyResult, top: int = 15) -> str:
    """The most informative statistics: accuracy drop when a channel is permuted."""
    rows = r.importance[:top]
    fig = Figure(figsize=(6.0, 0.6 + 0.3 * len(rows)))
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    ax.barh(y, [row.drop for row in rows], xerr=[row.drop_sem for row in rows], capsize=2,
            color="#75507b")
    ax.set_yticks(y, [row.channel for row in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("accuracy drop when permuted (measurable observables)")
    return _png(fig)


def fig_generalisation(r: IdentifyResult) -> str | None:
    """Held-out accuracy (measurable observables) per held-out set, each classifier."""
    rows = [*r.headline.held_out, *r.generalisation]
    bars = [(f"{h.name}\n({c})", s.accuracy, s.accuracy_se)
            for h in rows for c, s in h.scores.items()]
    if not bars:
        return None
    fig = Figure(figsize=(6.4, 0.6 + 0.45 * len(bars)))
    ax = fig.add_subplot()
    y = np.arange(len(bars))
    ax.barh(y, [b[1] for b in bars], xerr=[b[2] for b in bars], capsize=3, color="#f57900")
    ax.axvline(r.chance, color="k", ls="--", lw=1)
    ax.set_yticks(y, [b[0] for b in bars], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("held-out accuracy (per layer, measurable observables)")
    return _png(fig)


def figures(r: IdentifyResult) -> dict[str, str]:
    """Every figure of the page, by name (absent where there is nothing to show)."""
    h = r.headline
    best = h.section.best
    out = {"headline": fig_headline(r),
           "confusion": fig_confusion(h.section.scores[best].confusion,
                                      f"{CLASSIFIER_NAMES.get(best, best)}, measurable, "
                                      f"cross-validated"),
           "null": fig_null(r), "breakdown": fig_breakdowns(r),
           "observables": fig_observables(r), "importance": fig_importance(r)}
    for i, ho in enumerate(h.held_out):
        out[f"confusion_held_out_{i}"] = fig_confusion(
            ho.scores[ho.lead].confusion,
            f"{CLASSIFIER_NAMES.get(ho.lead, ho.lead)}, measurable, held out {ho.name}")
    optional = {"trajectories": fig_trajectories(r.trajectories),
                "frontier": fig_frontier(r), "matched": fig_matched(r),
                "generalisation": fig_generalisation(r)}
    if r.control is not None:
        c = r.control.loss_curve
        optional["confusion_control"] = fig_confusion(
            c.scores[c.best].confusion, f"{CLASSIFIER_NAMES.get(c.best, c.best)}, "
            f"loss/accuracy curves only")
        m = r.control.matched
        if m is not None and m.measurable is not None:
            optional["confusion_matched"] = fig_confusion(
                m.measurable.confusion, "random forest, measurable, runs matched on loss curves")
    out.update({k: v for k, v in optional.items() if v is not None})
    return out


def render(r: IdentifyResult) -> str:
    """The page's HTML."""
    env = Environment(loader=PackageLoader("lrsim.analysis", "templates"),
                      autoescape=select_autoescape(["html"]))
    added = r.control.added(r.headline.section) if r.control is not None else {}
    return env.get_template("report.html").render(
        r=r, fig=figures(r), best=r.headline.section.best, names=CLASSIFIER_NAMES,
        added=added, isfinite=math.isfinite)


def write_report(results: IdentifyResult, out: str | Path) -> Path:
    """Write `out/report.html` (figures embedded) and `out/results.json`; return the page."""
    out = Path(out)
    claim(out, "report")  # never overwrites a report.html lrsim did not write
    page = out / "report.html"
    write_atomic(page, render(results))
    write_atomic(out / "results.json", json.dumps(results.to_dict(), indent=1, sort_keys=True,
                                                  allow_nan=False))
    return page
