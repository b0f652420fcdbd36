"""Fig. 8: bias against spectroscopic and photometric redshift, CNN and B16, with the Euclid requirement band."""

from __future__ import annotations

import numpy as np

from photoz.figures import common

INPUTS = {"ensemble": "results/ensemble/{main}.parquet", "catalog": "results/shards/catalog.parquet"}
CONFIG = ("bins", "mode")
EUCLID = 0.002


def make(inputs, cfg, log):
    plt = common.use_style()
    df = common.test_sample(inputs["ensemble"], inputs["catalog"], ["zphot"])
    zmax = cfg["bins"]["z_max"]
    edges = np.linspace(0, zmax, 21)
    fig, axes = plt.subplots(2, 2, figsize=(7.0, 4.4), sharex=True, height_ratios=[2.2, 1])
    extent = 2.5 * EUCLID
    for j, (xname, label) in enumerate((("spec", r"$z_{\rm spec}$"), ("phot", r"$z_{\rm phot}$"))):
        ax, axh = axes[0, j], axes[1, j]
        ax.axhspan(-EUCLID, EUCLID, color=common.COLORS["euclid"], alpha=0.35, lw=0,
                   label=r"Euclid: $|\langle\Delta z\rangle| < 0.002$, i.e. $|\langle z_{\rm phot}-z_{\rm spec}\rangle| < 0.002(1+z)$")
        ax.axhline(0, color="0.4", lw=0.5)
        for est, zp, dz in (("cnn", df["z_phot"], df["dz"]), ("b16", df["zphot"], df["dz_b16"])):
            x = df["z_spec"] if xname == "spec" else zp
            t = common.binned_scores(x, dz, edges, min_count=10)
            ax.errorbar(t["x"], t["bias"], yerr=t["bias_err"], color=common.COLORS[est], marker="o", ms=2.5,
                        capsize=1.5, label="CNN (this run)" if est == "cnn" else common.b16_name(cfg))
            if len(t):
                extent = max(extent, float(np.nanmax(np.abs(t["bias"]) + np.nan_to_num(t["bias_err"]))) * 1.1)
        ax.set_ylabel(r"bias $\langle\Delta z\rangle$")
        hist_kw = dict(bins=np.linspace(0, zmax, 81), histtype="step")
        axh.hist(df["z_spec"], color="0.2", label=r"$z_{\rm spec}$", **hist_kw)
        axh.hist(df["z_phot"], color=common.COLORS["cnn"], label=r"$z_{\rm phot}$ CNN", **hist_kw)
        axh.hist(df["zphot"].clip(0, zmax), color=common.COLORS["b16"], label=r"$z_{\rm phot}$ " + common.b16_name(cfg), **hist_kw)
        axh.set_xlabel(label)
        axh.set_ylabel("galaxies")
        axh.set_xlim(0, zmax)
    m = min(extent, 0.05)
    for ax in axes[0]:
        ax.set_ylim(-m, m)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=3)
    axes[1, 1].legend(loc="upper right")
    return fig
