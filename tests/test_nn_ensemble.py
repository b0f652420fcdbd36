"""Ensemble PDFs and their statistics; the train -> predict -> ensemble commands end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pathlib import Path

from photoz import bins, metrics
from photoz.nn.ensemble import build_table, ensemble_fold, write_parquet

EDGES = bins.edges(180, 0.0, 0.4)  # the default's bins (config bins)
MID = bins.centres(EDGES)


def gaussian_pdfs(mu, sigma):
    cdf = 0.5 * (1 + np.vectorize(__import__("math").erf)((EDGES[None, :] - mu[:, None]) / (sigma * np.sqrt(2))))
    p = np.diff(cdf, axis=1)
    return p / p.sum(axis=1, keepdims=True)


def test_point_estimate_uses_midpoints():
    pdf = np.zeros((3, 180))
    pdf[[0, 1, 2], [0, 57, 179]] = 1.0
    res = ensemble_fold(pdf[None], np.array([0.001, MID[57] + 0.0005, 0.399]), EDGES)
    np.testing.assert_allclose(res["z_phot"], MID[[0, 57, 179]])
    # one full bin: the 68% interval of a uniform bin is 68% of its width
    np.testing.assert_allclose(res["width68"], 0.68 * 0.4 / 180, rtol=1e-9)
    # PIT inside a uniform bin is linear; CRPS of a uniform bin of width w at its centre is w/12
    assert res["pit"][1] == pytest.approx(0.5 + 0.0005 / (0.4 / 180))
    zc = np.array([MID[0], MID[57], MID[179]])
    assert np.allclose(ensemble_fold(pdf[None], zc, EDGES)["crps"], (0.4 / 180) / 12)


def test_average_of_members_and_member_pits():
    rng = np.random.default_rng(0)
    a = rng.random((5, 180))
    b = rng.random((5, 180))
    a /= a.sum(1, keepdims=True)
    b /= b.sum(1, keepdims=True)
    z = rng.uniform(0, 0.4, 5)
    res = ensemble_fold(np.stack([a, b]), z, EDGES)
    np.testing.assert_allclose(res["pdf"], (a + b) / 2, rtol=1e-6)
    np.testing.assert_allclose(res["pit_members"][:, 0], metrics.pit(a, z, EDGES), rtol=1e-6)
    np.testing.assert_allclose(res["pit"], res["pit_members"].mean(axis=1), rtol=1e-5)  # PIT is linear in the PDF
    assert res["pdf"].dtype == np.float32 and res["pit_members"].shape == (5, 2)


def test_calibrated_gaussians():
    rng = np.random.default_rng(1)
    n, sigma = 4000, 0.02
    mu = rng.uniform(0.1, 0.3, n)
    z = mu + sigma * rng.standard_normal(n)
    res = ensemble_fold(gaussian_pdfs(mu, sigma)[None], z, EDGES)
    density, _, _ = metrics.pit_histogram(res["pit"], 10)
    assert np.all(np.abs(density - 1.0) < 0.25)                               # calibrated -> flat PIT
    assert np.median(res["width68"]) == pytest.approx(2 * 0.9945 * sigma, rel=0.03)
    # CRPS of a Gaussian forecast: sigma (x (2 Phi(x) - 1) + 2 phi(x) - 1/sqrt(pi)); its mean over
    # x ~ N(0, 1) is sigma / sqrt(pi)
    assert np.mean(res["crps"]) == pytest.approx(sigma / np.sqrt(np.pi), rel=0.03)
    assert np.std(res["z_phot"] - mu) < 1e-3


def _reference_inputs():
    """Two members' PDFs of 64 galaxies: random, point masses in the end bins, z_spec on and off the grid."""
    rng = np.random.default_rng(17)
    p = rng.random((2, 64, 180)) ** 8
    p[:, :4] = 0.0
    p[:, 0, 0] = p[:, 1, 179] = p[:, 2, 90] = 1.0
    p[:, 3, 100:103] = 1.0
    z = rng.uniform(0.0, 0.4, 64)
    z[:6] = [0.0, 0.4, 0.2, 0.41, -0.01, 0.3999]
    return p, z


def test_statistics_unchanged_since_one_pdf_module():
    """The ensemble's statistics equal those of the former ``nn/pdfstats.py`` (frozen in tests/data).

    ``ensemble_reference.npz`` was written by the ensemble code before it moved to ``photoz.metrics``;
    z_phot is bit-identical, the others differ by float64 rounding at most.
    """
    p, z = _reference_inputs()
    res = ensemble_fold(p, z, EDGES)
    with np.load(Path(__file__).parent / "data" / "ensemble_reference.npz") as ref:
        np.testing.assert_array_equal(res["z_phot"], ref["z_phot"])
        for k in ("width68", "pit", "crps"):
            np.testing.assert_allclose(res[k], ref[k], rtol=1e-13, atol=1e-15, err_msg=k)
        np.testing.assert_array_equal(res["pit_members"], ref["pit_members"])


