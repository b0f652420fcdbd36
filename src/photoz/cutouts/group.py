"""Cutouts of one group of sky tiles: ``python -m photoz cutouts``.

For every galaxy of the group and every band, all the overlapping frames
(all epochs, listed in ``galaxies.parquet``) are resampled onto a 64x64 TAN
grid centred on the galaxy and median-combined, with SWarp (default) or the
native resampler. Each frame is read once per chunk of galaxies; SWarp only
sees small stamps cut from it, written in a work folder beside the output
(``.group-{g}.stamps/``, cleared at the start of every run, so a killed job
leaves nothing in the system's temporary folder).

The frames are those of the group's retrieval manifest (``MANIFEST.json``):
each is checked against the manifest's sha256 before it is read, and the
frames the manifest lists as ``unavailable`` are known bad without a read.

SWarp is looked up and run once (``SWarp -v``) before any galaxy: a missing or
broken SWarp fails the job with a message naming the package, and nothing is
written.

Bad and edge cases, each recorded in the failures table
(``specObjID, band, reason``), nothing dropped silently:

* a bad frame (unavailable at retrieval, missing, sha256 differing from the
  manifest, unreadable): by ``bad_frame``, ``drop_galaxy`` (default) fails
  every galaxy that needs it (in that band), naming the file and error;
  ``skip_frame`` combines the galaxy's other frames of that band and fails it
  only when none is left. The default keeps every cube the median of all the
  epochs the frame index lists, so a galaxy's depth is what the catalogue's
  ``n_epochs`` says and does not depend on a damaged download;
* no frame covers the galaxy in a band;
* partial coverage: ``partial_coverage: drop`` drops the galaxy;
  ``zero_fill`` keeps it with zeros in uncovered pixels and its coverage
  fraction, unless the coverage of some band is below ``min_coverage``.

Every loss also carries a code (:mod:`photoz.cutouts.losses`), summed up per
group in ``group-{g}-losses.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from photoz.io import atomic_path, atomic_write_bytes, setup_logging
from photoz.sdss.frames import BANDS, FrameError, parse_frame_name, read_frame

from .losses import group_summary, primary_reason
from .native import combine_median, resample_frame
from .stamps import cut_stamp, grid_world, project, stamp_box

__all__ = ["CutoutResult", "FrameSet", "index_frame_files", "make_cutouts", "write_group", "read_group", "main"]

log = logging.getLogger("photoz.cutouts")

FAILURE_COLUMNS = ["specObjID", "band", "reason"]
BAD_FRAME_POLICIES = ("drop_galaxy", "skip_frame")


class CutoutResult:
    """Cubes of the kept galaxies and the failures of the lost ones."""

    def __init__(self, specobjid, cube, nframes, coverage, failures, losses=None):
        self.specObjID = specobjid
        self.cube = cube
        self.nframes = nframes
        self.coverage = coverage
        self.failures = failures  # DataFrame specObjID, band, reason
        self.losses = losses  # dict, photoz.cutouts.losses.group_summary

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


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class FrameSet:
    """The frames a group may read: paths, expected sha256 and the frames known to be unavailable.

    :meth:`load` returns a frame or says why it cannot be used, as a
    ``(code, reason)`` pair (codes of :mod:`photoz.cutouts.losses`); each
    frame is checked once.
    """

    def __init__(self, paths, sha256=None, unavailable=None, origin="the group's frame directory"):
        self.paths = dict(paths)
        self.sha256 = dict(sha256 or {})
        self.unavailable = dict(unavailable or {})
        self.origin = origin
        self._bad = {}

    @classmethod
    def from_dir(cls, frame_dir):
        """Every frame file under ``frame_dir`` (no checksums)."""
        return cls(index_frame_files(frame_dir))

    @classmethod
    def from_manifest(cls, manifest_path, group=None):
        """The frames a retrieval manifest lists (beside it), with their sha256 and the unavailable ones."""
        from photoz.sdss.sas import read_manifest

        manifest_path = Path(manifest_path)
        man = read_manifest(manifest_path)
        if group is not None and int(man["group"]) != int(group):
            raise ValueError(f"{manifest_path}: retrieval manifest of group {man['group']}, not of group {group}")
        paths, sha, unavailable = {}, {}, {}
        for f in man["files"]:
            parsed = parse_frame_name(f["name"])
            if parsed is None:
                raise ValueError(f"{manifest_path}: {f['name']!r} is not an SDSS frame name")
            band, run, camcol, field = parsed
            key = (band, f"{run}-{camcol}-{field}")
            paths[key] = manifest_path.parent / f["name"]
            sha[key] = f["sha256"]
        for f in man["unavailable"]:
            parsed = parse_frame_name(f["name"])
            if parsed is not None:
                band, run, camcol, field = parsed
                unavailable[(band, f"{run}-{camcol}-{field}")] = f"{f['name']}: {f.get('reason', 'unavailable')}"
        return cls(paths, sha, unavailable, origin=f"the retrieval manifest {manifest_path}")

    def check(self, band, key):
        """``None`` when the frame can be read, else ``(code, reason)``."""
        if (band, key) in self._bad:
            return self._bad[(band, key)]
        bad = None
        path = self.paths.get((band, key))
        if (band, key) in self.unavailable:
            bad = ("frame_unavailable", f"frame {band} {key} unavailable at retrieval: {self.unavailable[(band, key)]}")
        elif path is None:
            bad = ("frame_missing", f"frame {band} {key} missing from the group's frame directory")
        elif not path.exists():
            bad = ("frame_missing", f"frame {path.name} listed in {self.origin} is missing from disk")
        elif (band, key) in self.sha256 and _sha256(path) != self.sha256[(band, key)]:
            bad = ("frame_corrupt", f"frame {path.name}: sha256 differs from {self.origin} "
                                    "(changed or damaged after retrieval)")
        self._bad[(band, key)] = bad
        return bad

    def load(self, band, key):
        """``(frame, None)`` or ``(None, (code, reason))``."""
        bad = self.check(band, key)
        if bad is not None:
            return None, bad
        try:
            return read_frame(self.paths[(band, key)]), None
        except FrameError as err:
            log.warning("unreadable frame: %s", err)
            self._bad[(band, key)] = ("frame_corrupt", f"unreadable frame: {err}")
            return None, self._bad[(band, key)]


def _frame_keys(value):
    if value is None:
        return []
    if isinstance(value, str):
        return [k for k in value.replace(";", ",").split(",") if k]
    return [str(k) for k in value]


@dataclass(frozen=True)
class _Settings:
    """How the cutouts are made (one per call of :func:`make_cutouts`)."""

    bands: tuple
    size: int
    pixel_scale: float
    resampler: str
    threads: int
    swarp_binary: str
    workdir: object
    bad_frame: str


class _Output:
    """The arrays being filled, the failures and the skipped frames of one call."""

    def __init__(self, gal, bands, size):
        n, nb = len(gal), len(bands)
        self.bands = bands
        self.ids = gal["specObjID"].to_numpy(np.int64)
        self.ra = gal["ra"].to_numpy()
        self.dec = gal["dec"].to_numpy()
        self.cube = np.zeros((n, nb, size, size), dtype=np.float32)
        self.nframes = np.zeros((n, nb), dtype=np.int16)
        self.coverage = np.zeros((n, nb), dtype=np.float32)
        self.failed = np.zeros(n, dtype=bool)
        self.failures = []  # (specObjID, band, reason)
        self.codes = {}  # specObjID -> set of codes
        self.skipped = {}  # (i, band) -> [(code, reason)] of frames skipped under bad_frame: skip_frame
        self.bad_frames = {}  # "band key" -> (code, reason)

    def fail(self, i, band, code, reason):
        self.failures.append((int(self.ids[i]), band, reason))
        self.codes.setdefault(int(self.ids[i]), set()).add(code)
        self.failed[i] = True


def make_cutouts(galaxies, frame_dir, cut, swarp_binary=None, workdir=None, group=0, bands=BANDS):
    """Cutout cubes of a set of galaxies from the frames in ``frame_dir``.

    Parameters
    ----------
    galaxies : DataFrame
        ``specObjID, ra, dec, frames`` (list of ``"run-camcol-field"``).
    frame_dir : path or FrameSet
        Directory (searched recursively) holding the frames under SAS names,
        or the frames of a retrieval manifest (:meth:`FrameSet.from_manifest`).
    cut : dict
        The validated ``cutouts`` config section: ``resampler`` (swarp | native), ``size``,
        ``pixel_scale``, ``partial_coverage`` (drop | zero_fill), ``min_coverage``, ``threads``,
        ``chunk_galaxies``, ``bad_frame`` (drop_galaxy | skip_frame), ``swarp_binary``.
    swarp_binary : str, optional
        SWarp's path when already checked (default: ``cut["swarp_binary"]``, checked here).
    workdir : path, optional
        Where SWarp's stamps are written (default: the system's temporary folder).

    Returns
    -------
    CutoutResult, galaxies sorted by specObjID.

    Raises
    ------
    SwarpError before any galaxy when ``resampler`` is swarp and SWarp is missing or broken.
    """
    _check_settings(cut, galaxies)
    resampler = cut["resampler"]
    if resampler == "swarp":
        from .swarp import check_swarp

        swarp_binary = check_swarp(swarp_binary or cut["swarp_binary"])  # once, before any galaxy
    gal = galaxies.sort_values("specObjID", kind="stable").reset_index(drop=True)
    if gal["specObjID"].duplicated().any():
        dup = gal.loc[gal["specObjID"].duplicated(), "specObjID"].iloc[0]
        raise ValueError(f"specObjID {dup} appears twice in the galaxy table")
    frames = frame_dir if isinstance(frame_dir, FrameSet) else FrameSet.from_dir(frame_dir)
    settings = _Settings(tuple(bands), cut["size"], cut["pixel_scale"], resampler, cut["threads"], swarp_binary, workdir,
                         cut["bad_frame"])
    out = _Output(gal, bands, cut["size"])
    keys = [_frame_keys(v) for v in gal["frames"]]
    order, chunks = _chunks(gal, keys, out, cut["chunk_galaxies"])
    t0 = time.time()
    done = 0
    for ci, chunk in enumerate(chunks):
        _process_chunk(chunk, keys, frames, settings, out)
        done += len(chunk)
        rate = done / max(time.time() - t0, 1e-9)
        log.info("chunk %d/%d: %d/%d galaxies (%.1f galaxies/s, %s)", ci + 1, len(chunks), done,
                 len(order), rate, resampler)
    _apply_coverage_policy(out, cut["partial_coverage"], cut["min_coverage"])
    return _result(out, group)


def _check_settings(cut, galaxies):
    """The cutout settings' values and the galaxy table's columns, checked before any work."""
    resampler, partial_coverage, bad_frame = cut["resampler"], cut["partial_coverage"], cut["bad_frame"]
    if resampler not in ("swarp", "native"):
        raise ValueError(f"cutouts.resampler = {resampler!r}; allowed: 'swarp', 'native'")
    if partial_coverage not in ("drop", "zero_fill"):
        raise ValueError(f"cutouts.partial_coverage = {partial_coverage!r}; allowed: 'drop', 'zero_fill'")
    if bad_frame not in BAD_FRAME_POLICIES:
        raise ValueError(f"cutouts.bad_frame = {bad_frame!r}; allowed: {', '.join(map(repr, BAD_FRAME_POLICIES))}")
    for col in ("specObjID", "ra", "dec", "frames"):
        if col not in galaxies.columns:
            raise KeyError(f"galaxy table lacks column {col!r}")


def _chunks(gal, keys, out, chunk_galaxies):
    """Fail the galaxies without a position or a frame; the others in spatial chunks of ``chunk_galaxies``
    (memory stays bounded and each frame is read once per chunk). Returns (the order, the chunks)."""
    for i in range(len(gal)):
        if not np.isfinite(out.ra[i]) or not np.isfinite(out.dec[i]):
            out.fail(i, "all", "no_position", "no valid ra/dec in the catalog")
        elif not keys[i]:
            out.fail(i, "all", "no_frame", "no overlapping frame in the frame index")
    order = np.lexsort((gal["dec"].to_numpy(), gal["ra"].to_numpy()))
    order = [i for i in order if not out.failed[i]]
    step = max(1, chunk_galaxies)
    return order, [order[s:s + step] for s in range(0, len(order), step)]


def _apply_coverage_policy(out, partial_coverage, min_coverage):
    for i in range(len(out.ids)):
        if out.failed[i]:
            continue
        worst = int(np.argmin(out.coverage[i]))
        cmin = float(out.coverage[i, worst])
        if cmin < 1.0 and partial_coverage == "drop":
            out.fail(i, out.bands[worst], "partial_coverage", f"partial coverage {cmin:.4f} (policy drop)")
        elif cmin < min_coverage:
            out.fail(i, out.bands[worst], "low_coverage", f"coverage {cmin:.4f} below min_coverage {min_coverage}")


def _result(out, group):
    keep = ~out.failed
    fails = pd.DataFrame(out.failures, columns=FAILURE_COLUMNS)
    fails = fails.drop_duplicates().sort_values(["specObjID", "band", "reason"], kind="stable").reset_index(drop=True)
    fails["specObjID"] = fails["specObjID"].astype(np.int64)
    degraded = {i for (i, _b) in out.skipped if keep[i]}
    bad = [{"frame": k, "code": c, "reason": r} for k, (c, r) in out.bad_frames.items()]
    losses = group_summary(group, len(out.ids), int(keep.sum()), out.codes, bad, len(degraded))
    return CutoutResult(out.ids[keep], out.cube[keep], out.nframes[keep], out.coverage[keep], fails, losses)


def _frames_needed(chunk, keys, bands):
    """``(band, key) -> [galaxy index]`` of a chunk."""
    need = {}
    for i in chunk:
        for key in keys[i]:
            for band in bands:
                need.setdefault((band, key), []).append(i)
    return need


def _process_chunk(chunk, keys, frames, settings, out):
    """Resample and combine one chunk of galaxies (fills ``out`` in place)."""
    need = _frames_needed(chunk, keys, settings.bands)
    contrib = {}  # (i, b) -> [(values, covered)] (native) or [stamp path] (swarp)
    covers = {}  # (i, b) -> [covered] (swarp)
    tmp = Path(tempfile.mkdtemp(prefix="stamps-", dir=settings.workdir)) if settings.resampler == "swarp" else None
    try:
        for (band, key) in sorted(need):
            gals = [i for i in need[(band, key)] if not out.failed[i]]
            if not gals:
                continue
            frame = _usable_frame(frames, band, key, gals, settings, out)
            if frame is None:
                continue
            b = settings.bands.index(band)
            if settings.resampler == "native":
                _native_contributions(frame, gals, b, settings, out, contrib)
            else:
                _swarp_stamps(frame, gals, key, b, settings, out, tmp, (contrib, covers))
            del frame
        if settings.resampler == "native":
            _combine_native(contrib, out)
        else:
            _combine_swarp(contrib, covers, settings, out, tmp)
        _fail_uncovered_bands(chunk, out)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _usable_frame(frames, band, key, gals, settings, out):
    """The frame, or ``None`` after failing (or, under skip_frame, noting) the galaxies that need it."""
    frame, bad = frames.load(band, key)
    if bad is None:
        return frame
    code, reason = bad
    out.bad_frames[f"{band} {key}"] = bad
    for i in gals:
        if settings.bad_frame == "skip_frame":
            out.skipped.setdefault((i, band), []).append(bad)
        else:
            out.fail(i, band, code, reason)
    return None


def _native_contributions(frame, gals, b, settings, out, contrib):
    vals, cov = resample_frame(frame.image, frame.wcs, out.ra[gals], out.dec[gals], settings.size,
                               settings.pixel_scale)
    for k, i in enumerate(gals):
        if cov[k].any():
            contrib.setdefault((i, b), []).append((vals[k], cov[k]))


def _swarp_stamps(frame, gals, key, b, settings, out, tmp, acc):
    """Cut the stamps of ``gals`` from ``frame`` (band index ``b``) into ``tmp`` for SWarp; ``acc`` is the
    chunk's ``(contrib, covers)``: each (galaxy, band)'s stamp files and pixel coverage, filled here."""
    contrib, covers = acc
    band = settings.bands[b]
    R, D = grid_world(out.ra[gals], out.dec[gals], settings.size, settings.pixel_scale)
    x, y = project(frame.wcs, R, D)
    nrow, ncol = frame.shape
    cov = (x >= -0.5) & (x <= ncol - 0.5) & (y >= -0.5) & (y <= nrow - 0.5)
    for k, i in enumerate(gals):
        box = stamp_box(x[k], y[k], frame.shape)
        if box is None:
            continue
        data, hdr = cut_stamp(frame.image, frame.header, box)
        spath = tmp / f"{int(out.ids[i])}-{band}-{key}.fits"
        _write_stamp(spath, data, hdr)
        contrib.setdefault((i, b), []).append(spath)
        covers.setdefault((i, b), []).append(cov[k])


def _combine_native(contrib, out):
    for (i, b), items in contrib.items():
        if out.failed[i]:
            continue
        img, anyc = combine_median([v for v, _ in items], [c for _, c in items])
        out.cube[i, b] = img
        out.nframes[i, b] = len(items)
        out.coverage[i, b] = anyc.mean()


def _combine_swarp(contrib, covers, settings, out, tmp):
    from .swarp import SwarpError, run_swarp_batch

    jobs, slots = [], []
    for (i, b), stamps in sorted(contrib.items()):
        if out.failed[i]:
            continue
        jobs.append((stamps, float(out.ra[i]), float(out.dec[i])))
        slots.append((i, b))
    results = run_swarp_batch(jobs, (settings.size, settings.pixel_scale), settings.swarp_binary, settings.threads,
                              workdir=tmp)
    for (i, b), res in zip(slots, results):
        if isinstance(res, SwarpError):
            out.fail(i, settings.bands[b], "swarp_failed", f"SWarp failed: {res}")
            continue
        image, _weight = res
        anyc = np.any(covers[(i, b)], axis=0)
        out.cube[i, b] = np.where(anyc, image, 0.0)
        out.nframes[i, b] = len(covers[(i, b)])
        out.coverage[i, b] = anyc.mean()


def _fail_uncovered_bands(chunk, out):
    for i in chunk:
        if out.failed[i]:
            continue
        for b, band in enumerate(out.bands):
            if out.nframes[i, b] == 0:
                skipped = out.skipped.get((i, band))
                if skipped:
                    code = primary_reason({c for c, _ in skipped})
                    out.fail(i, band, code,
                             f"no usable frame in this band (bad frames skipped: {'; '.join(r for _, r in skipped)})")
                else:
                    out.fail(i, band, "no_coverage", "no frame covers the cutout in this band")


def _write_stamp(path, data, header):
    from astropy.io import fits

    fits.PrimaryHDU(data=data, header=header).writeto(path, overwrite=True)


def write_group(result, npz_path, failures_path, losses_path=None):
    """Write a group's cubes (``.npz``), failures (``.csv``) and losses (``.json``) atomically."""
    with atomic_path(npz_path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, specObjID=np.asarray(result.specObjID, np.int64), cube=result.cube,
                     nframes=result.nframes, coverage=result.coverage)
    with atomic_path(failures_path) as tmp:
        result.failures.to_csv(tmp, index=False)
    if losses_path is not None:
        atomic_write_bytes(losses_path, (json.dumps(result.losses, indent=1, sort_keys=True) + "\n").encode())


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


