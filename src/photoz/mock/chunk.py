"""``photoz mock-sky-chunk``: render and measure one chunk of the mock sky.

A chunk is a contiguous block of cells (primary fields) with all epochs of
their fields. It writes the chunk's frames into the SAS tree, and two
tables: the measured (and true) properties of the chunk's catalog objects,
and one row per field-epoch (the Field table's rows, with the truth of the
injected calibration error beside).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from photoz.io import atomic_path, setup_logging

from . import geometry as geo
from .photometry import asinh_mag, asinh_mag_err, axis_ratio, noise_map, petrosian, segment
from .population import cell_population
from .reddening import EXTINCTION_COEFF, ebv_map, sfd_estimate
from .render import frame_hdul, render_frame, write_frame

BANDS = geo.BANDS
log = logging.getLogger("photoz")


def frame_path(sas_root, run, camcol, field, band):
    """Path of a frame in the SAS tree ``{root}/301/{run}/{camcol}/frame-...fits.bz2``."""
    return Path(sas_root) / str(geo.RERUN) / str(run) / str(camcol) / \
        f"frame-{band}-{run:06d}-{camcol}-{field:04d}.fits.bz2"


def object_ids(run, camcol, field, obj, cell_index):
    """(objID, specObjID) int64: SDSS-style objID bit packing; a mock specObjID packing."""
    obj = np.asarray(obj, dtype=np.int64)
    objid = (np.int64(1) << 59) + (np.int64(geo.RERUN) << 48) + (np.int64(run) << 32) + \
        (np.int64(camcol) << 29) + (np.int64(field) << 16) + obj
    specid = (np.int64(1) << 58) + (np.int64(cell_index) << 20) + obj
    return objid, specid


def _neighbours(cell, by_key):
    out = []
    for dc in (-1, 0, 1):
        for df in (-2, -1, 0, 1, 2):
            c = by_key.get((cell.entry, cell.camcol + dc, cell.field + df))
            if c is not None:
                out.append(c)
    return out


def frame_objects(mock, cell, by_key, population=None):
    """The objects that can reach a frame of ``cell``: the populations of the cell and of its neighbours
    (``by_key``: the cells by ``(entry, camcol, field)``); ``population(cell)``, default
    :func:`cell_population`, lets a caller cache them."""
    population = population or (lambda c: cell_population(mock, c))
    return pd.concat([population(c) for c in _neighbours(cell, by_key)], ignore_index=True)


def _photometry(sel, mock, cell, fr, rendered, cond):
    """Petrosian photometry, sizes and shapes of ``sel`` measured on the rendered epoch-0 frames
    (in place), with the true and the catalogue's (SFD-like) E(B-V)."""
    x, y = geo.frame_wcs(fr).all_world2pix(sel["ra"].to_numpy(), sel["dec"].to_numpy(), 0)
    images, errs = [], []
    for j, b in enumerate(BANDS):
        r = rendered[b]
        images.append(r["image"])
        errs.append(noise_map(r["image"], r["calibvec"], r["sky"], cond["gain"][j],
                              cond["darkVariance"][j]))
    segmap, ids = segment(images[2], errs[2], x, y)
    ph = petrosian(images, errs, x, y, segmap=segmap, seg_id=ids)
    ebv = ebv_map(sel["ra"].to_numpy(), sel["dec"].to_numpy(), mock["seed"])  # truth: what the images carry
    # the catalogue's (SFD-like) estimate; its own random stream, so the rest of the cell is unchanged
    rng_ebv = np.random.default_rng(np.random.SeedSequence([int(mock["seed"]), 503, cell.run, cell.camcol, cell.field]))
    ebv_sfd = sfd_estimate(ebv, rng_ebv, mock["ebv_sfd_scatter"])
    for j, b in enumerate(BANDS):
        sel[f"flux_true_{b}"] = sel[f"flux_bulge_{b}"] + sel[f"flux_disk_{b}"]
        sel[f"petroFlux_{b}"] = ph["flux"][:, j]
        sel[f"petroMag_{b}"] = asinh_mag(ph["flux"][:, j], j)
        sel[f"petroMagErr_{b}"] = asinh_mag_err(ph["flux"][:, j], ph["flux_err"][:, j], j)
        sel[f"extinction_{b}"] = EXTINCTION_COEFF[j] * ebv_sfd
    sel["ebv_true"] = ebv
    sel["ebv_sfd"] = ebv_sfd
    sel["petroRad_r"] = ph["petroRad"] * geo.PIXSCALE
    sel["petroR50_r"] = ph["r50"] * geo.PIXSCALE
    sel["petroR90_r"] = ph["r90"] * geo.PIXSCALE
    ba = axis_ratio(images[2], x, y, ph["r50"])
    sel["expAB_r"] = ba
    sel["deVAB_r"] = ba
    conc = ph["r90"] / ph["r50"]
    sel["fracDeV_r"] = np.clip((conc - 2.3) / (3.3 - 2.3), 0, 1)


