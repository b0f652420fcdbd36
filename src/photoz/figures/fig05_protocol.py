"""Fig. 5: the training protocol (cross-validation folds, validation subset, ensemble members), drawn from the config."""

from __future__ import annotations

from matplotlib.patches import Rectangle

from photoz import trials
from photoz.figures import common

INPUTS = {}
CONFIG = ("dataset", "trials", "training")


def make(inputs, cfg, log):
    plt = common.use_style()
    n_folds = cfg["dataset"]["n_folds"]
    vfrac = cfg["dataset"]["validation_fraction"]
    main = trials.main_trial(cfg)
    members = cfg["trials"][main]["members"]
    net = trials.network_name(cfg, main)
    fig, ax = plt.subplots(figsize=(7.0, 0.45 * n_folds + 1.3))
    ax.set_axis_off()
    ax.set_xlim(0, 10.2)
    ax.set_ylim(-1.1, n_folds + 0.4)
    seg = 5.0 / n_folds
    col = {"test": common.COLORS["b16"], "train": common.COLORS["cnn"], "val": common.COLORS["noebv"]}
    for f in range(n_folds):
        y = n_folds - 1 - f
        ax.text(-0.05, y + 0.3, f"fold {f + 1}", ha="right", va="center", fontsize=7)
        for s in range(n_folds):
            kind = "test" if s == f else "train"
            ax.add_patch(Rectangle((s * seg, y), seg, 0.6, fc=col[kind], alpha=0.55, ec="white", lw=1))
        # validation subset: a slice of the training side
        start = (f + 1) % n_folds * seg
        ax.add_patch(Rectangle((start, y), seg * (n_folds - 1) * vfrac, 0.6, fc=col["val"], alpha=0.9, ec="none"))
        for m in range(members):
            x = 5.6 + m * (2.2 / max(members, 1))
            ax.add_patch(Rectangle((x, y + 0.05), 1.8 / max(members, 1), 0.5, fc="0.85", ec="0.4", lw=0.6))
            ax.text(x + 0.9 / max(members, 1), y + 0.3, f"seed {m}", ha="center", va="center", fontsize=5.5)
        ax.annotate("", (8.3, y + 0.3), (7.9, y + 0.3), arrowprops={"arrowstyle": "->", "lw": 0.6})
        ax.text(8.4, y + 0.3, "mean PDF of the test fold", va="center", fontsize=6.5)
    ax.text(2.5, n_folds + 0.1, "galaxies (split into folds)", ha="center", fontsize=7)
    ax.text(6.7, n_folds + 0.1, f"{members} ensemble member(s), {net} network", ha="center", fontsize=7)
    for k, (name, label) in enumerate([("test", "test fold"), ("train", "training"),
                                      ("val", f"validation ({100 * vfrac:.1f}% of training)")]):
        ax.add_patch(Rectangle((0.2 + 2.6 * k, -0.9), 0.3, 0.3, fc=col[name], alpha=0.7))
        ax.text(0.6 + 2.6 * k, -0.75, label, va="center", fontsize=6.5)
    log.info("%d folds, %d members", n_folds, members)
    return fig
