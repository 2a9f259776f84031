"""retrograd.data: datasets, random_split, DataLoader and collate (against torch.utils.data),
resuming a loader, and transforms."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest
import torch
import torch.utils.data as tud

import retrograd as rg
from retrograd.data import (
    ConcatDataset,
    DataLoader,
    Dataset,
    Subset,
    TensorDataset,
    TransformedDataset,
    default_collate,
    default_convert,
    random_split,
)
from retrograd.data import transforms as T


def _np(x):
    return x.numpy() if isinstance(x, (rg.Tensor, torch.Tensor)) else np.asarray(x)


def _same(ours, theirs, dtype_too=True):
    """Recursively compare a retrograd structure with a torch one."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, rg.Tensor), type(ours)
        assert ours.shape == tuple(theirs.shape)
        if dtype_too:
            assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch."), (
                ours.dtype,
                theirs.dtype,
            )
        np.testing.assert_array_equal(_np(ours), theirs.numpy())
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs) and ours.keys() == theirs.keys()
        for k in theirs:
            _same(ours[k], theirs[k], dtype_too)
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _same(a, b, dtype_too)
    else:
        assert ours == theirs


class ListDataset(Dataset):
    """A dataset without array storage: the loader has to go sample by sample."""

    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


# -- Dataset, TensorDataset, Subset, ConcatDataset -------------------------------------------------
def test_dataset_base_is_abstract():
    with pytest.raises(NotImplementedError):
        Dataset()[0]
    with pytest.raises(NotImplementedError):
        len(Dataset())


def test_tensor_dataset_matches_torch():
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    y = np.arange(10, dtype=np.int64)
    ours = TensorDataset(rg.tensor(x), rg.tensor(y))
    theirs = tud.TensorDataset(torch.tensor(x), torch.tensor(y))
    assert len(ours) == len(theirs) == 10
    for i in (0, 3, -1):
        _same(ours[i], theirs[i])
    _same(ours[2:5], theirs[2:5])
    _same(ours[[1, 4]], theirs[[1, 4]])
    assert len(ours.tensors) == 2


def test_tensor_dataset_accepts_arrays_and_one_tensor():
    ds = TensorDataset(np.zeros((4, 2)))
    assert len(ds) == 4 and ds[0][0].shape == (2,)


def test_tensor_dataset_size_mismatch_as_torch():
    with pytest.raises(AssertionError) as theirs:
        tud.TensorDataset(torch.zeros(3, 2), torch.zeros(4))
    with pytest.raises(AssertionError) as ours:
        TensorDataset(rg.zeros(3, 2), rg.zeros(4))
    assert str(ours.value) == str(theirs.value) == "Size mismatch between tensors"
    with pytest.raises(ValueError, match="first"):
        TensorDataset(rg.tensor(1.0))


def test_subset_matches_torch():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    ours = Subset(TensorDataset(rg.tensor(x)), [7, 2, 5])
    theirs = tud.Subset(tud.TensorDataset(torch.tensor(x)), [7, 2, 5])
    assert len(ours) == len(theirs) == 3
    for i in range(3):
        _same(ours[i], theirs[i])
    _same(ours[[0, 2]], theirs[[0, 2]])
    with pytest.raises(IndexError):
        ours[3]


def test_concat_dataset_matches_torch():
    a, b = np.arange(3.0, dtype=np.float32), np.arange(10.0, 15.0, dtype=np.float32)
    ours = ConcatDataset([TensorDataset(rg.tensor(a)), TensorDataset(rg.tensor(b))])
    theirs = tud.ConcatDataset(
        [tud.TensorDataset(torch.tensor(a)), tud.TensorDataset(torch.tensor(b))]
    )
    assert len(ours) == len(theirs) == 8
    assert ours.cumulative_sizes == theirs.cumulative_sizes == [3, 8]
    for i in range(-8, 8):
        _same(ours[i], theirs[i])
    with pytest.raises(ValueError) as e_theirs:
        theirs[-9]
    with pytest.raises(ValueError) as e_ours:
        ours[-9]
    assert str(e_ours.value) == str(e_theirs.value)
    with pytest.raises(IndexError):
        ours[8]
    with pytest.raises(AssertionError, match="datasets should not be an empty iterable"):
        ConcatDataset([])
    with pytest.raises(AssertionError, match="datasets should not be an empty iterable"):
        tud.ConcatDataset([])


