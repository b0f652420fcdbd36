"""Survey geometry of the mock: runs, camcols, fields, epochs and their conditions.

Layout (the SDSS imaging geometry, simplified to runs along constant
declination):

* A frame is 2048 columns x 1489 rows at 0.396"/pixel; rows run along the
  scan (right ascension), columns across it (declination), as in the real
  frames (``CD1_2`` and ``CD2_1`` carry the scale).
* Consecutive fields of a run overlap by 128 rows (field step 1361 rows).
* Camcols of a run are side by side, overlapping by 64 columns.
* Every frame has a TAN WCS centred on the frame, with a small rotation
  per run.
* A run with ``epochs = E`` is observed E times; epoch ``e`` carries the
  run number ``run + e`` (so frame keys ``run-camcol-field`` are unique per
  epoch), a shifted field grid and its own seeing, sky and calibration.
  Epoch 0 is the primary one: the catalog (PhotoObjAll) is measured on it.
* A *cell* is the primary part of a primary-epoch field: the 1361 x 1984
  pixel box that tiles the footprint without overlap. Objects are generated
  per cell, from a seed that depends only on (seed, run, camcol, field), so
  the sky is the same whatever the number of chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "PIXSCALE", "NCOL", "NROW", "FIELD_STEP", "CAMCOL_STEP", "FIELD0", "RERUN",
    "GAIN", "DARK_VARIANCE", "Cell", "FrameSpec", "cells", "frames", "chunk_of_cells",
    "frame_wcs_header", "frame_conditions", "validate_mock_config",
]

PIXSCALE = 0.396  # arcsec / pixel
NCOL, NROW = 2048, 1489
FIELD_STEP = NROW - 128  # rows between consecutive fields
CAMCOL_STEP = NCOL - 64  # columns between adjacent camcols
FIELD0 = 11  # number of the first field of a run (SDSS runs start near 11)
RERUN = 301
CRPIX = (1024.5, 745.0)  # FITS (1-based) reference pixel, the frame centre
BANDS = ("u", "g", "r", "i", "z")

# SDSS camera gains (e-/DN) and dark variances (DN^2), camcol 1..6 x u,g,r,i,z,
# after the frame data model's tables; camcol 2 matches photoField-002583-2.
GAIN = np.array([
    [1.62, 3.32, 4.71, 5.165, 4.745],
    [1.825, 3.855, 4.6, 5.195, 5.155],
    [1.59, 3.845, 4.72, 4.86, 4.885],
    [1.6, 3.995, 4.76, 4.885, 4.775],
    [1.47, 4.05, 4.725, 4.64, 3.48],
    [2.17, 4.035, 4.895, 4.76, 4.69],
])
DARK_VARIANCE = np.array([
    [9.61, 15.6025, 1.8225, 7.84, 0.81],
    [12.6025, 1.44, 1.0, 6.25, 1.0],
    [8.7025, 1.3225, 1.3225, 4.6225, 1.0],
    [12.6025, 1.96, 1.3225, 7.5625, 12.6025],
    [9.3025, 1.1025, 0.81, 7.84, 2.1025],
    [7.0225, 1.8225, 0.9025, 5.0625, 1.21],
])
# Typical calibration (nanomaggies per DN) and dark-sky brightness (nanomaggies
# per arcsec^2) per band, as in the real field 2583-2-136.
NMGY_BASE = np.array([0.0119, 0.00447, 0.00547, 0.00656, 0.0386])
SKY_BASE = np.array([1.6, 2.3, 4.8, 8.6, 28.0])
# PSF FWHM relative to r, and time offsets (days) of the bands in the camera (r, i, u, z, g).
PSF_RATIO = np.array([1.12, 1.06, 1.0, 0.96, 0.98])
MJD_OFFSET = np.array([0.00166, 0.00332, 0.0, 0.00083, 0.00249])
PSF_R_MEDIAN, PSF_R_SIGMA_LN = 1.4, 0.14  # arcsec; quartiles ~1.27-1.54


def _rng(seed, *keys):
    return np.random.default_rng(np.random.SeedSequence([int(seed)] + [int(k) for k in keys]))


@dataclass(frozen=True)
class Cell:
    """Primary part of a primary-epoch field: where objects are generated."""

    index: int  # global, in config order
    entry: int  # index of the run in mock.runs
    run: int
    camcol: int
    field: int
    ra_c: float
    dec_c: float
    stripe82: bool


@dataclass(frozen=True)
class FrameSpec:
    """One field-epoch (all five bands share the geometry)."""

    entry: int
    base_run: int
    epoch: int
    run: int  # base_run + epoch
    camcol: int
    field: int
    ra_c: float
    dec_c: float
    theta: float  # rotation, deg
    stripe82: bool

    @property
    def key(self):
        return f"{self.run}-{self.camcol}-{self.field}"


def validate_mock_config(mock):
    """Check what the schema cannot: run numbers of all epochs distinct and < 65536."""
    used = {}
    for i, r in enumerate(mock["runs"]):
        for e in range(r["epochs"]):
            run = r["run"] + e
            if run >= 65536:
                raise ValueError(f"mock.runs[{i}]: run number {run} (epoch {e}) must be < 65536 (objID packing)")
            if run in used:
                raise ValueError(f"mock.runs[{i}]: run number {run} (epoch {e}) collides with mock.runs[{used[run]}]; "
                                 "epochs use run, run+1, ..., run+epochs-1")
            used[run] = i
        if len(set(r["camcols"])) != len(r["camcols"]):
            raise ValueError(f"mock.runs[{i}].camcols has duplicates: {r['camcols']}")


def _camcol_dec(run_cfg, camcol):
    return run_cfg["dec"] + (camcol - 3.5) * CAMCOL_STEP * PIXSCALE / 3600.0


def _field_ra(run_cfg, camcol, findex, row_offset=0.0):
    dec = _camcol_dec(run_cfg, camcol)
    step = (findex * FIELD_STEP + (NROW - 1) / 2.0 + row_offset) * PIXSCALE / 3600.0
    return (run_cfg["ra_start"] + step / np.cos(np.radians(dec))) % 360.0


def cells(mock):
    """All cells of the survey, in config order (run entry, camcol, field)."""
    out = []
    k = 0
    for i, r in enumerate(mock["runs"]):
        for c in r["camcols"]:
            for f in range(r["n_fields"]):
                out.append(Cell(k, i, r["run"], c, FIELD0 + f, _field_ra(r, c, f), _camcol_dec(r, c),
                                bool(r["stripe82"])))
                k += 1
    return out


def _epoch_shift(seed, run_cfg, epoch):
    """Row offset of an epoch's field grid, dec offset (deg) and rotation (deg)."""
    if epoch == 0:
        rng = _rng(seed, 101, run_cfg["run"])
        return 0.0, 0.0, float(rng.uniform(-0.02, 0.02))
    rng = _rng(seed, 102, run_cfg["run"], epoch)
    return (float(rng.uniform(-0.45, 0.45) * FIELD_STEP), float(rng.normal(0, 20) * PIXSCALE / 3600),
            float(rng.uniform(-0.02, 0.02)))


