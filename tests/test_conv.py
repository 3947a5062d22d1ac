"""The convolutional layer kind (models/rate/conv.py) and conv networks against torch autograd,
replica by replica: the K nets of a grouped convolution are K independent nets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lrsim.models.rate import RateNetwork, loss_and_error
from lrsim.models.rate.conv import Conv2d, conv_network

N_CONV = 2  # conv layers of the networks below
SHAPE = (1, 8, 8)

TOL = 1e-10  # float64


def rand(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("stride,padding,kernel,pool,pool_type", [
    (1, 1, 3, 1, "max"), (2, 1, 3, 1, "max"), (1, 0, 3, 2, "max"), (2, 0, 5, 1, "max"),
    (1, 1, 3, 2, "avg"), (1, 1, 3, 3, "max")])
def test_conv_layer_equals_autograd_per_replica(stride, padding, kernel, pool, pool_type):
    gen = torch.Generator().manual_seed(0)
    k, n = 3, 4
    layer = Conv2d(2, 5, (9, 9), kernel, stride, padding, pool, pool_type)
    x = rand(gen, k, n, 2, 9, 9)
    w, b = rand(gen, *layer.weight_shape(k)), rand(gen, k, 5)
    fb = rand(gen, *layer.weight_shape(k))  # a feedback kernel, as feedback alignment's B
    z = layer.forward(x, w, b)
    assert z.shape == (k, n, 5, *layer.out_hw)
    m = rand(gen, *z.shape)
    gw, gb = layer.weight_gradient(m, x)
    back, back_fb = layer.send_back(m, layer.as_feedback(w)), layer.send_back(m, fb)
    hebb = layer.feedback_gradient(x, m)
    ref_pool = {"max": F.max_pool2d, "avg": F.avg_pool2d}[pool_type]

    def ref(xr, wr, br):
        a = F.conv2d(xr, wr.view(5, 2, kernel, kernel), br, stride, padding)
        return ref_pool(a, pool) if pool > 1 else a

    for r in range(k):
        xr = x[r].clone().requires_grad_()
        wr, br = w[r].clone().requires_grad_(), b[r].clone().requires_grad_()
        zr = ref(xr, wr, br)
        torch.testing.assert_close(z[r], zr, rtol=0, atol=TOL)
        ((zr * m[r]).sum() / n).backward()  # a loss with dL/dz = m / N
        torch.testing.assert_close(gw[r], wr.grad, rtol=0, atol=TOL)
        torch.testing.assert_close(gb[r], br.grad, rtol=0, atol=TOL)
        # the feedback kernel's Hebbian term: the same correlation, per output position
        torch.testing.assert_close(hebb[r], wr.grad / layer.positions, rtol=0, atol=TOL)
        torch.testing.assert_close(back[r] / n, xr.grad, rtol=0, atol=TOL)
        # the feedback kernel in place of W: the input gradient of the conv whose kernel is B,
        # routed through the pooling of the forward pass (W's arg-max)
        xb = x[r].clone().requires_grad_()
        a_w = F.conv2d(x[r], w[r].view(5, 2, kernel, kernel), b[r], stride, padding)
        a_b = F.conv2d(xb, fb[r].view(5, 2, kernel, kernel), None, stride, padding)
        if pool > 1 and pool_type == "max":
            _, idx = F.max_pool2d(a_w, pool, return_indices=True)
            routed = a_b.flatten(2).gather(2, idx.flatten(2))
        else:
            routed = ref_pool(a_b, pool) if pool > 1 else a_b
        (routed.reshape(m[r].shape) * m[r]).sum().backward()
        torch.testing.assert_close(back_fb[r], xb.grad, rtol=0, atol=TOL)


def test_flat_inputs_and_outputs_and_the_rest_of_the_interface():
    gen = torch.Generator().manual_seed(1)
    k, n = 2, 3
    layer = Conv2d(1, 4, (8, 8), 3, 1, 1, 2, "max", flatten=True)
    w = rand(gen, *layer.weight_shape(k))
    x = rand(gen, k, n, 64)  # flat images, channel-major
    z = layer.forward(x, w)
    assert z.shape == (k, n, 4 * 4 * 4) and layer.out_shape == (64,)
    assert layer.units(w) == 4 and layer.input_shape(w) == (1, 8, 8)
    torch.testing.assert_close(z, layer.forward(x.view(k, n, 1, 8, 8), w).reshape(k, n, -1))
    assert layer.send_back(z, w).shape == (k, n, 1, 8, 8)
    mix = rand(gen, k, 4, 4)
    mixed = layer.mix(z, mix)
    ref = torch.einsum("kij,knjhw->knihw", mix, z.view(k, n, 4, 4, 4)).reshape(k, n, -1)
    torch.testing.assert_close(mixed, ref, rtol=0, atol=TOL)
    d, e = rand(gen, k, 4, 10), rand(gen, k, n, 10)
    spread = layer.broadcast(e, d).view(k, n, 4, 16)  # (D e) / P at each of the P = 16 positions
    per_channel = torch.einsum("kcj,knj->knc", d, e)
    torch.testing.assert_close(spread, (per_channel / 16)[..., None].expand_as(spread))
    gens = [torch.Generator().manual_seed(s) for s in (5, 6)]
    fb = layer.random_feedback(w, gens)
    assert fb.shape == w.shape
    alone = layer.random_feedback(w[1:], [torch.Generator().manual_seed(6)])
    assert torch.equal(fb[1], alone[0])
    assert fb.std().item() == pytest.approx(1 / 3, rel=0.3)  # N(0, 1/(C_in k^2)) = N(0, 1/9)
    assert layer.unit_activity(z).shape == (k, n, 4)
    with pytest.raises(RuntimeError, match="no forward of a batch"):
        layer.send_back(rand(gen, k, n + 1, 64), w)


def torch_net(net: RateNetwork, r: int, kernel, stride, padding, pool, pool_type):
    """Replica r of `net` as plain autograd tensors, the textbook order conv -> f -> pool."""
    params = [t[r].clone().requires_grad_() for pair in zip(net.weights, net.biases)
              for t in pair]
    f = {"relu": torch.relu, "tanh": torch.tanh}[net.activation]
    ref_pool = F.max_pool2d if pool_type == "max" else F.avg_pool2d

    def forward(x):
        h = x.reshape(len(x), *SHAPE)
        for l, layer in enumerate(net.layers[:N_CONV]):
            wk = params[2 * l].view(layer.c_out, layer.c_in, kernel, kernel)
            a = F.conv2d(h, wk, params[2 * l + 1], stride, padding)
            # max pooling commutes with a non-decreasing f; avg pooling sits before f
            h = ref_pool(f(a), pool) if pool_type == "max" else f(ref_pool(a, pool))
        h = h.flatten(1)
        for l in range(N_CONV, net.n_layers):
            h = F.linear(h, params[2 * l], params[2 * l + 1])
            if l < net.n_layers - 1:
                h = f(h)
        return h

    return params, forward


def backprop(net: RateNetwork, x: torch.Tensor, t: torch.Tensor):
    """Backpropagation written against the layer interface only."""
    fw = net.forward(x)
    loss, e = loss_and_error(fw.z[-1], t, "cross_entropy")
    m = [e]
    for l in range(net.n_layers - 1, 0, -1):
        layer = net.layers[l]
        m.insert(0, layer.send_back(m[0], layer.as_feedback(net.weights[l]))
                 * fw.derivative[l - 1])
    return loss, [net.layers[l].weight_gradient(m_l, fw.pre[l]) for l, m_l in enumerate(m)]


@pytest.mark.parametrize("pool_type,activation,stride,pool", [
    ("max", "relu", 1, 2), ("avg", "tanh", 1, 2), ("max", "tanh", 2, 1), ("max", "tanh", 1, 2)])
def test_backprop_through_conv_layers_equals_autograd(pool_type, activation, stride, pool):
    k, n = 3, 6
    net = conv_network(SHAPE, [4, 6], [7], 10, kernel=3, stride=stride, padding=1, pool=pool,
                      pool_type=pool_type, activation=activation, seeds=[5, 6, 7],
                      dtype=torch.float64)
    gen = torch.Generator().manual_seed(2)
    x = rand(gen, k, n, 64)
    t = F.one_hot(torch.randint(0, 10, (k, n), generator=gen), 10).double()
    loss, grads = backprop(net, x, t)
    for r in range(k):
        params, forward = torch_net(net, r, 3, stride, 1, pool, pool_type)
        ref = F.cross_entropy(forward(x[r]), t[r].argmax(-1))
        ref.backward()
        torch.testing.assert_close(loss[r], ref.detach(), rtol=0, atol=TOL)
        for l, (gw, gb) in enumerate(grads):
            torch.testing.assert_close(gw[r], params[2 * l].grad, rtol=0, atol=TOL)
            torch.testing.assert_close(gb[r], params[2 * l + 1].grad, rtol=0, atol=TOL)


def test_replica_in_a_batch_equals_replica_alone():
    gen = torch.Generator().manual_seed(3)
    x = rand(gen, 4, 5, 64)
    t = F.one_hot(torch.randint(0, 10, (4, 5), generator=gen), 10).double()
    kw = dict(conv=[3, 5], hidden=[6], n_out=10, pool=2, dtype=torch.float64)
    batch = conv_network(SHAPE, seeds=[10, 11, 12, 13], **kw)
    _, grads = backprop(batch, x, t)
    for r, seed in enumerate([10, 11, 12, 13]):
        alone = conv_network(SHAPE, seeds=[seed], **kw)
        for wb, wa in zip(batch.weights, alone.weights):
            assert torch.equal(wb[r], wa[0])
        _, g1 = backprop(alone, x[r:r + 1], t[r:r + 1])
        for (gw, gb), (aw, ab) in zip(grads, g1):
            torch.testing.assert_close(gw[r], aw[0], rtol=0, atol=1e-14)
            torch.testing.assert_close(gb[r], ab[0], rtol=0, atol=1e-14)


def test_float32_matches_float64():
    kw = dict(conv=[4], hidden=[], n_out=10, pool=2, seeds=[1, 2])
    gen = torch.Generator().manual_seed(4)
    x = rand(gen, 2, 8, 64)
    t = F.one_hot(torch.randint(0, 10, (2, 8), generator=gen), 10).double()
    _, g64 = backprop(conv_network(SHAPE, dtype=torch.float64, **kw), x, t)
    _, g32 = backprop(conv_network(SHAPE, dtype=torch.float32, **kw), x.float(), t.float())
    for (a, _), (b, _) in zip(g64, g32):
        torch.testing.assert_close(b.double(), a, rtol=1e-4, atol=1e-5)


def test_shapes_and_per_layer_options():
    net = conv_network((3, 32, 32), [8, 16], [32], 10, kernel=[5, 3], stride=[1, 2],
                      padding=[2, 1], pool=[2, 1])
    assert [tuple(w.shape) for w in net.weights] == [(1, 8, 75), (1, 16, 72),
                                                      (1, 32, 16 * 8 * 8), (1, 10, 32)]
    fw = net.forward(torch.randn(1, 2, 3072))
    assert fw.post[0].shape == (1, 2, 8, 16, 16) and fw.post[1].shape == (1, 2, 16 * 8 * 8)
    with pytest.raises(ValueError, match="does not fit"):
        conv_network(SHAPE, [4], [], 10, kernel=11, padding=0)
    with pytest.raises(ValueError, match="leaves no positions"):
        conv_network(SHAPE, [4, 4, 4, 4], [], 10, pool=2)
    with pytest.raises(ValueError, match="lists 3 values for 2 conv layers"):
        conv_network(SHAPE, [4, 4], [], 10, kernel=[3, 3, 3])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_conv_backprop_matches_cpu_in_float64():
    kw = dict(conv=[4, 6], hidden=[8], n_out=10, pool=2, seeds=[1, 2, 3], dtype=torch.float64)
    gen = torch.Generator().manual_seed(5)
    x = rand(gen, 3, 7, 64)
    t = F.one_hot(torch.randint(0, 10, (3, 7), generator=gen), 10).double()
    _, cpu = backprop(conv_network(SHAPE, **kw), x, t)
    _, gpu = backprop(conv_network(SHAPE, device="cuda", **kw), x.cuda(), t.cuda())
    for (a, b), (c, d) in zip(cpu, gpu):
        torch.testing.assert_close(c.cpu(), a, rtol=0, atol=1e-10)
        torch.testing.assert_close(d.cpu(), b, rtol=0, atol=1e-10)