def test_dataset_add_concatenates():
    a = TensorDataset(rg.zeros(2, 1))
    b = ListDataset([(rg.ones(1),)] * 3)
    both = a + b
    assert isinstance(both, ConcatDataset) and len(both) == 5
    assert both[4][0].tolist() == [1.0]


# -- random_split ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "n,lengths",
    [
        (10, [3, 7]),
        (10, [0.5, 0.5]),
        (11, [0.5, 0.5]),
        (10, [0.33, 0.33, 0.34]),
        (7, [0.1, 0.2, 0.3, 0.4]),
        (1797, [0.8, 0.2]),
        (5, [1.0]),
        (4, [0.0, 1.0]),
    ],
)
def test_random_split_sizes_match_torch(n, lengths):
    data = list(range(n))
    with pytest.warns(UserWarning) if 0.0 in lengths else _nothing():
        ours = random_split(data, lengths, generator=rg.Generator().manual_seed(0))
    with pytest.warns(UserWarning) if 0.0 in lengths else _nothing():
        theirs = tud.random_split(data, lengths, generator=torch.Generator().manual_seed(0))
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    everything = sorted(i for s in ours for i in s.indices)
    assert everything == data  # disjoint and complete


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_random_split_errors_match_torch():
    data = list(range(10))
    for lengths in ([3, 3], [0.5, 0.6], [11]):
        with pytest.raises(ValueError) as theirs:
            tud.random_split(data, lengths)
        with pytest.raises(ValueError) as ours:
            random_split(data, lengths)
        assert str(ours.value) == str(theirs.value)
    with pytest.raises(ValueError) as theirs:
        tud.random_split(data, [1.5, -0.5])
    with pytest.raises(ValueError) as ours:
        random_split(data, [1.5, -0.5])
    assert str(ours.value) == str(theirs.value) == "Fraction at index 0 is not between 0 and 1"


def test_random_split_is_seeded():
    data = list(range(50))

    def split(seed):
        return [s.indices for s in random_split(data, [0.6, 0.4], rg.Generator().manual_seed(seed))]

    assert split(1) == split(1)
    assert split(1) != split(2)
    rg.manual_seed(5)
    first = [s.indices for s in random_split(data, [25, 25])]
    rg.manual_seed(5)
    assert first == [s.indices for s in random_split(data, [25, 25])]


# -- collate ---------------------------------------------------------------------------------------
def test_default_collate_tuples_arrays_numbers_match_torch():
    rows = [(np.full((2, 2), i, np.float32), i, np.int32(i), True, f"s{i}") for i in range(3)]
    ours = default_collate(rows)
    theirs = tud.default_collate(rows)
    assert isinstance(ours, list) and isinstance(theirs, list)  # a tuple collates to a list
    _same(ours, theirs)


def test_default_collate_python_floats_become_float32():
    ours = default_collate([1.5, 2.5])
    theirs = tud.default_collate([1.5, 2.5])
    assert theirs.dtype == torch.float64  # PyTorch's choice
    assert ours.dtype == rg.float32  # retrograd's default dtype, as the brief asks
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert default_collate([1, 2]).dtype == rg.int64


def test_default_collate_dicts_lists_namedtuples_match_torch():
    Point = collections.namedtuple("Point", "x y")
    rows = [
        {"image": np.ones(3, np.float64) * i, "label": i, "meta": {"id": [i, i + 1]}}
        for i in range(4)
    ]
    _same(default_collate(rows), tud.default_collate(rows))
    lists = [[np.int64(i), np.float32(i)] for i in range(3)]
    _same(default_collate(lists), tud.default_collate(lists))
    points = [Point(np.float32(i), i) for i in range(3)]
    ours, theirs = default_collate(points), tud.default_collate(points)
    assert isinstance(ours, Point)
    _same(ours.x, theirs.x)
    _same(ours.y, theirs.y)


