"""retrograd.data.datasets: synthetic data, scikit-learn's digits and iris, the IDX reader and
Fashion-MNIST (on Debian's files when they are installed)."""

from __future__ import annotations

import gzip
import os
import struct
import sys

import numpy as np
import pytest

import retrograd as rg
from retrograd.data import DataLoader, TensorDataset
from retrograd.data import transforms as T
from retrograd.data.datasets import (
    FASHION_MNIST_CLASSES,
    FashionMNIST,
    IDXError,
    circles,
    fashion_mnist,
    gaussian_blobs,
    load_digits,
    load_iris,
    read_idx,
    regression_curve,
    spirals,
    two_moons,
    xor,
)

# -- synthetic ----------------------------------------------------------------------------------
CLASSIFIERS = {
    "xor": (xor, 2, 2),
    "two_moons": (two_moons, 2, 2),
    "circles": (circles, 2, 2),
    "spirals": (lambda **kw: spirals(n_arms=3, **kw), 2, 3),
    "gaussian_blobs": (lambda **kw: gaussian_blobs(centers=4, n_features=5, **kw), 5, 4),
}


def _xy(ds):
    x, y = ds.tensors
    return x.numpy(), y.numpy()


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
@pytest.mark.parametrize("n", [1, 7, 101])
def test_classification_shapes_dtypes_and_balance(name, n):
    make, features, classes = CLASSIFIERS[name]
    ds = make(n_samples=n, seed=0)
    assert isinstance(ds, TensorDataset) and len(ds) == n
    x, y = _xy(ds)
    assert x.shape == (n, features) and x.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    counts = np.bincount(y, minlength=classes)
    assert len(counts) == classes and counts.max() - counts.min() <= 1  # balanced


@pytest.mark.parametrize("name", sorted(CLASSIFIERS) + ["regression_curve"])
def test_synthetic_is_deterministic_per_seed(name):
    make = CLASSIFIERS[name][0] if name in CLASSIFIERS else regression_curve
    a, b = _xy(make(n_samples=64, seed=3)), _xy(make(n_samples=64, seed=3))
    c = _xy(make(n_samples=64, seed=4))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])
    # a retrograd Generator seeded the same way draws the same data
    g = _xy(make(n_samples=64, generator=rg.Generator().manual_seed(3)))
    np.testing.assert_array_equal(g[0], a[0])
    rg.manual_seed(11)  # neither: the default generator
    d = _xy(make(n_samples=64))
    rg.manual_seed(11)
    np.testing.assert_array_equal(_xy(make(n_samples=64))[0], d[0])
    with pytest.raises(ValueError, match="not both"):
        make(n_samples=4, seed=1, generator=rg.Generator())


def test_synthetic_argument_errors():
    with pytest.raises(ValueError, match="n_samples"):
        two_moons(0)
    with pytest.raises(TypeError, match="n_samples"):
        two_moons(10.0)
    with pytest.raises(ValueError, match="noise"):
        circles(10, noise=-1)
    with pytest.raises(ValueError, match="factor"):
        circles(10, factor=1.5)
    with pytest.raises(ValueError, match="kind"):
        regression_curve(10, kind="tan")
    with pytest.raises(TypeError, match="Generator"):
        xor(4, generator=42)


def test_xor_truth_table():
    x, y = _xy(xor(4, noise=0, shuffle=False))
    assert x.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert y.tolist() == [0, 1, 1, 0]
    x, y = _xy(xor(400, noise=0.1, seed=0))
    np.testing.assert_array_equal(y, (x[:, 0] > 0.5) != (x[:, 1] > 0.5))


def test_two_moons_and_circles_match_sklearn():
    sk = pytest.importorskip("sklearn.datasets")
    for n in (10, 11, 200):
        x, y = _xy(two_moons(n, noise=0, shuffle=False))
        ref_x, ref_y = sk.make_moons(n, noise=None, shuffle=False)
        np.testing.assert_allclose(x, ref_x, atol=1e-6)
        np.testing.assert_array_equal(y, ref_y)
        x, y = _xy(circles(n, noise=0, factor=0.5, shuffle=False))
        ref_x, ref_y = sk.make_circles(n, noise=None, factor=0.5, shuffle=False)
        np.testing.assert_allclose(x, ref_x, atol=1e-6)
        np.testing.assert_array_equal(y, ref_y)


