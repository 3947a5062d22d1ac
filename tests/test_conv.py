"""Batched convolution (models/conv.py, models/convnet.py) against torch autograd, replica by
replica: the K nets of a grouped convolution are the K independent nets of torch.nn."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lrsim.models.conv import Conv2d, Pool2d, channel_activity
from lrsim.models.convnet import ConvNetwork
from lrsim.models.rate import loss_and_error

TOL = 1e-10  # float64


@pytest.mark.parametrize("stride,padding,kernel", [(1, 1, 3), (2, 1, 3), (1, 0, 3), (2, 0, 5)])
def test_conv_primitives_equal_autograd_per_replica(stride, padding, kernel):
    gen = torch.Generator().manual_seed(0)
    k, n = 3, 4
    layer = Conv2d(2, 5, (9, 9), kernel, stride, padding)
    x = torch.randn(k, n, 2, 9, 9, generator=gen, dtype=torch.float64)
    w = torch.randn(layer.weight_shape(k), generator=gen, dtype=torch.float64)
    b = torch.randn(k, 5, generator=gen, dtype=torch.float64)
    fb = torch.randn(layer.weight_shape(k), generator=gen, dtype=torch.float64)  # like FA's B
    z = layer.forward(x, w, b)
    assert z.shape == (k, n, 5, *layer.out_hw)
    m = torch.randn(z.shape, generator=gen, dtype=torch.float64)
    gw, gb = layer.weight_gradient(m, x)
    back, back_fb = layer.send_back(m, w), layer.send_back(m, fb)
    for r in range(k):
        xr = x[r].clone().requires_grad_()
        wr, br = w[r].clone().requires_grad_(), b[r].clone().requires_grad_()
        zr = F.conv2d(xr, wr, br, stride, padding)
        torch.testing.assert_close(z[r], zr, rtol=0, atol=TOL)
        ((zr * m[r]).sum() / n).backward()  # loss with dL/dz = m / N
        torch.testing.assert_close(gw[r], wr.grad, rtol=0, atol=TOL)
        torch.testing.assert_close(gb[r], br.grad, rtol=0, atol=TOL)
        torch.testing.assert_close(back[r] / n, xr.grad, rtol=0, atol=TOL)
        # a feedback kernel in place of W: the input gradient of a conv whose weights are B
        xb = x[r].clone().requires_grad_()
        (F.conv2d(xb, fb[r], None, stride, padding) * m[r]).sum().backward()
        torch.testing.assert_close(back_fb[r], xb.grad, rtol=0, atol=TOL)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_and_its_send_back_equal_autograd(kind):
    gen = torch.Generator().manual_seed(1)
    pool = Pool2d(2, kind)
    a = torch.randn(3, 4, 2, 7, 7, generator=gen, dtype=torch.float64)  # odd: floor mode
    p, idx = pool.forward(a)
    g = torch.randn(p.shape, generator=gen, dtype=torch.float64)
    ref_pool = F.max_pool2d if kind == "max" else F.avg_pool2d
    ar = a.clone().requires_grad_()
    pr = ref_pool(ar.reshape(12, 2, 7, 7), 2).reshape(3, 4, 2, 3, 3)
    (pr * g).sum().backward()
    torch.testing.assert_close(p, pr.detach(), rtol=0, atol=TOL)
    torch.testing.assert_close(pool.send_back(g, a, idx), ar.grad, rtol=0, atol=TOL)
    torch.testing.assert_close(pool.send_back(g, a), ar.grad, rtol=0, atol=TOL)


def torch_net(net: ConvNetwork, r: int, kernel, stride, padding, pool, pool_kind
              ) -> tuple[list[torch.Tensor], callable]:
    """Replica r of `net` rebuilt as plain autograd tensors and F.conv2d / F.linear calls."""
    params = [t[r].clone().requires_grad_() for pair in zip(net.weights, net.biases)
              for t in pair]
    f = {"relu": torch.relu, "tanh": torch.tanh}[net.activation]
    ref_pool = F.max_pool2d if pool_kind == "max" else F.avg_pool2d

    def forward(x):
        h = x.reshape(len(x), *net.input_shape)
        for l in range(net.n_conv):
            h = f(F.conv2d(h, params[2 * l], params[2 * l + 1], stride, padding))
            if pool > 1:
                h = ref_pool(h, pool)
        h = h.flatten(1)
        for l in range(net.n_conv, net.n_layers):
            h = F.linear(h, params[2 * l], params[2 * l + 1])
            if l < net.n_layers - 1:
                h = f(h)
        return h

    return params, forward


def backprop(net: ConvNetwork, x: torch.Tensor, t: torch.Tensor):
    """The credit m_l of backpropagation through the network's send-back, and gW, gb."""
    fw = net.forward(x)
    loss, e = loss_and_error(fw.z[-1], t, "cross_entropy")
    m = [e]
    for l in range(net.n_layers - 1, 0, -1):
        m.insert(0, net.send_back(l, m[0], net.weights[l], fw) * fw.derivative[l - 1])
    return loss, [net.weight_gradient(l, m_l, fw) for l, m_l in enumerate(m)]


