"""The run-file contract: the names, dimensions, metadata and per-run attributes of every run.

A run (one network trained under one rule) is one `xarray.Dataset`, one netCDF file in a store
(`lrsim.store`). Everything that writes runs (the observers of both substrates, the scan) and
everything that reads them (`open_scan`, features, identification, reports) takes the names
from here, so they are defined once.

Dimensions: `time` (measurement points; coordinate `step`, the update count), `layer`
(`layer1`..`layerL`; coordinate `depth` in [0, 1]), `stat` (statistic names, `STAT_NAMES`),
`units` (recorded units per layer, 0 = all), `noise` (relative measurement noise), `population`
(spiking populations), and `run` in a store.

Variables (`VARIABLES`; each with dims, role, CF `units`, `long_name`, a description and
`measurable`; `lrsim.metadata` writes them into a Dataset's attributes):

    recorded        weights, activations, activity_change  (time, layer, stat, units, noise);
                    the spiking statistics rate, cv_isi, fano, correlation, synchrony,
                    ei_balance, ei_correlation             (time, population)
                    -- what an experiment could record: measurable;
                    the population geometry of the recorded activity, when the experiment
                    lists it in `[observe] observables` (`lrsim.analysis.geometry`):
                    dimensionality, rsa_initial, rsa_previous, rsa_layer, rsa_target,
                    coupling, and of the recorded synapses: synaptic_similarity
                                                            (time, layer, units, noise)
    model_internal  alignment = angle(B_l, W_l^T)           (time, layer)
    behavioural     loss, test_accuracy                     (time): the behavioural (control)
                                                            curves, not neural recordings
    diagnostic      dale_violations                         (time): a check of the simulation

Identification headlines use only measurable variables; the others are shown, labelled.

Per-run attributes (`run_attributes`, from a `lrsim.config.Experiment` and one of its
`Replica`s; config imports this module, so their types are not named here): identity (run_id,
seed, replica), labels (`LABELS`: rule, rule_family, optimizer), hyperparameters (lr,
weight_decay, init_scale, batch_size, steps, rule_*, optimizer_*, task_*), the resolved
experiment (`config`, JSON), outcome (status, diverged_step, final_loss, test_accuracy) and
provenance (lrsim_version). Values are netCDF-safe (str / int / float; `netcdf_safe`).
`Outcome` is what running an experiment returns.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lrsim.errors import ConfigError
from lrsim.version import __version__

# -- dimensions ------------------------------------------------------------------------------
TIME, LAYER, STAT, UNITS, NOISE, POPULATION, RUN = (
    "time", "layer", "stat", "units", "noise", "population", "run")
VIEW_DIMS: tuple[str, ...] = (TIME, LAYER, STAT, UNITS, NOISE)

# -- variables -------------------------------------------------------------------------------
OBSERVABLES: tuple[str, ...] = ("weights", "activations", "activity_change")
# of the recorded synapses (their changes), not of activity: one value per (time, layer, view)
SYNAPTIC_OBSERVABLES: tuple[str, ...] = ("synaptic_similarity",)
# population geometry of the recorded units' activity, and the synaptic observables: one
# value per (time, layer, view)
GEOMETRY_OBSERVABLES: tuple[str, ...] = ("dimensionality", "rsa_initial", "rsa_previous",
                                         "rsa_layer", "rsa_target", "coupling",
                                         "change_alignment", *SYNAPTIC_OBSERVABLES)
GEOMETRY_DIMS: tuple[str, ...] = (TIME, LAYER, UNITS, NOISE)
SPIKING_STATISTICS: tuple[str, ...] = ("rate", "cv_isi", "fano", "correlation", "synchrony")
BALANCE_STATISTICS: tuple[str, ...] = ("ei_balance", "ei_correlation")
# spiking statistics per population, in the order features list them
SPIKING_OBSERVABLES: tuple[str, ...] = SPIKING_STATISTICS + BALANCE_STATISTICS
MODEL_INTERNAL: tuple[str, ...] = ("alignment",)
CONTROL_OBSERVABLES: tuple[str, ...] = ("loss", "test_accuracy")
DIAGNOSTICS: tuple[str, ...] = ("dale_violations",)

# labels a run can be identified by
LABELS: tuple[str, ...] = ("rule", "rule_family", "optimizer")

# -- statistics (values of the `stat` coordinate; computed by lrsim.analysis.stats) -----------
TRANSFORMS: tuple[str, ...] = ("raw", "abs", "sq")
STATISTICS: tuple[str, ...] = ("mean", "var", "median", "q75", "norm", "skew", "kurtosis")
STAT_NAMES: tuple[str, ...] = tuple(f"{t}_{s}" for t in TRANSFORMS for s in STATISTICS)

ROLES = ("recorded", "model_internal", "behavioural", "diagnostic")


@dataclass(frozen=True)
class Variable:
    """One variable of a run file: its dims, role (`ROLES`; `measurable` = role recorded), CF
    long name, one-sentence description and units (of the recorded quantity; `spiking_units`
    where spiking runs differ). `lrsim.metadata` writes these into a Dataset's attributes."""

    dims: tuple[str, ...]
    role: str
    long_name: str
    description: str
    units: str | None = "1"
    spiking_units: str | None = None

    @property
    def measurable(self) -> bool:
        """Whether an experiment could record it (the identification headline uses only these)."""
        return self.role == "recorded"

    def units_for(self, substrate: str) -> str | None:
        return self.spiking_units if substrate == "spiking" and self.spiking_units else self.units


