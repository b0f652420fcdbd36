"""Photometric-redshift metrics of Pasquet et al. (2019, Sect. 4.1 and 4.3).

Point estimates
    ``delta_z``   Δz = (z_phot − z_spec) / (1 + z_spec)
    ``bias``      <Δz>
    ``sigma_mad`` 1.4826 × median(|Δz − median(Δz)|)
    ``eta``       percentage of galaxies with |Δz| > 0.05

Probability distributions on the bin grid
    A PDF is the vector of probabilities ``p_k`` of the ``n`` redshift classes
    with edges ``e_0 < ... < e_n`` (``photoz.bins.edges``). Inside a bin the
    probability is taken as uniform, so the CDF is the piecewise-linear curve
    through ``(e_k, sum_{j<k} p_j)``. On that curve:

    ``pit``       PIT_i = CDF_i(z_spec,i)
    ``crps``      CRPS_i = ∫ (CDF_i(z) − H(z − z_spec,i))² dz over [e_0, e_n],
                  integrated exactly (each bin is a quadratic in z)
    ``width``     the central interval keeping 68% of the probability
                  (16% cut from each wing), ``quantile`` in general

Every function works on whole arrays at once and processes PDFs in row chunks,
so 500,000 galaxies × 180 bins take seconds with bounded memory
(``benchmarks/bench_metrics.py``). Uncertainties of bias, σ_MAD and η come from
a bootstrap over galaxies (``bootstrap``).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "OUTLIER_THRESHOLD",
    "MAD_SCALE",
    "delta_z",
    "bias",
    "sigma_mad",
    "eta",
    "point_metrics",
    "bootstrap",
    "bias_slope",
    "partial_slope",
    "slope_at_fixed_z",
    "normalise",
    "cdf_at_edges",
    "z_phot",
    "pit",
    "crps",
    "quantile",
    "width",
    "pit_histogram",
]

#: |Δz| above which a galaxy is a catastrophic outlier (Sect. 4.1).
OUTLIER_THRESHOLD = 0.05
#: 1 / Φ⁻¹(3/4): turns a median absolute deviation into a Gaussian σ.
MAD_SCALE = 1.4826

#: rows of PDFs processed at once (memory ~ CHUNK × n_bins × 8 bytes × a few)
CHUNK = 32768


# --------------------------------------------------------------------------
# point estimates
# --------------------------------------------------------------------------
def delta_z(z_phot, z_spec):
    """Normalised residual Δz = (z_phot − z_spec) / (1 + z_spec).

    Parameters
    ----------
    z_phot, z_spec : array_like
        Photometric and spectroscopic redshifts (same shape).

    Returns
    -------
    ndarray (float64)
    """
    z_phot = np.asarray(z_phot, dtype=np.float64)
    z_spec = np.asarray(z_spec, dtype=np.float64)
    if z_phot.shape != z_spec.shape:
        raise ValueError(f"z_phot {z_phot.shape} and z_spec {z_spec.shape} differ in shape")
    return (z_phot - z_spec) / (1.0 + z_spec)


def bias(dz, axis=None):
    """Mean of Δz."""
    return np.mean(np.asarray(dz, dtype=np.float64), axis=axis)


def sigma_mad(dz, axis=None):
    """1.4826 × median(|Δz − median(Δz)|) (the median residual *is* subtracted)."""
    dz = np.asarray(dz, dtype=np.float64)
    med = np.median(dz, axis=axis, keepdims=True)
    return MAD_SCALE * np.median(np.abs(dz - med), axis=axis)


def eta(dz, threshold=OUTLIER_THRESHOLD, axis=None):
    """Outlier rate in percent: 100 × fraction of galaxies with |Δz| > ``threshold``."""
    dz = np.asarray(dz, dtype=np.float64)
    return 100.0 * np.mean(np.abs(dz) > threshold, axis=axis)


def point_metrics(z_phot, z_spec):
    """Bias, σ_MAD and η (percent) of one sample, as a dict with the count ``n``."""
    dz = delta_z(z_phot, z_spec)
    if dz.size == 0:
        raise ValueError("no galaxies: cannot compute bias, sigma_mad, eta of an empty sample")
    return {"n": int(dz.size), "bias": float(bias(dz)), "sigma_mad": float(sigma_mad(dz)), "eta": float(eta(dz))}


def bootstrap(z_phot, z_spec, n_resamples=200, seed=0, chunk_elements=20_000_000):
    """Bootstrap standard errors of bias, σ_MAD and η.

    Galaxies are drawn with replacement ``n_resamples`` times; the returned
    values are the standard deviations of each metric over the resamples.

    Parameters
    ----------
    z_phot, z_spec : array_like
    n_resamples : int
        Number of bootstrap samples (0 returns NaNs).
    seed : int
        Seed of the random generator (results are reproducible).
    chunk_elements : int
        Resamples are processed in blocks of about this many indices.

    Returns
    -------
    dict with keys ``bias_err``, ``sigma_mad_err``, ``eta_err``.
    """
    dz = delta_z(z_phot, z_spec)
    n = dz.size
    if n_resamples <= 0 or n == 0:
        return {"bias_err": float("nan"), "sigma_mad_err": float("nan"), "eta_err": float("nan")}
    rng = np.random.default_rng(seed)
    per_block = max(1, chunk_elements // n)
    out = {"bias": [], "sigma_mad": [], "eta": []}
    done = 0
    while done < n_resamples:
        m = min(per_block, n_resamples - done)
        sample = dz[rng.integers(0, n, size=(m, n))]
        out["bias"].append(bias(sample, axis=1))
        out["sigma_mad"].append(sigma_mad(sample, axis=1))
        out["eta"].append(eta(sample, axis=1))
        done += m
    ddof = 1 if n_resamples > 1 else 0
    return {f"{k}_err": float(np.std(np.concatenate(v), ddof=ddof)) for k, v in out.items()}


def bias_slope(x, dz, threshold=OUTLIER_THRESHOLD, n_resamples=200, seed=0):
    """Least-squares slope of Δz against a quantity ``x`` (e.g. E(B-V)), and its bootstrap error.

    The slope of the bias with ``x`` (Fig. 11 of the paper as one number).
    Catastrophic outliers (|Δz| > ``threshold``) are left out of the fit, as
    they would dominate a least-squares line; ``threshold=None`` keeps all.

    Parameters
    ----------
    x, dz : array_like
        The quantity and the residuals Δz (same shape).
    threshold : float or None
    n_resamples : int
        Bootstrap resamples of the kept galaxies (0: NaN error).
    seed : int

    Returns
    -------
    (slope, slope_err, n) with ``n`` the galaxies in the fit. The slope is NaN
    with fewer than 3 galaxies or no spread in ``x``.
    """
    x = np.asarray(x, dtype=np.float64)
    dz = np.asarray(dz, dtype=np.float64)
    if x.shape != dz.shape:
        raise ValueError(f"x {x.shape} and dz {dz.shape} differ in shape")
    keep = np.isfinite(x) & np.isfinite(dz)
    if threshold is not None:
        keep &= np.abs(dz) <= threshold
    x, dz = x[keep], dz[keep]
    n = int(x.size)

    def slope(xs, ys):  # rows of resamples (or one row)
        xc = xs - xs.mean(axis=-1, keepdims=True)
        sxx = np.sum(xc * xc, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(sxx > 0, np.sum(xc * (ys - ys.mean(axis=-1, keepdims=True)), axis=-1) / sxx, np.nan)

    if n < 3:
        return float("nan"), float("nan"), n
    b = float(slope(x, dz))
    if n_resamples <= 0 or not np.isfinite(b):
        return b, float("nan"), n
    rng = np.random.default_rng(seed)
    boots = []
    per_block = max(1, 20_000_000 // n)
    for start in range(0, n_resamples, per_block):
        idx = rng.integers(0, n, size=(min(per_block, n_resamples - start), n))
        boots.append(slope(x[idx], dz[idx]))
    return b, float(np.nanstd(np.concatenate(boots), ddof=1 if n_resamples > 1 else 0)), n


def partial_slope(x, dz, controls, threshold=OUTLIER_THRESHOLD, n_resamples=200, seed=0):
    """Slope of Δz against ``x`` at fixed ``controls`` (multiple least squares), and its bootstrap error.

    Δz is fitted as ``a + b x + Σ c_k controls_k``; ``b`` is the part of
    :func:`bias_slope` that the controls do not explain (e.g. the E(B-V) term
    at fixed redshift and fixed observed magnitude). Outliers as in
    :func:`bias_slope`.

    Parameters
    ----------
    x, dz : array_like, shape (n,)
    controls : array_like, shape (n, k)
        The covariates held fixed (powers of z_spec for a curve in z, a magnitude...).
    threshold, n_resamples, seed : as :func:`bias_slope`.

    Returns
    -------
    (slope, slope_err, n); NaN slope with fewer galaxies than parameters + 1 or
    a degenerate design (``x`` a combination of the controls).
    """
    x = np.asarray(x, dtype=np.float64)
    dz = np.asarray(dz, dtype=np.float64)
    c = np.asarray(controls, dtype=np.float64)
    c = c[:, None] if c.ndim == 1 else c
    if x.ndim != 1 or x.shape != dz.shape or c.ndim != 2 or c.shape[0] != x.size:
        raise ValueError(f"x {x.shape}, dz {dz.shape} and controls {c.shape} differ in length")
    keep = np.isfinite(x) & np.isfinite(dz) & np.isfinite(c).all(axis=1)
    if threshold is not None:
        keep &= np.abs(dz) <= threshold
    x, dz, c = x[keep], dz[keep], c[keep]
    n = int(x.size)
    if c.shape[1]:  # standardised controls: a better-conditioned design, the same fit
        sd = c.std(axis=0)
        c = (c - c.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    design = np.column_stack([np.ones(n), x, c])

    def fit(rows):
        return float(np.linalg.lstsq(design[rows], dz[rows], rcond=None)[0][1])

    if n <= design.shape[1] or np.linalg.matrix_rank(design) < design.shape[1]:
        return float("nan"), float("nan"), n
    b = fit(np.arange(n))
    if n_resamples <= 0 or not np.isfinite(b):
        return b, float("nan"), n
    rng = np.random.default_rng(seed)
    boots = np.array([fit(rng.integers(0, n, n)) for _ in range(n_resamples)])
    return b, float(np.nanstd(boots, ddof=1 if n_resamples > 1 else 0)), n


def slope_at_fixed_z(x, dz, z_spec, controls=None, **kwargs):
    """:func:`partial_slope` of Δz against ``x`` at fixed ``z_spec`` (a cubic in it) and fixed ``controls``.

    ``controls``: array_like of shape (n,) or (n, k), or None; ``kwargs`` as
    :func:`partial_slope`. The bias curves with redshift (Fig. 8), so a
    slope against a quantity that correlates with z must hold z fixed.
    """
    z = np.asarray(z_spec, dtype=np.float64)
    sd = np.nanstd(z)
    zc = (z - np.nanmean(z)) / (sd if sd > 0 else 1.0)  # centred first: z, z^2, z^3 less collinear
    cols = [zc, zc ** 2, zc ** 3]
    if controls is not None:
        cols.append(np.asarray(controls, dtype=np.float64).reshape(z.size, -1))
    return partial_slope(x, dz, np.column_stack(cols), **kwargs)


# --------------------------------------------------------------------------
# PDFs on the bin grid
# --------------------------------------------------------------------------
def _check(pdf, edges):
    pdf = np.asarray(pdf)
    edges = np.asarray(edges, dtype=np.float64)
    if pdf.ndim != 2:
        raise ValueError(f"pdf must be 2-D (galaxies, bins); got shape {pdf.shape}")
    if edges.ndim != 1 or edges.size != pdf.shape[1] + 1:
        raise ValueError(f"edges must have n_bins + 1 = {pdf.shape[1] + 1} values; got {edges.shape}")
    if np.any(np.diff(edges) <= 0):
        raise ValueError("edges must increase strictly")
    return pdf, edges


def normalise(pdf):
    """Rows scaled to sum 1 (float64); rows summing to zero or less raise ``ValueError``."""
    pdf = np.asarray(pdf, dtype=np.float64)
    s = pdf.sum(axis=-1, keepdims=True)
    if np.any(~(s > 0)):
        bad = np.flatnonzero(~(s.ravel() > 0))
        raise ValueError(f"PDF rows {bad[:5].tolist()} have no positive probability")
    return pdf / s


def cdf_at_edges(pdf):
    """CDF at the bin edges, shape (N, n + 1), starting at 0 and ending at 1."""
    p = normalise(pdf)
    c = np.zeros((p.shape[0], p.shape[1] + 1))
    np.cumsum(p, axis=1, out=c[:, 1:])
    c[:, -1] = 1.0
    return c


def z_phot(pdf, midpoints):
    """Point estimate Σ_k z_k p_k (paper's Eq. 2) with ``z_k`` the bin midpoints."""
    pdf = np.asarray(pdf)
    out = np.empty(pdf.shape[0])
    mid = np.asarray(midpoints, dtype=np.float64)
    for s in range(0, pdf.shape[0], CHUNK):
        out[s:s + CHUNK] = normalise(pdf[s:s + CHUNK]) @ mid
    return out


def _locate(z, edges):
    """Bin index k (0..n-1) and fractional position t in [0, 1] of each z (clipped to the grid)."""
    z = np.clip(np.asarray(z, dtype=np.float64), edges[0], edges[-1])
    k = np.clip(np.searchsorted(edges, z, side="right") - 1, 0, edges.size - 2)
    t = (z - edges[k]) / (edges[k + 1] - edges[k])
    return k, t


def _check_zspec(z_spec, pdf):
    """``z_spec`` as float64, checked to hold one value per PDF row."""
    z_spec = np.asarray(z_spec, dtype=np.float64)
    if z_spec.shape != (pdf.shape[0],):
        raise ValueError(f"z_spec must have shape ({pdf.shape[0]},); got {z_spec.shape}")
    return z_spec


def pit(pdf, z_spec, edges):
    """Probability integral transform CDF_i(z_spec,i) (0 below the grid, 1 above it).

    Parameters
    ----------
    pdf : array_like, shape (N, n)
    z_spec : array_like, shape (N,)
    edges : array_like, shape (n + 1,)

    Returns
    -------
    ndarray, shape (N,)
    """
    pdf, edges = _check(pdf, edges)
    z_spec = _check_zspec(z_spec, pdf)
    out = np.empty(pdf.shape[0])
    k_all, t_all = _locate(z_spec, edges)
    for s in range(0, pdf.shape[0], CHUNK):
        c = cdf_at_edges(pdf[s:s + CHUNK])
        k, t = k_all[s:s + CHUNK], t_all[s:s + CHUNK]
        r = np.arange(c.shape[0])
        out[s:s + CHUNK] = c[r, k] + t * (c[r, k + 1] - c[r, k])
    return out


def crps(pdf, z_spec, edges):
    """Continuous ranked probability score of each galaxy, ∫ (CDF(z) − H(z − z_spec))² dz.

    The CDF is linear inside each bin, so the integral is exact bin by bin:
    ``h (a² + ab + b²) / 3`` for a segment going from a to b over width h, with
    ``a, b = F`` below z_spec and ``a, b = 1 − F`` above it; the bin that holds
    z_spec is split there. The integral runs over the grid [e_0, e_n]; a
    z_spec outside it is clipped to the grid (the PDF has no mass outside).

    Parameters
    ----------
    pdf : array_like, shape (N, n)
    z_spec : array_like, shape (N,)
    edges : array_like, shape (n + 1,)

    Returns
    -------
    ndarray, shape (N,), in units of redshift.
    """
    pdf, edges = _check(pdf, edges)
    z_spec = _check_zspec(z_spec, pdf)
    h = np.diff(edges)
    out = np.empty(pdf.shape[0])
    k_all, t_all = _locate(z_spec, edges)
    for s in range(0, pdf.shape[0], CHUNK):
        c = cdf_at_edges(pdf[s:s + CHUNK])
        k, t = k_all[s:s + CHUNK], t_all[s:s + CHUNK]
        r = np.arange(c.shape[0])
        a, b = c[:, :-1], c[:, 1:]
        # below z_spec: h (a² + ab + b²)/3; above: with 1 − a, 1 − b that is
        # h (a² + ab + b² − 3(a + b) + 3)/3. Prefix sums give both per row.
        sq = np.cumsum(h * (a * (a + b) + b * b), axis=1)
        lin = np.cumsum(h * (a + b), axis=1)
        hc = np.cumsum(h)
        below_sum = np.where(k > 0, sq[r, k - 1], 0.0)
        above_sum = (sq[:, -1] - sq[r, k]) - 3.0 * (lin[:, -1] - lin[r, k]) + 3.0 * (hc[-1] - hc[k])
        total = (below_sum + above_sum) / 3.0
        # the bin holding z_spec, split at z_spec
        ck, ck1, hk = c[r, k], c[r, k + 1], h[k]
        fs = ck + t * (ck1 - ck)
        left = t * hk * (ck * ck + ck * fs + fs * fs) / 3.0
        g0, g1 = 1.0 - fs, 1.0 - ck1
        right = (1.0 - t) * hk * (g0 * g0 + g0 * g1 + g1 * g1) / 3.0
        out[s:s + CHUNK] = total + left + right
    return out + np.abs(z_spec - np.clip(z_spec, edges[0], edges[-1]))


def quantile(pdf, q, edges):
    """Redshift at which the piecewise-linear CDF reaches ``q``, per galaxy.

    ``q`` is a level in [0, 1] (result shape (N,)) or a sequence of levels
    (result shape (len(q), N)); the CDF is built once for all levels.
    """
    pdf, edges = _check(pdf, edges)
    levels = np.atleast_1d(np.asarray(q, dtype=np.float64))
    if levels.ndim != 1 or np.any((levels < 0) | (levels > 1)):
        raise ValueError(f"quantile levels {q} outside [0, 1]")
    out = np.empty((levels.size, pdf.shape[0]))
    for s in range(0, pdf.shape[0], CHUNK):
        c = cdf_at_edges(pdf[s:s + CHUNK])
        r = np.arange(c.shape[0])
        for i, lev in enumerate(levels):
            # first edge index j >= 1 with c[j] >= lev (c[0] = 0, c[-1] = 1)
            j = np.clip((c[:, 1:] < lev).sum(axis=1) + 1, 1, edges.size - 1)
            lo, hi = c[r, j - 1], c[r, j]
            step = hi - lo
            frac = np.divide(lev - lo, step, out=np.zeros_like(step), where=step > 0)
            out[i, s:s + CHUNK] = edges[j - 1] + np.clip(frac, 0.0, 1.0) * (edges[j] - edges[j - 1])
    return out[0] if np.ndim(q) == 0 else out


def width(pdf, edges, level=0.68):
    """Width of the central interval keeping ``level`` of the probability.

    (1 − level)/2 of the probability is cut from each wing; for a Gaussian
    and level 0.68 the width is ≈ 2σ (exactly 2 × 0.994σ).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level {level} outside (0, 1)")
    lo, hi = quantile(pdf, [0.5 * (1.0 - level), 0.5 * (1.0 + level)], edges)
    return hi - lo


def pit_histogram(pit_values, n_bins=20):
    """Normalised PIT histogram (density; 1 everywhere for calibrated PDFs) and its Poisson error.

    Returns
    -------
    density, error, bin_edges : ndarrays of shapes (n_bins,), (n_bins,), (n_bins + 1,)
    """
    pit_values = np.asarray(pit_values, dtype=np.float64)
    counts, e = np.histogram(np.clip(pit_values, 0.0, 1.0), bins=n_bins, range=(0.0, 1.0))
    expected = pit_values.size / n_bins
    return counts / expected, np.sqrt(counts) / expected, e
