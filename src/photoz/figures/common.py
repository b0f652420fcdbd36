"""Shared pieces of the figure scripts: style, command line, inputs, scores, saving.

Every figure module (``figNN_name.py``; :mod:`photoz.figures`) defines
``INPUTS`` (option name -> default path, following docs/dataflow.md, with
trial roles in braces) and ``make(inputs, cfg, log)`` returning a matplotlib
figure; :func:`run` is its command line: it parses ``--<input> PATH`` options,
``--config-json``, ``--out`` and ``--log``, and writes ``<out>.pdf`` and
``<out>.png`` atomically.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from photoz.io import atomic_path, setup_logging
from photoz.regions import in_region as in_box  # the one region test (RA/Dec box or survey stripes)

__all__ = [
    "STYLE", "COLORS", "use_style", "save_figure", "delta_z", "scores", "binned_scores",
    "read_parquet", "read_csv", "test_sample", "in_box", "cell_means", "sky_panel",
    "lupton_rgb", "band_image", "run", "FigureInputError",
]

STYLE = Path(__file__).with_name("photoz.mplstyle")
#: Okabe-Ito colours by role (same order as the style's cycle).
COLORS = {"cnn": "#0072B2", "b16": "#D55E00", "knn": "#009E73", "noebv": "#E69F00",
          "s82": "#56B4E9", "suspect": "#CC79A7", "all": "#000000", "euclid": "#F0E442"}
BANDS = ["u", "g", "r", "i", "z"]
OUTLIER = 0.05


class FigureInputError(ValueError):
    """An input file of a figure is missing or does not follow the contract."""


def use_style():
    """Activate the shared style (call before creating a figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.style.use(str(STYLE))
    return plt


def save_figure(fig, out):
    """Write ``fig`` to ``<out>.pdf`` and ``<out>.png`` (``out`` with or without suffix), atomically."""
    out = Path(out)
    stem = out.with_suffix("") if out.suffix in (".pdf", ".png") else out
    paths = []
    for ext in (".pdf", ".png"):
        path = stem.with_name(stem.name + ext)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext[1:])
        paths.append(path)
    return paths


# --- scores -------------------------------------------------------------------

def delta_z(z_phot, z_spec):
    """Normalised residual (z_phot - z_spec) / (1 + z_spec) (``photoz.metrics.delta_z``)."""
    from photoz import metrics

    return metrics.delta_z(np.asarray(z_phot, dtype=float), np.asarray(z_spec, dtype=float))


def scores(dz):
    """bias, sigma_MAD, eta (percent of |dz| > 0.05) and n of the residuals ``dz``."""
    dz = np.asarray(dz, dtype=float)
    dz = dz[np.isfinite(dz)]
    if dz.size == 0:
        return {"bias": np.nan, "sigma_mad": np.nan, "eta": np.nan, "n": 0}
    from photoz import metrics

    return {"bias": float(metrics.bias(dz)), "sigma_mad": float(metrics.sigma_mad(dz)),
            "eta": float(metrics.eta(dz, OUTLIER)), "n": int(dz.size)}