def test_default_collate_tensors_match_torch():
    arrays = [np.random.default_rng(i).standard_normal((2, 3)).astype(np.float32) for i in range(4)]
    ours = default_collate([rg.tensor(a) for a in arrays])
    theirs = tud.default_collate([torch.tensor(a) for a in arrays])
    _same(ours, theirs)


def test_default_collate_errors_match_torch():
    with pytest.raises(RuntimeError) as theirs:
        tud.default_collate([[1, 2], [3]])
    with pytest.raises(RuntimeError) as ours:
        default_collate([[1, 2], [3]])
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(TypeError) as theirs:
        tud.default_collate([object(), object()])
    with pytest.raises(TypeError) as ours:
        default_collate([object(), object()])
    assert str(ours.value).split(";")[0] == str(theirs.value).split(";")[0]
    assert "found <class 'object'>" in str(ours.value)
    with pytest.raises(RuntimeError) as theirs:
        tud.default_collate([torch.zeros(2), torch.zeros(3)])
    with pytest.raises(RuntimeError) as ours:
        default_collate([rg.zeros(2), rg.zeros(3)])
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(TypeError, match="default_collate"):
        default_collate([np.array(["a"]), np.array(["b"])])


def test_default_convert():
    out = default_convert({"a": np.zeros(2), "b": (np.ones(1), 3)})
    assert isinstance(out["a"], rg.Tensor) and out["a"].dtype == rg.float64
    assert isinstance(out["b"], list) and out["b"][1] == 3


# -- DataLoader ------------------------------------------------------------------------------------
def _xy(n=10):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    y = np.arange(n, dtype=np.int64)
    return x, y


@pytest.mark.parametrize("n", [0, 1, 7, 10, 64])
@pytest.mark.parametrize("batch_size", [1, 3, 10, 100])
@pytest.mark.parametrize("drop_last", [False, True])
def test_loader_len_and_batches_match_torch(n, batch_size, drop_last):
    x, y = _xy(n)
    ours = DataLoader(TensorDataset(x, y), batch_size=batch_size, drop_last=drop_last)
    theirs = tud.DataLoader(
        tud.TensorDataset(torch.tensor(x), torch.tensor(y)),
        batch_size=batch_size,
        drop_last=drop_last,
    )
    assert len(ours) == len(theirs)
    ours_batches, theirs_batches = list(ours), list(theirs)
    assert len(ours_batches) == len(theirs_batches) == len(ours)
    for a, b in zip(ours_batches, theirs_batches):
        _same(a, b)


def test_loader_sample_path_matches_torch():
    rows = [({"x": np.full(2, i, np.float32)}, i, float(i)) for i in range(7)]
    ours = list(DataLoader(ListDataset(rows), batch_size=3))
    theirs = list(tud.DataLoader(rows, batch_size=3))
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs):
        _same(a[0], b[0])
        _same(a[1], b[1])
        np.testing.assert_array_equal(a[2].numpy(), b[2].numpy())


def test_loader_unbatched_and_custom_collate():
    x, y = _xy(4)
    samples = list(DataLoader(ListDataset([(x[i], int(y[i])) for i in range(4)]), batch_size=None))
    assert len(samples) == 4 and isinstance(samples[0][0], rg.Tensor) and samples[0][1] == 0
    batches = list(DataLoader(TensorDataset(x, y), batch_size=3, collate_fn=lambda b: len(b)))
    assert batches == [3, 1]


def test_loader_argument_errors():
    ds = TensorDataset(np.zeros((3, 1)))
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="batch_size should be a positive integer value"):
            DataLoader(ds, batch_size=bad)
    with pytest.raises(ValueError, match="drop_last should be a boolean value"):
        DataLoader(ds, drop_last=1)
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(ds, batch_size=None, drop_last=True)
    with pytest.raises(TypeError, match="Generator"):
        DataLoader(ds, shuffle=True, generator=torch.Generator())


