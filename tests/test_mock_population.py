"""The mock population: redshift distribution, colours vs redshift, reddening."""

from __future__ import annotations

import numpy as np
import pytest

from photoz.mock import population as pop
from photoz.mock.reddening import ebv_map
from photoz.mock.seds import BANDS, DISK_MIX, BULGE_MIX, load_templates, template_grid


@pytest.fixture(scope="module")
def sample():
    gal = pop.sample_galaxies(np.random.default_rng(7), 30000)
    r = 22.5 - 2.5 * np.log10(gal["flux_bulge_r"] + gal["flux_disk_r"])
    return gal[r <= pop.R_LIMIT]


def test_median_redshift_of_flux_limited_sample(sample):
    assert len(sample) > 3000
    med = float(np.median(sample["z"]))
    assert 0.08 <= med <= 0.12, med
    # a tail towards z ~ 0.3 but almost nothing beyond 0.4
    assert np.quantile(sample["z"], 0.99) > 0.2
    assert np.mean(sample["z"] > 0.4) < 0.002


def test_natural_density_close_to_sdss():
    # the Blanton et al. (2003) LF with r <= 17.8 gives roughly the SDSS MGS density (~90 / deg^2)
    assert 60 < pop.natural_target_density() < 120


def _direct_mags(z, weights):
    """Magnitudes of a template mixture by direct speclite integration (independent of the grid)."""
    import astropy.units as u
    import speclite.filters as sf

    wave, flux = load_templates()
    r01 = sf.load_filter("sdss2010-r").create_shifted(band_shift=0.1)
    unit = u.erg / (u.s * u.cm**2 * u.AA)
    norm = np.array([10 ** (0.4 * r01.get_ab_magnitude(f * unit, wave * u.AA)) for f in flux])
    sed = (np.asarray(weights)[:, None] * norm[:, None] * flux).sum(0)
    filters = sf.load_filters(*[f"sdss2010-{b}" for b in BANDS])
    m = filters.get_ab_magnitudes(sed * unit, wave * (1 + z) * u.AA)
    return np.array([m[f"sdss2010-{b}"][0] for b in BANDS])


def test_colours_follow_templates_with_redshift(sample):
    grid = template_grid()
    # the grid reproduces a direct integration of the redshifted templates
    for z in (0.03, 0.12, 0.27):
        for mix in (BULGE_MIX, DISK_MIX):
            direct = _direct_mags(z, mix)
            gridm = -2.5 * np.log10(grid.fluxes([z], [mix])[0])
            colours = np.diff(direct) - np.diff(gridm)
            assert np.all(np.abs(colours) < 0.02), (z, colours)
    # red (bulge) templates redden in g-r with redshift as the 4000 A break crosses g
    gr = [np.diff(-2.5 * np.log10(grid.fluxes([z], [BULGE_MIX])[0]))[1] * -1 for z in (0.02, 0.1, 0.2, 0.3)]
    assert np.all(np.diff(gr) > 0.05), gr
    # the population follows: median g-r of bulge-dominated galaxies rises with z like the template
    g = 22.5 - 2.5 * np.log10(sample["flux_bulge_g"] + sample["flux_disk_g"])
    r = 22.5 - 2.5 * np.log10(sample["flux_bulge_r"] + sample["flux_disk_r"])
    early = sample["bt"].to_numpy() > 0.8
    z = sample["z"].to_numpy()
    lo = np.median((g - r)[early & (z > 0.03) & (z < 0.06)])
    hi = np.median((g - r)[early & (z > 0.15) & (z < 0.2)])
    pred_lo = np.median([gr[0], gr[1]])
    assert hi - lo > 0.15
    assert abs(lo - pred_lo) < 0.15
    # and late types stay bluer than early types at fixed redshift
    late = sample["bt"].to_numpy() < 0.2
    sl = (z > 0.05) & (z < 0.12)
    assert np.median((g - r)[late & sl]) < np.median((g - r)[early & sl]) - 0.2


def test_reddening_rises_towards_the_plane():
    # the same RA line: high latitude vs near the Galactic plane (RA 300, Dec 30 is b ~ 0)
    hi = ebv_map(np.full(50, 180.0), np.linspace(20, 40, 50), seed=1)
    lo = ebv_map(np.full(50, 300.0), np.linspace(20, 40, 50), seed=1)
    assert np.median(lo) > 5 * np.median(hi)
    assert np.all(hi > 0)
    # fluctuations: not a pure function of latitude, and seed-dependent
    assert np.std(np.log(hi)) > 0.02
    assert not np.allclose(ebv_map([10.0], [5.0], seed=1), ebv_map([10.0], [5.0], seed=2))
