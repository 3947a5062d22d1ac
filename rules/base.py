"""The shape of a learning rule: one object, written once, run by every substrate.

A rule is a small object in three-factor form (docs/rules.md):

    init(weights, generators, layers) -> state   per-replica rule state (feedback matrices...)
    credit(state, s)         -> m_l per layer    the modulator: how the output error (or the
                                                 post activity, for Hebbian rules) reaches layer l
    plasticity(state, s, m)  -> (gW_l, gb_l)     the synapse's learning term from what it sees
    feedback(state, s, m, steps, lr, decay) -> state
                                                 the update of learned feedback weights B_l and
                                                 any other rule state, after W has stepped

`credit` and `plasticity` are pure: every state change happens in `feedback`. The learning
step that calls them (`lrsim.models.step.LearningStep`, the same for every substrate) applies
W <- W (1 - lr d) - lr opt(gW), b <- b - lr opt(gb), d = decay + weight_decay, with `opt` the
optimizer's transform (sgd / momentum / adam). Every learning term is therefore
*gradient-like*: a Hebbian term eta y x^T is returned as gW = -y^T x / N.

Rules do layer arithmetic only through the layer interface (`lrsim.layers.Layer`: forward,
send_back through a feedback tensor, weight_gradient, ...), `s.layers[l]`, so a rule does not
know whether a layer is dense or convolutional, nor which substrate runs it. Every tensor has
a leading replica axis K and, for activity, a batch axis N: activity (K, N, n_l); weights W_l
(K, n_l, n_{l-1}); feedback tensors B_l in the layer's feedback convention
(`layer.as_feedback(W_l)`: W_l^T's shape for dense layers). docs/architecture.md shows where
rules sit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch
from torch import Tensor

from lrsim.errors import ConfigError
from lrsim.layers import Layer, batch_mean_outer, dense_layers, random_matrices
from lrsim.registry import Param, Registry

FAMILIES = ("backprop", "feedback_alignment", "weight_estimation", "four_synapse", "hebbian",
            "spike_timing")
LOCALITIES = ("local", "broadcast", "sign_transport", "weight_estimation", "non_local")
SUBSTRATES = ("rate", "spiking")

__all__ = ["FAMILIES", "LOCALITIES", "SIGNAL_NAMES", "SUBSTRATES", "Layer", "ReplicaNoise",
           "Rule", "SignalNotDeclared", "Signals", "State", "alignment_angles",
           "batch_mean_outer", "layer_list", "normal", "random_matrices", "register", "rules"]


class SignalNotDeclared(AttributeError):
    """A rule read a signal it did not declare in `Rule.signals`."""


@dataclass
class Signals:
    """What the synapses of a network can see at one learning step (axes K, N).

    pre[l]                h_{l-1}, the layer's input                      (K, N, n_{l-1})
    post[l]               h_l = f(z_l), the layer's output                (K, N, n_l)
    derivative[l]         f'(z_l)                                         (K, N, n_l)
    output_error          e = dL/dz_L per sample (softmax+CE: p - y)       (K, N, n_L)
    target                the output target (one-hot for classes)          (K, N, n_L)
    own_weights[l]        W_l, read by a synapse about itself (local)      (K, n_l, n_{l-1})
    downstream_weights[l] W_{l+1}, read to send error back: weight transport (non-local)
    noise                 random source for noise-driven phases: a `ReplicaNoise` (one generator
                          per replica) or one torch.Generator; draw with `normal(...)`

    `layers[l]` is layer l's kind (`lrsim.layers.Layer`; dense where not given): structure,
    not a signal, so always readable. In `feedback` (after the update) the weights are the
    updated ones.
    """

    pre: list[Tensor]
    post: list[Tensor]
    derivative: list[Tensor]
    output_error: Tensor
    target: Tensor
    own_weights: list[Tensor]
    downstream_weights: list[Tensor]
    noise: ReplicaNoise | torch.Generator | None = None
    layers: Sequence[Layer] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.layers is None:
            self.layers = dense_layers(len(self.pre))

    @property
    def n_layers(self) -> int:
        return len(self.pre)

    def restrict(self, declared: frozenset[str]) -> Signals:
        """A view in which reading an undeclared signal raises `SignalNotDeclared`."""
        return _RestrictedSignals(self, declared)  # type: ignore[return-value]


SIGNAL_NAMES = frozenset(f.name for f in fields(Signals)) - {"layers"}


class ReplicaNoise:
    """One random stream per replica, so a replica's noise does not depend on which replicas
    share its batch (same run id, same values, whatever the grouping)."""

    def __init__(self, seeds: list[int]):
        self.generators = [torch.Generator().manual_seed(int(s) * 2_654_435_761 % 2**63 + 7919)
                           for s in seeds]

    def replicas(self, a: int, b: int) -> ReplicaNoise:
        """The streams of replicas a:b: the same generator objects, so a chunk of replicas
        draws exactly what those replicas draw in the whole batch."""
        part = ReplicaNoise([])
        part.generators = self.generators[a:b]
        return part


def normal(noise: ReplicaNoise | torch.Generator | None, k: int, shape: tuple[int, ...],
           like: Tensor) -> Tensor:
    """Standard normal draws (k, *shape) with `like`'s dtype and device; replica i draws from
    its own generator when `noise` is a ReplicaNoise."""
    if isinstance(noise, ReplicaNoise):
        if len(noise.generators) != k:
            raise ValueError(f"noise has {len(noise.generators)} streams for {k} replicas")
        draws = [torch.randn(shape, generator=g, dtype=torch.float64) for g in noise.generators]
        return torch.stack(draws).to(dtype=like.dtype, device=like.device)
    gen = noise if noise is not None else torch.Generator().manual_seed(0)
    return torch.randn((k, *shape), generator=gen, dtype=torch.float64).to(like)


class _RestrictedSignals:
    def __init__(self, full: Signals, declared: frozenset[str]):
        object.__setattr__(self, "_full", full)
        object.__setattr__(self, "_declared", frozenset(declared))

    def __getattr__(self, name: str) -> Any:
        if name in SIGNAL_NAMES and name not in self._declared:
            raise SignalNotDeclared(f"signal '{name}' was read but not declared")
        return getattr(self._full, name)

    @property
    def n_layers(self) -> int:
        return self._full.n_layers


State = dict[str, Any]


def layer_list(layers: Sequence[Layer] | None, n: int) -> list[Layer]:
    """The layer kinds of an n-layer network (dense where `layers` is None)."""
    return dense_layers(n) if layers is None else list(layers)


class Rule:
    """Base of all rules: declarations plus the default (three-factor, no feedback) behaviour.

    Subclasses set the class attributes and override what differs. Hyperparameters are the
    keys of `params` and become attributes. Capabilities are declared here, never inferred:

    decay          lambda, the rule's own weight decay, applied to W by the learning step
    supervised     False: the rule ignores the target entirely
    layer_kinds    the layer kinds (`Layer.kind`) the rule is written for; None = any kind
                   that implements the layer interface
    synapse_model  Brian2 synapse equations where the rule learns inside a spiking simulation
                   (None: it learns through the learning step)
    feedback       receives `decay`, the total decay W got this step, in every rule
    """

    name: ClassVar[str]
    family: ClassVar[str]
    locality: ClassVar[str]
    signals: ClassVar[frozenset[str]]
    substrates: ClassVar[tuple[str, ...]] = SUBSTRATES
    layer_kinds: ClassVar[frozenset[str] | None] = None
    params: ClassVar[dict[str, Param]] = {}
    decay: float = 0.0  # rule-level weight decay applied to W (lambda in docs/rules.md)
    supervised: bool = True  # False: the rule ignores the target entirely

    def __init__(self, **hyper: Any):
        for key, spec in self.params.items():
            setattr(self, key, hyper.get(key, spec.default))

    def hyperparameters(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.params}

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({hp})"

    def check_layers(self, layers: Sequence[Layer]) -> None:
        """Raise ConfigError where a layer's kind is not one the rule is written for."""
        if self.layer_kinds is None:
            return
        for l, layer in enumerate(layers):
            if layer.kind not in self.layer_kinds:
                raise ConfigError(
                    f"rule '{self.name}' is defined for {', '.join(sorted(self.layer_kinds))} "
                    f"layers only; layer {l + 1} is {layer.kind}")

    # -- the three factors -------------------------------------------------------------------
    def init(self, weights: list[Tensor], generators: list[torch.Generator],
             layers: Sequence[Layer] | None = None) -> State:
        """Rule state (feedback matrices, thresholds...) for K replicas, each replica drawing
        from its own generator so that its state does not depend on its neighbours; `layers`
        are the layer kinds (dense where None, see `layer_list`)."""
        return {}

    def credit(self, state: State, s: Signals) -> list[Tensor]:
        """The modulator m_l of every layer, (K, N, n_l). Pure: no state changes here."""
        raise NotImplementedError

    def plasticity(self, state: State, s: Signals, m: list[Tensor]
                   ) -> list[tuple[Tensor, Tensor]]:
        """Default three-factor update of every layer: gW_l = <m_l h_{l-1}^T>, gb_l = <m_l>."""
        return [s.layers[l].weight_gradient(m_l, s.pre[l]) for l, m_l in enumerate(m)]

    def feedback(self, state: State, s: Signals, m: list[Tensor], steps: list[Tensor],
                 lr: Tensor, decay: Tensor | float | None = None) -> State:
        """The new rule state after W stepped: learned feedback weights, thresholds...

        `steps` are the optimizer-transformed learning terms of W, `lr` the learning rate
        ((K, 1, 1) or a number), `decay` the total decay W got this step (lambda + weight
        decay, (K, 1, 1) or a number; None: lambda alone). `s` holds the updated weights."""
        return state

    def feedback_matrices(self, state: State) -> list[Tensor | None]:
        """B_l (feedback convention of layer l) per layer, None where the rule has none."""
        return []

    def synapse_model(self, w_max: float, lr: float = 1.0) -> dict | None:
        """Brian2 synapse equations (model, on_pre, on_post, namespace) for a rule that learns
        inside a spiking simulation; None (default): the rule learns through the learning
        step."""
        return None

    # -- convenience -------------------------------------------------------------------------
    def update(self, state: State, s: Signals) -> list[tuple[Tensor, Tensor]]:
        """Learning terms for all layers (credit then plasticity), reading only declared
        signals."""
        view = s.restrict(self.signals)
        return self.plasticity(state, view, self.credit(state, view))


