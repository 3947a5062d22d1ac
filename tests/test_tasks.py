"""Tasks: real data loads, synthetic data has the structure it claims, MNIST reads IDX files."""

from __future__ import annotations

import gzip
import itertools
import struct

import numpy as np
import pytest
import torch

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


def test_hidden_manifold_inputs_lie_on_a_latent_manifold_that_fixes_the_label():
    task = tasks.create("hidden_manifold", classes=3, dim=30, latent=4, samples=1500)
    x = np.concatenate([task.x_train.numpy(), task.x_test.numpy()])
    lab = np.concatenate([task.labels_train.numpy(), task.labels_test.numpy()])
    pre = np.arctanh(x)  # = F c / sqrt(D): rank D, the latent dimension
    sv = np.linalg.svd(pre, compute_uv=False)
    assert sv[3] > 1e3 * sv[4]
    # label = argmax of a linear function of c, hence of arctanh(x): a linear classifier
    # separates the classes there (least squares onto one-hot, then argmax, is not enough;
    # use scikit-learn's logistic regression with weak regularisation)
    from sklearn.linear_model import LogisticRegression
    fit = LogisticRegression(C=1e4, max_iter=5000).fit(pre, lab)
    assert fit.score(pre, lab) > 0.99
    assert 0.15 < np.mean(lab == 0) < 0.55


