"""Fig. 6: distribution of the normalised residuals dz of the CNN, with a Gaussian of the measured bias and sigma_MAD."""

from __future__ import annotations

import numpy as np

from photoz.figures import common

INPUTS = {"ensemble": "results/ensemble/{main}.parquet"}
CONFIG = ()


def make(inputs, cfg, log):
    plt = common.use_style()
    ens = common.read_parquet(inputs["ensemble"], ["z_spec", "z_phot"])
    dz = common.delta_z(ens["z_phot"], ens["z_spec"])
    s = common.scores(dz)
    log.info("dz of %d galaxies: bias %.5f sigma_MAD %.5f eta %.2f%%", s["n"], s["bias"], s["sigma_mad"], s["eta"])
    lim = 0.15
    edges = np.linspace(-lim, lim, 121)
    fig, ax = plt.subplots(figsize=(3.5, 2.8))
    counts, _, _ = ax.hist(np.clip(dz, -lim, lim), bins=edges, density=True, histtype="stepfilled",
                           color=common.COLORS["cnn"], alpha=0.45, label="CNN, test galaxies")
    x = np.linspace(-lim, lim, 600)
    g = np.exp(-0.5 * ((x - s["bias"]) / s["sigma_mad"]) ** 2) / (np.sqrt(2 * np.pi) * s["sigma_mad"])
    ax.plot(x, g, color=common.COLORS["b16"], lw=1.2,
            label=rf"Gaussian: mean {s['bias']:.5f}, $\sigma$ = $\sigma_{{\rm MAD}}$ = {s['sigma_mad']:.5f}")
    ymax = max(counts.max(), g.max()) * 1.3
    for a, b in ((-lim, -common.OUTLIER), (common.OUTLIER, lim)):
        ax.fill_between([a, b], 1e-3, ymax, facecolor="none", edgecolor="0.5", hatch="///", lw=0)
    ax.text(0.97, 0.6, rf"outliers $|\Delta z| > 0.05$" + f"\n$\\eta$ = {s['eta']:.2f}%", transform=ax.transAxes,
            ha="right", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylim(max(0.5 / (s["n"] * (edges[1] - edges[0])), 1e-3), ymax)
    ax.set_xlim(-lim, lim)
    ax.set_xlabel(r"$\Delta z = (z_{\rm phot} - z_{\rm spec})/(1 + z_{\rm spec})$")
    ax.set_ylabel("probability density")
    ax.legend(loc="upper left")
    return fig
