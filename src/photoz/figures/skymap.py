"""Sky maps of per-cell means that stay readable whatever the footprint.

A survey of thousands of square degrees (real SDSS) is drawn on the whole sky
(Mollweide, ``common.sky_panel``). A small footprint -- the mock's few
patches of a fraction of a square degree each -- would be a few invisible
pixels there, so it is drawn patch by patch: one zoomed panel per patch, each
HEALPix cell a coloured polygon, RA increasing to the left.

A *patch* is a connected group of occupied HEALPix cells of ``PATCH_NSIDE``
(1.8 deg); the footprint is *small* when its patches cover at most
``SMALL_AREA_DEG2`` and there are at most ``MAX_PATCHES`` of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["PATCH_NSIDE", "SMALL_AREA_DEG2", "MAX_PATCHES", "patches", "is_small", "cell_table", "map_panel"]

PATCH_NSIDE = 32
SMALL_AREA_DEG2 = 300.0
MAX_PATCHES = 4


def _hp(nside):
    from astropy_healpix import HEALPix

    return HEALPix(nside=int(nside), order="nested")


def _cells(ra, dec, nside):
    from astropy import units as u

    return np.asarray(_hp(nside).lonlat_to_healpix(np.asarray(ra, float) * u.deg, np.asarray(dec, float) * u.deg),
                      dtype=np.int64)


def patches(ra, dec):
    """Patch label (0, 1, ...) of each position; patches are connected groups of occupied coarse cells."""
    cells = _cells(ra, dec, PATCH_NSIDE)
    occupied = set(int(c) for c in np.unique(cells))
    hp = _hp(PATCH_NSIDE)
    label = {}
    n = 0
    for c in sorted(occupied):
        if c in label:
            continue
        stack, label[c] = [c], n
        while stack:
            cur = stack.pop()
            for nb in np.asarray(hp.neighbours(cur)).ravel():
                nb = int(nb)
                if nb >= 0 and nb in occupied and nb not in label:
                    label[nb] = n
                    stack.append(nb)
        n += 1
    return np.array([label[int(c)] for c in cells], dtype=int)


def is_small(ra, dec):
    """True when the footprint is a few small patches (draw it zoomed), False for a wide survey."""
    if len(ra) == 0:
        return False
    cells = np.unique(_cells(ra, dec, PATCH_NSIDE))
    area = len(cells) * _hp(PATCH_NSIDE).pixel_area.to_value("deg2")
    return area <= SMALL_AREA_DEG2 and len(np.unique(patches(ra, dec))) <= MAX_PATCHES


def cell_table(ra, dec, values, nside):
    """Mean, count and corners of each occupied HEALPix cell: DataFrame (cell, mean, n) and corner arrays."""
    cell = _cells(ra, dec, nside)
    t = pd.DataFrame({"cell": cell, "v": np.asarray(values, float)}).groupby("cell")["v"].agg(["mean", "size"])
    t = t.reset_index().rename(columns={"size": "n"})
    lon, lat = _hp(nside).boundaries_lonlat(t["cell"].to_numpy(), step=2)
    return t, np.asarray(lon.to_value("deg")), np.asarray(lat.to_value("deg"))


def _unwrap(ra, ref):
    return ref + ((np.asarray(ra, float) - ref + 180.0) % 360.0) - 180.0


def _patch_widths(lab, ids, ra, dec):
    """Each patch's width on the sky (deg), for the panels' width ratios."""
    widths = []
    for p in ids:
        sel = lab == p
        ref = float(np.median(ra[sel]))
        span_ra = np.ptp(_unwrap(ra[sel], ref)) * np.cos(np.radians(np.median(dec[sel])))
        widths.append(max(span_ra, np.ptp(dec[sel]), 0.05))
    return widths


def _patch_panel(ax, ra, dec, values, style, limits):
    """One zoomed patch: its cells coloured by their mean (``limits``), the outlined ones edged in black."""
    from matplotlib.collections import PolyCollection
    from matplotlib.ticker import MaxNLocator

    t, lon, lat = cell_table(ra, dec, values, style.nside)
    ref = float(np.median(ra))
    verts = [np.column_stack([_unwrap(lo, ref), la]) for lo, la in zip(lon, lat)]
    coll = PolyCollection(verts, array=t["mean"].to_numpy(), cmap=style.cmap, edgecolors="0.7", linewidths=0.2)
    coll.set_clim(*limits)
    ax.add_collection(coll)
    outline = set(int(c) for c in (style.outline or []))
    edge = [v for v, c in zip(verts, t["cell"]) if int(c) in outline]
    if edge:
        ax.add_collection(PolyCollection(edge, facecolors="none", edgecolors="k", linewidths=1.2))
    xy = np.vstack(verts)
    pad = 0.05 * max(np.ptp(xy[:, 0]), np.ptp(xy[:, 1]))
    ax.set_xlim(xy[:, 0].max() + pad, xy[:, 0].min() - pad)  # RA increases to the left
    ax.set_ylim(xy[:, 1].min() - pad, xy[:, 1].max() + pad)
    ax.set_aspect(1.0 / np.cos(np.radians(np.median(dec))), adjustable="datalim")
    ax.set_xlabel("RA (deg)", fontsize=7)
    ax.tick_params(labelsize=6)
    # at most 4 RA labels (5 six-digit labels such as 150.25 collided on a ~1.4-inch panel)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=3, steps=[1, 2, 5, 10]))
    ax.set_title(f"{len(ra):,}\ngalaxies", fontsize=7)  # two lines: narrow patches sit side by side
    return coll


def map_panel(fig, spec, ra, dec, values, style):
    """Per-cell mean map in ``spec``: zoomed patch panels for a small footprint, else the whole sky.

    ``style``: a :class:`photoz.figures.common.MapStyle`. Returns the list of axes.
    """
    from matplotlib.ticker import MaxNLocator

    from photoz.figures import common

    ra = np.asarray(ra, float)
    dec = np.asarray(dec, float)
    if not is_small(ra, dec):
        return [common.sky_panel(fig, spec, ra, dec, values, style)]
    lab = patches(ra, dec)
    ids = np.unique(lab)
    sub = spec.subgridspec(1, len(ids), width_ratios=_patch_widths(lab, ids, ra, dec))
    values = np.asarray(values, float)
    t_all = cell_table(ra, dec, values, style.nside)[0]
    limits = (float(np.nanmin(t_all["mean"])) if style.vmin is None else style.vmin,
              float(np.nanmax(t_all["mean"])) if style.vmax is None else style.vmax)
    axes = []
    for k, p in enumerate(ids):
        sel = lab == p
        ax = fig.add_subplot(sub[0, k])
        coll = _patch_panel(ax, ra[sel], dec[sel], values[sel], style, limits)
        if k == 0:
            ax.set_ylabel("Dec (deg)", fontsize=7)
        axes.append(ax)
    cb = fig.colorbar(coll, ax=axes, orientation="horizontal", shrink=0.8, aspect=30)
    cb.set_label(style.label, fontsize=7)
    cb.ax.xaxis.set_major_locator(MaxNLocator(4))
    cb.ax.tick_params(labelsize=6)
    return axes
