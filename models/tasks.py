"""Tasks the networks learn: real data (digits, MNIST, CIFAR-10) and synthetic problems with
known answers.

A task is data plus a loss: `x_train (n, d)`, `y_train`, `x_test`, `y_test`, float tensors;
classification targets are one-hot, with integer labels in `labels_*`. Each task's data is fixed
by its own `seed` parameter, so all replicas of a run see the same data. Image tasks also carry
`input_shape = (C, H, W)`; their inputs stay flat (d = C H W, channel-major, row-major within a
channel), so a dense network reads them unchanged and a convolutional one views them as images.
"""

from __future__ import annotations

import gzip
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lrsim.errors import ConfigError
from lrsim.registry import Param, Registry


@dataclass
class Task:
    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    loss: str  # "cross_entropy" | "mse"
    labels_train: Tensor | None = None
    labels_test: Tensor | None = None
    input_shape: tuple[int, int, int] | None = None  # (C, H, W) of an image task, else None

    @property
    def n_in(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_out(self) -> int:
        return self.y_train.shape[1]

    @property
    def classification(self) -> bool:
        return self.labels_train is not None


tasks: Registry[Task] = Registry("task")

_SEED = Param(0, "seed of the data (split, sampling)", low=0, high=2**31 - 1)
_TEST = Param(0.2, "fraction held out for testing", low=0.0, high=1.0, low_open=True,
              high_open=True)
_SAMPLES = Param(2000, low=10, high=10**7)


_CENTER = Param(False, "subtract the training set's mean input (Hebbian rules then find "
                       "the principal components rather than the mean)")


def _classification(name: str, x: np.ndarray, labels: np.ndarray, n_classes: int,
                    test_fraction: float, seed: int, loss: str = "cross_entropy",
                    center: bool = False,
                    input_shape: tuple[int, int, int] | None = None) -> Task:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_test = max(1, int(round(test_fraction * len(x))))
    test, train = order[:n_test], order[n_test:]
    return _split_task(name, x[train], labels[train], x[test], labels[test], n_classes, loss,
                       center, input_shape)


def _split_task(name, x_tr, l_tr, x_te, l_te, n_classes, loss, center=False,
                input_shape=None) -> Task:
    if center:
        mean = x_tr.mean(axis=0)
        x_tr, x_te = x_tr - mean, x_te - mean
    eye = np.eye(n_classes)
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)  # noqa: E731
    return Task(name, t(x_tr), t(eye[l_tr]), t(x_te), t(eye[l_te]), loss,
                torch.as_tensor(l_tr, dtype=torch.long), torch.as_tensor(l_te, dtype=torch.long),
                input_shape)


def _regression(name: str, x: np.ndarray, y: np.ndarray, test_fraction: float) -> Task:
    """A regression task (mse): the first round(test_fraction n) samples are the test set (the
    samples are i.i.d. draws, so no shuffle is needed)."""
    n_test = max(1, int(round(test_fraction * len(x))))
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    return Task(name, t(x[n_test:]), t(y[n_test:]), t(x[:n_test]), t(y[:n_test]), "mse")


@tasks.register("digits", params={"seed": _SEED, "test_fraction": _TEST, "center": _CENTER},
                input_shape=(1, 8, 8))
def digits(seed: int = 0, test_fraction: float = 0.2, center: bool = False) -> Task:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), pixels / 16;
    images of shape (1, 8, 8) for convolutional networks (inputs stay flat, 64 values)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return _classification("digits", data.data / 16.0, data.target, 10, test_fraction, seed,
                           center=center, input_shape=(1, 8, 8))


@tasks.register("gaussian_mixture", params={
    "seed": _SEED, "test_fraction": _TEST,
    "classes": Param(4, low=2, high=1000), "dim": Param(20, low=1, high=100000),
    "samples": _SAMPLES,
    "separation": Param(3.0, "distance of class means in units of the noise std", low=0.0)})