def binned_scores(x, dz, edges, min_count=5):
    """Scores of ``dz`` in bins of ``x``: a DataFrame with x (mean in bin), n, bias, bias_err, sigma_mad.

    Bins with fewer than ``min_count`` galaxies are dropped; ``bias_err`` is the
    standard error of the mean.
    """
    x = np.asarray(x, dtype=float)
    dz = np.asarray(dz, dtype=float)
    ok = np.isfinite(x) & np.isfinite(dz)
    x, dz = x[ok], dz[ok]
    idx = np.digitize(x, edges) - 1
    rows = []
    for k in range(len(edges) - 1):
        sel = idx == k
        n = int(sel.sum())
        if n < max(min_count, 1):
            continue
        s = scores(dz[sel])
        err = float(dz[sel].std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan
        rows.append({"x": float(x[sel].mean()), "lo": edges[k], "hi": edges[k + 1], "n": n,
                     "bias": s["bias"], "bias_err": err, "sigma_mad": s["sigma_mad"]})
    return pd.DataFrame(rows, columns=["x", "lo", "hi", "n", "bias", "bias_err", "sigma_mad"])


def quantile_edges(x, n_bins):
    """Edges putting about the same number of finite ``x`` in each of ``n_bins`` bins."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return np.array([0.0, 1.0])
    e = np.unique(np.quantile(x, np.linspace(0, 1, n_bins + 1)))
    if e.size < 2:
        e = np.array([x.min() - 0.5, x.max() + 0.5])
    e[-1] = np.nextafter(e[-1], np.inf)
    return e


# --- inputs -------------------------------------------------------------------

def _read_table(path, reader, columns):
    path = Path(path)
    if not path.exists():
        raise FigureInputError(f"input file {path} does not exist")
    df = reader(path)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise FigureInputError(f"{path} misses column(s) {', '.join(missing)} (see docs/dataflow.md)")
    return df


def read_parquet(path, columns=()):
    """Read a parquet file and check it has ``columns``; clear error naming the file otherwise."""
    return _read_table(path, pd.read_parquet, columns)


def read_csv(path, columns=()):
    """Read a CSV file and check it has ``columns``; clear error naming the file otherwise."""
    return _read_table(path, pd.read_csv, columns)


def test_sample(ensemble_path, catalog_path, columns=()):
    """The ensemble's test galaxies joined with their catalog rows (shards catalog).

    Adds ``dz`` (CNN) and, where the catalog has ``zphot``, ``dz_b16``.
    """
    ens = read_parquet(ensemble_path, ["specObjID", "z_spec", "z_phot"])
    cat = read_parquet(catalog_path, ["specObjID", *columns])
    cat = cat.drop(columns=[c for c in ("z_spec", "z_phot", "fold") if c in cat.columns and c in ens.columns])
    if cat["specObjID"].duplicated().any():
        raise FigureInputError(f"{catalog_path}: duplicated specObjID")
    df = ens.merge(cat, on="specObjID", how="left", validate="one_to_one", indicator=True)
    lost = int((df["_merge"] != "both").sum())
    if lost:
        ids = df.loc[df["_merge"] != "both", "specObjID"].head(3).tolist()
        raise FigureInputError(f"{lost} galaxies of {ensemble_path} are not in {catalog_path} (e.g. specObjID {ids})")
    df = df.drop(columns="_merge")
    df["dz"] = delta_z(df["z_phot"], df["z_spec"])
    if "zphot" in df.columns:
        df["dz_b16"] = delta_z(df["zphot"], df["z_spec"])
    return df


# --- sky ------------------------------------------------------------------------

def cell_means(ra, dec, values, nside):
    """Mean of ``values`` in HEALPix cells (nested): per-galaxy cell mean, and the table of cells."""
    from astropy import units as u
    from astropy_healpix import HEALPix

    hp = HEALPix(nside=nside, order="nested")
    cell = hp.lonlat_to_healpix(np.asarray(ra) * u.deg, np.asarray(dec) * u.deg)
    df = pd.DataFrame({"cell": cell, "v": np.asarray(values, dtype=float)})
    table = df.groupby("cell")["v"].agg(["mean", "size"])
    return table.loc[cell, "mean"].to_numpy(), table


@dataclass
class MapStyle:
    """How a map of per-cell means is drawn: the colour bar's label, the colour map and its limits
    (``None``: the data's range), the HEALPix ``nside`` of the cells, the cells drawn with a black
    edge (zoomed panels only), and the cells of a whole-sky view (default ``nside``)."""

    label: str
    nside: int
    cmap: str = "viridis"
    vmin: float = None
    vmax: float = None
    outline: tuple = ()
    full_sky_nside: int = None


def sky_panel(fig, spec, ra, dec, values, style):
    """Mollweide panel: each galaxy coloured by the mean of ``values`` in its HEALPix cell (``style.full_sky_nside``
    or ``style.nside``)."""
    ax = fig.add_subplot(spec, projection="mollweide")
    mean, _ = cell_means(ra, dec, values, style.full_sky_nside or style.nside)
    lon = -np.radians(((np.asarray(ra) + 180.0) % 360.0) - 180.0)  # RA increasing to the left
    sc = ax.scatter(lon, np.radians(dec), c=mean, s=3, cmap=style.cmap, vmin=style.vmin, vmax=style.vmax,
                    rasterized=True, linewidths=0)
    ax.set_xticks(np.radians([-120, -60, 0, 60, 120]))
    ax.set_xticklabels(["120°", "60°", "0°", "300°", "240°"], fontsize=6)
    ax.grid(True, lw=0.3, alpha=0.5)
    ax.set_xlabel("RA")
    ax.set_ylabel("Dec")
    cb = fig.colorbar(sc, ax=ax, orientation="horizontal", shrink=0.6, pad=0.08)
    cb.set_label(style.label)
    return ax


# --- images ---------------------------------------------------------------------

def lupton_rgb(cube, stretch=None, Q=8.0):
    """RGB composite (i, r, g -> R, G, B) of a (5, H, W) nanomaggy cube, asinh scaled."""
    from astropy.visualization import make_lupton_rgb

    cube = np.nan_to_num(np.asarray(cube, dtype=float))
    i, r, g = cube[3], cube[2], cube[1]
    if stretch is None:
        peak = np.percentile(np.stack([i, r, g]), 99.5)
        stretch = max(peak / 3.0, 1e-3)
    return make_lupton_rgb(i, r, g, stretch=stretch, Q=Q, minimum=0.0)


def band_image(img):
    """A single band scaled for display: asinh of the image over a robust noise level."""
    img = np.nan_to_num(np.asarray(img, dtype=float))
    noise = 1.4826 * np.median(np.abs(img - np.median(img))) + 1e-6
    return np.arcsinh((img - np.median(img)) / (3 * noise))


def load_cutouts(catalog, manifest, ids):
    """Cutouts (len(ids), 5, 64, 64) of galaxies ``ids`` from the memory-mapped shards beside ``manifest``."""
    shards_dir = Path(manifest).parent
    cat = catalog.set_index("specObjID")
    missing = [i for i in ids if i not in cat.index]
    if missing:
        raise FigureInputError(f"specObjID {missing[:3]} not in the shards catalog")
    out = []
    cache = {}
    for sid in ids:
        k, row = int(cat.at[sid, "shard"]), int(cat.at[sid, "row"])
        if k not in cache:
            path = Path(shards_dir) / f"shard-{k:04d}.npy"
            if not path.exists():
                raise FigureInputError(f"shard file {path} does not exist (galaxy {sid})")
            cache[k] = np.load(path, mmap_mode="r")
        out.append(np.asarray(cache[k][row], dtype=np.float32))
    return np.stack(out) if out else np.zeros((0, 5, 64, 64), np.float32)


# --- command line ---------------------------------------------------------------

def load_cfg(config_json):
    """The config: the sections given by ``--config-json`` (the schema's defaults filled in), else the
    repository's config.yaml whole."""
    from photoz.config import ROOT, fill_section, load_config

    if config_json:
        return {k: fill_section(k, v) for k, v in json.loads(config_json).items()}
    return load_config(ROOT / "config.yaml")


def run(module, argv=None):
    """Command line of figure ``module``: parse, make the figure, save it."""
    from photoz.figures import resolve_inputs

    name = module.__name__.rpartition(".")[2]
    parser = argparse.ArgumentParser(prog=f"photoz figure {name}", description=module.__doc__.split("\n")[0])
    for key, default in module.INPUTS.items():
        parser.add_argument(f"--{key.replace('_', '-')}", dest=key, default=None,
                            help=f"input (default: {default}, a role in braces naming the config's trial)")
    parser.add_argument("--config-json", default=None,
                        help="the config sections the figure reads (its CONFIG), as JSON (default: config.yaml)")
    parser.add_argument("--out", default=f"results/figures/{name}.pdf", help="output (.pdf; the .png goes beside)")
    parser.add_argument("--log", default=None, help="log file")
    args = parser.parse_args(argv)
    log = setup_logging(args.log, name=f"photoz.figures.{name}")
    cfg = load_cfg(args.config_json)
    given = {k: getattr(args, k) for k in module.INPUTS if getattr(args, k) is not None}
    rest = {k: v for k, v in module.INPUTS.items() if k not in given}
    inputs = {**resolve_inputs(rest, cfg, name), **given}
    log.info("%s from %s", name, ", ".join(f"{k}={v}" for k, v in inputs.items()))
    plt = use_style()
    fig = module.make(inputs, cfg, log)
    paths = save_figure(fig, args.out)
    plt.close(fig)
    log.info("wrote %s", ", ".join(map(str, paths)))
    return 0


def silence(name):
    """A logger that prints nothing (for calling ``make`` from Python)."""
    log = logging.getLogger(name)
    log.addHandler(logging.NullHandler())
    return log


def b16_name(cfg):
    """The B16 estimator's name in a figure: "B16" in mode sdss, "B16-like (mock)" otherwise (``photoz.latex.b16_name``)."""
    from photoz.latex import b16_name as name

    return name(cfg["mode"])