def _spectra(sel, star, rng):
    """The targets' spectroscopic columns and the flags the query cuts on (in place), drawn from ``rng``."""
    n = len(sel)
    u = rng.random((6, n))
    sel["class"] = np.where(star, "STAR", "GALAXY")
    sel["type"] = np.where(star, 6, 3)
    zt = sel["z"].to_numpy()
    sel["zErr"] = np.where(star, 1e-4, 3e-5 * (1 + zt))
    sel["z_spec"] = zt + rng.normal(0, 1, n) * sel["zErr"].to_numpy()
    sel["zWarning"] = np.where(u[0] < 0.015, 4, 0)
    sel["targetType"] = np.where(u[1] < 0.01, "QA", "SCIENCE")
    sel["survey"] = np.where(u[2] < 0.02, "boss", "sdss")
    prim = np.where(star, np.where(u[3] < 0.5, 64, 0), np.where(u[3] < 0.01, 32, np.where(u[3] < 0.06, 96, 64)))
    sel["primtarget"] = prim
    sel["clean"] = np.where(u[4] < 0.03, 0, 1)
    sel["insideMask"] = np.where(u[5] < 0.01, 1, 0)


def measure_cell(mock, cell, fr, objects, rendered, cond):
    """Catalog rows of a cell's target galaxies and spectroscopic stars, measured on epoch 0."""
    rng = np.random.default_rng(np.random.SeedSequence([int(mock["seed"]), 501, cell.run, cell.camcol, cell.field]))
    mine = objects[objects["cell"] == cell.index]
    ftot = {b: mine[f"flux_bulge_{b}"].to_numpy() + mine[f"flux_disk_{b}"].to_numpy() for b in BANDS}
    r_true = 22.5 - 2.5 * np.log10(np.clip(ftot["r"], 1e-12, None))
    is_gal = (mine["kind"] == "galaxy").to_numpy()
    is_star = (mine["kind"] == "star").to_numpy() & (r_true < 17.5) & (rng.random(len(mine)) < 0.3)
    sel = mine[is_gal | is_star].copy()
    if sel.empty:
        return sel
    _photometry(sel, mock, cell, fr, rendered, cond)
    sel["run"], sel["camcol"], sel["field"] = cell.run, cell.camcol, cell.field
    sel["stripe82"] = cell.stripe82
    sel["in_suspect_zone"] = bool(rendered["suspect"])
    objid, specid = object_ids(cell.run, cell.camcol, cell.field, sel["obj"].to_numpy(), cell.index)
    sel["objID"], sel["specObjID"] = objid, specid
    # spectroscopic targeting and the flags the query cuts on
    dered_r = sel["petroMag_r"].to_numpy() - sel["extinction_r"].to_numpy()
    star = (sel["kind"] == "star").to_numpy()
    target = star | (dered_r + rng.normal(0, 0.08, len(sel)) <= 17.77)
    sel = sel[target].copy()
    _spectra(sel, star[target], rng)
    return sel


