"""Output grids of the cutouts and WCS-preserving stamps cut from frames.

Every cutout is a ``size`` x ``size`` gnomonic (TAN) grid centred on the
galaxy, north up and east left, ``pixel_scale`` arcsec per pixel, with the
galaxy at the reference pixel ``CRPIX = (size + 1) / 2`` (1-based, as
SWarp writes it: 32.5 for a 64-pixel grid, the galaxy between the four
central pixels).

Before SWarp sees a frame, the frame is trimmed to a small stamp around each
galaxy: the bounding box of the output grid projected onto the frame, plus a
margin for the Lanczos-3 kernel. The stamp keeps the frame's WCS with the
reference pixel shifted, so the resampling is unchanged.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "LANCZOS_MARGIN",
    "output_crpix",
    "output_header",
    "grid_offsets",
    "grid_world",
    "project",
    "stamp_box",
    "cut_stamp",
]

# Lanczos-3 reaches 3 input pixels on either side, +1 for the floor and rounding.
LANCZOS_MARGIN = 4


def output_crpix(size):
    """1-based reference pixel of the output grid (SWarp's convention)."""
    return (size + 1) / 2.0


def output_header(ra, dec, size, pixel_scale):
    """FITS WCS keywords of one cutout grid (a dict)."""
    c = output_crpix(size)
    s = pixel_scale / 3600.0
    return {
        "NAXIS": 2, "NAXIS1": size, "NAXIS2": size,
        "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CUNIT1": "deg", "CUNIT2": "deg",
        "CRVAL1": float(ra), "CRVAL2": float(dec), "CRPIX1": c, "CRPIX2": c,
        "CD1_1": -s, "CD1_2": 0.0, "CD2_1": 0.0, "CD2_2": s,
        "EQUINOX": 2000.0, "RADESYS": "ICRS",
    }


def grid_offsets(size, pixel_scale):
    """Intermediate world coordinates (xi, eta) in degrees of the grid's pixel centres.

    Returns two ``(size, size)`` arrays indexed ``[row, column]`` (0-based),
    ``xi`` increasing to the east (i.e. to decreasing column).
    """
    c0 = output_crpix(size) - 1.0
    s = pixel_scale / 3600.0
    pix = np.arange(size, dtype=np.float64) - c0
    xi = np.broadcast_to(-pix[None, :] * s, (size, size))
    eta = np.broadcast_to(pix[:, None] * s, (size, size))
    return xi, eta


def grid_world(ra, dec, size, pixel_scale):
    """RA, Dec (degrees) of every output pixel centre of the cutouts of many galaxies.

    Parameters
    ----------
    ra, dec : array_like (G,)
        Galaxy centres (degrees).

    Returns
    -------
    ra, dec : ndarray (G, size, size)
        The inverse gnomonic projection of the grid about each centre.
    """
    ra0 = np.radians(np.atleast_1d(np.asarray(ra, dtype=np.float64)))[:, None, None]
    dec0 = np.radians(np.atleast_1d(np.asarray(dec, dtype=np.float64)))[:, None, None]
    xi, eta = grid_offsets(size, pixel_scale)
    x = np.radians(xi)[None]
    y = np.radians(eta)[None]
    # inverse TAN about (ra0, dec0); (x, y) are standard coordinates
    denom = np.cos(dec0) - y * np.sin(dec0)
    ra_out = ra0 + np.arctan2(x, denom)
    dec_out = np.arctan2(np.sin(dec0) + y * np.cos(dec0), np.hypot(x, denom))
    return np.degrees(ra_out) % 360.0, np.degrees(dec_out)


def project(wcs, ra, dec):
    """0-based pixel coordinates ``(x, y)`` of world positions in a frame's WCS."""
    shape = np.shape(ra)
    x, y = wcs.all_world2pix(np.ravel(ra), np.ravel(dec), 0)
    return x.reshape(shape), y.reshape(shape)


def stamp_box(x, y, frame_shape, margin=LANCZOS_MARGIN):
    """Pixel box of the frame needed to resample one cutout, or ``None``.

    Parameters
    ----------
    x, y : ndarray
        0-based frame pixel coordinates of the cutout's pixel centres.
    frame_shape : (nrow, ncol)

    Returns
    -------
    (y0, y1, x0, x1) slice bounds clipped to the frame, or ``None`` when no
    output pixel centre falls on the frame.
    """
    nrow, ncol = frame_shape
    on = (x >= -0.5) & (x <= ncol - 0.5) & (y >= -0.5) & (y <= nrow - 0.5)
    if not np.any(on):
        return None
    x0 = max(int(np.floor(np.min(x))) - margin, 0)
    x1 = min(int(np.ceil(np.max(x))) + margin + 1, ncol)
    y0 = max(int(np.floor(np.min(y))) - margin, 0)
    y1 = min(int(np.ceil(np.max(y))) + margin + 1, nrow)
    return y0, y1, x0, x1


def cut_stamp(image, header, box):
    """Cut ``image[y0:y1, x0:x1]`` and shift the header's WCS reference pixel.

    Parameters
    ----------
    image : ndarray (nrow, ncol)
    header : astropy.io.fits.Header
        The frame's primary header (its WCS keywords are kept).
    box : (y0, y1, x0, x1)

    Returns
    -------
    data : ndarray float32 (a copy)
    header : astropy.io.fits.Header with CRPIX shifted and NAXIS updated
    """
    from astropy.io import fits

    y0, y1, x0, x1 = box
    data = np.ascontiguousarray(image[y0:y1, x0:x1], dtype=np.float32)
    keep = ("CTYPE1", "CTYPE2", "CUNIT1", "CUNIT2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2",
            "CD1_1", "CD1_2", "CD2_1", "CD2_2", "CDELT1", "CDELT2", "PC1_1", "PC1_2", "PC2_1", "PC2_2",
            "EQUINOX", "RADESYS", "RADECSYS", "BUNIT", "FILTER", "RUN", "CAMCOL", "FRAME")
    out = fits.Header()
    for key in keep:
        if key in header:
            out[key] = header[key]
    if "RADECSYS" in out and "RADESYS" not in out:
        out["RADESYS"] = out["RADECSYS"]
    if "RADECSYS" in out:
        del out["RADECSYS"]
    out["CRPIX1"] = float(header["CRPIX1"]) - x0
    out["CRPIX2"] = float(header["CRPIX2"]) - y0
    out["STAMPX0"] = (x0, "column of the frame at stamp column 0")
    out["STAMPY0"] = (y0, "row of the frame at stamp row 0")
    return data, out
