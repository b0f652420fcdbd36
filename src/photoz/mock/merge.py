"""``photoz mock-sky-merge``: the mock SkyServer database and the truth tables.

Reads every chunk's catalog and field tables, fits the Photoz kNN stand-in
on a separate mock spectroscopic sample, and writes

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
from .skyserver import photoz_knn, write_database

BANDS = geo.BANDS
log = logging.getLogger("photoz")


def training_sample(mock, catalog):
    """A separate mock spectroscopic sample with catalog-like noisy magnitudes.

    Galaxies drawn from the same luminosity function (their own seed), with the
    per-band offset (Petrosian vs total) and the magnitude-dependent scatter
    measured on the rendered catalog applied to their true magnitudes.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(mock["seed"]), 601]))
    n = int(mock.get("photoz_training_size", 4000))
    gal = sample_galaxies(rng, 3 * n)
    gal = gal.iloc[:n]
    gals = catalog[catalog["class"] == "GALAXY"]
    mags = np.empty((n, 5))
    for j, b in enumerate(BANDS):
        true = 22.5 - 2.5 * np.log10(gal[f"flux_bulge_{b}"] + gal[f"flux_disk_{b}"])
        cat_true = 22.5 - 2.5 * np.log10(gals[f"flux_true_{b}"])
        cat_meas = gals[f"petroMag_{b}"] - gals[f"extinction_{b}"]
        resid = (cat_meas - cat_true).to_numpy()
        off = np.nanmedian(resid)
        mad = 1.4826 * np.nanmedian(np.abs(resid - off))
        err = np.interp(true, np.sort(cat_true.to_numpy()),
                        np.maximum.accumulate(gals[f"petroMagErr_{b}"].to_numpy()[np.argsort(cat_true.to_numpy())]))
        sig = np.sqrt(err**2 + mad**2)
        mags[:, j] = true + off + rng.normal(0, 1, n) * sig
    return mags, gal["z"].to_numpy()


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


def build_tables(mock, cat, fields):
    """The five SkyServer tables and the truth tables from the merged chunk outputs."""
    if cat["specObjID"].duplicated().any() or cat["objID"].duplicated().any():
        raise ValueError("mock-sky-merge: duplicate specObjID/objID across chunks (overlapping chunks?)")
    fields = fields.sort_values(["run", "camcol", "field"]).reset_index(drop=True)
    cat = cat.sort_values("specObjID").reset_index(drop=True)
    single = cat  # one row per object (PhotoObjAll, Photoz)
    cat = add_repeat_spectra(mock, cat).sort_values("specObjID").reset_index(drop=True)
    sid = cat["specObjID"].to_numpy(dtype=np.int64)
    spec = pd.DataFrame({
        "specObjID": cat["specObjID"].astype("int64"), "bestObjID": cat["objID"].astype("int64"),
        "ra": cat["ra"], "dec": cat["dec"], "class": cat["class"],
        "subClass": np.where(cat["class"] == "GALAXY", "", "K"), "z": cat["z_spec"], "zErr": cat["zErr"],
        "zWarning": cat["zWarning"].astype("int64"), "targetType": cat["targetType"], "survey": cat["survey"],
        "plate": (sid >> 20) & 0xFFFF, "mjd": 52000 + (sid >> 20) % 3000,
        "fiberID": (cat["obj"] % 640) + 1, "sciencePrimary": cat["sciencePrimary"].astype("int64")})
    cat_spec, cat = cat, single
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
    dered = np.column_stack([cat[f"petroMag_{b}"] - cat[f"extinction_{b}"] for b in BANDS])
    tmags, tz = training_sample(mock, cat)
    zp, zpe, nn = photoz_knn(tmags, tz, dered)
    photoz = pd.DataFrame({"objID": cat["objID"].astype("int64"), "z": zp, "zErr": zpe, "nnCount": nn,
                           "photoErrorClass": 1})
    cat = cat_spec  # one row per spectrum again (galSpecInfo, truth)
    dered = np.column_stack([cat[f"petroMag_{b}"] - cat[f"extinction_{b}"] for b in BANDS])
    galspec = pd.DataFrame({
        "specObjID": cat["specObjID"].astype("int64"), "e_bv_sfd": cat["extinction_r"] / 2.751,
        "primtarget": cat["primtarget"].astype("int64"), "sectarget": 0, "targettype": cat["targetType"],
        "spectrotype": cat["class"], "subclass": "", "z": cat["z_spec"], "z_err": cat["zErr"],
        "z_warning": cat["zWarning"]})
    keep = [c for c in fields.columns if not c.startswith("truth_")]
    field = fields[keep].copy()
    fid = ((np.int64(1) << 59) + (field["run"].to_numpy(dtype=np.int64) << 32)
           + (field["camcol"].to_numpy(dtype=np.int64) << 29) + (field["field"].to_numpy(dtype=np.int64) << 16))
    field.insert(0, "fieldID", fid)
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
    tframes = fields[["run", "camcol", "field", "baseRun", "epoch", "truth_suspect", "truth_calib_error_mag"]]
    return {"SpecObjAll": spec, "PhotoObjAll": photo, "Photoz": photoz, "galSpecInfo": galspec, "Field": field,
            "truth": truth, "truth_frames": tframes}


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