def test_table_and_parquet(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    rng = np.random.default_rng(3)
    ids = {0: np.array([5, 3, 9]), 1: np.array([7, 1])}
    zcat = {i: float(z) for i, z in zip([1, 3, 5, 7, 9], rng.uniform(0, 0.4, 5))}
    paths = []
    for f, sid in ids.items():
        for s in range(2):
            p = rng.random((len(sid), 180)).astype(np.float32)
            order = rng.permutation(len(sid))  # members may list galaxies in any order
            path = tmp_path / "pred" / f"fold{f}" / f"seed{s}.npz"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, specObjID=sid[order], pdf=p[order] / p[order].sum(1, keepdims=True))
            paths.append(path)
    table = build_table(paths, zcat, EDGES)
    write_parquet(table, tmp_path / "ens.parquet")
    t = pq.read_table(tmp_path / "ens.parquet").to_pandas()
    assert list(t.columns) == ["specObjID", "fold", "z_spec", "z_phot", "width68", "pit", "crps", "pdf", "pit_members"]
    assert sorted(t.specObjID) == [1, 3, 5, 7, 9]
    assert t.set_index("specObjID").loc[7, "fold"] == 1
    assert all(len(v) == 180 for v in t.pdf) and all(len(v) == 2 for v in t.pit_members)
    assert np.allclose(t.z_spec, [zcat[i] for i in t.specObjID])
    # a member with other galaxies is an error naming the file
    bad = tmp_path / "pred" / "fold1" / "seed2.npz"
    np.savez(bad, specObjID=np.array([7, 2]), pdf=np.ones((2, 180), np.float32))
    with pytest.raises(ValueError, match="seed2.npz"):
        build_table(paths + [bad], zcat, EDGES)


def test_commands_end_to_end(tmp_path):
    """Synthetic shards and catalog -> train (2 members stacked) -> predict -> ensemble."""
    pd = pytest.importorskip("pandas")
    splits = pytest.importorskip("photoz.dataset.splits")
    from test_nn_train import synthetic_galaxies

    from nn_settings import config_json
    from photoz.config import fill_section
    from photoz.nn import ensemble, predict, train

    n = 150
    x, z, ebv = synthetic_galaxies(n, seed=5)
    shards = tmp_path / "shards"
    shards.mkdir()
    np.save(shards / "shard-0000.npy", x[:100])
    np.save(shards / "shard-0001.npy", x[100:])
    ids = np.arange(1000, 1000 + n, dtype=np.int64)
    cat = pd.DataFrame({"specObjID": ids, "z": z, "ebv": ebv, "shard": [0] * 100 + [1] * 50,
                        "row": list(range(100)) + list(range(50))})
    cat = pd.concat([cat, splits.make_splits(ids, np.zeros(n, bool), 1, fill_section(
        "dataset", {"shard_size": 4096, "n_folds": 5, "validation_fraction": 0.1}))], axis=1)
    cat.to_parquet(shards / "catalog.parquet")
    trial = json.dumps(fill_section("trials", {"main": {"train": "cv_train", "test": "cv_test", "folds": "all",
                                                        "members": 2}})["main"])
    cfg = json.dumps(config_json(epochs=1, batch_size=32, learning_rate=1e-3, device="cpu", num_threads=1,
                                 width=0.0625, dense=16))
    models = tmp_path / "models"
    assert train.main(["--shards", str(shards), "--trial", "main", "--trial-json", trial, "--fold", "2",
                       "--master-seed", "2019",
                       "--seeds", "0", "1", "--config-json", cfg, "--out-root", str(models)]) == 0
    preds = []
    for s in (0, 1):
        d = models / "main" / "fold2" / f"seed{s}"
        assert (d / "checkpoint.pt").exists() and (d / "metrics.csv").exists()
        out = tmp_path / "pred" / "fold2" / f"seed{s}.npz"
        assert predict.main(["--checkpoint", str(d / "best.pt"), "--shards", str(shards), "--trial-json", trial,
                             "--fold", "2", "--device", "cpu", "--num-threads", "1",
                             "--batch-size", "1024", "--out", str(out)]) == 0
        preds.append(str(out))
    with np.load(preds[0]) as f:
        test_ids = set(cat.specObjID[cat.fold == 2])
        assert set(f["specObjID"].tolist()) == test_ids
        assert f["pdf"].shape == (len(test_ids), 180) and np.allclose(f["pdf"].sum(1), 1, atol=1e-5)
    with np.load(preds[0]) as a, np.load(preds[1]) as b:
        assert not np.allclose(a["pdf"], b["pdf"])  # members differ
    ens = tmp_path / "ensemble" / "main.parquet"
    assert ensemble.main(preds + ["--catalog", str(shards / "catalog.parquet"), "--n-bins", "180", "--z-min", "0",
                                  "--z-max", "0.4", "--out", str(ens)]) == 0
    t = pd.read_parquet(ens)
    assert len(t) == len(test_ids) and (t.fold == 2).all()
    assert np.allclose(t.z_spec.to_numpy(), cat.set_index("specObjID").loc[t.specObjID, "z"].to_numpy())
