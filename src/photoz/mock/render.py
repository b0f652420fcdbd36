"""GalSim rendering of mock frames, written in the SDSS frame format.

A frame is drawn in nanomaggies (bulge + disk of each galaxy, point sources
for stars, each convolved with the frame's Moffat PSF), converted to DN with
the column calibration ``calibvec``, put on the smooth sky (DN), given
Poisson noise (gain) and read noise (darkVariance), then sky subtracted and
calibrated back to nanomaggies, exactly the inverse of the SDSS frame noise
recipe. Frames in the suspect zone are *served* (written to the SAS tree)
with a zero-point error of ``mock.suspect_zone_error_mag`` in one band,
``mock.suspect_zone_band`` (recorded only in the truth): the pixels and the
calibvec written are off by that factor, while the catalogue's photometry is
measured on the correctly calibrated image, so the catalogue does not reveal
it (``suspect_zone_band: null`` puts a grey error in every band, the
catalogue included, the earlier injection).

The file mirrors the real ``frame-*.fits.bz2`` HDU by HDU: HDU0 float32 image
(10-bit float truncation, as SDSS's FLOATCOMPRESS), HDU1 calibvec, HDU2
ALLSKY/XINTERP/YINTERP, HDU3 the astrometric (asTrans) row.
"""

from __future__ import annotations

import bz2
import io

import numpy as np

from . import geometry as geo
from .reddening import EXTINCTION_COEFF, ebv_map

__all__ = ["MOFFAT_BETA", "psf_profile", "in_suspect_zone", "render_frame", "frame_hdul", "write_frame",
           "sky_image"]

BANDS = geo.BANDS
MOFFAT_BETA = 3.5
CAMROW = {"r": 1, "i": 2, "u": 3, "z": 4, "g": 5}
XINTERP = np.arange(geo.NCOL) / 8.0 - 0.4375
YINTERP = np.arange(geo.NROW) / 8.0 + 0.5625
ALLSKY_SHAPE = (192, 256)


def psf_profile(fwhm, gsparams=None):
    """The PSF of a frame: a Moffat (beta = 3.5) of the given FWHM (arcsec)."""
    import galsim

    return galsim.Moffat(beta=MOFFAT_BETA, fwhm=fwhm, trunc=4.5 * fwhm, gsparams=gsparams)


def in_suspect_zone(mock, ra, dec):
    """Whether positions lie in ``mock.suspect_zone`` (the box, deg)."""
    b = mock["suspect_zone"]
    return (np.asarray(ra) >= b["ra_min"]) & (np.asarray(ra) <= b["ra_max"]) & \
        (np.asarray(dec) >= b["dec_min"]) & (np.asarray(dec) <= b["dec_max"])


def _calibvec(nmgy, rng):
    x = np.arange(geo.NCOL) / (geo.NCOL - 1)
    flat = 1 + 0.006 * np.cos(2 * np.pi * (x + rng.random())) + 0.003 * (x - 0.5)
    return (nmgy * flat).astype(np.float64)


def _allsky(sky_dn, rng):
    gx, gy = rng.normal(0, 0.004, 2)
    Y, X = np.mgrid[0:ALLSKY_SHAPE[0], 0:ALLSKY_SHAPE[1]]
    return (sky_dn * (1 + gx * (X - 128) / 256 + gy * (Y - 96) / 192)).astype(np.float32)


def sky_image(allsky):
    """Bilinear interpolation of ALLSKY at XINTERP/YINTERP (clamped), DN."""
    ny, nx = allsky.shape
    a = allsky.astype(np.float64)

    def axis(c, n):
        c = np.clip(c, 0, n - 1)
        i0 = np.minimum(np.floor(c).astype(int), n - 2)
        return i0, c - i0

    x0, wx = axis(XINTERP, nx)
    y0, wy = axis(YINTERP, ny)
    rows = a[:, x0] * (1 - wx) + a[:, x0 + 1] * wx
    return rows[y0] * (1 - wy)[:, None] + rows[y0 + 1] * wy[:, None]


def _truncate_float(img, bits=9):
    """Keep ``bits`` explicit mantissa bits of float32 values (SDSS FLOATCOMPRESS).

    SDSS writes "Floats truncated at 10 binary digits": 10 significant digits,
    the implicit leading one and 9 stored bits (a real frame's pixels have
    their 14 lowest mantissa bits zero: ``benchmarks/bench_mock_frames.txt``).
    """
    a = np.ascontiguousarray(img, dtype=np.float32).view(np.uint32)
    mask = np.uint32((0xFFFFFFFF << (23 - bits)) & 0xFFFFFFFF)
    return (a & mask).view(np.float32)


