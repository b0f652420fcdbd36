"""The mock population: target galaxies, faint galaxies and stars, per cell.

Target galaxies follow the ^{0.1}r luminosity function of Blanton et al.
(2003): phi* = 1.49e-2 h^3 Mpc^-3, M* - 5 log h = -20.44, alpha = -1.05, in a
flat LambdaCDM cosmology (H0 = 70, Om0 = 0.3), flux limited a little beyond
r = 17.8 (``R_GEN``) so that the measured, noisy Petrosian magnitudes scatter
across the cut. Each galaxy is a de Vaucouleurs bulge plus an exponential
disk with different template mixtures (:mod:`photoz.mock.seds`), sizes from
the Shen et al. (2003) size-luminosity relations, turned into angles with the
angular diameter distance, and a disk axis ratio set by a random inclination.

The number density is scaled so that the expected number of galaxies with
true dereddened r <= 17.8 per deg^2 is ``mock.target_density`` (the
luminosity function gives about 90 per deg^2 unscaled, like SDSS).

Everything is a deterministic function of (mock seed, cell), so chunks of
cells can be generated independently and give the same sky.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from . import geometry as geo
from .seds import BANDS, BULGE_MIX, DISK_MIX, MIX_CONCENTRATION, template_grid

__all__ = ["R_LIMIT", "R_GEN", "lf_tables", "natural_target_density", "sample_galaxies",
           "cell_population", "cell_area_deg2"]

H = 0.7
PHI_STAR = 1.49e-2 * H**3  # Mpc^-3 mag^-1
M_STAR = -20.44 + 5 * np.log10(H)
ALPHA = -1.05
M_BRIGHT = -24.5
R_LIMIT = 17.8  # Main Galaxy Sample limit (dereddened Petrosian r)
R_GEN = 18.3  # generation limit on the true r (beyond R_LIMIT for scatter)
Z_MAX = 0.5


@functools.lru_cache(maxsize=1)
def _cosmo():
    from astropy.cosmology import FlatLambdaCDM

    return FlatLambdaCDM(H0=100 * H, Om0=0.3)


def cell_area_deg2():
    """Sky area of one cell (the primary part of a field), deg^2."""
    return geo.FIELD_STEP * geo.CAMCOL_STEP * (geo.PIXSCALE / 3600.0) ** 2


def _schechter_cdf(m_grid):
    x = 10 ** (-0.4 * (m_grid - M_STAR))
    phi = 0.4 * np.log(10) * PHI_STAR * x ** (ALPHA + 1) * np.exp(-x)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (phi[1:] + phi[:-1]) * np.diff(m_grid))])
    return cdf


@functools.lru_cache(maxsize=1)
def lf_tables():
    """Redshift grid, cumulative candidate counts per deg^2 and the M(z) limits."""
    import astropy.units as u

    cosmo = _cosmo()
    grid = template_grid()
    z = np.linspace(0.002, Z_MAX, 500)
    dm = cosmo.distmod(z).value
    # brightest possible r-band K-correction over the bulge and disk mixes
    kr = -2.5 * np.log10(np.maximum(grid.fluxes(z, np.tile(BULGE_MIX, (z.size, 1)))[:, 2],
                                    grid.fluxes(z, np.tile(DISK_MIX, (z.size, 1)))[:, 2]))
    m_lim = R_GEN - dm - kr + 0.3
    m_grid = np.linspace(M_BRIGHT, -10.0, 3000)
    cdf = _schechter_cdf(m_grid)
    n_lt = np.interp(m_lim, m_grid, cdf)  # Mpc^-3 brighter than the limit
    dvdz = cosmo.differential_comoving_volume(z).to(u.Mpc**3 / u.deg**2).value
    dn = dvdz * n_lt
    ncum = np.concatenate([[0.0], np.cumsum(0.5 * (dn[1:] + dn[:-1]) * np.diff(z))])
    return {"z": z, "ncum": ncum, "m_lim": m_lim, "m_grid": m_grid, "cdf": cdf, "dm": dm,
            "da_kpc_per_arcsec": cosmo.angular_diameter_distance(z).value * 1e3 * np.pi / 180 / 3600}


def sample_galaxies(rng, n):
    """Draw ``n`` candidate galaxies from the luminosity function (no positions).

    Returns a DataFrame with z, M_r (^{0.1}r absolute magnitude, h = 0.7),
    bulge fraction, template mixtures, true dereddened fluxes per band of
    the bulge and the disk (nanomaggies), sizes and shapes.
    """
    t = lf_tables()
    grid = template_grid()
    z = np.interp(rng.random(n) * t["ncum"][-1], t["ncum"], t["z"])
    mlim = np.interp(z, t["z"], t["m_lim"])
    cmax = np.interp(mlim, t["m_grid"], t["cdf"])
    mabs = np.interp(rng.random(n) * cmax, t["cdf"], t["m_grid"])
    # morphology: early types dominate at the bright end
    p_early = 1.0 / (1.0 + np.exp((mabs + 20.9) / 0.7))
    early = rng.random(n) < p_early
    bt = np.where(early, rng.uniform(0.6, 1.0, n), 0.6 * rng.beta(1.2, 5.0, n))
    wb = rng.dirichlet(BULGE_MIX * MIX_CONCENTRATION + 0.05, n)
    wd = rng.dirichlet(DISK_MIX * MIX_CONCENTRATION + 0.05, n)
    dm = np.interp(z, t["z"], t["dm"])
    f0 = 10 ** (-0.4 * (mabs + dm - 22.5))  # nanomaggies of ^{0.1}r light at the distance
    fb = (f0 * bt)[:, None] * grid.fluxes(z, wb)
    fd = (f0 * (1 - bt))[:, None] * grid.fluxes(z, wd)
    # Shen et al. (2003) r-band half-light radii (kpc, h = 0.7)
    log_r_late = -0.4 * 0.21 * mabs + (0.53 - 0.21) * np.log10(1 + 10 ** (-0.4 * (mabs + 20.52))) - 1.31
    log_r_early = -0.4 * 0.65 * mabs - 5.06
    log_r = np.where(early, log_r_early + rng.normal(0, 0.15, n), log_r_late + rng.normal(0, 0.2, n))
    r50 = 10 ** log_r / np.interp(z, t["z"], t["da_kpc_per_arcsec"])  # arcsec
    hlr_disk = np.clip(r50 * np.where(early, 1.4, 1.05), 0.25, 25.0)
    hlr_bulge = np.clip(r50 * np.where(early, 1.0, 0.45), 0.2, 20.0)
    cosi = rng.random(n)
    q_disk = np.sqrt(cosi**2 + 0.2**2 * (1 - cosi**2))
    q_bulge = rng.uniform(0.6, 1.0, n)
    df = pd.DataFrame({"z": z, "M_r": mabs, "bt": bt, "early": early,
                       "hlr_bulge": hlr_bulge, "hlr_disk": hlr_disk, "q_bulge": q_bulge, "q_disk": q_disk,
                       "pa": rng.uniform(0, 180, n)})
    for j, b in enumerate(BANDS):
        df[f"flux_bulge_{b}"] = fb[:, j]
        df[f"flux_disk_{b}"] = fd[:, j]
    return df


def _total_r(df):
    return 22.5 - 2.5 * np.log10(df["flux_bulge_r"] + df["flux_disk_r"])


@functools.lru_cache(maxsize=1)
def natural_target_density():
    """Galaxies per deg^2 with true r <= 17.8 from the unscaled luminosity function.

    Monte Carlo over 40,000 candidates with a fixed seed (deterministic).
    """
    rng = np.random.default_rng(20031)
    cand = sample_galaxies(rng, 40000)
    return float(lf_tables()["ncum"][-1] * np.mean(_total_r(cand) <= R_LIMIT))


def _stars(rng, n, r_min=14.0, r_max=22.0):
    u = rng.random(n)
    a = 0.25 * np.log(10)
    r = np.log(np.exp(a * r_min) + u * (np.exp(a * r_max) - np.exp(a * r_min))) / a
    gr = rng.uniform(0.2, 1.5, n)
    ug = np.clip(0.85 + 1.1 * gr + rng.normal(0, 0.1, n), 0.6, 2.9)
    ri = np.clip(0.45 * gr - 0.08 + 0.5 * np.clip(gr - 1.2, 0, None) + rng.normal(0, 0.04, n), -0.2, 1.5)
    iz = 0.5 * ri + rng.normal(0, 0.03, n)
    mags = np.stack([r + gr + ug, r + gr, r, r - ri, r - ri - iz], axis=1)
    return 10 ** (-0.4 * (mags - 22.5))


def _faint(rng, n, r_min, r_max):
    grid = template_grid()
    a = 0.45 * np.log(10)
    u = rng.random(n)
    r = np.log(np.exp(a * r_min) + u * (np.exp(a * r_max) - np.exp(a * r_min))) / a
    z = 0.08 + 0.55 * rng.beta(2.0, 3.0, n)
    bt = rng.random(n) ** 2
    fb = grid.fluxes(z, rng.dirichlet(BULGE_MIX * MIX_CONCENTRATION + 0.05, n)) * bt[:, None]
    fd = grid.fluxes(z, rng.dirichlet(DISK_MIX * MIX_CONCENTRATION + 0.05, n)) * (1 - bt)[:, None]
    scale = 10 ** (-0.4 * (r - 22.5)) / (fb[:, 2] + fd[:, 2])
    return z, bt, fb * scale[:, None], fd * scale[:, None]


def cell_population(mock, cell):
    """Every object generated in one cell: targets, faint galaxies and stars.

    Columns: kind ('galaxy' | 'faint' | 'star'), ra, dec, x, y (0-based
    pixel position in the cell's primary frame), z, M_r, bt, hlr_bulge,
    hlr_disk, q_bulge, q_disk, pa, flux_bulge_{b}, flux_disk_{b}
    (true, dereddened nanomaggies; stars carry their flux as ``flux_disk``
    with zero sizes), cell.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(mock["seed"]), 301, cell.run, cell.camcol, cell.field]))
    area = cell_area_deg2()
    scale = mock["target_density"] / natural_target_density()
    n_gal = rng.poisson(lf_tables()["ncum"][-1] * scale * area)
    gal = sample_galaxies(rng, n_gal)
    gal = gal[_total_r(gal) <= R_GEN].reset_index(drop=True)
    gal["kind"] = "galaxy"
    nf = rng.poisson(mock["faint_density"] * area)
    fz, fbt, ffb, ffd = _faint(rng, nf, R_LIMIT, mock["faint_r_max"])
    faint = pd.DataFrame({"kind": "faint", "z": fz, "M_r": np.nan, "bt": fbt, "early": fbt > 0.5,
                          "hlr_bulge": 10 ** rng.uniform(-0.6, -0.1, nf), "hlr_disk": 10 ** rng.uniform(-0.4, 0.2, nf),
                          "q_bulge": rng.uniform(0.6, 1, nf), "q_disk": rng.uniform(0.25, 1, nf),
                          "pa": rng.uniform(0, 180, nf)})
    for j, b in enumerate(BANDS):
        faint[f"flux_bulge_{b}"] = ffb[:, j]
        faint[f"flux_disk_{b}"] = ffd[:, j]
    ns = rng.poisson(mock["star_density"] * area)
    sf = _stars(rng, ns)
    stars = pd.DataFrame({"kind": "star", "z": 0.0, "M_r": np.nan, "bt": 0.0, "early": False,
                          "hlr_bulge": 0.0, "hlr_disk": 0.0, "q_bulge": 1.0, "q_disk": 1.0, "pa": 0.0},
                         index=pd.RangeIndex(ns))
    for j, b in enumerate(BANDS):
        stars[f"flux_bulge_{b}"] = 0.0
        stars[f"flux_disk_{b}"] = sf[:, j]
    df = pd.concat([gal, faint, stars], ignore_index=True)
    n = len(df)
    half_c, half_r = geo.CAMCOL_STEP / 2.0, geo.FIELD_STEP / 2.0
    cx, cy = geo.CRPIX[0] - 1, geo.CRPIX[1] - 1
    df["x"] = cx + rng.uniform(-half_c, half_c, n)
    df["y"] = cy + rng.uniform(-half_r, half_r, n)
    prim = geo.FrameSpec(cell.entry, cell.run, 0, cell.run, cell.camcol, cell.field, cell.ra_c, cell.dec_c,
                         geo._epoch_shift(mock["seed"], mock["runs"][cell.entry], 0)[2], cell.stripe82)
    ra, dec = geo.frame_wcs(prim).all_pix2world(df["x"].to_numpy(), df["y"].to_numpy(), 0)
    df["ra"], df["dec"] = ra % 360.0, dec
    df["cell"] = cell.index
    df["obj"] = np.arange(1, n + 1)
    return df
