"""Trial-based learning in a layered balanced spiking network, driven by the rule registry.

Architecture (Brian2, one explicit `Network`):

    input (n_in Poisson neurons, rate = input_rate * pixel)  --W_1-->  hidden E_1  <-> I_1
        --W_2--> hidden E_2 <-> I_2 ... --W_L--> readout E (n_out * pool neurons)

Each hidden layer is a balanced E/I population (`network.NetworkParams`, N_I = N_E / 4) with
static recurrent synapses, external Poisson drive, and inhibitory plasticity on I -> E (Vogels,
Sprekeler, Zenke, Clopath & Gerstner 2011):

    pre (I) spike:  w <- w + eta_i (x_post - alpha),  alpha = 2 rho_0 tau_istdp
    post (E) spike: w <- w + eta_i x_pre,              x_pre, x_post: traces with tau_istdp

which holds the E rate near rho_0 and keeps the balance while the feedforward weights change.
The feedforward projections W_l are excitatory (Dale: w >= 0); each also reaches the next
layer's I population through static synapses (feedforward inhibition), and the readout gets
static inhibition from the last hidden I population.

Learning runs inside ONE `Network.run`: the stimulus of every trial is a row of a `TimedArray`,
and a `network_operation` at every trial boundary reads each population's spike count over the
trial's window [settle, T) (filtered rate r = count / (T - settle)), forms the readout error,
and, every `batch_trials` trials, builds dense `Signals` (K = 1 replica, N = batch_trials):

    pre[l]    = r_{l-1} / rate_scale          post[l] = r_l / rate_scale
    derivative[l] = 1                          (linear surrogate of the rate nonlinearity: a
                                                noise-driven LIF's f-I curve is close to
                                                threshold-linear in the fluctuation-driven regime)
    output_error_j = (rbar_c(j) - r*_c(j)) / rate_scale,  target = r* / rate_scale
    own_weights[l] = W_l (dense n_post x n_pre, zero where no synapse), downstream = W_{l+1}

with rbar_c the mean rate of the readout pool of class c that neuron j belongs to: the output
error is pool size x dL/dr_j of the reported loss L = 1/2 sum_c ((rbar_c - r*_c) / rate_scale)^2,
and averaging the pool's spike counts makes it less noisy (`readout_error = "neuron"` uses r_j
itself). It then calls the SAME learning step as the rate trainer
(`lrsim.models.step.LearningStep`) on these dense weights:

    m = rule.credit(state, s);  g = rule.plasticity(state, s, m);  steps = optimizer(g)
    W <- W (1 - lr d) - lr steps,  d = rule.decay + weight_decay;  state = rule.feedback(...)

with no biases (the network has none: a rule's bias terms are dropped), then gathers W at
Brian2's synapse index arrays (j, i), clips it to [0, w_max] (Dale's sign) and writes it back.
The substrate holds no rule-specific code: a rule that declares Brian2 synapse equations
(`Rule.synapse_model`, e.g. STDP) gets them installed on the plastic projections instead, and
its weights change inside the simulation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import brian2 as b2
import numpy as np
import torch
from brian2 import Hz, Quantity, ms, mV, second

from lrsim.layers import dense_layers
from lrsim.models.spiking.network import (
    NetworkParams,
    bernoulli_pairs,
    lif_group,
    static_synapses,
)
from lrsim.models.step import LearningStep
from lrsim.rules.base import Rule, Signals, State

FAN_IN_REF = 100  # a projection's PSP per unit W is w_unit * FAN_IN_REF / n_pre


@dataclass(frozen=True)
class LearningParams:
    """The task network around the balanced layers (times and rates with units)."""

    trial: Quantity = field(default_factory=lambda: 100 * ms)
    settle: Quantity = field(default_factory=lambda: 20 * ms)
    input_rate: Quantity = field(default_factory=lambda: 100 * Hz)  # rate of a white pixel
    target_rate: Quantity = field(default_factory=lambda: 30 * Hz)  # readout, correct class
    rest_rate: Quantity = field(default_factory=lambda: 5 * Hz)     # readout, other classes
    rate_scale: Quantity = field(default_factory=lambda: 40 * Hz)   # rates are divided by it
    readout_pool: int = 10          # readout neurons per class
    readout_inhibition: float | None = None  # hidden I -> readout jump / (g J tau_m / tau_i);
                                              # None: matched E/I ratio (see `_build`)
    p_ff: float = 0.25              # feedforward connection probability (selectivity)
    w_unit: Quantity = field(default_factory=lambda: 1.0 * mV)  # PSP of W = 1 at 100 inputs
    w_init: float = 4.0             # initial W ~ U(0, 2 w_init)
    w_max: float = 20.0             # Dale: 0 <= W <= w_max
    batch_trials: int = 1           # trials per update (the batch N of the Signals)
    istdp: bool = True
    istdp_eta: float = 0.01         # in units of the initial I->E weight
    istdp_rate: Quantity = field(default_factory=lambda: 10 * Hz)   # rho_0
    istdp_tau: Quantity = field(default_factory=lambda: 20 * ms)
    readout_istdp: bool = True      # Vogels rule on hidden I -> readout, towards the mean target
    readout_istdp_eta: float = 0.01   # its learning rate (the hidden layers use istdp_eta)
    readout_error: str = "pool"     # "pool": e_j = (mean rate of j's class pool - target);
                                    # "neuron": e_j = (r_j - target_j)
    record_spikes: int = 100        # neurons per population whose spikes are monitored
    record_currents: int = 20       # E neurons per hidden layer whose I_e, I_i are recorded
    current_dt: Quantity = field(default_factory=lambda: 1 * ms)


@dataclass
class Population:
    """One population of the task network as the bridge sees it."""

    name: str
    group: b2.NeuronGroup
    n: int


@dataclass
class Projection:
    """A plastic feedforward projection: Brian2 synapses and their index arrays."""

    name: str
    synapses: b2.Synapses
    i: np.ndarray   # presynaptic index per synapse
    j: np.ndarray   # postsynaptic index per synapse
    n_pre: int
    n_post: int

    def dense(self) -> np.ndarray:
        """W (n_post, n_pre), zero where no synapse exists."""
        w = np.zeros((self.n_post, self.n_pre))
        w[self.j, self.i] = np.asarray(self.synapses.w[:])
        return w

    def write(self, dense: np.ndarray, w_max: float) -> None:
        """Gather `dense` at the synapses, clip to Dale's sign [0, w_max], write back."""
        self.synapses.w[:] = np.clip(dense[self.j, self.i], 0.0, w_max)