rules: Registry[Rule] = Registry("rule")


def register(cls: type[Rule]) -> type[Rule]:
    """Class decorator: put a rule in the registry under `cls.name`."""
    rules.register(cls.name, cls, params=cls.params, family=cls.family, locality=cls.locality,
                   substrates=cls.substrates, signals=cls.signals)
    return cls


def alignment_angles(rule: Rule, state: State, weights: list[Tensor],
                     layers: Sequence[Layer] | None = None) -> Tensor:
    """angle(B_l, W_l^T) in degrees per replica and layer, (K, L); NaN where no B exists.

    The angle between the flattened tensors B_l and `layer.as_feedback(W_l)` (W_l^T for dense
    layers): arccos(<B, W^T>_F / (|B|_F |W|_F)).
    """
    k = weights[0].shape[0]
    layers = layer_list(layers, len(weights))
    out = torch.full((k, len(weights)), float("nan"), dtype=torch.float64)
    mats = rule.feedback_matrices(state)
    for l, b in enumerate(mats):
        if b is None or l >= len(weights):
            continue
        wt = layers[l].as_feedback(weights[l]).reshape(k, -1).double()
        bf = b.reshape(k, -1).double()
        cos = (wt * bf).sum(1) / (wt.norm(dim=1) * bf.norm(dim=1)).clamp_min(1e-300)
        out[:, l] = torch.rad2deg(torch.arccos(cos.clamp(-1, 1))).cpu()
    return out
