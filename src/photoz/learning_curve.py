"""The learning curve: the CNN and the kNN against the size of the training set.

An extension of the paper's Sect. 5 (its 2%, 20%, 50% and 80% trials): the
config's ``learning_curve:`` list names trials in ascending training size
(``photoz.trials.learning_curve``). Each is ``train: cv_train, test: cv_test``
and its training side is a nested subset of fold 0's, so every point is
tested on the *same* galaxies: fold 0's test galaxies. A trial tested on every
fold (the main trial) is restricted to its fold-0 rows; a point whose test
galaxies differ from the first point's is an error, not a silent mismatch.

Per point and estimator (``cnn``: the ensemble's ``z_phot`` and PDFs;
``knn``: ``results/knn/{trial}.parquet``), on the shared test galaxies:

    ``n_train``        the estimator's training galaxies, as Table 2 counts
                       them: the CNN without its validation subset, the kNN
                       the whole training side (``photoz.tables.training_size``
                       on fold 0; the kNN's own ``n_train`` column)
    ``n_train_side``   training + validation galaxies (the nested size)
    ``bias, sigma_mad, eta``   ``photoz.metrics`` (η in percent), each with
                       its bootstrap error (``paper.bootstrap`` resamples);
                       for the CNN ``sigma_mad_err`` adds in quadrature the
                       spread between the ensemble's members
                       (``sigma_mad_member_err``: the standard deviation of
                       the members' own σ_MAD over √M, M = ``n_members``; NaN,
                       and so a NaN total, with one member: nothing measures
                       it); ``sigma_mad_boot_err`` is the bootstrap part
    ``crps``           mean CRPS of the PDFs (CNN only; the kNN has no PDF),
                       ``crps_err`` its standard error
    ``ratio_sigma_mad`` σ_MAD(CNN) / σ_MAD(kNN) of the point (both rows); its
                       error ``ratio_sigma_mad_err`` is the paired bootstrap
                       error (the same resampled galaxies for both,
                       ``ratio_boot_err``) and the members' spread carried
                       over to the ratio (``ratio_member_err`` = ratio ×
                       sigma_mad_member_err / σ_MAD(CNN)) in quadrature
    ``slope_sigma_mad`` the least-squares slope of log σ_MAD against log n_train
                       over the estimator's points (:func:`loglog_slope`); its
                       error is propagated from the points' errors and scaled
                       by sqrt(χ²/dof) of the fit when that exceeds 1 (the
                       misfit of a straight line, ``slope_chi2``, ``slope_dof``);
                       NaN with two points (no degree of freedom to measure misfit)

Command: ``python -m photoz learning-curve --config-json JSON --catalog
results/shards/catalog.parquet --ensemble TRIAL=PATH ... --knn TRIAL=PATH ...
--csv results/learning_curve.csv --tex results/tables/learning_curve.tex``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from photoz import latex, metrics
from photoz.tables import TrialPredictions

__all__ = [
    "ESTIMATORS", "COLUMNS", "TEST_FOLD", "fold_rows", "point_scores", "ratio_bootstrap", "member_spread",
    "loglog_slope",
    "add_summaries", "learning_curve", "latex_table", "read_curve", "macros", "main",
]

log = logging.getLogger("photoz.learning_curve")

#: The estimators of the curve, in the order of the rows of each point.
ESTIMATORS = ("cnn", "knn")
#: The fold whose test galaxies every point is scored on.
TEST_FOLD = 0
#: Columns of ``results/learning_curve.csv`` (docs/dataflow.md, Sect. 5).
COLUMNS = ("trial", "estimator", "network", "n_train", "n_train_side", "n_test", "bias", "bias_err",
           "sigma_mad", "sigma_mad_err", "eta", "eta_err", "crps", "crps_err", "ratio_sigma_mad",
           "ratio_sigma_mad_err", "slope_sigma_mad", "slope_sigma_mad_err", "n_points", "n_members",
           "sigma_mad_boot_err", "sigma_mad_member_err", "ratio_boot_err", "ratio_member_err", "slope_chi2",
           "slope_dof")


# --------------------------------------------------------------------------
# per point
# --------------------------------------------------------------------------
def fold_rows(df, fold=TEST_FOLD, source="predictions"):
    """Rows of a predictions table (with a ``fold`` column) tested on ``fold``, in specObjID order.

    Raises ``ValueError`` naming ``source`` when the column is missing or no row is on that fold.
    """
    if "fold" not in df.columns:
        raise ValueError(f"{source}: no fold column (docs/dataflow.md)")
    out = df[df["fold"].to_numpy() == fold].sort_values("specObjID").reset_index(drop=True)
    if out.empty:
        raise ValueError(f"{source}: no test galaxy on fold {fold}; a learning-curve trial must test fold {fold}")
    return out


def point_scores(z_phot, z_spec, crps, n_bootstrap, seed):
    """Bias, σ_MAD, η (percent) with bootstrap errors, and the mean CRPS ± its standard error.

    Parameters
    ----------
    z_phot, z_spec : array_like, shape (N,)
    crps : array_like, shape (N,), optional
        Per-galaxy CRPS (``photoz.metrics.crps``); NaN columns without it.
    n_bootstrap, seed : int
        Resamples and seed of ``photoz.metrics.bootstrap``.

    Returns
    -------
    dict with ``n_test, bias, bias_err, sigma_mad, sigma_mad_err, eta, eta_err, crps, crps_err``.
    """
    pm = metrics.point_metrics(z_phot, z_spec)
    be = metrics.bootstrap(z_phot, z_spec, n_bootstrap, seed)
    out = {"n_test": pm["n"], **{k: pm[k] for k in ("bias", "sigma_mad", "eta")}, **be}
    if crps is None:
        out["crps"] = out["crps_err"] = np.nan
    else:
        c = np.asarray(crps, dtype=np.float64)
        out["crps"] = float(np.mean(c))
        out["crps_err"] = float(np.std(c, ddof=1) / np.sqrt(c.size)) if c.size > 1 else np.nan
    return out


def ratio_bootstrap(dz_a, dz_b, n_resamples, seed, chunk_elements=20_000_000):
    """σ_MAD(a) / σ_MAD(b) of paired residuals and its bootstrap error.

    Both samples hold the residuals of the same galaxies (same order); each
    resample draws the same galaxies for both, so the error reflects only
    what differs between the estimators.

    Returns
    -------
    (ratio, error) : floats (error NaN for ``n_resamples`` 0)
    """
    a, b = np.asarray(dz_a, dtype=np.float64), np.asarray(dz_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired residuals must be two non-empty 1-D arrays of one shape; got {a.shape}, {b.shape}")
    ratio = float(metrics.sigma_mad(a) / metrics.sigma_mad(b))
    if n_resamples <= 0:
        return ratio, float("nan")
    rng = np.random.default_rng(seed)
    per_block = max(1, chunk_elements // a.size)
    out, done = [], 0
    while done < n_resamples:
        m = min(per_block, n_resamples - done)
        idx = rng.integers(0, a.size, size=(m, a.size))
        out.append(metrics.sigma_mad(a[idx], axis=1) / metrics.sigma_mad(b[idx], axis=1))
        done += m
    r = np.concatenate(out)
    return ratio, float(np.std(r[np.isfinite(r)], ddof=1 if n_resamples > 1 else 0))


def member_spread(member_z_phot, z_spec):
    """Spread of an ensemble's σ_MAD from its members: std of the members' own σ_MAD over √M.

    ``member_z_phot``: shape (M, N), each member's z_phot of the same test
    galaxies. The σ_MAD of another ensemble of M members (other seeds) would
    differ by about this much. Returns ``(error, member σ_MAD values)``; NaN with fewer than 2 members.
    """
    zp = np.atleast_2d(np.asarray(member_z_phot, dtype=np.float64))
    vals = np.array([metrics.sigma_mad(metrics.delta_z(z, z_spec)) for z in zp])
    if len(vals) < 2:
        return float("nan"), vals
    return float(np.std(vals, ddof=1) / np.sqrt(len(vals))), vals


def loglog_slope(n, y, y_err=None):
    """Least-squares slope of log10 y against log10 n, its error, and the misfit.

    The fit is unweighted (each point counts once). Its error is propagated
    from ``y_err`` (the points taken as independent; the nested training sets
    and the shared test galaxies correlate them positively, so this overstates
    the error) and multiplied by sqrt(χ²/dof) when the points scatter about
    the line by more than their errors (χ² = Σ ((log y − line) / σ_log y)²,
    dof = points − 2): a curve that is no straight line has a less certain
    average slope. With two points (dof 0) misfit cannot be measured and the
    error is NaN; without errors it is NaN. Points with a non-positive or
    missing ``n`` or ``y`` are left out.

    Returns
    -------
    (slope, slope_err, n_points, chi2, dof) : fewer than 2 usable points give NaN slopes.
    """
    n, y = np.asarray(n, dtype=np.float64), np.asarray(y, dtype=np.float64)
    e = np.full_like(y, np.nan) if y_err is None else np.asarray(y_err, dtype=np.float64)
    ok = np.isfinite(n) & np.isfinite(y) & (n > 0) & (y > 0)
    k = int(ok.sum())
    nan = float("nan")
    if k < 2:
        return nan, nan, k, nan, max(k - 2, 0)
    x, ly = np.log10(n[ok]), np.log10(y[ok])
    dx = x - x.mean()
    sxx = float(np.sum(dx * dx))
    if sxx == 0:
        return nan, nan, k, nan, k - 2
    slope = float(np.sum(dx * (ly - ly.mean())) / sxx)
    sig_ly = e[ok] / (y[ok] * np.log(10.0))  # error of log10 y
    err = float(np.sqrt(np.sum((dx / sxx) ** 2 * sig_ly ** 2)))
    dof = k - 2
    resid = ly - (ly.mean() + slope * dx)
    with np.errstate(invalid="ignore", divide="ignore"):
        chi2 = float(np.sum((resid / sig_ly) ** 2))
    if dof == 0 or not np.isfinite(chi2):
        return slope, nan, k, chi2 if dof else nan, dof
    return slope, err * max(1.0, float(np.sqrt(chi2 / dof))), k, chi2, dof


def add_summaries(df):
    """``df`` (one row per trial and estimator) with the slope columns filled per estimator.

    ``ratio_sigma_mad`` is computed on the galaxies (:func:`learning_curve`);
    the slope needs the whole curve, so it is added here.
    """
    df = df.copy()
    for est in pd.unique(df["estimator"]):
        sel = df["estimator"] == est
        s, e, k, chi2, dof = loglog_slope(df.loc[sel, "n_train"], df.loc[sel, "sigma_mad"], df.loc[sel, "sigma_mad_err"])
        df.loc[sel, "slope_sigma_mad"], df.loc[sel, "slope_sigma_mad_err"], df.loc[sel, "n_points"] = s, e, k
        df.loc[sel, "slope_chi2"], df.loc[sel, "slope_dof"] = chi2, dof
    return df


# --------------------------------------------------------------------------
# the curve
# --------------------------------------------------------------------------
def _check_same_galaxies(ids, ref_ids, what, ref_what):
    if len(ids) != len(ref_ids) or not np.array_equal(ids, ref_ids):
        only = np.setdiff1d(ids, ref_ids)[:3].tolist() or np.setdiff1d(ref_ids, ids)[:3].tolist()
        raise ValueError(f"{what} tests {len(ids)} galaxies of fold {TEST_FOLD}, {ref_what} {len(ref_ids)}, "
                         f"not the same ones (e.g. specObjID {only}): every learning-curve point must be tested "
                         "on the same galaxies (train: cv_train, test: cv_test)")


def _fold0(t, preds, trials):
    """Trial ``t``'s fold-0 ensemble rows, their PDFs (the same order) and its kNN rows, checked."""
    ens_src, knn_src = preds.sources(t)
    for have, what, src in ((preds.ensembles, "ensemble", ens_src), (preds.knns, "kNN", knn_src)):
        if t not in have:
            raise ValueError(f"learning curve: no {what} predictions for trial {t!r} ({src})")
    if t not in trials:
        raise ValueError(f"learning curve: trial {t!r} is not in the config's trials")
    ens_all, pdf_all = preds.ensembles[t]
    keep = np.flatnonzero(ens_all["fold"].to_numpy() == TEST_FOLD)
    ens = fold_rows(ens_all, source=ens_src)
    pdf = pdf_all[keep[np.argsort(ens_all["specObjID"].to_numpy()[keep], kind="stable")]]
    knn = fold_rows(preds.knns[t], source=knn_src)
    ids = ens["specObjID"].to_numpy()
    _check_same_galaxies(knn["specObjID"].to_numpy(), ids, f"the kNN of trial {t!r} ({knn_src})", ens_src)
    if "z_spec" in knn.columns:
        d = np.abs(knn["z_spec"].to_numpy(dtype=np.float64) - ens["z_spec"].to_numpy(dtype=np.float64))
        if d.size and d.max() > 1e-4:
            raise ValueError(f"{knn_src}: z_spec of specObjID {ids[int(np.argmax(d))]} differs from {ens_src}")
    return ens, pdf, knn


