"""Fig. 12: sky maps of the mean bias and of the mean PDF width (68%) of the test galaxies per cell.

The cells are those of the suspect-zone search (``zone.nside``, ``photoz.zone``);
the cells it found are outlined. A small footprint (the mock) is drawn patch by
patch, a wide one on the whole sky (``photoz.figures.skymap``).
"""

from __future__ import annotations

import json

import numpy as np

from photoz.figures import common, skymap

INPUTS = {"ensemble": "results/ensemble/{main}.parquet", "catalog": "results/shards/catalog.parquet",
          "zone": "results/zone/zone.json"}
CONFIG = ("zone",)


def make(inputs, cfg, log):
    plt = common.use_style()
    df = common.test_sample(inputs["ensemble"], inputs["catalog"], ["ra", "dec"])
    if "width68" not in df.columns:
        raise common.FigureInputError(f"{inputs['ensemble']} misses column width68")
    try:
        zone = json.loads(open(inputs["zone"]).read())
    except (OSError, json.JSONDecodeError) as err:
        raise common.FigureInputError(f"cannot read {inputs['zone']}: {err}") from None
    nside = int(zone.get("nside", cfg["zone"]["nside"]))
    small = skymap.is_small(df["ra"], df["dec"])
    fig = plt.figure(figsize=(7.0, 3.2 if small else 2.8))
    gs = fig.add_gridspec(1, 2, wspace=0.25)
    t, _, _ = skymap.cell_table(df["ra"], df["dec"], df["dz"], nside)
    lim = max(float(np.nanpercentile(np.abs(t["mean"]), 98)), 1e-4)
    outline = zone.get("cells") or []
    skymap.map_panel(fig, gs[0], df["ra"], df["dec"], df["dz"],
                     common.MapStyle(r"mean bias $\langle\Delta z\rangle$ per cell", nside, cmap="RdBu_r", vmin=-lim,
                                     vmax=lim, outline=outline))
    w = df["width68"].to_numpy()
    skymap.map_panel(fig, gs[1], df["ra"], df["dec"], w,
                     common.MapStyle("mean 68% PDF width per cell", nside, cmap="viridis",
                                     vmin=float(np.nanpercentile(w, 2)), vmax=float(np.nanpercentile(w, 98)),
                                     outline=outline))
    log.info("%d test galaxies, %s footprint, nside %d, %d found cells outlined", len(df),
             "small (zoomed)" if small else "wide (whole sky)", nside, len(zone.get("cells") or []))
    return fig
