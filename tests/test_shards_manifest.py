"""Shards: layout, manifest verification, byte-identical reruns, failures table."""

import json

import numpy as np
import pandas as pd
import pytest

from photoz.dataset.shards import ManifestError, build_shards, open_shards, verify_manifest


def _inputs(tmp_path, n_groups=3, per=15):
    rng = np.random.default_rng(3)
    ids = rng.choice(10**9, size=n_groups * per, replace=False).astype(np.int64)
    cubes, fails = [], []
    for g in range(n_groups):
        sel = ids[g * per:(g + 1) * per]
        p = tmp_path / "cutouts" / f"group-{g}.npz"
        p.parent.mkdir(exist_ok=True)
        np.savez(p, specObjID=sel, cube=(sel[:, None, None, None] % 1000 + np.zeros((per, 5, 64, 64))).astype(np.float32),
                 nframes=np.ones((per, 5), np.int16), coverage=np.ones((per, 5), np.float32))
        cubes.append(p)
        f = tmp_path / "cutouts" / f"group-{g}-failures.csv"
        pd.DataFrame({"specObjID": [10**10 + g], "band": ["g"], "reason": ["unreadable frame: x"]}).to_csv(f, index=False)
        fails.append(f)
    cat = pd.DataFrame({"specObjID": ids[::-1], "ra": rng.random(ids.size), "dec": rng.random(ids.size),
                        "z": rng.random(ids.size) * 0.4})
    cat.to_parquet(tmp_path / "catalog.parquet")
    gal = pd.DataFrame({"specObjID": ids, "n_epochs": 1, "stripe82": rng.random(ids.size) < 0.3})
    gal.to_parquet(tmp_path / "galaxies.parquet")
    return cubes, fails


def _build(tmp_path, out, cubes, fails):
    return build_shards(cubes, tmp_path / "catalog.parquet", tmp_path / "galaxies.parquet", out, seed=7,
                        n_folds=5, validation_fraction=0.1, shard_size=16, failure_files=fails,
                        failures_out=out.parent / f"{out.name}-failures.csv")


def test_shards_layout_and_catalog(tmp_path):
    cubes, fails = _inputs(tmp_path)
    m = _build(tmp_path, tmp_path / "shards", cubes, fails)
    assert m["n_galaxies"] == 45 and m["n_shards"] == 3 and m["n_failed_galaxies"] == 3
    arrs = open_shards(tmp_path / "shards")
    assert [a.shape for a in arrs] == [(16, 5, 64, 64), (16, 5, 64, 64), (13, 5, 64, 64)]
    assert all(isinstance(a, np.memmap) and a.dtype == np.float32 for a in arrs)
    cat = pd.read_parquet(tmp_path / "shards" / "catalog.parquet")
    assert cat.specObjID.is_monotonic_increasing
    for c in ["shard", "row", "n_epochs", "stripe82", "nframes_u", "coverage_z", "fold", "val_4", "sel_nos82", "z"]:
        assert c in cat.columns
    # each row's cube is the galaxy's own (cube value encodes specObjID % 1000)
    for _, r in cat.iloc[[0, 17, 44]].iterrows():
        assert arrs[r["shard"]][r["row"], 2, 5, 5] == r["specObjID"] % 1000
    failures = pd.read_csv(tmp_path / "shards-failures.csv")
    assert list(failures.columns) == ["specObjID", "band", "reason"] and len(failures) == 3


def test_rerun_is_byte_identical(tmp_path):
    cubes, fails = _inputs(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    _build(tmp_path, a, cubes, fails)
    _build(tmp_path, b, cubes[::-1], fails)
    for name in ["manifest.json", "catalog.parquet", "shard-0000.npy", "shard-0002.npy"]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_verify_manifest_detects_damage(tmp_path):
    cubes, fails = _inputs(tmp_path)
    out = tmp_path / "shards"
    _build(tmp_path, out, cubes, fails)
    verify_manifest(out)
    raw = bytearray((out / "shard-0001.npy").read_bytes())
    raw[-1] ^= 0xFF
    (out / "shard-0001.npy").write_bytes(bytes(raw))
    verify_manifest(out, checksums=False)  # same shape: only the checksum sees it
    with pytest.raises(ManifestError, match="shard-0001.npy"):
        verify_manifest(out)
    (out / "shard-0002.npy").unlink()
    with pytest.raises(ManifestError, match="shard-0002.npy.*missing"):
        verify_manifest(out, checksums=False)


def test_duplicate_galaxy_across_groups_is_an_error(tmp_path):
    cubes, fails = _inputs(tmp_path)
    with pytest.raises(ValueError, match="more than one cutout file"):
        _build(tmp_path, tmp_path / "s", cubes + [cubes[0]], fails)
    m = json.loads(json.dumps(_build(tmp_path, tmp_path / "ok", cubes, fails)))
    assert m["shape"] == [5, 64, 64]
