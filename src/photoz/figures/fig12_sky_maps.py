"""Fig. 12: sky maps of the mean bias and of the mean PDF width (68%) of the test galaxies per cell."""

from __future__ import annotations

import numpy as np

from photoz.figures import common

NAME = "fig12_sky_maps"
INPUTS = {"ensemble": "results/ensemble/main.parquet", "catalog": "results/shards/catalog.parquet"}


def make(inputs, cfg, log):
    plt = common.use_style()
    df = common.test_sample(inputs["ensemble"], inputs["catalog"], ["ra", "dec"])
    if "width68" not in df.columns:
        raise common.FigureInputError(f"{inputs['ensemble']} misses column width68")
    fig = plt.figure(figsize=(7.0, 2.8))
    gs = fig.add_gridspec(1, 2)
    nside = cfg["tiles"]["nside"]
    mean_bias, _ = common.cell_means(df["ra"], df["dec"], df["dz"], nside)
    lim = max(float(np.nanpercentile(np.abs(mean_bias), 98)), 1e-4)
    common.sky_panel(fig, gs[0], df["ra"], df["dec"], df["dz"], r"mean bias $\langle\Delta z\rangle$ per cell",
                     cmap="RdBu_r", vmin=-lim, vmax=lim, nside=nside)
    w = df["width68"].to_numpy()
    common.sky_panel(fig, gs[1], df["ra"], df["dec"], w, "mean 68% PDF width per cell", cmap="viridis",
                     vmin=float(np.nanpercentile(w, 2)), vmax=float(np.nanpercentile(w, 98)), nside=nside)
    return fig


def main(argv=None):
    return common.run(__import__(__name__, fromlist=["x"]), argv)
