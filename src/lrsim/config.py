"""Experiment files: TOML read with `tomllib` into typed, frozen models.

The file's shape is a public contract (README): top-level `name`, `substrate`, `seed`, `device`,
`dtype`, and sections `[task]`, `[model]`, `[rule]`, `[train]`, `[observe]`, `[scan]`,
`[spiking]`, `[cluster]`. Unknown keys and out-of-range values are refused with one message
naming the key and what is allowed (`ConfigError`). Types are strict (no `true` where a number
is expected, no `5.0` where an integer is, no quoted numbers) and every number is finite. Rule,
task and optimizer hyperparameters are checked against their registry declarations.

`key=value` overrides (`lrsim run f.toml train.lr=0.1 rule.name=kolen_pollack`) are applied to
the file's data before validation (`apply_overrides`): the value is read as a TOML value (a bare
word that is no TOML value is a string), so an override is checked exactly like the file.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from lrsim.contract import OBSERVABLES, check_observables, check_stats
from lrsim.errors import ConfigError
from lrsim.layers import conv_geometry
from lrsim.models.tasks import tasks
from lrsim.optimizers import optimizers
from lrsim.rules import rules


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class _Open(BaseModel):
    """A section whose extra keys are the hyperparameters of a registered entry."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True, allow_inf_nan=False)
    name: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TaskSpec(_Open):
    name: str = "digits"


class RuleSpec(_Open):
    name: str = "backprop"


_ConvInt = Annotated[int, Field(ge=0, le=1024)]
CONV_KEYS = ("conv", "kernel", "stride", "padding", "pool", "pool_type")


