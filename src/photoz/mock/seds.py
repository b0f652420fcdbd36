"""Spectral energy distributions from the kcorrect template basis.

The five templates of ``kcorrect-default-v4.fits`` (Blanton & Roweis 2007),
shipped inside the PyPI ``kcorrect`` package, are mixed with type-dependent
weights: a bulge SED dominated by the old templates (0, 3) and a disk SED
dominated by the star-forming ones (1, 2, 4). Apparent magnitudes come from
redshifting the rest-frame SED and integrating it through the SDSS 2010
response curves of ``speclite`` (``sdss2010-u`` ... ``sdss2010-z``).

For speed, the AB magnitudes of each template are tabulated once on a
redshift grid, per unit rest-frame luminosity in the ^{0.1}r band (the band
of the Blanton et al. 2003 luminosity function); a mixture's fluxes are then
linear combinations of the template fluxes.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

__all__ = ["BANDS", "load_templates", "TemplateGrid", "template_grid", "BULGE_MIX", "DISK_MIX"]

BANDS = ("u", "g", "r", "i", "z")

# Mean r-band light fractions of the five templates in bulges and disks, and
# the Dirichlet concentration that scatters them galaxy to galaxy.
BULGE_MIX = np.array([0.30, 0.0, 0.05, 0.65, 0.0])
DISK_MIX = np.array([0.05, 0.08, 0.42, 0.15, 0.30])
MIX_CONCENTRATION = 40.0

Z_GRID = np.linspace(0.0, 1.0, 101)


def _template_path():
    import kcorrect

    path = Path(kcorrect.__file__).parent / "data" / "templates" / "kcorrect-default-v4.fits"
    if not path.exists():
        raise FileNotFoundError(f"kcorrect template file not found: {path} (is the PyPI kcorrect package installed?)")
    return path


@functools.lru_cache(maxsize=1)
def load_templates():
    """Rest-frame wavelengths (Angstrom) and the 5 template SEDs (f_lambda, arbitrary units)."""
    from astropy.io import fits

    with fits.open(_template_path()) as hdul:
        row = hdul["FLUX"].data[0]
        wave = np.asarray(row["WAVE"], dtype=np.float64).ravel()
        flux = np.asarray(row["FLUX"], dtype=np.float64).reshape(5, wave.size)
    keep = (wave > 900.0) & (wave < 30000.0)
    return wave[keep], flux[:, keep]


class TemplateGrid:
    """Observed-frame fluxes of the templates on a redshift grid.

    ``flux[k, j, b]``: flux (arbitrary linear units, AB-consistent) of
    template ``k`` at redshift ``Z_GRID[j]`` in band ``b``, for a source whose
    rest-frame ^{0.1}r-band AB flux is 1 at a distance of 10 pc, i.e. the
    K-correction and the band shift are included, not the distance modulus.
    """

    def __init__(self):
        import astropy.units as u
        import speclite.filters as sf

        wave, flux = load_templates()
        filters = sf.load_filters(*[f"sdss2010-{b}" for b in BANDS])
        r01 = sf.load_filter("sdss2010-r").create_shifted(band_shift=0.1)
        unit = u.erg / (u.s * u.cm**2 * u.AA)
        # rest-frame ^{0.1}r AB magnitude of each template (normalisation)
        m01 = np.array([r01.get_ab_magnitude(f * unit, wave * u.AA) for f in flux])
        norm = 10 ** (0.4 * m01)  # multiply a template by this: ^{0.1}r mag = 0
        self.z = Z_GRID
        out = np.empty((5, Z_GRID.size, 5))
        for j, z in enumerate(Z_GRID):
            zz = max(z, 1e-4)
            # observed f_lambda of a source at rest-frame luminosity fixed: the (1+z)
            # stretch of f_lambda; the distance modulus is applied by the caller.
            obs_wave = wave * (1 + zz)
            for k in range(5):
                mags = filters.get_ab_magnitudes(flux[k] * norm[k] / (1 + zz) * unit, obs_wave * u.AA)
                out[k, j] = [10 ** (-0.4 * mags[f"sdss2010-{b}"][0]) for b in BANDS]
        self.flux = out  # linear, AB: flux = 10**(-0.4 m)

    def fluxes(self, z, weights):
        """Observed-frame fluxes (N, 5) of mixtures ``weights`` (N, 5) at redshifts ``z`` (N,).

        ``weights`` are the fractions of rest-frame ^{0.1}r light from each
        template; the result is in units where the rest-frame ^{0.1}r flux
        at 10 pc is 1 (add the distance modulus to get apparent fluxes).
        """
        z = np.atleast_1d(np.asarray(z, dtype=np.float64))
        if np.any(z < 0) or np.any(z > self.z[-1]):
            raise ValueError(f"redshift outside the template grid 0..{self.z[-1]}")
        j = np.clip(np.searchsorted(self.z, z) - 1, 0, self.z.size - 2)
        w = (z - self.z[j]) / (self.z[j + 1] - self.z[j])
        tf = self.flux[:, j, :] * (1 - w)[None, :, None] + self.flux[:, j + 1, :] * w[None, :, None]  # (5,N,5)
        return np.einsum("nk,knb->nb", np.asarray(weights, dtype=np.float64), tf)


@functools.lru_cache(maxsize=1)
def template_grid():
    """The (cached) :class:`TemplateGrid`."""
    return TemplateGrid()
