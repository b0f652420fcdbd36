"""Training data: the 64x64x5 cubes in ``results/shards`` and a trial's split.

The core (``ShardStore``, ``SplitArrays``, the image sources) imports only
numpy and torch. Reading the catalog (Parquet) and choosing a trial's
train/validation/test galaxies needs pandas and ``photoz.dataset.splits``;
:func:`split_from_catalog` imports them lazily. On a bare GPU machine without
pandas, export the split once with ``save_npz`` and train from the ``.npz``
(``python -m photoz train --split-npz ...``).

Shard files are ``shard-{k:04d}.npy`` arrays ``(N, 5, 64, 64) float32`` read
with ``np.load(mmap_mode="r")``; a galaxy is addressed by ``(shard, row)``.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field

import numpy as np
import torch

from .model import IMAGE_SIZE, N_BANDS

CUBE = (N_BANDS, IMAGE_SIZE, IMAGE_SIZE)  # one galaxy's image cube

__all__ = ["ShardStore", "SplitArrays", "split_from_catalog", "ResidentImages", "MemmapImages", "make_source"]

_SHARD_RE = re.compile(r"shard-(\d+)\.npy$")


class ShardStore:
    """Memory-mapped access to ``shard_dir/shard-*.npy``."""

    def __init__(self, shard_dir):
        self.shard_dir = str(shard_dir)
        files = sorted(glob.glob(os.path.join(self.shard_dir, "shard-*.npy")))
        if not files:
            raise FileNotFoundError(f"no shard-*.npy files in {self.shard_dir}")
        self.files = {}
        for f in files:
            m = _SHARD_RE.search(f)
            if m:
                self.files[int(m.group(1))] = f
        self._maps = {}

    def shard(self, k):
        """The memory map of shard ``k``, checked for shape ``(N, 5, 64, 64)``."""
        if k not in self._maps:
            if k not in self.files:
                raise FileNotFoundError(f"shard {k} (shard-{k:04d}.npy) is not in {self.shard_dir}")
            a = np.load(self.files[k], mmap_mode="r")
            if a.ndim != 4 or a.shape[1:] != CUBE or a.dtype != np.float32:
                raise ValueError(f"{self.files[k]}: expected (N, {', '.join(map(str, CUBE))}) float32, found {a.shape} {a.dtype}")
            self._maps[k] = a
        return self._maps[k]

    def read(self, shard, row):
        """Images of the galaxies ``(shard[i], row[i])`` as a float32 array, in the given order."""
        shard, row = np.asarray(shard, dtype=np.int64), np.asarray(row, dtype=np.int64)
        out = np.empty((len(shard), *CUBE), dtype=np.float32)
        for k in np.unique(shard):
            sel = np.nonzero(shard == k)[0]
            a = self.shard(int(k))
            rows = row[sel]
            if rows.size and (rows.min() < 0 or rows.max() >= a.shape[0]):
                raise IndexError(f"{self.files[int(k)]}: row out of range (0..{a.shape[0] - 1})")
            order = np.argsort(rows, kind="stable")  # sequential reads
            out[sel[order]] = a[rows[order]]
        return out


@dataclass
class SplitArrays:
    """One part (train, val or test) of a trial's split: per-galaxy arrays."""

    specObjID: np.ndarray
    shard: np.ndarray
    row: np.ndarray
    z: np.ndarray
    ebv: np.ndarray
    extra: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.specObjID)

    def subset(self, idx):
        return SplitArrays(self.specObjID[idx], self.shard[idx], self.row[idx], self.z[idx], self.ebv[idx])

    @staticmethod
    def save_npz(path, parts):
        """Write ``{"train": SplitArrays, "val": ..., "test": ...}`` to one ``.npz``."""
        arrays = {}
        for name, p in parts.items():
            for col in ("specObjID", "shard", "row", "z", "ebv"):
                arrays[f"{name}_{col}"] = getattr(p, col)
        np.savez(path, **arrays)

    @staticmethod
    def load_npz(path):
        with np.load(path) as f:
            names = sorted({k.rsplit("_", 1)[0] for k in f.files if k.endswith("_specObjID")})
            if not names:
                raise ValueError(f"{path}: not a split file (no *_specObjID arrays)")
            return {n: SplitArrays(*(f[f"{n}_{c}"] for c in ("specObjID", "shard", "row", "z", "ebv"))) for n in names}


