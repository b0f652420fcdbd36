"""Native resampler: SWarp's Lanczos-3 resampling and median combination in numpy.

For one frame, the output grids of all the galaxies it overlaps are projected
onto the frame at once, and the frame is interpolated with a separable,
normalised Lanczos-3 kernel (6x6 taps) at every output pixel centre. Like
SWarp with ``FSCALASTRO_TYPE FIXED``, values are multiplied by the ratio of
output to input pixel area so that surface brightness per output pixel
conserves flux. An output pixel is covered by a frame when its centre falls
on the frame (``-0.5 <= x <= n - 0.5``); taps beyond the frame's edge get
zero weight and the kernel is renormalised over the remaining taps (per axis).

Frames are combined per galaxy and band by the median of the covering frames
at each pixel (SWarp's default ``COMBINE_TYPE MEDIAN``; the mean of the two
central values for an even count). Uncovered pixels are 0.

Speed (see ``benchmarks/bench_resample.py``):

* Projection. Both the cutout grid and an SDSS frame are gnomonic (TAN)
  projections, i.e. central projections of the sphere from its centre onto
  two planes, so the map from cutout pixels to frame pixels is exactly a
  plane projective transformation (a 3x3 homography per galaxy), composed
  from the two linear WCS matrices and the rotation between the two tangent
  points (:func:`tan_homography`). It is checked per frame against
  astropy's ``all_world2pix`` at the corners and centre of every cutout (one
  batched call); any other WCS (SIP or table distortions, another
  projection, ``LONPOLE`` != 180) fails the check or the eligibility test
  and is projected pixel by pixel with ``all_world2pix``.
* Kernel. Per output pixel, the 6 x- and 6 y-weights come from three
  trigonometric values per axis (``sin(pi f)``, ``sin(pi f/3)``,
  ``cos(pi f/3)`` of the fractional position ``f``) by the angle-addition
  identities, instead of twelve ``sinc`` evaluations.
* Gather. The frame is padded by 3 pixels once; the 36 taps of each output
  pixel are one ``np.take`` on the flat padded frame at ``base + offsets``
  and reduced with float32 ``einsum``.
* Combination. One frame: a plain copy. Several: a sort along the epoch axis
  with uncovered values as NaN (sorted last) and the two central values
  picked by count, identical to ``np.nanmedian``.
"""

from __future__ import annotations

import numpy as np

from .stamps import grid_world, output_crpix, project

__all__ = [
    "lanczos3",
    "lanczos3_taps",
    "interpolate_lanczos3",
    "tan_homography",
    "frame_pixel_grid",
    "resample_frame",
    "combine_median",
    "pixel_area_ratio",
]

_TAPS = np.arange(-2, 4)  # tap offsets relative to floor(x)
_PAD = 3  # padding of the frame: taps of a covered pixel reach floor(x) - 2 >= -3 and floor(x) + 3 <= n + 2
_COS_K = np.cos(np.pi * _TAPS / 3.0)
_SIN_K = np.sin(np.pi * _TAPS / 3.0)
_SIGN_K = np.where(_TAPS % 2 == 0, 1.0, -1.0)
_PI_K = np.pi * _TAPS
_SC_K = _SIGN_K * _COS_K
_SS_K = np.where(_TAPS % 3 == 0, 0.0, _SIGN_K * _SIN_K)  # sin(pi k / 3) is 0 for k = 0, 3
# largest allowed difference (frame pixels) between the homography and all_world2pix
HOMOGRAPHY_TOLERANCE = 1e-6


def lanczos3(d):
    """The Lanczos-3 kernel ``sinc(d) sinc(d/3)`` for ``|d| < 3``, else 0."""
    d = np.asarray(d, dtype=np.float64)
    out = np.sinc(d) * np.sinc(d / 3.0)
    return np.where(np.abs(d) < 3.0, out, 0.0)


def _lanczos3_weights(frac):
    """Lanczos-3 weights ``(6, P)`` of the taps ``-2..3`` at fractional offsets ``frac`` in [0, 1), up to a factor.

    ``L(f - k) = 3 sin(pi (f-k)) sin(pi (f-k)/3) / (pi (f-k))**2`` with
    ``sin(pi (f-k)) = (-1)**k sin(pi f)`` and
    ``sin(pi (f-k)/3) = sin(pi f/3) cos(pi k/3) - cos(pi f/3) sin(pi k/3)``.
    The factor ``3 sin(pi f)``, common to the six taps, is left out: the
    weights are normalised to unit sum afterwards. Taps come first so that every
    array operation runs over the P positions.
    """
    exact = frac == 0.0
    a = np.pi * np.where(exact, 0.5, frac)  # on a pixel centre: weights (0, 0, 1, 0, 0, 0), set below
    a3 = a / 3.0
    s3, c3 = np.sin(a3), np.cos(a3)
    d = a[None, :] - _PI_K[:, None]  # pi (f - k)
    d *= d
    w = s3[None, :] * _SC_K[:, None]
    w -= c3[None, :] * _SS_K[:, None]
    w /= d
    if exact.any():
        w[:, exact] = (_TAPS == 0)[:, None]
    return w