def _order(loader):
    return np.concatenate([b[1].numpy() for b in loader]).tolist()


def test_shuffle_is_a_seeded_permutation():
    x, y = _xy(50)
    ds = TensorDataset(x, y)

    def loader(seed):
        return DataLoader(
            ds, batch_size=8, shuffle=True, generator=rg.Generator().manual_seed(seed)
        )

    a, b, c = loader(0), loader(0), loader(1)
    first = _order(a)
    assert sorted(first) == list(range(50)) and first != list(range(50))
    assert first == _order(b)
    assert first != _order(c)
    assert _order(a) != first  # a new epoch, a new order
    rg.manual_seed(3)  # no generator given: the default one
    first = _order(DataLoader(ds, batch_size=8, shuffle=True))
    rg.manual_seed(3)
    assert first == _order(DataLoader(ds, batch_size=8, shuffle=True))


class CountingTensorDataset(TensorDataset):
    calls = 0

    def __getitem__(self, index):
        CountingTensorDataset.calls += 1
        return super().__getitem__(index)


def test_fast_path_gathers_batches_without_a_sample_loop():
    x, y = _xy(40)
    counting = CountingTensorDataset(x, y)
    slow = ListDataset([(rg.tensor(x[i]), rg.tensor(y[i])) for i in range(40)])
    fast_batches = list(
        DataLoader(counting, 16, shuffle=True, generator=rg.Generator().manual_seed(2))
    )
    slow_batches = list(DataLoader(slow, 16, shuffle=True, generator=rg.Generator().manual_seed(2)))
    assert CountingTensorDataset.calls == 0
    assert len(fast_batches) == len(slow_batches) == 3
    for f, s in zip(fast_batches, slow_batches):
        assert isinstance(f, list) and isinstance(s, list)
        for a, b in zip(f, s):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    # a batch is a copy: changing it leaves the dataset alone
    fast_batches[0][0].data[:] = -1
    assert counting.tensors[0].numpy().min() >= 0


def test_fast_path_through_subset_concat_and_transform():
    x, y = _xy(12)
    base = TensorDataset(x, y)
    train, val = random_split(base, [8, 4], generator=rg.Generator().manual_seed(0))
    both = ConcatDataset([train, TensorDataset(x[:3] + 100, y[:3] + 100)])
    for ds in (train, val, both):
        idx = np.array([len(ds) - 1, 0, 2, 1])
        batch = ds.get_batch(idx)
        expected = default_collate([ds[int(i)] for i in idx])
        for a, b in zip(batch, expected):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert (
        ConcatDataset([base, ListDataset([(rg.zeros(2), rg.tensor(0))])]).get_batch([0, 12]) is None
    )

    shifted = TransformedDataset(train, lambda v: v + 1)
    batch = list(DataLoader(shifted, batch_size=8))[0]
    np.testing.assert_array_equal(batch[0].numpy(), train.get_batch(np.arange(8))[0].numpy() + 1)
    assert shifted[0][0].tolist() == (train[0][0] + 1).tolist()


# -- resuming a loader -----------------------------------------------------------------------------
def _batches(it, k=None):
    out = []
    for b in it:
        out.append(b[1].numpy().tolist())
        if k is not None and len(out) == k:
            break
    return out


