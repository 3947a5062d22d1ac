"""Experiment files: TOML read with `tomllib` into typed, frozen models.

The file's shape is a public contract (README): top-level `name`, `substrate`, `seed`, `device`,
`dtype`, and sections `[task]`, `[model]`, `[rule]`, `[train]`, `[observe]`, `[scan]`,
`[spiking]`. Unknown keys and out-of-range values are refused with one message naming the key
and what is allowed (`ConfigError`). Rule, task and optimizer hyperparameters are checked
against their registry declarations.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lrsim.contract import OBSERVABLES, check_observables, check_stats
from lrsim.errors import ConfigError
from lrsim.models.tasks import tasks
from lrsim.optimizers import optimizers
from lrsim.rules import rules


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Open(BaseModel):
    """A section whose extra keys are the hyperparameters of a registered entry."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TaskSpec(_Open):
    name: str = "digits"


class RuleSpec(_Open):
    name: str = "backprop"


class ModelSpec(_Strict):
    hidden: list[Annotated[int, Field(ge=1, le=1_000_000)]] = Field(
        default_factory=lambda: [64, 64])
    activation: Literal["relu", "tanh", "sigmoid", "linear", "elu"] = "relu"
    bias: bool = True
    init_scale: float = Field(1.0, gt=0)

    @field_validator("hidden")
    @classmethod
    def _non_empty(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("must list at least one hidden layer width, e.g. [64]")
        return v


class TrainSpec(_Strict):
    optimizer: str = "sgd"
    lr: float = Field(0.05, gt=0, le=100)
    weight_decay: float = Field(0.0, ge=0, le=100)
    batch_size: int = Field(32, ge=1, le=1_000_000)
    steps: int = Field(1000, ge=1, le=100_000_000)
    replicas: int = Field(1, ge=1, le=1_000_000)
    momentum: float = Field(0.9, ge=0, lt=1)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0, le=1)

    def optimizer_params(self) -> dict[str, Any]:
        declared = optimizers.entry(self.optimizer).params
        return {k: getattr(self, k) for k in declared}