def _member_z(t, member_preds, ids, mids):
    """Each member's z_phot of the galaxies ``ids`` (in that order)."""
    out = []
    for mid_ids, mpdf in member_preds:
        pos = pd.Series(np.arange(len(mid_ids)), index=np.asarray(mid_ids)).reindex(ids)
        if pos.isna().any():
            raise ValueError(f"learning curve: a member of trial {t!r} lacks {int(pos.isna().sum())} of its "
                             f"fold-{TEST_FOLD} test galaxies, e.g. specObjID {ids[pos.isna().to_numpy()][:3].tolist()}")
        out.append(metrics.z_phot(np.asarray(mpdf)[pos.to_numpy(dtype=int)], mids))
    return out


def _training_sizes(t, knn, spec, catalog, knn_src):
    """``({"cnn": n, "knn": n}, the training side)`` of trial ``t`` on fold 0; the kNN's own count must be the side's."""
    from photoz.tables import training_size

    side = training_size(catalog, spec, [TEST_FOLD], exclude_validation=False)
    n_knn = knn["n_train"].iloc[0] if "n_train" in knn.columns else side
    if int(n_knn) != int(side):
        raise ValueError(f"{knn_src}: the kNN of trial {t!r} trained on {int(n_knn)} galaxies, but the trial's "
                         f"training side (fold {TEST_FOLD}, with validation) has {int(side)}: it was not made "
                         "with this trial's selection (train_size / train_fraction)")
    return {"cnn": training_size(catalog, spec, [TEST_FOLD], exclude_validation=True), "knn": float(n_knn)}, side