def _shapes(obj, gsp):
    """Each object's unit-flux (bulge, disk, size) GalSim profiles, ``None`` for a star (the bands share them)."""
    import galsim

    kind = obj["kind"].to_numpy()
    shapes = []
    for k in range(len(obj)):
        row = obj.iloc[k]
        if kind[k] == "star":
            shapes.append(None)
            continue
        bulge = galsim.DeVaucouleurs(half_light_radius=row["hlr_bulge"], trunc=8 * row["hlr_bulge"], gsparams=gsp)
        bulge = bulge.shear(q=row["q_bulge"], beta=row["pa"] * galsim.degrees)
        disk = galsim.Exponential(half_light_radius=row["hlr_disk"], gsparams=gsp)
        disk = disk.shear(q=row["q_disk"], beta=row["pa"] * galsim.degrees)
        size = max(row["hlr_bulge"], row["hlr_disk"])
        shapes.append((bulge, disk, size))
    return shapes


def _stamp_reaches_frame(x, y, n):
    """Whether an ``n`` x ``n`` stamp centred on the 0-based pixel position ``(x, y)`` can touch the frame
    (conservative by two pixels, so a stamp that adds flux is never skipped)."""
    h = n / 2 + 2
    return -h < x < geo.NCOL - 1 + h and -h < y < geo.NROW - 1 + h


def _draw_band(xy, shapes, fb, fd, psf, fwhm, jac, gsp):
    """The noiseless image (nanomaggies, float64) of the objects at pixel positions ``xy`` in one band:
    bulge and disk fluxes ``fb``, ``fd`` (reddened), convolved with ``psf`` of FWHM ``fwhm``."""
    import galsim

    x, y = xy
    image = galsim.ImageF(geo.NCOL, geo.NROW, xmin=1, ymin=1)
    for k in range(len(shapes)):
        flux = fb[k] + fd[k]
        if not flux > 0:
            continue
        pos = galsim.PositionD(x[k] + 1, y[k] + 1)
        if shapes[k] is None:
            prof = psf.withFlux(flux)
            n = int(np.clip(2 * np.ceil(fwhm * (3 + 0.8 * np.log10(max(flux, 1))) / geo.PIXSCALE), 24, 160))
        else:
            bulge, disk, size = shapes[k]
            prof = galsim.Convolve(bulge * fb[k] + disk * fd[k], psf, gsparams=gsp)
            n = int(np.clip(2 * np.ceil((5 * size + 2 * fwhm) / geo.PIXSCALE), 32, 256))
        if not _stamp_reaches_frame(x[k], y[k], n):
            continue  # the stamp would add nothing: skip its drawing (the image is the same)
        stamp = prof.drawImage(nx=n, ny=n, wcs=jac, center=pos)
        bounds = stamp.bounds & image.bounds
        if bounds.isDefined():
            image[bounds] += stamp[bounds]
    return image.array.astype(np.float64)


def _observe(model, cond, j, rng):
    """The model seen through the camera in band ``j``: (whole-DN counts with sky and noise, the sky
    image in DN, the true calibration vector, the sky grid); draws from ``rng`` in a fixed order."""
    calib_true = _calibvec(cond["nmgy"][j], rng)
    sky_dn = cond["sky"][j] * geo.PIXSCALE**2 / cond["nmgy"][j]
    allsky = _allsky(sky_dn, rng)
    sky = sky_image(allsky)
    dn = model / calib_true[None, :] + sky
    gain, dv = cond["gain"][j], cond["darkVariance"][j]
    noisy = rng.poisson(np.clip(dn, 0, None) * gain) / gain + rng.normal(0, np.sqrt(dv), dn.shape)
    # whole DN, as the real corrected frame (fpC, 16-bit integers) before
    # sky subtraction and calibration: a real frame's values step by one
    # DN times the calibration (1/12 DN^2 of quantisation variance)
    return np.rint(noisy), sky, calib_true, allsky


