"""The kNN baseline: our implementation of the method of Beck et al. (2016, "B16").

B16 estimate the redshift of a galaxy from its ``k`` nearest neighbours in the
five-dimensional space of the r magnitude and the u−g, g−r, r−i, i−z colours,
by a local linear regression z ≈ a + b·(x − x_0) fitted to the neighbours
(Csabai et al. 2007; Beck et al. 2016). Here:

* features: dereddened Petrosian magnitudes of the catalog
  (``dered_petro_{u,g,r,i,z}``), unscaled, Euclidean distance;
* ``k`` neighbours (default 100) from the trial's training side;
* a least-squares linear fit in the features centred on the query galaxy,
  so that the intercept ``a`` is the estimate; one pass of ``clip_sigma``
  (default 3) residual clipping, then a refit on the surviving neighbours;
* if the fit is degenerate, or its value falls outside the redshift range of
  the neighbours (an extrapolation), the mean redshift of the neighbours is
  used instead (the fallback of Csabai et al. 2007); the rate is logged.

Training and test galaxies follow the trial's selections exactly as the CNN's
(docs/dataflow.md, Sect. 3; ``photoz.dataset.splits.selection_masks``): for
``cv_*`` trials, fold f tests ``fold == f`` and trains on every other fold; for
``{name}_*`` trials, ``sel_{name}`` 1 is train and 2 is test (fold 0 only). The kNN has no hyper-parameter search, so
its training set is the whole training side, validation galaxies included.

Command::

    python -m photoz knn --catalog results/shards/catalog.parquet \\
        --trial main --trial-json '{"train": "cv_train", ...}' --n-folds 5 \\
        --knn-json '{"k": 100, "clip_sigma": 3.0}' --output results/knn/main.parquet
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
import pandas as pd

from photoz import trials
from photoz.io import atomic_path, setup_logging

__all__ = ["BANDS", "features", "trial_split", "fit_predict", "predict_trial", "main"]

BANDS = ("u", "g", "r", "i", "z")
MAG_COLUMNS = tuple(f"dered_petro_{b}" for b in BANDS)
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
    (the kNN has no model selection that would need them held out).

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


def fit_predict(x_train, z_train, x_test, k=100, clip_sigma=3.0, batch=4096, progress=None):
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
        dx = x_train[idx] - xq[:, None, :]
        zn = z_train[idx]
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
        z[s:s + batch] = est
        z_err[s:s + batch] = np.sqrt((w * resid**2).sum(axis=1) / wsum)
        fallback[s:s + batch] = use_mean
        if progress is not None:
            progress(min(s + batch, m), m)
    return z, z_err, fallback


def predict_trial(catalog, trial, folds, k=100, clip_sigma=3.0, source="catalog"):
    """kNN predictions for every test galaxy of a trial (all its folds).

    Returns a DataFrame ``specObjID, fold, z_spec, z_phot, z_err, fallback``.
    """
    for col in ("specObjID", "z"):
        if col not in catalog.columns:
            raise ValueError(f"{source}: missing column {col!r}")
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
        t0 = time.time()
        last = [0.0]

        def progress(done, total, f=f, t0=t0, last=last):
            now = time.time()
            if now - last[0] > 10 or done == total:
                last[0] = now
                log.info("fold %d: %d/%d test galaxies (%.1f s)", f, done, total, now - t0)

        z, zerr, fb = fit_predict(x[train], zs[train], x[test], k=k, clip_sigma=clip_sigma, progress=progress)
        log.info("fold %d: trained on %d, predicted %d, fallback to neighbour mean for %.2f%%",
                 f, int(train.sum()), int(test.sum()), 100 * fb.mean())
        parts.append(pd.DataFrame({
            "specObjID": ids[test].astype(np.int64),
            "fold": np.full(int(test.sum()), f, dtype=np.int8),
            "z_spec": zs[test],
            "z_phot": z,
            "z_err": zerr,
            "fallback": fb,
            "n_train": np.full(int(test.sum()), int(train.sum()), dtype=np.int64),
        }))
    return pd.concat(parts, ignore_index=True)


def main(argv=None):
    p = argparse.ArgumentParser(prog="photoz knn", description=__doc__.split("\n\n")[0])
    p.add_argument("--catalog", required=True, help="results/shards/catalog.parquet")
    p.add_argument("--trial", required=True, help="trial name (for messages)")
    p.add_argument("--trial-json", required=True, help="the trial's config entry, as JSON")
    p.add_argument("--n-folds", type=int, required=True, help="dataset.n_folds")
    p.add_argument("--knn-json", default="{}", help='{"k": 100, "clip_sigma": 3.0}')
    p.add_argument("--output", required=True)
    p.add_argument("--log", default=None)
    a = p.parse_args(argv)
    setup_logging(a.log, name="photoz")
    trial = json.loads(a.trial_json)
    opts = {"k": 100, "clip_sigma": 3.0, **json.loads(a.knn_json)}
    folds = trials.folds(trial, a.n_folds)
    cols = ["specObjID", "z", "fold", *MAG_COLUMNS]
    import pyarrow.parquet as pq

    names = pq.read_schema(a.catalog).names
    want = [c for c in names if c in cols or c.startswith(("sel_", "val_"))]
    cat = pd.read_parquet(a.catalog, columns=want)
    log.info("trial %s: %d catalog galaxies, folds %s, k=%d, clip=%s", a.trial, len(cat), folds, opts["k"], opts["clip_sigma"])
    out = predict_trial(cat, trial, folds, k=int(opts["k"]), clip_sigma=opts["clip_sigma"], source=a.catalog)
    with atomic_path(a.output) as tmp:
        out.to_parquet(tmp, index=False)
    log.info("wrote %s (%d galaxies)", a.output, len(out))
    return 0
