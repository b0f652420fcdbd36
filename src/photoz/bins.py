"""The redshift classes of the network: ``n`` equal-width bins over [z_min, z_max) (config ``bins``)."""

from __future__ import annotations

import numpy as np

__all__ = ["edges", "midpoints", "centres", "to_class"]


def edges(n, z_min, z_max):
    """Bin edges, shape (n + 1,)."""
    return np.linspace(z_min, z_max, n + 1)


def midpoints(n, z_min, z_max):
    """Bin midpoints z_k, shape (n,): the values of the point estimate sum_k z_k p_k."""
    return centres(edges(n, z_min, z_max))


def centres(bin_edges):
    """Midpoints of the bins with the given edges (shape (n,) from (n + 1,))."""
    e = np.asarray(bin_edges, dtype=np.float64)
    return 0.5 * (e[:-1] + e[1:])


def to_class(z, n, z_min, z_max):
    """Class index of each redshift; values outside the range are clipped to the end bins."""
    k = np.floor((np.asarray(z, dtype=np.float64) - z_min) / (z_max - z_min) * n).astype(np.int64)
    return np.clip(k, 0, n - 1)
