"""Cutouts of one group of sky tiles: ``python -m photoz cutouts``.

For every galaxy of the group and every band, all the overlapping frames
(all epochs, listed in ``galaxies.parquet``) are resampled onto a 64x64 TAN
grid centred on the galaxy and median-combined, with SWarp (default) or the
native resampler. Each frame is read once per chunk of galaxies; SWarp only
sees small stamps cut from it.

Bad and edge cases, each recorded in the failures table
(``specObjID, band, reason``), nothing dropped silently:

* a frame file missing from the group directory or unreadable/corrupt: every
  galaxy that needs it fails (in that band), with the file and error;
* no frame covers the galaxy in a band;
* partial coverage: ``partial_coverage: drop`` drops the galaxy;
  ``zero_fill`` keeps it with zeros in uncovered pixels and its coverage
  fraction, unless the coverage of some band is below ``min_coverage``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from photoz.io import atomic_path, setup_logging
from photoz.sdss.frames import BANDS, FrameError, parse_frame_name, read_frame

from .native import combine_median, resample_frame
from .stamps import cut_stamp, grid_world, project, stamp_box

__all__ = ["CutoutResult", "index_frame_files", "make_cutouts", "write_group", "read_group", "main"]

log = logging.getLogger("photoz.cutouts")

FAILURE_COLUMNS = ["specObjID", "band", "reason"]


class CutoutResult:
    """Cubes of the kept galaxies and the failures of the lost ones."""

    def __init__(self, specobjid, cube, nframes, coverage, failures):
        self.specObjID = specobjid
        self.cube = cube
        self.nframes = nframes
        self.coverage = coverage
        self.failures = failures  # DataFrame specObjID, band, reason

    def __len__(self):
        return len(self.specObjID)


def index_frame_files(frame_dir):
    """Map ``(band, "run-camcol-field")`` to the frame file path in a directory tree."""
    out = {}
    frame_dir = Path(frame_dir)
    for path in sorted(frame_dir.rglob("frame-*.fits*")):
        parsed = parse_frame_name(path)
        if parsed is None:
            continue
        band, run, camcol, field = parsed
        out.setdefault((band, f"{run}-{camcol}-{field}"), path)
    return out


def _frame_keys(value):
    if value is None:
        return []
    if isinstance(value, str):
        return [k for k in value.replace(";", ",").split(",") if k]
    return [str(k) for k in value]


def make_cutouts(galaxies, frame_dir, size=64, pixel_scale=0.396, resampler="swarp",
                 partial_coverage="zero_fill", min_coverage=0.9, threads=1, chunk_galaxies=256,
                 swarp_binary="auto", bands=BANDS, workdir=None):
    """Cutout cubes of a set of galaxies from the frames in ``frame_dir``.

    Parameters
    ----------
    galaxies : DataFrame
        ``specObjID, ra, dec, frames`` (list of ``"run-camcol-field"``).
    frame_dir : path
        Directory (searched recursively) holding the frames under SAS names.
    resampler : {"swarp", "native"}
    partial_coverage : {"drop", "zero_fill"}

    Returns
    -------
    CutoutResult, galaxies sorted by specObjID.
    """
    if resampler not in ("swarp", "native"):
        raise ValueError(f"cutouts.resampler = {resampler!r}; allowed: 'swarp', 'native'")
    if partial_coverage not in ("drop", "zero_fill"):
        raise ValueError(f"cutouts.partial_coverage = {partial_coverage!r}; allowed: 'drop', 'zero_fill'")
    for col in ("specObjID", "ra", "dec", "frames"):
        if col not in galaxies.columns:
            raise KeyError(f"galaxy table lacks column {col!r}")
    gal = galaxies.sort_values("specObjID", kind="stable").reset_index(drop=True)
    if gal["specObjID"].duplicated().any():
        dup = gal.loc[gal["specObjID"].duplicated(), "specObjID"].iloc[0]
        raise ValueError(f"specObjID {dup} appears twice in the galaxy table")
    files = index_frame_files(frame_dir)
    nb = len(bands)
    n = len(gal)
    ids = gal["specObjID"].to_numpy(np.int64)
    cube = np.zeros((n, nb, size, size), dtype=np.float32)
    nframes = np.zeros((n, nb), dtype=np.int16)
    coverage = np.zeros((n, nb), dtype=np.float32)
    failures = []
    failed = np.zeros(n, dtype=bool)

    def fail(i, band, reason):
        failures.append((int(ids[i]), band, reason))
        failed[i] = True

    keys = [_frame_keys(v) for v in gal["frames"]]
    for i in range(n):
        if not np.isfinite(gal.at[i, "ra"]) or not np.isfinite(gal.at[i, "dec"]):
            fail(i, "all", "no valid ra/dec in the catalog")
        elif not keys[i]:
            fail(i, "all", "no overlapping frame in the frame index")

    # spatial chunks keep memory bounded and each frame read once per chunk
    order = np.lexsort((gal["dec"].to_numpy(), gal["ra"].to_numpy()))
    order = [i for i in order if not failed[i]]
    chunks = [order[s:s + chunk_galaxies] for s in range(0, len(order), max(1, chunk_galaxies))]
    t0 = time.time()
    done = 0
    for ci, chunk in enumerate(chunks):
        _process_chunk(chunk, gal, keys, files, bands, size, pixel_scale, resampler, threads,
                       swarp_binary, workdir, cube, nframes, coverage, fail, failed)
        done += len(chunk)
        rate = done / max(time.time() - t0, 1e-9)
        log.info("chunk %d/%d: %d/%d galaxies (%.1f galaxies/s, %s)", ci + 1, len(chunks), done,
                 len(order), rate, resampler)

    # coverage policy
    for i in range(n):
        if failed[i]:
            continue
        worst = int(np.argmin(coverage[i]))
        cmin = float(coverage[i, worst])
        if cmin < 1.0 and partial_coverage == "drop":
            fail(i, bands[worst], f"partial coverage {cmin:.4f} (policy drop)")
        elif cmin < min_coverage:
            fail(i, bands[worst], f"coverage {cmin:.4f} below min_coverage {min_coverage}")
    keep = ~failed
    fails = pd.DataFrame(failures, columns=FAILURE_COLUMNS)
    fails = fails.drop_duplicates().sort_values(["specObjID", "band", "reason"], kind="stable").reset_index(drop=True)
    fails["specObjID"] = fails["specObjID"].astype(np.int64)
    return CutoutResult(ids[keep], cube[keep], nframes[keep], coverage[keep], fails)


def _process_chunk(chunk, gal, keys, files, bands, size, pixel_scale, resampler, threads,
                   swarp_binary, workdir, cube, nframes, coverage, fail, failed):
    """Resample and combine one chunk of galaxies (fills the output arrays in place)."""
    need = {}  # (band, key) -> [galaxy index]
    for i in chunk:
        for key in keys[i]:
            for band in bands:
                need.setdefault((band, key), []).append(i)
    # contributions[(i, b)] -> list of (values, covered) (native) or stamp paths (swarp)
    contrib = {}
    covers = {}
    tmp = Path(tempfile.mkdtemp(prefix="stamps-", dir=workdir)) if resampler == "swarp" else None
    try:
        for (band, key) in sorted(need):
            b = bands.index(band)
            gals = [i for i in need[(band, key)] if not failed[i]]
            if not gals:
                continue
            path = files.get((band, key))
            if path is None:
                for i in gals:
                    fail(i, band, f"frame {band} {key} missing from the group's frame directory")
                continue
            try:
                frame = read_frame(path)
            except FrameError as err:
                log.warning("unreadable frame: %s", err)
                for i in gals:
                    fail(i, band, f"unreadable frame: {err}")
                continue
            ra = gal["ra"].to_numpy()[gals]
            dec = gal["dec"].to_numpy()[gals]
            if resampler == "native":
                vals, cov = resample_frame(frame.image, frame.wcs, ra, dec, size, pixel_scale)
                for k, i in enumerate(gals):
                    if cov[k].any():
                        contrib.setdefault((i, b), []).append((vals[k], cov[k]))
            else:
                R, D = grid_world(ra, dec, size, pixel_scale)
                x, y = project(frame.wcs, R, D)
                nrow, ncol = frame.shape
                cov = (x >= -0.5) & (x <= ncol - 0.5) & (y >= -0.5) & (y <= nrow - 0.5)
                for k, i in enumerate(gals):
                    box = stamp_box(x[k], y[k], frame.shape)
                    if box is None:
                        continue
                    data, hdr = cut_stamp(frame.image, frame.header, box)
                    spath = tmp / f"{ids_str(gal, i)}-{band}-{key}.fits"
                    _write_stamp(spath, data, hdr)
                    contrib.setdefault((i, b), []).append(spath)
                    covers.setdefault((i, b), []).append(cov[k])
            del frame
        if resampler == "native":
            for (i, b), items in contrib.items():
                if failed[i]:
                    continue
                img, anyc = combine_median([v for v, _ in items], [c for _, c in items])
                cube[i, b] = img
                nframes[i, b] = len(items)
                coverage[i, b] = anyc.mean()
        else:
            from .swarp import SwarpError, run_swarp_batch

            jobs, slots = [], []
            for (i, b), stamps in sorted(contrib.items()):
                if failed[i]:
                    continue
                jobs.append((stamps, float(gal.at[i, "ra"]), float(gal.at[i, "dec"])))
                slots.append((i, b))
            results = run_swarp_batch(jobs, size, pixel_scale, swarp_binary, threads, workdir=tmp)
            for (i, b), res in zip(slots, results):
                if isinstance(res, SwarpError):
                    fail(i, bands[b], f"SWarp failed: {res}")
                    continue
                image, _weight = res
                anyc = np.any(covers[(i, b)], axis=0)
                cube[i, b] = np.where(anyc, image, 0.0)
                nframes[i, b] = len(covers[(i, b)])
                coverage[i, b] = anyc.mean()
        for i in chunk:
            if failed[i]:
                continue
            for b, band in enumerate(bands):
                if nframes[i, b] == 0:
                    fail(i, band, "no frame covers the cutout in this band")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def ids_str(gal, i):
    return str(int(gal.at[i, "specObjID"]))


def _write_stamp(path, data, header):
    from astropy.io import fits

    fits.PrimaryHDU(data=data, header=header).writeto(path, overwrite=True)


def write_group(result, npz_path, failures_path):
    """Write a group's cubes (``.npz``) and failures (``.csv``) atomically."""
    with atomic_path(npz_path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, specObjID=np.asarray(result.specObjID, np.int64), cube=result.cube,
                     nframes=result.nframes, coverage=result.coverage)
    with atomic_path(failures_path) as tmp:
        result.failures.to_csv(tmp, index=False)


