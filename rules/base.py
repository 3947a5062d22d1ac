"""The shape of a learning rule: one object, written once, run by every substrate.

A rule is a small object in three-factor form (DESIGN.md, RULES.md):

    credit(state, s)         -> m_l per layer    the modulator: how the output error (or the
                                                 post activity, for Hebbian rules) reaches layer l
    plasticity(state, s, m)  -> (gW_l, gb_l)     the synapse's learning term from what it sees
    feedback(state, s, m, steps, lr) -> state    the update of learned feedback weights B_l

Sign convention: every learning term is *gradient-like*; the substrate applies
W <- W - lr * (opt(gW) + (decay + weight_decay) * W), with `opt` the optimizer's transform
(sgd / momentum / adam). A Hebbian term eta * y x^T is therefore returned as gW = -y^T x / N.

Every tensor carries a leading replica axis K and, for activity, a batch axis N:
activity (K, N, n_l); weights W_l (K, n_l, n_{l-1}); feedback B_l (K, n_{l-1}, n_l), the shape of
W_l^T. Rules use only torch; they never know which substrate calls them.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
from torch import Tensor

from lrsim.registry import Param, Registry

FAMILIES = ("backprop", "feedback_alignment", "weight_estimation", "four_synapse", "hebbian",
            "spike_timing")
LOCALITIES = ("local", "broadcast", "sign_transport", "weight_estimation", "non_local")
SUBSTRATES = ("rate", "spiking")


class SignalNotDeclared(AttributeError):
    """A rule read a signal it did not declare in `Rule.signals`."""


@dataclass
class Signals:
    """What the synapses of a network can see at one learning step (dense; axes K, N).

    pre[l]                h_{l-1}, the layer's input                      (K, N, n_{l-1})
    post[l]               h_l = f(z_l), the layer's output                (K, N, n_l)
    derivative[l]         f'(z_l)                                         (K, N, n_l)
    output_error          e = dL/dz_L per sample (softmax+CE: p - y)       (K, N, n_L)
    target                the output target (one-hot for classes)          (K, N, n_L)
    own_weights[l]        W_l, read by a synapse about itself (local)      (K, n_l, n_{l-1})
    downstream_weights[l] W_{l+1}, read to send error back: weight transport (non-local)
    noise                 random source for noise-driven phases: a `ReplicaNoise` (one generator
                          per replica) or one torch.Generator; draw with `normal(...)`
    """

    pre: list[Tensor]
    post: list[Tensor]
    derivative: list[Tensor]
    output_error: Tensor
    target: Tensor
    own_weights: list[Tensor]
    downstream_weights: list[Tensor]
    noise: ReplicaNoise | torch.Generator | None = None

    @property
    def n_layers(self) -> int:
        return len(self.pre)

    def restrict(self, declared: frozenset[str]) -> Signals:
        """A view in which reading an undeclared signal raises `SignalNotDeclared`."""
        return _RestrictedSignals(self, declared)  # type: ignore[return-value]


SIGNAL_NAMES = frozenset(f.name for f in fields(Signals))


class ReplicaNoise:
    """One random stream per replica, so a replica's noise does not depend on which replicas
    share its batch (same run id, same values, whatever the grouping)."""

    def __init__(self, seeds: list[int]):
        self.generators = [torch.Generator().manual_seed(int(s) * 2_654_435_761 % 2**63 + 7919)
                           for s in seeds]


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


def batch_mean_outer(m: Tensor, pre: Tensor) -> Tensor:
    """sum_n m[k,n,i] pre[k,n,j] / N  ->  (K, n_l, n_{l-1}): the three-factor term m^T x / N."""
    return torch.bmm(m.transpose(1, 2) * (1.0 / m.shape[1]), pre)  # scale the small operand


def three_factor(m: Tensor, pre: Tensor) -> tuple[Tensor, Tensor]:
    """The three-factor update of one layer, gradient-like: gW = m^T h_{l-1} / N, gb = mean_n m
    (m the layer's credit, (K, N, n_l); pre its input h_{l-1}, (K, N, n_{l-1}))."""
    return batch_mean_outer(m, pre), m.mean(1)


def random_feedback(shape_like: Tensor, generators: list[torch.Generator]) -> Tensor:
    """Fixed random matrices, one per replica from its own generator, shaped like `shape_like`
    (K, a, b) = the shape of W^T; entries N(0, 1/a), the scale of W's own fan-in init."""
    _, a, b = shape_like.shape
    mats = [torch.randn(a, b, generator=g, dtype=torch.float64) for g in generators]
    return torch.stack(mats).to(dtype=shape_like.dtype, device=shape_like.device) / a**0.5


class Rule:
    """Base of all rules: declarations plus the default (three-factor, no feedback) behaviour.

    Subclasses set the class attributes and override what differs. Hyperparameters are the
    keys of `params` and become attributes.
    """

    name: ClassVar[str]
    family: ClassVar[str]
    locality: ClassVar[str]
    signals: ClassVar[frozenset[str]]
    substrates: ClassVar[tuple[str, ...]] = SUBSTRATES
    params: ClassVar[dict[str, Param]] = {}
    decay: float = 0.0  # rule-level weight decay applied to W (lambda in RULES.md)
    supervised: bool = True  # False: the rule ignores the target entirely

    def __init__(self, **hyper: Any):
        for key, spec in self.params.items():
            setattr(self, key, hyper.get(key, spec.default))

    def hyperparameters(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.params}

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({hp})"

    # -- the three factors -------------------------------------------------------------------
    def init(self, weights: list[Tensor], generators: list[torch.Generator]) -> State:
        """Rule state (feedback matrices, thresholds...) for K replicas, each replica drawing
        from its own generator so that its state does not depend on its neighbours."""
        return {}

    def credit(self, state: State, s: Signals) -> list[Tensor]:
        raise NotImplementedError

    def plasticity(self, state: State, s: Signals, m: list[Tensor]
                   ) -> list[tuple[Tensor, Tensor]]:
        """Default three-factor update of every layer (`three_factor`)."""
        return [three_factor(m_l, s.pre[l]) for l, m_l in enumerate(m)]

    def feedback(self, state: State, s: Signals, m: list[Tensor], steps: list[Tensor],
                 lr: Tensor) -> State:
        """Update learned feedback weights given the optimizer-transformed weight steps."""
        return state

    def feedback_matrices(self, state: State) -> list[Tensor | None]:
        """B_l (shape of W_l^T) per layer, None where the rule has none (for alignment)."""
        return []

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


def alignment_angles(rule: Rule, state: State, weights: list[Tensor]) -> Tensor:
    """angle(B_l, W_l^T) in degrees per replica and layer, (K, L); NaN where no B exists.

    The angle between the flattened matrices: arccos(<B, W^T>_F / (|B|_F |W|_F)).
    """
    k = weights[0].shape[0]
    out = torch.full((k, len(weights)), float("nan"), dtype=torch.float64)
    mats = rule.feedback_matrices(state)
    for l, b in enumerate(mats):
        if b is None or l >= len(weights):
            continue
        wt = weights[l].transpose(1, 2).reshape(k, -1).double()
        bf = b.reshape(k, -1).double()
        cos = (wt * bf).sum(1) / (wt.norm(dim=1) * bf.norm(dim=1)).clamp_min(1e-300)
        out[:, l] = torch.rad2deg(torch.arccos(cos.clamp(-1, 1))).cpu()
    return out


def feedback_takes_decay(rule: Rule) -> bool:
    """Whether `rule.feedback` accepts `decay`: the total decay (K, 1, 1) applied to W this step,
    lambda_rule + weight_decay_k, which Kolen-Pollack (Kolen & Pollack 1994; Akrout et al. 2019)
    applies to B as well, so that B - W^T shrinks by W's own factor (1 - lr decay)."""
    return "decay" in inspect.signature(rule.feedback).parameters