class ModelSpec(_Strict):
    """The network: `conv` output channels per convolutional layer (image tasks; each layer
    followed by the activation, then by `pool` x `pool` pooling when pool > 1), then the dense
    `hidden` widths, then the readout. kernel, stride, padding, pool: one value for every conv
    layer or a list with one per conv layer. Without conv layers the conv keys are left out of
    the resolved experiment (MLP run ids do not change)."""

    conv: list[Annotated[int, Field(ge=1, le=100_000)]] = Field(default_factory=list)
    kernel: _ConvInt | list[_ConvInt] = 3
    stride: _ConvInt | list[_ConvInt] = 1
    padding: _ConvInt | list[_ConvInt] = 1
    pool: _ConvInt | list[_ConvInt] = 1
    pool_type: Literal["max", "avg"] = "max"
    hidden: list[Annotated[int, Field(ge=1, le=1_000_000)]] = Field(
        default_factory=lambda: [64, 64])
    activation: Literal["relu", "tanh", "sigmoid", "linear", "elu", "softplus",
                        "leaky_relu", "silu"] = "relu"
    bias: bool = True
    init_scale: float = Field(1.0, gt=0)

    @field_validator("kernel", "stride", "padding", "pool")
    @classmethod
    def _per_conv_layer(cls, v: int | list[int], info: ValidationInfo) -> int | list[int]:
        n = len(info.data.get("conv") or [])
        low = 0 if info.field_name == "padding" else 1
        values = v if isinstance(v, list) else [v]
        if isinstance(v, list) and len(v) != n:
            raise ValueError(f"lists {len(v)} values for {n} conv layers; give one number or "
                             "one per conv layer")
        if any(x < low for x in values):
            raise ValueError(f"must be >= {low}")
        return v

    @field_validator("hidden")
    @classmethod
    def _non_empty(cls, v: list[int], info: ValidationInfo) -> list[int]:
        if not v and not info.data.get("conv"):
            raise ValueError("must list at least one hidden layer width, e.g. [64] (or give "
                             "conv layers: conv = [16, 32])")
        return v

    @model_serializer(mode="wrap")
    def _drop_conv_keys(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if not self.conv:
            for key in CONV_KEYS:
                data.pop(key, None)
        return data


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
    # who draws each replica's epoch order: numpy on the host, or a hash on the device
    # (`lrsim.models.rate.permutations`); auto = the device on a GPU, the host on the CPU
    data_order: Literal["auto", "host", "device"] = "auto"

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
    train_samples: int = Field(0, ge=0, le=100_000_000)   # training stimuli used (0 = all)
    eval_samples: int = Field(20, ge=1, le=100_000)       # stimuli per evaluation block
    warmup_trials: int = Field(50, ge=0, le=100_000)      # before the first measurement
    record_neurons: int = Field(100, ge=1, le=1_000_000)  # spikes recorded per population
    record_currents: int = Field(20, ge=0, le=1_000_000)  # E neurons with I_e, I_i recorded
    cache_dir: str | None = None                          # Brian2 cython cache (None: auto)

    @field_validator("settle_ms")
    @classmethod
    def _settle(cls, v: float, info) -> float:
        trial = info.data.get("trial_ms")
        if trial is not None and v >= trial:
            raise ValueError(f"must be shorter than trial_ms = {trial}")
        return v


_WALLTIME = r"^(\d{1,3}-)?\d{1,4}:\d{2}(:\d{2})?$"
_MEMORY = r"^\d+(\.\d+)? ?([KMGT]i?B|B)$"
_WORD = r"^[^\s]+$"


class ClusterSpec(_Strict):
    """The `[cluster]` section: a batch system through dask-jobqueue for `lrsim scan` (`kind`
    or `--cluster`). One job runs `processes` single-threaded workers on `cores` cores; `jobs`
    such jobs are submitted (or, with `maximum_jobs`, up to that many as work waits). Not part
    of a run's identity: changing it neither changes run ids nor stops a scan resuming."""

    kind: Literal["slurm", "pbs", "sge", "lsf", "local"] | None = None
    queue: Annotated[str, Field(pattern=_WORD)] | None = None      # -p / -q
    account: Annotated[str, Field(pattern=_WORD)] | None = None    # -A (slurm, pbs) / -P
    walltime: Annotated[str, Field(pattern=_WALLTIME)] = "01:00:00"
    cores: int = Field(1, ge=1, le=1024)
    memory: Annotated[str, Field(pattern=_MEMORY)] = "4GB"          # per job
    processes: int | None = Field(None, ge=1, le=1024)             # default: cores
    jobs: int = Field(1, ge=1, le=10_000)
    maximum_jobs: int | None = Field(None, ge=1, le=10_000)
    job_extra_directives: list[Annotated[str, Field(pattern=r"^[^\n\r]+$")]] = Field(
        default_factory=list)
    job_script_prologue: list[Annotated[str, Field(pattern=r"^[^\n\r]+$")]] = Field(
        default_factory=list)
    local_directory: Annotated[str, Field(pattern=r"^[^\n\r]+$")] | None = None
    log_directory: Annotated[str, Field(pattern=r"^[^\n\r]+$")] | None = None
    interface: Annotated[str, Field(pattern=_WORD)] | None = None
    python: Annotated[str, Field(pattern=r"^[^\n\r]+$")] | None = None
    security: bool = True                                          # TLS, temporary credentials
    shared_temp_directory: Annotated[str, Field(pattern=r"^[^\n\r]+$")] | None = None

    @model_validator(mode="after")
    def _processes(self) -> ClusterSpec:
        if self.processes is not None and self.processes > self.cores:
            raise ValueError(f"processes = {self.processes} exceeds cores = {self.cores} "
                             "(each worker process needs a core)")
        return self


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
    cluster: ClusterSpec | None = None  # `lrsim scan --cluster`: not part of a run's identity

    def resolved(self) -> dict[str, Any]:
        """The experiment as a plain dict, with registry defaults filled in (canonical form;
        without `cluster` where the file has none, nor `train.data_order` where it is "auto",
        so that run ids stay those of files written before that key existed)."""
        data = json.loads(self.model_dump_json())
        if data.get("cluster") is None:
            data.pop("cluster", None)
        if data.get("train", {}).get("data_order") == "auto":  # added later: keep run ids
            data["train"].pop("data_order")
        return data


def _format(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        parent = first["loc"][:-1]
        model: Any = Experiment
        for part in parent:
            field = model.model_fields.get(str(part)) if hasattr(model, "model_fields") else None
            model = _model_of(field.annotation) if field is not None else None
        allowed = ", ".join(model.model_fields) if hasattr(model, "model_fields") else "?"
        return f"{source}: unknown key '{key}'; allowed here: {allowed}"
    msg = first["msg"].removeprefix("Value error, ")
    given = first.get("input")
    shown = "" if isinstance(given, dict) else f" (got {given!r})"
    return f"{source}: key '{key}': {msg}{shown}"


def _model_of(annotation: Any) -> Any:
    """The model class in an annotation (`SpikingSpec | None` -> SpikingSpec)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def parse(data: dict[str, Any], source: str = "experiment") -> Experiment:
    """Validate a dict (as read from TOML) into an Experiment, or raise ConfigError."""
    try:
        exp = Experiment.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format(err, source)) from None
    return validate_registries(exp, source)


# rule families with no convolutional form, and why (such rules declare `layer_kinds`)
NO_CONV_FORM = {
    "hebbian": "their stabilising terms (Oja's diag(y^2) W, Sanger's LT(y y^T) W, BCM's "
               "per-unit threshold) act on the rows of a dense W, and lrsim defines no "
               "weight-shared form of them",
}


def check_conv_model(exp: Experiment, rule: Any, task_info: dict[str, Any]) -> None:
    """Refuse a `[model] conv` stack that cannot run, with one message: not the rate
    substrate, a task without images (tasks declare `input_shape` in the registry), a rule not
    written for conv layers (`Rule.layer_kinds`), a geometry that leaves no positions."""
    if exp.substrate != "rate":
        raise ConfigError(f"[model] conv: convolutional layers run on the rate substrate only "
                          f"(substrate is '{exp.substrate}')")
    shape = task_info.get("input_shape")
    if shape is None:
        raise ConfigError(f"[model] conv needs an image task (digits, mnist, cifar10); task "
                          f"'{exp.task.name}' gives flat vectors (use hidden = [...] only)")
    kinds = getattr(rule, "layer_kinds", None)
    if kinds is not None and "conv" not in kinds:
        why = NO_CONV_FORM.get(rule.family, f"it declares layer_kinds = {sorted(kinds)}")
        raise ConfigError(f"rule '{exp.rule.name}' cannot train conv layers: {why}; use a "
                          f"credit-assignment rule or drop [model] conv")
    m = exp.model
    try:
        conv_geometry(shape, m.conv, m.kernel, m.stride, m.padding, m.pool)
    except ValueError as err:
        raise ConfigError(f"[model] conv on task '{exp.task.name}' images {tuple(shape)}: "
                          f"{err}") from None


def check_units(units: Sequence[int], hidden: Sequence[int]) -> None:
    """ConfigError (before any training) when a unit count exceeds a hidden layer's width
    (a conv layer's width: its channels)."""
    for u in units:
        if hidden and u > min(hidden):
            l = min(range(len(hidden)), key=lambda i: hidden[i])
            raise ConfigError(
                f"observe.units: {u} units exceeds hidden layer 'layer{l + 1}' of width "
                f"{hidden[l]} (hidden widths {', '.join(map(str, hidden))}); "
                f"use counts <= {min(hidden)}, or 0 for all units")


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
        if exp.model.conv:
            check_conv_model(exp, entry.factory, tasks.entry(exp.task.name).info)
        check_units(exp.observe.units, [*exp.model.conv, *exp.model.hidden])
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    data = exp.model_dump()
    data["rule"] = {"name": exp.rule.name, **rule_params}
    data["task"] = {"name": exp.task.name, **task_params}
    return Experiment.model_validate(data)


def parse_override(item: str) -> tuple[list[str], Any]:
    """`KEY=VALUE` -> (key path, value). VALUE is read as a TOML value (`0.1`, `true`,
    `[64, 64]`, `"text"`, `{range = 4}`); a bare word that is no TOML value is a string
    (`rule.name=kolen_pollack`). Keys are dotted; in `scan.KEY` the rest is one scan key
    (`scan.train.lr=[0.01, 0.1]` sets `"train.lr"` in `[scan]`)."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override '{item}' is not KEY=VALUE (e.g. train.lr=0.1)")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*", key):
        raise ConfigError(f"override '{item}': '{key}' is not a dotted key (e.g. train.lr)")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        if not raw.strip() or any(c in raw for c in "[]{}\"=\n"):
            raise ConfigError(f"override '{item}': '{raw}' is not a TOML value (quote text, "
                              f"e.g. {key}='\"value\"')") from None
        value = raw.strip()
    parts = key.split(".")
    path = [parts[0], ".".join(parts[1:])] if parts[0] == "scan" and len(parts) > 1 else parts
    return path, value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of the file's `data` with each `KEY=VALUE` override set (`parse_override`)."""
    data = copy.deepcopy(data)
    for item in overrides:
        path, value = parse_override(item)
        node = data
        for i, part in enumerate(path[:-1]):
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                where = ".".join(path[:i + 1])
                raise ConfigError(f"override '{item}': '{where}' is a value, not a section")
            node = nxt
        node[path[-1]] = value
    return data


def read(path: str | Path) -> dict[str, Any]:
    """The data of an experiment file (TOML), or one line saying why it cannot be read."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"'{path}' is a folder; give an experiment file (TOML)")
    if not path.exists():
        raise ConfigError(f"experiment file '{path}' not found")
    if not path.is_file():
        raise ConfigError(f"'{path}' is not a regular file; give an experiment file (TOML)")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"experiment file '{path}' cannot be read: "
                          f"{err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    if not data:
        raise ConfigError(f"{path}: the file sets nothing; an experiment file names at least "
                          "its rule or task (see the README's example)")
    return data


def load(path: str | Path, overrides: Sequence[str] = ()) -> Experiment:
    """Read and validate an experiment file, with `KEY=VALUE` overrides applied."""
    return load_with_text(path, overrides)[0]


def load_with_text(path: str | Path, overrides: Sequence[str] = ()) -> tuple[Experiment, str]:
    """The validated experiment and the text to keep as its copy: the file itself, or, with
    overrides, the file's data with the overrides set, as TOML."""
    data = apply_overrides(read(path), overrides)
    exp = parse(data, str(path))
    text = Path(path).read_text(encoding="utf-8") if not overrides else (
        f"# {Path(path).name} with {' '.join(overrides)} (written by lrsim)\n" + dumps(data))
    return exp, text


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise ConfigError(f"cannot write {v!r} as TOML")


def dumps(data: dict[str, Any]) -> str:
    """TOML text for experiment data (top-level values, then one table per section); checked
    to read back equal."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in data.items()
             if not isinstance(v, dict)]
    for sec, table in data.items():
        if isinstance(table, dict):
            lines.append(f"[{_toml_key(sec)}]")
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    text = "\n".join(lines) + "\n"
    if tomllib.loads(text) != data:
        raise ConfigError("the experiment with its overrides cannot be written back as TOML")
    return text


def run_config(exp: Experiment) -> dict[str, Any]:
    """A run's identity: the resolved experiment without `scan` and `cluster` (how it is
    scanned and where it runs do not change what is trained)."""
    data = exp.resolved()
    data.pop("scan", None)
    data.pop("cluster", None)
    return data


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
    base = run_config(exp)
    for k in range(exp.train.replicas):
        one = dict(base, seed=exp.seed + k, train=dict(base["train"], replicas=1))
        out.append(Replica(exp.seed + k, exp.train.lr, exp.train.weight_decay,
                           exp.model.init_scale, run_id(one)))
    return out