def gaussian_mixture(seed=0, test_fraction=0.2, classes=4, dim=20, samples=2000,
                     separation=3.0) -> Task:
    """Classes drawn from isotropic Gaussians with random means at the given separation."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((classes, dim))
    means *= separation / np.sqrt(2 * dim)  # expected distance between two means ~ separation
    labels = rng.integers(0, classes, samples)
    x = means[labels] + rng.standard_normal((samples, dim))
    return _classification("gaussian_mixture", x, labels, classes, test_fraction, seed)


@tasks.register("teacher_student", params={
    "seed": _SEED, "test_fraction": _TEST,
    "dim": Param(20, low=1, high=100000), "outputs": Param(5, low=1, high=100000),
    "teacher_hidden": Param(32, low=1, high=100000), "samples": _SAMPLES,
    "noise": Param(0.0, "std of label noise", low=0.0)})
def teacher_student(seed=0, test_fraction=0.2, dim=20, outputs=5, teacher_hidden=32,
                    samples=2000, noise=0.0) -> Task:
    """Regression on a random one-hidden-layer tanh teacher: y = W2 tanh(W1 x) + noise (mse)."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((teacher_hidden, dim)) / math.sqrt(dim)
    w2 = rng.standard_normal((outputs, teacher_hidden)) / math.sqrt(teacher_hidden)
    x = rng.standard_normal((samples, dim))
    y = np.tanh(x @ w1.T) @ w2.T + noise * rng.standard_normal((samples, outputs))
    return _regression("teacher_student", x, y, test_fraction)


@tasks.register("hidden_manifold", params={
    "seed": _SEED, "test_fraction": _TEST,
    "dim": Param(50, "input dimension N", low=1, high=100000),
    "latent": Param(8, "latent dimension D of the manifold", low=1, high=100000),
    "classes": Param(3, low=2, high=1000), "samples": _SAMPLES})
def hidden_manifold(seed=0, test_fraction=0.2, classes=3, dim=50, latent=8,
                    samples=2000) -> Task:
    """The hidden manifold model (Goldt, Mezard, Krzakala & Zdeborova 2020, Phys. Rev. X 10,
    041044): latent c ~ N(0, I_D), inputs x = tanh(F c / sqrt(D)) with a Gaussian F (N x D),
    label = argmax_k (T c)_k with a Gaussian teacher T (classes x D) acting on the latent
    variables, so the inputs lie on a D-dimensional curved manifold of R^N."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((dim, latent))
    teacher = rng.standard_normal((classes, latent))
    c = rng.standard_normal((samples, latent))
    x = np.tanh(c @ features.T / math.sqrt(latent))
    labels = np.argmax(c @ teacher.T, axis=1)
    return _classification("hidden_manifold", x, labels, classes, test_fraction, seed)


@tasks.register("spirals", params={
    "seed": _SEED, "test_fraction": _TEST,
    "classes": Param(3, "number of spiral arms", low=2, high=1000),
    "dim": Param(10, "input dimension (the spiral's plane is a random 2-D subspace)", low=2,
                 high=100000),
    "turns": Param(1.0, "turns of each arm", low=0.0, low_open=True),
    "noise": Param(0.05, "std of isotropic input noise", low=0.0),
    "samples": _SAMPLES})
def spirals(seed=0, test_fraction=0.2, classes=3, dim=10, turns=1.0, noise=0.05,
            samples=2000) -> Task:
    """Interleaved spiral arms, a classic task no linear readout solves: arm k holds the points
    r (cos phi, sin phi) with r ~ U(0, 1) and phi = 2 pi (turns r + k / classes), placed in a
    random 2-D subspace of R^dim (orthonormal basis Q, dim x 2) plus N(0, noise^2 I)."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((dim, 2)))
    labels = rng.integers(0, classes, samples)
    r = rng.uniform(0.0, 1.0, samples)
    phi = 2 * math.pi * (turns * r + labels / classes)
    plane = np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)
    x = plane @ basis.T + noise * rng.standard_normal((samples, dim))
    return _classification("spirals", x, labels, classes, test_fraction, seed)


@tasks.register("parity", params={
    "seed": _SEED, "test_fraction": _TEST,
    "dim": Param(20, "input bits n", low=1, high=100000),
    "k": Param(3, "bits whose product is the label", low=1, high=100000),
    "samples": _SAMPLES})
