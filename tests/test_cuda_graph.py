"""The CUDA-graph step: the in-place state plumbing (on CPU, where it runs without a graph) and,
where a CUDA device exists, graphed training against eager training."""

from __future__ import annotations

import pytest
import torch

from lrsim.cuda_graph import GraphUnsafe, in_place


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


def test_in_place_refuses_a_changing_python_value():
    state = {"t": 0, "m": torch.zeros(2)}

    def step():
        state["t"] += 1  # a graph would replay the first value forever

    with pytest.raises(GraphUnsafe, match="non-tensor"):
        in_place(step, lambda: dict(state), lambda s: None)()


def test_in_place_refuses_a_changing_structure():
    h = _Holder()

    def step():
        h.state = {"v": [torch.zeros(3), torch.zeros(3)], "B": [None, torch.ones(2)]}

    with pytest.raises(GraphUnsafe, match="structure"):
        in_place(step, lambda: h.state, lambda s: setattr(h, "state", s))()