def test_spiral_arms_follow_their_equation_in_a_plane():
    classes, turns = 3, 1.0
    task = tasks.create("spirals", classes=classes, dim=6, turns=turns, noise=0.0, samples=600)
    x = np.concatenate([task.x_train.numpy(), task.x_test.numpy()])
    lab = np.concatenate([task.labels_train.numpy(), task.labels_test.numpy()])
    u, sv, vt = np.linalg.svd(x, full_matrices=False)
    assert sv[2] < 1e-10 * sv[0]  # a 2-D plane of R^6
    plane = x @ vt[:2].T  # coordinates in an orthonormal basis of that plane
    r = np.linalg.norm(plane, axis=1)
    assert r.max() <= 1.0 + 1e-12
    # phi = 2 pi (turns r + k / classes): after removing 2 pi turns r, arm k sits at one angle,
    # the arms 2 pi / classes apart (the plane's basis may be reflected: try both orientations)
    best = np.inf
    for sign in (1.0, -1.0):
        phase = sign * np.arctan2(plane[:, 1], plane[:, 0]) - 2 * np.pi * turns * r
        z = np.exp(1j * phase)
        centre = np.array([z[lab == k].mean() for k in range(classes)])
        spread = max(np.abs(z[lab == k] - centre[k] / abs(centre[k])).max()
                     for k in range(classes))
        gaps = np.angle(centre[(np.arange(classes) + 1) % classes] / centre)
        if spread < best:
            best, best_gaps = spread, gaps
    assert best < 1e-8
    np.testing.assert_allclose(np.abs(best_gaps), 2 * np.pi / classes, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# image tasks: digits as 1x8x8 images, CIFAR-10 from binary files the test writes


def test_digits_carry_their_image_shape_with_flat_inputs():
    from sklearn.datasets import load_digits

    task = tasks.create("digits")
    assert task.input_shape == (1, 8, 8) and task.n_in == 64
    # the flat input, viewed as an image, is the bundled 8x8 image (row-major)
    images = load_digits().images / 16.0
    x = task.x_train[0].view(8, 8).numpy()
    assert any(np.array_equal(x, im) for im in images)


def write_cifar(path, labels: np.ndarray, pixels: np.ndarray) -> None:
    """A file in CIFAR-10's binary layout: per record 1 label byte then 3072 pixel bytes."""
    records = np.concatenate([labels.astype(np.uint8)[:, None], pixels.astype(np.uint8)], 1)
    path.write_bytes(records.tobytes())


@pytest.fixture
def cifar_dir(tmp_path):
    """Six files of 7 records each (the reader takes any whole number of records)."""
    rng = np.random.default_rng(3)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    content = {}
    for name in names:
        labels = rng.integers(0, 10, 7)
        pixels = rng.integers(0, 256, (7, 3072))
        write_cifar(tmp_path / name, labels, pixels)
        content[name] = (labels, pixels)
    return tmp_path, content


def test_cifar10_reads_the_binary_files(cifar_dir):
    path, content = cifar_dir
    task = tasks.create("cifar10", path=str(path), normalize=False)
    train = [content[f"data_batch_{i}.bin"] for i in range(1, 6)]
    assert task.input_shape == (3, 32, 32) and task.n_in == 3072 and task.n_out == 10
    assert task.x_train.shape == (35, 3072) and task.x_test.shape == (7, 3072)
    np.testing.assert_array_equal(task.labels_train.numpy(), np.concatenate([t[0] for t in train]))
    np.testing.assert_allclose(task.x_train.numpy(), np.concatenate([t[1] for t in train]) / 255)
    np.testing.assert_array_equal(task.labels_test.numpy(), content["test_batch.bin"][0])
    # pixel (c, i, j) of an image sits at c*1024 + 32 i + j: the red plane first, row-major
    img = task.x_test[2].view(3, 32, 32).numpy()
    assert img[1, 4, 5] == content["test_batch.bin"][1][2, 1024 + 4 * 32 + 5] / 255
    np.testing.assert_array_equal(task.y_test.argmax(1).numpy(), task.labels_test.numpy())
    # the parent of cifar-10-batches-bin works too (the official archive's layout)
    parent = path.parent / "archive"
    parent.mkdir()
    (parent / "cifar-10-batches-bin").symlink_to(path)
    assert (tasks.create("cifar10", path=str(parent), normalize=False).x_test
            == task.x_test).all()


def test_cifar10_subsets_and_per_channel_normalisation(cifar_dir):
    path, content = cifar_dir
    task = tasks.create("cifar10", path=str(path), train_samples=10, test_samples=3)
    assert task.x_train.shape == (10, 3072) and task.x_test.shape == (3, 3072)
    raw = np.concatenate([content["data_batch_1.bin"][1], content["data_batch_2.bin"][1]])[:10]
    planes = raw.reshape(10, 3, 1024) / 255.0
    mu, sd = planes.mean(axis=(0, 2)), planes.std(axis=(0, 2))
    x = task.x_train.numpy().reshape(10, 3, 1024)
    np.testing.assert_allclose(x.mean(axis=(0, 2)), 0.0, atol=1e-12)
    np.testing.assert_allclose(x.std(axis=(0, 2)), 1.0, rtol=1e-12)
    test = content["test_batch.bin"][1][:3].reshape(3, 3, 1024) / 255.0
    np.testing.assert_allclose(task.x_test.numpy().reshape(3, 3, 1024),
                               (test - mu[:, None]) / sd[:, None], rtol=1e-12)


def test_cifar10_missing_or_malformed_files_name_the_file(cifar_dir, tmp_path_factory):
    path, _ = cifar_dir
    with pytest.raises(ConfigError, match="needs 'path'"):
        tasks.create("cifar10")
    with pytest.raises(ConfigError, match="not a directory"):
        tasks.create("cifar10", path=str(path / "nope"))
    (path / "data_batch_3.bin").rename(path / "moved.bin")
    with pytest.raises(ConfigError, match="data_batch_3.bin' not found"):
        tasks.create("cifar10", path=str(path))
    (path / "moved.bin").rename(path / "data_batch_3.bin")
    blob = (path / "data_batch_4.bin").read_bytes()
    (path / "data_batch_4.bin").write_bytes(blob[:-1])
    with pytest.raises(ConfigError, match="data_batch_4.bin' has 21510 bytes, not a whole"):
        tasks.create("cifar10", path=str(path))
    (path / "data_batch_4.bin").write_bytes(blob)
    bad = bytearray((path / "test_batch.bin").read_bytes())
    bad[3 * 3073] = 42  # record 3's label byte
    (path / "test_batch.bin").write_bytes(bytes(bad))
    with pytest.raises(ConfigError, match="test_batch.bin' record 3 has label 42"):
        tasks.create("cifar10", path=str(path))
    (path / "test_batch.bin").write_bytes(b"")
    with pytest.raises(ConfigError, match="test_batch.bin' has 0 bytes"):
        tasks.create("cifar10", path=str(path))


@pytest.mark.parametrize("name", ["digits", "gaussian_mixture", "teacher_student",
                                  "hidden_manifold", "spirals", "parity", "rings",
                                  "random_labels", "linear_modes"])
def test_memory_budget_knows_each_tasks_size_without_loading_it(name):
    """lrsim.budget sizes a task from its parameters alone; it must agree with the data."""
    from lrsim.budget import _task_dims
    from lrsim.config import parse

    exp = parse({"name": "t", "task": {"name": name}})
    task = tasks.create(name)
    n = len(task.x_train) + len(task.x_test)
    assert _task_dims(exp) == (task.n_in, task.n_out, n)


def test_parity_label_is_the_product_of_exactly_k_bits():
    from itertools import combinations

    task = tasks.create("parity", dim=8, k=3, samples=400)
    x = np.concatenate([task.x_train.numpy(), task.x_test.numpy()])
    lab = np.concatenate([task.labels_train.numpy(), task.labels_test.numpy()])
    assert set(np.unique(x)) == {-1.0, 1.0}
    fits = [s for s in combinations(range(8), 3)
            if np.array_equal((np.prod(x[:, s], axis=1) < 0).astype(int), lab)]
    assert len(fits) == 1  # one set of 3 bits, found by brute force
    for i in range(8):  # no single bit predicts the label
        assert abs(np.mean(lab[x[:, i] > 0]) - np.mean(lab[x[:, i] < 0])) < 0.2
    with pytest.raises(ConfigError, match=r"k = 9 bits cannot be drawn from dim = 8"):
        tasks.create("parity", dim=8, k=9)


def test_rings_split_the_norm_at_equal_probability_shells():
    from scipy.stats import chi2

    task = tasks.create("rings", classes=3, dim=5, samples=6000)
    x = np.concatenate([task.x_train.numpy(), task.x_test.numpy()])
    lab = np.concatenate([task.labels_train.numpy(), task.labels_test.numpy()])
    sq = (x ** 2).sum(1)  # |x|^2 ~ chi-square(5): shells at its tertiles
    edges = chi2.ppf([1 / 3, 2 / 3], 5)
    np.testing.assert_array_equal(lab, np.digitize(sq, edges))
    np.testing.assert_allclose(np.bincount(lab) / len(lab), 1 / 3, atol=0.03)


def test_checkerboard_colours_alternate_over_a_grid_in_a_plane():
    """The board recovered from the data alone (SVD: the plane; the cells from its coordinates)
    gives each cell one colour, neighbours different colours; a linear classifier is at
    chance and a nearest-neighbour one is not."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    task = tasks.create("checkerboard", cells=4, classes=2, dim=6, noise=0.0, samples=4000)
    x = np.concatenate([task.x_train.numpy(), task.x_test.numpy()])
    lab = np.concatenate([task.labels_train.numpy(), task.labels_test.numpy()])
    _, sv, vt = np.linalg.svd(x, full_matrices=False)
    assert sv[2] < 1e-10 * sv[0]  # a 2-D plane of R^6
    plane = x @ vt[:2].T  # a rotation (or reflection) of the board's [-1, 1]^2 coordinates
    # rotate the plane so that the board's edges align with the axes: the colour of a point
    # must then be constant on each of the 4 x 4 cells of the bounding square
    best = None
    for angle in np.linspace(0, np.pi / 2, 721):
        c, s = np.cos(angle), np.sin(angle)
        p = plane @ np.array([[c, -s], [s, c]])
        lo, hi = p.min(0), p.max(0)
        cell = np.minimum(np.floor(4 * (p - lo) / (hi - lo)), 3).astype(int)
        key = cell[:, 0] * 4 + cell[:, 1]
        impure = sum(len(np.unique(lab[key == k])) > 1 for k in np.unique(key))
        if best is None or impure < best[0]:
            best = (impure, key)
    impure, key = best
    assert impure <= 2  # edge cells may mix at the rotation grid's resolution
    colour = {k: np.bincount(lab[key == k]).argmax() for k in np.unique(key)}
    for i, j in itertools.product(range(3), range(4)):
        assert colour[i * 4 + j] != colour[(i + 1) * 4 + j]  # vertical neighbours differ
        assert colour[j * 4 + i] != colour[j * 4 + i + 1]  # horizontal neighbours differ
    np.testing.assert_allclose(np.bincount(lab) / len(lab), 0.5, atol=0.03)
    xtr, ltr = task.x_train.numpy(), task.labels_train.numpy()
    xte, lte = task.x_test.numpy(), task.labels_test.numpy()
    linear = (LogisticRegression(max_iter=500).fit(xtr, ltr).predict(xte) == lte).mean()
    knn = (KNeighborsClassifier(5).fit(xtr, ltr).predict(xte) == lte).mean()
    assert linear < 0.5 + 3.5 * np.sqrt(0.25 / len(lte)) and knn > 0.9
    # (i + j) mod classes on 2 x 2 cells reaches 3 colours, not 4
    assert len(np.unique(tasks.create("checkerboard", cells=2, classes=3).labels_train)) == 3
    with pytest.raises(ConfigError, match=r"4 classes need cells >= 3 \(i \+ j on 2 x 2 cells "
                                          r"takes 3 values\)"):
        tasks.create("checkerboard", cells=2, classes=4)


def test_random_labels_carry_no_information_about_the_inputs():
    """Zhang et al. 2017: a classifier fitted on the training split predicts the test labels at
    chance, and the labels are uniform over the classes (chi-square)."""
    from scipy import stats
    from sklearn.linear_model import LogisticRegression

    task = tasks.create("random_labels", classes=5, dim=10, samples=5000, seed=3)
    assert task.n_in == 10 and task.n_out == 5 and task.loss == "cross_entropy"
    clf = LogisticRegression(max_iter=500).fit(task.x_train.numpy(), task.labels_train.numpy())
    acc = (clf.predict(task.x_test.numpy()) == task.labels_test.numpy()).mean()
    n_test = len(task.labels_test)
    # chance = 0.2; accept up to 3.5 binomial standard deviations above it
    assert acc < 0.2 + 3.5 * np.sqrt(0.2 * 0.8 / n_test)
    labels = np.concatenate([task.labels_train.numpy(), task.labels_test.numpy()])
    assert stats.chisquare(np.bincount(labels, minlength=5)).pvalue > 1e-3
    again = tasks.create("random_labels", classes=5, dim=10, samples=5000, seed=3)
    other = tasks.create("random_labels", classes=5, dim=10, samples=5000, seed=4)
    assert torch.equal(again.x_train, task.x_train) and not torch.equal(other.x_train,
                                                                         task.x_train)


def test_linear_modes_is_a_linear_map_with_geometric_singular_values():
    """Saxe et al. 2014: least squares on the data recovers A exactly (no noise), and A's
    singular values are decay^i."""
    task = tasks.create("linear_modes", dim=12, outputs=6, decay=0.5, samples=400, seed=1)
    assert task.loss == "mse" and task.labels_train is None
    x, y = task.x_train.numpy(), task.y_train.numpy()
    a_t, residual, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    assert rank == 12 and np.allclose(x @ a_t, y, atol=1e-10)
    sv = np.linalg.svd(a_t.T, compute_uv=False)
    np.testing.assert_allclose(sv, 0.5 ** np.arange(6), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(task.x_test.numpy() @ a_t, task.y_test.numpy(), atol=1e-10)
    other = tasks.create("linear_modes", dim=12, outputs=6, decay=0.5, samples=400, seed=2)
    assert not np.allclose(other.y_train.numpy(), y)


@pytest.mark.parametrize("name", [n for n in tasks.names() if n not in ("mnist", "cifar10")])
def test_memory_estimate_reads_each_synthetic_task_size(name: str):
    """The budget's (inputs, outputs, samples) of a task, read from its parameters without
    loading data, are those of the data the task makes (image tasks need files: fixed sizes)."""
    from lrsim.budget import _task_dims
    from lrsim.config import Experiment

    exp = Experiment.model_validate({"name": "t", "task": {"name": name}})
    task = tasks.create(name)
    n = len(task.x_train) + len(task.x_test)
    assert _task_dims(exp) == (task.n_in, task.n_out, n)
