"""Tasks: real data loads, synthetic data has the structure it claims, MNIST reads IDX files."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from lrsim.errors import ConfigError
from lrsim.models.tasks import read_idx, tasks


def write_idx(path, array: np.ndarray, gz: bool = False) -> None:
    """Write an IDX file by the format's definition (magic 0 0 type ndim, big-endian dims)."""
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.float32): 0x0D}[array.dtype]
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    blob = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) \
        + array.astype(dtype).tobytes()
    (gzip.open if gz else open)(path, "wb").write(blob)


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 50).astype(np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte", images[:40])
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels[:40])
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images[40:], gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[40:], gz=True)
    return tmp_path, images, labels


def test_mnist_reads_idx_files(mnist_dir):
    path, images, labels = mnist_dir
    task = tasks.create("mnist", path=str(path))
    assert task.x_train.shape == (40, 784) and task.x_test.shape == (10, 784)
    np.testing.assert_allclose(task.x_train.numpy(), images[:40].reshape(40, -1) / 255.0)
    np.testing.assert_array_equal(task.labels_test.numpy(), labels[40:])
    assert task.y_train.shape[1] == labels.max() + 1
    small = tasks.create("mnist", path=str(path), train_samples=10)
    assert small.x_train.shape[0] == 10


def test_mnist_missing_or_bad_files_give_clear_errors(mnist_dir, tmp_path_factory):
    path, _, _ = mnist_dir
    with pytest.raises(ConfigError, match="needs 'path'"):
        tasks.create("mnist")
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(ConfigError, match="not found"):
        tasks.create("mnist", path=str(empty))
    with pytest.raises(ConfigError, match="not a directory"):
        tasks.create("mnist", path=str(empty / "nope"))
    (path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 12 + b"x")
    with pytest.raises(ConfigError, match="truncated"):
        tasks.create("mnist", path=str(path))
    bad = path / "junk"
    bad.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ConfigError, match="not an IDX file"):
        read_idx(bad)


def test_digits_split_is_fixed_by_seed_and_complete():
    a, b, c = tasks.create("digits"), tasks.create("digits"), tasks.create("digits", seed=1)
    assert (a.x_test == b.x_test).all() and not (a.x_test == c.x_test).all()
    assert len(a.x_train) + len(a.x_test) == 1797 and a.n_in == 64 and a.n_out == 10
    assert float(a.x_train.max()) == 1.0 and float(a.x_train.min()) == 0.0
    centred = tasks.create("digits", center=True)
    np.testing.assert_allclose(centred.x_train.mean(0).numpy(), 0.0, atol=1e-12)


def test_gaussian_mixture_classes_sit_at_their_means():
    task = tasks.create("gaussian_mixture", classes=3, dim=5, samples=3000, separation=6.0)
    x, lab = task.x_train.numpy(), task.labels_train.numpy()
    means = np.stack([x[lab == c].mean(0) for c in range(3)])
    within = np.mean([np.var(x[lab == c] - means[c]) for c in range(3)])
    assert within == pytest.approx(1.0, rel=0.1)  # unit-variance noise around each mean
    nearest = np.argmin(((x[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == lab).mean() > 0.9  # well separated at separation 6


def test_teacher_student_targets_follow_the_teacher_equation():
    task = tasks.create("teacher_student", dim=4, outputs=2, teacher_hidden=3, samples=100)
    rng = np.random.default_rng(0)  # the task's documented construction, redone here
    w1 = rng.standard_normal((3, 4)) / 2.0
    w2 = rng.standard_normal((2, 3)) / np.sqrt(3)
    x = rng.standard_normal((100, 4))
    y = np.tanh(x @ w1.T) @ w2.T
    np.testing.assert_allclose(task.x_test.numpy(), x[:20])
    np.testing.assert_allclose(task.y_train.numpy(), y[20:], rtol=1e-12)
    assert task.loss == "mse" and not task.classification
