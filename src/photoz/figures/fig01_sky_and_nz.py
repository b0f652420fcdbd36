"""Fig. 1: sky distribution of the sample coloured by the mean E(B-V) per cell, and its redshift distribution.

A small footprint (the mock) is drawn patch by patch in the cells of the
suspect-zone search (``zone.nside``); a wide one on the whole sky in the
HEALPix tiles (``tiles.nside``), as before (``photoz.figures.skymap``).
"""

from __future__ import annotations

import numpy as np

from photoz.figures import common, skymap

INPUTS = {"catalog": "results/catalog.parquet"}
CONFIG = ("selection", "tiles", "zone")


def make(inputs, cfg, log):
    plt = common.use_style()
    cat = common.read_parquet(inputs["catalog"], ["ra", "dec", "z", "ebv"])
    log.info("%d galaxies", len(cat))
    small = skymap.is_small(cat["ra"], cat["dec"])
    fig = plt.figure(figsize=(7.0, 3.2 if small else 2.9))
    gs = fig.add_gridspec(1, 2, width_ratios=[2.1, 1], wspace=0.3)
    vmax = float(np.nanpercentile(cat["ebv"], 99)) if len(cat) else 0.1
    skymap.map_panel(fig, gs[0], cat["ra"], cat["dec"], cat["ebv"],
                     common.MapStyle(r"mean $E(B-V)$ per HEALPix cell (mag)", cfg["zone"]["nside"], cmap="magma_r",
                                     vmin=0, vmax=vmax, full_sky_nside=cfg["tiles"]["nside"]))
    ax = fig.add_subplot(gs[1])
    sel = cfg["selection"]
    ax.hist(cat["z"], bins=np.linspace(sel["z_min"], sel["z_max"], 81), histtype="stepfilled",
            color=common.COLORS["cnn"], alpha=0.6)
    ax.set_xlabel(r"spectroscopic redshift $z_{\rm spec}$")
    ax.set_ylabel("galaxies per bin")
    ax.set_xlim(sel["z_min"], sel["z_max"])
    ax.text(0.95, 0.95, f"$N$ = {len(cat)}\nmedian $z$ = {np.median(cat['z']):.3f}", transform=ax.transAxes,
            ha="right", va="top", fontsize=7)
    return fig