_STAT_NOTE = ("The `stat` coordinate names the statistic; `units` is the unit of the recorded "
              "quantity x and statistic s has unit x^p, p = stat_power(s) (the `stat_power` "
              "coordinate).")
_POP = (TIME, POPULATION)

VARIABLES: dict[str, Variable] = {
    "weights": Variable(
        VIEW_DIMS, "recorded", "statistic of forward weights",
        "Statistic of the forward weights W_l onto the recorded units of layer l (their incoming "
        "synapses; spiking runs: 1 = the PSP of w_unit_mv at 100 inputs), after undersampling "
        "(`units`) and relative measurement noise (`noise`). " + _STAT_NOTE),
    "activations": Variable(
        VIEW_DIMS, "recorded", "statistic of activity",
        "Statistic of the recorded units' activity h_l (rate runs: on a fixed probe batch of "
        "held-out inputs; spiking runs: trial firing rates in the window since the previous "
        "time point), after undersampling and measurement noise. " + _STAT_NOTE,
        spiking_units="Hz"),
    "activity_change": Variable(
        VIEW_DIMS, "recorded", "statistic of activity change",
        "Statistic of h_l(t) - h_l(t_prev), the change of the recorded units' activity since the "
        "previous time point (NaN at the first). " + _STAT_NOTE, spiking_units="Hz"),
    "dimensionality": Variable(
        GEOMETRY_DIMS, "recorded", "participation-ratio dimensionality per recorded unit",
        "Participation ratio (tr C)^2 / tr(C^2) of the covariance C of the recorded units' "
        "activity over the probe inputs (spiking runs: the window's trials), divided by the "
        "number of recorded units; after undersampling and measurement noise."),
    "rsa_initial": Variable(
        GEOMETRY_DIMS, "recorded", "representational similarity with the first measurement",
        "Pearson correlation of the Euclidean representational dissimilarity matrices of the "
        "recorded units over the first probe inputs (lrsim.analysis.observer.RSA_PROBES) now "
        "and at the first time point (NaN there; NaN in spiking runs, whose windows hold other "
        "stimuli)."),
    "rsa_previous": Variable(
        GEOMETRY_DIMS, "recorded", "representational similarity with the previous measurement",
        "As rsa_initial, with the previous time point."),
    "rsa_layer": Variable(
        GEOMETRY_DIMS, "recorded", "representational similarity with the layer below",
        "Pearson correlation of the RDMs of the recorded units of layer l and of the layer "
        "feeding it (for layer 1: the stimuli), same stimuli, same time point."),
    "rsa_target": Variable(
        GEOMETRY_DIMS, "recorded", "representational similarity with the task's targets",
        "Pearson correlation of the RDM of the recorded units and the RDM of the targets the "
        "task asks for on the same probe inputs (one-hot class vectors or regression targets: "
        "what the experimenter trains the animal to report), same time point (NaN in spiking "
        "runs, whose windows have no per-trial targets)."),
    "coupling": Variable(
        GEOMETRY_DIMS, "recorded", "input-output coupling of two connected layers",
        "Paired recording: mean squared Pearson correlation over the stimuli between the "
        "recorded units of the layer feeding l (layer 1: the stimulus inputs) and the recorded "
        "units of l (units constant over the stimuli left out)."),
    "change_alignment": Variable(
        GEOMETRY_DIMS, "recorded", "alignment of the activity change with the initial correlations",
        "Cosine, over pairs of recorded units (off the diagonal), between the covariance over "
        "the probe inputs of the activity change since the first time point and the covariance "
        "of the activity at the first time point, cross-validated across the even and odd "
        "probe inputs (lrsim.analysis.geometry.change_alignment), so that measurement noise "
        "biases neither; after undersampling and measurement noise (NaN at the first time "
        "point, wherever a product of the two halves is not positive, and in spiking runs, "
        "whose windows hold other stimuli)."),
    "synaptic_similarity": Variable(
        GEOMETRY_DIMS, "recorded", "incoming vs outgoing synaptic change similarity",
        "Paired recording of synapses: Pearson correlation, over pairs of recorded units of "
        "layer l, of their cosine similarity by the change of their incoming synapses (from "
        "every unit of the layer below) and by the change of their outgoing synapses (onto the "
        "recorded units of layer l+1), both changes since the first time point, each weight "
        "measured with noise at each time point (NaN at the first time point, for the readout "
        "layer, between a convolutional and a dense layer, and in spiking runs)."),
    "alignment": Variable(
        (TIME, LAYER), "model_internal", "feedback alignment angle",
        "angle(B_l, W_l^T) between the feedback matrix carrying the error to layer l-1 and the "
        "transpose of the forward weights; model-internal (no experiment measures it); NaN "
        "where the rule has no feedback matrix.", "degree"),
    "loss": Variable(
        (TIME,), "behavioural", "training loss",
        "Training loss at the time point (rate: on the first 128 training samples; spiking: "
        "mean readout error 0.5 sum_c ((r_c - r*_c) / rate_scale)^2 over the window's trials); "
        "a behavioural (control) curve, not a neural recording."),
    "test_accuracy": Variable(
        (TIME,), "behavioural", "test accuracy",
        "Fraction of test inputs classified correctly at the time point (rate: the first 256 "
        "test samples; spiking: the test block, first and last time point only; NaN for "
        "regression); a behavioural (control) curve, not a neural recording."),
    "rate": Variable(_POP, "recorded", "population firing rate",
                     "Mean firing rate of the population in the window since the previous time "
                     "point.", "Hz"),
    "cv_isi": Variable(_POP, "recorded", "coefficient of variation of inter-spike intervals",
                       "std / mean of each neuron's inter-spike intervals in the window, "
                       "averaged over neurons with >= 3 spikes (1 for Poisson firing, 0 for "
                       "regular)."),
    "fano": Variable(_POP, "recorded", "Fano factor of spike counts",
                     "Variance over mean of each neuron's spike counts in 100 ms windows, "
                     "averaged over active neurons (1 for Poisson firing)."),
    "correlation": Variable(_POP, "recorded", "pairwise spike-count correlation",
                            "Mean over pairs of neurons of the Pearson correlation of their "
                            "spike counts in 100 ms windows."),
    "synchrony": Variable(_POP, "recorded", "synchrony (Golomb-Rinzel chi)",
                          "Golomb-Rinzel chi of the population on 2 ms bins (0 asynchronous, 1 "
                          "fully synchronous)."),
    "ei_balance": Variable(_POP, "recorded", "E/I balance index",
                           "|<I_e + I_i>| / <I_e> of the recorded neurons' excitatory and "
                           "inhibitory input currents (0 = perfect cancellation)."),
    "ei_correlation": Variable(_POP, "recorded", "E/I input correlation",
                               "Pearson correlation over time of the population-averaged "
                               "excitatory and negated inhibitory input currents."),
    "dale_violations": Variable((TIME,), "diagnostic", "Dale's law violations",
                                "Number of plastic weights of the wrong sign at the time point "
                                "(always 0 by construction); a check of the simulation."),
}


