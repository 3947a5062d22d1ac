"""The identification report: a self-contained `report.html` and `results.json`.

Figures are drawn with matplotlib's object API (`matplotlib.figure.Figure`, no pyplot state)
and embedded as base64 PNG data URIs; the page is rendered from a Jinja2 template with
autoescaping; `results.json` holds every number the page shows.
"""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from matplotlib.figure import Figure

from lrsim.outdir import claim, write_atomic

CLASSIFIER_NAMES = {"linear": "linear (logistic)", "forest": "random forest",
                    "temporal": "temporal conv net"}


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def fig_accuracy(results: dict[str, Any]) -> str:
    """Bars: accuracy (mean +/- sem) per classifier, all observables vs the loss/accuracy
    control, with chance and the permutation null's 95th percentile."""
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    clfs = list(results["main"])
    x = np.arange(len(clfs))
    main = [results["main"][c]["accuracy_mean"] for c in clfs]
    main_e = [results["main"][c]["accuracy_sem"] for c in clfs]
    ax.bar(x - 0.2, main, 0.4, yerr=main_e, capsize=3, label="everything recorded", color="#3465a4")
    if results.get("control"):
        ctrl = [results["control"][c]["accuracy_mean"] for c in clfs]
        ctrl_e = [results["control"][c]["accuracy_sem"] for c in clfs]
        ax.bar(x + 0.2, ctrl, 0.4, yerr=ctrl_e, capsize=3, label="loss/accuracy only (control)",
               color="#c4a000")
    ax.axhline(results["chance"]["uniform"], color="k", ls="--", lw=1, label="chance (1/k)")
    ax.axhline(results["null"]["q95"], color="#cc0000", ls=":", lw=1.2,
               label="permutation null, 95th pct")
    ax.set_xticks(x, [CLASSIFIER_NAMES.get(c, c) for c in clfs])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test accuracy (per layer)")
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def fig_confusion(conf: list[list[int]], classes: list[str], title: str) -> str:
    """A confusion matrix, rows normalised to the fraction of each true class."""
    m = np.asarray(conf, float)
    frac = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    fig = Figure(figsize=(1.2 + 0.55 * n, 1.0 + 0.5 * n))
    ax = fig.add_subplot()
    im = ax.imshow(frac, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=8)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{frac[i, j]:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if frac[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _png(fig)


def fig_null(results: dict[str, Any]) -> str:
    """Histogram of the label-permutation null with the observed accuracy."""
    null = results["null"]
    fig = Figure(figsize=(5.0, 2.8))
    ax = fig.add_subplot()
    ax.hist(null["scores"], bins=max(5, min(30, len(null["scores"]))), color="#888a85")
    ax.axvline(null["observed"], color="#3465a4", lw=2, label="observed")
    ax.axvline(results["chance"]["uniform"], color="k", ls="--", lw=1, label="chance (1/k)")
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy (random forest, all observables)")
    ax.set_ylabel("permutations")
    ax.legend(fontsize=7)
    return _png(fig)


def fig_observables(results: dict[str, Any]) -> str:
    """Accuracy per observable (random forest)."""
    rows = results["per_observable"]
    names = list(rows)
    fig = Figure(figsize=(6.0, 0.6 + 0.4 * len(names)))
    ax = fig.add_subplot()
    y = np.arange(len(names))
    ax.barh(y, [rows[n]["accuracy_mean"] for n in names],
            xerr=[rows[n]["accuracy_sem"] for n in names], capsize=3, color="#4e9a06")
    ax.axvline(results["chance"]["uniform"], color="k", ls="--", lw=1)
    ax.axvline(0.9, color="#cc0000", ls=":", lw=1)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy (random forest)")
    return _png(fig)


def fig_sweeps(results: dict[str, Any]) -> str:
    """Accuracy against units recorded, noise, time points and fraction of trajectory seen."""
    sweeps = results["sweeps"]
    labels = {"units": "units recorded per layer (0 = all)", "noise": "relative noise",
              "time_points": "time points", "fraction": "fraction of trajectory seen"}
    fig = Figure(figsize=(9.0, 2.6))
    axes = fig.subplots(1, 4, sharey=True)
    for ax, key in zip(axes, labels):
        rows = sweeps[key]
        xs = [r["value"] for r in rows]
        pos = np.arange(len(xs)) if key == "units" else np.asarray(xs, float)
        ax.errorbar(pos, [r["accuracy_mean"] for r in rows],
                    yerr=[r["accuracy_sem"] for r in rows], marker="o", capsize=3)
        if key == "units":
            ax.set_xticks(pos, ["all" if v == 0 else str(v) for v in xs])
        ax.axhline(results["chance"]["uniform"], color="k", ls="--", lw=1)
        ax.axhline(0.9, color="#cc0000", ls=":", lw=1)
        ax.set_xlabel(labels[key], fontsize=8)
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel("accuracy")
    return _png(fig)


def fig_importance(results: dict[str, Any], top: int = 15) -> str:
    """The most informative statistics: accuracy drop when a channel is permuted."""
    rows = results["importance"][:top]
    fig = Figure(figsize=(6.0, 0.6 + 0.3 * len(rows)))
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    ax.barh(y, [r["drop_mean"] for r in rows], xerr=[r["drop_sem"] for r in rows], capsize=2,
            color="#75507b")
    ax.set_yticks(y, [r["channel"] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("accuracy drop when permuted")
    return _png(fig)


def fig_generalisation(results: dict[str, Any]) -> str | None:
    """Held-out accuracy per held-out value (train on the rest)."""
    rows = list(results.get("generalisation", []))
    if results.get("holdout"):
        rows.append(results["holdout"])
    if results.get("test_store"):
        rows.append({"key": "store", "value": "--test", **results["test_store"]})
    bars = [(f"{r['key']}={r['value']}\n({c})", v["accuracy"], v["accuracy_se"])
            for r in rows for c, v in r["results"].items()]
    if not bars:
        return None
    fig = Figure(figsize=(6.4, 0.6 + 0.45 * len(bars)))
    ax = fig.add_subplot()
    y = np.arange(len(bars))
    ax.barh(y, [b[1] for b in bars], xerr=[b[2] for b in bars], capsize=3, color="#f57900")
    ax.axvline(results["chance"]["uniform"], color="k", ls="--", lw=1)
    ax.set_yticks(y, [b[0] for b in bars], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("held-out accuracy (per layer)")
    return _png(fig)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_report(results: dict[str, Any], out: str | Path) -> Path:
    """Write `out/report.html` (figures embedded) and `out/results.json`; return the page."""
    out = Path(out)
    claim(out, "report")  # never overwrites a report.html lrsim did not write
    best = max(results["main"], key=lambda c: results["main"][c]["accuracy_mean"])
    figures = {
        "accuracy": fig_accuracy(results),
        "confusion": fig_confusion(results["main"][best]["confusion"],
                                   results["main"][best]["classes"],
                                   f"{CLASSIFIER_NAMES.get(best, best)}, all observables"),
        "null": fig_null(results),
        "observables": fig_observables(results),
        "sweeps": fig_sweeps(results),
        "importance": fig_importance(results),
    }
    if results.get("control"):
        ctrl = results["control"][best]
        figures["confusion_control"] = fig_confusion(
            ctrl["confusion"], ctrl["classes"],
            f"{CLASSIFIER_NAMES.get(best, best)}, loss/accuracy only")
    gen = fig_generalisation(results)
    if gen:
        figures["generalisation"] = gen
    env = Environment(loader=PackageLoader("lrsim.analysis", "templates"),
                      autoescape=select_autoescape(["html"]))
    html = env.get_template("report.html").render(
        r=results, fig=figures, best=best, names=CLASSIFIER_NAMES)
    page = out / "report.html"
    write_atomic(page, html)
    write_atomic(out / "results.json", json.dumps(_jsonable(results), indent=1, sort_keys=True,
                                                  allow_nan=False))
    return page