def _stamp_dir(out):
    """The work folder of a group's SWarp stamps, beside its output: ``.group-{g}.stamps``."""
    out = Path(out)
    return out.with_name(f".{out.stem}.stamps")


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # unwinds, so the stamp folder is removed


def main(argv=None):
    p = argparse.ArgumentParser(prog="photoz cutouts", description=__doc__.splitlines()[0])
    p.add_argument("--group", type=int, required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", help="results/frames/group-{g}/MANIFEST.json (the frames lie beside it)")
    src.add_argument("--frame-dir", help="a directory of frames without a manifest (no checksums)")
    p.add_argument("--galaxies", required=True, help="results/frames/galaxies.parquet")
    p.add_argument("--catalog", required=True, help="results/catalog.parquet")
    p.add_argument("--frames", default=None, help="results/frames/frames.parquet")
    p.add_argument("--config-json", required=True, help="the cutouts config section as JSON")
    p.add_argument("--out", required=True)
    p.add_argument("--failures", required=True)
    p.add_argument("--losses", required=True, help="results/cutouts/group-{g}-losses.json")
    p.add_argument("--delete-frames", action="store_true",
                   help="delete the manifest's frames once the outputs are written (tiles.delete_frames_after_cutouts)")
    p.add_argument("--log", default=None)
    a = p.parse_args(argv)
    setup_logging(a.log, name="photoz")
    cfg = json.loads(a.config_json)
    resampler = cfg["resampler"]
    binary = cfg["swarp_binary"]
    if resampler == "swarp":
        from .swarp import SwarpError, check_swarp

        try:
            binary = check_swarp(binary)
        except SwarpError as err:
            log.error("group %d: %s", a.group, err)
            print(f"photoz cutouts: {err}", file=sys.stderr)
            return 1
        log.info("SWarp: %s", binary)
    frames = FrameSet.from_manifest(a.manifest, a.group) if a.manifest else FrameSet.from_dir(a.frame_dir)
    gal = load_group_galaxies(a.galaxies, a.catalog, a.group, a.frames)
    log.info("group %d: %d galaxies, resampler %s, frames from %s", a.group, len(gal), resampler, frames.origin)
    work = _stamp_dir(a.out)
    shutil.rmtree(work, ignore_errors=True)  # left by a killed run
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if resampler == "swarp":
            work.mkdir(parents=True)
        res = make_cutouts(gal, frames, cfg, swarp_binary=binary, workdir=work if resampler == "swarp" else None,
                           group=a.group)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)
    write_group(res, a.out, a.failures, a.losses)
    log.info("group %d: %d cutouts written to %s, %d galaxies lost (%s)", a.group, len(res), a.out,
             res.failures["specObjID"].nunique(), a.failures)
    if a.delete_frames and a.manifest:
        for path in sorted(set(frames.paths.values())):
            path.unlink(missing_ok=True)
        log.info("group %d: frames deleted (tiles.delete_frames_after_cutouts)", a.group)
    return 0