def is_measurable(name: str) -> bool:
    """Whether variable `name` is one an experiment could record (unknown names: False)."""
    var = VARIABLES.get(name)
    return var is not None and var.measurable


def variable_attrs(name: str, substrate: str = "rate") -> dict[str, str | int]:
    """The attributes of variable `name` in a run file of `substrate` ({} if unknown): CF
    `units` and `long_name`, `role`, and `measurable` (1 / 0)."""
    var = VARIABLES.get(name)
    if var is None:
        return {}
    units = var.units_for(substrate)
    return {**({"units": units} if units is not None else {}), "long_name": var.long_name,
            "role": var.role, "measurable": int(var.measurable)}


def check_stats(stats: Sequence[str] | None) -> list[str]:
    """The requested statistic names in canonical order (None = all); ConfigError otherwise."""
    if stats is None:
        return list(STAT_NAMES)
    stats = list(stats)
    if not stats:
        raise ConfigError("stats must name at least one statistic; allowed: "
                          + ", ".join(STAT_NAMES))
    bad = [s for s in stats if s not in STAT_NAMES]
    if bad:
        raise ConfigError(f"unknown statistic(s) {', '.join(map(repr, bad))}; allowed: "
                          + ", ".join(STAT_NAMES))
    if len(set(stats)) != len(stats):
        raise ConfigError("stats lists a statistic twice")
    return stats


