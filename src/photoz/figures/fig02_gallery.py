"""Fig. 2: gallery of cutouts: each band and an RGB composite, for galaxies spread in redshift."""

from __future__ import annotations

import numpy as np

from photoz.figures import common

INPUTS = {"catalog": "results/shards/catalog.parquet", "manifest": "results/shards/manifest.json"}
CONFIG = ("cutouts", "seed")
N_GALAXIES = 5


def pick_by_redshift(z, n, rng):
    """Indices of ``n`` galaxies, one in each redshift quantile slice (random within the slice)."""
    order = np.argsort(z)
    return [int(rng.choice(part)) for part in np.array_split(order, n) if len(part)]


def make(inputs, cfg, log):
    plt = common.use_style()
    cat = common.read_parquet(inputs["catalog"], ["specObjID", "z", "shard", "row"])
    rng = np.random.default_rng(cfg["seed"])
    idx = pick_by_redshift(cat["z"].to_numpy(), min(N_GALAXIES, len(cat)), rng)
    ids = cat["specObjID"].to_numpy()[idx]
    cubes = common.load_cutouts(cat, inputs["manifest"], ids)
    scale = cfg["cutouts"]["pixel_scale"]
    n = len(ids)
    fig, axes = plt.subplots(n, 6, figsize=(6.0, 1.05 * n + 0.3))
    axes = np.atleast_2d(axes)
    for i, (sid, cube) in enumerate(zip(ids, cubes)):
        for b in range(5):
            axes[i, b].imshow(common.band_image(cube[b]), cmap="gray", origin="lower", vmin=-1, vmax=6)
        axes[i, 5].imshow(common.lupton_rgb(cube), origin="lower")
        axes[i, 0].set_ylabel(f"z = {cat['z'].to_numpy()[idx[i]]:.3f}", fontsize=7)
    for b, name in enumerate(["u", "g", "r", "i", "z", "gri composite"]):
        axes[0, b].set_title(name)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.minorticks_off()
    size = cubes.shape[-1] * scale if n else 0
    fig.suptitle(f"{cubes.shape[-1]}x{cubes.shape[-1]} pixels ({size:.1f} arcsec), asinh scaled", fontsize=7)
    return fig