def parity(seed=0, test_fraction=0.2, dim=20, k=3, samples=2000) -> Task:
    """Sparse parity (Barak, Edelman, Goel, Kakade, Malach & Zhang 2022, NeurIPS): x uniform on
    {-1, +1}^dim, label = [prod_{i in S} x_i = -1] for a fixed random set S of k bits; two
    classes, no single bit (or any fewer than k) says anything about the label."""
    if k > dim:
        raise ConfigError(f"task 'parity': k = {k} bits cannot be drawn from dim = {dim}")
    rng = np.random.default_rng(seed)
    bits = rng.choice(dim, size=k, replace=False)
    x = rng.choice([-1.0, 1.0], size=(samples, dim))
    labels = (np.prod(x[:, bits], axis=1) < 0).astype(int)
    return _classification("parity", x, labels, 2, test_fraction, seed)


@tasks.register("rings", params={
    "seed": _SEED, "test_fraction": _TEST,
    "classes": Param(3, "number of shells", low=2, high=1000),
    "dim": Param(10, "input dimension", low=1, high=100000),
    "samples": _SAMPLES})
def rings(seed=0, test_fraction=0.2, classes=3, dim=10, samples=2000) -> Task:
    """Concentric shells: x ~ N(0, I_dim), label = the shell of |x| between the chi
    distribution's quantiles j / classes, so the classes are equally likely and no linear
    readout separates them (the label depends on the norm only)."""
    from scipy.stats import chi

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, dim))
    edges = chi.ppf(np.arange(1, classes) / classes, dim)
    labels = np.searchsorted(edges, np.linalg.norm(x, axis=1))
    return _classification("rings", x, labels, classes, test_fraction, seed)


@tasks.register("checkerboard", params={
    "seed": _SEED, "test_fraction": _TEST,
    "cells": Param(4, "cells along each side of the board", low=2, high=1000),
    "classes": Param(2, "colours, assigned (i + j) mod classes to cell (i, j)", low=2,
                     high=1000),
    "dim": Param(10, "input dimension (the board's plane is a random 2-D subspace)", low=2,
                 high=100000),
    "noise": Param(0.05, "std of isotropic input noise", low=0.0),
    "samples": _SAMPLES})
def checkerboard(seed=0, test_fraction=0.2, cells=4, classes=2, dim=10, noise=0.05,
                 samples=2000) -> Task:
    """A checkerboard, XOR generalised to a grid: u ~ U([-1, 1]^2), cell (i, j) =
    floor(cells (u + 1) / 2), label (i + j) mod classes, so neighbouring cells differ and no
    linear readout beats chance; the board is placed in a random 2-D subspace of R^dim
    (orthonormal basis Q, dim x 2) plus N(0, noise^2 I)."""
    if classes > 2 * cells - 1:
        raise ConfigError(f"task 'checkerboard': {classes} classes need cells >= "
                          f"{(classes + 2) // 2} (i + j on {cells} x {cells} cells takes "
                          f"{2 * cells - 1} values)")
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((dim, 2)))
    u = rng.uniform(-1.0, 1.0, (samples, 2))
    cell = np.minimum(np.floor(cells * (u + 1) / 2), cells - 1).astype(int)
    labels = (cell[:, 0] + cell[:, 1]) % classes
    x = u @ basis.T + noise * rng.standard_normal((samples, dim))
    return _classification("checkerboard", x, labels, classes, test_fraction, seed)


@tasks.register("random_labels", params={
    "seed": _SEED, "test_fraction": _TEST,
    "classes": Param(10, "number of labels", low=2, high=1000),
    "dim": Param(30, "input dimension", low=1, high=100000),
    "samples": _SAMPLES})
