"""SWarp against the native resampler on a random subset of a run's galaxies: ``python -m photoz swarp-check``.

A run made with ``cutouts.resampler: native`` (numpy's Lanczos-3 and median,
:mod:`photoz.cutouts.native`) is checked against SWarp on its own data: a
random subset of ``cutouts.swarp_check_galaxies`` galaxies that got a cube,
drawn from all the cutout groups given (deterministic: the subset depends only
on the master ``seed`` and on which galaxies have a cube), is remade with SWarp
by :func:`photoz.cutouts.group.make_cutouts` from the same frames (each group's
retrieval manifest, sha256-checked), with the same cutout settings, and
compared with the cube the run actually used (``results/cutouts/group-{g}.npz``).

The comparison (:func:`compare_cubes`, also used by ``benchmarks/bench_resample.py``),
per band:

* ``|native - SWarp| / sigma`` over the pixels covered in either cube (median,
  95th percentile, maximum), where ``sigma`` is the per-pixel noise of the
  cube, measured on the cube itself (:func:`background_sigma`): 1.4826 times
  the median absolute deviation of the native cube's covered pixels at least
  :data:`BACKGROUND_RADIUS` pixels from the centre, per galaxy and band. This
  is the scatter of the pixels the network sees, after resampling and the
  median of the epochs (a frame noise model would need each frame's gain and
  dark variance, and a correction for resampling and combination);
* the ratio native / SWarp of the flux within :data:`APERTURE_RADIUS` pixels
  of the centre (median and largest deviation from 1), over the galaxies whose
  SWarp aperture flux has a signal-to-noise ratio of at least
  :data:`RATIO_MIN_SNR` (white-noise estimate ``sigma * sqrt(n_pixels)``);
  fainter apertures make a ratio of noise.

A galaxy of the subset that SWarp loses (a frame damaged since, SWarp failed,
...) is counted and listed with its reason, not compared. The result is
``results/cutouts/swarp_check.json`` (docs/dataflow.md, Sect. 3), written
atomically; the paper quotes it (``photoz.wording.resampler_macros``).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np

from photoz.io import atomic_write_bytes, setup_logging
from photoz.sdss.frames import BANDS

__all__ = ["APERTURE_RADIUS", "BACKGROUND_RADIUS", "RATIO_MIN_SNR", "AGREE_SIGMA", "background_sigma",
           "aperture_flux", "compare_cubes", "subset_seed", "draw_subset", "remake_groups", "swarp_check", "main"]

log = logging.getLogger("photoz.cutouts.swarp_check")

#: Radius (pixels) of the aperture of the flux ratio: 8 pixels = 3.2 arcsec at 0.396"/pixel.
APERTURE_RADIUS = 8.0
#: Pixels at least this far (pixels) from the centre are the background of the noise estimate.
BACKGROUND_RADIUS = 24.0
#: Fewest background pixels for a noise estimate (else the galaxy-band has no sigma and is not compared).
MIN_BACKGROUND_PIXELS = 100
#: Smallest signal-to-noise ratio of SWarp's aperture flux for a galaxy to enter the flux ratio.
RATIO_MIN_SNR = 10.0
#: The two resamplers *agree* when the 95th percentile of |native - SWarp| / sigma is below this in every band.
AGREE_SIGMA = 0.1
#: Stream of the subset's random generator, beside the master seed (SeedSequence([seed, stream])).
SUBSET_STREAM = 811
MAD_TO_SIGMA = 1.482602218505602


def _radius(size):
    c = (size - 1) / 2.0  # the galaxy sits at the grid's reference pixel (photoz.cutouts.stamps.output_crpix)
    yy, xx = np.mgrid[0:size, 0:size]
    return np.hypot(xx - c, yy - c)


def background_sigma(cube, radius=BACKGROUND_RADIUS, min_pixels=MIN_BACKGROUND_PIXELS):
    """Per-pixel noise of cutouts: 1.4826 x MAD of the covered pixels at >= ``radius`` from the centre.

    Parameters
    ----------
    cube : ndarray (N, B, S, S)
        Cutouts; uncovered pixels are exactly 0 and are left out.

    Returns
    -------
    ndarray (N, B) float64, NaN where fewer than ``min_pixels`` background pixels are covered.
    """
    cube = np.asarray(cube, dtype=np.float64)
    n, nb, s, _ = cube.shape
    ring = _radius(s) >= radius
    out = np.full((n, nb), np.nan)
    for i in range(n):
        for b in range(nb):
            v = cube[i, b][ring]
            v = v[v != 0.0]
            if v.size >= min_pixels:
                out[i, b] = MAD_TO_SIGMA * np.median(np.abs(v - np.median(v)))
    return out


def aperture_flux(cube, radius=APERTURE_RADIUS):
    """Flux within ``radius`` pixels of the centre ``(N, B)``; ``radius=None`` for the whole cutout."""
    cube = np.asarray(cube, dtype=np.float64)
    if radius is None:
        return cube.sum(axis=(2, 3))
    ap = _radius(cube.shape[-1]) <= radius
    return cube[:, :, ap].sum(axis=2)


def compare_cubes(native, swarp, sigma, bands=BANDS, aperture_radius=APERTURE_RADIUS, ratio_min_snr=RATIO_MIN_SNR,
                  ratio_galaxies=None):
    """Per-band agreement of two sets of cutouts of the same galaxies, in units of the noise.

    Parameters
    ----------
    native, swarp : ndarray (N, B, S, S)
    sigma : array_like, broadcastable to (N, B)
        Per-pixel noise of each cutout (e.g. :func:`background_sigma`, or a
        noise model's value per band). Galaxy-bands with a non-finite or
        non-positive sigma are left out (counted in ``n_no_sigma``).
    aperture_radius : float or None
        Radius (pixels) of the flux ratio's aperture; ``None`` for the whole cutout.
    ratio_min_snr : float
        Galaxies enter the flux ratio when SWarp's aperture flux exceeds
        ``ratio_min_snr * sigma * sqrt(n_aperture_pixels)`` (and 0).
    ratio_galaxies : index or boolean mask (N,), optional
        Restrict the flux ratio to these galaxies (e.g. the bright sources of a benchmark).

    Returns
    -------
    dict band -> {n_galaxies, n_no_sigma, n_pixels, median_abs_diff_sigma, p95_abs_diff_sigma,
    max_abs_diff_sigma, n_flux_ratio, median_flux_ratio, max_abs_ratio_minus_1, median_sigma}
    (NaN-free: a statistic without data is ``None``).
    """
    native = np.asarray(native, dtype=np.float64)
    swarp = np.asarray(swarp, dtype=np.float64)
    if native.shape != swarp.shape or native.ndim != 4:
        raise ValueError(f"cube shapes differ or are not (N, B, S, S): {native.shape} and {swarp.shape}")
    n, nb, s, _ = native.shape
    sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (n, nb))
    ok = np.isfinite(sig) & (sig > 0)
    sel = np.zeros(n, bool)
    if ratio_galaxies is None:
        sel[:] = True
    else:
        sel[np.asarray(ratio_galaxies)] = True
    npix_ap = s * s if aperture_radius is None else int((_radius(s) <= aperture_radius).sum())
    fn, fs = aperture_flux(native, aperture_radius), aperture_flux(swarp, aperture_radius)
    out = {}
    for b, band in enumerate(bands):
        g = np.flatnonzero(ok[:, b])
        d, c = np.abs(native[g, b] - swarp[g, b]), (native[g, b] != 0) | (swarp[g, b] != 0)
        z = (d / sig[g, b][:, None, None])[c]
        bright = sel & ok[:, b] & (fs[:, b] > max(ratio_min_snr, 0.0) * np.where(ok[:, b], sig[:, b], 0.0) *
                                   np.sqrt(npix_ap)) & (fs[:, b] > 0)
        ratio = fn[bright, b] / fs[bright, b]
        out[band] = {
            "n_galaxies": int(g.size),
            "n_no_sigma": int(n - g.size),
            "n_pixels": int(z.size),
            "median_abs_diff_sigma": float(np.median(z)) if z.size else None,
            "p95_abs_diff_sigma": float(np.percentile(z, 95)) if z.size else None,
            "max_abs_diff_sigma": float(z.max()) if z.size else None,
            "n_flux_ratio": int(ratio.size),
            "median_flux_ratio": float(np.median(ratio)) if ratio.size else None,
            "max_abs_ratio_minus_1": float(np.max(np.abs(ratio - 1))) if ratio.size else None,
            "median_sigma": float(np.median(sig[g, b])) if g.size else None,
        }
    return out


def subset_seed(seed):
    """The subset's generator seed: a SeedSequence of the master ``seed`` and :data:`SUBSET_STREAM`."""
    return np.random.SeedSequence([int(seed), SUBSET_STREAM])


def draw_subset(ids, n, seed):
    """``min(n, len(ids))`` of the galaxies ``ids`` at random, sorted; the same for the same set of ids and seed.

    The draw does not depend on the order of ``ids`` (they are sorted first).
    """
    pool = np.unique(np.asarray(ids, dtype=np.int64))
    if len(pool) != len(np.asarray(ids)):
        raise ValueError("draw_subset: a specObjID appears twice among the cubes")
    k = min(int(n), pool.size)
    rng = np.random.default_rng(subset_seed(seed))
    return np.sort(pool[rng.choice(pool.size, size=k, replace=False)]) if k else pool[:0]


_GROUP_NPZ = re.compile(r"group-(\d+)\.npz$")


def _group_of_cube(path):
    m = _GROUP_NPZ.search(Path(path).name)
    if m is None:
        raise ValueError(f"{path}: not a group cube (expected a file named group-{{g}}.npz)")
    return int(m.group(1))


def _cube_ids(path):
    with np.load(path) as z:
        if "specObjID" not in z:
            raise ValueError(f"{path}: missing array 'specObjID'")
        return z["specObjID"].astype(np.int64)


def remake_groups(cubes, manifests, galaxies, galaxies_path, catalog_path, cfg, frames_path=None, workdir=None):
    """Remake the given galaxies of each group with SWarp, beside the run's native cubes of them.

    ``cubes`` and ``manifests``: ``{group: path}``; ``galaxies``: ``{group: specObjIDs}``.
    Yields, per group with galaxies to remake, ``(group, absent, res, native_cube, native_nframes)``:
    the asked-for ids that are not galaxies of the group, the :func:`make_cutouts` result of
    SWarp, and the native cubes and frame counts of ``res.specObjID`` in the same order (``None``
    when SWarp made no cube).
    """
    from .group import FrameSet, load_group_galaxies, make_cutouts, read_group

    size = int(cfg["size"])
    for g, mine in galaxies.items():
        if len(mine) == 0:
            continue
        gal = load_group_galaxies(galaxies_path, catalog_path, g, frames_path)
        gal = gal[gal["specObjID"].isin(mine)]
        absent = np.setdiff1d(mine, gal["specObjID"].to_numpy(np.int64))
        frames = FrameSet.from_manifest(manifests[g], g)
        log.info("group %d: %d galaxies remade with SWarp from the frames of %s", g, len(gal), manifests[g])
        res = make_cutouts(gal, frames, dict(cfg, resampler="swarp"), workdir=workdir, group=g)
        if len(res) == 0:
            yield g, absent, res, None, None
            continue
        nat = read_group(cubes[g])
        if nat["cube"].shape[-1] != size:
            raise ValueError(f"{cubes[g]}: cubes of {nat['cube'].shape[-1]} pixels, cutouts.size is {size}")
        pos = {int(s): k for k, s in enumerate(nat["specObjID"])}
        rows = np.array([pos[int(s)] for s in res.specObjID])
        yield g, absent, res, nat["cube"][rows], nat["nframes"][rows]
        del nat


def _pair_inputs(cubes, manifests):
    """``{group: cube path}`` and ``{group: manifest path}``; every cube's group must have a manifest."""
    from photoz.sdss.sas import read_manifest

    by_group = {}
    for path in cubes:
        g = _group_of_cube(path)
        if g in by_group:
            raise ValueError(f"{path}: a second cube of group {g} ({by_group[g]})")
        by_group[g] = Path(path)
    man_of = {int(read_manifest(path)["group"]): Path(path) for path in manifests}
    missing = sorted(set(by_group) - set(man_of))
    if missing:
        raise ValueError(f"no retrieval manifest given for the cubes of group(s) {missing}")
    return by_group, man_of


def _collect(remade, galaxies_path, n_chosen):
    """The native and SWarp cubes of the galaxies SWarp remade, their ids, the failures and
    how many galaxies differ in frame counts, from :func:`remake_groups`' yields."""
    nat_parts, sw_parts, id_parts, failures = [], [], [], []
    n_nframes_differ = 0
    t0 = time.time()
    for g, absent, res, nat_cube, nat_nframes in remade:
        for sid in absent:
            failures.append({"specObjID": int(sid), "group": g, "band": "all",
                             "reason": f"not a galaxy of group {g} in {galaxies_path}"})
        for r in res.failures.itertuples(index=False):
            failures.append({"specObjID": int(r.specObjID), "group": g, "band": str(r.band),
                             "reason": f"SWarp rerun: {r.reason}"})
        if len(res) == 0:
            continue
        nat_parts.append(nat_cube)
        sw_parts.append(res.cube)
        id_parts.append(np.asarray(res.specObjID, np.int64))
        n_nframes_differ += int((nat_nframes != res.nframes).any(axis=1).sum())
        done = sum(len(p) for p in id_parts)
        log.info("group %d done: %d/%d galaxies compared so far (%.2f galaxies/s)", g, done, n_chosen,
                 done / max(time.time() - t0, 1e-9))
    return nat_parts, sw_parts, id_parts, failures, n_nframes_differ


def _per_band(nat_parts, sw_parts, size):
    """:func:`compare_cubes` of the native against the SWarp cubes (empty statistics when none)."""
    bands = list(BANDS)
    if not nat_parts:
        empty = np.zeros((0, len(bands), size, size))
        return compare_cubes(empty, empty, np.zeros((0, len(bands))), bands)
    native = np.concatenate(nat_parts)
    return compare_cubes(native, np.concatenate(sw_parts), background_sigma(native), bands)


def _worst(per_band, key):
    vals = [v[key] for v in per_band.values() if v[key] is not None]
    return max(vals) if vals else None


def _agreement(per_band):
    """The worst band's statistics and the verdict (``agree``: p95 under ``AGREE_SIGMA``)."""
    ratios = [v["median_flux_ratio"] for v in per_band.values() if v["median_flux_ratio"] is not None]
    p95 = _worst(per_band, "p95_abs_diff_sigma")
    return {
        "bands": per_band,
        "worst_median_abs_diff_sigma": _worst(per_band, "median_abs_diff_sigma"),
        "worst_p95_abs_diff_sigma": p95,
        "worst_abs_flux_ratio_minus_1": max(abs(r - 1) for r in ratios) if ratios else None,
        "agree": (p95 is not None and p95 < AGREE_SIGMA),
    }


def swarp_check(cubes, manifests, galaxies_path, catalog_path, cfg, seed, frames_path=None, workdir=None):
    """Remake a random subset of the run's cutouts with SWarp and compare them with the native cubes.

    Parameters
    ----------
    cubes : list of paths
        The groups' cubes ``group-{g}.npz`` (the group from the name).
    manifests : list of paths
        The groups' retrieval manifests (``MANIFEST.json``; the group from its content), one per cube.
    cfg : dict
        The ``cutouts`` config section (resampling settings, ``swarp_check_galaxies``: how many galaxies
        to check, ``swarp_binary``, ``threads``).
    seed : int
        The master seed.
    workdir : path, optional
        Where SWarp's stamps are written.

    Returns
    -------
    dict, the content of ``swarp_check.json``.
    """
    from .swarp import check_swarp

    n = int(cfg["swarp_check_galaxies"])
    cfg = dict(cfg, swarp_binary=check_swarp(cfg["swarp_binary"]))  # checked once, before any galaxy
    by_group, man_of = _pair_inputs(cubes, manifests)
    ids = {g: _cube_ids(p) for g, p in sorted(by_group.items())}
    pool = np.concatenate([v for v in ids.values()]) if ids else np.zeros(0, np.int64)
    chosen = draw_subset(pool, n, seed)
    log.info("%d galaxies with a cube in %d groups; %d drawn for the SWarp check (seed %d, stream %d)",
             pool.size, len(ids), chosen.size, seed, SUBSET_STREAM)
    groups = {g: np.intersect1d(gids, chosen) for g, gids in ids.items()}
    remade = remake_groups(by_group, man_of, groups, galaxies_path, catalog_path, cfg, frames_path, workdir)
    nat_parts, sw_parts, id_parts, failures, n_nframes_differ = _collect(remade, galaxies_path, chosen.size)
    return {
        "n_requested": n,
        "n_pool": int(pool.size),
        "n_drawn": int(chosen.size),
        "n_compared": int(sum(len(p) for p in id_parts)),
        "n_failed": len({f["specObjID"] for f in failures}),
        "n_nframes_differ": n_nframes_differ,
        "seed": int(seed),
        "seed_stream": SUBSET_STREAM,
        "groups": sorted(ids),
        "groups_drawn_from": sorted(g for g, gids in groups.items() if gids.size),
        "specObjID": [int(s) for s in chosen],
        "failures": sorted(failures, key=lambda f: (f["specObjID"], f["band"], f["reason"])),
        "noise": (f"per galaxy and band: {MAD_TO_SIGMA:.4f} x MAD of the native cube's covered pixels at "
                  f">= {BACKGROUND_RADIUS:g} pixels from the centre"),
        "background_radius_pix": BACKGROUND_RADIUS,
        "aperture_radius_pix": APERTURE_RADIUS,
        "ratio_min_snr": RATIO_MIN_SNR,
        "agree_sigma": AGREE_SIGMA,
        **_agreement(_per_band(nat_parts, sw_parts, int(cfg["size"]))),
        "settings": {k: cfg[k] for k in ("size", "pixel_scale", "partial_coverage", "min_coverage", "bad_frame")},
    }


def _g(x, digits=3):
    return "none" if x is None else f"{x:.{digits}g}"


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # unwinds, so the stamp folder is removed


def main(argv=None):
    p = argparse.ArgumentParser(prog="photoz swarp-check", description=__doc__.splitlines()[0])
    p.add_argument("--cubes", nargs="+", required=True, help="results/cutouts/group-{g}.npz (one or more groups)")
    p.add_argument("--manifests", nargs="+", required=True, help="results/frames/group-{g}/MANIFEST.json, one per cube")
    p.add_argument("--galaxies", required=True, help="results/frames/galaxies.parquet")
    p.add_argument("--catalog", required=True, help="results/catalog.parquet")
    p.add_argument("--frames", default=None, help="results/frames/frames.parquet")
    p.add_argument("--config-json", required=True, help='{"seed": master seed, "cutouts": the cutouts section}')
    p.add_argument("--out", required=True, help="results/cutouts/swarp_check.json")
    p.add_argument("--log", default=None)
    a = p.parse_args(argv)
    setup_logging(a.log, name="photoz")
    cfg = json.loads(a.config_json)
    for key in ("seed", "cutouts"):
        if key not in cfg:
            print(f"photoz swarp-check: --config-json lacks {key!r}", file=sys.stderr)
            return 2
    from .swarp import SwarpError

    work = Path(a.out).with_name(f".{Path(a.out).stem}.stamps")
    shutil.rmtree(work, ignore_errors=True)  # left by a killed run
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        work.mkdir(parents=True)
        result = swarp_check(a.cubes, a.manifests, a.galaxies, a.catalog, cfg["cutouts"], cfg["seed"],
                             frames_path=a.frames, workdir=work)
    except (SwarpError, ValueError, KeyError) as err:
        log.error("%s", err)
        print(f"photoz swarp-check: {err}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)
    atomic_write_bytes(a.out, (json.dumps(result, indent=1, sort_keys=True) + "\n").encode())
    for band, v in result["bands"].items():
        log.info("%s: %d galaxies, |native-SWarp|/sigma median %s, p95 %s; median flux ratio %s (%d galaxies)",
                 band, v["n_galaxies"], _g(v["median_abs_diff_sigma"]), _g(v["p95_abs_diff_sigma"]),
                 _g(v["median_flux_ratio"], 8), v["n_flux_ratio"])
    log.info("%d compared, %d failed; written %s", result["n_compared"], result["n_failed"], a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
