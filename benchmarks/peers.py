"""What a user would write instead of lrsim, for the benchmarks: K small MLPs trained on
per-network minibatches (64 -> w -> w -> 10, relu, cross-entropy), the same sizes as the
trainer's digits networks.

- `NNLoop`: K ordinary `torch.nn` MLPs, each with its own autograd pass and `torch.optim`
  optimizer, stepped in a Python loop.
- `VmapPeer`: the K MLPs stacked with `torch.func.stack_module_state` and differentiated in one
  call of `vmap(grad(functional_call))`; one `torch.optim` optimizer over the stacked tensors
  (sgd, momentum and adam act elementwise, so stacking leaves them exact).
- `BioTorchFA`: BioTorch's feedback alignment (per network, as BioTorch trains one model at a
  time); None when BioTorch is not installed.

Every peer's `run(n)` draws n minibatches of `batch` rows per network from (x, labels) and
takes n optimizer steps.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

N_IN, N_OUT = 64, 10


def mlp(width: int, n_in: int = N_IN, n_out: int = N_OUT) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, n_out))


def torch_optimizer(name: str, params: list[Tensor], lr: float) -> torch.optim.Optimizer:
    """The `torch.optim` counterpart of lrsim's optimizer `name` (same update formulas)."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, foreach=True)
    if name == "momentum":  # v <- mu v + g, W -= lr v (dampening 0): lrsim's heavy ball
        return torch.optim.SGD(params, lr=lr, momentum=0.9, foreach=True)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, foreach=True)
    raise ValueError(f"unknown optimizer {name!r}")


class _Peer:
    def __init__(self, x: Tensor, labels: Tensor, k: int, batch: int, seed: int = 0,
                 device: str = "cpu"):
        self.x, self.labels, self.k, self.batch = x.to(device), labels.to(device), k, batch
        self.device = device
        self.gen = torch.Generator(device=device).manual_seed(seed)

    def _batch(self) -> tuple[Tensor, Tensor]:
        idx = torch.randint(0, len(self.x), (self.k, self.batch), generator=self.gen,
                            device=self.device)
        return self.x[idx], self.labels[idx]


class NNLoop(_Peer):
    """K `torch.nn` MLPs, one autograd pass and one `torch.optim` step each, in a loop."""

    def __init__(self, x: Tensor, labels: Tensor, width: int, k: int, batch: int,
                 optimizer: str, lr: float = 0.01):
        super().__init__(x, labels, k, batch)
        torch.manual_seed(0)
        self.models = [mlp(width) for _ in range(k)]
        self.opts = [torch_optimizer(optimizer, list(m.parameters()), lr) for m in self.models]

    def run(self, n: int) -> None:
        for _ in range(n):
            xb, yb = self._batch()
            for i, (m, o) in enumerate(zip(self.models, self.opts)):
                o.zero_grad(set_to_none=True)
                F.cross_entropy(m(xb[i]), yb[i]).backward()
                o.step()


class VmapPeer(_Peer):
    """K stacked MLPs, gradients by `torch.func.vmap(grad(functional_call))`."""

    def __init__(self, x: Tensor, labels: Tensor, width: int, k: int, batch: int,
                 optimizer: str, lr: float = 0.01, device: str = "cpu"):
        super().__init__(x, labels, k, batch, device=device)
        torch.manual_seed(0)
        models = [mlp(width) for _ in range(k)]
        self.params, self.buffers = torch.func.stack_module_state(models)
        self.params = {n: p.to(device) for n, p in self.params.items()}
        self.buffers = {n: b.to(device) for n, b in self.buffers.items()}
        base = copy.deepcopy(models[0]).to("meta")

        def loss(params: dict, buffers: dict, xb: Tensor, yb: Tensor) -> Tensor:
            return F.cross_entropy(torch.func.functional_call(base, (params, buffers), (xb,)),
                                   yb)

        self.grad = torch.func.vmap(torch.func.grad(loss))
        self.leaves = [p.detach().requires_grad_(True) for p in self.params.values()]
        self.params = dict(zip(self.params, self.leaves))
        self.opt = torch_optimizer(optimizer, self.leaves, lr)

    def run(self, n: int) -> None:
        for _ in range(n):
            xb, yb = self._batch()
            grads = self.grad(self.params, self.buffers, xb, yb)
            for p, g in zip(self.leaves, grads.values()):
                p.grad = g
            self.opt.step()


def biotorch_fa(x: Tensor, labels: Tensor, width: int, k: int, batch: int,
                optimizer: str, lr: float = 0.01) -> Callable[[int], None] | None:
    """BioTorch's feedback alignment on K per-network models, or None without BioTorch."""
    try:
        from biotorch.module.biomodule import BioModule  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return None
    torch.manual_seed(0)
    models = [BioModule(mlp(width), mode="fa") for _ in range(k)]
    opts = [torch_optimizer(optimizer, list(m.parameters()), lr) for m in models]
    peer = _Peer(x, labels, k, batch)

    def run(n: int) -> None:
        for _ in range(n):
            xb, yb = peer._batch()
            for i, (m, o) in enumerate(zip(models, opts)):
                o.zero_grad(set_to_none=True)
                F.cross_entropy(m(xb[i]), yb[i]).backward()
                o.step()
    return run
