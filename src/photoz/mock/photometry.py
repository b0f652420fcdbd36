"""Petrosian photometry measured on the rendered frames with sep.

SDSS's definitions (Stoughton et al. 2002): the Petrosian ratio at radius r
is the mean surface brightness in the annulus 0.8r-1.25r over the mean
surface brightness within r; the Petrosian radius r_P is where it falls to
0.2 (measured in r, capped at 30"), and the Petrosian flux of every band is
the flux within 2 r_P. petroR50/R90 enclose 50%/90% of the Petrosian flux.
Errors come from sep with the per-pixel noise of the SDSS recipe.
Magnitudes are asinh magnitudes (Lupton et al. 1999) with the SDSS
softening parameters, as SDSS reports them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ASINH_B", "asinh_mag", "asinh_mag_err", "noise_map", "petrosian", "axis_ratio"]

ASINH_B = np.array([1.4e-10, 0.9e-10, 1.2e-10, 1.8e-10, 7.4e-10])
PIX = 0.396
RADII = np.geomspace(1.0, 30.0 / PIX, 40)  # pixels


def asinh_mag(flux_nmgy, band_index):
    """SDSS asinh magnitude of a flux in nanomaggies."""
    b = ASINH_B[band_index]
    f = np.asarray(flux_nmgy, dtype=np.float64) * 1e-9
    return -2.5 / np.log(10) * (np.arcsinh(f / (2 * b)) + np.log(b))


def asinh_mag_err(flux_nmgy, err_nmgy, band_index):
    """Error of :func:`asinh_mag`."""
    b = ASINH_B[band_index]
    f = np.asarray(flux_nmgy, dtype=np.float64) * 1e-9
    return 2.5 / np.log(10) * (np.asarray(err_nmgy) * 1e-9 / (2 * b)) / np.sqrt(1 + (f / (2 * b)) ** 2)


def noise_map(image, calibvec, sky_dn, gain, dark_variance):
    """Per-pixel sigma (nanomaggies) from the SDSS frame noise recipe."""
    dn = image / calibvec[None, :] + sky_dn
    return (np.sqrt(np.clip(dn, 0, None) / gain + dark_variance) * calibvec[None, :]).astype(np.float32)


def petrosian(images, errs, x, y, ref=2, segmap=None, seg_id=None):
    """Petrosian fluxes of objects at 0-based pixel positions ``(x, y)``.

    Parameters
    ----------
    images, errs : list of 5 ndarray
        Sky-subtracted images (nmgy) and their per-pixel sigma, bands u..z.
    x, y : ndarray
    ref : int
        Band in which the Petrosian radius is measured (r).
    segmap, seg_id : ndarray, optional
        sep segmentation map and the object ids: pixels of other detected
        objects are masked (a simple deblending, as SDSS deblends).

    Returns
    -------
    dict with petroRad (pix), flux (N,5), flux_err (N,5), r50, r90 (pix, ref band).
    """
    import sep

    seg = {} if segmap is None else {"segmap": segmap, "seg_id": np.asarray(seg_id, dtype=np.int32)}
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    img = np.ascontiguousarray(images[ref], dtype=np.float32)
    n = x.size
    f_in = np.empty((RADII.size, n))
    f_ann = np.empty((RADII.size, n))
    for k, r in enumerate(RADII):
        f_in[k] = sep.sum_circle(img, x, y, r, subpix=5, **seg)[0]
        f_ann[k] = sep.sum_circann(img, x, y, 0.8 * r, 1.25 * r, subpix=5, **seg)[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (f_ann / (np.pi * (1.25**2 - 0.8**2) * RADII[:, None] ** 2)) / (f_in / (np.pi * RADII[:, None] ** 2))
    rp = np.full(n, RADII[-1])
    for i in range(n):
        below = np.nonzero((ratio[:, i] < 0.2) & (RADII > 1.5))[0]
        if below.size:
            k = below[0]
            if k > 0 and np.isfinite(ratio[k - 1, i]):
                r0, r1 = np.log(RADII[k - 1]), np.log(RADII[k])
                t = (ratio[k - 1, i] - 0.2) / max(ratio[k - 1, i] - ratio[k, i], 1e-12)
                rp[i] = np.exp(r0 + np.clip(t, 0, 1) * (r1 - r0))
            else:
                rp[i] = RADII[k]
    ap = np.clip(2 * rp, 3.0, 2 * RADII[-1])
    flux = np.empty((n, 5))
    ferr = np.empty((n, 5))
    for j in range(5):
        f, fe, _ = sep.sum_circle(np.ascontiguousarray(images[j], dtype=np.float32), x, y, ap,
                                  err=np.ascontiguousarray(errs[j], dtype=np.float32), subpix=5, **seg)
        flux[:, j], ferr[:, j] = f, fe
    pos = flux[:, ref] > 0
    r50 = np.full(n, np.nan)
    r90 = np.full(n, np.nan)
    if pos.any():
        sp = {} if segmap is None else {"segmap": segmap, "seg_id": seg["seg_id"][pos]}
        rr, _ = sep.flux_radius(img, x[pos], y[pos], ap[pos], [0.5, 0.9], normflux=flux[pos, ref], subpix=5, **sp)
        r50[pos], r90[pos] = rr[:, 0], rr[:, 1]
    return {"petroRad": rp, "flux": flux, "flux_err": ferr, "r50": r50, "r90": r90}


def axis_ratio(image, x, y, r50):
    """b/a from Gaussian-weighted second moments (weight sigma = r50) on a stamp."""
    out = np.full(len(x), np.nan)
    ny, nx = image.shape
    for i, (xc, yc, s) in enumerate(zip(x, y, r50)):
        s = float(np.clip(s if np.isfinite(s) else 3.0, 1.5, 40.0))
        h = int(np.ceil(4 * s))
        x0, x1 = max(int(xc) - h, 0), min(int(xc) + h + 1, nx)
        y0, y1 = max(int(yc) - h, 0), min(int(yc) + h + 1, ny)
        if x1 - x0 < 3 or y1 - y0 < 3:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        dx, dy = xx - xc, yy - yc
        w = np.exp(-(dx**2 + dy**2) / (2 * s**2)) * image[y0:y1, x0:x1]
        tot = w.sum()
        if not tot > 0:
            continue
        qxx, qyy, qxy = (w * dx * dx).sum() / tot, (w * dy * dy).sum() / tot, (w * dx * dy).sum() / tot
        tr = qxx + qyy
        d = np.sqrt(max((qxx - qyy) ** 2 + 4 * qxy**2, 0.0))
        lam1, lam2 = (tr + d) / 2, (tr - d) / 2
        if lam1 > 0 and lam2 > 0:
            out[i] = np.sqrt(lam2 / lam1)
    return out


def segment(image, err, x, y, thresh=1.5):
    """sep detection on ``image``: segmentation map and, per position, the id of the nearest detection.

    Positions without a detection within 3 pixels get id 0 (no masking of others' pixels is
    then possible for them, only background is used as is).
    """
    import sep

    sep.set_extract_pixstack(3_000_000)
    sep.set_sub_object_limit(4096)
    objs, segmap = sep.extract(np.ascontiguousarray(image, dtype=np.float32), thresh,
                               err=np.ascontiguousarray(err, dtype=np.float32), minarea=5,
                               deblend_cont=0.005, segmentation_map=True)
    ids = np.zeros(len(x), dtype=np.int32)
    if len(objs):
        d2 = (objs["x"][None, :] - np.asarray(x)[:, None]) ** 2 + (objs["y"][None, :] - np.asarray(y)[:, None]) ** 2
        k = np.argmin(d2, axis=1)
        ok = d2[np.arange(len(x)), k] < 9.0
        ids[ok] = k[ok] + 1
    # positive id: pixels of other objects masked; objects not found: use plain apertures
    return segmap, ids
