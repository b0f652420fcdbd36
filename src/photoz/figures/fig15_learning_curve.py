"""Fig. 15: the learning curve -- σ_MAD, η and CRPS of the CNN and the kNN against the training size.

An extension of the paper's Sect. 5: the points of ``results/learning_curve.csv``
(``photoz.learning_curve``; every point tested on the same galaxies) with
bootstrap error bars and the least-squares power law of each estimator's
σ_MAD, beside the paper's published CNN points (2%, 20%, 50%, 80% training;
the 2% trial used the reduced network) and B16 at the 80% size. The
published points are SDSS galaxies; this run's are those of its own sky (the
mock sky in mock mode), so the two are drawn apart and labelled so.
"""

from __future__ import annotations

import numpy as np

from photoz.figures import common

INPUTS = {"learning_curve": "results/learning_curve.csv"}
CONFIG = ()
#: The published points of the curve: Table 2 keys of ``photoz.published`` (ascending training size).
PUBLISHED_KEYS = ("frac2", "frac20", "frac50", "full")
#: The published row whose training size B16 is drawn at, and B16's row.
B16_AT, B16_KEY = "full", "b16"
PANELS = (("sigma_mad", r"$\sigma_{\rm MAD}$", True), ("eta", r"$\eta$ (%)", False), ("crps", "CRPS", False))


def published_points():
    """The published CNN points and B16's: a list of dicts (key, n_train, sigma_mad, eta, crps) and B16's dict."""
    from photoz import published

    pts = []
    for key in PUBLISHED_KEYS:
        r = published.table2_row(key)
        pts.append({"key": key, **{k: r[k] for k in ("n_train", "sigma_mad", "eta", "crps")}})
    b16 = published.table2_row(B16_KEY)
    b16 = {"key": B16_KEY, "n_train": published.table2_row(B16_AT)["n_train"],
           **{k: b16[k] for k in ("sigma_mad", "eta", "crps")}}
    return pts, b16


def _value(x):
    return np.nan if x is None else float(x)


def make(inputs, cfg, log):
    from photoz.learning_curve import COLUMNS, ESTIMATORS

    plt = common.use_style()
    df = common.read_csv(inputs["learning_curve"], COLUMNS)
    if df.empty:
        raise common.FigureInputError(f"{inputs['learning_curve']} has no points")
    sky = "SDSS" if cfg.get("mode") == "sdss" else "mock sky"
    pub, b16 = published_points()
    fig, axes = plt.subplots(1, 3, figsize=(7.2, 2.7))
    for ax, (key, ylabel, logy) in zip(axes, PANELS):
        for est, marker in zip(ESTIMATORS, ("o", "s")):
            d = df[df["estimator"] == est].sort_values("n_train")
            if d[key].notna().sum() == 0:
                continue
            label = f"{'CNN' if est == 'cnn' else 'kNN'} (this run, {sky})"
            ax.errorbar(d["n_train"], d[key], yerr=d[f"{key}_err"], color=common.COLORS[est], marker=marker,
                        ms=3.5, capsize=1.5, lw=1.0, label=label)
            if est == "cnn":  # points whose CNN is not the largest point's network: open markers
                net = d["network"].fillna("").astype(str)
                other = (net != net.iloc[-1]).to_numpy()
                if other.any():
                    ax.plot(d["n_train"][other], d[key][other], ls="none", marker=marker, ms=3.5, mfc="white", zorder=5,
                            color=common.COLORS[est],
                            label="  (open: " + ", ".join(sorted(set(net[other]))) + " network)")
            if key == "sigma_mad":
                s = float(d["slope_sigma_mad"].iloc[0])
                ok = (d["n_train"] > 0) & (d["sigma_mad"] > 0)
                if np.isfinite(s) and ok.sum() >= 2:
                    lx, ly = np.log10(d.loc[ok, "n_train"]), np.log10(d.loc[ok, "sigma_mad"])
                    x = np.array([lx.min(), lx.max()])
                    e = float(d["slope_sigma_mad_err"].iloc[0])
                    err = f" \\pm {e:.2f}" if np.isfinite(e) else ""
                    ax.plot(10 ** x, 10 ** (ly.mean() + s * (x - lx.mean())), color=common.COLORS[est], ls=":",
                            lw=0.9, label=f"{'CNN' if est == 'cnn' else 'kNN'} fit $\\propto N^{{{s:.2f}{err}}}$"
                            + ("" if err else " (slope error not measured)"))
        pn = np.array([p["n_train"] for p in pub], dtype=float)
        pv = np.array([_value(p[key]) for p in pub])
        ax.plot(pn, pv, color="0.45", marker="D", mfc="white", ms=4, ls="--", lw=0.8,
                label="CNN, Pasquet et al. (2019, SDSS)")
        ax.plot(pn[:1], pv[:1], ls="none", marker="D", color="0.45", mfc="0.8", ms=4,
                label="  (2% point: reduced network)")
        if np.isfinite(_value(b16[key])):
            ax.plot([b16["n_train"]], [b16[key]], ls="none", marker="*", ms=8, color=common.COLORS["b16"],
                    mfc="white", label="B16, published (SDSS, at the 80% size)")
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(r"$N_{\rm train}$")
        ax.set_ylabel(ylabel)
    axes[2].set_title("CNN only (the kNN has no PDF)", fontsize=7)
    handles, labels = axes[0].get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: ("this run" not in labels[i], "fit" not in labels[i], i))
    fig.legend([handles[i] for i in order], [labels[i] for i in order], loc="outside lower center", ncol=3)
    log.info("%d points per estimator; published points at %s", int((df["estimator"] == "cnn").sum()),
             ", ".join(str(int(p["n_train"])) for p in pub))
    return fig