def frames(mock, cell_subset=None):
    """All field-epochs (``FrameSpec``) of the survey, or those of the given cells.

    Epoch ``e`` of a field is attached to the cell with the same (run entry,
    camcol, field index), so a chunk of cells owns all epochs of its fields.
    """
    want = None if cell_subset is None else {(c.entry, c.camcol, c.field) for c in cell_subset}
    out = []
    for i, r in enumerate(mock["runs"]):
        for e in range(r["epochs"]):
            drow, ddec, theta = _epoch_shift(mock["seed"], r, e)
            for c in r["camcols"]:
                for f in range(r["n_fields"]):
                    if want is not None and (i, c, FIELD0 + f) not in want:
                        continue
                    out.append(FrameSpec(i, r["run"], e, r["run"] + e, c, FIELD0 + f, _field_ra(r, c, f, drow),
                                         _camcol_dec(r, c) + ddec, theta, bool(r["stripe82"])))
    return out


def chunk_of_cells(all_cells, n_chunks, k, mock=None):
    """The cells of chunk ``k``: contiguous blocks of near-equal work.

    The work of a cell is its number of epochs (field-epochs to render) when
    ``mock`` is given, else 1.
    """
    if not 0 <= k < n_chunks:
        raise ValueError(f"chunk {k} out of range 0..{n_chunks - 1}")
    w = np.array([mock["runs"][c.entry]["epochs"] if mock else 1 for c in all_cells], dtype=float)
    cum = np.concatenate([[0.0], np.cumsum(w)])
    edges = np.searchsorted(cum, np.linspace(0, cum[-1], n_chunks + 1)[1:-1], side="left")
    bounds = np.concatenate([[0], edges, [len(all_cells)]]).astype(int)
    bounds = np.maximum.accumulate(bounds)
    return all_cells[bounds[k]:bounds[k + 1]]


