"""Fig. 10: PIT histograms of every ensemble member and of the averaged PDFs."""

from __future__ import annotations

import numpy as np

from photoz.figures import common

INPUTS = {"ensemble": "results/ensemble/{main}.parquet"}
CONFIG = ()


def make(inputs, cfg, log):
    plt = common.use_style()
    ens = common.read_parquet(inputs["ensemble"], ["pit", "pit_members"])
    members = np.array([np.asarray(v, dtype=float) for v in ens["pit_members"]])
    if members.ndim != 2:
        raise common.FigureInputError(f"{inputs['ensemble']}: pit_members must hold the same number of members per galaxy")
    n_mem = members.shape[1]
    log.info("PIT of %d galaxies, %d members", len(ens), n_mem)
    edges = np.linspace(0, 1, 21)
    fig, ax = plt.subplots(figsize=(3.5, 2.8))
    for m in range(n_mem):
        ax.hist(members[:, m], bins=edges, density=True, histtype="step", lw=0.9, color=common.COLORS["s82"],
                alpha=0.9, label="individual members" if m == 0 else None)
    ax.hist(ens["pit"], bins=edges, density=True, histtype="step", lw=1.8, color=common.COLORS["cnn"],
            label=f"average of the {n_mem} members' PDFs")
    ax.axhline(1, color="0.3", ls="--", lw=0.7, label="ideal (uniform)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, None)
    ax.set_xlabel(r"PIT = CDF$(z_{\rm spec})$")
    ax.set_ylabel("normalised count")
    ax.legend(loc="lower center")
    return fig
