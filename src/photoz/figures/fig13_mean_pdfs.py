"""Fig. 13: mean PDF (centred on each galaxy's z_spec) in the suspect zone, in Stripe 82 and in the full test sample.

The suspect zone is the one Table 2 removes (``results/zone/zone.json``'s
``table2_region``): the cells the zone search found in mode mock, the
configured ``regions.suspect_zone`` otherwise.
"""

from __future__ import annotations

import json

import numpy as np

from photoz import bins
from photoz.figures import common

INPUTS = {"ensemble": "results/ensemble/{main}.parquet", "catalog": "results/shards/catalog.parquet",
          "zone": "results/zone/zone.json"}
CONFIG = ("bins", "regions")


def centred_mean_pdf(pdfs, z_spec, n_bins, z_min, z_max, half=30):
    """Mean of PDFs shifted so that each galaxy's z_spec bin sits at offset 0; offsets -half..half bins."""
    k0 = bins.to_class(z_spec, n_bins, z_min, z_max)
    acc = np.zeros(2 * half + 1)
    for p, k in zip(pdfs, k0):
        lo, hi = max(0, k - half), min(n_bins, k + half + 1)
        acc[lo - k + half:hi - k + half] += p[lo:hi]
    return acc / max(len(k0), 1)


def make(inputs, cfg, log):
    plt = common.use_style()
    df = common.test_sample(inputs["ensemble"], inputs["catalog"], ["ra", "dec"])
    b = cfg["bins"]
    width = (b["z_max"] - b["z_min"]) / b["n"]
    pdfs = np.array([np.asarray(p, dtype=float) for p in df["pdf"]])
    if pdfs.shape[1:] != (b["n"],):
        raise common.FigureInputError(f"{inputs['ensemble']}: pdf has shape {pdfs.shape[1:]}, config bins.n = {b['n']}")
    from photoz.zone import region_mask

    with open(inputs["zone"]) as fh:
        region = json.load(fh)["table2_region"]
    zone_sel = region_mask(df["ra"].to_numpy(), df["dec"].to_numpy(), region)
    groups = {"full test sample": (np.ones(len(df), bool), common.COLORS["all"]),
              f"suspect zone ({region['source']})": (zone_sel, common.COLORS["suspect"]),
              "Stripe 82": (common.in_box(df["ra"], df["dec"], cfg["regions"]["stripe82"]), common.COLORS["s82"])}
    half = 30
    off = np.arange(-half, half + 1) * width
    fig, ax = plt.subplots(figsize=(3.5, 2.8))
    top = 0.0
    for name, (sel, color) in groups.items():
        n = int(sel.sum())
        log.info("%s: %d galaxies", name, n)
        if n == 0:
            continue
        mean = centred_mean_pdf(pdfs[sel], df["z_spec"].to_numpy()[sel], b["n"], b["z_min"], b["z_max"], half)
        ax.step(off, mean / width, where="mid", color=color, label=f"{name} ($N$ = {n})")
        top = max(top, float(np.nanmax(mean / width)))
    ax.axvline(0, color="0.5", lw=0.5, ls="--")
    ax.set_xlabel(r"$z - z_{\rm spec}$ (bin of $z_{\rm spec}$ at 0)")
    ax.set_ylabel(r"mean PDF $\langle p(z)\rangle$")
    ax.set_xlim(off[0], off[-1])
    # headroom above the peaks for the legend (one line per curve), which would otherwise sit on them
    ax.set_ylim(0, top * 1.3 if top > 0 else None)
    # an opaque box, so that the dashed zero line does not run through the labels
    ax.legend(loc="upper left", frameon=True, framealpha=1.0, edgecolor="none")
    return fig
