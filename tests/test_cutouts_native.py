"""The fast paths of the native resampler equal their direct definitions."""

import numpy as np
import pytest
from astropy.wcs import WCS

from photoz.cutouts.native import (
    combine_median,
    frame_pixel_grid,
    interpolate_lanczos3,
    lanczos3,
    lanczos3_taps,
    resample_frame,
    tan_homography,
)
from photoz.cutouts.stamps import grid_world, project

GRID = (64, 0.396)  # the cutouts: 64 x 64 pixels at SDSS's 0.396 arcsec/pixel


def _frame_wcs(ctype=("RA---TAN", "DEC--TAN"), rot_deg=27.0, sip=False):
    s = 0.396127 / 3600.0
    c, n = np.cos(np.radians(rot_deg)), np.sin(np.radians(rot_deg))
    hdr = {"CTYPE1": ctype[0], "CTYPE2": ctype[1], "CRPIX1": 1024.5, "CRPIX2": 745.0,
           "CRVAL1": 211.3, "CRVAL2": -3.2, "CD1_1": -s * c, "CD1_2": s * n, "CD2_1": s * n, "CD2_2": s * c,
           "NAXIS": 2, "NAXIS1": 2048, "NAXIS2": 1489}
    if sip:
        hdr.update({"CTYPE1": "RA---TAN-SIP", "CTYPE2": "DEC--TAN-SIP", "A_ORDER": 2, "B_ORDER": 2,
                    "A_2_0": 2e-5, "B_0_2": -3e-5})
    return WCS(hdr)


def _centres(wcs, n=7, seed=3):
    rng = np.random.default_rng(seed)
    return wcs.all_pix2world(rng.uniform(-40, 2080, n), rng.uniform(-40, 1520, n), 0)


def test_tan_homography_is_exact():
    w = _frame_wcs()
    ra, dec = _centres(w)
    h = tan_homography(w, ra, dec, *GRID)
    assert h.shape == (7, 3, 3)
    x, y = frame_pixel_grid(w, ra, dec, *GRID)
    xe, ye = project(w, *grid_world(ra, dec, *GRID))
    np.testing.assert_allclose(x, xe, atol=1e-7, rtol=0)
    np.testing.assert_allclose(y, ye, atol=1e-7, rtol=0)


@pytest.mark.parametrize("kind", ["sin", "sip"])
def test_other_wcs_fall_back_to_all_world2pix(kind):
    w = _frame_wcs(ctype=("RA---SIN", "DEC--SIN")) if kind == "sin" else _frame_wcs(sip=True)
    ra, dec = _centres(w)
    x, y = frame_pixel_grid(w, ra, dec, *GRID)
    xe, ye = project(w, *grid_world(ra, dec, *GRID))
    np.testing.assert_array_equal(x, xe)
    np.testing.assert_array_equal(y, ye)


def test_lanczos_weights_match_the_kernel():
    coord = np.array([10.0, 10.5, 10.999999, 11.000001, 0.2, -0.5, 99.4, 3.25])
    first, w = lanczos3_taps(coord, 100)
    for p, c in enumerate(coord):
        idx = first[p] + np.arange(6)
        ref = np.where((idx >= 0) & (idx < 100), lanczos3(c - idx), 0.0)
        np.testing.assert_allclose(w[:, p], ref / ref.sum(), atol=1e-12)


def test_interpolation_on_integer_positions_returns_the_pixels():
    img = np.random.default_rng(0).normal(size=(40, 50)).astype(np.float32)
    y, x = np.mgrid[0:40, 0:50]
    np.testing.assert_allclose(interpolate_lanczos3(img, x.astype(float), y.astype(float)), img, atol=1e-6)


def test_fast_and_exact_projection_give_the_same_cutouts():
    w = _frame_wcs()
    img = np.random.default_rng(1).normal(size=(1489, 2048)).astype(np.float32)
    ra, dec = w.all_pix2world([5.0, 2040.0, 1000.0, 1500.0], [700.0, 20.0, 1485.0, 600.0], 0)
    v1, c1 = resample_frame(img, w, ra, dec, *GRID)
    v2, c2 = resample_frame(img, w, ra, dec, *GRID, exact_projection=True)
    np.testing.assert_array_equal(c1, c2)
    assert 0 < c1.mean() < 1  # some cutouts run off the frame
    np.testing.assert_allclose(v1, v2, atol=1e-5)


@pytest.mark.parametrize("nframes", [2, 3, 4, 7, 12])
def test_combine_median_equals_nanmedian(nframes):
    rng = np.random.default_rng(nframes)
    vals = rng.normal(size=(nframes, 16, 16)).astype(np.float32)
    for cov in (np.ones(vals.shape, bool), rng.random(vals.shape) > 0.4):
        img, anyc = combine_median(vals, cov)
        stack = np.where(cov, vals, np.nan)
        ref = np.zeros((16, 16), np.float32)
        ref[anyc] = np.nanmedian(stack[:, anyc], axis=0)
        np.testing.assert_array_equal(anyc, cov.any(axis=0))
        np.testing.assert_allclose(img, ref, rtol=0, atol=1e-7)