def field_row(fr, cond, rendered):
    w = geo.frame_wcs(fr)
    cx = [0, geo.NCOL - 1, geo.NCOL - 1, 0]
    cy = [0, 0, geo.NROW - 1, geo.NROW - 1]
    ra, dec = w.all_pix2world(cx, cy, 0)
    row = {"run": fr.run, "rerun": geo.RERUN, "camcol": fr.camcol, "field": fr.field, "baseRun": fr.base_run,
           "epoch": fr.epoch, "primaryEpoch": int(fr.epoch == 0), "stripe": 82 if fr.stripe82 else 0,
           "mjd": float(cond["mjd"][2]), "ra": fr.ra_c, "dec": fr.dec_c, "airmass": float(cond["airmass"]),
           "raMin": float(np.min(ra)), "raMax": float(np.max(ra)), "decMin": float(np.min(dec)),
           "decMax": float(np.max(dec))}
    for i in range(4):
        row[f"ra_{i}"], row[f"dec_{i}"] = float(ra[i]), float(dec[i])
    for j, b in enumerate(BANDS):
        row[f"mjd_{b}"] = float(cond["mjd"][j])
        row[f"psfWidth_{b}"] = float(cond["psfWidth"][j])
        row[f"sky_{b}"] = float(cond["sky"][j])
        row[f"gain_{b}"] = float(cond["gain"][j])
        row[f"darkVariance_{b}"] = float(cond["darkVariance"][j])
        row[f"nMgyPerCount_{b}"] = float(np.median(rendered[b]["calibvec"]))
    row["truth_suspect"] = bool(rendered["suspect"])
    row["truth_calib_error_mag"] = float(rendered["suspect_mag"])
    row["truth_calib_error_band"] = str(rendered.get("suspect_band", ""))
    return row


def run_chunk(mock, k, sas_root, write_frames=True):
    """Render chunk ``k``; returns (catalog DataFrame, fields DataFrame)."""
    geo.validate_mock_config(mock)
    all_cells = geo.cells(mock)
    mine = geo.chunk_of_cells(all_cells, mock["n_chunks"], k, mock)
    by_key = {(c.entry, c.camcol, c.field): c for c in all_cells}
    pops = {}

    def pop(c):
        if c.index not in pops:
            pops[c.index] = cell_population(mock, c)
        return pops[c.index]

    frs = geo.frames(mock, mine)
    log.info("chunk %d: %d cells, %d field-epochs, %d frames", k, len(mine), len(frs), 5 * len(frs))
    cats, rows = [], []
    t0 = time.time()
    for i, fr in enumerate(frs):
        cell = by_key[(fr.entry, fr.camcol, fr.field)]
        objects = frame_objects(mock, cell, by_key, pop)
        cond = geo.frame_conditions(mock, fr)
        rendered = render_frame(mock, fr, objects, cond)
        if write_frames:
            for b in BANDS:
                write_frame(frame_path(sas_root, fr.run, fr.camcol, fr.field, b), frame_hdul(mock, fr, b, rendered, cond))
        rows.append(field_row(fr, cond, rendered))
        if fr.epoch == 0:
            cats.append(measure_cell(mock, cell, fr, objects, rendered, cond))
        log.info("chunk %d: field-epoch %d/%d (%s) done, %.1f s elapsed", k, i + 1, len(frs), fr.key, time.time() - t0)
    cat = pd.concat(cats, ignore_index=True) if cats else pd.DataFrame()
    return cat, pd.DataFrame(rows)


def main(argv=None):
    p = argparse.ArgumentParser(prog="photoz mock-sky-chunk", description=__doc__)
    p.add_argument("--config-json", required=True, help="the mock: config section as JSON")
    p.add_argument("--chunk", type=int, required=True)
    p.add_argument("--sas-root", required=True, help="root of the mock SAS tree (results/mock/sas)")
    p.add_argument("--out-catalog", required=True)
    p.add_argument("--out-fields", required=True)
    p.add_argument("--log")
    a = p.parse_args(argv)
    setup_logging(a.log)
    try:
        mock = json.loads(a.config_json)
    except json.JSONDecodeError as err:
        raise SystemExit(f"mock-sky-chunk: --config-json is not valid JSON: {err}")
    cat, fields = run_chunk(mock, a.chunk, a.sas_root)
    drop = [c for c in cat.columns if c.startswith("flux_bulge_") or c.startswith("flux_disk_")]
    with atomic_path(a.out_catalog) as tmp:
        cat.drop(columns=drop).to_parquet(tmp, index=False)
    with atomic_path(a.out_fields) as tmp:
        fields.to_parquet(tmp, index=False)
    log.info("chunk %d: %d catalog objects, %d field-epochs written", a.chunk, len(cat), len(fields))
    return 0
