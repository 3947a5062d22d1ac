"""The CUDA-graph step: the in-place state plumbing (on CPU, where it runs without a graph) and,
where a CUDA device exists, graphed training against eager training."""

from __future__ import annotations

import pytest
import torch

from lrsim.models.rate.cuda_graph import GraphUnsafe, in_place


class _Holder:
    def __init__(self):
        self.state = {"v": [torch.zeros(3)], "B": [None, torch.ones(2)]}
        self.x = torch.arange(3.0)


def test_in_place_copies_replaced_state_back_into_the_original_tensors():
    h = _Holder()
    v0, b0 = h.state["v"][0], h.state["B"][1]

    def step():  # a functional update, as rules write them: new tensors, new dict
        h.state = {"v": [0.5 * h.state["v"][0] + h.x], "B": [None, h.state["B"][1] * 2]}

    run = in_place(step, lambda: h.state, lambda s: setattr(h, "state", s))
    for _ in range(3):
        run()
    assert h.state["v"][0] is v0 and h.state["B"][1] is b0  # same memory every step
    # v_t = 0.5 v_{t-1} + x: after 3 steps v = (1 + 0.5 + 0.25) x; B doubled 3 times
    torch.testing.assert_close(v0, 1.75 * torch.arange(3.0))
    torch.testing.assert_close(b0, torch.full((2,), 8.0))


def test_in_place_marks_a_changing_python_value_unstable():
    state = {"t": 0, "m": torch.zeros(2)}

    def step():
        state["t"] += 1  # a graph would replay the first value forever

    run = in_place(step, lambda: dict(state), lambda s: None)
    run()
    assert not run.stable and state["t"] == 1  # kept, as an eager step would
    run.strict = True  # while capturing
    with pytest.raises(GraphUnsafe, match="non-tensor"):
        run()


def test_in_place_state_created_at_the_first_step_then_stable():
    """Feedback created at the first step (None -> tensor): that call keeps the new state and
    is not stable; the next one is."""
    h = _Holder()
    h.state["B"][0] = None

    def step():
        b = h.state["B"][1]
        h.state = {"v": h.state["v"], "B": [torch.zeros(2), b + 1]}

    run = in_place(step, lambda: h.state, lambda s: setattr(h, "state", s))
    run()
    assert not run.stable
    b0 = h.state["B"][1]
    run()
    assert run.stable and h.state["B"][1] is b0
    torch.testing.assert_close(b0, torch.full((2,), 3.0))


def test_in_place_refuses_a_changing_structure_while_capturing():
    h = _Holder()

    def step():
        h.state = {"v": [torch.zeros(3), torch.zeros(3)], "B": [None, torch.ones(2)]}

    run = in_place(step, lambda: h.state, lambda s: setattr(h, "state", s))
    run.strict = True
    with pytest.raises(GraphUnsafe, match="structure"):
        run()


def _exp(rule: str, optimizer: str, device: str = "cpu", dtype: str = "float64"):
    from lrsim.config import parse

    return parse({"name": "graph", "device": device, "dtype": dtype, "seed": 2,
                  "task": {"name": "digits"}, "rule": {"name": rule},
                  "model": {"hidden": [16, 8]},
                  "train": {"optimizer": optimizer, "lr": 0.05, "weight_decay": 0.001,
                            "batch_size": 16, "steps": 40, "replicas": 3}})


def _diverging(exp):
    """Replicas with lrs 0.05, 0.05 and 1e30 (the last diverges)."""
    from lrsim.config import replicas

    reps = replicas(exp)
    return reps[:2] + [reps[2].__class__(reps[2].seed, 1e30, reps[2].weight_decay,
                                         reps[2].init_scale, reps[2].run_id)]


@pytest.mark.parametrize("rule,optimizer", [("backprop", "sgd"), ("sign_symmetry", "momentum"),
                                            ("kolen_pollack", "adam"), ("bcm", "sgd")])
def test_replayable_step_equals_the_eager_step_on_cpu(rule, optimizer):
    """The step in its replayable form (fixed input buffers, state copied back in place, step
    count on the device) trains exactly as the ordinary step, divergence included."""
    from lrsim.models.rate.train import train

    exp = _exp(rule, optimizer)
    reps = _diverging(exp)
    eager = train(exp, reps, cuda_graph=False)
    static = train(exp, reps, cuda_graph="static")
    assert static.diverged_step == eager.diverged_step
    assert eager.diverged_step[2] is not None  # (bcm at lr 0.05 diverges too, at step 12)
    a, b = eager.context, static.context
    same = dict(rtol=0, atol=0, equal_nan=True)  # bitwise (the diverged replica: NaN alike)
    for x, y in zip(a.net.weights + a.net.biases, b.net.weights + b.net.biases):
        torch.testing.assert_close(x, y, **same)
    for x, y in zip(a.rule.feedback_matrices(a.rule_state), b.rule.feedback_matrices(
            b.rule_state)):
        assert (x is None and y is None) or torch.testing.assert_close(x, y, **same) is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("rule,optimizer", [("backprop", "sgd"), ("feedback_alignment", "momentum"),
                                            ("kolen_pollack", "adam"), ("sign_symmetry", "sgd")])
def test_cuda_graph_training_equals_eager_cuda_training(rule, optimizer):
    """On a GPU: the replayed graph trains as the eager step does (float32, 40 steps, a
    diverging replica), and the graph was in fact replayed."""
    from lrsim.models.rate.train import train

    exp = _exp(rule, optimizer, device="cuda", dtype="float32")
    reps = _diverging(exp)
    eager = train(exp, reps, cuda_graph=False)
    graphed = train(exp, reps)
    assert graphed.extra["cuda_graph"] == "replayed"
    assert graphed.diverged_step == eager.diverged_step
    a, b = eager.context.net, graphed.context.net
    for x, y in zip(a.weights + a.biases, b.weights + b.biases):
        torch.testing.assert_close(x[:2], y[:2], rtol=1e-5, atol=1e-6)
