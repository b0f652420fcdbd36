"""Splits: folds, validation subsets and the one-split trials; no galaxy on both sides."""

import numpy as np
import pandas as pd
import pytest

from photoz.config import fill_section
from photoz.dataset.splits import make_splits, trial_indices

#: the schema's selections, 5 folds, 5% validation
DATASET = fill_section("dataset", {"shard_size": 4096, "n_folds": 5, "validation_fraction": 0.05})


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(5)
    ids = rng.choice(10**12, size=2000, replace=False).astype(np.int64)
    s82 = rng.random(2000) < 0.15
    cat = pd.DataFrame({"specObjID": ids, "stripe82": s82})
    return pd.concat([cat, make_splits(ids, s82, 2019, DATASET)], axis=1)


def test_each_galaxy_tested_exactly_once(table):
    counts = np.bincount(table["fold"], minlength=5)
    assert counts.sum() == len(table) and counts.max() - counts.min() <= 1
    tested = np.zeros(len(table), int)
    for f in range(5):
        _, _, test = trial_indices(table, {"train": "cv_train", "test": "cv_test"}, f)
        tested[test] += 1
    assert (tested == 1).all()


def test_no_galaxy_on_both_sides_of_any_trial(table, default_config):
    for name, spec in default_config["trials"].items():
        folds = range(5) if spec["folds"] == "all" else [0]
        for f in folds:
            tr, va, te = trial_indices(table, spec, f)
            assert len(tr) and len(te), name
            assert not set(tr) & set(te) and not set(va) & set(te) and not set(tr) & set(va), (name, f)
            ids_train = set(table.specObjID.iloc[np.r_[tr, va]])
            assert not ids_train & set(table.specObjID.iloc[te]), (name, f)


def test_validation_and_selection_fractions(table):
    for f in range(5):
        train = table.fold != f
        assert not (table[f"val_{f}"] & ~train).any()
        assert table[f"val_{f}"].sum() == round(0.05 * train.sum())
    assert (table.sel_frac50 == 1).mean() == pytest.approx(0.5, abs=1e-3)
    assert (table.sel_frac2 == 1).sum() == round(0.02 * len(table))
    s82 = table.stripe82
    assert not (table.sel_s82[~s82] == 1).any() and (table.sel_s82[s82] == 1).mean() == pytest.approx(0.8, abs=2e-3)
    assert not (table.sel_nos82[s82] == 1).any()
    tr, va, te = trial_indices(table, {"train": "s82_train", "test": "s82_test"}, 0)
    assert s82.iloc[np.r_[tr, va]].all() and (~s82.iloc[te]).sum() == (~s82).sum()
    assert table.fold.dtype == np.int8 and table.sel_frac20.dtype == np.int8 and table.val_0.dtype == bool


def test_deterministic_and_order_independent(table):
    again = make_splits(table.specObjID, table.stripe82, 2019, DATASET)
    perm = np.random.default_rng(0).permutation(len(table))
    shuffled = make_splits(table.specObjID.iloc[perm], table.stripe82.iloc[perm], 2019, DATASET)
    cols = ["fold", "val_0", "val_3", "sel_frac50", "sel_s82"]
    pd.testing.assert_frame_equal(again[cols], table[cols])
    np.testing.assert_array_equal(shuffled["fold"].to_numpy(), table["fold"].to_numpy()[perm])
    other = make_splits(table.specObjID, table.stripe82, 2020, DATASET)
    assert (other.fold != table.fold).any()
    assert set(DATASET["selections"]) == {c[4:] for c in table.columns if c.startswith("sel_")}


def test_unknown_selection_is_a_clear_error(table):
    with pytest.raises(KeyError, match="sel_frac7"):
        trial_indices(table, {"train": "frac7_train", "test": "frac7_test"}, 0)


def _lc(size=None, fraction=None):
    spec = {"train": "cv_train", "test": "cv_test", "folds": "single", "members": 1}
    if size is not None:
        spec["train_size"] = size
    if fraction is not None:
        spec["train_fraction"] = fraction
    return spec


def test_learning_curve_subsets_are_nested_and_share_the_test_set(table):
    """Each smaller training side (validation included) is inside the larger one; the test side is fold 0's."""
    full_tr, full_va, full_te = trial_indices(table, {"train": "cv_train", "test": "cv_test"}, 0)
    prev = set()
    for size in (40, 100, 400, 1000, len(full_tr) + len(full_va)):
        tr, va, te = trial_indices(table, _lc(size), 0)
        side = set(tr) | set(va)
        assert len(side) == size and prev <= side
        assert np.array_equal(te, full_te)
        # validation galaxies are fold 0's validation galaxies among the subset
        assert set(va) == side & set(full_va)
        prev = side
    assert prev == set(full_tr) | set(full_va)


def test_learning_curve_fraction_counts_all_galaxies(table):
    tr, va, _ = trial_indices(table, _lc(fraction=0.2), 0)
    assert len(tr) + len(va) == round(0.2 * len(table))


def test_learning_curve_subset_larger_than_the_fold_is_an_error(table):
    with pytest.raises(ValueError, match="training side has only"):
        trial_indices(table, _lc(size=len(table)), 0)


def test_learning_curve_needs_the_rank_column(table):
    with pytest.raises(KeyError, match="rank"):
        trial_indices(table.drop(columns="rank"), _lc(size=50), 0)


def test_rank_is_a_permutation_independent_of_row_order(table):
    assert sorted(table["rank"]) == list(range(len(table)))
    shuffled = table.sample(frac=1.0, random_state=3)
    again = make_splits(shuffled.specObjID.to_numpy(), shuffled.stripe82.to_numpy(), 2019, DATASET)
    assert np.array_equal(again["rank"].to_numpy(), shuffled["rank"].to_numpy())


def test_train_share_follows_the_trials_training_counts(table, default_config):
    """The train jobs' scheduling priority (photoz.trials.train_share) orders trials by their training sets."""
    from photoz.trials import train_share

    cfg = dict(default_config, dataset=dict(default_config["dataset"], n_folds=5))
    counts, shares = {}, {}
    for name, spec in cfg["trials"].items():
        train, _, _ = trial_indices(table, spec, 0)
        counts[name], shares[name] = len(train), train_share(cfg, name)
    for name, spec in cfg["trials"].items():
        if spec["train"] == "cv_train":
            # the share of the catalogue it trains on, before the validation subset is taken out
            assert counts[name] == pytest.approx(shares[name] * len(table), rel=0.08), name
    assert shares["s82only"] == 0.0  # one stripe: counted as small, it starts last
    by_share = sorted((n for n in shares if shares[n] > 0), key=lambda n: shares[n])
    assert by_share[0] == "frac2" and set(by_share[-3:]) == {"main", "noebv", "nos82"}
    assert [counts[n] for n in ("frac2", "frac20", "frac50", "main")] == sorted(counts[n] for n in ("frac2", "frac20", "frac50", "main"))