def check_observables(observables: Sequence[str]) -> list[str]:
    """The requested per-layer observables (`OBSERVABLES`, `GEOMETRY_OBSERVABLES`);
    ConfigError otherwise."""
    allowed = OBSERVABLES + GEOMETRY_OBSERVABLES
    bad = [o for o in observables if o not in allowed]
    if bad:
        raise ConfigError(f"unknown observable(s) {', '.join(map(repr, bad))}; allowed: "
                          f"{', '.join(allowed)}")
    if len(set(observables)) != len(observables):
        raise ConfigError("lists an observable twice")
    return list(observables)


def layer_names(n_layers: int) -> list[str]:
    """The `layer` coordinate: layer1 .. layerL."""
    return [f"layer{l + 1}" for l in range(n_layers)]


def layer_depths(n_layers: int) -> np.ndarray:
    """The `depth` coordinate: layers evenly on [0, 1] (0 for a single layer)."""
    return np.linspace(0.0, 1.0, n_layers) if n_layers > 1 else np.zeros(1)


# -- per-run values --------------------------------------------------------------------------
@dataclass
class Outcome:
    """Per replica: the summary record and (when observed) its trajectory Dataset."""

    summaries: list[dict[str, Any]]
    datasets: list[Any] = field(default_factory=list)


def finite_or_none(x: float) -> float | None:
    """A summary number for JSON: the float, or None where it is NaN or infinite."""
    x = float(x)
    return x if math.isfinite(x) else None


def netcdf_safe(value: Any) -> str | int | float:
    """An attribute value netCDF can hold: str, int or float (bool -> int, None -> "",
    anything else -> JSON)."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value)
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, default=str)


def architecture(exp: Any) -> str:
    """Layer widths as a string: hidden widths, "64-64"; conv layers first as c<channels>,
    "c16-c32-64" (conv [16, 32], hidden [64])."""
    conv = [f"c{c}" for c in getattr(exp.model, "conv", [])]
    return "-".join([*conv, *(str(h) for h in exp.model.hidden)])


def run_config(exp: Any, rep: Any) -> dict[str, Any]:
    """The resolved experiment of one run: its own seed and hyperparameters, one replica."""
    cfg = exp.resolved()
    cfg.pop("scan", None)
    cfg["seed"] = rep.seed
    cfg["train"] = dict(cfg["train"], lr=rep.lr, weight_decay=rep.weight_decay, replicas=1)
    cfg["model"] = dict(cfg["model"], init_scale=rep.init_scale)
    return cfg


def run_attributes(exp: Any, rep: Any, replica: int, *, rule_family: str,
                   status: str, diverged_step: int | None, final_loss: float | None,
                   test_accuracy: float | None) -> dict[str, str | int | float]:
    """The contract's attributes of one run (all netCDF-safe: str / int / float)."""
    attrs: dict[str, Any] = {
        "run_id": rep.run_id, "rule": exp.rule.name, "rule_family": rule_family,
        "optimizer": exp.train.optimizer, "lr": float(rep.lr),
        "weight_decay": float(rep.weight_decay), "init_scale": float(rep.init_scale),
        "batch_size": exp.train.batch_size, "steps": exp.train.steps, "task": exp.task.name,
        "activation": exp.model.activation, "architecture": architecture(exp),
        "substrate": exp.substrate, "seed": int(rep.seed), "replica": int(replica),
        "lrsim_version": __version__, "status": status,
        "diverged_step": -1 if diverged_step is None else int(diverged_step),
        "config": json.dumps(run_config(exp, rep), sort_keys=True),
        "final_loss": float("nan") if final_loss is None else float(final_loss),
        "test_accuracy": float("nan") if test_accuracy is None else float(test_accuracy),
    }
    for key, value in exp.rule.params.items():
        attrs[f"rule_{key}"] = value
    for key, value in exp.train.optimizer_params().items():
        attrs[f"optimizer_{key}"] = value
    for key, value in exp.task.params.items():
        attrs[f"task_{key}"] = value
    return {k: netcdf_safe(v) for k, v in attrs.items()}
