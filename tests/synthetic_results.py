"""Small synthetic result files in the shapes of docs/dataflow.md, for the tests.

These files let the figure scripts and the paper be exercised without running
the workflow. They are *test fixtures*: nothing in the workflow reads them, and
the paper built from them says so through its data mode ("synthetic-test").
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from photoz import bins

__all__ = ["write_results"]

BANDS = ["u", "g", "r", "i", "z"]


def _pdfs(rng, z_center, sigma, n_bins=180, z_max=0.4):
    mid = bins.midpoints(n_bins, 0.0, z_max)
    p = np.exp(-0.5 * ((mid[None, :] - z_center[:, None]) / sigma[:, None]) ** 2) + 1e-6
    p /= p.sum(axis=1, keepdims=True)
    return p.astype(np.float32)


def _summaries(pdf, z_spec, n_bins=180, z_max=0.4):
    mid = bins.midpoints(n_bins, 0.0, z_max)
    edges = bins.edges(n_bins, 0.0, z_max)
    cdf = np.cumsum(pdf, axis=1)
    z_phot = pdf @ mid
    k = bins.to_class(z_spec, n_bins, 0.0, z_max)
    frac = (z_spec - edges[k]) / (edges[1] - edges[0])
    pit = cdf[np.arange(len(k)), k] - pdf[np.arange(len(k)), k] * (1 - frac)
    lo = np.array([np.interp(0.16, c, edges[1:]) for c in cdf])
    hi = np.array([np.interp(0.84, c, edges[1:]) for c in cdf])
    step = (edges[None, 1:] >= z_spec[:, None]).astype(float)
    crps = ((cdf - step) ** 2).sum(axis=1) * (edges[1] - edges[0])
    return z_phot, pit, hi - lo, crps


def write_results(root, n=1500, n_images=48, members=2, n_folds=5, seed=0):
    """Write a synthetic ``results/`` tree under ``root``; return the path of ``results``."""
    rng = np.random.default_rng(seed)
    res = Path(root) / "results"
    for d in ("shards", "ensemble", "knn", "cutouts", "tables", "paper", "figures"):
        (res / d).mkdir(parents=True, exist_ok=True)
    # the SWarp check of a run cut with the native resampler (the default), in its format
    band = {"n_galaxies": 40, "n_no_sigma": 0, "n_pixels": 40 * 4096, "median_abs_diff_sigma": 2e-6,
            "p95_abs_diff_sigma": 3e-5, "max_abs_diff_sigma": 0.05, "n_flux_ratio": 30, "median_flux_ratio": 1.0,
            "max_abs_ratio_minus_1": 1e-5, "median_sigma": 0.02}
    check = {"n_requested": 40, "n_pool": n, "n_drawn": 40, "n_compared": 40, "n_failed": 0,
             "bands": {b: dict(band) for b in BANDS}, "worst_median_abs_diff_sigma": 2e-6,
             "worst_p95_abs_diff_sigma": 3e-5, "worst_abs_flux_ratio_minus_1": 1e-5, "agree_sigma": 0.1,
             "background_radius_pix": 24.0, "aperture_radius_pix": 8.0, "ratio_min_snr": 10.0, "agree": True}
    (res / "cutouts" / "swarp_check.json").write_text(json.dumps(check, indent=1) + "\n")
    ids = np.arange(n, dtype=np.int64) * 1000 + 7
    s82 = rng.random(n) < 0.15
    sz = (~s82) & (rng.random(n) < 0.1)
    ra = np.where(s82, rng.uniform(20, 21.5, n), np.where(sz, rng.uniform(150.3, 150.5, n), rng.uniform(149.9, 151.0, n)))
    dec = np.where(s82, rng.uniform(-0.5, 0.5, n), np.where(sz, rng.uniform(29.7, 30.3, n), rng.uniform(30.5, 31.0, n)))
    z = np.clip(rng.gamma(6.0, 0.02, n), 0.005, 0.39)
    ebv = rng.gamma(2.0, 0.02, n)
    cat = pd.DataFrame({"specObjID": ids, "objID": ids + 1, "ra": ra, "dec": dec, "z": z, "zErr": 1e-4, "ebv": ebv})
    for b in BANDS:
        cat[f"dered_petro_{b}"] = 17.0 + rng.normal(0, 0.5, n)
        cat[f"petroMagErr_{b}"] = np.where(s82, np.nan, rng.lognormal(np.log(0.02), 0.6, n))
        cat[f"extinction_{b}"] = ebv * 3.0
        cat[f"psffwhm_{b}"] = rng.normal(1.4, 0.2, n)
        cat[f"sky_{b}"] = 0.1
    cat["expAB_r"] = rng.uniform(0.1, 1.0, n)
    cat["deVAB_r"] = rng.uniform(0.3, 1.0, n)
    cat["fracDeV_r"] = rng.uniform(0, 1, n)
    cat["petroR50_r"] = 2.0
    for c in ("run", "rerun", "camcol", "field"):
        cat[c] = 1
    cat["zphot"] = z + rng.normal(0.005, 0.02, n) * (1 + z)
    cat["dzphot"] = 0.02
    cat.to_parquet(res / "catalog.parquet")
    sh = cat.copy()
    sh["shard"] = 0
    sh["row"] = np.arange(n) % n_images
    sh["n_epochs"] = np.where(s82, rng.integers(10, 60, n), 1)
    sh["stripe82"] = s82
    for b in BANDS:
        sh[f"nframes_{b}"] = np.where(s82, sh["n_epochs"], rng.integers(1, 3, n))
        sh[f"coverage_{b}"] = np.clip(1 - rng.exponential(0.02, n), 0.9, 1.0).astype(np.float32)
    sh["fold"] = (np.arange(n) % n_folds).astype(np.int8)
    sh.to_parquet(res / "shards" / "catalog.parquet")
    yy, xx = np.mgrid[:64, :64] - 31.5
    imgs = np.empty((n_images, 5, 64, 64), np.float32)
    for k in range(n_images):
        q, th = rng.uniform(0.4, 1), rng.uniform(0, np.pi)
        xr = xx * np.cos(th) + yy * np.sin(th)
        yr = -xx * np.sin(th) + yy * np.cos(th)
        prof = np.exp(-np.hypot(xr, yr / q) / rng.uniform(2, 5))
        for b, amp in enumerate([0.3, 1.0, 2.0, 2.6, 3.0]):
            imgs[k, b] = amp * 5 * prof + rng.normal(0, 0.05 if b else 0.2, (64, 64))
    np.save(res / "shards" / "shard-0000.npy", imgs)
    json.dump({"n_galaxies": n, "n_shards": 1, "shape": [n_images, 5, 64, 64]}, open(res / "shards" / "manifest.json", "w"))
    pd.DataFrame({"specObjID": [11, 12, 12, 13], "band": ["u", "g", "r", "all"],
                  "reason": ["no_frame", "low_coverage", "low_coverage", "swarp_error"]}).to_csv(res / "cutouts" / "failures.csv", index=False)
    for trial, shift in (("main", 0.0), ("noebv", 0.3)):
        sigma = 0.012 * (1 + z) * np.where(s82, 0.7, 1.0)
        centre = z + rng.normal(0, 1, n) * sigma + shift * (ebv - ebv.mean()) + np.where(sz, 0.004, 0)
        pdf = _pdfs(rng, centre, sigma * 1.2)
        zp, pit, w, crps = _summaries(pdf.astype(float), z)
        pit_members = [list(np.clip(pit + rng.normal(0, 0.05, n), 0, 1)[i:i + 1].repeat(members).astype(np.float32))
                       for i in range(n)]
        pd.DataFrame({"specObjID": ids, "fold": sh["fold"], "z_spec": z, "z_phot": zp, "width68": w, "pit": pit,
                      "crps": crps, "pdf": list(pdf), "pit_members": pit_members}).to_parquet(res / "ensemble" / f"{trial}.parquet")
    pd.DataFrame({"specObjID": ids, "z_spec": z, "z_phot": z + rng.normal(0, 0.015, n)}).to_parquet(res / "knn" / "main.parquet")
    for f in range(2):
        d = res / "models" / "main" / f"fold{f}" / "seed0"
        d.mkdir(parents=True, exist_ok=True)
        ep = np.arange(1, 5)
        pd.DataFrame({"epoch": ep, "iteration": ep * 10, "train_loss": 4 / ep, "val_loss": 4.2 / ep,
                      "val_sigma_mad": 0.02 / ep, "seconds": 3.0}).to_csv(d / "metrics.csv", index=False)
    _tables(res, rng)
    _learning_curve(res, rng)
    _zone(res, cat, sz)
    return res


def _learning_curve(res, rng):
    """``results/learning_curve.csv`` and its table in the columns of ``photoz.learning_curve``: power laws."""
    from photoz import learning_curve as lc

    rows = []
    for i, (trial, n) in enumerate((("frac2", 500), ("lc1000", 1000), ("frac20", 2000), ("main", 4000))):
        for est, a, slope in (("cnn", 0.02, -0.25), ("knn", 0.022, -0.12)):
            sm = a * (n / 500) ** slope * (1 + float(rng.normal(0, 0.01)))
            rows.append({"trial": trial, "estimator": est, "network": ("reduced" if i == 0 else "full") if est == "cnn" else "",
                         "n_train": n * (0.95 if est == "cnn" else 1.0), "n_train_side": n, "n_test": 300,
                         "bias": float(rng.normal(0, 3e-4)), "bias_err": 1e-4, "sigma_mad": sm, "sigma_mad_err": 0.03 * sm,
                         "eta": (2.0 if est == "cnn" else 2.6) * (n / 500) ** -0.4, "eta_err": 0.2,
                         "crps": 0.7 * sm if est == "cnn" else np.nan, "crps_err": 1e-4 if est == "cnn" else np.nan,
                         "ratio_sigma_mad": np.nan, "ratio_sigma_mad_err": 0.02,
                         "n_members": 2 if est == "cnn" else 0, "sigma_mad_boot_err": 0.025 * sm,
                         "sigma_mad_member_err": 0.0166 * sm if est == "cnn" else 0.0, "ratio_boot_err": 0.016,
                         "ratio_member_err": 0.012})
    df = pd.DataFrame(rows)
    for t in pd.unique(df["trial"]):
        sel = df["trial"] == t
        df.loc[sel, "ratio_sigma_mad"] = float(df.loc[sel & (df["estimator"] == "cnn"), "sigma_mad"].iloc[0]
                                               / df.loc[sel & (df["estimator"] == "knn"), "sigma_mad"].iloc[0])
    df = lc.add_summaries(df)[list(lc.COLUMNS)]
    df.to_csv(res / "learning_curve.csv", index=False)
    (res / "tables" / "learning_curve.tex").write_text(lc.latex_table(df))


def _zone(res, cat, injected):
    """``results/zone/zone.json``, ``cells.csv`` and ``validation.json`` from the main trial (``photoz.zone``)."""
    from photoz import zone
    from photoz.config import fill_section

    (res / "zone").mkdir(exist_ok=True)
    ens = pd.read_parquet(res / "ensemble" / "main.parquet", columns=["specObjID", "z_spec", "z_phot"])
    dz = (ens["z_phot"] - ens["z_spec"]) / (1 + ens["z_spec"])
    zc = fill_section("zone", {"nside": 256, "alpha": 0.01, "min_galaxies": 10, "n_permutations": 100})
    z, cells = zone.detect(cat["ra"], cat["dec"], dz, zc)
    z["mode"] = "mock"
    z["table2_region"] = zone.table2_region(z)
    zone._write_json(z, res / "zone" / "zone.json")
    cells.to_csv(res / "zone" / "cells.csv", index=False)
    v = zone.validate(z, cat["specObjID"], cat["ra"], cat["dec"], dz, cat["specObjID"], injected)
    zone._write_json(v, res / "zone" / "validation.json")


def _tables(res, rng):
    """Tables 1, 2, A1 in the columns of ``photoz.tables`` (its LaTeX writers make the fragments)."""
    from photoz import tables

    labels = [("80% training, full test sample", "main", "cnn", "all", "full"),
              ("B16 on the same galaxies", "main", "b16", "all", "b16"),
              ("kNN on the same galaxies", "main", "knn", "all", ""),
              ("Suspect zone removed", "main", "cnn", "no_suspect", "no_suspect"),
              ("Stripe 82 only", "main", "cnn", "s82", "s82"),
              ("2% training (reduced network)", "frac2", "cnn", "all", "frac2")]
    rows = []
    for k, (label, trial, est, subset, pub) in enumerate(labels):
        rows.append({"label": label, "trial": trial, "estimator": est, "subset": subset, "remove_widest": 0.0,
                     "width_cut": np.nan, "n_train": 1200 - 10 * k if est != "b16" else np.nan, "n_test": 300 - k,
                     "bias": float(rng.normal(0, 3e-4)) * (-1) ** k, "bias_err": 1e-4,
                     "sigma_mad": 0.009 + 0.0011 * k + float(rng.uniform(0, 1e-4)), "sigma_mad_err": 2e-4,
                     "eta": 0.3 + 0.13 * k, "eta_err": 0.05, "crps": 0.0067 + 1e-4 * k if est == "cnn" else np.nan,
                     "published": pub, "pub_n_train": 393219, "pub_n_test": 103306, "pub_bias": 0.0001,
                     "pub_sigma_mad": 0.00912, "pub_eta": 0.31, "pub_crps": 0.00674})
    t2 = pd.DataFrame(rows)
    t2.to_csv(res / "table2.csv", index=False)
    folds = []
    for f in range(5):
        folds.append({"fold": str(f + 1), "n_test": 60, "bias": float(rng.normal(0, 3e-4)), "bias_err": 1e-4,
                      "sigma_mad": 0.009 + float(rng.uniform(0, 5e-4)), "sigma_mad_err": 2e-4, "eta": 0.3,
                      "eta_err": 0.05, "pub_bias": 0.0001, "pub_sigma_mad": 0.00912, "pub_eta": 0.31})
    t1 = pd.DataFrame(folds)
    mean = {"fold": "mean", "n_test": 300, **{k: t1[k].mean() for k in ("bias", "sigma_mad", "eta")},
            "pub_bias": 0.0001, "pub_sigma_mad": 0.00912, "pub_eta": 0.31}
    t1 = pd.concat([t1, pd.DataFrame([mean])], ignore_index=True)
    t1.to_csv(res / "table1.csv", index=False)
    ta = pd.DataFrame({"stage": ["C1", "FC3", "total"], "operation": ["convolution", "dense", "trainable parameters"],
                       "kernel": ["5x5", "", ""], "maps": ["64", "", ""], "output": ["64x64x64", "180", ""],
                       "params": [8128, 197460, 27596372], "published_params": [8128, 197460, 27596372]})
    ta.to_csv(res / "tableA1.csv", index=False)
    (res / "tables" / "table1.tex").write_text(tables.latex_table1(t1))
    (res / "tables" / "table2.tex").write_text(tables.latex_table2(t2))
    (res / "tables" / "tableA1.tex").write_text(tables.latex_tableA1(ta))