def test_circles_radii_and_moons_spread():
    x, y = _xy(circles(300, noise=0, factor=0.3, seed=0))
    r = np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(r[y == 0], 1, atol=1e-6)
    np.testing.assert_allclose(r[y == 1], 0.3, atol=1e-6)
    x, y = _xy(circles(2000, noise=0.05, seed=0))
    r = np.linalg.norm(x, axis=1)
    assert abs(r[y == 0].mean() - 1) < 0.01 and abs(r[y == 1].mean() - 0.5) < 0.01
    x, y = _xy(two_moons(1000, noise=0.1, seed=0))
    assert x[y == 0, 1].mean() > x[y == 1, 1].mean() + 0.5  # the upper moon is class 0


def test_spirals_arms():
    k, turns = 3, 1.25
    x, y = _xy(spirals(300, n_arms=k, noise=0, turns=turns, shuffle=False))
    r = np.linalg.norm(x, axis=1)
    assert r.max() <= 1 + 1e-6 and r.min() < 1e-6
    on = r > 1e-3
    theta = np.arctan2(x[on, 1], x[on, 0])
    expected = 2 * np.pi * (y[on] / k + turns * r[on])
    np.testing.assert_allclose(np.cos(theta - expected), 1, atol=1e-4)


def test_gaussian_blobs_centers():
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, -10.0]])
    x, y = _xy(gaussian_blobs(3000, centers=centers, noise=0.5, seed=0))
    for c in range(3):
        np.testing.assert_allclose(x[y == c].mean(axis=0), centers[c], atol=0.05)
        np.testing.assert_allclose(x[y == c].std(axis=0), 0.5, atol=0.05)
    x, y = _xy(gaussian_blobs(100, centers=2, noise=0, seed=0))
    assert len(np.unique(x, axis=0)) == 2 and np.all(np.abs(x) <= 10)


def test_regression_curves():
    for kind, fn in (
        ("sin", np.sin),
        ("linear", lambda v: 2 * v + 1),
        ("cubic", lambda v: v**3 - v),
    ):
        ds = regression_curve(200, noise=0, kind=kind, seed=0)
        x, y = _xy(ds)
        assert x.shape == y.shape == (200, 1) and x.dtype == y.dtype == np.float32
        np.testing.assert_allclose(y, fn(x.astype(np.float64)), atol=1e-5)
    x, y = _xy(regression_curve(5000, noise=0.2, seed=1))
    assert abs(x.min() + np.pi) < 0.01 and abs(x.max() - np.pi) < 0.01
    assert abs((y - np.sin(x)).std() - 0.2) < 0.01
    x, _ = _xy(regression_curve(100, kind="linear", x_range=(5, 6), seed=0))
    assert x.min() >= 5 and x.max() <= 6


def test_synthetic_trains_through_the_loader():
    ds = two_moons(64, seed=0)
    batches = list(DataLoader(ds, batch_size=16, shuffle=True, generator=rg.Generator()))
    assert len(batches) == 4 and batches[0][0].shape == (16, 2) and batches[0][1].dtype == rg.int64


# -- scikit-learn's digits and iris -------------------------------------------------------------
def test_digits_splits_ranges_and_stratification():
    sk = pytest.importorskip("sklearn.datasets")
    train, test = load_digits(seed=0)
    assert (len(train), len(test)) == (1437, 360)
    x, y = _xy(train)
    assert x.shape == (1437, 64) and x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() == 0 and x.max() == 1
    all_y = np.concatenate([y, _xy(test)[1]])
    assert np.array_equal(
        np.bincount(all_y),
        np.bincount(sk.load_digits().target),
    )
    overall = np.bincount(all_y) / len(all_y)
    test_counts = np.bincount(_xy(test)[1], minlength=10)
    assert np.all(np.abs(test_counts - overall * 360) <= 1)  # stratified
    images, _ = load_digits(seed=0, flatten=False)
    xi = images.tensors[0].numpy()
    assert xi.shape == (1437, 1, 8, 8)
    np.testing.assert_array_equal(xi.reshape(1437, 64), x)
    other, _ = load_digits(seed=1)
    assert not np.array_equal(_xy(other)[0], x)
    again, _ = load_digits(seed=0)
    np.testing.assert_array_equal(_xy(again)[0], x)
    z_train, z_test = load_digits(seed=0, standardize=True, flatten=False)
    z = z_train.tensors[0].numpy().reshape(1437, 64)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
    assert z_test.tensors[0].shape == (360, 1, 8, 8)
    small, big = load_digits(test_size=0.5)
    assert len(small) + len(big) == 1797 and abs(len(small) - len(big)) <= 1


