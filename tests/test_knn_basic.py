"""photoz.knn: the local-linear-regression kNN baseline (our B16)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from photoz import knn, metrics
from photoz.config import fill_section

KNN = fill_section("knn", {})  # the schema's k and clip_sigma


def synthetic_catalog(n=3000, seed=0):
    """Catalog rows with magnitudes, folds and one-split selections; z depends on colours."""
    rng = np.random.default_rng(seed)
    r = rng.uniform(14.5, 17.8, n)
    ug, gr, ri, iz = rng.normal(1.6, 0.3, n), rng.normal(0.8, 0.15, n), rng.normal(0.4, 0.08, n), rng.normal(0.3, 0.06, n)
    z = np.clip(0.02 + 0.25 * (gr - 0.5) + 0.05 * (r - 14.5) / 3.3 + 0.1 * (ri - 0.4) ** 2
                + rng.normal(0, 0.004, n), 0.001, 0.399)
    g = r + gr
    u = g + ug
    i = r - ri
    zz = i - iz
    cat = pd.DataFrame({
        "specObjID": np.arange(n, dtype=np.int64) * 7 + 1000,
        "z": z,
        "dered_petro_u": u, "dered_petro_g": g, "dered_petro_r": r, "dered_petro_i": i, "dered_petro_z": zz,
        "fold": (rng.permutation(n) % 5).astype(np.int8),
        "sel_frac50": np.where(rng.random(n) < 0.5, 1, 2).astype(np.int8),
    })
    sel = rng.integers(0, 3, n).astype(np.int8)
    cat["sel_s82"] = sel
    for f in range(5):
        cat[f"val_{f}"] = (cat["fold"] != f) & (rng.random(n) < 0.05)
    return cat


def test_features_are_r_and_colours():
    cat = synthetic_catalog(10)
    x = knn.features(cat)
    np.testing.assert_allclose(x[:, 0], cat["dered_petro_r"])
    np.testing.assert_allclose(x[:, 1], cat["dered_petro_u"] - cat["dered_petro_g"])
    np.testing.assert_allclose(x[:, 4], cat["dered_petro_i"] - cat["dered_petro_z"])
    cat.loc[3, "dered_petro_g"] = np.nan
    with pytest.raises(ValueError, match=r"specObjID \[1021\]"):
        knn.features(cat, "cat.parquet")


def test_local_linear_fit_is_exact_on_a_linear_relation():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 5))
    coef = np.array([0.01, -0.02, 0.03, 0.005, 0.0])
    z = 0.2 + x @ coef
    xq = rng.normal(size=(200, 5)) * 0.5
    zq, zerr, fb = knn.fit_predict(x, z, xq, k=50, clip_sigma=3.0)
    np.testing.assert_allclose(zq, 0.2 + xq @ coef, atol=1e-10)
    assert not fb.any() and np.all(zerr < 1e-10)
    # the neighbour mean alone (no regression) would be far worse
    assert np.max(np.abs(zq - (0.2 + xq @ coef))) < 1e-8


def test_extrapolation_falls_back_to_neighbour_mean():
    x = np.zeros((20, 1)); x[:, 0] = np.arange(20)
    z = 0.01 * np.arange(20)
    zq, _, fb = knn.fit_predict(x, z, np.array([[100.0]]), k=5, clip_sigma=0)
    assert fb[0] and zq[0] == pytest.approx(np.mean(z[-5:]))


def test_trial_split_follows_the_contract():
    cat = synthetic_catalog(500)
    tr, te = knn.trial_split(cat, {"train": "cv_train", "test": "cv_test"}, 2)
    assert np.all(te == (cat["fold"] == 2)) and np.all(tr == (cat["fold"] != 2))
    tr, _ = knn.trial_split(cat, {"train": "cv_train", "test": "cv_test"}, 2, with_validation=False)
    assert np.all(tr == ((cat["fold"] != 2) & ~cat["val_2"]))
    tr, te = knn.trial_split(cat, {"train": "s82_train", "test": "s82_test"}, 0)
    assert np.all(tr == (cat["sel_s82"] == 1)) and np.all(te == (cat["sel_s82"] == 2))
    with pytest.raises(ValueError, match="sel_nos82"):
        knn.trial_split(cat, {"train": "nos82_train", "test": "nos82_test"}, 0)


def test_predict_trial_covers_each_test_galaxy_once_and_beats_the_mean():
    cat = synthetic_catalog(3000)
    out = knn.predict_trial(cat, {"train": "cv_train", "test": "cv_test", "folds": "all"}, range(5), dict(KNN, k=60))
    assert sorted(out["specObjID"]) == sorted(cat["specObjID"])
    merged = out.merge(cat[["specObjID", "fold", "z"]], on="specObjID")
    assert np.all(merged["fold_x"] == merged["fold_y"]) and np.allclose(merged["z_spec"], merged["z"])
    for f in range(5):
        assert set(out.loc[out.fold == f, "n_train"]) == {int((cat["fold"] != f).sum())}
    m = metrics.point_metrics(out["z_phot"], out["z_spec"])
    const = metrics.point_metrics(np.full(len(out), cat["z"].mean()), out["z_spec"])
    assert m["sigma_mad"] < 0.3 * const["sigma_mad"]
    assert m["sigma_mad"] < 0.008 and abs(m["bias"]) < 0.002


def test_a_test_galaxy_is_never_its_own_neighbour():
    cat = synthetic_catalog(1000)
    # give the fold-0 galaxies absurd redshifts: if they leaked into training,
    # their own predictions (k=1 would pick themselves) would be absurd too
    cat.loc[cat.fold == 0, "z"] = 5.0
    out = knn.predict_trial(cat, {"train": "cv_train", "test": "cv_test", "folds": "single"}, [0], dict(KNN, k=1, clip_sigma=0))
    assert np.all(out["z_phot"] < 1.0)


def test_command_writes_predictions(tmp_path):
    cat = synthetic_catalog(800)
    cat.to_parquet(tmp_path / "catalog.parquet")
    trial = {"train": "frac50_train", "test": "frac50_test", "folds": "single", "members": 1}
    rc = knn.main(["--catalog", str(tmp_path / "catalog.parquet"), "--trial", "frac50",
                   "--trial-json", json.dumps(trial), "--n-folds", "5", "--k", "40", "--clip-sigma", "3.0",
                   "--output", str(tmp_path / "knn" / "frac50.parquet"), "--log", str(tmp_path / "knn.log")])
    assert rc == 0
    out = pd.read_parquet(tmp_path / "knn" / "frac50.parquet")
    assert list(out.columns[:4]) == ["specObjID", "fold", "z_spec", "z_phot"]
    assert len(out) == int((cat["sel_frac50"] == 2).sum())
    assert set(out["fold"]) == {0}
    assert "predicted" in (tmp_path / "knn.log").read_text()


def test_command_trains_on_a_nested_subset(tmp_path):
    """A learning-curve trial (train_size) reads the catalog's rank column and trains on that many galaxies."""
    cat = synthetic_catalog(800)
    cat["rank"] = np.random.default_rng(3).permutation(len(cat)).astype(np.int32)
    cat.to_parquet(tmp_path / "catalog.parquet")
    trial = {"train": "cv_train", "test": "cv_test", "folds": "single", "train_size": 150}
    rc = knn.main(["--catalog", str(tmp_path / "catalog.parquet"), "--trial", "lc150",
                   "--trial-json", json.dumps(trial), "--n-folds", "5", "--k", "40", "--clip-sigma", "3.0",
                   "--output", str(tmp_path / "lc150.parquet")])
    assert rc == 0
    out = pd.read_parquet(tmp_path / "lc150.parquet")
    assert (out["n_train"] == 150).all() and len(out) == int((cat["fold"] == 0).sum())