def render_frame(mock, fr, objects, cond):
    """Render the five bands of one field-epoch.

    Parameters
    ----------
    mock : dict
        The ``mock`` config section.
    fr : FrameSpec
    objects : DataFrame
        Objects (from :func:`photoz.mock.population.cell_population`) near the frame.
    cond : dict
        From :func:`photoz.mock.geometry.frame_conditions`.

    Returns
    -------
    dict band -> dict(image (nmgy, float32, sky subtracted), calibvec, allsky, ``sky`` (DN, float64,
    :func:`sky_image` of allsky), the noiseless model ``model`` in nmgy; in the injected band of a suspect frame also
    ``served`` and ``served_calibvec``, what the SAS serves), plus ``"suspect"``,
    ``"suspect_mag"`` and ``"suspect_band"``.
    """
    import galsim

    wcs = geo.frame_wcs(fr)
    x, y = wcs.all_world2pix(objects["ra"].to_numpy(), objects["dec"].to_numpy(), 0)
    margin = 150
    on = (x > -margin) & (x < geo.NCOL + margin) & (y > -margin) & (y < geo.NROW + margin)
    obj = objects[on]
    xy = (x[on], y[on])
    ebv = ebv_map(obj["ra"].to_numpy(), obj["dec"].to_numpy(), mock["seed"]) if len(obj) else np.zeros(0)
    h = geo.frame_wcs_header(fr)
    jac = galsim.JacobianWCS(h["CD1_1"] * 3600, h["CD1_2"] * 3600, h["CD2_1"] * 3600, h["CD2_2"] * 3600)
    gsp = galsim.GSParams(folding_threshold=1e-2, maxk_threshold=2e-3, kvalue_accuracy=1e-4)
    suspect = bool(in_suspect_zone(mock, fr.ra_c, fr.dec_c))
    err_mag = float(mock["suspect_zone_error_mag"]) if suspect else 0.0
    err_band = mock["suspect_zone_band"]
    one_band = err_band is not None  # grey (False): catalogue and frames both off; one band: only the frames served
    shapes = _shapes(obj, gsp)
    out = {"suspect": suspect, "suspect_mag": err_mag, "suspect_band": (err_band or "all") if suspect else ""}
    for j, b in enumerate(BANDS):
        rng = np.random.default_rng(np.random.SeedSequence([int(mock["seed"]), 401, fr.run, fr.camcol, fr.field, j]))
        fwhm = float(cond["psfWidth"][j])
        ext = 10 ** (-0.4 * EXTINCTION_COEFF[j] * ebv)
        model = _draw_band(xy, shapes, obj[f"flux_bulge_{b}"].to_numpy() * ext, obj[f"flux_disk_{b}"].to_numpy() * ext,
                           psf_profile(fwhm, gsp), fwhm, jac, gsp)
        noisy, sky, calib_true, allsky = _observe(model, cond, j, rng)
        calib_cat = calib_true * (1.0 if one_band else 10 ** (-0.4 * err_mag))
        img = _truncate_float(((noisy - sky) * calib_cat[None, :]).astype(np.float32))
        out[b] = {"image": img, "calibvec": calib_cat.astype(np.float32), "allsky": allsky,
                  "sky": sky, "model": model.astype(np.float32)}
        if one_band and b == err_band and err_mag:
            calib_served = calib_true * 10 ** (-0.4 * err_mag)
            out[b]["served"] = _truncate_float(((noisy - sky) * calib_served[None, :]).astype(np.float32))
            out[b]["served_calibvec"] = calib_served.astype(np.float32)
    return out


def _primary_header(fr, band, cond, calibvec):
    """HDU0's header: the real frame's keywords (observation, camera, WCS, calibration)."""
    from astropy.io import fits
    from astropy.time import Time

    j = BANDS.index(band)
    h = fits.Header()
    mjd = float(cond["mjd"][j])
    t = Time(mjd, format="mjd", scale="tai")
    wcsh = geo.frame_wcs_header(fr)
    h["TAI"] = (round(mjd * 86400.0, 2),
                "1st row - seconds since Nov 17 1858")
    h["RA"] = (round(fr.ra_c, 5), "1st row - RA of telescope boresight (deg)")
    h["DEC"] = (round(fr.dec_c, 6), "1st row - Dec of telescope boresight (deg)")
    h["SPA"] = (90.0 + fr.theta, "1st row - Camera col position angle (deg)")
    h["DATE-OBS"] = (t.isot[:10], "1st row - TAI date")
    h["TAIHMS"] = (t.isot[11:22], "1st row - TAI time (HH:MM:SS.SS)")
    h["ORIGIN"] = "SDSS"
    h["TELESCOP"] = "2.5m"
    h["TIMESYS"] = "TAI"
    h["RUN"] = (fr.run, "Run number")
    # as SDSS writes it: the raw frame number of this CCD, field + 2 (CAMROW - 1)
    h["FRAME"] = (fr.field + 2 * (CAMROW[band] - 1), "Frame sequence number within the run")
    h["CCDLOC"] = (CAMROW[band] * 10 + fr.camcol, "Survey location of CCD (e.g., rowCol)")
    h["STRIPE"] = (82 if fr.stripe82 else 0, "Stripe index number")
    h["STRIP"] = ("N", "Strip in the stripe being tracked.")
    h["FLAVOR"] = ("science", "Flavor of this run")
    h["EXPTIME"] = ("53.907456", "Exposure time (seconds)")
    h["CCDMODE"] = ("DRIFT", "'STARING' or 'DRIFT'")
    h["CAMROW"] = (CAMROW[band], "Row in the imaging camera")
    h["BADLINES"] = (0, "Number of bad lines in frame")
    h["EQUINOX"] = 2000.0
    h["SOFTBIAS"] = (1000, 'software "bias" added to all DN')
    h["BUNIT"] = ("nanomaggy", "1 nanomaggy = 3.631e-6 Jy")
    h["FILTER"] = (band, "filter used")
    h["CAMCOL"] = (fr.camcol, "column in the imaging camera")
    h["RADECSYS"] = ("ICRS", "International Celestial Ref. System")
    for k, v in wcsh.items():
        h[k] = v
    h["NMGY"] = (float(np.median(calibvec)), "Calibration factor [nMgy per count]")
    h["NMGYIVAR"] = (float(1.0 / (0.01 * np.median(calibvec)) ** 2), "Calibration factor inverse variance")
    h["RERUN"] = (str(geo.RERUN), "rerun")
    h["COMMENT"] = "Floats truncated at 10 binary digits with FLOATCOMPRESS"
    h["COMMENT"] = "Mock SDSS frame rendered by photoz.mock (GalSim); SDSS frame data model layout"
    return h