def test_iris_splits_and_standardize():
    pytest.importorskip("sklearn")
    train, test = load_iris(seed=0)
    assert (len(train), len(test)) == (120, 30)
    x, y = _xy(train)
    assert x.shape == (120, 4) and x.dtype == np.float32
    assert np.bincount(_xy(test)[1]).tolist() == [10, 10, 10]
    assert np.bincount(y).tolist() == [40, 40, 40]
    z, _ = _xy(load_iris(seed=0, standardize=True)[0])
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-5)


def test_missing_sklearn_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    for load in (load_digits, load_iris):
        with pytest.raises(ImportError, match=r"pip install retrograd\[data\]"):
            load()


# -- IDX reader ------------------------------------------------------------------------------------
CODES = {
    np.uint8: 0x08,
    np.int8: 0x09,
    np.int16: 0x0B,
    np.int32: 0x0C,
    np.float32: 0x0D,
    np.float64: 0x0E,
}


def _idx_bytes(arr: np.ndarray) -> bytes:
    code = CODES[arr.dtype.type]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def _write(path, arr, compress=False, data=None):
    data = _idx_bytes(arr) if data is None else data
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", sorted(CODES, key=lambda t: t.__name__))
def test_read_idx_round_trips(tmp_path, compress, dtype):
    rng = np.random.default_rng(0)
    labels = (rng.integers(0, 100, size=17)).astype(dtype)
    images = (rng.integers(0, 100, size=(5, 4, 3)) - 50).astype(dtype)
    for name, arr in (("labels", labels), ("images", images)):
        out = read_idx(_write(tmp_path / (name + (".gz" if compress else "")), arr, compress))
        assert out.dtype == np.dtype(dtype) and out.dtype.isnative
        assert out.flags.writeable
        np.testing.assert_array_equal(out, arr)


def test_read_idx_detects_gzip_by_content(tmp_path):
    arr = np.arange(6, dtype=np.uint8).reshape(2, 3)
    path = _write(tmp_path / "no-extension", arr, compress=True)
    np.testing.assert_array_equal(read_idx(path), arr)
    np.testing.assert_array_equal(read_idx(os.fspath(path)), arr)


def test_read_idx_rejects_malformed_files(tmp_path):
    good = _idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))
    cases = {
        "bad magic": (b"\x01\x02" + good[2:], "bad magic number 0x01020802"),
        "text": (b"hello world", "bad magic number"),
        "type": (b"\x00\x00\x07\x02" + good[4:], "unknown IDX data type code 0x07"),
        "zero dims": (b"\x00\x00\x08\x00", "0 dimensions"),
        "short": (b"\x00\x00", "shorter than the 4-byte magic"),
        "header": (good[:9], "truncated IDX header"),
        "data": (good[:-1], "truncated: header gives shape (3, 4) of uint8 (12 bytes"),
        "trailing": (good + b"\x00", "trailing bytes"),
    }
    for name, (data, message) in cases.items():
        for compress in (False, True):
            path = _write(tmp_path / name.replace(" ", "_"), None, compress, data=data)
            with pytest.raises(IDXError, match=message.replace("(", r"\(").replace(")", r"\)")):
                read_idx(path)
    broken = gzip.compress(good)[:-10]
    with pytest.raises(IDXError, match="gzip"):
        read_idx(_write(tmp_path / "broken.gz", None, data=broken))
    assert issubclass(IDXError, ValueError)


# -- Fashion-MNIST --------------------------------------------------------------------------------
def _fake_fashion(folder, n=5, compress=True, train=True, labels=None):
    folder.mkdir(parents=True, exist_ok=True)
    prefix = "train" if train else "t10k"
    ext = ".gz" if compress else ""
    images = (np.arange(n * 28 * 28) % 256).astype(np.uint8).reshape(n, 28, 28)
    labels = np.arange(n, dtype=np.uint8) % 10 if labels is None else labels
    _write(folder / f"{prefix}-images-idx3-ubyte{ext}", images, compress)
    _write(folder / f"{prefix}-labels-idx1-ubyte{ext}", labels, compress)
    return images, labels


def test_fashion_mnist_missing_names_both_places(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError) as e:
        FashionMNIST(root=tmp_path / "nowhere")
    message = str(e.value)
    assert str(tmp_path / "nowhere") in message and str(tmp_path / "absent") in message
    assert "apt-get install dataset-fashion-mnist" in message
    with pytest.raises(FileNotFoundError, match="root \\(not given\\)"):
        FashionMNIST()


