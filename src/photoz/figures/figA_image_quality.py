"""Appendix figure: image quality of the cutouts and its effect on the CNN.

Panels: (a) galaxies lost while making cutouts, by reason; (b) bias and
sigma_MAD against the number of frames stacked in r; (c) against the lowest
coverage fraction of the five bands (part of the stamp off every frame).
"""

from __future__ import annotations

import numpy as np

from photoz.figures import common

INPUTS = {"ensemble": "results/ensemble/{main}.parquet", "catalog": "results/shards/catalog.parquet",
          "failures": "results/cutouts/failures.csv"}
CONFIG = ()


def make(inputs, cfg, log):
    plt = common.use_style()
    bands = common.BANDS
    df = common.test_sample(inputs["ensemble"], inputs["catalog"],
                            [f"nframes_{b}" for b in bands] + [f"coverage_{b}" for b in bands])
    fail = common.read_csv(inputs["failures"], ["specObjID", "band", "reason"])
    fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.5))
    per_reason = fail.drop_duplicates(["specObjID", "reason"]).groupby("reason")["specObjID"].nunique().sort_values()
    if len(per_reason):
        axes[0].barh(per_reason.index.astype(str), per_reason.to_numpy(), color=common.COLORS["b16"], alpha=0.7)
    else:
        axes[0].text(0.5, 0.5, "no galaxy lost", transform=axes[0].transAxes, ha="center")
    axes[0].set_xlabel("galaxies lost")
    axes[0].set_title(f"(a) cutout failures ({fail['specObjID'].nunique()} galaxies)")
    nfr = df["nframes_r"].to_numpy(float)
    edges = np.unique(np.concatenate([[0.5, 1.5, 2.5, 4.5], np.geomspace(8.5, max(nfr.max(), 9) + 1, 5)]))
    cov = df[[f"coverage_{b}" for b in bands]].min(axis=1).to_numpy(float)
    cedges = np.unique(np.concatenate([[0.0], np.quantile(cov, [0.05, 0.2, 0.5]), [np.nextafter(1.0, 2)]]))
    for ax, x, e, label, title in ((axes[1], nfr, edges, "frames stacked in r", "(b) stacking depth"),
                                   (axes[2], cov, cedges, "lowest band coverage fraction", "(c) stamp coverage")):
        t = common.binned_scores(x, df["dz"], e, min_count=5)
        ax.plot(t["x"], t["sigma_mad"], color=common.COLORS["cnn"], marker="o", ms=3, label=r"$\sigma_{\rm MAD}$")
        ax.errorbar(t["x"], t["bias"], yerr=t["bias_err"], color=common.COLORS["knn"], marker="s", ms=3,
                    capsize=1.5, label="bias")
        for xx, nn in zip(t["x"], t["n"]):
            ax.annotate(str(nn), (xx, 0), xytext=(0, 3), textcoords="offset points", fontsize=5, ha="center", color="0.4")
        ax.axhline(0, color="0.4", lw=0.5)
        ax.set_xlabel(label)
        ax.set_title(title)
    axes[1].set_xscale("log")
    axes[1].legend(loc="upper right")
    log.info("%d test galaxies, %d lost", len(df), fail["specObjID"].nunique())
    return fig
