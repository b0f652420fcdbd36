"""The redshift classes of the network: equal-width bins over [z_min, z_max)."""

from __future__ import annotations

import numpy as np

__all__ = ["edges", "midpoints", "centres", "to_class"]


def edges(n=180, z_min=0.0, z_max=0.4):
    """Bin edges, shape (n + 1,)."""
    return np.linspace(z_min, z_max, n + 1)


def midpoints(n=180, z_min=0.0, z_max=0.4):
    """Bin midpoints z_k, shape (n,): the values of the point estimate sum_k z_k p_k."""
    return centres(edges(n, z_min, z_max))


def centres(bin_edges):
    """Midpoints of the bins with the given edges (shape (n,) from (n + 1,))."""
    e = np.asarray(bin_edges, dtype=np.float64)
    return 0.5 * (e[:-1] + e[1:])


def to_class(z, n=180, z_min=0.0, z_max=0.4):
    """Class index of each redshift; values outside the range are clipped to the end bins."""
    k = np.floor((np.asarray(z, dtype=np.float64) - z_min) / (z_max - z_min) * n).astype(np.int64)
    return np.clip(k, 0, n - 1)