def random_labels(seed=0, test_fraction=0.2, classes=10, dim=30, samples=2000) -> Task:
    """Random labels (Zhang, Bengio, Hardt, Recht & Vinyals 2017, ICLR, "Understanding deep
    learning requires rethinking generalization"): x ~ N(0, I_dim), label ~ U{0..classes-1}
    independent of x. Nothing generalises (test accuracy stays at chance); a network can only
    memorise the training set, which exercises its learning rule without any structure."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, dim))
    labels = rng.integers(0, classes, samples)
    return _classification("random_labels", x, labels, classes, test_fraction, seed)


@tasks.register("linear_modes", params={
    "seed": _SEED, "test_fraction": _TEST,
    "dim": Param(20, "input dimension", low=1, high=100000),
    "outputs": Param(10, "output dimension", low=1, high=100000),
    "decay": Param(0.7, "ratio of successive singular values", low=0.0, high=1.0,
                   low_open=True),
    "samples": _SAMPLES})
def linear_modes(seed=0, test_fraction=0.2, dim=20, outputs=10, decay=0.7,
                 samples=2000) -> Task:
    """Regression on a linear map with graded modes (Saxe, McClelland & Ganguli 2014, ICLR,
    "Exact solutions to the nonlinear dynamics of learning in deep linear neural networks"):
    y = A x, A = U diag(s) V^T with s_i = decay^i (i < r = min(dim, outputs)), U and V random
    orthonormal columns, x ~ N(0, I_dim); mse. Deep networks learn the modes one after another,
    strongest first, so the learning dynamics have a known stage-like shape."""
    rng = np.random.default_rng(seed)
    r = min(dim, outputs)
    u, _ = np.linalg.qr(rng.standard_normal((outputs, r)))
    v, _ = np.linalg.qr(rng.standard_normal((dim, r)))
    a = (u * decay ** np.arange(r)) @ v.T
    x = rng.standard_normal((samples, dim))
    return _regression("linear_modes", x, x @ a.T, test_fraction)


# ---------------------------------------------------------------------------------------------
# MNIST from IDX files on a local path (no download at run time)

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MNIST_FILES = {"train_images": "train-images-idx3-ubyte",
                "train_labels": "train-labels-idx1-ubyte",
                "test_images": "t10k-images-idx3-ubyte",
                "test_labels": "t10k-labels-idx1-ubyte"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), optionally gzipped."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ConfigError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    body = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ConfigError(f"{path} is truncated: expected {int(np.prod(dims))} values, "
                          f"found {body.size}")
    return body.reshape(dims)


def _find(root: Path, stem: str) -> Path:
    for cand in (root / stem, root / (stem + ".gz"), root / stem.replace("-idx", ".idx")):
        if cand.is_file():
            return cand
    raise ConfigError(f"task 'mnist': file '{stem}' (or '{stem}.gz') not found in {root}; "
                      f"the directory must hold {', '.join(_MNIST_FILES.values())}")


def _local_dir(task: str, path: str, holding: str) -> Path:
    """The local directory `path` of a file-backed task, or ConfigError naming what it must
    hold (nothing is downloaded)."""
    if not path:
        raise ConfigError(f"task '{task}' needs 'path': a local directory with {holding}")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ConfigError(f"task '{task}': path '{root}' is not a directory")
    return root


@tasks.register("mnist", input_shape=(1, 28, 28), params={
    "path": Param("", "directory holding the four MNIST IDX files"),
    "train_samples": Param(0, "use the first n training images (0 = all)", low=0),
    "test_samples": Param(0, "use the first n test images (0 = all)", low=0), "seed": _SEED,
    "center": _CENTER})
def mnist(path: str = "", train_samples: int = 0, test_samples: int = 0, seed: int = 0,
          center: bool = False) -> Task:
    """MNIST (or any IDX dataset of that layout) from a local directory; pixels / 255."""
    root = _local_dir("mnist", path, f"the IDX files {', '.join(_MNIST_FILES.values())}")
    arrays = {k: read_idx(_find(root, v)) for k, v in _MNIST_FILES.items()}
    x_tr = arrays["train_images"].reshape(len(arrays["train_images"]), -1) / 255.0
    x_te = arrays["test_images"].reshape(len(arrays["test_images"]), -1) / 255.0
    l_tr, l_te = arrays["train_labels"].astype(int), arrays["test_labels"].astype(int)
    if len(x_tr) != len(l_tr) or len(x_te) != len(l_te):
        raise ConfigError(f"task 'mnist': image and label counts differ in {root}")
    if train_samples:
        x_tr, l_tr = x_tr[:train_samples], l_tr[:train_samples]
    if test_samples:
        x_te, l_te = x_te[:test_samples], l_te[:test_samples]
    n_classes = int(max(l_tr.max(), l_te.max())) + 1
    dims = arrays["train_images"].shape[1:]
    shape = (1, int(dims[0]), int(dims[1])) if len(dims) == 2 else None
    return _split_task("mnist", x_tr, l_tr, x_te, l_te, n_classes, "cross_entropy", center,
                       shape)


# ---------------------------------------------------------------------------------------------
# CIFAR-10 from the official binary files on a local path (no download, no pickle)

CIFAR10_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST = "test_batch.bin"
CIFAR10_SHAPE = (3, 32, 32)
CIFAR10_RECORD = 1 + 3 * 32 * 32  # one label byte, then 1024 red, 1024 green, 1024 blue bytes
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


def read_cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One file of CIFAR-10's binary version: records of 1 label byte (0-9) + 3072 pixel bytes
    (the red, green and blue 32x32 planes, each row-major), 10,000 records in the official
    files. Returns (images uint8 (n, 3072) in channel-major order, labels int64 (n,)); any
    whole number of records is read. Raises ConfigError naming the file when it is missing,
    empty, not a whole number of records, or holds a label above 9."""
    if not path.is_file():
        raise ConfigError(f"task 'cifar10': file '{path}' not found; the directory must hold "
                          f"{', '.join(CIFAR10_TRAIN)} and {CIFAR10_TEST} (CIFAR-10's binary "
                          "version)")
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % CIFAR10_RECORD:
        raise ConfigError(f"task 'cifar10': file '{path}' has {raw.size} bytes, not a whole "
                          f"number of {CIFAR10_RECORD}-byte records (1 label + 3072 pixels; "
                          f"an official batch is {10_000 * CIFAR10_RECORD} bytes)")
    records = raw.reshape(-1, CIFAR10_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise ConfigError(f"task 'cifar10': file '{path}' record {bad} has label "
                          f"{int(labels[bad])}; CIFAR-10 labels are 0-9 (is this the "
                          "CIFAR-100 binary version?)")
    return records[:, 1:], labels


def cifar10_dir(path: str) -> Path:
    """The directory holding the batches: `path` itself, or its `cifar-10-batches-bin`
    subdirectory (the layout of the official archive)."""
    root = _local_dir("cifar10", path, f"CIFAR-10's binary files {', '.join(CIFAR10_TRAIN)}, "
                      f"{CIFAR10_TEST}")
    inner = root / "cifar-10-batches-bin"
    if not (root / CIFAR10_TRAIN[0]).exists() and inner.is_dir():
        return inner
    return root


@tasks.register("cifar10", input_shape=(3, 32, 32), params={
    "path": Param("", "directory holding CIFAR-10's binary files (data_batch_1.bin .. "
                      "data_batch_5.bin, test_batch.bin), or its parent"),
    "train_samples": Param(0, "use the first n training images (0 = all 50,000)", low=0),
    "test_samples": Param(0, "use the first n test images (0 = all 10,000)", low=0),
    "normalize": Param(True, "per channel, subtract the training images' mean and divide by "
                             "their std (else pixels / 255 in [0, 1])"),
    "seed": _SEED})
def cifar10(path: str = "", train_samples: int = 0, test_samples: int = 0,
            normalize: bool = True, seed: int = 0) -> Task:
    """CIFAR-10 (Krizhevsky 2009) from the binary files of a local copy; images (3, 32, 32).

    Pixels p / 255; with `normalize`, x_c = (p/255 - mu_c) / sigma_c per channel c, with mu_c
    and sigma_c over every pixel of channel c in the training images used (the subset when
    `train_samples` is set), applied to train and test alike. All six files are checked (sizes,
    labels) before any conversion; nothing is downloaded."""
    root = cifar10_dir(path)
    batches = [read_cifar10_batch(root / name) for name in (*CIFAR10_TRAIN, CIFAR10_TEST)]
    x_tr = np.concatenate([b[0] for b in batches[:-1]])
    l_tr = np.concatenate([b[1] for b in batches[:-1]])
    x_te, l_te = batches[-1]
    if train_samples:
        x_tr, l_tr = x_tr[:train_samples], l_tr[:train_samples]
    if test_samples:
        x_te, l_te = x_te[:test_samples], l_te[:test_samples]
    x_tr, x_te = x_tr / 255.0, x_te / 255.0
    if normalize:
        c = CIFAR10_SHAPE[0]
        planes = x_tr.reshape(len(x_tr), c, -1)
        mu = planes.mean(axis=(0, 2))
        sigma = planes.std(axis=(0, 2))
        sigma = np.where(sigma > 0, sigma, 1.0)
        scale = lambda a: ((a.reshape(len(a), c, -1) - mu[:, None]) / sigma[:, None]  # noqa: E731
                           ).reshape(len(a), -1)
        x_tr, x_te = scale(x_tr), scale(x_te)
    return _split_task("cifar10", x_tr, l_tr, x_te, l_te, 10, "cross_entropy",
                       input_shape=CIFAR10_SHAPE)