def _trial_rows(t, ens, pdf, knn, mem_z, edges, n_bootstrap, seed):
    """The CNN's and the kNN's scores of one point, with the ratio and its errors (bootstrap, members);
    ``seed``: the point's own (the scores draw from it, the ratio from ``seed + 2``)."""
    zs = ens["z_spec"].to_numpy(dtype=np.float64)
    crps = metrics.crps(pdf, zs, edges)
    zp = {"cnn": ens["z_phot"].to_numpy(dtype=np.float64), "knn": knn["z_phot"].to_numpy(dtype=np.float64)}
    ratio, ratio_boot = ratio_bootstrap(metrics.delta_z(zp["cnn"], zs), metrics.delta_z(zp["knn"], zs),
                                        n_bootstrap, seed + 2)
    member_err, _ = member_spread(mem_z, zs) if mem_z else (float("nan"), [])
    ratio_member = ratio * member_err / float(metrics.sigma_mad(metrics.delta_z(zp["cnn"], zs)))
    ratio_err = float(np.hypot(ratio_boot, ratio_member))
    rows = []
    for est in ESTIMATORS:
        s = point_scores(zp[est], zs, crps if est == "cnn" else None, n_bootstrap, seed)
        boot = s["sigma_mad_err"]
        mem = member_err if est == "cnn" else 0.0  # the kNN is deterministic: one fit, no members
        s["sigma_mad_err"] = float(np.hypot(boot, mem))
        rows.append({**s, "estimator": est, "ratio_sigma_mad": ratio, "ratio_sigma_mad_err": ratio_err,
                     "n_members": len(mem_z) if est == "cnn" else 0, "sigma_mad_boot_err": boot,
                     "sigma_mad_member_err": mem, "ratio_boot_err": ratio_boot, "ratio_member_err": ratio_member})
    log.info("%s: sigma_mad(CNN)/sigma_mad(kNN) = %.3f +- %.3f (bootstrap %.3f, %d members' spread %.3f)", t,
             ratio, ratio_err, ratio_boot, len(mem_z), ratio_member)
    return rows


