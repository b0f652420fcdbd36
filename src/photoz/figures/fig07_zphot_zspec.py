"""Fig. 7: photometric against spectroscopic redshift as a density, for the CNN and for B16."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import LogNorm

from photoz.figures import common

INPUTS = {"ensemble": "results/ensemble/{main}.parquet", "catalog": "results/shards/catalog.parquet"}
CONFIG = ("bins", "mode")


def make(inputs, cfg, log):
    plt = common.use_style()
    df = common.test_sample(inputs["ensemble"], inputs["catalog"], ["zphot"])
    zmax = cfg["bins"]["z_max"]
    edges = np.linspace(0, zmax, 121)
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 3.3), sharey=True)
    for ax, col, dzcol, name in ((axes[0], "z_phot", "dz", "CNN (this run)"), (axes[1], "zphot", "dz_b16",
                                                                                  common.b16_name(cfg) + " (Photoz table)")):
        h, _, _ = np.histogram2d(df["z_spec"], df[col], bins=[edges, edges])
        im = ax.pcolormesh(edges, edges, np.where(h > 0, h, np.nan).T, norm=LogNorm(vmin=1), cmap="viridis", rasterized=True)
        ax.plot([0, zmax], [0, zmax], color="0.3", lw=0.6, ls="--")
        for sgn in (-1, 1):
            ax.plot([0, zmax], [sgn * 0.05, sgn * 0.05 + zmax * (1 + sgn * 0.05)], color="0.3", lw=0.6, ls=":")
        s = common.scores(df[dzcol])
        ax.text(0.04, 0.96, f"{name}\n$N$ = {s['n']}\nbias = {s['bias']:.5f}\n"
                rf"$\sigma_{{\rm MAD}}$ = {s['sigma_mad']:.5f}" + f"\n$\\eta$ = {s['eta']:.2f}%",
                transform=ax.transAxes, va="top", fontsize=7)
        ax.set_xlim(0, zmax)
        ax.set_ylim(0, zmax)
        ax.set_aspect("equal")
        ax.set_xlabel(r"$z_{\rm spec}$")
    axes[0].set_ylabel(r"$z_{\rm phot}$")
    fig.colorbar(im, ax=axes, shrink=0.85, label="galaxies per cell")
    return fig
