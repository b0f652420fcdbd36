"""Small synthetic SDSS-like frames for tests and benchmarks.

A frame written here follows the SDSS frame data model read by
:func:`photoz.sdss.frames.read_frame` (image in nanomaggies with a rotated
TAN WCS as in real SDSS frames, calibvec, ALLSKY/XINTERP/YINTERP sky table),
with Gaussian galaxies on a noisy background.
"""

from __future__ import annotations

import numpy as np

__all__ = ["synthetic_frame"]



def cutouts_section(**override):
    """A ``cutouts`` config section for ``make_cutouts``: 64 x 64 at SDSS's 0.396"/pixel, zero-filled
    partial coverage, the schema's defaults for the rest, and ``override``."""
    from photoz.config import fill_section

    return fill_section("cutouts", {"resampler": "native", "size": 64, "pixel_scale": 0.396,
                                    "partial_coverage": "zero_fill", **override})


def sdss_section(rerun=301, **override):
    """An ``sdss`` config section: DR12 at ``rerun``, placeholder archive addresses, the schema's
    defaults for the rest, and ``override`` (e.g. ``parallel_downloads``)."""
    from photoz.config import fill_section

    return fill_section("sdss", {"data_release": 12, "rerun": rerun, "skyserver_url": "https://unused.example",
                                 "sas_url": "https://unused.example", **override})


def synthetic_frame(path, ra_c, dec_c, band="r", run=9001, camcol=1, field=11, shape=(400, 600),
                    sources=(), noise=0.03, seed=0, truncate=False, pixscale=0.396127):
    """Write a synthetic frame ``path`` (``.fits`` or ``.fits.bz2``).

    Parameters
    ----------
    ra_c, dec_c : float
        World position of the frame centre.
    shape : (nrow, ncol)
    sources : iterable of (ra, dec, flux_nmgy, sigma_arcsec)
        Circular Gaussian sources.
    noise : float
        Gaussian pixel noise (nanomaggies).
    truncate : bool
        Write only the first half of the file's bytes (a corrupt frame).
    """
    import bz2

    from astropy.io import fits
    from astropy.wcs import WCS

    nrow, ncol = shape
    s = pixscale / 3600.0
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CUNIT1"], h["CUNIT2"] = "deg", "deg"
    h["CRPIX1"], h["CRPIX2"] = (ncol + 1) / 2.0, (nrow + 1) / 2.0
    h["CRVAL1"], h["CRVAL2"] = float(ra_c), float(dec_c)
    # SDSS layout: columns along declination, rows along right ascension
    h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = 1e-9, s, s, 1e-9
    h["RADESYS"] = "ICRS"
    h["EQUINOX"] = 2000.0
    h["BUNIT"] = "nanomaggy"
    h["FILTER"], h["RUN"], h["CAMCOL"], h["FRAME"] = band, int(run), int(camcol), int(field)
    rng = np.random.default_rng(seed)
    img = rng.normal(0.0, noise, size=shape)
    wcs = WCS(h)
    yy, xx = np.mgrid[0:nrow, 0:ncol]
    for ra, dec, flux, sig in sources:
        x0, y0 = wcs.all_world2pix([[ra, dec]], 0)[0]
        sp = sig / pixscale
        if -10 * sp < x0 < ncol + 10 * sp and -10 * sp < y0 < nrow + 10 * sp:
            img += flux / (2 * np.pi * sp**2) * np.exp(-0.5 * ((xx - x0) ** 2 + (yy - y0) ** 2) / sp**2)
    calib = np.full(ncol, 0.005, dtype=np.float32) * (1 + 0.01 * np.sin(np.arange(ncol) / 200.0)).astype(np.float32)
    ny, nx = (nrow + 7) // 8 + 2, ncol // 8
    allsky = (120.0 + 5.0 * rng.random((ny, nx))).astype(np.float32)
    xinterp = ((np.arange(ncol) - 3.5) / 8.0).astype(np.float32)
    yinterp = ((np.arange(nrow) + 4.5) / 8.0).astype(np.float32)
    sky = fits.BinTableHDU.from_columns([
        fits.Column(name="ALLSKY", format=f"{ny * nx}E", dim=f"({nx},{ny})", array=allsky[None]),
        fits.Column(name="XINTERP", format=f"{ncol}E", array=xinterp[None]),
        fits.Column(name="YINTERP", format=f"{nrow}E", array=yinterp[None]),
    ])
    hdul = fits.HDUList([fits.PrimaryHDU(img.astype(np.float32), h), fits.ImageHDU(calib), sky])
    import io

    buf = io.BytesIO()
    hdul.writeto(buf)
    data = buf.getvalue()
    if str(path).endswith(".bz2"):
        data = bz2.compress(data, 1)
    if truncate:
        data = data[: len(data) // 2]
    with open(path, "wb") as fh:
        fh.write(data)
    return wcs
