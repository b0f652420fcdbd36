"""``photoz mock-sky-merge``: the mock SkyServer database and the truth tables.

Reads every chunk's catalog and field tables, computes the Photoz table with
a B16-like estimator (:func:`b16_like`, local linear regression on r and
four colours) trained on a separate mock spectroscopic sample
(:func:`training_sample`), and writes

* ``skyserver.sqlite`` (tables SpecObjAll, PhotoObjAll, Photoz, galSpecInfo, Field),
* ``truth.parquet`` (one row per catalog object: true redshift, true
  fluxes, suspect zone, Stripe 82, ...), never read by the analysis,
* ``truth-frames.parquet`` (one row per field-epoch: the injected calibration error).
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np
import pandas as pd

from photoz.io import atomic_path, setup_logging

from . import geometry as geo
from .population import sample_galaxies
from .skyserver import write_database

BANDS = geo.BANDS
log = logging.getLogger("photoz")


#: Fraction of the mock spectroscopic sample drawn from the deep population
#: (true r from R_LIMIT to DEEP_R_MAX, redshifts to ~0.6), as B16's training set
#: added deep, high-redshift surveys to the SDSS.
DEEP_FRACTION = 0.25
DEEP_R_MAX = 20.0
#: Donors per training galaxy: the catalogue galaxies nearest in true r among
#: which one lends its measured-minus-true magnitude vector.
N_DONORS = 20
#: Donors are taken only where the catalogue is complete, true r <= R_LIMIT - DONOR_MARGIN:
#: nearer the limit, targeting by the *measured* magnitude keeps the galaxies
#: measured too bright, and their errors would be biased (Eddington bias).
DONOR_MARGIN = 0.3


def _true_mags(flux):
    return 22.5 - 2.5 * np.log10(np.clip(np.asarray(flux, dtype=np.float64), 1e-12, None))


def catalog_noise(catalog):
    """The catalogue's measurement errors, as a table to draw from.

    Returns ``(true, resid, err_fit)``: the true magnitudes (N, 5) of each
    catalogue galaxy, its vector (N, 5) of dereddened Petrosian magnitude
    minus true magnitude (photometric noise, the Petrosian aperture loss and
    the error of the catalogue's reddening, all bands together, so their
    correlations are kept), and per band the coefficients ``(a, b)`` of a fit
    ``log10(petroMagErr) = a * true_mag + b`` (used beyond the catalogue's
    faint end).
    """
    gals = catalog[catalog["class"] == "GALAXY"]
    true = np.column_stack([_true_mags(gals[f"flux_true_{b}"]) for b in BANDS])
    meas = np.column_stack([gals[f"petroMag_{b}"].to_numpy(dtype=np.float64)
                            - gals[f"extinction_{b}"].to_numpy(dtype=np.float64) for b in BANDS])
    resid = meas - true
    ok = np.isfinite(resid).all(axis=1)
    if ok.sum() < N_DONORS:
        raise ValueError(f"mock-sky-merge: only {int(ok.sum())} catalogue galaxies with finite magnitudes; "
                         f"the Photoz training sample needs at least {N_DONORS} to borrow their errors")
    fits = []
    for j, b in enumerate(BANDS):
        e = gals[f"petroMagErr_{b}"].to_numpy(dtype=np.float64)[ok]
        good = np.isfinite(e) & (e > 0)
        fits.append(np.polyfit(true[ok, j][good], np.log10(e[good]), 1))
    return true[ok], resid[ok], np.array(fits)


def training_sample(mock, catalog, return_true=False):
    """A separate mock spectroscopic sample measured with the catalogue's noise; returns (mags, z).

    The stand-in for B16's training set: ``mock.photoz_training_size``
    galaxies, ``1 - DEEP_FRACTION`` of them from the luminosity function of
    the main sample (true r <= R_GEN) and ``DEEP_FRACTION`` from the deep
    population (true r up to ``DEEP_R_MAX``, z up to ~0.6): deeper and wider
    in redshift than the catalogue, as B16's was. Their own seed; true
    (dereddened) magnitudes from the same templates as the rendered galaxies.

    Each gets the measured-minus-true magnitude vector of one catalogue
    galaxy of similar true r (random among the ``N_DONORS`` nearest): the same
    noise, aperture loss and reddening error as the catalogue, with the
    bands' correlations. Donors come from where the catalogue is complete
    (true r <= R_LIMIT - DONOR_MARGIN; nearer the limit the targeting by
    measured magnitude biases the errors); galaxies fainter than the donors
    get the extra photometric noise the catalogue's magnitude errors predict
    at their magnitude (log-linear fit of petroMagErr against true magnitude).
    Nothing else of the catalogue (redshifts, positions) is used. With
    ``return_true`` the true magnitudes are returned too (for the tests).
    """
    from .population import R_GEN, R_LIMIT, _faint

    rng = np.random.default_rng(np.random.SeedSequence([int(mock["seed"]), 601]))
    n = int(mock["photoz_training_size"])
    n_deep = int(round(DEEP_FRACTION * n))
    n_main = n - n_deep
    main = sample_galaxies(rng, 3 * n_main + 50)
    tm = _true_mags(main["flux_bulge_r"] + main["flux_disk_r"])
    main = main[tm <= R_GEN].iloc[:n_main]
    if len(main) < n_main:
        raise ValueError(f"mock-sky-merge: drew only {len(main)} main-sample training galaxies of {n_main}")
    dz, _, dfb, dfd = _faint(rng, n_deep, R_LIMIT, DEEP_R_MAX)
    true = np.vstack([
        np.column_stack([_true_mags(main[f"flux_bulge_{b}"] + main[f"flux_disk_{b}"]) for b in BANDS]),
        _true_mags(dfb + dfd)])
    z = np.concatenate([main["z"].to_numpy(), dz])
    donor_true, resid, fits = catalog_noise(catalog)
    complete = donor_true[:, 2] <= R_LIMIT - DONOR_MARGIN
    if complete.sum() < N_DONORS:
        raise ValueError(f"mock-sky-merge: only {int(complete.sum())} catalogue galaxies with true r <= "
                         f"{R_LIMIT - DONOR_MARGIN:g} to lend their errors to the Photoz training sample "
                         f"(need {N_DONORS})")
    donor_true, resid = donor_true[complete], resid[complete]
    order = np.argsort(donor_true[:, 2])
    donor_true, resid = donor_true[order], resid[order]
    donor_r = donor_true[:, 2]
    k = N_DONORS
    pos = np.clip(np.searchsorted(donor_r, true[:, 2]) - k // 2, 0, len(donor_r) - k)
    pick = pos + rng.integers(0, k, len(z))
    mags = true + resid[pick]
    # beyond the donors' magnitudes: add the photometric noise they lack
    for j in range(len(BANDS)):
        e_here = 10 ** np.polyval(fits[j], true[:, j])
        e_donor = 10 ** np.polyval(fits[j], donor_true[pick, j])
        extra = np.sqrt(np.clip(e_here**2 - e_donor**2, 0, None))
        mags[:, j] += extra * rng.standard_normal(len(z))
    return (mags, z, true) if return_true else (mags, z)


#: The B16-like Photoz table's residual clipping (the rms units of :func:`photoz.knn.fit_predict`);
#: the table's own method setting, not the analysis kNN's (``knn.clip_sigma``).
B16_CLIP_SIGMA = 3.0


def b16_like(train_mags, train_z, mags, k):
    """The B16-like estimator on the mock: returns (z, zErr, nnCount) for the Photoz table.

    Beck et al. (2016)'s method: local linear regression on r and the u-g,
    g-r, r-i, i-z colours over the ``k`` nearest training galaxies
    (Csabai et al. 2007), the project's implementation
    (:func:`photoz.knn.fit_predict`) with residuals clipped at ``B16_CLIP_SIGMA``. Objects without finite magnitudes get
    -9999 and nnCount 0, as in the SkyServer table.
    """
    from photoz.knn import fit_predict

    def feats(m):
        m = np.asarray(m, dtype=np.float64)
        return np.column_stack([m[:, 2], m[:, 0] - m[:, 1], m[:, 1] - m[:, 2], m[:, 2] - m[:, 3], m[:, 3] - m[:, 4]])

    ft, fq = feats(train_mags), feats(mags)
    keep = np.isfinite(ft).all(axis=1)
    ok = np.isfinite(fq).all(axis=1)
    z = np.full(len(fq), -9999.0)
    ze = np.full(len(fq), -9999.0)
    kk = int(min(k, keep.sum()))
    if ok.any():
        zp, zpe, _ = fit_predict(ft[keep], np.asarray(train_z, dtype=np.float64)[keep], fq[ok], k=kk,
                                 clip_sigma=B16_CLIP_SIGMA)
        z[ok], ze[ok] = zp, zpe
    return z, ze, np.where(ok, kk, 0)


REPEAT_SPECTRA_FRACTION = 0.03
"""Fraction of spectroscopic targets observed twice (DR12's SpecObjAll holds such repeats)."""

REPEAT_SPECOBJID_BIT = 57
"""Bit set in the mock specObjID of a repeat spectrum (unused by first spectra)."""


def add_repeat_spectra(mock, cat):
    """Append a second spectrum for a few percent of the galaxies, as DR12 has.

    A repeat has its own specObjID, the same objID (``bestObjID``), a
    re-measured redshift (the first one plus the error) and error. Exactly one
    spectrum of a pair is ``sciencePrimary`` (either one); for a quarter of the
    pairs the primary one is a BOSS re-observation (``survey = 'boss'``), which
    the paper's cuts reject, so the legacy spectrum left is not primary.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(mock["seed"]), 602]))
    cat = cat.copy()
    cat["sciencePrimary"] = 1
    gal = np.flatnonzero((cat["class"] == "GALAXY").to_numpy())
    pick = np.sort(rng.choice(gal, size=int(round(REPEAT_SPECTRA_FRACTION * len(gal))), replace=False))
    rep = cat.iloc[pick].copy()
    rep["specObjID"] = rep["specObjID"].to_numpy(np.int64) | (np.int64(1) << REPEAT_SPECOBJID_BIT)
    zerr = rep["zErr"].to_numpy(float)
    rep["z_spec"] = rep["z_spec"].to_numpy(float) + rng.normal(0, 1, len(rep)) * zerr
    rep["zErr"] = zerr * rng.uniform(0.7, 1.4, len(rep))
    repeat_primary = rng.random(len(rep)) < 0.5
    boss = repeat_primary & (rng.random(len(rep)) < 0.5)
    rep["sciencePrimary"] = repeat_primary.astype(int)
    rep.loc[boss, "survey"] = "boss"
    cat.loc[cat.index[pick], "sciencePrimary"] = (~repeat_primary).astype(int)
    return pd.concat([cat, rep], ignore_index=True)


def _spec_obj_all(cat):
    """``SpecObjAll``: one row per spectrum (repeats included)."""
    sid = cat["specObjID"].to_numpy(dtype=np.int64)
    return pd.DataFrame({
        "specObjID": cat["specObjID"].astype("int64"), "bestObjID": cat["objID"].astype("int64"),
        "ra": cat["ra"], "dec": cat["dec"], "class": cat["class"],
        "subClass": np.where(cat["class"] == "GALAXY", "", "K"), "z": cat["z_spec"], "zErr": cat["zErr"],
        "zWarning": cat["zWarning"].astype("int64"), "targetType": cat["targetType"], "survey": cat["survey"],
        "plate": (sid >> 20) & 0xFFFF, "mjd": 52000 + (sid >> 20) % 3000,
        "fiberID": (cat["obj"] % 640) + 1, "sciencePrimary": cat["sciencePrimary"].astype("int64")})


def _photo_obj_all(cat, fields):
    """``PhotoObjAll``: one row per object, with the PSF and sky of its field."""
    photo = pd.DataFrame({
        "objID": cat["objID"].astype("int64"), "run": cat["run"], "rerun": geo.RERUN, "camcol": cat["camcol"],
        "field": cat["field"], "obj": cat["obj"], "mode": 1, "type": cat["type"], "flags": 0,
        "clean": cat["clean"], "insideMask": cat["insideMask"], "ra": cat["ra"], "dec": cat["dec"]})
    for b in BANDS:
        photo[f"petroMag_{b}"] = cat[f"petroMag_{b}"]
        photo[f"petroMagErr_{b}"] = cat[f"petroMagErr_{b}"]
        photo[f"extinction_{b}"] = cat[f"extinction_{b}"]
    for c in ("petroRad_r", "petroR50_r", "petroR90_r", "expAB_r", "deVAB_r", "fracDeV_r"):
        photo[c] = cat[c]
    # per-object PSF FWHM and sky at the object (PhotoObjAll psffwhm_{b}, sky_{b}): the mock's PSF
    # and sky are uniform over a frame, so they are those of the object's field
    at = cat[["run", "camcol", "field"]].merge(fields, on=["run", "camcol", "field"], how="left", validate="m:1")
    for b in BANDS:
        photo[f"psffwhm_{b}"] = at[f"psfWidth_{b}"].to_numpy()
        photo[f"sky_{b}"] = at[f"sky_{b}"].to_numpy()
    return photo


def _photoz(mock, cat):
    """``Photoz``: the B16-like estimator, trained on the mock's separate spectroscopic sample."""
    dered = np.column_stack([cat[f"petroMag_{b}"] - cat[f"extinction_{b}"] for b in BANDS])
    tmags, tz = training_sample(mock, cat)
    zp, zpe, nn = b16_like(tmags, tz, dered, k=int(mock["photoz_k"]))
    return pd.DataFrame({"objID": cat["objID"].astype("int64"), "z": zp, "zErr": zpe, "nnCount": nn,
                         "photoErrorClass": 1})


def _gal_spec_info(cat):
    """``galSpecInfo``: one row per spectrum, the catalogue's (SFD-like) reddening, not the truth."""
    ebv_sfd = cat["ebv_sfd"] if "ebv_sfd" in cat.columns else cat["extinction_r"] / 2.751  # chunks of older runs
    return pd.DataFrame({
        "specObjID": cat["specObjID"].astype("int64"), "e_bv_sfd": ebv_sfd,
        "primtarget": cat["primtarget"].astype("int64"), "sectarget": 0, "targettype": cat["targetType"],
        "spectrotype": cat["class"], "subclass": "", "z": cat["z_spec"], "z_err": cat["zErr"],
        "z_warning": cat["zWarning"]})


def _field(fields):
    """``Field``: the fields without their truth columns, with SDSS-like fieldIDs."""
    field = fields[[c for c in fields.columns if not c.startswith("truth_")]].copy()
    fid = ((np.int64(1) << 59) + (field["run"].to_numpy(dtype=np.int64) << 32)
           + (field["camcol"].to_numpy(dtype=np.int64) << 29) + (field["field"].to_numpy(dtype=np.int64) << 16))
    field.insert(0, "fieldID", fid)
    return field


def _truth(cat):
    """The truth table (validation only): one row per spectrum, and whether the query's cuts select it."""
    dered = np.column_stack([cat[f"petroMag_{b}"] - cat[f"extinction_{b}"] for b in BANDS])
    truth_cols = ["specObjID", "objID", "ra", "dec", "z", "kind", "class", "M_r", "bt", "hlr_bulge", "hlr_disk",
                  "q_bulge", "q_disk", "pa", "ebv_true", "in_suspect_zone", "stripe82", "run", "camcol", "field"]
    truth = cat[truth_cols + [f"flux_true_{b}" for b in BANDS]].rename(columns={"z": "z_true", "kind": "type"})
    truth["z_spec"] = cat["z_spec"]
    truth["sciencePrimary"] = cat["sciencePrimary"].to_numpy()
    truth["repeat_spectrum"] = (cat["specObjID"].to_numpy(np.int64) >> REPEAT_SPECOBJID_BIT) & 1 == 1
    truth["selected_by_cuts"] = ((cat["class"] == "GALAXY") & (cat["zWarning"] == 0) & (cat["targetType"] == "SCIENCE")
                                 & (cat["survey"] == "sdss") & ((cat["primtarget"] & 64) > 0) & (cat["clean"] == 1)
                                 & (cat["insideMask"] == 0) & (dered[:, 2] <= 17.8) & (cat["z_spec"] > 0)
                                 & (cat["z_spec"] < 0.4))
    return truth


def build_tables(mock, cat, fields):
    """The five SkyServer tables and the truth tables from the merged chunk outputs."""
    if cat["specObjID"].duplicated().any() or cat["objID"].duplicated().any():
        raise ValueError("mock-sky-merge: duplicate specObjID/objID across chunks (overlapping chunks?)")
    fields = fields.sort_values(["run", "camcol", "field"]).reset_index(drop=True)
    single = cat.sort_values("specObjID").reset_index(drop=True)  # one row per object (PhotoObjAll, Photoz)
    spectra = add_repeat_spectra(mock, single).sort_values("specObjID").reset_index(drop=True)  # one per spectrum
    tframes = fields[["run", "camcol", "field", "baseRun", "epoch", "truth_suspect", "truth_calib_error_mag",
                      "truth_calib_error_band"]]
    return {"SpecObjAll": _spec_obj_all(spectra), "PhotoObjAll": _photo_obj_all(single, fields),
            "Photoz": _photoz(mock, single), "galSpecInfo": _gal_spec_info(spectra), "Field": _field(fields),
            "truth": _truth(spectra), "truth_frames": tframes}


def main(argv=None):
    p = argparse.ArgumentParser(prog="photoz mock-sky-merge", description=__doc__)
    p.add_argument("--config-json", required=True)
    p.add_argument("--catalogs", nargs="+", required=True)
    p.add_argument("--fields", nargs="+", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--truth", required=True)
    p.add_argument("--truth-frames", required=True)
    p.add_argument("--log")
    a = p.parse_args(argv)
    setup_logging(a.log)
    mock = json.loads(a.config_json)
    cats = []
    for path in a.catalogs:
        try:
            cats.append(pd.read_parquet(path))
        except Exception as err:
            raise SystemExit(f"mock-sky-merge: cannot read chunk catalog {path}: {err}")
    cat = pd.concat([c for c in cats if len(c)], ignore_index=True)
    fields = pd.concat([pd.read_parquet(p_) for p_ in a.fields], ignore_index=True)
    log.info("merge: %d catalog objects, %d field-epochs from %d chunks", len(cat), len(fields), len(a.catalogs))
    t = build_tables(mock, cat, fields)
    with atomic_path(a.db) as tmp:
        tmp.unlink()
        write_database(tmp, *(t[k] for k in ("SpecObjAll", "PhotoObjAll", "Photoz", "galSpecInfo", "Field")))
    with atomic_path(a.truth) as tmp:
        t["truth"].to_parquet(tmp, index=False)
    with atomic_path(a.truth_frames) as tmp:
        t["truth_frames"].to_parquet(tmp, index=False)
    log.info("merge: wrote %s (%d spectra, %d selected by the paper's cuts in truth), %s",
             a.db, len(t["SpecObjAll"]), int(t["truth"]["selected_by_cuts"].sum()), a.truth)
    return 0
