"""The balanced E/I network: leaky integrate-and-fire neurons with exponential synaptic currents
in Brian2, sparse random connectivity, Dale's law and external Poisson drive.

Each neuron (Brunel 2000 model A, with exponential instead of delta synapses):

    tau_m dv/dt   = (v_rest - v) + I_e + I_i          (unless refractory; v -> v_reset at
    tau_e dI_e/dt = -I_e,   tau_i dI_i/dt = -I_i       v > v_threshold, refractory t_ref)

A spike of an excitatory neuron adds J tau_m / tau_e to I_e of its targets, so the integral of
the postsynaptic potential equals J as with Brunel's delta synapses (the PSP jump J); an
inhibitory spike adds -g J tau_m / tau_i to I_i. Every neuron receives C_E excitatory and
C_I = C_E / 4 inhibitory recurrent synapses on average (connection probability epsilon) and
C_ext external Poisson synapses of weight J at rate nu_ext = eta nu_thr, with
nu_thr = (v_threshold - v_rest) / (J C_E tau_m) the rate that brings the mean input to threshold.
Brunel's regimes: g < 4 (excitation dominates) gives synchronous regular firing near saturation;
g >= 5 with eta >= 2 gives the asynchronous irregular (AI) state. Dale's law holds by
construction: an excitatory neuron's synapses only ever add to I_e, an inhibitory neuron's only
to I_i; plastic weights are clipped to their sign.

Connectivity is drawn with numpy from the network's seed and handed to Brian2 as index arrays,
so it is the same in every code-generation target and costs no compilation: Bernoulli(epsilon)
pairs by default, or, with `connectivity="fixed_indegree"`, exactly C_E = epsilon N_E
excitatory and C_I = epsilon N_I inhibitory sources per neuron as in Brunel (2000). No autapses.

Brunel's synchronous regular (SR) state, Fig. 8A (g = 3, eta = 2, J = 0.1 mV, C_E = 1000,
D = 1.5 ms, tau_rp = 2 ms, delta synapses): the global activity oscillates fast and strongly and
neurons fire regularly at high rate, "almost fully synchronized in a few clusters". Because the
delay is shorter than the refractory period, a volley reaches its own senders while they are
still refractory and excites the other neurons instead; the network splits into two clusters
that fire alternately, one volley every ~1.65 ms (D plus the rise to threshold; population
frequency ~600 Hz), each neuron in every other volley (~300 Hz, CV of ISI ~0.01-0.03).
`brunel_params` builds that family (J C_E = 100 mV as Brunel's). What decides whether this model
shows it (measured: g = 3, eta = 2, numpy target, seed 1, 0.3 s; chi on 0.5 ms bins, where two
perfect clusters give ~0.64):

- synaptic time constant: tau_e = tau_i = 0.1 ms (= dt; Brunel's delta synapses) keeps the
  clusters; at 0.5 ms there is no SR state at any in-degree (C_E = 80, 200, 500: chi 0.07-0.14,
  no population rhythm below 2 kHz);
- noise, which scales as J sqrt(C_E) = 100 mV / sqrt(C_E): with 0.1 ms synapses, chi is
  0.12 (Bernoulli) / 0.15 (fixed in-degree) at C_E = 80, 0.40 / 0.58 at C_E = 200, 0.56 / 0.59
  at C_E = 500 (J = 0.2 mV), 0.59 (fixed) at C_E = 1000 (J = 0.1 mV, cython);
- in-degree heterogeneity (Bernoulli: +-1/sqrt(C_E) of a ~600 mV excitatory drive near
  saturation) spreads the neurons' frequencies; fixed in-degree matters at C_E = 200, little at
  500.

The default network (C_E = 80, J = 1 mV, 2 ms synapses) at g = 3, eta = 2 is therefore regular
(CV ~0.2) at ~270 Hz but only weakly synchronous (chi ~0.1).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import brian2 as b2
import numpy as np
from brian2 import Quantity, ms, mV

TARGETS = ("cython", "numpy")
CONNECTIVITY = ("bernoulli", "fixed_indegree")

NEURON_EQS = """
dv/dt = (v_rest - v + I_e + I_i) / tau_m : volt (unless refractory)
dI_e/dt = -I_e / tau_e : volt
dI_i/dt = -I_i / tau_i : volt
"""


def _q(value: Quantity):
    """A Quantity default for a frozen dataclass field."""
    return field(default_factory=lambda: value)


@dataclass(frozen=True)
class NetworkParams:
    """Parameters of the balanced network (Brunel 2000 notation), with units.

    Defaults: a small network (800 E, 200 I, epsilon = 0.1 so C_E = 80) in the asynchronous
    irregular regime (g = 7, eta = 1.25, J = 1 mV; measured: E rate ~20-25 Hz, CV of ISI ~1,
    Fano ~1.0-1.15, balance |E + I| / E < 0.12). J is larger than Brunel's 0.1 mV because C_E
    is 80, not 1000. connectivity: "bernoulli" (each pair with probability epsilon) or
    "fixed_indegree" (exactly round(epsilon N_E) E and round(epsilon N_I) I sources per neuron,
    Brunel's); `brunel_params` gives Brunel's Fig. 8 family.
    """

    n_e: int = 800
    n_i: int = 200
    epsilon: float = 0.1          # connection probability (E->*, I->*)
    j: Quantity = _q(1.0 * mV)        # excitatory PSP (integral-equivalent jump) J
    g: float = 7.0                # relative inhibitory strength: J_I = -g J
    eta: float = 1.25             # external drive nu_ext / nu_thr
    c_ext: int | None = None      # external synapses per neuron (None: C_E = epsilon n_e)
    tau_m: Quantity = _q(20 * ms)
    tau_e: Quantity = _q(2 * ms)
    tau_i: Quantity = _q(2 * ms)
    t_ref: Quantity = _q(2 * ms)
    delay: Quantity = _q(1.5 * ms)
    v_rest: Quantity = _q(0 * mV)
    v_threshold: Quantity = _q(20 * mV)
    v_reset: Quantity = _q(10 * mV)
    connectivity: str = "bernoulli"  # or "fixed_indegree": exactly C_E, C_I per neuron

    def __post_init__(self) -> None:
        if self.connectivity not in CONNECTIVITY:
            raise ValueError(f"unknown connectivity '{self.connectivity}'; use one of "
                             f"{', '.join(CONNECTIVITY)}")

    def replace(self, **changes) -> NetworkParams:
        return dataclasses.replace(self, **changes)

    @property
    def c_e(self) -> float:
        """Mean excitatory in-degree C_E = epsilon N_E."""
        return self.epsilon * self.n_e

    @property
    def n_external(self) -> int:
        return int(round(self.c_e)) if self.c_ext is None else int(self.c_ext)

    @property
    def nu_thr(self) -> Quantity:
        """nu_thr = theta / (J C_E tau_m): the external rate that alone reaches threshold."""
        return (self.v_threshold - self.v_rest) / (self.j * self.c_e * self.tau_m)

    @property
    def nu_ext(self) -> Quantity:
        return self.eta * self.nu_thr

    @property
    def jump_e(self) -> Quantity:
        """Increment of I_e per excitatory spike: J tau_m / tau_e."""
        return self.j * self.tau_m / self.tau_e

    @property
    def jump_i(self) -> Quantity:
        """Increment of I_i per inhibitory spike: -g J tau_m / tau_i."""
        return -self.g * self.j * self.tau_m / self.tau_i


def brunel_params(g: float, eta: float, *, n_e: int = 2000, epsilon: float = 0.25,
                  j_c_e: Quantity = 100 * mV, **changes) -> NetworkParams:
    """Brunel's (2000) model A family: fixed in-degree C_E = epsilon N_E, C_I = C_E / 4,
    N_I = N_E / 4, J = j_c_e / C_E (Brunel: J = 0.1 mV, C_E = 1000, so J C_E = 100 mV),
    C_ext = C_E external Poisson synapses at nu_ext = eta nu_thr, D = 1.5 ms,
    tau_rp = 2 ms, V_r = 10 mV, theta = 20 mV, tau = 20 ms, and near-delta synapses
    (tau_e = tau_i = 0.1 ms). Brunel's Fig. 8: g = 3, eta = 2 is synchronous regular (A);
    g = 6, eta = 4 synchronous irregular with a fast (~180 Hz) oscillation (B); g = 5, eta = 2
    asynchronous irregular (C). Measured here with the defaults (N_E = 2000, C_E = 500, numpy
    target, 0.3-0.5 s, chi on 0.5 ms bins): g = 3, eta = 2: rate ~300 Hz, CV ~0.015, two
    clusters, chi ~0.6, population-rate peak at 600 Hz with an amplitude ~1.9x the mean rate;
    g = 6, eta = 4: peak at 180 Hz, rate ~60 Hz, CV ~0.8; g = 5, eta = 2: rate ~40 Hz, CV ~0.55,
    chi ~0.14; g = 6, eta = 2: ~24 Hz, CV ~0.7, chi ~0.12; g = 7, eta = 2: ~18 Hz, CV ~0.7
    (Poisson trains give ~0.78 over the same 0.4 s), chi ~0.10. The irregular states keep a
    broad ~100 Hz population rhythm (amplitude ~0.5x the mean rate), so g = 5 sits nearer the
    synchronous irregular border here than in Brunel's Fig. 8C. With N_E = 4000 (Brunel's
    J = 0.1 mV, C_E = 1000; cython): g = 3: 301 Hz, CV 0.014, chi 0.61; g = 6: 23 Hz, CV 0.52,
    chi 0.11. `changes` override any other field."""
    n_e = int(n_e)
    c_e = int(round(epsilon * n_e))
    fields = dict(n_e=n_e, n_i=n_e // 4, epsilon=epsilon, j=j_c_e / c_e, g=g, eta=eta,
                  c_ext=c_e, tau_e=0.1 * ms, tau_i=0.1 * ms, t_ref=2 * ms, delay=1.5 * ms,
                  connectivity="fixed_indegree")
    fields.update(changes)
    return NetworkParams(**fields)


def namespace(p: NetworkParams) -> dict:
    """The constants the neuron equations refer to."""
    return {"v_rest": p.v_rest, "v_threshold": p.v_threshold, "v_reset": p.v_reset,
            "tau_m": p.tau_m, "tau_e": p.tau_e, "tau_i": p.tau_i}


def lif_group(n: int, p: NetworkParams, name: str, counter: str | None = None,
              rng: np.random.Generator | None = None, extra_namespace: dict | None = None
              ) -> b2.NeuronGroup:
    """`n` LIF neurons of the model above; v starts uniform in [v_reset, v_threshold].

    `counter`: an extra condition; when given, the group has a variable `count` incremented on
    each spike while the condition holds (used to count spikes in a trial's window).
    """
    eqs = NEURON_EQS + ("count : 1\n" if counter else "")
    reset = "v = v_reset" + (f"\ncount += int({counter})" if counter else "")
    group = b2.NeuronGroup(n, eqs, threshold="v > v_threshold", reset=reset,
                           refractory=p.t_ref, method="exact",
                           namespace={**namespace(p), **(extra_namespace or {})},
                           name=name)
    rng = rng or np.random.default_rng(0)
    u = rng.random(n)
    group.v = p.v_reset + u * (p.v_threshold - p.v_reset)
    return group


def bernoulli_pairs(n_pre: int, n_post: int, p: float, rng: np.random.Generator,
                    autapses: bool = True, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays (i, j) of a Bernoulli(p) random graph from n_pre to n_post neurons."""
    i_all, j_all = [], []
    for start in range(0, n_pre, chunk):
        rows = min(chunk, n_pre - start)
        mask = rng.random((rows, n_post)) < p
        if not autapses:
            for r in range(rows):
                if start + r < n_post:
                    mask[r, start + r] = False
        i, j = np.nonzero(mask)
        i_all.append(i + start)
        j_all.append(j)
    if not i_all:
        return np.zeros(0, int), np.zeros(0, int)
    return np.concatenate(i_all).astype(np.int32), np.concatenate(j_all).astype(np.int32)


def fixed_indegree_pairs(n_pre: int, n_post: int, k: int, rng: np.random.Generator,
                         self_offset: int | None = None, chunk: int = 256
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays (i, j) in which every one of the n_post targets draws exactly `k` distinct
    sources uniformly from the n_pre (Brunel 2000, section 2: each neuron receives C_E
    excitatory and C_I inhibitory connections from randomly chosen neurons).

    self_offset: when sources and targets are one population, source a being target
    a + self_offset, source j - self_offset of target j is excluded (no autapses), so then
    k <= n_pre - 1.
    """
    if k < 0 or k > n_pre - (self_offset is not None):
        raise ValueError(f"in-degree {k} impossible with {n_pre} sources")
    i_all, j_all = [], []
    for start in range(0, n_post, chunk):
        rows = min(chunk, n_post - start)
        # the k smallest of iid uniforms per row: a uniform random k-subset of the sources
        keys = rng.random((rows, n_pre))
        if self_offset is not None:
            post = np.arange(start, start + rows)
            src = post - self_offset
            ok = (src >= 0) & (src < n_pre)
            keys[np.flatnonzero(ok), src[ok]] = np.inf
        if k == 0:
            continue
        pick = np.argpartition(keys, k - 1, axis=1)[:, :k]
        i_all.append(np.sort(pick, axis=1).ravel())
        j_all.append(np.repeat(np.arange(start, start + rows), k))
    if not i_all:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    return np.concatenate(i_all).astype(np.int32), np.concatenate(j_all).astype(np.int32)


def static_synapses(source, target, pairs: tuple[np.ndarray, np.ndarray], variable: str,
                    jump: Quantity, delay: Quantity, name: str) -> b2.Synapses:
    """Fixed synapses: every spike adds `jump` to the target's `variable` (no per-synapse
    weight, as in Brian2's CUBA example)."""
    syn = b2.Synapses(source, target, on_pre=f"{variable}_post += jump", delay=delay,
                      namespace={"jump": jump}, name=name)
    syn.connect(i=pairs[0], j=pairs[1])
    return syn


@dataclass
class BalancedNetwork:
    """A built balanced E/I population: the Brian2 objects and the explicit `Network`."""

    params: NetworkParams
    exc: b2.Subgroup   # neurons[:n_e]
    inh: b2.Subgroup   # neurons[n_e:]
    synapses: dict[str, b2.Synapses]
    drive: list
    network: b2.Network
    spikes_e: b2.SpikeMonitor | None = None
    spikes_i: b2.SpikeMonitor | None = None
    currents: b2.StateMonitor | None = None


def configure(target: str = "cython", cache_dir: str | None = None, dt: Quantity = 0.1 * ms
              ) -> None:
    """Select Brian2's runtime code-generation target ('cython' or 'numpy'), the default clock
    dt, and (for cython) the directory its compiled extensions are cached in."""
    if target not in TARGETS:
        raise ValueError(f"unknown Brian2 target '{target}'; use one of {', '.join(TARGETS)}")
    b2.prefs.codegen.target = target
    b2.defaultclock.dt = dt
    if cache_dir is not None:
        b2.prefs.codegen.runtime.cython.cache_dir = str(cache_dir)


def build_balanced(p: NetworkParams | None = None, seed: int = 0, *, record_spikes: int = -1,
                   record_currents: int = 0, current_dt: Quantity = 0.5 * ms,
                   name: str = "net") -> BalancedNetwork:
    """Build the balanced network with seed `seed` (connectivity, initial v, Poisson drive).

    record_spikes: number of E (and, scaled by N_I/N_E, I) neurons whose spikes are monitored
    (-1: all, 0: none). record_currents: number of E neurons whose I_e and I_i are recorded
    every `current_dt` (for the balance index).
    """
    p = p if p is not None else NetworkParams()
    b2.seed(seed)
    rng = np.random.default_rng([seed, 17])
    # one group, E = the first n_e neurons, I = the rest (as in Brian2's CUBA example): two
    # synapse objects instead of four, one state update
    neurons = lif_group(p.n_e + p.n_i, p, f"{name}_neurons", rng=rng)
    exc, inh = neurons[:p.n_e], neurons[p.n_e:]
    n = p.n_e + p.n_i
    syn = {}
    for src_name, offset, n_src, jump, var in (("e", 0, p.n_e, p.jump_e, "I_e"),
                                               ("i", p.n_e, p.n_i, p.jump_i, "I_i")):
        if p.connectivity == "fixed_indegree":
            k = int(round(p.epsilon * n_src))
            pre, post = fixed_indegree_pairs(n_src, n, k, rng, self_offset=offset)
        else:
            pre, post = bernoulli_pairs(n_src, n, p.epsilon, rng)
        keep = pre + offset != post  # no autapses
        syn[src_name] = static_synapses(exc if src_name == "e" else inh, neurons,
                                        (pre[keep], post[keep]), var, jump, p.delay,
                                        f"{name}_{src_name}")
    drive = []
    if p.eta > 0 and p.n_external > 0:
        drive.append(b2.PoissonInput(neurons, "I_e", N=p.n_external, rate=p.nu_ext,
                                     weight=p.jump_e))
    objects: list = [neurons, *syn.values(), *drive]
    mon_e = mon_i = cur = None
    if record_spikes:
        n_rec = p.n_e if record_spikes < 0 else min(record_spikes, p.n_e)
        n_rec_i = p.n_i if record_spikes < 0 else max(1, min(p.n_i, n_rec * p.n_i // p.n_e))
        mon_e = b2.SpikeMonitor(exc[:n_rec], name=f"{name}_spikes_e")
        mon_i = b2.SpikeMonitor(inh[:n_rec_i], name=f"{name}_spikes_i")
        objects += [mon_e, mon_i]
    if record_currents:
        cur = b2.StateMonitor(neurons, ["I_e", "I_i"],
                              record=np.arange(min(record_currents, p.n_e)),
                              dt=current_dt, name=f"{name}_currents")
        objects.append(cur)
    net = b2.Network(*objects)
    return BalancedNetwork(p, exc, inh, syn, drive, net, mon_e, mon_i, cur)