def learning_curve(names, preds, catalog, trials, bin_edges, networks, n_bootstrap, seed):
    """Every point of the learning curve, one row per (trial, estimator).

    Parameters
    ----------
    names : list of str
        The config's ``learning_curve`` trials, ascending training size.
    preds : photoz.tables.TrialPredictions
        The trials' ensembles, kNN predictions and members.
    catalog : DataFrame
        The shard catalog (``specObjID, fold, val_*, sel_*``, ...): the training sizes.
    trials : dict trial -> spec
        The config's trial entries (``train, test, folds``, sizes).
    networks : dict trial -> str, optional
        The network each trial's CNN trains (a column of the table).
    bin_edges : ndarray (n_bins + 1,)
        Redshift bin edges of the PDFs (the CRPS).
    n_bootstrap, seed : int

    Returns
    -------
    DataFrame with :data:`COLUMNS`.
    """
    from photoz import bins as zbins

    if not names:
        raise ValueError("the learning curve has no trials (config learning_curve: is empty)")
    networks = networks or {}
    rows, ref = [], None
    for i, t in enumerate(names):
        ens_src, knn_src = preds.sources(t)
        ens, pdf, knn = _fold0(t, preds, trials)
        ids = ens["specObjID"].to_numpy()
        ref = ref or (ids, f"trial {t!r} ({ens_src})")
        _check_same_galaxies(ids, ref[0], f"trial {t!r} ({ens_src})", ref[1])
        edges = bin_edges
        if pdf.shape[1] != len(edges) - 1:
            raise ValueError(f"{ens_src}: PDFs have {pdf.shape[1]} bins, the config's bins.n is {len(edges) - 1}")
        mem_z = _member_z(t, preds.members.get(t, []), ids, zbins.centres(np.asarray(edges, dtype=np.float64)))
        n_train, side = _training_sizes(t, knn, trials[t], catalog, knn_src)
        for r in _trial_rows(t, ens, pdf, knn, mem_z, edges, n_bootstrap, seed + 1000 * i):
            est = r["estimator"]
            rows.append({"trial": t, "estimator": est, "network": networks.get(t, "") if est == "cnn" else "",
                         "n_train": n_train[est], "n_train_side": side, **r})
            log.info("%s %s: n_train=%d n_test=%d sigma_mad=%.5f +- %.5f eta=%.2f%% crps=%s", t, est, n_train[est],
                     r["n_test"], r["sigma_mad"], r["sigma_mad_err"], r["eta"],
                     "-" if not np.isfinite(r["crps"]) else f"{r['crps']:.5f}")
    df = add_summaries(pd.DataFrame(rows))
    for est in ESTIMATORS:
        r = df[df["estimator"] == est].iloc[0]
        log.info("%s: d log sigma_mad / d log N = %.3f +- %.3f over %d points", est, r["slope_sigma_mad"],
                 r["slope_sigma_mad_err"], r["n_points"])
    return df[list(COLUMNS)]


