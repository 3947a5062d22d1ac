"""Replica chunking (`lrsim.models.rate.chunks`): the trainer's step run on chunks of replicas
gives every replica the trajectory of the whole-batch step, for every rate rule, with observers
on and with diverging replicas; `chunk_size` chooses chunks only where they help."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lrsim.config import parse, replicas
from lrsim.errors import LrsimError
from lrsim.models.rate import RateNetwork
from lrsim.models.rate.chunks import ChunkedStep, bounds, chunk_size, join
from lrsim.models.rate.observer import RateObserver
from lrsim.models.rate.train import build, train
from lrsim.rules import rules
from lrsim.rules.base import ReplicaNoise, normal

RATE = [n for n in rules.names() if "rate" in rules.entry(n).info["substrates"]]
CASES = [(n, {}) for n in RATE] + [("four_synapse", {"variant": "wired"})]
GEOMETRY = ["dimensionality", "rsa_initial", "rsa_previous", "rsa_layer", "rsa_target", "coupling",
            "synaptic_similarity"]
K = 5  # chunks of 2: 2 + 2 + 1 (an uneven last chunk)
TOL = dict(rtol=1e-12, atol=1e-12)


def _exp(rule: dict, optimizer: str = "momentum", **train_over):
    return parse({"name": "chunks", "seed": 7, "device": "cpu", "dtype": "float64",
                  "task": {"name": "gaussian_mixture", "dim": 10, "classes": 3,
                           "samples": 300},
                  "model": {"hidden": [12, 8], "activation": "tanh"},
                  "rule": rule,
                  "train": {"optimizer": optimizer, "lr": 0.02, "batch_size": 16,
                            "steps": 30, "replicas": K, **train_over},
                  "observe": {"points": 4, "probe_size": 40, "units": [0, 4],
                              "noise": [0.0, 1.0],
                              "observables": ["weights", "activations", "activity_change",
                                              *GEOMETRY]}})


def _reps(exp, lrs=(0.02, 0.05, 0.01, 0.03, 0.04)):
    """Per-replica lr and weight decay differ, so a wrong slice shows."""
    return [dataclasses.replace(r, lr=lr, weight_decay=0.01 * k)
            for k, (r, lr) in enumerate(zip(replicas(exp), lrs))]


def _run(exp, reps, chunk):
    obs = RateObserver(exp.observe)
    result = train(exp, reps, observers=[obs], chunk=chunk)
    return result, obs.datasets(result)


def _close_trees(a, b):
    la, sa = torch.utils._pytree.tree_flatten(a)
    lb, sb = torch.utils._pytree.tree_flatten(b)
    assert sa == sb
    for x, y in zip(la, lb):
        if isinstance(x, torch.Tensor):
            assert x.shape == y.shape
            torch.testing.assert_close(x, y, equal_nan=True, **TOL)
        else:
            assert x == y


def _same_runs(chunked, whole):
    (rc, dc), (rw, dw) = chunked, whole
    assert rc.extra["chunk"] == 2 and rw.extra["chunk"] is None
    assert isinstance(rc.context.learner, ChunkedStep)
    assert rc.status == rw.status and rc.diverged_step == rw.diverged_step
    for name in ("weights", "biases"):
        for a, b in zip(getattr(rc.context.net, name), getattr(rw.context.net, name)):
            torch.testing.assert_close(a, b, equal_nan=True, **TOL)
    _close_trees(rc.context.rule_state, rw.context.rule_state)
    _close_trees(rc.context.learner.opt_state, rw.context.learner.opt_state)
    for arr in ("final_loss", "test_loss", "test_accuracy", "alignment_deg"):
        if getattr(rw, arr) is None:  # regression: no accuracy
            assert getattr(rc, arr) is None
            continue
        np.testing.assert_allclose(getattr(rc, arr), getattr(rw, arr), equal_nan=True, **TOL)
    for a, b in zip(dc, dw):
        assert set(a.data_vars) == set(b.data_vars)
        for v in a.data_vars:
            np.testing.assert_allclose(a[v].values, b[v].values, equal_nan=True, **TOL,
                                       err_msg=v)


@pytest.mark.parametrize("name,params", CASES,
                         ids=["-".join([n, *p.values()]) for n, p in CASES])
def test_chunked_training_equals_whole_batch(name: str, params: dict):
    exp = _exp({"name": name, **params})
    reps = _reps(exp)
    _same_runs(_run(exp, reps, 2), _run(exp, reps, None))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("name", ["backprop", "kolen_pollack"])
def test_chunked_equals_whole_other_optimizers(name: str, optimizer: str):
    """sgd's fused update writes into views of W; adam keeps a step count per parameter (a
    copy per chunk) and its fused kernel rounds a chunk's tail differently (~1e-16: equal to
    tolerance, not bitwise); Kolen-Pollack keeps the weight steps."""
    exp = _exp({"name": name}, optimizer)
    reps = _reps(exp)
    _same_runs(_run(exp, reps, 2), _run(exp, reps, None))


def test_divergence_per_chunk_matches_whole_batch():
    """Replicas 1 and 4 (first and last chunk) diverge; the others go on, the same steps."""
    exp = parse({"seed": 3, "device": "cpu", "dtype": "float64",
                 "task": {"name": "teacher_student", "samples": 300},
                 "model": {"hidden": [12, 8], "activation": "relu"},
                 "rule": {"name": "backprop"},
                 "train": {"optimizer": "sgd", "lr": 0.01, "batch_size": 16, "steps": 120,
                           "replicas": K},
                 "observe": {"points": 4, "units": [0, 4]}})
    reps = _reps(exp, (0.01, 20.0, 0.01, 0.02, 30.0))
    chunked, whole = _run(exp, reps, 2), _run(exp, reps, None)
    assert whole[0].status == ["ok", "diverged", "ok", "ok", "diverged"]
    _same_runs(chunked, whole)


def test_rule_state_joined_only_at_record_steps(monkeypatch):
    joins = []
    prop = ChunkedStep.rule_state

    def counted(self):
        joins.append(1)
        return prop.fget(self)

    monkeypatch.setattr(ChunkedStep, "rule_state", property(counted))
    exp = _exp({"name": "kolen_pollack"}, steps=40)
    result, _ = _run(exp, _reps(exp), 2)
    # once for the context, once per record step (4 points), once at the end
    assert len(joins) == 1 + 4 + 1
    assert result.context.rule_state["B"][1].shape[0] == K


def test_static_graph_path_runs_the_whole_batch():
    exp = _exp({"name": "backprop"})
    result = train(exp, _reps(exp), cuda_graph="static", chunk=2)
    assert result.extra["chunk"] is None


def test_chunk_argument():
    exp = _exp({"name": "backprop"})
    cpu = torch.device("cpu")
    _, _, learner = build(exp, replicas(exp), cpu, torch.float64, chunk=2)
    assert isinstance(learner, ChunkedStep)
    assert learner.spans == [(0, 2), (2, 4), (4, 5)]
    for chunk in ("auto", None, K, 100):  # auto: too few replicas; >= K: one chunk
        _, _, learner = build(exp, replicas(exp), cpu, torch.float64, chunk=chunk)
        assert not isinstance(learner, ChunkedStep)
    for bad in (0, -1, "some", 1.5, True):
        with pytest.raises(LrsimError, match="chunk"):
            build(exp, replicas(exp), cpu, torch.float64, chunk=bad)
    # auto where it pays: 256 replicas of width 128, batch 32 (`test_chunk_size`)
    wide = parse({"device": "cpu", "task": {"name": "gaussian_mixture", "dim": 64},
                  "model": {"hidden": [128, 128]}, "train": {"replicas": 256,
                                                             "batch_size": 32}})
    _, net, learner = build(wide, replicas(wide), cpu, torch.float32)
    assert isinstance(learner, ChunkedStep)
    assert learner.size == chunk_size(net.weights, True, cpu, batch=32) == 41  # 3 classes


def _weights(k: int, width: int, device: str = "cpu", dtype=torch.float32):
    sizes = [64, width, width, 10]
    return [torch.empty(k, b, a, device=device, dtype=dtype) for a, b in zip(sizes, sizes[1:])]


def test_chunk_size():
    per = (64 * 128 + 128 * 128 + 128 * 10) * 4  # one replica's weights at width 128, bytes
    size = 4 * 2**20 // per
    assert size == 40
    big = dict(batch=256)  # activity far above the threshold: the weights decide
    assert chunk_size(_weights(2 * size, 128), True, "cpu", **big) == size
    assert chunk_size(_weights(256, 128), True, torch.device("cpu"), **big) == size
    assert chunk_size(_weights(2 * size - 1, 128), True, "cpu", **big) is None  # < 2 chunks
    assert chunk_size(_weights(256, 128), False, "cpu", **big) is None  # conv layers
    assert chunk_size(_weights(256, 128, "meta"), True, "meta", **big) is None
    assert chunk_size(_weights(256, 128), True, "cuda", **big) is None
    # float64 doubles a replica's bytes; a smaller budget smaller chunks, never below 8
    assert chunk_size(_weights(256, 128, dtype=torch.float64), True, "cpu", **big) == size // 2
    assert chunk_size(_weights(256, 128), True, "cpu", budget=per * 12, **big) == 12
    assert chunk_size(_weights(256, 128), True, "cpu", budget=per, **big) == 8
    assert chunk_size(_weights(64, 512), True, "cpu", **big) == 8  # 1.2 MB a replica
    assert chunk_size(_weights(15, 512), True, "cpu", **big) is None
    # the whole batch's activity K x batch x units x 4 B must reach 7.5 MiB (units 266 here)
    assert chunk_size(_weights(256, 128), True, "cpu", batch=32) == size  # 8.7 MB
    assert chunk_size(_weights(192, 128), True, "cpu", batch=32) is None  # 6.5 MB
    assert chunk_size(_weights(256, 128), True, "cpu", batch=16) is None
    assert chunk_size(_weights(64, 512), True, "cpu", batch=32) == 8  # 8.5 MB
    assert chunk_size(_weights(16, 512), True, "cpu", batch=32) is None
    assert chunk_size(_weights(1024, 32), True, "cpu", batch=32) == 4 * 2**20 // (
        (64 * 32 + 32 * 32 + 32 * 10) * 4)
    assert bounds(5, 2) == [(0, 2), (2, 4), (4, 5)]


def test_join_views_and_copies():
    whole = {"m": [torch.arange(10.0).view(5, 2)], "t": torch.tensor(3.0), "x": None}
    spans = bounds(5, 2)
    parts = [{"m": [whole["m"][0][a:b]], "t": torch.tensor(3.0), "x": None} for a, b in spans]
    joined = join(parts, spans, whole)
    assert joined["m"][0] is whole["m"][0]  # views in place: the whole tensor, no copy
    assert joined["t"] is parts[0]["t"] and joined["x"] is None
    parts[1]["m"][0] = parts[1]["m"][0] + 100  # a chunk replaced its leaf
    joined = join(parts, spans, whole)
    assert joined["m"][0] is not whole["m"][0]
    assert joined["m"][0][2:4].equal(whole["m"][0][2:4] + 100)
    # no matching whole (a state that changed structure): sizes tell per-replica leaves
    parts = [{"theta": [torch.ones(b - a, 3)], "t": torch.tensor(1.0)} for a, b in spans]
    joined = join(parts, spans, {"theta": None, "t": torch.tensor(0.0)})
    assert joined["theta"][0].shape == (5, 3) and joined["t"] == 1.0


def test_replica_views():
    net = RateNetwork([4, 3, 2], seeds=[1, 2, 3, 4], dtype=torch.float64)
    part = net.replicas(1, 3)
    assert part.K == 2 and part.generators == net.generators[1:3]
    before = net.weights[0].clone()
    part.weights[0].add_(1.0)
    part.biases[1].add_(1.0)
    assert net.weights[0][1:3].equal(before[1:3] + 1.0)  # views: written through
    assert net.weights[0][[0, 3]].equal(before[[0, 3]])
    assert net.biases[1].sum() == 2 * 2
    with pytest.raises(ValueError):
        net.replicas(3, 3)
    noise, again = ReplicaNoise([5, 6, 7]), ReplicaNoise([5, 6, 7])
    like = torch.zeros(1, dtype=torch.float64)
    draws = torch.cat([normal(noise.replicas(0, 1), 1, (4,), like),
                       normal(noise.replicas(1, 3), 2, (4,), like)])
    assert draws.equal(normal(again, 3, (4,), like))


@pytest.mark.parametrize("rule", ["backprop", "kolen_pollack", "four_synapse"])
def test_chunked_conv_layers_equal_whole_batch(rule: str):
    """"auto" never chunks conv layers, an explicit chunk does (max pooling keeps its arg-max
    per forward: a chunk's own)."""
    from tests.test_conv_rules import conv_exp

    exp = conv_exp(rule, steps=10, replicas=K)
    chunked, whole = train(exp, chunk=2), train(exp, chunk=None)
    assert chunked.extra["chunk"] == 2 and train(exp, chunk="auto").extra["chunk"] is None
    for a, b in zip(chunked.context.net.weights, whole.context.net.weights):
        torch.testing.assert_close(a, b, **TOL)
    _close_trees(chunked.context.rule_state, whole.context.rule_state)