class ObserveSpec(_Strict):
    """What the observers record (`lrsim.analysis.observer`; names from `lrsim.contract`)."""

    enabled: bool = True
    every: int | None = Field(None, ge=1)
    schedule: Literal["linear", "log"] = "linear"
    points: int = Field(21, ge=2, le=100_000)
    observables: list[str] = Field(
        default_factory=lambda: list(OBSERVABLES))
    stats: list[str] | None = None  # None = all
    units: list[int] = Field(default_factory=lambda: [0])
    noise: list[float] = Field(default_factory=lambda: [0.0])
    probe_size: int = Field(64, ge=1, le=100_000)

    @field_validator("units")
    @classmethod
    def _units(cls, v: list[int]) -> list[int]:
        if not v or any(u < 0 for u in v):
            raise ValueError("must be a non-empty list of unit counts >= 0 (0 = all units)")
        if len(set(v)) != len(v):
            raise ValueError("lists a unit count twice")
        return v

    @field_validator("noise")
    @classmethod
    def _noise(cls, v: list[float]) -> list[float]:
        if not v or any(not (0 <= n <= 1e6) for n in v):
            raise ValueError("must be a non-empty list of relative noise levels in [0, 1e6]")
        if len(set(v)) != len(v):
            raise ValueError("lists a noise level twice")
        return v

    @field_validator("observables")
    @classmethod
    def _observables(cls, v: list[str]) -> list[str]:
        try:
            return check_observables(v)
        except ConfigError as err:
            raise ValueError(str(err)) from None

    @field_validator("stats")
    @classmethod
    def _stats(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        try:
            return check_stats(v)
        except ConfigError as err:
            raise ValueError(str(err)) from None


class SpikingSpec(_Strict):
    """The `[spiking]` section: the balanced network and its trials (units in the key names;
    see `lrsim.models.spiking`). Hidden layers take their E widths from `[model] hidden`, with
    N_I = N_E / 4.

    Defaults are the task network that learns digits (README, "Spiking networks"): sparse
    feedforward input (`p_ff` 0.25, so hidden neurons have distinct receptive fields), 100 Hz
    for a white pixel, external drive below threshold on its own (`eta` 0.8: stimulus and
    recurrent input make up the rest, the hidden layer stays asynchronous irregular and
    balanced), 10 readout neurons per class with inhibitory plasticity setting their operating
    point (`readout_istdp`) and a class-pooled output error (`readout_error`)."""

    target: Literal["cython", "numpy"] = "cython"  # Brian2 runtime code generation
    dt_ms: float = Field(0.1, gt=0, le=1)
    trial_ms: float = Field(100.0, ge=10, le=10_000)       # one stimulus presentation
    settle_ms: float = Field(20.0, ge=0, le=10_000)        # not counted in the trial's rates
    batch_trials: int = Field(1, ge=1, le=10_000)          # trials per weight update (N)
    epsilon: float = Field(0.1, gt=0, le=1)                # recurrent connection probability
    n_ref_e: int = Field(800, ge=4, le=1_000_000)          # C_E = epsilon n_ref_e in-degree
    j_mv: float = Field(1.0, gt=0, le=20)                  # excitatory PSP J (mV)
    g: float = Field(7.0, ge=0, le=50)                     # inhibition relative to excitation
    eta: float = Field(0.8, ge=0, le=20)                   # external drive nu_ext / nu_thr
    tau_m_ms: float = Field(20.0, gt=0, le=1000)
    tau_e_ms: float = Field(2.0, gt=0, le=1000)
    tau_i_ms: float = Field(2.0, gt=0, le=1000)
    t_ref_ms: float = Field(2.0, ge=0, le=100)
    delay_ms: float = Field(1.5, gt=0, le=100)
    input_rate_hz: float = Field(100.0, gt=0, le=1000)    # input rate of a white pixel
    target_rate_hz: float = Field(30.0, ge=0, le=1000)    # readout target, correct class
    rest_rate_hz: float = Field(5.0, ge=0, le=1000)       # readout target, other classes
    rate_scale_hz: float = Field(40.0, gt=0, le=1000)     # rates are divided by it
    readout_pool: int = Field(10, ge=1, le=1000)          # readout neurons per class
    p_ff: float = Field(0.25, gt=0, le=1)                 # feedforward connection probability
    w_unit_mv: float = Field(1.0, gt=0, le=20)            # PSP (mV) of a weight W = 1
    w_init: float = Field(4.0, ge=0, le=1000)             # initial W ~ U(0, 2 w_init)
    w_max: float = Field(20.0, gt=0, le=1000)             # Dale: 0 <= W <= w_max
    istdp: bool = True                                    # Vogels et al. 2011 on I -> E
    istdp_eta: float = Field(0.01, ge=0, le=10)
    istdp_rate_hz: float = Field(10.0, gt=0, le=1000)     # target E rate rho_0
    istdp_tau_ms: float = Field(20.0, gt=0, le=1000)
    readout_istdp: bool = True                            # Vogels rule on I -> readout too
    readout_istdp_eta: float = Field(0.01, ge=0, le=10)   # its learning rate
    readout_error: Literal["pool", "neuron"] = "pool"     # output error per class pool / neuron
    train_samples: int = Field(0, ge=0)                   # training stimuli used (0 = all)
    eval_samples: int = Field(20, ge=1, le=100_000)       # stimuli per evaluation block
    warmup_trials: int = Field(50, ge=0, le=100_000)      # before the first measurement
    record_neurons: int = Field(100, ge=1)                # spikes recorded per population
    record_currents: int = Field(20, ge=0)                # E neurons with I_e, I_i recorded
    cache_dir: str | None = None                          # Brian2 cython cache (None: auto)

    @field_validator("settle_ms")
    @classmethod
    def _settle(cls, v: float, info) -> float:
        trial = info.data.get("trial_ms")
        if trial is not None and v >= trial:
            raise ValueError(f"must be shorter than trial_ms = {trial}")
        return v


class Experiment(_Strict):
    name: str = "experiment"
    substrate: Literal["rate", "spiking"] = "rate"
    seed: int = Field(0, ge=0, le=2**31 - 1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "float64"] = "float32"
    task: TaskSpec = Field(default_factory=TaskSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    rule: RuleSpec = Field(default_factory=RuleSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    observe: ObserveSpec = Field(default_factory=ObserveSpec)
    scan: dict[str, Any] | None = None
    spiking: SpikingSpec | None = None  # substrate "spiking": None means the defaults

    def resolved(self) -> dict[str, Any]:
        """The experiment as a plain dict, with registry defaults filled in (canonical form)."""
        return json.loads(self.model_dump_json())


def _format(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        parent = first["loc"][:-1]
        model: Any = Experiment
        for part in parent:
            field = model.model_fields.get(str(part)) if hasattr(model, "model_fields") else None
            model = field.annotation if field is not None else None
        allowed = ", ".join(model.model_fields) if hasattr(model, "model_fields") else "?"
        return f"{source}: unknown key '{key}'; allowed here: {allowed}"
    msg = first["msg"].removeprefix("Value error, ")
    given = first.get("input")
    shown = "" if isinstance(given, dict) else f" (got {given!r})"
    return f"{source}: key '{key}': {msg}{shown}"


def parse(data: dict[str, Any], source: str = "experiment") -> Experiment:
    """Validate a dict (as read from TOML) into an Experiment, or raise ConfigError."""
    try:
        exp = Experiment.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format(err, source)) from None
    return validate_registries(exp, source)


def validate_registries(exp: Experiment, source: str = "experiment") -> Experiment:
    """Check names and hyperparameters against the registries and fill in their defaults."""
    try:
        entry = rules.entry(exp.rule.name)
        rule_params = rules.resolve(exp.rule.name, exp.rule.params)
        if exp.substrate not in entry.info["substrates"]:
            raise ConfigError(f"rule '{exp.rule.name}' cannot run on substrate "
                              f"'{exp.substrate}'; it supports: "
                              f"{', '.join(entry.info['substrates'])}")
        task_params = tasks.resolve(exp.task.name, exp.task.params)
        optimizers.entry(exp.train.optimizer)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    data = exp.model_dump()
    data["rule"] = {"name": exp.rule.name, **rule_params}
    data["task"] = {"name": exp.task.name, **task_params}
    return Experiment.model_validate(data)


def load(path: str | Path) -> Experiment:
    """Read and validate an experiment file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"experiment file '{path}' not found")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    return parse(data, str(path))


@dataclass(frozen=True)
class Replica:
    """One run inside a batched job: its own seed and per-replica hyperparameters."""

    seed: int
    lr: float
    weight_decay: float
    init_scale: float
    run_id: str


def run_id(resolved: dict[str, Any]) -> str:
    """A run's id: a hash of its resolved config (so resuming a scan is a lookup)."""
    blob = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def replicas(exp: Experiment) -> list[Replica]:
    """The K runs of an experiment: seeds seed .. seed+K-1 with the file's hyperparameters."""
    out = []
    base = exp.resolved()
    base.pop("scan", None)
    for k in range(exp.train.replicas):
        one = dict(base, seed=exp.seed + k, train=dict(base["train"], replicas=1))
        out.append(Replica(exp.seed + k, exp.train.lr, exp.train.weight_decay,
                           exp.model.init_scale, run_id(one)))
    return out
