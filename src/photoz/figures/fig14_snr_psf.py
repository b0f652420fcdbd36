"""Fig. 14: bias and sigma_MAD against SNR in each band, against PSF FWHM, and against the PSF FWHM difference between bands.

SNR = 2.5 / (ln 10 * petroMagErr); Stripe 82 galaxies (stacked images, no
catalog errors for the stack) are left out, as in the paper.
"""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import NullFormatter

from photoz.figures import common

INPUTS = {"ensemble": "results/ensemble/{main}.parquet", "catalog": "results/shards/catalog.parquet"}
CONFIG = ("regions",)
BAND_COLORS = ["#CC79A7", "#0072B2", "#009E73", "#E69F00", "#D55E00"]
PAIRS = [("u", "g"), ("g", "r"), ("r", "i"), ("i", "z")]


def make(inputs, cfg, log):
    plt = common.use_style()
    bands = common.BANDS
    cols = [f"petroMagErr_{b}" for b in bands] + [f"psffwhm_{b}" for b in bands] + ["ra", "dec"]
    df = common.test_sample(inputs["ensemble"], inputs["catalog"], cols)
    s82 = df["stripe82"].to_numpy(bool) if "stripe82" in df.columns else common.in_box(df["ra"], df["dec"], cfg["regions"]["stripe82"])
    df = df[~s82]
    log.info("%d galaxies outside Stripe 82", len(df))
    fig, axes = plt.subplots(2, 3, figsize=(7.0, 4.2), sharex="col")
    for k, b in enumerate(bands):
        err = df[f"petroMagErr_{b}"].to_numpy(float)
        snr = np.where(err > 0, 2.5 / np.log(10) / err, np.nan)
        t = common.binned_scores(snr, df["dz"], np.geomspace(3, 3000, 14), min_count=10)
        axes[0, 0].plot(t["x"], t["bias"], color=BAND_COLORS[k], marker="o", ms=2.5, label=b)
        axes[1, 0].plot(t["x"], t["sigma_mad"], color=BAND_COLORS[k], marker="o", ms=2.5, label=b)
        psf = df[f"psffwhm_{b}"].to_numpy(float)
        t = common.binned_scores(psf, df["dz"], common.quantile_edges(psf, 8), min_count=10)
        axes[0, 1].plot(t["x"], t["bias"], color=BAND_COLORS[k], marker="o", ms=2.5, label=b)
        axes[1, 1].plot(t["x"], t["sigma_mad"], color=BAND_COLORS[k], marker="o", ms=2.5, label=b)
    for k, (a, c) in enumerate(PAIRS):
        d = (df[f"psffwhm_{a}"] - df[f"psffwhm_{c}"]).to_numpy(float)
        t = common.binned_scores(d, df["dz"], common.quantile_edges(d, 8), min_count=10)
        axes[0, 2].plot(t["x"], t["bias"], color=BAND_COLORS[k], marker="o", ms=2.5, label=f"{a} - {c}")
        axes[1, 2].plot(t["x"], t["sigma_mad"], color=BAND_COLORS[k], marker="o", ms=2.5, label=f"{a} - {c}")
    for ax in axes[:, 0]:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    axes[1, 0].set_xlabel("SNR (Petrosian)")
    axes[1, 1].set_xlabel("PSF FWHM (arcsec)")
    axes[1, 2].set_xlabel("PSF FWHM difference (arcsec)")
    for ax in axes[0]:
        ax.axhline(0, color="0.4", lw=0.5)
        ax.set_ylabel(r"bias $\langle\Delta z\rangle$")
    for ax in axes[1]:
        ax.set_ylabel(r"$\sigma_{\rm MAD}$")
        ax.set_ylim(0, None)
    axes[0, 0].legend(ncol=2, title="band")
    axes[0, 2].legend(title="bands")
    return fig
