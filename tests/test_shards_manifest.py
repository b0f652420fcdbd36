"""Shards: layout, manifest verification, byte-identical reruns, failures table."""

import json

import numpy as np
import pandas as pd
import pytest

from photoz.config import fill_section
from photoz.dataset.shards import LossFiles, ManifestError, build_shards, open_shards, verify_manifest

DATASET = fill_section("dataset", {"shard_size": 16, "n_folds": 5, "validation_fraction": 0.1})


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
    return build_shards(cubes, tmp_path / "catalog.parquet", tmp_path / "galaxies.parquet", out, DATASET, 7, 1.0,
                        LossFiles(fails, out.parent / f"{out.name}-failures.csv"))


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


def _losses(tmp_path, lost_per_group):
    from photoz.cutouts.losses import group_summary

    paths = []
    for g, lost in enumerate(lost_per_group):
        codes = {10**10 + 100 * g + k: ({"partial_coverage", "frame_unavailable"} if k == 0 else {"no_coverage"})
                 for k in range(lost)}
        p = tmp_path / "cutouts" / f"group-{g}-losses.json"
        p.write_text(json.dumps(group_summary(g, 15 + lost, 15, codes, [], 0)))
        paths.append(p)
    return paths


def test_losses_are_summed_per_stage_and_reason(tmp_path):
    cubes, fails = _inputs(tmp_path)
    out = tmp_path / "shards"
    build_shards(cubes, tmp_path / "catalog.parquet", tmp_path / "galaxies.parquet", out, DATASET, 7, 0.1,
                 LossFiles(fails, None, _losses(tmp_path, [1, 2, 0]), tmp_path / "losses.json"))
    d = json.loads((tmp_path / "losses.json").read_text())
    assert (d["n_galaxies"], d["n_kept"], d["n_lost"]) == (48, 45, 3)
    assert d["lost_fraction"] == pytest.approx(3 / 48)
    # a galaxy is counted once, under its earliest stage's reason
    assert d["stages"]["retrieval"] == {"n_lost": 2, "by_reason": {"frame_unavailable": 2}}
    assert d["stages"]["cutouts"]["n_lost"] == 1 and d["stages"]["cutouts"]["by_reason"]["no_coverage"] == 1


def test_loss_ceiling_fails_before_writing_anything(tmp_path, capsys):
    from photoz.cutouts.losses import LossCeilingError
    from photoz.dataset import shards

    cubes, fails = _inputs(tmp_path)
    losses = _losses(tmp_path, [1, 2, 3])  # 6 of 51 = 11.8%
    out = tmp_path / "shards"
    with pytest.raises(LossCeilingError, match=r"6 of 51 galaxies lost \(11.8%\).*max_lost_fraction = 0.1.*"
                                               r"3 no frame covers it in some band"):
        build_shards(cubes, tmp_path / "catalog.parquet", tmp_path / "galaxies.parquet", out, DATASET, 7, 0.1,
                     LossFiles(fails, None, losses, tmp_path / "losses.json"))
    assert not out.exists() and not (tmp_path / "losses.json").exists()
    cfg = {"seed": 7, "max_lost_fraction": 0.1, "dataset": DATASET}
    argv = ["--cutouts", *map(str, cubes), "--failures", *map(str, fails), "--catalog", str(tmp_path / "catalog.parquet"),
            "--galaxies", str(tmp_path / "galaxies.parquet"), "--config-json", json.dumps(cfg), "--out-dir", str(out),
            "--failures-out", str(tmp_path / "failures.csv"), "--losses", *map(str, losses),
            "--losses-out", str(tmp_path / "losses.json")]
    assert shards.main(argv) == 1
    assert not out.exists() and not (tmp_path / "failures.csv").exists()
    cfg["max_lost_fraction"] = 0.2
    argv[argv.index("--config-json") + 1] = json.dumps(cfg)
    assert shards.main(argv) == 0 and (out / "manifest.json").exists()
    assert json.loads((tmp_path / "losses.json").read_text())["n_lost"] == 6


def test_paper_reports_losses_per_stage_and_reason(tmp_path):
    from photoz.paper import loss_macros

    cubes, fails = _inputs(tmp_path)
    build_shards(cubes, tmp_path / "catalog.parquet", tmp_path / "galaxies.parquet", tmp_path / "shards", DATASET, 7,
                 0.1, LossFiles(fails, None, _losses(tmp_path, [1, 2, 0]), tmp_path / "losses.json"))
    m = loss_macros(tmp_path / "losses.json")
    assert (m["NLostRetrieval"], m["NLostCutouts"], m["NLostFrameIndex"], m["NLostTotal"]) == ("2", "1", "0", "3")
    assert m["LostPercent"] == "6.2" and m["MaxLostPercent"] == "10"
    assert m["LostReasons"] == ("2 a frame it needs is missing or corrupt at the source; "
                                "1 no frame covers it in some band")
    assert loss_macros(tmp_path / "absent.json")["NLostTotal"] == "--"
