"""Fig. 4: the CNN, drawn from the model object (``photoz.nn.model.layer_table``) of the published network."""

from __future__ import annotations

from matplotlib.patches import FancyBboxPatch

from photoz.figures import common

INPUTS = {}
CONFIG = ("bins", "networks")


def network_rows(cfg, network="full"):
    """The top-level rows (no per-convolution detail) of the configured network, and the total."""
    from photoz.nn.model import build_model, layer_table

    if network not in cfg["networks"]:
        raise common.FigureInputError(f"networks.{network} is not in the config")
    model = build_model(cfg["networks"][network], n_bins=cfg["bins"]["n"], ebv_input=True)
    rows = layer_table(model)
    total = rows[-1]["params"]
    top = [r for r in rows[:-1] if r["stage"] and not r["stage"].startswith(" ")]
    return top, total


def make(inputs, cfg, log):
    plt = common.use_style()
    rows, total = network_rows(cfg, "full")
    log.info("%d stages, %d parameters", len(rows), total)
    fig, ax = plt.subplots(figsize=(3.5, 0.42 * (len(rows) + 2) + 0.4))
    ax.set_axis_off()
    n = len(rows) + 1
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, n + 0.6)
    kinds = {"conv": common.COLORS["cnn"], "incep": common.COLORS["knn"], "pool": common.COLORS["noebv"],
             "dense": common.COLORS["b16"], "input": "0.6"}
    items = [{"stage": "input", "operation": "ugriz image", "output": "64x64x5", "params": 0}] + rows
    for k, r in enumerate(items):
        y = n - k
        op = r["operation"]
        kind = ("input" if k == 0 else "incep" if "inception" in op else "pool" if "pool" in op
                else "dense" if ("dense" in op or "flatten" in op) else "conv")
        ax.add_patch(FancyBboxPatch((0.03, y - 0.36), 0.94, 0.72, boxstyle="round,pad=0.0,rounding_size=0.08",
                                    fc=kinds[kind], alpha=0.18, ec=kinds[kind], lw=0.8))
        stage = r["stage"].split(" (")[0]
        ax.text(0.06, y, stage, va="center", fontsize=7, weight="bold")
        kern = f" [{r['kernel']}]" if r.get("kernel") else ""
        ax.text(0.2, y + 0.12, op + kern, va="center", fontsize=6)
        ax.text(0.2, y - 0.17, f"output {r['output'].replace('x', '×')}", va="center", fontsize=6, color="0.25")
        ax.text(0.95, y, f"{r['params']:,}" if r["params"] else "", va="center", ha="right", fontsize=6.5)
        if k:
            ax.annotate("", (0.5, y + 0.37), (0.5, y + 0.63), arrowprops={"arrowstyle": "->", "lw": 0.6, "color": "0.3"})
    ax.text(0.95, n + 0.55, "parameters", ha="right", fontsize=6.5, style="italic")
    ax.text(0.5, -0.5, f"total trainable parameters: {total:,}", ha="center", fontsize=7.5)
    return fig