def _astrans_hdu(fr, band, cond):
    """HDU3, the asTrans row: mu/nu linearised on (RA, Dec) at the frame origin (NODE = 0, INCL = 0)."""
    from astropy.io import fits

    mjd = float(cond["mjd"][BANDS.index(band)])
    w = geo.frame_wcs(fr)
    (ra0, ra_r, ra_c), (de0, de_r, de_c) = [
        np.array(v) for v in zip(*[w.all_pix2world([[c, rw]], 0)[0] for rw, c in ((0, 0), (1, 0), (0, 1))])]
    ra_r, ra_c, de_r, de_c = (ra_r - ra0 + 180) % 360 - 180, (ra_c - ra0 + 180) % 360 - 180, de_r - de0, de_c - de0
    cols = [("RUN", "J", fr.run), ("RERUN", "3A", str(geo.RERUN)), ("CAMCOL", "J", fr.camcol), ("FILTER", "A", band),
            ("NODE", "D", 0.0), ("INCL", "D", 0.0), ("NAXIS", "2J", np.array([geo.NCOL, geo.NROW])),
            ("FIELD", "J", fr.field), ("A", "D", ra0), ("B", "D", ra_r), ("C", "D", ra_c),
            ("D", "D", de0), ("E", "D", de_r), ("F", "D", de_c)]
    cols += [(f"D{a}{i}", "D", 0.0) for a in ("ROW", "COL") for i in range(4)]
    cols += [("CSROW", "D", 0.0), ("CSCOL", "D", 0.0), ("CCROW", "D", 0.0), ("CCCOL", "D", 0.0),
             ("RICUT", "D", 100.0), ("MJD", "D", mjd), ("AIRMASS", "D", float(cond["airmass"])),
             ("MUERR", "E", 0.04), ("NUERR", "E", 0.04)]
    return fits.BinTableHDU.from_columns([fits.Column(name=n, format=f, array=[v]) for n, f, v in cols])


def frame_hdul(mock, fr, band, rendered, cond):
    """The ``HDUList`` of one frame, HDU by HDU as the real SDSS file."""
    from astropy.io import fits

    r = rendered[band]
    calibvec = r.get("served_calibvec", r["calibvec"])  # what the archive serves (the injected band's error)
    hdu0 = fits.PrimaryHDU(r.get("served", r["image"]), header=_primary_header(fr, band, cond, calibvec))
    hdu1 = fits.ImageHDU(calibvec)
    sky = fits.BinTableHDU.from_columns([
        fits.Column(name="ALLSKY", format=f"{ALLSKY_SHAPE[0] * ALLSKY_SHAPE[1]}E",
                    dim=f"({ALLSKY_SHAPE[1]}, {ALLSKY_SHAPE[0]})", array=r["allsky"][None]),
        fits.Column(name="XINTERP", format=f"{geo.NCOL}E", array=XINTERP[None].astype(np.float32)),
        fits.Column(name="YINTERP", format=f"{geo.NROW}E", array=YINTERP[None].astype(np.float32)),
    ])
    return fits.HDUList([hdu0, hdu1, sky, _astrans_hdu(fr, band, cond)])


def write_frame(path, hdul):
    """Write ``hdul`` bz2-compressed to ``path`` atomically; returns the size in bytes."""
    from photoz.io import atomic_write_bytes

    buf = io.BytesIO()
    hdul.writeto(buf)
    data = bz2.compress(buf.getvalue(), 9)
    atomic_write_bytes(path, data)
    return len(data)
