"""Fig. 9: PDFs of randomly chosen test galaxies beside their RGB images, spectroscopic redshift marked."""

from __future__ import annotations

import numpy as np

from photoz import bins
from photoz.figures import common

INPUTS = {"ensemble": "results/ensemble/{main}.parquet", "catalog": "results/shards/catalog.parquet",
          "manifest": "results/shards/manifest.json"}
CONFIG = ("bins", "seed")
N_ROWS, N_COLS = 4, 3


def make(inputs, cfg, log):
    plt = common.use_style()
    df = common.test_sample(inputs["ensemble"], inputs["catalog"], ["shard", "row"])
    rng = np.random.default_rng(cfg["seed"] + 9)
    n = min(N_ROWS * N_COLS, len(df))
    pick = np.sort(rng.choice(len(df), n, replace=False))
    sub = df.iloc[pick]
    cubes = common.load_cutouts(df[["specObjID", "shard", "row"]], inputs["manifest"], sub["specObjID"].to_numpy())
    b = cfg["bins"]
    mid = bins.midpoints(b["n"], b["z_min"], b["z_max"])
    width = mid[1] - mid[0]
    fig = plt.figure(figsize=(7.0, 1.45 * N_ROWS + 0.2))
    gs = fig.add_gridspec(N_ROWS, 2 * N_COLS, width_ratios=[1, 2.2] * N_COLS)
    for k, (row, cube) in enumerate(zip(sub.itertuples(index=False), cubes)):
        r, c = divmod(k, N_COLS)
        axi = fig.add_subplot(gs[r, 2 * c])
        axi.imshow(common.lupton_rgb(cube), origin="lower")
        axi.set_xticks([])
        axi.set_yticks([])
        axi.minorticks_off()
        ax = fig.add_subplot(gs[r, 2 * c + 1])
        pdf = np.asarray(row.pdf, dtype=float)
        ax.fill_between(mid, pdf / width, step="mid", color=common.COLORS["cnn"], alpha=0.5, lw=0)
        ax.step(mid, pdf / width, where="mid", color=common.COLORS["cnn"], lw=0.8)
        ax.axvline(row.z_spec, color=common.COLORS["b16"], lw=1.0, ls="--")
        ax.set_xlim(b["z_min"], b["z_max"])
        ax.set_ylim(0, None)
        ax.tick_params(labelsize=6)
        ax.text(0.97, 0.93, f"$z_{{\\rm spec}}$ = {row.z_spec:.3f}\n$z_{{\\rm phot}}$ = {row.z_phot:.3f}",
                transform=ax.transAxes, ha="right", va="top", fontsize=6)
        if r == N_ROWS - 1:
            ax.set_xlabel("$z$")
        if c == 0:
            ax.set_ylabel("$p(z)$")
    return fig