# --------------------------------------------------------------------------
# LaTeX
# --------------------------------------------------------------------------
def latex_table(df):
    """``tabular`` fragment: one line per trial, the CNN and the kNN side by side, the slopes last."""
    FMT = latex.FMT
    lines = [r"\begin{tabular}{lrrrllllll}", r"\hline",
             r" & \multicolumn{2}{c}{$N_\mathrm{train}$} & & \multicolumn{3}{c}{CNN} & \multicolumn{2}{c}{kNN} & \\",
             r"Trial & CNN & kNN & $N_\mathrm{test}$ & $\sigma_\mathrm{MAD}$ & $\eta$ (\%) & CRPS"
             r" & $\sigma_\mathrm{MAD}$ & $\eta$ (\%) & $\sigma_\mathrm{MAD}$ ratio \\", r"\hline"]
    for t in pd.unique(df["trial"]):
        c = df[(df["trial"] == t) & (df["estimator"] == "cnn")].iloc[0]
        k = df[(df["trial"] == t) & (df["estimator"] == "knn")].iloc[0]
        net = c.get("network", "")
        label = latex.escape(t) + (f" ({latex.escape(net)})" if isinstance(net, str) and net else "")
        cells = [label, latex.count(c["n_train"]), latex.count(k["n_train"]), latex.count(c["n_test"]),
                 latex.pm(c["sigma_mad"], c["sigma_mad_err"], FMT["sigma_mad"]), latex.pm(c["eta"], c["eta_err"], FMT["eta"]),
                 latex.pm(c["crps"], c["crps_err"], FMT["crps"]),
                 latex.pm(k["sigma_mad"], k["sigma_mad_err"], FMT["sigma_mad"]), latex.pm(k["eta"], k["eta_err"], FMT["eta"]),
                 latex.pm(c["ratio_sigma_mad"], c["ratio_sigma_mad_err"], ".3f")]
        lines.append(" & ".join(cells) + r" \\")
    c = df[df["estimator"] == "cnn"].iloc[0]
    k = df[df["estimator"] == "knn"].iloc[0]
    lines += [r"\hline",
              r"\multicolumn{4}{l}{slope $\mathrm{d}\log\sigma_\mathrm{MAD}/\mathrm{d}\log N_\mathrm{train}$} & "
              + latex.pm(c["slope_sigma_mad"], c["slope_sigma_mad_err"], ".3f") + r" & & & "
              + latex.pm(k["slope_sigma_mad"], k["slope_sigma_mad_err"], ".3f") + r" & & \\",
              r"\hline",
              r"\multicolumn{10}{l}{\footnotesize Every trial tested on the same galaxies (fold "
              + str(TEST_FOLD) + r"'s test set); $\pm$: bootstrap errors over the test galaxies, for the CNN's"
              r" $\sigma_\mathrm{MAD}$ and the ratio with the spread between members added in quadrature;"
              r" slopes: scaled by $\sqrt{\chi^2/\mathrm{dof}}$ of the fit where above 1 (CRPS: standard error).} \\",
              r"\end{tabular}", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# the paper
# --------------------------------------------------------------------------
def read_curve(path):
    """``results/learning_curve.csv``, checked for its columns; clear error naming the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"learning-curve file {path} does not exist (rule learning_curve)")
    df = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} misses column(s) {', '.join(missing)} (docs/dataflow.md, Sect. 5)")
    bad = sorted(set(df["estimator"]) - set(ESTIMATORS))
    if bad:
        raise ValueError(f"{path}: unknown estimator(s) {bad}; allowed: {', '.join(ESTIMATORS)}")
    return df


def macros(path):
    """The paper's learning-curve macros from ``results/learning_curve.csv``, or ``None`` for no path.

    ``LcNPoints`` (0 when there is no curve: ``paper/ms.tex`` leaves the
    subsection out), the smallest and largest training sizes, the shared test
    size, the ratios at both ends, the slopes, and the comparing sentences
    (``photoz.wording.learning_curve_end``, ``learning_curve_slopes``).
    """
    from photoz import wording

    keys = ("LcNPoints", "LcNTrainMin", "LcNTrainMax", "LcNTest", "LcRatioSmallest", "LcRatioLargest",
            "LcSlopeCnn", "LcSlopeKnn", "LcSmallestSentence", "LcLargestSentence", "LcSlopeSentence")
    if path is None:
        return {**{k: "--" for k in keys}, "LcNPoints": "0"}
    df = read_curve(path)
    cnn = df[df["estimator"] == "cnn"].sort_values("n_train").reset_index(drop=True)
    knn = df[df["estimator"] == "knn"].set_index("trial")
    if cnn.empty:
        return {**{k: "--" for k in keys}, "LcNPoints": "0"}
    lo, hi = cnn.iloc[0], cnn.iloc[-1]
    m = {"LcNPoints": str(len(cnn)), "LcNTrainMin": latex.count(lo["n_train"]),
         "LcNTrainMax": latex.count(hi["n_train"]), "LcNTest": latex.count(hi["n_test"])}
    for name, r in (("Smallest", lo), ("Largest", hi)):
        m[f"LcRatio{name}"] = latex.pm(r["ratio_sigma_mad"], r["ratio_sigma_mad_err"], ".3f")
    m["LcSlopeCnn"] = latex.pm(cnn["slope_sigma_mad"].iloc[0], cnn["slope_sigma_mad_err"].iloc[0], ".3f")
    ks = knn["slope_sigma_mad"].iloc[0] if len(knn) else np.nan
    kse = knn["slope_sigma_mad_err"].iloc[0] if len(knn) else np.nan
    m["LcSlopeKnn"] = latex.pm(ks, kse, ".3f")
    m["LcSmallestSentence"] = "" if len(cnn) < 2 else wording.learning_curve_end(
        lo["ratio_sigma_mad"], lo["ratio_sigma_mad_err"], latex.count(lo["n_train"]), "smallest")
    m["LcLargestSentence"] = wording.learning_curve_end(hi["ratio_sigma_mad"], hi["ratio_sigma_mad_err"],
                                                        latex.count(hi["n_train"]), "largest")
    m["LcSlopeSentence"] = wording.learning_curve_slopes(cnn["slope_sigma_mad"].iloc[0],
                                                         cnn["slope_sigma_mad_err"].iloc[0], ks, kse)
    return m


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------
def _existing(paths, what):
    for t, p in paths.items():
        if not Path(p).exists():
            raise FileNotFoundError(f"{p}: the {what} predictions of learning-curve trial {t!r} do not exist")
    return paths


def main(argv=None):
    from photoz import bins as zbins
    from photoz.io import atomic_path, setup_logging
    from photoz.tables import parse_pairs, read_catalog, read_ensemble

    p = argparse.ArgumentParser(prog="photoz learning-curve", description=__doc__.split("\n")[0])
    p.add_argument("--config-json", required=True,
                   help="JSON with keys learning_curve, trials, networks (trial -> network), bins, bootstrap, seed")
    p.add_argument("--catalog", required=True, help="results/shards/catalog.parquet")
    p.add_argument("--ensemble", action="append", default=[], metavar="TRIAL=PATH")
    p.add_argument("--knn", action="append", default=[], metavar="TRIAL=PATH")
    p.add_argument("--member", action="append", default=[], metavar="TRIAL=PATH",
                   help="a member's fold-0 predictions (results/predictions/TRIAL/fold0/seedS.npz); repeatable")
    p.add_argument("--csv", required=True)
    p.add_argument("--tex", required=True)
    p.add_argument("--log", default=None)
    a = p.parse_args(argv)
    setup_logging(a.log, name="photoz")
    cfg = json.loads(a.config_json)
    names = list(cfg["learning_curve"])
    ens_paths = _existing(parse_pairs(a.ensemble, "ensemble"), "ensemble")
    knn_paths = _existing(parse_pairs(a.knn, "knn"), "kNN")
    for t in names:
        for paths, what in ((ens_paths, "--ensemble"), (knn_paths, "--knn")):
            if t not in paths:
                raise ValueError(f"learning curve: trial {t!r} has no {what} TRIAL=PATH")
    ensembles = {t: read_ensemble(ens_paths[t]) for t in names}
    knns = {t: pd.read_parquet(knn_paths[t]) for t in names}
    members = {}
    for v in a.member:
        if "=" not in v:
            raise ValueError(f"--member expects TRIAL=PATH, got {v!r}")
        t, path = v.split("=", 1)
        if not Path(path).exists():
            raise FileNotFoundError(f"{path}: member predictions of learning-curve trial {t!r} do not exist")
        with np.load(path) as f:
            members.setdefault(t, []).append((f["specObjID"], f["pdf"]))
    cat = read_catalog(a.catalog)  # every column: the selections may use any (fold, val_*, sel_*, rank, ...)
    b = cfg["bins"]
    preds = TrialPredictions(ensembles, knns, members, ens_paths, knn_paths)
    df = learning_curve(names, preds, cat, cfg["trials"], networks=cfg["networks"],
                        bin_edges=zbins.edges(b["n"], b["z_min"], b["z_max"]), n_bootstrap=cfg["bootstrap"],
                        seed=cfg["seed"])
    with atomic_path(a.csv) as tmp:
        df.to_csv(tmp, index=False, float_format="%.8g")
    with atomic_path(a.tex) as tmp:
        Path(tmp).write_text(latex_table(df))
    log.info("wrote %s and %s", a.csv, a.tex)
    return 0
