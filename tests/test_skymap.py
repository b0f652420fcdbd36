"""Sky maps: a small footprint is drawn patch by patch, a wide survey on the whole sky."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from photoz.figures import skymap  # noqa: E402
from photoz.figures.common import MapStyle  # noqa: E402


def _mock_like(rng, n=2000):
    a = rng.random(n) < 0.7
    ra = np.where(a, rng.uniform(150.0, 150.7, n), rng.uniform(20.0, 20.6, n))
    dec = np.where(a, rng.uniform(29.8, 30.2, n), rng.uniform(-0.1, 0.1, n))
    return ra, dec


def test_mock_footprint_is_small_with_two_patches():
    rng = np.random.default_rng(0)
    ra, dec = _mock_like(rng)
    lab = skymap.patches(ra, dec)
    assert len(np.unique(lab)) == 2
    assert len(np.unique(lab[ra > 100])) == 1 and len(np.unique(lab[ra < 100])) == 1
    assert skymap.is_small(ra, dec)
    # a patch across RA = 0 stays one patch
    assert len(np.unique(skymap.patches(np.array([359.9, 0.1, 0.3]), np.zeros(3)))) == 1


def test_wide_survey_is_drawn_on_the_whole_sky():
    rng = np.random.default_rng(1)
    ra, dec = rng.uniform(120, 250, 20000), rng.uniform(0, 60, 20000)
    assert not skymap.is_small(ra, dec)
    import matplotlib.pyplot as plt

    fig = plt.figure()
    axes = skymap.map_panel(fig, fig.add_gridspec(1, 1)[0], ra, dec, dec, MapStyle("x", 16))
    assert len(axes) == 1 and axes[0].name == "mollweide"
    plt.close(fig)


def test_zoomed_panels_draw_visible_cells_and_outlines():
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(2)
    ra, dec = _mock_like(rng)
    t, lon, lat = skymap.cell_table(ra, dec, dec, 512)
    fig = plt.figure()
    axes = skymap.map_panel(fig, fig.add_gridspec(1, 1)[0], ra, dec, dec,
                            MapStyle("x", 512, outline=[int(t["cell"].iloc[0])]))
    assert len(axes) == 2 and all(ax.name == "rectilinear" for ax in axes)
    # each panel spans its patch (a fraction of a degree), RA increasing to the left, with dozens of cells
    for ax in axes:
        x0, x1 = ax.get_xlim()
        assert x0 > x1 and x0 - x1 < 3
        n_cells = len(ax.collections[0].get_paths())
        assert n_cells >= 8
    assert sum(len(ax.collections) for ax in axes) == 3  # one outline collection
    plt.close(fig)