@pytest.mark.parametrize("shuffle", [True, False])
def test_resume_mid_epoch_continues_the_same_order(shuffle):
    x, y = _xy(23)
    ds = TensorDataset(x, y)
    gen = rg.Generator().manual_seed(7)
    loader = DataLoader(ds, batch_size=5, shuffle=shuffle, generator=gen)
    _batches(loader)  # epoch 0
    it = iter(loader)
    head = _batches(it, 2)  # two batches into epoch 1
    state = json.loads(json.dumps(loader.state_dict()))  # it goes into a checkpoint's JSON
    assert state["epoch"] == 1 and state["batches_done"] == 2
    after = gen.numpy.random()  # something else draws from the same generator meanwhile
    tail = _batches(it)
    next_epoch = _batches(loader)

    gen2 = rg.Generator().manual_seed(12345)
    resumed = DataLoader(ds, batch_size=5, shuffle=shuffle, generator=gen2)
    resumed.load_state_dict(state)
    if shuffle:  # the generator is where the original one was
        assert gen2.get_state() == state["generator_state"]
    it2 = iter(resumed)
    if shuffle:
        assert gen2.numpy.random() == after
    assert _batches(it2) == tail
    assert _batches(resumed) == next_epoch
    assert sorted(sum(head + tail, [])) == list(range(23))
    # saving again inside the resumed epoch still works
    resumed.load_state_dict(state)
    it3 = iter(resumed)
    _batches(it3, 1)
    again = DataLoader(ds, batch_size=5, shuffle=shuffle, generator=rg.Generator())
    again.load_state_dict(resumed.state_dict())
    assert _batches(again) == tail[1:]


def test_resume_at_an_epoch_boundary():
    x, y = _xy(10)
    loader = DataLoader(
        TensorDataset(x, y), 4, shuffle=True, generator=rg.Generator().manual_seed(0)
    )
    _batches(loader)
    state = loader.state_dict()
    assert state["epoch"] == 1 and state["batches_done"] == 0
    expected = [_batches(loader), _batches(loader)]
    fresh = DataLoader(TensorDataset(x, y), 4, shuffle=True, generator=rg.Generator())
    fresh.load_state_dict(state)
    assert [_batches(fresh), _batches(fresh)] == expected
    # every batch yielded, the loop not yet ended: the epoch counts as done
    it = iter(loader)
    _batches(it, 3)
    assert loader.state_dict()["batches_done"] == 0
    assert loader.state_dict()["epoch"] == 4


# -- transforms ------------------------------------------------------------------------------------
def _images(n=6, c=1, h=8, w=8):
    rng = np.random.default_rng(0)
    return rng.random((n, c, h, w), dtype=np.float32) + 0.5  # no zeros: fill is visible


def _gen(seed=0):
    return rg.Generator().manual_seed(seed)


def test_random_shift_is_a_translation_with_fill():
    x = _images()
    out = T.RandomShift(2, generator=_gen()).batch(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    for n in range(len(x)):
        matches = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                ref = np.zeros_like(x[n])
                src = x[n][:, max(0, -dy) : 8 - max(0, dy), max(0, -dx) : 8 - max(0, dx)]
                ref[:, max(0, dy) : 8 - max(0, -dy), max(0, dx) : 8 - max(0, -dx)] = src
                matches.append(np.array_equal(out[n], ref))
        assert sum(matches) == 1
    np.testing.assert_array_equal(T.RandomShift(0).batch(x), x)


def test_random_transforms_are_deterministic_per_generator():
    x = _images(32)
    for make in (
        lambda g: T.RandomShift(2, generator=g),
        lambda g: T.RandomCrop(6, padding=1, generator=g),
        lambda g: T.RandomHorizontalFlip(0.5, generator=g),
        lambda g: T.GaussianNoise(0.1, generator=g),
    ):
        a, b, c = make(_gen(1)).batch(x), make(_gen(1)).batch(x), make(_gen(2)).batch(x)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
        single = make(_gen(1))(x[0])  # one sample, no batch axis
        assert single.shape == a.shape[1:]


def test_random_crop_windows_of_the_padded_image():
    x = _images(5, c=2, h=7, w=9)
    out = T.RandomCrop((5, 6), padding=2, generator=_gen()).batch(x)
    assert out.shape == (5, 2, 5, 6)
    padded = np.pad(x, [(0, 0), (0, 0), (2, 2), (2, 2)])
    for n in range(5):
        found = [
            np.array_equal(out[n], padded[n, :, t : t + 5, left : left + 6])
            for t in range(7)
            for left in range(8)
        ]
        assert any(found)
    with pytest.raises(ValueError, match="larger than input image size"):
        T.RandomCrop(12).batch(x)
    assert T.RandomCrop(8, padding=(1, 2, 3, 4), generator=_gen())(x[0]).shape == (2, 8, 8)
    edge = T.RandomCrop(7, padding=3, padding_mode="edge", generator=_gen()).batch(x)
    assert edge.min() > 0  # edge padding copies pixels, never zeros
    with pytest.raises(ValueError, match="images"):
        T.RandomCrop(2).batch(np.zeros((4, 64)))


def test_random_horizontal_flip():
    x = _images(40)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0).batch(x), x[..., ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0.0).batch(x), x)
    out = T.RandomHorizontalFlip(0.5, generator=_gen()).batch(x)
    flipped = [np.array_equal(out[n], x[n, ..., ::-1]) for n in range(40)]
    kept = [np.array_equal(out[n], x[n]) for n in range(40)]
    assert all(f != k for f, k in zip(flipped, kept))
    assert 5 < sum(flipped) < 35
    with pytest.raises(ValueError):
        T.RandomHorizontalFlip(1.5)


