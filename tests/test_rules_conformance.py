"""Every registered rule through the same checks (like optax's shared optimizer tests): a rule
is covered the day it is registered."""

from __future__ import annotations

import pytest
import torch

from lrsim.config import parse
from lrsim.errors import ConfigError
from lrsim.models.rate import RateNetwork
from lrsim.rules import FAMILIES, LOCALITIES, rules
from lrsim.rules.base import SIGNAL_NAMES, SUBSTRATES, alignment_angles
from tests.conftest import make_signals

ALL = rules.names()
RATE = [n for n in ALL if "rate" in rules.entry(n).info["substrates"]]


def _setup(name: str, seed: int = 0):
    net = RateNetwork([6, 5, 4, 3], "tanh", seeds=[11, 12], dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 8, 6, generator=gen, dtype=torch.float64)
    t = torch.nn.functional.one_hot(torch.randint(0, 3, (2, 8), generator=gen), 3).double()
    rule = rules.create(name)
    return net, rule, rule.init(net.weights, net.generators), make_signals(net, x, t, "mse")


@pytest.mark.parametrize("name", ALL)
def test_declarations(name: str):
    entry = rules.entry(name)
    assert entry.info["family"] in FAMILIES
    assert entry.info["locality"] in LOCALITIES
    assert set(entry.info["substrates"]) <= set(SUBSTRATES) and entry.info["substrates"]
    assert set(entry.info["signals"]) <= SIGNAL_NAMES, "declares a signal that does not exist"
    assert entry.doc, "a rule's docstring states its equation"
    if entry.info["locality"] in ("local", "broadcast"):
        assert "downstream_weights" not in entry.info["signals"], \
            "a local rule cannot read the downstream weights (weight transport)"


@pytest.mark.parametrize("name", ALL)
def test_hyperparameters_validated(name: str):
    entry = rules.entry(name)
    assert rules.resolve(name) == {k: p.default for k, p in entry.params.items()}
    with pytest.raises(ConfigError, match="no hyperparameter"):
        rules.resolve(name, {"no_such_parameter": 1})
    for key, p in entry.params.items():
        if p.low is not None:
            with pytest.raises(ConfigError, match=key):
                rules.resolve(name, {key: p.low - 1})


@pytest.mark.parametrize("name", RATE)
def test_shapes_finite_and_deterministic(name: str):
    net, rule, state, sig = _setup(name)
    updates = rule.update(state, sig)  # reads through the declared-signals view
    assert len(updates) == net.n_layers
    for (gw, gb), w, b in zip(updates, net.weights, net.biases):
        assert gw.shape == w.shape and gb.shape == b.shape
        assert torch.isfinite(gw).all() and torch.isfinite(gb).all()
    net2, rule2, state2, sig2 = _setup(name)
    for (a, _), (c, _) in zip(updates, rule2.update(state2, sig2)):
        torch.testing.assert_close(a, c, rtol=0, atol=0)


@pytest.mark.parametrize("name", RATE)
def test_feedback_step_reads_only_declared_signals(name: str):
    net, rule, state, sig = _setup(name)
    view = sig.restrict(rule.signals)
    m = rule.credit(state, view)
    updates = rule.plasticity(state, view, m)
    lr = torch.full((2, 1, 1), 0.01, dtype=torch.float64)
    new_state = rule.feedback(state, view, m, [g for g, _ in updates], lr)
    angles = alignment_angles(rule, new_state, net.weights)
    assert angles.shape == (2, net.n_layers)
    assert not torch.isinf(angles).any()


@pytest.mark.parametrize("name", RATE)
def test_undeclared_signals_do_not_change_the_update(name: str):
    """Scramble every signal the rule did not declare: its update must not move."""
    net, rule, state, sig = _setup(name)
    ref = rule.update(state, sig)
    scrambled = make_signals(net, sig.pre[0] * 0 + 1.0, sig.target.flip(0))
    for field in SIGNAL_NAMES - set(rule.signals) - {"noise"}:
        setattr(sig, field, getattr(scrambled, field))
    for (a, _), (c, _) in zip(ref, rule.update(state, sig)):
        torch.testing.assert_close(a, c)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("substrate", SUBSTRATES)
def test_unsupported_substrates_refused(name: str, substrate: str):
    supported = substrate in rules.entry(name).info["substrates"]
    data = {"substrate": substrate, "rule": {"name": name}}
    if supported:
        assert parse(data).rule.name == name
        return
    with pytest.raises(ConfigError, match=f"cannot run on substrate '{substrate}'"):
        parse(data)