def _taps(coord, n):
    """First tap ``floor(coord) - 2`` and normalised weights ``(6, P)`` (0 off the axis ``0..n-1``)."""
    coord = np.asarray(coord, dtype=np.float64)
    base = np.floor(coord)
    w = _lanczos3_weights(coord - base)
    first = base.astype(np.intp) - 2
    if first.size and (first.min() < 0 or first.max() + 5 >= n):  # near an edge: drop the taps off the axis
        idx = first[None, :] + np.arange(6)[:, None]
        w = np.where((idx >= 0) & (idx < n), w, 0.0)
    s = w.sum(axis=0)
    np.divide(1.0, s, out=s, where=s != 0)  # all-zero columns (no tap on the axis) stay 0
    w *= s
    return first, w


def lanczos3_taps(coord, n):
    """First tap index and normalised Lanczos-3 weights along one axis.

    Parameters
    ----------
    coord : ndarray (P,)
        0-based pixel coordinates.
    n : int
        Axis length; taps outside ``0..n-1`` get zero weight.

    Returns
    -------
    first : ndarray (P,) intp, the first tap ``floor(coord) - 2`` (taps are ``first .. first + 5``)
    w : ndarray (6, P) float64, summing to 1 over the taps (all 0 when no tap is inside)
    """
    return _taps(coord, n)


def _pad(image):
    return np.pad(np.asarray(image, dtype=np.float32), _PAD, mode="constant")


def _interpolate_padded(flat, nrow, ncol, xs, ys, out):
    """Lanczos-3 at positions already clipped to ``[-0.5, n - 0.5]`` of a padded, flattened frame.

    The separable kernel is normalised per axis, as in :func:`lanczos3_taps`.
    """
    ncolp = ncol + 2 * _PAD
    ix, wx = _taps(xs, ncol)
    iy, wy = _taps(ys, nrow)
    base = (iy + _PAD) * ncolp + (ix + _PAD)
    offsets = (np.arange(6)[:, None] * ncolp + np.arange(6)[None, :]).ravel()
    patch = flat.take(offsets[:, None] + base[None, :]).reshape(6, 6, -1)  # (6 rows, 6 columns, P)
    rows = np.einsum("ijp,jp->ip", patch, wx.astype(np.float32))
    np.einsum("ip,ip->p", rows, wy.astype(np.float32), out=out)


def interpolate_lanczos3(image, x, y, chunk=4096):
    """Lanczos-3 interpolation of ``image`` at 0-based positions ``(x, y)``.

    Positions must lie on the frame (``-0.5 <= x <= ncol - 0.5`` and the
    same for ``y``); they are clipped to it. Returns a float32 array of the
    shape of ``x``.
    """
    nrow, ncol = np.shape(image)
    flat = _pad(image).ravel()
    xs = np.clip(np.ravel(x).astype(np.float64), -0.5, ncol - 0.5)
    ys = np.clip(np.ravel(y).astype(np.float64), -0.5, nrow - 0.5)
    out = np.empty(xs.size, dtype=np.float32)
    for s in range(0, xs.size, chunk):
        e = min(s + chunk, xs.size)
        _interpolate_padded(flat, nrow, ncol, xs[s:e], ys[s:e], out[s:e])
    return out.reshape(np.shape(x))


def pixel_area_ratio(wcs, pixel_scale):
    """Output pixel area over the frame's pixel area (SWarp's FIXED flux scale)."""
    from astropy.wcs.utils import proj_plane_pixel_area

    return (pixel_scale / 3600.0) ** 2 / proj_plane_pixel_area(wcs.celestial)


def _tangent_basis(ra, dec):
    """Rows (east, north, centre) unit vectors at tangent points ``(ra, dec)`` (degrees): (G, 3, 3)."""
    a, d = np.radians(np.asarray(ra, np.float64)), np.radians(np.asarray(dec, np.float64))
    ca, sa, cd, sd = np.cos(a), np.sin(a), np.cos(d), np.sin(d)
    z = np.zeros_like(a)
    east = np.stack([-sa, ca, z], axis=-1)
    north = np.stack([-sd * ca, -sd * sa, cd], axis=-1)
    centre = np.stack([cd * ca, cd * sa, sd], axis=-1)
    return np.stack([east, north, centre], axis=-2)