def split_from_catalog(catalog_path, trial_spec, fold):
    """The trial's train/val/test galaxies from ``results/shards/catalog.parquet``.

    Uses ``photoz.dataset.splits.trial_indices(catalog, trial_spec, fold)``
    (integer positions into the shard-order catalog). Needs pandas.
    """
    import pandas as pd

    from photoz.dataset.splits import trial_indices

    cat = pd.read_parquet(catalog_path)
    need = ["specObjID", "shard", "row", "z", "ebv"]
    missing = [c for c in need if c not in cat.columns]
    if missing:
        raise KeyError(f"{catalog_path}: missing column(s) {', '.join(missing)}")
    parts = dict(zip(("train", "val", "test"), trial_indices(cat, trial_spec, fold)))
    out = {}
    for name, idx in parts.items():
        idx = np.asarray(idx, dtype=np.int64)
        sub = cat.iloc[idx]
        z = sub["z"].to_numpy(np.float64)
        if not np.all(np.isfinite(z)):
            bad = sub["specObjID"].to_numpy()[~np.isfinite(z)][:5]
            raise ValueError(f"{catalog_path}: non-finite z for specObjID {bad.tolist()}")
        out[name] = SplitArrays(sub["specObjID"].to_numpy(np.int64), sub["shard"].to_numpy(np.int64),
                                sub["row"].to_numpy(np.int64), z, sub["ebv"].to_numpy(np.float32))
    if len(out["train"]) == 0:
        raise ValueError(f"{catalog_path}: trial selection {trial_spec.get('train')!r} fold {fold} has no training galaxies")
    return out


# --------------------------------------------------------------------------
# image sources used by the training loop


class ResidentImages:
    """All images of a split part held in (GPU or CPU) memory as one tensor."""

    def __init__(self, images, device, dtype=torch.float32):
        t = torch.from_numpy(np.ascontiguousarray(images))
        self.images = t.to(device=device, dtype=dtype)
        self.device = torch.device(device)

    @classmethod
    def from_store(cls, store, part, device, dtype=torch.float32, chunk=8192):
        """Fill a device tensor chunk by chunk (host memory holds one chunk at a time)."""
        self = cls.__new__(cls)
        self.device = torch.device(device)
        self.images = torch.empty((len(part), *CUBE), device=self.device, dtype=dtype)
        for i in range(0, len(part), chunk):
            a = store.read(part.shard[i:i + chunk], part.row[i:i + chunk])
            self.images[i:i + len(a)] = torch.from_numpy(a).to(self.device, dtype=dtype)
        return self

    def __len__(self):
        return self.images.shape[0]

    def batch(self, idx):
        """Images ``idx`` (a LongTensor or array) as float32 on the device."""
        idx = torch.as_tensor(idx, device=self.device, dtype=torch.long)
        return self.images.index_select(0, idx).float()


class MemmapImages:
    """Images read batch by batch from the shard memory maps (datasets too large for memory)."""

    def __init__(self, store, part, device):
        self.store, self.part, self.device = store, part, torch.device(device)

    def __len__(self):
        return len(self.part)

    def batch(self, idx):
        idx = np.asarray(torch.as_tensor(idx).cpu().numpy(), dtype=np.int64)
        a = self.store.read(self.part.shard[idx], self.part.row[idx])
        t = torch.from_numpy(a)
        if self.device.type == "cuda":
            t = t.pin_memory().to(self.device, non_blocking=True)
        return t


def make_source(store, part, device, resident="auto", dtype=torch.float32, max_resident_gb=None):
    """An image source for ``part``: resident in device memory if it fits, else memory-mapped.

    ``resident``: ``"auto"`` (resident when the images take less than
    ``max_resident_gb``; default 8 GB on the CPU, 80% of free memory on a GPU),
    ``True`` or ``False``.
    """
    device = torch.device(device)
    nbytes = len(part) * int(np.prod(CUBE)) * torch.tensor([], dtype=dtype).element_size()
    if resident == "auto":
        if max_resident_gb is None:
            if device.type == "cuda":
                free, _ = torch.cuda.mem_get_info(device)
                limit = 0.8 * free
            else:
                limit = 8e9
        else:
            limit = max_resident_gb * 1e9
        resident = nbytes <= limit
    if resident:
        return ResidentImages.from_store(store, part, device, dtype)
    return MemmapImages(store, part, device)
