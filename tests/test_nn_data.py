"""Shard reading, split files and image sources of photoz.nn.data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from photoz.nn.data import MemmapImages, ResidentImages, ShardStore, SplitArrays, make_source


@pytest.fixture
def shard_dir(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.random((7, 5, 64, 64), dtype=np.float32)
    b = rng.random((4, 5, 64, 64), dtype=np.float32)
    np.save(tmp_path / "shard-0000.npy", a)
    np.save(tmp_path / "shard-0001.npy", b)
    return tmp_path, a, b


def test_read_in_requested_order(shard_dir):
    d, a, b = shard_dir
    store = ShardStore(d)
    shard = np.array([1, 0, 0, 1, 0])
    row = np.array([3, 6, 0, 0, 2])
    out = store.read(shard, row)
    want = np.stack([b[3], a[6], a[0], b[0], a[2]])
    assert np.array_equal(out, want)
    with pytest.raises(IndexError, match="shard-0001.npy"):
        store.read([1], [4])
    with pytest.raises(FileNotFoundError, match="shard 2"):
        store.read([2], [0])


def test_bad_shard_named(tmp_path):
    np.save(tmp_path / "shard-0000.npy", np.zeros((2, 5, 32, 32), np.float32))
    with pytest.raises(ValueError, match="shard-0000.npy"):
        ShardStore(tmp_path).read([0], [0])
    with pytest.raises(FileNotFoundError, match="no shard"):
        ShardStore(tmp_path / "nothing")


def test_split_npz_roundtrip_and_sources(shard_dir, tmp_path):
    d, a, b = shard_dir
    part = SplitArrays(np.array([10, 11, 12]), np.array([0, 1, 0]), np.array([1, 2, 3]),
                       np.array([0.1, 0.2, 0.3]), np.array([0.01, 0.02, 0.03], np.float32))
    SplitArrays.save_npz(tmp_path / "split.npz", {"train": part, "val": part.subset([0]), "test": part.subset([1, 2])})
    back = SplitArrays.load_npz(tmp_path / "split.npz")
    assert set(back) == {"train", "val", "test"}
    assert np.array_equal(back["test"].specObjID, [11, 12]) and np.allclose(back["train"].z, part.z)
    store = ShardStore(d)
    res = make_source(store, part, "cpu", resident=True)
    mm = make_source(store, part, "cpu", resident=False)
    assert isinstance(res, ResidentImages) and isinstance(mm, MemmapImages)
    idx = torch.tensor([2, 0])
    assert torch.equal(res.batch(idx), mm.batch(idx))
    assert torch.equal(res.batch(idx)[1], torch.from_numpy(a[1]))
    half = make_source(store, part, "cpu", resident=True, dtype=torch.bfloat16)
    assert half.images.dtype == torch.bfloat16 and half.batch(idx).dtype == torch.float32
