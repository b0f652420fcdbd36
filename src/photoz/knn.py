"""The kNN baseline: our implementation of the method of Beck et al. (2016, "B16").

B16 estimate the redshift of a galaxy from its ``k`` nearest neighbours in the
five-dimensional space of the r magnitude and the u−g, g−r, r−i, i−z colours,
by a local linear regression z ≈ a + b·(x − x_0) fitted to the neighbours
(Csabai et al. 2007; Beck et al. 2016). Here:

* features: dereddened Petrosian magnitudes of the catalog
  (``dered_petro_{u,g,r,i,z}``), unscaled, Euclidean distance;
* ``k`` neighbours from the trial's training side: ``knn.k`` (default 100),
  or, when ``knn.k_grid`` is given, the value of the grid chosen per fold by
  an inner cross-validation on that fold's training side (below);
* a least-squares linear fit in the features centred on the query galaxy,
  so that the intercept ``a`` is the estimate; one pass of ``clip_sigma``
  (default 3) residual clipping, then a refit on the surviving neighbours;
* if the fit is degenerate, or its value falls outside the redshift range of
  the neighbours (an extrapolation), the mean redshift of the neighbours is
  used instead (the fallback of Csabai et al. 2007); the rate is logged.

Training and test galaxies follow the trial's selections exactly as the CNN's
(docs/dataflow.md, Sect. 3; ``photoz.dataset.splits.selection_masks``): for
``cv_*`` trials, fold f tests ``fold == f`` and trains on every other fold; for
``{name}_*`` trials, ``sel_{name}`` 1 is train and 2 is test (fold 0 only). The
training set is the whole training side, validation galaxies included.

Choice of k (``knn.k_grid``)
    A fixed k is unfair to the kNN at small training sizes (k = 100 spans a
    quarter of 400 galaxies), and the CNN picks its own hyper-parameter (the
    epoch) on held-out galaxies of its training side. With a grid, each fold's
    k is chosen the same way: the training side is split into ``N_INNER`` (5)
    inner folds (``inner_folds``: a permutation drawn from the master seed and
    the fold over the galaxies sorted by specObjID, so independent of the row
    order), every galaxy of the training side is predicted from the other
    inner folds for every k of the grid (``grid_predict``), and the k with the
    lowest σ_MAD of those predictions wins, the larger k on a tie
    (``choose_k``). Values of the grid above the smallest inner training set
    are not tried. The kNN is then refit on the whole training side with that
    k. The test galaxies never take part in the choice. The k used is the
    ``k`` column of the output and is logged per fold with the grid's scores.
    Cost: one neighbour search per inner fold with the largest k, then one
    local fit per k; with the grid [10, 20, 50, 100, 200] about 9× the fixed
    k = 100 run (20 s instead of 2 s for 20,000 galaxies, 5 folds, one core).

Command::

    python -m photoz knn --catalog results/shards/catalog.parquet \\
        --trial main --trial-json '{"train": "cv_train", ...}' --n-folds 5 \\
        --k 100 --clip-sigma 3.0 --k-grid 10,20,50,100,200 \\
        --seed 2019 --output results/knn/main.parquet
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
import pandas as pd

from photoz import metrics, trials
from photoz.io import atomic_path, setup_logging

__all__ = ["BANDS", "N_INNER", "features", "trial_split", "fit_predict", "inner_folds", "grid_predict",
           "choose_k", "predict_trial", "main"]

BANDS = ("u", "g", "r", "i", "z")
MAG_COLUMNS = tuple(f"dered_petro_{b}" for b in BANDS)
#: inner cross-validation folds of the choice of k (``choose_k``)
N_INNER = 5
#: σ_MAD values this close count as a tie in ``choose_k`` (round-off only)
TIE_RTOL, TIE_ATOL = 1e-9, 1e-12
#: query galaxies × neighbours held in memory at once (4096 × 100, as for the default k)
BATCH_ELEMENTS = 4096 * 100
log = logging.getLogger("photoz.knn")


def features(df, source="catalog"):
    """Feature matrix (N, 5): r, u−g, g−r, r−i, i−z from ``dered_petro_*`` columns.

    Raises ``ValueError`` naming ``source`` and the galaxies if a magnitude is
    missing or not finite.
    """
    missing = [c for c in MAG_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: missing magnitude columns {missing}")
    m = np.column_stack([df[c].to_numpy(dtype=np.float64) for c in MAG_COLUMNS])
    bad = ~np.isfinite(m).all(axis=1)
    if bad.any():
        ids = df["specObjID"].to_numpy()[bad][:5].tolist() if "specObjID" in df.columns else np.flatnonzero(bad)[:5].tolist()
        raise ValueError(f"{source}: {int(bad.sum())} galaxies have non-finite magnitudes, e.g. specObjID {ids}")
    u, g, r, i, z = m.T
    return np.column_stack([r, u - g, g - r, r - i, i - z])


def trial_split(catalog, trial, fold, with_validation=True):
    """Boolean masks (train, test) of a trial's fold, from the catalog's split columns.

    The selection is the CNN's own (``photoz.dataset.splits.selection_masks``);
    with ``with_validation`` the fold's validation galaxies count as training
    (the kNN chooses k, if at all, by inner folds of the whole training side: ``choose_k``).

    Parameters
    ----------
    catalog : DataFrame with ``fold``, ``val_{f}`` and ``sel_{name}`` columns
    trial : dict with ``train`` and ``test`` selection names (config ``trials``)
    fold : int
    """
    from photoz.dataset.splits import selection_masks

    try:
        train, val, test = selection_masks(catalog, trial, fold)
    except KeyError as err:
        raise ValueError(str(err.args[0]) if err.args else str(err)) from None
    return (train | val) if with_validation else train, test


def _solve_local(dx, dzn, w):
    """Weighted least squares z = a + b·dx per query; returns a and a validity flag.

    dx: (Q, k, d) neighbour features minus query features; dzn: (Q, k)
    neighbour redshifts; w: (Q, k) 0/1 weights.
    """
    q, k, d = dx.shape
    a_mat = np.concatenate([np.ones((q, k, 1)), dx], axis=2) * w[..., None]
    ata = np.einsum("qki,qkj->qij", a_mat, a_mat)
    atz = np.einsum("qki,qk->qi", a_mat, dzn * w)
    n_used = w.sum(axis=1)
    # condition check on a scale-free version of the normal matrix
    diag = np.sqrt(np.clip(np.einsum("qii->qi", ata), 1e-300, None))
    scaled = ata / diag[:, :, None] / diag[:, None, :]
    ok = n_used > d + 1
    with np.errstate(all="ignore"):
        cond = np.linalg.cond(scaled)
    ok &= np.isfinite(cond) & (cond < 1e10)
    beta = np.zeros((q, d + 1))
    if ok.any():
        beta[ok] = np.linalg.solve(ata[ok], atz[ok][..., None])[..., 0]
    return beta, ok


def _local_estimate(dx, zn, clip_sigma):
    """Local linear estimate of each query from its neighbours (one clipping pass, mean fallback).

    dx: (Q, k, d) neighbour features minus query features; zn: (Q, k)
    neighbour redshifts. Returns (estimate, rms of the final fit's residuals,
    fallback flag), each (Q,).
    """
    w = np.ones_like(zn)
    beta, ok = _solve_local(dx, zn, w)
    if clip_sigma:
        resid = zn - (beta[:, :1] + np.einsum("qkd,qd->qk", dx, beta[:, 1:]))
        rms = np.sqrt(np.mean(resid**2, axis=1, keepdims=True))
        w = np.where(ok[:, None], (np.abs(resid) <= clip_sigma * rms).astype(np.float64), 1.0)
        beta2, ok2 = _solve_local(dx, zn, w)
        beta = np.where(ok2[:, None], beta2, beta)
        ok = ok | ok2
    est = beta[:, 0]
    zmin, zmax = zn.min(axis=1), zn.max(axis=1)
    use_mean = ~ok | (est < zmin) | (est > zmax) | ~np.isfinite(est)
    mean = zn.mean(axis=1)
    est = np.where(use_mean, mean, est)
    fit = beta[:, :1] + np.einsum("qkd,qd->qk", dx, beta[:, 1:])
    resid = np.where(use_mean[:, None], zn - mean[:, None], zn - fit)
    wsum = np.maximum(w.sum(axis=1), 1.0)
    return est, np.sqrt((w * resid**2).sum(axis=1) / wsum), use_mean


def fit_predict(x_train, z_train, x_test, k, clip_sigma, batch=4096, progress=None):
    """Local-linear-regression kNN redshifts of ``x_test`` from ``(x_train, z_train)``.

    Parameters
    ----------
    x_train : ndarray (N, d)
    z_train : ndarray (N,)
    x_test : ndarray (M, d)
    k : int
        Neighbours per galaxy (capped at N).
    clip_sigma : float or None
        Residual clipping threshold in units of the residuals' rms; None or 0 disables it.
    batch : int
        Test galaxies per batch.
    progress : callable(done, total) or None

    Returns
    -------
    z : ndarray (M,)
        Estimates.
    z_err : ndarray (M,)
        rms of the final fit's residuals over the neighbours used.
    fallback : ndarray (M,) bool
        True where the neighbours' mean replaced the fit.
    """
    from sklearn.neighbors import KDTree

    x_train = np.asarray(x_train, dtype=np.float64)
    z_train = np.asarray(z_train, dtype=np.float64)
    x_test = np.asarray(x_test, dtype=np.float64)
    if x_train.shape[0] != z_train.shape[0]:
        raise ValueError("x_train and z_train have different lengths")
    if x_train.shape[0] == 0:
        raise ValueError("empty training set")
    k = int(min(k, x_train.shape[0]))
    tree = KDTree(x_train)
    m = x_test.shape[0]
    z = np.empty(m)
    z_err = np.empty(m)
    fallback = np.zeros(m, dtype=bool)
    for s in range(0, m, batch):
        xq = x_test[s:s + batch]
        _, idx = tree.query(xq, k=k)
        est, err, fb = _local_estimate(x_train[idx] - xq[:, None, :], z_train[idx], clip_sigma)
        z[s:s + batch] = est
        z_err[s:s + batch] = err
        fallback[s:s + batch] = fb
        if progress is not None:
            progress(min(s + batch, m), m)
    return z, z_err, fallback


def inner_folds(specobjid, seed, tag, n_splits=N_INNER):
    """Inner cross-validation fold (0 .. n_splits−1) of each galaxy of a training side.

    A permutation drawn from ``seed`` and ``tag`` (the outer fold) over the
    galaxies sorted by specObjID, dealt round-robin: fold sizes differ by at
    most one, and the split depends on the set of specObjID only, never on
    the row order (as ``photoz.dataset.splits.make_splits``).

    Parameters
    ----------
    specobjid : array_like (N,) int64
    seed : int
        The master seed (config ``seed``).
    tag : int
        The outer fold, so that each fold's inner split is drawn independently.
    n_splits : int

    Returns
    -------
    ndarray (N,) int
    """
    from photoz.dataset.splits import _rng

    ids = np.asarray(specobjid, dtype=np.int64)
    n = ids.size
    order = np.argsort(ids, kind="stable")
    dealt = np.empty(n, dtype=np.int64)
    dealt[_rng(seed, "knn_k", tag).permutation(n)] = np.arange(n) % n_splits
    out = np.empty(n, dtype=np.int64)
    out[order] = dealt
    return out


def grid_predict(x_train, z_train, x_test, ks, clip_sigma):
    """Estimates of ``x_test`` for every k of ``ks`` at once: array (len(ks), M).

    One neighbour search with the largest k; each k uses the nearest k of those
    neighbours (the same fit as ``fit_predict``). Every k must be at most the
    training size.
    """
    from sklearn.neighbors import KDTree

    ks = [int(k) for k in ks]
    x_train = np.asarray(x_train, dtype=np.float64)
    z_train = np.asarray(z_train, dtype=np.float64)
    x_test = np.asarray(x_test, dtype=np.float64)
    if max(ks) > x_train.shape[0]:
        raise ValueError(f"k = {max(ks)} exceeds the {x_train.shape[0]} training galaxies")
    tree = KDTree(x_train)
    m = x_test.shape[0]
    out = np.empty((len(ks), m))
    batch = max(1, BATCH_ELEMENTS // max(ks))
    for s in range(0, m, batch):
        xq = x_test[s:s + batch]
        _, idx = tree.query(xq, k=max(ks))
        dx = x_train[idx] - xq[:, None, :]
        zn = z_train[idx]
        for i, k in enumerate(ks):
            out[i, s:s + batch] = _local_estimate(dx[:, :k], zn[:, :k], clip_sigma)[0]
    return out


def choose_k(x, z, specobjid, k_grid, clip_sigma, seed=0, tag=0, n_splits=N_INNER):
    """The k of ``k_grid`` with the lowest inner cross-validated σ_MAD on one training side.

    Every galaxy of ``(x, z)`` is predicted from the other inner folds
    (``inner_folds``) for each candidate k; the candidate whose predictions
    have the lowest σ_MAD (``photoz.metrics``) wins, the larger k on a tie
    (equal to round-off, ``TIE_RTOL``/``TIE_ATOL``).
    Candidates above the smallest inner training set are dropped; if none is
    left, the smallest k of the grid (capped at the training size) is
    returned untried.

    Returns
    -------
    k : int
    scores : dict k -> σ_MAD (empty when nothing was tried)
    """
    z = np.asarray(z, dtype=np.float64)
    n = z.size
    grid = sorted(int(k) for k in k_grid)
    inner = inner_folds(specobjid, seed, tag, n_splits)
    n_fit = n - np.bincount(inner, minlength=n_splits).max()
    cand = [k for k in grid if k <= n_fit]
    if not cand:
        return int(max(1, min(grid[0], n))), {}
    zp = np.empty((len(cand), n))
    for j in range(n_splits):
        held = inner == j
        if held.any():
            zp[:, held] = grid_predict(x[~held], z[~held], x[held], cand, clip_sigma)
    scores = np.array([metrics.sigma_mad(metrics.delta_z(p, z)) for p in zp])
    tied = np.isclose(scores, scores.min(), rtol=TIE_RTOL, atol=TIE_ATOL)
    best = int(np.flatnonzero(tied)[-1])  # the larger k on a tie
    return cand[best], dict(zip(cand, scores.tolist()))


def predict_trial(catalog, trial, folds, knn, source="catalog", seed=0):
    """kNN predictions for every test galaxy of a trial (all its folds).

    ``knn`` is the validated ``knn`` config section (``k``, ``clip_sigma``,
    optional ``k_grid``). With ``k_grid`` (a list of ints) each fold's k is
    chosen from the grid on the fold's training side (``choose_k``, inner folds
    drawn from ``seed``); without it every fold uses ``k``.

    Returns a DataFrame ``specObjID, fold, z_spec, z_phot, z_err, fallback,
    n_train, k`` (``k``: the neighbours used in that fold, at most ``n_train``).
    """
    for col in ("specObjID", "z"):
        if col not in catalog.columns:
            raise ValueError(f"{source}: missing column {col!r}")
    k, clip_sigma, k_grid = int(knn["k"]), knn["clip_sigma"], knn.get("k_grid")
    x = features(catalog, source)
    zs = catalog["z"].to_numpy(dtype=np.float64)
    ids = catalog["specObjID"].to_numpy()
    parts = []
    for f in folds:
        train, test = trial_split(catalog, trial, f)
        if not test.any():
            raise ValueError(f"{source}: fold {f} of the trial has no test galaxies")
        if not train.any():
            raise ValueError(f"{source}: fold {f} of the trial has no training galaxies")
        n_train = int(train.sum())
        t0 = time.time()
        if k_grid:
            k_used, scores = choose_k(x[train], zs[train], ids[train], k_grid, clip_sigma, seed=seed, tag=f)
            log.info("fold %d: k = %d chosen from %s by %d-fold inner cross-validation on %d training galaxies "
                     "(sigma_MAD per k: %s; %.1f s)", f, k_used, list(k_grid), N_INNER, n_train,
                     ", ".join(f"{kk}: {v:.5f}" for kk, v in scores.items()) or "none tried", time.time() - t0)
        else:
            k_used = int(min(k, n_train))
            log.info("fold %d: k = %d (fixed)", f, k_used)
        last = [0.0]

        def progress(done, total, f=f, t0=t0, last=last):
            now = time.time()
            if now - last[0] > 10 or done == total:
                last[0] = now
                log.info("fold %d: %d/%d test galaxies (%.1f s)", f, done, total, now - t0)

        z, zerr, fb = fit_predict(x[train], zs[train], x[test], k=k_used, clip_sigma=clip_sigma, progress=progress)
        log.info("fold %d: trained on %d with k = %d, predicted %d, fallback to neighbour mean for %.2f%%",
                 f, n_train, k_used, int(test.sum()), 100 * fb.mean())
        n_test = int(test.sum())
        parts.append(pd.DataFrame({
            "specObjID": ids[test].astype(np.int64),
            "fold": np.full(n_test, f, dtype=np.int8),
            "z_spec": zs[test],
            "z_phot": z,
            "z_err": zerr,
            "fallback": fb,
            "n_train": np.full(n_test, n_train, dtype=np.int64),
            "k": np.full(n_test, k_used, dtype=np.int64),
        }))
    return pd.concat(parts, ignore_index=True)


def main(argv=None):
    p = argparse.ArgumentParser(prog="photoz knn", description=__doc__.split("\n\n")[0])
    p.add_argument("--catalog", required=True, help="results/shards/catalog.parquet")
    p.add_argument("--trial", required=True, help="trial name (for messages)")
    p.add_argument("--trial-json", required=True, help="the trial's config entry, as JSON")
    p.add_argument("--n-folds", type=int, required=True, help="dataset.n_folds")
    p.add_argument("--k", type=int, required=True, help="knn.k: neighbours per galaxy (without --k-grid)")
    p.add_argument("--clip-sigma", type=float, required=True, help="knn.clip_sigma: residual clipping (0: none)")
    p.add_argument("--k-grid", default="", help="knn.k_grid, comma-separated: k chosen per fold from these")
    p.add_argument("--seed", type=int, default=None, help="master seed (config seed): draws the inner folds of k_grid")
    p.add_argument("--output", required=True)
    p.add_argument("--log", default=None)
    a = p.parse_args(argv)
    setup_logging(a.log, name="photoz")
    trial = json.loads(a.trial_json)
    opts = {"k": a.k, "clip_sigma": a.clip_sigma, "k_grid": [int(v) for v in a.k_grid.split(",") if v.strip()] or None}
    if opts["k_grid"] and a.seed is None:
        p.error("knn k_grid needs --seed (the config's master seed) to draw its inner folds")
    folds = trials.folds(trial, a.n_folds)
    cols = ["specObjID", "z", "fold", *MAG_COLUMNS]
    import pyarrow.parquet as pq

    names = pq.read_schema(a.catalog).names
    from photoz.dataset.splits import is_split_column

    want = [c for c in names if c in cols or is_split_column(c)]
    cat = pd.read_parquet(a.catalog, columns=want)
    log.info("trial %s: %d catalog galaxies, folds %s, %s, clip=%s", a.trial, len(cat), folds,
             f"k from {opts['k_grid']} per fold (seed {a.seed})" if opts["k_grid"] else f"k={opts['k']}",
             opts["clip_sigma"])
    out = predict_trial(cat, trial, folds, opts, source=a.catalog, seed=a.seed if a.seed is not None else 0)
    with atomic_path(a.output) as tmp:
        out.to_parquet(tmp, index=False)
    log.info("wrote %s (%d galaxies)", a.output, len(out))
    return 0