@pytest.mark.parametrize("compress", [False, True])
def test_fashion_mnist_from_root(tmp_path, monkeypatch, compress):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", str(tmp_path / "absent"))
    images, labels = _fake_fashion(tmp_path, n=6, compress=compress, train=False)
    ds = FashionMNIST(root=tmp_path, train=False)
    assert len(ds) == 6 and ds.data.dtype == np.uint8
    x, y = ds[2]
    assert x.shape == (1, 28, 28) and x.dtype == rg.float32 and y == 2
    np.testing.assert_allclose(x.numpy()[0], images[2] / 255, atol=1e-7)
    flat = FashionMNIST(root=tmp_path, train=False, flatten=True)
    assert flat[2][0].shape == (784,)
    with pytest.raises(FileNotFoundError):
        FashionMNIST(root=tmp_path, train=True)
    # torchvision's layout under root works too
    _fake_fashion(tmp_path / "tv" / "FashionMNIST" / "raw", n=3, compress=compress)
    assert len(FashionMNIST(root=tmp_path / "tv")) == 3


def test_fashion_mnist_root_comes_before_debian(tmp_path):
    _fake_fashion(tmp_path, n=4, train=False)
    assert len(FashionMNIST(root=tmp_path, train=False)) == 4


def test_fashion_mnist_inconsistent_files(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", str(tmp_path / "absent"))
    _fake_fashion(tmp_path, n=5, labels=np.zeros(4, np.uint8))
    with pytest.raises(IDXError, match="expected 5 labels"):
        FashionMNIST(root=tmp_path)
    _fake_fashion(tmp_path, n=5, labels=np.full(5, 10, np.uint8))
    with pytest.raises(IDXError, match="out of range"):
        FashionMNIST(root=tmp_path)


def test_fashion_mnist_batches_equal_samples(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", str(tmp_path / "absent"))
    _fake_fashion(tmp_path, n=10)
    for flatten in (False, True):
        ds = FashionMNIST(root=tmp_path, flatten=flatten)
        batch = next(iter(DataLoader(ds, batch_size=4)))
        slow = next(iter(DataLoader(ds, batch_size=4, collate_fn=_collate)))
        for a, b in zip(batch, slow):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    aug = FashionMNIST(root=tmp_path, transform=T.RandomHorizontalFlip(1.0), flatten=True)
    xb, _ = next(iter(DataLoader(aug, batch_size=10)))
    np.testing.assert_array_equal(
        xb.numpy().reshape(10, 28, 28), aug.data[..., ::-1] / np.float32(255)
    )
    np.testing.assert_array_equal(aug[3][0].numpy(), xb.numpy()[3])
    target = FashionMNIST(root=tmp_path, target_transform=lambda t: t + 100)
    assert next(iter(DataLoader(target, batch_size=3)))[1].tolist() == [100, 101, 102]


def _collate(batch):
    from retrograd.data import default_collate

    return default_collate(batch)


DEBIAN = pytest.mark.skipif(
    not os.path.isdir(fashion_mnist.DEBIAN_DIR),
    reason=f"{fashion_mnist.DEBIAN_DIR} absent (apt-get install dataset-fashion-mnist)",
)


@pytest.fixture(scope="module")
def fashion_train():
    return FashionMNIST(train=True)


@DEBIAN
def test_fashion_mnist_debian_train(fashion_train):
    ds = fashion_train
    assert len(ds) == 60000 and ds.data.shape == (60000, 28, 28) and ds.data.dtype == np.uint8
    assert np.bincount(ds.targets).tolist() == [6000] * 10
    assert ds.classes == list(FASHION_MNIST_CLASSES) and len(ds.classes) == 10
    x, y = ds[0]
    assert x.shape == (1, 28, 28) and x.dtype == rg.float32 and isinstance(y, int)
    assert ds.classes[y] == "Ankle boot"  # the well-known first training image
    xb, yb = next(iter(DataLoader(ds, batch_size=256, shuffle=True, generator=rg.Generator())))
    assert xb.shape == (256, 1, 28, 28) and xb.dtype == rg.float32 and yb.dtype == rg.int64
    v = xb.numpy()
    assert v.min() >= 0 and v.max() <= 1 and v.max() == 1.0


@DEBIAN
def test_fashion_mnist_debian_test_split():
    ds = FashionMNIST(train=False, flatten=True)
    assert len(ds) == 10000 and np.bincount(ds.targets).tolist() == [1000] * 10
    full = ds.as_tensor_dataset()
    x, y = full.tensors
    assert x.shape == (10000, 784) and x.dtype == rg.float32 and y.dtype == rg.int64
    assert 0 <= x.numpy().min() and x.numpy().max() <= 1
    np.testing.assert_array_equal(x.numpy()[17], ds[17][0].numpy())
