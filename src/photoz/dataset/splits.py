"""Cross-validation folds, validation subsets and the paper's one-split trials.

Splits are columns of ``results/shards/catalog.parquet`` (docs/dataflow.md,
section 3), never copies of the data, and depend only on the master
``seed`` and the set of ``specObjID`` (not on the row order):

* ``fold`` (int8): the fold in which the galaxy is tested; a random
  permutation dealt round-robin, so fold sizes differ by at most one and every
  galaxy is tested exactly once;
* ``val_{f}`` (bool): a ``validation_fraction`` random subset of fold f's
  training side (``fold != f``);
* ``sel_{name}`` (int8): 1 = train, 2 = test, 0 = unused, for the named
  one-split selections of ``dataset.selections``: ``train_fraction`` of the
  galaxies of ``pool`` (``all``, ``s82`` or ``no_s82``) are drawn for
  training, every other galaxy is on the test side;
* ``rank`` (int32): a random permutation of 0..N-1. A trial with
  ``train_size`` (or ``train_fraction`` of all galaxies) trains on the
  galaxies of fold 0's training side with the smallest ranks, so the
  training sets of a learning curve are nested, and their validation
  galaxies are those of ``val_0`` among them (the same share as in the
  full training side).
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

__all__ = ["SPLIT_COLUMNS", "SPLIT_PREFIXES", "is_split_column", "make_splits", "trial_indices",
           "selection_masks", "subset_size"]

#: Split columns of the shard catalog by name (``fold``, ``rank``) and by prefix (``val_{f}``, ``sel_{name}``):
#: what a reader of the catalog must load for :func:`selection_masks`.
SPLIT_COLUMNS = ("fold", "rank")
SPLIT_PREFIXES = ("val_", "sel_")


def is_split_column(name):
    """True for a split column of the shard catalog (see the module docstring)."""
    return name in SPLIT_COLUMNS or name.startswith(SPLIT_PREFIXES)


def _rng(seed, *tags):
    """An independent generator for one purpose, derived from the master seed."""
    words = [int(seed)] + [zlib.crc32(str(t).encode()) for t in tags]
    return np.random.default_rng(np.random.SeedSequence(words))


def make_splits(specobjid, stripe82, seed, dataset):
    """Split columns for a set of galaxies.

    Parameters
    ----------
    specobjid : array_like (N,) int64, unique
    stripe82 : array_like (N,) bool
    seed : int
    dataset : mapping
        The validated ``dataset`` config section: ``n_folds``, ``validation_fraction`` (the
        fraction of each fold's training side used for validation) and ``selections``
        (name -> ``{"pool", "train_fraction"}``).

    Returns
    -------
    DataFrame indexed like the input with ``fold, val_0..val_{n-1}, sel_{name}, rank``.
    """
    ids = np.asarray(specobjid, dtype=np.int64)
    s82 = np.asarray(stripe82, dtype=bool)
    n = ids.size
    if len(np.unique(ids)) != n:
        raise ValueError("make_splits: specObjID values must be unique")
    order = np.argsort(ids, kind="stable")  # canonical order: by specObjID

    def unsort(values_sorted):  # a column in specObjID order -> in the input's order
        v = np.empty(n, dtype=values_sorted.dtype)
        v[order] = values_sorted
        return v

    fold_sorted = np.empty(n, dtype=np.int8)
    fold_sorted[_rng(seed, "folds").permutation(n)] = (np.arange(n) % dataset["n_folds"]).astype(np.int8)
    out = {"fold": unsort(fold_sorted)}
    for f in range(dataset["n_folds"]):
        out[f"val_{f}"] = unsort(_validation_sorted(fold_sorted, f, dataset["validation_fraction"], seed))
    s82_sorted = s82[order]
    for name, spec in dataset["selections"].items():
        out[f"sel_{name}"] = unsort(_selection_sorted(s82_sorted, name, spec, seed))
    out["rank"] = unsort(_rng(seed, "rank").permutation(n).astype(np.int32))
    return pd.DataFrame(out)


def _validation_sorted(fold_sorted, f, validation_fraction, seed):
    """Fold ``f``'s validation flags (specObjID order): a seeded draw of its training side."""
    train = np.nonzero(fold_sorted != f)[0]
    n_val = int(round(validation_fraction * train.size))
    n_val = min(max(n_val, 1), train.size - 1) if train.size > 1 else 0
    pick = _rng(seed, "validation", f).choice(train, size=n_val, replace=False) if n_val else np.array([], int)
    v = np.zeros(len(fold_sorted), dtype=bool)
    v[pick] = True
    return v


def _selection_sorted(s82_sorted, name, spec, seed):
    """Selection ``name``'s column (specObjID order): 1 for its training galaxies, 2 for the others."""
    pool = spec["pool"]
    n = len(s82_sorted)
    if pool == "all":
        cand = np.arange(n)
    elif pool == "s82":
        cand = np.nonzero(s82_sorted)[0]
    elif pool == "no_s82":
        cand = np.nonzero(~s82_sorted)[0]
    else:
        raise ValueError(f"dataset.selections.{name}.pool = {pool!r}; allowed: 'all', 's82', 'no_s82'")
    n_train = int(round(float(spec["train_fraction"]) * cand.size))
    pick = _rng(seed, "selection", name).choice(cand, size=n_train, replace=False) if n_train else np.array([], int)
    s = np.full(n, 2, dtype=np.int8)
    s[pick] = 1
    return s


def subset_size(trial_spec, n_catalog):
    """Galaxies on the training side of a nested-subset trial, or None for a whole fold.

    ``train_size`` is a count; ``train_fraction`` a fraction of all ``n_catalog``
    galaxies (the paper's convention for its 2%, 20% and 50% trials).
    """
    if trial_spec.get("train_size") is not None:
        return int(trial_spec["train_size"])
    if trial_spec.get("train_fraction") is not None:
        return int(round(float(trial_spec["train_fraction"]) * int(n_catalog)))
    return None


def _nested(catalog, side, n, trial_spec):
    """The ``n`` galaxies of boolean mask ``side`` with the smallest ``rank``."""
    if "rank" not in catalog:
        raise KeyError(f"trial {trial_spec}: a train_size/train_fraction trial needs the shard catalog's "
                       "'rank' column (rerun the shards step)")
    avail = int(side.sum())
    if n > avail:
        raise ValueError(f"trial {trial_spec}: training subset of {n} galaxies asked, but fold 0's training "
                         f"side has only {avail}")
    rank = np.asarray(catalog["rank"], dtype=np.int64)
    idx = np.flatnonzero(side)
    keep = np.zeros_like(side)
    keep[idx[np.argsort(rank[idx], kind="stable")[:n]]] = True
    return keep


def _side(catalog, name, fold):
    """Boolean mask of a selection name such as ``cv_train`` or ``frac50_test``."""
    if "_" not in name:
        raise KeyError(f"selection {name!r} is not of the form <name>_train or <name>_test")
    prefix, side = name.rsplit("_", 1)
    if side not in ("train", "test"):
        raise KeyError(f"selection {name!r} must end in _train or _test")
    if prefix == "cv":
        f = np.asarray(catalog["fold"])
        return (f != fold) if side == "train" else (f == fold), True
    col = f"sel_{prefix}"
    if col not in catalog:
        known = sorted(c[4:] for c in catalog.columns if c.startswith("sel_"))
        raise KeyError(f"no split column {col!r} for selection {name!r}; known: cv, {', '.join(known)}")
    s = np.asarray(catalog[col])
    return (s == 1) if side == "train" else (s == 2), False


def selection_masks(catalog, trial_spec, fold=0):
    """Boolean masks ``(train, val, test)`` of a trial (see :func:`trial_indices`)."""
    train, is_cv = _side(catalog, trial_spec["train"], fold)
    test, _ = _side(catalog, trial_spec["test"], fold)
    vcol = f"val_{fold}" if is_cv else "val_0"
    if vcol not in catalog:
        raise KeyError(f"no validation column {vcol!r} in the shard catalog (fold {fold})")
    n_sub = subset_size(trial_spec, len(catalog))
    if n_sub is not None:
        train = _nested(catalog, train, n_sub, trial_spec)
    val = train & np.asarray(catalog[vcol], dtype=bool)
    train = train & ~val
    overlap = (train | val) & test
    if overlap.any():
        raise ValueError(f"trial {trial_spec}: {int(overlap.sum())} galaxies on both the training and the test side")
    return train, val, test


def trial_indices(catalog, trial_spec, fold=0):
    """Row indices (into the shard catalog) of a trial's train, validation and test sets.

    Parameters
    ----------
    catalog : DataFrame
        ``results/shards/catalog.parquet`` (rows in shard order).
    trial_spec : mapping
        A trial of the config, with ``train`` and ``test`` selection names:
        ``cv_train``/``cv_test`` use ``fold``; ``{name}_train``/``{name}_test``
        use ``sel_{name}``; with ``train_size`` or ``train_fraction`` the
        training side (validation included) is the nested subset of that size
        (smallest ``rank`` first).
    fold : int
        The cross-validation fold (one-split trials use fold 0's validation
        column ``val_0`` restricted to their training side).

    Returns
    -------
    train_idx, val_idx, test_idx : ndarray int64, sorted, pairwise disjoint
    """
    train, val, test = selection_masks(catalog, trial_spec, fold)
    return (np.nonzero(train)[0].astype(np.int64), np.nonzero(val)[0].astype(np.int64),
            np.nonzero(test)[0].astype(np.int64))