@dataclass
class TrialLog:
    """What the network operation saw in each completed trial."""

    phase: list[str] = field(default_factory=list)
    label: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)
    t_end: list[float] = field(default_factory=list)
    rates: list[list[np.ndarray]] = field(default_factory=list)  # per trial, per layer (Hz)


@dataclass
class Schedule:
    """The trial sequence of one run: per trial a stimulus row, its label and a phase
    ('train', or an evaluation block name such as 'eval_train_0')."""

    stimuli: np.ndarray   # (n_trials, n_in) in [0, 1]
    labels: np.ndarray    # (n_trials,)
    phases: list[str]


def _eye(n: int) -> np.ndarray:
    return np.eye(n)


class TaskNetwork:
    """The layered balanced network, its plastic projections and the learning bridge."""

    def __init__(self, sizes: list[int], n_classes: int, schedule: Schedule, rule: Rule,
                 optimizer: Any, lr: float, weight_decay: float, seed: int,
                 net_params: NetworkParams | None = None,
                 params: LearningParams | None = None,
                 on_update: Callable[[TaskNetwork, int], None] | None = None,
                 on_trial: Callable[[TaskNetwork, int], None] | None = None):
        self.sizes = list(sizes)  # [n_in, *hidden E widths]
        self.n_classes = n_classes
        self.schedule = schedule
        self.rule, self.optimizer = rule, optimizer
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.seed = seed
        self.p = net_params if net_params is not None else NetworkParams()
        self.lp = params if params is not None else LearningParams()
        self.on_update, self.on_trial = on_update, on_trial
        self.log = TrialLog()
        self.n_updates = 0
        self.trial_index = 0
        self._batch: list[tuple[list[np.ndarray], np.ndarray]] = []
        self.diverged_step: int | None = None
        self._build()
        weights = [torch.as_tensor(pr.dense()).unsqueeze(0) for pr in self.projections]
        self.generators = [torch.Generator().manual_seed(int(seed))]
        self.layer_kinds = dense_layers(len(weights))
        self.learner = LearningStep(rule, optimizer, weights, None, self.layer_kinds,
                                    self.generators, self.weight_decay)

    @property
    def rule_state(self) -> State:
        return self.learner.rule_state

    # -- construction ------------------------------------------------------------------------
    def _build(self) -> None:
        """The Brian2 network: input, hidden E/I layers, readout, plastic projections, the
        readout's inhibition, monitors and the learning bridge (random draws in this order)."""
        lp = self.lp
        b2.seed(self.seed)
        rng = np.random.default_rng([self.seed, 29])
        gate = "(t - trial_period * floor(t / trial_period)) >= settle"
        ns_gate = {"trial_period": lp.trial, "settle": lp.settle}
        objects: list = []
        static: list = []
        self._build_input(gate, ns_gate, objects)
        self._build_hidden(rng, gate, ns_gate, objects, static)
        readout = self._build_readout(rng, gate, ns_gate, objects, static)
        self._build_projections(rng, objects, static)
        self._build_readout_inhibition(rng, readout, static)
        self._build_monitors()
        operation = b2.NetworkOperation(self._end_of_trial, dt=lp.trial, when="start",
                                        name="learning_bridge")
        self.network = b2.Network(*objects, *static, *self.spike_monitors.values(),
                                  *self.current_monitors.values(), operation)

    def _build_input(self, gate: str, ns_gate: dict, objects: list) -> None:
        """Poisson input neurons, rate = input_rate x the trial's stimulus pixel."""
        lp = self.lp
        stim = b2.TimedArray(self.schedule.stimuli, dt=lp.trial, name="stimulus")
        n_in = self.sizes[0]
        inp = b2.NeuronGroup(
            n_in, "rate = input_rate * stimulus(t, i) : Hz\ncount : 1",
            threshold="rand() < rate * dt", reset=f"count += int({gate})",
            namespace={"input_rate": lp.input_rate, "stimulus": stim, **ns_gate},
            name="input")
        self.populations: list[Population] = [Population("input", inp, n_in)]
        objects.append(inp)

    def _build_hidden(self, rng: np.random.Generator, gate: str, ns_gate: dict,
                      objects: list, static: list) -> None:
        """The balanced E/I hidden layers with their recurrent synapses and external drive."""
        p, lp = self.p, self.lp
        self.inhibitory: list[b2.NeuronGroup] = []
        self.istdp_synapses: list[b2.Synapses] = []
        self.hidden_params: list[NetworkParams] = []
        for h, n_e in enumerate(self.sizes[1:], start=1):
            # keep the in-degree C_E of `net_params` (so J C_E and the balance do not depend
            # on the layer's width): epsilon_h = C_E / N_E, at most 1
            hp = p.replace(n_e=n_e, n_i=max(1, n_e // 4), epsilon=min(1.0, p.c_e / n_e),
                           c_ext=p.n_external)
            self.hidden_params.append(hp)
            exc = lif_group(n_e, hp, f"hidden{h}_exc", counter=gate, rng=rng,
                            extra_namespace=ns_gate)
            inh = lif_group(hp.n_i, hp, f"hidden{h}_inh", rng=rng)
            self.populations.append(Population(f"layer{h}", exc, n_e))
            self.inhibitory.append(inh)
            objects += [exc, inh]
            for s_name, src, jump, var in (("e", exc, hp.jump_e, "I_e"),
                                           ("i", inh, hp.jump_i, "I_i")):
                for d_name, dst in (("e", exc), ("i", inh)):
                    pairs = bernoulli_pairs(len(src), len(dst), hp.epsilon, rng,
                                            autapses=src is not dst)
                    if s_name + d_name == "ie" and lp.istdp:
                        syn = self._istdp(src, dst, pairs, hp, f"hidden{h}_ie")
                        self.istdp_synapses.append(syn)
                    else:
                        syn = static_synapses(src, dst, pairs, var, jump, hp.delay,
                                              f"hidden{h}_{s_name}{d_name}")
                    static.append(syn)
            for grp in (exc, inh):
                static.append(b2.PoissonInput(grp, "I_e", N=hp.n_external, rate=hp.nu_ext,
                                              weight=hp.jump_e))

    def _build_readout(self, rng: np.random.Generator, gate: str, ns_gate: dict,
                       objects: list, static: list) -> b2.NeuronGroup:
        """The readout: `readout_pool` LIF neurons per class with external drive."""
        p = self.p
        n_out = self.n_classes * self.lp.readout_pool
        readout = lif_group(n_out, p, "readout", counter=gate, rng=rng, extra_namespace=ns_gate)
        self.populations.append(Population("readout", readout, n_out))
        objects.append(readout)
        static.append(b2.PoissonInput(readout, "I_e", N=p.n_external, rate=p.nu_ext,
                                      weight=p.jump_e))
        return readout

    def _build_projections(self, rng: np.random.Generator, objects: list,
                           static: list) -> None:
        """Plastic feedforward projections E_{l-1} -> E_l (with the rule's synapse equations
        where it declares them) and static feedforward inhibition E_{l-1} -> I_l."""
        p, lp = self.p, self.lp
        self.projections: list[Projection] = []
        spec = self.rule.synapse_model(w_max=lp.w_max, lr=self.lr)
        self.synapse_rule = spec is not None  # the rule learns inside the simulation
        for l in range(1, len(self.populations)):
            pre, post = self.populations[l - 1], self.populations[l]
            # fan-in scaled: W = 1 on all n_pre synapses gives the drive of w_unit on 100
            jump_unit = lp.w_unit * (FAN_IN_REF / pre.n) * p.tau_m / p.tau_e
            pairs = bernoulli_pairs(pre.n, post.n, lp.p_ff, rng)
            ns = {"jump_unit": jump_unit, "w_max": lp.w_max}
            if spec is not None:
                syn = b2.Synapses(pre.group, post.group, model="w : 1\n" + spec["model"],
                                  on_pre="I_e_post += w * jump_unit\n" + spec["on_pre"],
                                  on_post=spec["on_post"], delay=p.delay,
                                  namespace={**ns, **spec["namespace"]},
                                  name=f"proj{l}")
            else:
                syn = b2.Synapses(pre.group, post.group, model="w : 1",
                                  on_pre="I_e_post += w * jump_unit", delay=p.delay,
                                  namespace=ns, name=f"proj{l}")
            syn.connect(i=pairs[0], j=pairs[1])
            syn.w[:] = rng.uniform(0, 2 * lp.w_init, len(pairs[0]))
            self.projections.append(Projection(f"layer{l}", syn, pairs[0], pairs[1],
                                               pre.n, post.n))
            objects.append(syn)
            if l < len(self.populations) - 1:  # feedforward inhibition: E_{l-1} -> I_l
                inh = self.inhibitory[l - 1]
                ipairs = bernoulli_pairs(pre.n, len(inh), lp.p_ff, rng)
                static.append(static_synapses(pre.group, inh, ipairs, "I_e",
                                              lp.w_init * jump_unit, p.delay,
                                              f"ffi{l}"))

    def _build_readout_inhibition(self, rng: np.random.Generator, readout: b2.NeuronGroup,
                                  static: list) -> None:
        """The readout's inhibition from the last hidden I population (plastic towards the
        mean target rate with `readout_istdp`)."""
        if not self.inhibitory:
            return
        p, lp = self.p, self.lp
        inh = self.inhibitory[-1]
        hp = self.hidden_params[-1]
        pairs = bernoulli_pairs(len(inh), len(readout), hp.epsilon, rng)
        if lp.istdp and lp.readout_istdp:
            syn = self._istdp(inh, readout, pairs, hp, "readout_inh",
                              rate=self.mean_target_rate(), w0=self.readout_inhibition(),
                              eta=lp.readout_istdp_eta)
            self.istdp_synapses.append(syn)
            static.append(syn)
        else:
            static.append(static_synapses(inh, readout, pairs, "I_i",
                                          self.readout_inhibition() * hp.jump_i, p.delay,
                                          "readout_inh"))

    def _build_monitors(self) -> None:
        """Spikes of every population (but the input), currents of the hidden E populations."""
        lp = self.lp
        self.spike_monitors: dict[str, b2.SpikeMonitor] = {}
        self.current_monitors: dict[str, b2.StateMonitor] = {}
        self.population_sizes: dict[str, int] = {}
        pops = [(ly.name, ly.group) for ly in self.populations[1:]]
        pops += [(f"layer{h}_inh", g) for h, g in enumerate(self.inhibitory, start=1)]
        for name, grp in pops:
            n_rec = min(len(grp), lp.record_spikes)
            key = name if name.endswith("_inh") or name == "readout" else f"{name}_exc"
            self.spike_monitors[key] = b2.SpikeMonitor(grp[:n_rec], name=f"spikes_{key}")
            self.population_sizes[key] = n_rec
        for h, ly in enumerate(self.populations[1:-1], start=1):
            if lp.record_currents:
                self.current_monitors[f"layer{h}_exc"] = b2.StateMonitor(
                    ly.group, ["I_e", "I_i"],
                    record=np.arange(min(ly.n, lp.record_currents)), dt=lp.current_dt,
                    name=f"currents_layer{h}")

    def mean_target_rate(self) -> Quantity:
        """The readout's mean target rate over classes, (r_target + (C - 1) r_rest) / C: the
        rate every readout neuron has on average when the error is zero, so inhibitory
        plasticity towards it sets each neuron's operating point (a bias) without opposing
        the error-driven excitatory learning of its selectivity."""
        lp = self.lp
        return (lp.target_rate + (self.n_classes - 1) * lp.rest_rate) / self.n_classes

    def readout_inhibition(self) -> float:
        """Scale of the hidden I -> readout synapses relative to a hidden layer's I -> E.

        A hidden E neuron sums C_ext J (external) + C_E J (recurrent E) + FAN_IN_REF w_init
        w_unit (feedforward) of excitatory weight against C_I g J of inhibition; the readout has
        no recurrent E, so with the same inhibition it sits far below threshold, silent, where
        the bridge's linear surrogate (derivative = 1) is false and the error cannot be
        followed. Matched (default, `readout_inhibition = None`): the readout's inhibition is
        scaled by (C_ext J + FAN_IN_REF w_init w_unit) / (C_ext J + C_E J + FAN_IN_REF w_init
        w_unit), giving it the hidden layers' E/I ratio and a fluctuation-driven operating
        point.
        """
        lp = self.lp
        if lp.readout_inhibition is not None:
            return float(lp.readout_inhibition)
        hp = self.hidden_params[-1]
        j = float(hp.j / mV)
        ff = FAN_IN_REF * lp.w_init * float(lp.w_unit / mV)
        ext = hp.n_external * j
        return (ext + ff) / (ext + hp.c_e * j + ff)

    def _istdp(self, src, dst, pairs, hp: NetworkParams, name: str,
               rate: Quantity | None = None, w0: float = 1.0, eta: float | None = None
               ) -> b2.Synapses:
        """I -> E synapses with Vogels et al. (2011) inhibitory plasticity towards the target
        rate `rate` (default rho_0 = `istdp_rate`); w in units of the static inhibitory jump
        g J tau_m / tau_i (starts at `w0`)."""
        lp = self.lp
        rate = lp.istdp_rate if rate is None else rate
        eta = lp.istdp_eta if eta is None else eta
        syn = b2.Synapses(
            src, dst,
            model="""w : 1
                     dapre_i/dt = -apre_i / tau_istdp : 1 (event-driven)
                     dapost_i/dt = -apost_i / tau_istdp : 1 (event-driven)""",
            on_pre="""I_i_post += w * jump_i
                      apre_i += 1
                      w = clip(w + eta_istdp * (apost_i - alpha_istdp), 0, w_imax)""",
            on_post="""apost_i += 1
                       w = clip(w + eta_istdp * apre_i, 0, w_imax)""",
            delay=hp.delay, name=name,
            namespace={"jump_i": hp.jump_i, "tau_istdp": lp.istdp_tau, "eta_istdp": eta,
                       "alpha_istdp": float(2 * rate * lp.istdp_tau), "w_imax": 10.0})
        syn.connect(i=pairs[0], j=pairs[1])
        syn.w[:] = w0
        return syn

    # -- the bridge --------------------------------------------------------------------------
    @property
    def n_trials(self) -> int:
        return len(self.schedule.labels)

    def target_rates(self, label: int) -> np.ndarray:
        """Target rate (Hz) of every readout neuron for a stimulus of class `label`."""
        lp = self.lp
        onehot = _eye(self.n_classes)[label]
        per_class = float(lp.rest_rate / Hz) + onehot * float((lp.target_rate - lp.rest_rate) / Hz)
        return np.repeat(per_class, lp.readout_pool)

    def _read_rates(self) -> list[np.ndarray]:
        window = float((self.lp.trial - self.lp.settle) / second)
        out = []
        for ly in self.populations:
            out.append(np.asarray(ly.group.count[:], float) / window)
            ly.group.count[:] = 0
        return out

    def _end_of_trial(self, t: Quantity) -> None:
        k = int(round(float(t / self.lp.trial))) - 1  # the trial that just ended
        if k < 0:
            return
        rates = self._read_rates()
        if k >= self.n_trials:
            return
        self.trial_index = k + 1
        scale = float(self.lp.rate_scale / Hz)
        label = int(self.schedule.labels[k])
        target = self.target_rates(label)
        # the readout error of the population code: class rate = mean over the class's pool
        class_rates = rates[-1].reshape(self.n_classes, self.lp.readout_pool).mean(1)
        class_target = target.reshape(self.n_classes, self.lp.readout_pool).mean(1)
        loss = 0.5 * float(np.sum(((class_rates - class_target) / scale) ** 2))
        self.log.phase.append(self.schedule.phases[k])
        self.log.label.append(label)
        self.log.loss.append(loss)
        self.log.correct.append(bool(np.argmax(class_rates) == label))
        self.log.t_end.append(float(t / second))
        self.log.rates.append(rates)
        if self.schedule.phases[k] == "train":
            self._batch.append(([r / scale for r in rates], target / scale))
            if len(self._batch) >= self.lp.batch_trials:
                if not self.synapse_rule:  # a synapse-model rule learns inside the simulation
                    self._update()
                self._batch.clear()
                self.n_updates += 1
                if self.on_update:
                    self.on_update(self, self.n_updates)
        if self.on_trial:
            self.on_trial(self, k)

    def signals(self, batch: list[tuple[list[np.ndarray], np.ndarray]]) -> Signals:
        """Dense Signals (K = 1, N = len(batch)) from the batch's normalised rates."""
        def stack(l: int) -> torch.Tensor:
            return torch.as_tensor(np.stack([b[0][l] for b in batch])).unsqueeze(0)

        acts = [stack(l) for l in range(len(self.populations))]
        target = torch.as_tensor(np.stack([b[1] for b in batch])).unsqueeze(0)
        weights = [torch.as_tensor(pr.dense()).unsqueeze(0) for pr in self.projections]
        post = acts[1:]
        out = post[-1]
        if self.lp.readout_error == "pool":  # every neuron gets its class pool's mean rate
            pool = out.reshape(*out.shape[:-1], self.n_classes, self.lp.readout_pool)
            out = pool.mean(-1, keepdim=True).expand_as(pool).reshape(out.shape)
        return Signals(pre=acts[:-1], post=post, derivative=[torch.ones_like(h) for h in post],
                       output_error=out - target, target=target, own_weights=weights,
                       downstream_weights=weights[1:],
                       noise=torch.Generator().manual_seed(self.seed + 7919 + self.n_updates),
                       layers=self.layer_kinds)

    def _update(self) -> None:
        """One weight update from the batch of trials (the bridge step of the module docstring):
        the learning step on dense copies of W, written back clipped to [0, w_max]; a
        non-finite W stops the writes and freezes learning (diverged)."""
        full = self.signals(self._batch)
        lr = torch.full((1, 1, 1), self.lr, dtype=torch.float64)
        self.learner.step(full, full.own_weights, None, lr)
        for pr, w in zip(self.projections, full.own_weights):
            new = w[0].numpy()
            if not np.all(np.isfinite(new)):
                if self.diverged_step is None:
                    self.diverged_step = self.n_updates
                self.lr = 0.0
                break
            pr.write(new, self.lp.w_max)

    def weights(self) -> list[np.ndarray]:
        """Dense W_l of every plastic projection."""
        return [pr.dense() for pr in self.projections]

    def dale_violations(self) -> int:
        """Synapses whose weight has the wrong sign (should always be 0): plastic E weights,
        and inhibitory-plastic I->E weights (stored as magnitudes)."""
        bad = sum(int(np.sum(np.asarray(pr.synapses.w[:]) < 0)) for pr in self.projections)
        bad += sum(int(np.sum(np.asarray(s.w[:]) < 0)) for s in self.istdp_synapses)
        return bad

    def run(self, report: Callable[[float], None] | None = None) -> None:
        """Simulate every trial of the schedule in ONE `Network.run` (one extra time step lets
        the operation see the last trial's end)."""
        duration = self.n_trials * self.lp.trial + b2.defaultclock.dt
        self.network.run(duration, report=report, report_period=2 * second)