def read_group(npz_path):
    """Read a group's ``.npz`` and check its arrays against the contract."""
    try:
        with np.load(npz_path) as z:
            out = {k: z[k] for k in ("specObjID", "cube", "nframes", "coverage")}
    except KeyError as err:
        raise ValueError(f"{npz_path}: missing array {err}") from None
    except Exception as err:
        raise ValueError(f"{npz_path}: unreadable cutout file ({type(err).__name__}: {err})") from err
    n = len(out["specObjID"])
    if out["cube"].ndim != 4 or out["cube"].shape[0] != n or out["cube"].shape[1] != 5:
        raise ValueError(f"{npz_path}: cube has shape {out['cube'].shape}, expected ({n}, 5, S, S)")
    return out


def load_group_galaxies(galaxies_path, catalog_path, group, frames_path=None):
    """The galaxies of one group with their position and frame keys."""
    gal = pd.read_parquet(galaxies_path)
    for col in ("specObjID", "group", "frames"):
        if col not in gal.columns:
            raise KeyError(f"{galaxies_path}: missing column {col!r}")
    gal = gal[gal["group"] == int(group)][["specObjID", "frames"]]
    cat = pd.read_parquet(catalog_path, columns=["specObjID", "ra", "dec"])
    out = gal.merge(cat, on="specObjID", how="left")
    if frames_path is not None:
        idx = pd.read_parquet(frames_path, columns=["run", "camcol", "field"])
        known = set(f"{r}-{c}-{f}" for r, c, f in idx.itertuples(index=False))
        unknown = sorted({k for v in out["frames"] for k in _frame_keys(v)} - known)
        if unknown:
            log.warning("%s: %d frame keys of group %s are not in the frame index (e.g. %s)",
                        frames_path, len(unknown), group, unknown[0])
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="photoz cutouts", description=__doc__.splitlines()[0])
    p.add_argument("--group", type=int, required=True)
    p.add_argument("--frame-dir", required=True, help="results/frames/group-{g}/")
    p.add_argument("--galaxies", required=True, help="results/frames/galaxies.parquet")
    p.add_argument("--catalog", required=True, help="results/catalog.parquet")
    p.add_argument("--frames", default=None, help="results/frames/frames.parquet")
    p.add_argument("--config-json", required=True, help="the cutouts config section as JSON")
    p.add_argument("--out", required=True)
    p.add_argument("--failures", required=True)
    p.add_argument("--log", default=None)
    a = p.parse_args(argv)
    setup_logging(a.log, name="photoz")
    cfg = json.loads(a.config_json)
    gal = load_group_galaxies(a.galaxies, a.catalog, a.group, a.frames)
    log.info("group %d: %d galaxies, resampler %s, frames in %s", a.group, len(gal), cfg.get("resampler", "swarp"), a.frame_dir)
    res = make_cutouts(
        gal, a.frame_dir, size=cfg.get("size", 64), pixel_scale=cfg.get("pixel_scale", 0.396),
        resampler=cfg.get("resampler", "swarp"), partial_coverage=cfg.get("partial_coverage", "zero_fill"),
        min_coverage=cfg.get("min_coverage", 0.9), threads=cfg.get("threads", 1),
        chunk_galaxies=cfg.get("chunk_galaxies", 256), swarp_binary=cfg.get("swarp_binary", "auto"),
    )
    write_group(res, a.out, a.failures)
    log.info("group %d: %d cutouts written to %s, %d galaxies lost (%s)", a.group, len(res), a.out,
             res.failures["specObjID"].nunique(), a.failures)
    return 0
