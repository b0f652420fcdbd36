"""Statistics of binned redshift PDFs (numpy only), used by training and ensembles.

A PDF is a vector ``p_k`` over the bins with edges ``e_0 < ... < e_n``.
Probability is uniform inside a bin, so the CDF is piecewise linear through
``(e_k, sum_{j<k} p_j)`` -- the same convention as ``photoz.metrics``.
Functions take ``pdf`` of shape ``(N, n)`` and work in row chunks.
"""

from __future__ import annotations

import numpy as np

__all__ = ["z_mean", "cdf_edges", "pit", "crps", "quantile", "width68", "sigma_mad", "pit_histogram"]

CHUNK = 16384


def _norm(pdf):
    pdf = np.asarray(pdf, dtype=np.float64)
    s = pdf.sum(axis=1, keepdims=True)
    if np.any(s <= 0) or not np.all(np.isfinite(s)):
        raise ValueError("pdfstats: every PDF needs a positive, finite sum")
    return pdf / s


def z_mean(pdf, mid):
    """Point estimate ``sum_k z_k p_k`` with ``z_k`` the bin midpoints (paper's Eq. 2)."""
    return _norm(pdf) @ np.asarray(mid, dtype=np.float64)


def cdf_edges(pdf):
    """CDF at the edges, shape ``(N, n + 1)``, starting at 0 and ending at 1."""
    p = _norm(pdf)
    return np.concatenate([np.zeros((p.shape[0], 1)), np.cumsum(p, axis=1)], axis=1)


def pit(pdf, z, edges):
    """Probability integral transform ``CDF(z_spec)`` of each galaxy."""
    edges = np.asarray(edges, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    out = np.empty(len(z))
    for a in range(0, len(z), CHUNK):
        c = cdf_edges(pdf[a:a + CHUNK])
        zz = np.clip(z[a:a + CHUNK], edges[0], edges[-1])
        k = np.clip(np.searchsorted(edges, zz, side="right") - 1, 0, len(edges) - 2)
        r = np.arange(len(zz))
        f = (zz - edges[k]) / (edges[k + 1] - edges[k])
        out[a:a + CHUNK] = c[r, k] + f * (c[r, k + 1] - c[r, k])
    return out


def crps(pdf, z, edges):
    """Continuous ranked probability score ``int (CDF(z') - H(z' - z))^2 dz'``.

    Integrated exactly on the piecewise-linear CDF (Simpson's rule is exact for
    the quadratic integrand in each piece); a ``z`` outside the grid adds the
    gap between it and the grid, where the integrand is 1.
    """
    edges = np.asarray(edges, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    out = np.empty(len(z))
    for a in range(0, len(z), CHUNK):
        c = cdf_edges(pdf[a:a + CHUNK])
        zz = z[a:a + CHUNK, None]
        lo, hi = edges[None, :-1], edges[None, 1:]
        c0, c1 = c[:, :-1], c[:, 1:]

        def piece(u0, u1, h):
            # integral of (F(u) - h)^2 over [u0, u1] inside each bin; F linear in the bin
            def F(u):
                return c0 + (c1 - c0) * (u - lo) / (hi - lo)
            um = 0.5 * (u0 + u1)
            return (u1 - u0) / 6.0 * ((F(u0) - h) ** 2 + 4 * (F(um) - h) ** 2 + (F(u1) - h) ** 2)

        s = np.clip(zz, lo, hi)  # split point inside each bin
        total = piece(lo, s, 0.0) + piece(s, hi, 1.0)
        out[a:a + CHUNK] = total.sum(axis=1) + np.clip(edges[0] - zz[:, 0], 0, None) + np.clip(zz[:, 0] - edges[-1], 0, None)
    return out


def quantile(pdf, q, edges):
    """Redshift at which each CDF reaches ``q`` (inverse of the piecewise-linear CDF)."""
    edges = np.asarray(edges, dtype=np.float64)
    n = len(edges) - 1
    out = np.empty(len(pdf))
    for a in range(0, len(pdf), CHUNK):
        c = cdf_edges(pdf[a:a + CHUNK])
        # first edge index j with c[j] >= q; the crossing lies in bin j-1
        j = np.clip((c < q).sum(axis=1), 1, n)
        r = np.arange(len(c))
        c0, c1 = c[r, j - 1], c[r, j]
        f = np.where(c1 > c0, (q - c0) / np.where(c1 > c0, c1 - c0, 1.0), 0.0)
        out[a:a + CHUNK] = edges[j - 1] + np.clip(f, 0, 1) * (edges[j] - edges[j - 1])
    return out


def width68(pdf, edges):
    """Width of the central 68% interval (from the 16% to the 84% quantile)."""
    return quantile(pdf, 0.84, edges) - quantile(pdf, 0.16, edges)


def sigma_mad(z_phot, z_spec):
    """1.4826 x median(|dz - median(dz)|) of dz = (z_phot - z_spec)/(1 + z_spec)."""
    dz = (np.asarray(z_phot, dtype=np.float64) - z_spec) / (1.0 + np.asarray(z_spec, dtype=np.float64))
    return float(1.4826 * np.median(np.abs(dz - np.median(dz))))


def pit_histogram(pit_values, n_bins=10):
    """Fractions of galaxies in ``n_bins`` equal PIT bins over [0, 1]."""
    h, _ = np.histogram(np.clip(pit_values, 0, 1), bins=n_bins, range=(0.0, 1.0))
    return h / max(len(pit_values), 1)