def _is_plain_tan(wcs):
    """Whether a WCS is a distortion-free RA---TAN/DEC--TAN with the default pole."""
    w = wcs.wcs
    if wcs.naxis != 2 or wcs.sip is not None or wcs.cpdis1 is not None or wcs.cpdis2 is not None:
        return False
    if wcs.det2im1 is not None or wcs.det2im2 is not None:
        return False
    ctype = [c.upper() for c in w.ctype]
    if ctype != ["RA---TAN", "DEC--TAN"]:
        return False
    lonpole = w.lonpole
    return not np.isfinite(lonpole) or lonpole == 180.0


def tan_homography(wcs, ra, dec, size, pixel_scale):
    """Homographies from cutout pixels to the pixels of a TAN frame.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        A distortion-free ``RA---TAN``/``DEC--TAN`` WCS (not checked here).
    ra, dec : array_like (G,)
        Cutout centres (degrees).

    Returns
    -------
    H : ndarray (G, 3, 3)
        ``H @ (col, row, 1)`` (0-based cutout pixel) is proportional to
        ``(x, y, 1)`` (0-based frame pixel).
    """
    ra = np.atleast_1d(np.asarray(ra, np.float64))
    dec = np.atleast_1d(np.asarray(dec, np.float64))
    s = np.radians(pixel_scale / 3600.0)
    c0 = output_crpix(size) - 1.0
    # cutout pixel -> standard coordinates (radians), north up, east left
    a_out = np.array([[-s, 0.0, c0 * s], [0.0, s, -c0 * s], [0.0, 0.0, 1.0]])
    w = wcs.wcs
    lin = np.degrees(np.linalg.inv(wcs.pixel_scale_matrix))  # radians -> frame pixels
    a_in = np.eye(3)
    a_in[:2, :2] = lin
    a_in[:2, 2] = np.asarray(w.crpix, np.float64) - 1.0
    b_in = _tangent_basis(w.crval[0], w.crval[1])
    b_out = _tangent_basis(ra, dec)
    rot = np.einsum("ij,gkj->gik", b_in, b_out)  # B_in @ B_out^T
    return a_in @ rot @ a_out


def _apply_homography(h, cols, rows):
    """Frame pixel coordinates ``(G, R, C)`` of the cutout pixels at ``rows`` (R,) x ``cols`` (C,)."""
    c = np.asarray(cols, np.float64)[None, None, :]
    r = np.asarray(rows, np.float64)[None, :, None]
    hh = h[:, :, :, None, None]
    w = hh[:, 2, 0] * c + (hh[:, 2, 1] * r + hh[:, 2, 2])
    x = (hh[:, 0, 0] * c + (hh[:, 0, 1] * r + hh[:, 0, 2])) / w
    y = (hh[:, 1, 0] * c + (hh[:, 1, 1] * r + hh[:, 1, 2])) / w
    return x, y


def _standard_to_world(ra0, dec0, xi, eta):
    """Inverse gnomonic projection (degrees in and out), as :func:`stamps.grid_world`."""
    ra0, dec0 = np.radians(ra0), np.radians(dec0)
    x, y = np.radians(xi), np.radians(eta)
    denom = np.cos(dec0) - y * np.sin(dec0)
    ra = ra0 + np.arctan2(x, denom)
    dec = np.arctan2(np.sin(dec0) + y * np.cos(dec0), np.hypot(x, denom))
    return np.degrees(ra) % 360.0, np.degrees(dec)


def frame_pixel_grid(wcs, ra, dec, size, pixel_scale, exact=False):
    """0-based frame pixel coordinates of the cutout pixel centres of many galaxies.

    Uses :func:`tan_homography` when the frame WCS is a plain TAN and the
    homography agrees with ``all_world2pix`` to :data:`HOMOGRAPHY_TOLERANCE`
    pixels at the corners and centre of every cutout; otherwise (or with
    ``exact=True``) projects every pixel with ``all_world2pix``.

    Returns
    -------
    x, y : ndarray (G, size, size) float64, indexed ``[galaxy, row, column]``
    """
    ra = np.atleast_1d(np.asarray(ra, np.float64))
    dec = np.atleast_1d(np.asarray(dec, np.float64))
    g = ra.size
    if not exact and _is_plain_tan(wcs):
        h = tan_homography(wcs, ra, dec, size, pixel_scale)
        # check: corners and centre of every cutout through astropy
        cc = np.array([0.0, size - 1.0, 0.0, size - 1.0, (size - 1) / 2.0])
        rr = np.array([0.0, 0.0, size - 1.0, size - 1.0, (size - 1) / 2.0])
        c0, s = output_crpix(size) - 1.0, pixel_scale / 3600.0
        rw, dw = _standard_to_world(ra[:, None], dec[:, None], -(cc - c0) * s, (rr - c0) * s)
        xa, ya = wcs.all_world2pix(rw.ravel(), dw.ravel(), 0)
        xh, yh = (np.stack([v[:, i, i] for i in range(cc.size)], axis=1)
                  for v in _apply_homography(h, cc, rr))
        dev = max(np.max(np.abs(xh.ravel() - xa)), np.max(np.abs(yh.ravel() - ya))) if g else 0.0
        if dev <= HOMOGRAPHY_TOLERANCE:
            pix = np.arange(size, dtype=np.float64)
            return _apply_homography(h, pix, pix)
    R, D = grid_world(ra, dec, size, pixel_scale)
    return project(wcs, R, D)