def test_gaussian_noise():
    x = np.zeros((200, 1, 10, 10), np.float32)
    out = T.GaussianNoise(0.5, generator=_gen()).batch(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    assert abs(out.std() - 0.5) < 0.02 and abs(out.mean()) < 0.02
    clipped = T.GaussianNoise(0.5, clip=(0.0, 1.0), generator=_gen()).batch(x)
    assert clipped.min() >= 0 and clipped.max() <= 1
    assert T.GaussianNoise(0.1)(np.zeros(3, np.uint8)).dtype == np.float32


def test_standardize_fit_matches_sklearn():
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((100, 5)) * [1, 2, 3, 4, 5] + [5, 4, 3, 2, 1]).astype(np.float32)
    x[:, 2] = 7.0  # a constant feature
    scale = T.Standardize.fit(x)
    out = scale.batch(x)
    ref = StandardScaler().fit_transform(x.astype(np.float64))
    np.testing.assert_allclose(out, ref, atol=1e-5)
    assert out.dtype == np.float32 and scale.mean.shape == (5,)

    images = _images(50, c=3)
    per_channel = T.Standardize.fit(images, dim=(0, 2, 3))
    assert per_channel.mean.shape == (3, 1, 1)
    z = per_channel.batch(images)
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1, atol=1e-4)
    overall = T.Standardize.fit(images, dim=None)
    assert overall.mean.shape == () and abs(overall.batch(images).std() - 1) < 1e-4
    with pytest.raises(ValueError, match="sample axis"):
        T.Standardize.fit(images, dim=1)
    with pytest.raises(ValueError, match="zero"):
        T.Standardize(0.0, 0.0)


def test_transforms_keep_tensors_tensors_and_compose():
    x = _images(4)
    pipeline = T.Compose(
        [T.Standardize(0.5, 0.25), T.RandomShift(1, generator=_gen()), lambda v: v * 2]
    )
    out = pipeline.batch(rg.tensor(x))
    assert isinstance(out, rg.Tensor) and out.shape == x.shape and out.dtype == rg.float32
    single = pipeline(x[0])
    assert isinstance(single, np.ndarray) and single.shape == x.shape[1:]
    assert "RandomShift" in repr(pipeline)
    image = np.full((2, 2), 255, np.uint8)
    t = T.ToTensor()(image)
    assert isinstance(t, rg.Tensor) and t.dtype == rg.float32 and t.numpy().max() == 1.0
    assert T.ToTensor().batch(np.zeros((2, 3))).dtype == rg.float32


def test_loader_applies_batch_transforms_vectorised():
    x = _images(10)
    ds = TransformedDataset(TensorDataset(x, np.arange(10)), T.RandomHorizontalFlip(1.0))
    xb, yb = next(iter(DataLoader(ds, batch_size=10)))
    np.testing.assert_array_equal(xb.numpy(), x[..., ::-1])
    assert yb.tolist() == list(range(10))
