"""A smooth mock Galactic reddening map and the SDSS extinction coefficients.

E(B-V) rises towards low Galactic latitude like a plane-parallel dust slab
(``ebv_pole / sin|b|``) and carries multiplicative fluctuations: a sum of
a few random plane waves on the sphere, fixed by the seed, so that the map is
one smooth function of position shared by every chunk of the mock.

The catalogue does not know this map exactly: :func:`sfd_estimate` gives the
E(B-V) a survey would tabulate (SDSS's ``extinction_{b}`` come from Schlegel,
Finkbeiner & Davis 1998, "SFD"), the truth times a log-normal factor whose
width is SFD's own estimate of its uncertainty (16%, their Sect. 6.1).
The true value stays in the truth table only.
"""

from __future__ import annotations

import numpy as np

__all__ = ["EXTINCTION_COEFF", "ebv_map", "sfd_estimate"]

# A_b / E(B-V) for u, g, r, i, z (SDSS, Schlegel et al. 1998 with the SDSS filters).
EXTINCTION_COEFF = np.array([5.155, 3.793, 2.751, 2.086, 1.479])


def ebv_map(ra, dec, seed, ebv_pole=0.018, fluct=0.35, n_waves=12, b_min=3.0):
    """Mock E(B-V) at ``(ra, dec)`` (deg).

    Parameters
    ----------
    ra, dec : array_like
        Equatorial coordinates in degrees.
    seed : int
        Fixes the fluctuation pattern.
    ebv_pole : float
        Reddening at the Galactic poles.
    fluct : float
        Amplitude of the log-normal fluctuations.
    n_waves : int
        Number of random plane waves in the fluctuation field.
    b_min : float
        Latitude (deg) below which ``1/sin|b|`` is clamped.
    """
    from astropy.coordinates import SkyCoord
    import astropy.units as u

    c = SkyCoord(ra=np.atleast_1d(ra) * u.deg, dec=np.atleast_1d(dec) * u.deg, frame="icrs").galactic
    b = np.abs(c.b.deg)
    base = ebv_pole / np.sin(np.radians(np.maximum(b, b_min)))
    # unit vectors in equatorial coordinates
    rr, dd = np.radians(np.atleast_1d(ra)), np.radians(np.atleast_1d(dec))
    xyz = np.stack([np.cos(dd) * np.cos(rr), np.cos(dd) * np.sin(rr), np.sin(dd)], axis=-1)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7919]))
    k = rng.normal(size=(n_waves, 3))
    k /= np.linalg.norm(k, axis=1, keepdims=True)
    freq = rng.uniform(4.0, 40.0, n_waves)  # waves per radian: scales ~1.5 to 15 deg
    phase = rng.uniform(0, 2 * np.pi, n_waves)
    field = np.sin((xyz @ k.T) * freq + phase).sum(axis=-1) / np.sqrt(n_waves / 2)
    return base * np.exp(fluct * field - fluct**2 / 2)


def sfd_estimate(ebv_true, rng, scatter):
    """The catalogue's E(B-V): ``ebv_true`` times an independent log-normal factor per object.

    The factor is ``exp(scatter * N(0, 1) - scatter**2 / 2)``: mean 1 (no bias on
    average), fractional rms ``~scatter`` (config key ``mock.ebv_sfd_scatter``; SFD98
    quote 16%). ``scatter`` 0 returns the truth.
    """
    ebv_true = np.asarray(ebv_true, dtype=np.float64)
    scatter = float(scatter)
    if not np.isfinite(scatter) or scatter < 0:
        raise ValueError(f"mock.ebv_sfd_scatter must be a finite number >= 0, got {scatter!r}")
    if scatter == 0:
        return ebv_true.copy()
    return ebv_true * np.exp(scatter * rng.standard_normal(ebv_true.shape) - scatter**2 / 2)