def resample_frame(image, wcs, ra, dec, size, pixel_scale, exact_projection=False, block=2):
    """Resample one frame onto the cutout grids of many galaxies.

    Parameters
    ----------
    image : ndarray (nrow, ncol)
    wcs : astropy.wcs.WCS
        The frame's WCS.
    ra, dec : array_like (G,)
        Cutout centres.
    exact_projection : bool
        Project every output pixel with ``all_world2pix`` instead of the
        checked TAN homography (for tests and non-TAN frames).
    block : int
        Galaxies interpolated per vectorised step.

    Returns
    -------
    values : ndarray (G, size, size) float32
        Resampled frame, 0 where not covered.
    covered : ndarray (G, size, size) bool
        Output pixel centre on the frame.
    """
    x, y = frame_pixel_grid(wcs, ra, dec, size, pixel_scale, exact=exact_projection)
    nrow, ncol = np.shape(image)
    covered = (x >= -0.5) & (x <= ncol - 0.5) & (y >= -0.5) & (y <= nrow - 0.5)
    values = np.zeros(x.shape, dtype=np.float32)
    if not covered.any():
        return values, covered
    scale = np.float32(pixel_area_ratio(wcs, pixel_scale))
    flat = _pad(image).ravel()
    npix = size * size
    todo = np.flatnonzero(covered.reshape(x.shape[0], -1).any(axis=1))
    for s in range(0, todo.size, block):  # a few galaxies at a time keep the (36, P) gather small
        ks = todo[s:s + block]
        xs = np.clip(x[ks].ravel(), -0.5, ncol - 0.5)
        ys = np.clip(y[ks].ravel(), -0.5, nrow - 0.5)
        out = np.empty(ks.size * npix, dtype=np.float32)
        _interpolate_padded(flat, nrow, ncol, xs, ys, out)
        out *= scale
        values[ks] = out.reshape(ks.size, size, size)
    values[~covered] = 0.0
    return values, covered


def _sort_epochs(stack):
    """Sort ``stack`` (F, N) along the epoch axis; an odd-even transposition network for small F."""
    f = stack.shape[0]
    if f > 8:
        return np.sort(stack, axis=0)
    rows = list(stack)
    for rnd in range(f):
        for i in range(rnd % 2, f - 1, 2):
            a, b = rows[i], rows[i + 1]
            rows[i], rows[i + 1] = np.minimum(a, b), np.maximum(a, b)
    return np.stack(rows)


def combine_median(values, covered):
    """Median-combine resampled frames of one galaxy and band.

    Identical to ``np.nanmedian`` over the covering frames (for finite
    values): the mean of the two central values for an even count.

    Parameters
    ----------
    values : ndarray (F, size, size)
    covered : ndarray (F, size, size) bool

    Returns
    -------
    image : ndarray (size, size) float32, 0 where no frame covers
    any_covered : ndarray (size, size) bool
    """
    values = np.asarray(values, dtype=np.float32)
    covered = np.asarray(covered, dtype=bool)
    f = values.shape[0]
    if f == 1:
        return np.where(covered[0], values[0], np.float32(0.0)), covered[0].copy()
    shape = values.shape[1:]
    values = values.reshape(f, -1)
    covered = covered.reshape(f, -1)
    count = covered.sum(axis=0)
    anyc = count > 0
    half = np.float32(0.5)
    if count.min() == f:  # every frame covers every pixel
        srt = _sort_epochs(values)
        out = (srt[(f - 1) // 2] + srt[f // 2]) * half
        return out.astype(np.float32).reshape(shape), anyc.reshape(shape)
    srt = _sort_epochs(np.where(covered, values, np.float32(np.inf)))  # uncovered sort last
    c = np.maximum(count, 1)
    lo = np.take_along_axis(srt, ((c - 1) // 2)[None], axis=0)[0]
    hi = np.take_along_axis(srt, (c // 2)[None], axis=0)[0]
    out = np.where(anyc, (lo + hi) * half, np.float32(0.0)).astype(np.float32)
    return out.reshape(shape), anyc.reshape(shape)
