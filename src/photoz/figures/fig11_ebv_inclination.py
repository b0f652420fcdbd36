"""Fig. 11: bias against E(B-V) with and without the reddening input (and B16); bias against galaxy inclination.

Inclination: i = arccos(b/a) with b/a the r-band axis ratio of the better-fitting
profile (``expAB_r`` where ``fracDeV_r`` < 0.5, ``deVAB_r`` otherwise).
"""

from __future__ import annotations

import numpy as np

from photoz.figures import common

INPUTS = {"ensemble": "results/ensemble/{main}.parquet", "ensemble_noebv": "results/ensemble/{noebv}.parquet",
          "catalog": "results/shards/catalog.parquet"}
CONFIG = ("mode",)


def inclination(exp_ab, dev_ab, frac_dev):
    """Inclination in degrees from the axis ratio of the dominant profile."""
    ab = np.where(np.asarray(frac_dev) < 0.5, exp_ab, dev_ab)
    return np.degrees(np.arccos(np.clip(np.asarray(ab, dtype=float), 0.0, 1.0)))


def make(inputs, cfg, log):
    plt = common.use_style()
    cols = ["ebv", "zphot", "expAB_r", "deVAB_r", "fracDeV_r"]
    df = common.test_sample(inputs["ensemble"], inputs["catalog"], cols)
    dz_no = None  # the config may have no trial without the E(B-V) input (photoz.trials.noebv_trial)
    if inputs.get("ensemble_noebv"):
        no = common.read_parquet(inputs["ensemble_noebv"], ["specObjID", "z_phot", "z_spec"])
        no = no.set_index("specObjID").reindex(df["specObjID"])
        dz_no = common.delta_z(no["z_phot"].to_numpy(), no["z_spec"].to_numpy())
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.8))
    ebv_edges = common.quantile_edges(df["ebv"], 10)
    inc = inclination(df["expAB_r"], df["deVAB_r"], df["fracDeV_r"])
    curves = [("CNN with $E(B-V)$ input", df["dz"], common.COLORS["cnn"], "o"),
              (common.b16_name(cfg), df["dz_b16"], common.COLORS["b16"], "^")]
    if dz_no is not None:
        curves.insert(1, ("CNN without $E(B-V)$ input", dz_no, common.COLORS["noebv"], "s"))
    for label, dz, color, m in curves:
        t = common.binned_scores(df["ebv"], dz, ebv_edges, min_count=10)
        axes[0].errorbar(t["x"], t["bias"], yerr=t["bias_err"], color=color, marker=m, ms=3, capsize=1.5, label=label)
    for label, dz, color, m in (curves[0], curves[-1]):
        t = common.binned_scores(inc, dz, np.linspace(0, 90, 10), min_count=10)
        axes[1].errorbar(t["x"], t["bias"], yerr=t["bias_err"], color=color, marker=m, ms=3, capsize=1.5, label=label)
    axes[0].set_xlabel(r"$E(B-V)$ (mag)")
    axes[0].xaxis.set_major_locator(plt.MaxNLocator(5))  # the default's narrow E(B-V) range crowds the labels
    axes[1].set_xlabel(r"inclination $\arccos(b/a)$ (deg)")
    axes[1].set_xlim(0, 90)
    for ax in axes:
        ax.axhline(0, color="0.4", lw=0.5)
        ax.set_ylabel(r"bias $\langle\Delta z\rangle$")
        ax.legend(loc="best")
    log.info("%d galaxies; noebv matched for %s", len(df), "none (no such trial)" if dz_no is None
             else int(np.isfinite(dz_no).sum()))
    return fig
