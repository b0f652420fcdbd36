"""photoz.knn: the choice of k per fold from knn.k_grid (inner cross-validation)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from photoz import knn
from photoz.config import ConfigError, fill_section, load_config, validate_config

from test_knn_basic import synthetic_catalog

GRID = [10, 20, 50, 100, 200]
KNN = fill_section("knn", {})  # the schema's k and clip_sigma
CV = {"train": "cv_train", "test": "cv_test", "folds": "all"}


def curved(n, seed=0):
    """Features and z on a strongly curved, almost noiseless relation: small k wins."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 5))
    z = 0.3 + 0.15 * np.sin(4 * x[:, 1]) * np.cos(3 * x[:, 2]) + 0.1 * x[:, 0] ** 2 + rng.normal(0, 0.001, n)
    return x, z, np.arange(n, dtype=np.int64) * 11 + 5


def noisy_linear(n, seed=0):
    """Features and z on a linear relation with large noise: large k wins."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    z = 0.3 + x @ np.array([0.02, -0.01, 0.015, 0.0, 0.01]) + rng.normal(0, 0.05, n)
    return x, z, np.arange(n, dtype=np.int64) * 11 + 5


def test_without_grid_the_fixed_k_predictions_are_unchanged():
    cat = synthetic_catalog(1000)
    out = knn.predict_trial(cat, CV, range(5), dict(KNN, k=60))
    x, zs = knn.features(cat), cat["z"].to_numpy()
    for f in range(5):
        train, test = knn.trial_split(cat, CV, f)
        ref = knn.fit_predict(x[train], zs[train], x[test], k=60, clip_sigma=KNN["clip_sigma"])
        got = out[out.fold == f]
        np.testing.assert_array_equal(got["z_phot"], ref[0])
        np.testing.assert_array_equal(got["z_err"], ref[1])
        assert set(got["k"]) == {60}
    # a one-value grid is that k: identical outputs
    pd.testing.assert_frame_equal(knn.predict_trial(cat, CV, range(5), dict(KNN, k=100, k_grid=[60]), seed=1), out)


def test_grid_predict_equals_fit_predict_per_k():
    x, z, _ = curved(400)
    zg = knn.grid_predict(x[:300], z[:300], x[300:], [10, 50], KNN["clip_sigma"])
    for i, k in enumerate([10, 50]):
        np.testing.assert_allclose(zg[i], knn.fit_predict(x[:300], z[:300], x[300:], k=k, clip_sigma=KNN["clip_sigma"])[0], atol=1e-12)
    with pytest.raises(ValueError, match="exceeds the 300 training"):
        knn.grid_predict(x[:300], z[:300], x[300:], [400], KNN["clip_sigma"])


def test_a_curved_relation_picks_a_small_k():
    x, z, ids = curved(300)
    k, scores = knn.choose_k(x, z, ids, GRID, KNN["clip_sigma"], seed=7)
    assert k <= 20, scores
    assert set(scores) == {10, 20, 50, 100, 200} and scores[k] == min(scores.values())


def test_a_noisy_linear_relation_picks_a_large_k():
    x, z, ids = noisy_linear(1000)
    k, scores = knn.choose_k(x, z, ids, GRID, KNN["clip_sigma"], seed=7)
    assert k >= 100, scores


def test_chosen_k_never_exceeds_the_training_size():
    x, z, ids = curved(60)
    k, scores = knn.choose_k(x, z, ids, GRID, KNN["clip_sigma"], seed=7)
    assert set(scores) <= {10, 20} and k <= 20  # 48 galaxies per inner fit: 50 and above untried
    k, scores = knn.choose_k(x[:8], z[:8], ids[:8], GRID, KNN["clip_sigma"], seed=7)
    assert scores == {} and k == 8
    cat = synthetic_catalog(400)
    out = knn.predict_trial(cat, {"train": "frac50_train", "test": "frac50_test", "folds": "single"}, [0],
                            dict(KNN, k_grid=[10, 50, 1000]), seed=3)
    assert (out["k"] <= out["n_train"]).all() and set(out["k"]) <= {10, 50}


def test_ties_go_to_the_larger_k():
    # a relation the local linear fit reproduces exactly: every k scores 0
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 5))
    z = 0.2 + x @ np.array([0.01, -0.02, 0.03, 0.005, 0.0])
    k, scores = knn.choose_k(x, z, np.arange(300), [10, 20, 50], clip_sigma=0, seed=1)
    assert max(scores.values()) < 1e-10 and k == 50


def test_inner_folds_depend_on_the_ids_and_seed_not_the_row_order():
    ids = np.arange(1000, dtype=np.int64) * 13 + 7
    a = knn.inner_folds(ids, seed=2019, tag=0)
    assert np.bincount(a).tolist() == [200] * 5
    perm = np.random.default_rng(0).permutation(1000)
    np.testing.assert_array_equal(knn.inner_folds(ids[perm], seed=2019, tag=0), a[perm])
    assert not np.array_equal(knn.inner_folds(ids, seed=2020, tag=0), a)
    assert not np.array_equal(knn.inner_folds(ids, seed=2019, tag=1), a)


def test_choice_is_deterministic_and_independent_of_row_order():
    cat = synthetic_catalog(800)
    one = knn.predict_trial(cat, CV, range(5), dict(KNN, k_grid=GRID), seed=11)
    shuffled = cat.sample(frac=1, random_state=4).reset_index(drop=True)
    two = knn.predict_trial(shuffled, CV, range(5), dict(KNN, k_grid=GRID), seed=11)
    key = ["fold", "specObjID"]
    pd.testing.assert_frame_equal(one.sort_values(key).reset_index(drop=True),
                                  two.sort_values(key).reset_index(drop=True))
    assert one["k"].dtype == np.int64 and set(one["k"]) <= set(GRID)


def test_command_passes_grid_and_seed_and_logs_the_choice(tmp_path):
    cat = synthetic_catalog(600)
    cat.to_parquet(tmp_path / "catalog.parquet")
    args = ["--catalog", str(tmp_path / "catalog.parquet"), "--trial", "main", "--trial-json", json.dumps(CV),
            "--n-folds", "5", "--k", "100", "--clip-sigma", "3.0", "--k-grid", "10,50"]
    with pytest.raises(SystemExit):  # a grid without the master seed is refused
        knn.main([*args, "--output", str(tmp_path / "x.parquet")])
    rc = knn.main([*args, "--seed", "5", "--output", str(tmp_path / "main.parquet"), "--log", str(tmp_path / "knn.log")])
    assert rc == 0
    out = pd.read_parquet(tmp_path / "main.parquet")
    ref = knn.predict_trial(cat, CV, range(5), dict(KNN, k_grid=[10, 50]), seed=5)
    pd.testing.assert_frame_equal(out, ref)
    text = (tmp_path / "knn.log").read_text()
    for f in range(5):
        assert f"fold {f}: k = {out.loc[out.fold == f, 'k'].iloc[0]} chosen from [10, 50]" in text


def test_config_k_grid_is_validated():
    cfg = load_config()
    assert cfg["knn"]["k_grid"] == sorted(set(cfg["knn"]["k_grid"]))  # the default grid is valid
    for bad, msg in (([50, 10], r"knn.k_grid = \[50, 10\] must be sorted"), ([10, 10], r"knn.k_grid: .* non-unique"),
                     ([0, 10], r"knn.k_grid\[0\] = 0 is out of range"), ([], r"knn.k_grid: \[\] should be non-empty"),
                     ([10.5], r"knn.k_grid\[0\] = 10.5 has the wrong type")):
        c = json.loads(json.dumps(cfg))
        c["knn"]["k_grid"] = bad
        with pytest.raises(ConfigError, match=msg):
            validate_config(c)
    c = json.loads(json.dumps(cfg))
    del c["knn"]["k_grid"]
    assert "k_grid" not in validate_config(c)["knn"]