def frame_wcs_header(fr):
    """The TAN WCS keywords of a frame (dict), rows along RA as in SDSS frames."""
    s = PIXSCALE / 3600.0
    t = np.radians(fr.theta)
    return {
        "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CUNIT1": "deg", "CUNIT2": "deg",
        "CRPIX1": CRPIX[0], "CRPIX2": CRPIX[1], "CRVAL1": fr.ra_c, "CRVAL2": fr.dec_c,
        "CD1_1": s * np.sin(t), "CD1_2": s * np.cos(t), "CD2_1": s * np.cos(t), "CD2_2": -s * np.sin(t),
    }


def frame_wcs(fr):
    """astropy WCS of a frame."""
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    h = frame_wcs_header(fr)
    w.wcs.ctype = [h["CTYPE1"], h["CTYPE2"]]
    w.wcs.crpix = [h["CRPIX1"], h["CRPIX2"]]
    w.wcs.crval = [h["CRVAL1"], h["CRVAL2"]]
    w.wcs.cd = [[h["CD1_1"], h["CD1_2"]], [h["CD2_1"], h["CD2_2"]]]
    return w


def frame_conditions(mock, fr):
    """Observing conditions of a field-epoch: dict of per-band arrays and scalars.

    psfWidth (FWHM, arcsec; r band log-normal with median 1.4" and quartiles
    about 1.27-1.54"), sky (nanomaggies/arcsec^2), nmgy (nanomaggies per DN),
    gain, darkVariance, mjd per band, airmass.
    """
    rng = _rng(mock["seed"], 201, fr.run, fr.camcol, fr.field)
    run_rng = _rng(mock["seed"], 202, fr.run)
    seeing_run = run_rng.normal()
    # log-normal seeing: 80% of the variance between runs (nights), 20% along a run
    psf_r = PSF_R_MEDIAN * np.exp(PSF_R_SIGMA_LN * (0.8 * seeing_run + 0.6 * rng.normal()))
    psf = psf_r * PSF_RATIO * np.exp(rng.normal(0, 0.03, 5))
    psf[2] = psf_r
    moon = np.exp(run_rng.normal(0, 0.12))
    sky = SKY_BASE * moon * np.exp(rng.normal(0, 0.04, 5))
    airmass = 1.0 + abs(run_rng.normal(0, 0.15)) + 0.01 * rng.random()
    nmgy = NMGY_BASE * np.exp(0.04 * rng.normal(size=5)) * (1 + 0.1 * (airmass - 1))
    mjd0 = 51000.0 + 17.0 * fr.entry + 41.0 * fr.epoch + 0.25 * run_rng.random()
    mjd = mjd0 + (fr.field - FIELD0) * 0.000833 + MJD_OFFSET
    return {
        "psfWidth": psf, "sky": sky, "nmgy": nmgy,
        "gain": GAIN[fr.camcol - 1].copy(), "darkVariance": DARK_VARIANCE[fr.camcol - 1].copy(),
        "mjd": mjd, "airmass": airmass,
    }