@pytest.mark.parametrize("pool_kind,activation,stride,pool", [
    ("max", "relu", 1, 2), ("avg", "tanh", 1, 2), ("max", "tanh", 2, 1)])
def test_backprop_through_conv_layers_equals_autograd(pool_kind, activation, stride, pool):
    k, n = 3, 6
    net = ConvNetwork((1, 8, 8), [4, 6], [7], 10, kernel=3, stride=stride, padding=1, pool=pool,
                      pool_kind=pool_kind, activation=activation, seeds=[5, 6, 7],
                      dtype=torch.float64)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(k, n, 64, generator=gen, dtype=torch.float64)
    t = F.one_hot(torch.randint(0, 10, (k, n), generator=gen), 10).double()
    loss, grads = backprop(net, x, t)
    for r in range(k):
        params, forward = torch_net(net, r, 3, stride, 1, pool, pool_kind)
        out = forward(x[r])
        ref = F.cross_entropy(out, t[r].argmax(-1))
        ref.backward()
        torch.testing.assert_close(loss[r], ref.detach(), rtol=0, atol=TOL)
        for l, (gw, gb) in enumerate(grads):
            torch.testing.assert_close(gw[r], params[2 * l].grad, rtol=0, atol=TOL)
            torch.testing.assert_close(gb[r], params[2 * l + 1].grad, rtol=0, atol=TOL)


def test_replica_in_a_batch_equals_replica_alone():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4, 5, 64, generator=gen, dtype=torch.float64)
    t = F.one_hot(torch.randint(0, 10, (4, 5), generator=gen), 10).double()
    kw = dict(conv=[3, 5], hidden=[6], n_out=10, pool=2, dtype=torch.float64)
    batch = ConvNetwork((1, 8, 8), seeds=[10, 11, 12, 13], **kw)
    _, grads = backprop(batch, x, t)
    for r, seed in enumerate([10, 11, 12, 13]):
        alone = ConvNetwork((1, 8, 8), seeds=[seed], **kw)
        for wb, wa in zip(batch.weights, alone.weights):
            assert torch.equal(wb[r], wa[0])
        _, g1 = backprop(alone, x[r:r + 1], t[r:r + 1])
        for (gw, gb), (aw, ab) in zip(grads, g1):
            torch.testing.assert_close(gw[r], aw[0], rtol=0, atol=1e-14)
            torch.testing.assert_close(gb[r], ab[0], rtol=0, atol=1e-14)


def test_float32_matches_float64():
    kw = dict(conv=[4], hidden=[], n_out=10, pool=2, seeds=[1, 2])
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 8, 64, generator=gen, dtype=torch.float64)
    t = F.one_hot(torch.randint(0, 10, (2, 8), generator=gen), 10).double()
    _, g64 = backprop(ConvNetwork((1, 8, 8), dtype=torch.float64, **kw), x, t)
    _, g32 = backprop(ConvNetwork((1, 8, 8), dtype=torch.float32, **kw), x.float(), t.float())
    for (a, _), (b, _) in zip(g64, g32):
        torch.testing.assert_close(b.double(), a, rtol=1e-4, atol=1e-5)


def test_shapes_and_per_layer_options():
    net = ConvNetwork((3, 32, 32), [8, 16], [32], 10, kernel=[5, 3], stride=[1, 2],
                      padding=[2, 1], pool=[2, 1])
    assert [tuple(w.shape) for w in net.weights] == [(1, 8, 3, 5, 5), (1, 16, 8, 3, 3),
                                                      (1, 32, 16 * 8 * 8), (1, 10, 32)]
    fw = net.forward(torch.randn(1, 2, 3072))
    assert fw.post[0].shape == (1, 2, 8, 32, 32) and fw.pre[1].shape == (1, 2, 8, 16, 16)
    assert channel_activity(fw.post[1]).shape == (1, 2, 16)
    with pytest.raises(ValueError, match="does not fit"):
        ConvNetwork((1, 8, 8), [4], [], 10, kernel=9, padding=0)
    with pytest.raises(ValueError, match="leaves no positions"):
        ConvNetwork((1, 8, 8), [4, 4, 4, 4], [], 10, pool=2)
    with pytest.raises(ValueError, match="lists 3 values for 2 conv layers"):
        ConvNetwork((1, 8, 8), [4, 4], [], 10, kernel=[3, 3, 3])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_conv_step_matches_cpu_in_float64():
    kw = dict(conv=[4, 6], hidden=[8], n_out=10, pool=2, seeds=[1, 2, 3], dtype=torch.float64)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(3, 7, 64, generator=gen, dtype=torch.float64)
    t = F.one_hot(torch.randint(0, 10, (3, 7), generator=gen), 10).double()
    _, cpu = backprop(ConvNetwork((1, 8, 8), **kw), x, t)
    _, gpu = backprop(ConvNetwork((1, 8, 8), device="cuda", **kw), x.cuda(), t.cuda())
    for (a, b), (c, d) in zip(cpu, gpu):
        torch.testing.assert_close(c.cpu(), a, rtol=0, atol=1e-10)
        torch.testing.assert_close(d.cpu(), b, rtol=0, atol=1e-10)
