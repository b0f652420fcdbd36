"""Training dataset shards: ``python -m photoz shards``.

Gathers the groups' cutouts into ``results/shards/``:

* ``shard-{k:04d}.npy``: ``(N, 5, 64, 64)`` float32, memory-mappable;
* ``catalog.parquet``: the catalog rows in shard order plus ``shard, row,
  n_epochs, stripe82, nframes_{b}, coverage_{b}`` and the split columns
  (:mod:`photoz.dataset.splits`);
* ``manifest.json``: counts, shapes and the sha256 of every file, checked by
  :func:`verify_manifest` before training.

Galaxies are ordered by ``specObjID``, so the shards do not depend on the
order or timing of the cutout jobs, and every file is byte-identical across
reruns. ``results/cutouts/failures.csv`` gathers all groups' failures and
``results/cutouts/losses.json`` adds up the groups' losses per stage and
reason (:mod:`photoz.cutouts.losses`). When the lost fraction exceeds
``cutouts.max_lost_fraction`` nothing is written and the command fails,
saying how many galaxies were lost and why.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from photoz.io import atomic_path, atomic_write_bytes, setup_logging

from .splits import make_splits

__all__ = ["ManifestError", "LossFiles", "build_shards", "verify_manifest", "open_shards", "sha256_file", "main"]

log = logging.getLogger("photoz.shards")
BANDS = ("u", "g", "r", "i", "z")
MANIFEST_VERSION = 1


class ManifestError(RuntimeError):
    """The shards do not match their manifest (missing, truncated or altered)."""


def sha256_file(path, block=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


def _gather(cutout_files):
    from photoz.cutouts.group import read_group

    parts = [read_group(p) for p in sorted(map(str, cutout_files))]
    if not parts:
        raise ValueError("no cutout files given")
    ids = np.concatenate([p["specObjID"] for p in parts]).astype(np.int64)
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"specObjID {uniq[counts > 1][0]} appears in more than one cutout file")
    order = np.argsort(ids, kind="stable")
    return parts, ids, order


@dataclass
class LossFiles:
    """The cutout jobs' failure lists and loss counts, and where their combinations go."""

    failure_files: tuple = ()   # results/cutouts/group-{g}-failures.csv
    failures_out: object = None  # results/cutouts/failures.csv
    losses_files: tuple = ()    # results/cutouts/group-{g}-losses.json
    losses_out: object = None   # results/cutouts/losses.json


def _sorted_cubes(cutout_files):
    """The cutout files' contents and, in specObjID order, the ids, frame counts, coverage and
    where each galaxy's cube lives (file index, row)."""
    parts, ids, order = _gather(cutout_files)
    nframes = np.concatenate([p["nframes"] for p in parts])[order]
    coverage = np.concatenate([p["coverage"] for p in parts])[order]
    src_part = np.concatenate([np.full(len(p["specObjID"]), k) for k, p in enumerate(parts)])[order]
    src_row = np.concatenate([np.arange(len(p["specObjID"])) for p in parts])[order]
    return parts, ids[order], nframes, coverage, (src_part, src_row)


def _catalog_rows(ids_sorted, catalog_path, galaxies_path):
    """The catalog rows of ``ids_sorted`` (in that order) with ``n_epochs`` and ``stripe82`` of the frame index."""
    cat = pd.read_parquet(catalog_path)
    if cat["specObjID"].duplicated().any():
        raise ValueError(f"{catalog_path}: duplicated specObjID")
    gal = pd.read_parquet(galaxies_path, columns=["specObjID", "n_epochs", "stripe82"])
    rows = pd.DataFrame({"specObjID": ids_sorted})
    drop = [c for c in ("n_epochs", "stripe82", "shard", "row") if c in cat.columns]
    rows = rows.merge(cat.drop(columns=drop), on="specObjID", how="left", indicator=True)
    missing = rows.loc[rows["_merge"] != "both", "specObjID"]
    if len(missing):
        raise ValueError(f"{catalog_path}: {len(missing)} cutout galaxies not in the catalog, e.g. specObjID {missing.iloc[0]}")
    rows = rows.drop(columns="_merge").merge(gal, on="specObjID", how="left")
    if rows["n_epochs"].isna().any():
        bad = rows.loc[rows["n_epochs"].isna(), "specObjID"].iloc[0]
        raise ValueError(f"{galaxies_path}: specObjID {bad} has cutouts but no row")
    rows["n_epochs"] = rows["n_epochs"].astype(np.int32)
    rows["stripe82"] = rows["stripe82"].astype(bool)
    return rows


def _write_shards(parts, where, n, size, shard_size, out_dir):
    """Write ``shard-{k:04d}.npy`` (the cubes in catalog order), remove stale ones; the manifest's shard entries."""
    src_part, src_row = where
    n_shards = (n + shard_size - 1) // shard_size
    shards = []
    for k in range(n_shards):
        lo, hi = k * shard_size, min((k + 1) * shard_size, n)
        arr = np.empty((hi - lo, len(BANDS), size, size), dtype=np.float32)
        for j, (pi, ri) in enumerate(zip(src_part[lo:hi], src_row[lo:hi])):
            arr[j] = parts[pi]["cube"][ri]
        name = f"shard-{k:04d}.npy"
        with atomic_path(out_dir / name) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
        shards.append({"file": name, "rows": int(hi - lo), "first": int(lo),
                       "shape": list(arr.shape), "sha256": sha256_file(out_dir / name)})
        log.info("shard %d/%d: %d galaxies", k + 1, n_shards, hi - lo)
    # shards left over from an earlier, larger run would be mistaken for data
    for stale in sorted(out_dir.glob("shard-*.npy")):
        if stale.name not in {s["file"] for s in shards}:
            log.info("removing stale %s", stale)
            stale.unlink()
    return shards


def _failures(failure_files, failures_out):
    """All groups' failures, sorted, written to ``failures_out`` when given."""
    fails = [pd.read_csv(p, dtype={"specObjID": np.int64, "band": str, "reason": str}) for p in sorted(map(str, failure_files))]
    fails = pd.concat(fails, ignore_index=True) if fails else pd.DataFrame(columns=["specObjID", "band", "reason"])
    fails = fails.sort_values(["specObjID", "band", "reason"], kind="stable").reset_index(drop=True)
    if failures_out is not None:
        with atomic_path(failures_out) as tmp:
            fails.to_csv(tmp, index=False)
    return fails


def build_shards(cutout_files, catalog_path, galaxies_path, out_dir, dataset, seed, max_lost_fraction, files=None):
    """Write the shards, their catalog and manifest; return the manifest (a dict).

    ``dataset`` is the validated ``dataset`` config section (``shard_size``, ``n_folds``,
    ``validation_fraction``, ``selections``). ``files.losses_files`` (the groups'
    ``group-{g}-losses.json``) are added up into ``files.losses_out``;
    :class:`~photoz.cutouts.losses.LossCeilingError` is raised before anything is written
    when more than ``max_lost_fraction`` (``cutouts.max_lost_fraction``) of the galaxies were lost.
    """
    from photoz.cutouts.losses import check_ceiling, combine, read_losses

    files = files or LossFiles()
    losses = combine([read_losses(p) for p in sorted(map(str, files.losses_files))], max_lost_fraction)
    if files.losses_files:
        check_ceiling(losses)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts, ids_sorted, nframes, coverage, where = _sorted_cubes(cutout_files)
    n, size, shard_size = ids_sorted.size, parts[0]["cube"].shape[-1], dataset["shard_size"]
    log.info("%d galaxies from %d cutout files", n, len(parts))
    rows = _catalog_rows(ids_sorted, catalog_path, galaxies_path)
    rows.insert(1, "shard", (np.arange(n) // shard_size).astype(np.int32))
    rows.insert(2, "row", (np.arange(n) % shard_size).astype(np.int32))
    for b, band in enumerate(BANDS):
        rows[f"nframes_{band}"] = nframes[:, b].astype(np.int16)
    for b, band in enumerate(BANDS):
        rows[f"coverage_{band}"] = coverage[:, b].astype(np.float32)
    rows = pd.concat([rows, make_splits(ids_sorted, rows["stripe82"].to_numpy(), seed, dataset)], axis=1)
    shards = _write_shards(parts, where, n, size, shard_size, out_dir)
    with atomic_path(out_dir / "catalog.parquet") as tmp:
        rows.to_parquet(tmp, index=False)
    fails = _failures(files.failure_files, files.failures_out)
    manifest = {
        "version": MANIFEST_VERSION,
        "n_galaxies": int(n),
        "n_shards": len(shards),
        "shard_size": int(shard_size),
        "shape": [len(BANDS), int(size), int(size)],
        "dtype": "float32",
        "bands": list(BANDS),
        "units": "nanomaggies",
        "seed": int(seed),
        "n_folds": int(dataset["n_folds"]),
        "validation_fraction": float(dataset["validation_fraction"]),
        "selections": sorted(dataset["selections"].keys()),
        "n_failed_galaxies": int(fails["specObjID"].nunique()),
        "n_stripe82": int(rows["stripe82"].sum()),
        "shards": shards,
        "catalog": {"file": "catalog.parquet", "rows": int(n), "sha256": sha256_file(out_dir / "catalog.parquet")},
    }
    if files.losses_out is not None:
        atomic_write_bytes(files.losses_out, (json.dumps(losses, indent=1, sort_keys=True) + "\n").encode())
    atomic_write_bytes(out_dir / "manifest.json", (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    return manifest


def verify_manifest(shard_dir, checksums=True):
    """Check the shards of ``shard_dir`` against ``manifest.json``.

    Parameters
    ----------
    shard_dir : path
        ``results/shards`` (or the manifest's path).
    checksums : bool
        Also recompute every sha256 (slower); otherwise sizes and shapes only.

    Returns
    -------
    dict, the manifest.

    Raises
    ------
    ManifestError naming the offending file.
    """
    shard_dir = Path(shard_dir)
    mpath = shard_dir if shard_dir.name == "manifest.json" else shard_dir / "manifest.json"
    shard_dir = mpath.parent
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError) as err:
        raise ManifestError(f"{mpath}: unreadable manifest ({err})") from err
    total = 0
    for s in manifest["shards"]:
        path = shard_dir / s["file"]
        if not path.exists():
            raise ManifestError(f"{path}: shard listed in {mpath} is missing")
        try:
            arr = np.load(path, mmap_mode="r")
        except Exception as err:
            raise ManifestError(f"{path}: unreadable shard ({type(err).__name__}: {err})") from err
        if list(arr.shape) != s["shape"] or arr.dtype != np.float32:
            raise ManifestError(f"{path}: shape {arr.shape} {arr.dtype}, manifest says {s['shape']} float32")
        if checksums and sha256_file(path) != s["sha256"]:
            raise ManifestError(f"{path}: sha256 differs from {mpath}")
        total += arr.shape[0]
    if total != manifest["n_galaxies"]:
        raise ManifestError(f"{mpath}: shards hold {total} galaxies, manifest says {manifest['n_galaxies']}")
    cpath = shard_dir / manifest["catalog"]["file"]
    if not cpath.exists():
        raise ManifestError(f"{cpath}: shard catalog is missing")
    if checksums and sha256_file(cpath) != manifest["catalog"]["sha256"]:
        raise ManifestError(f"{cpath}: sha256 differs from {mpath}")
    return manifest


def open_shards(shard_dir, verify=True):
    """Memory-mapped shard arrays (list, in shard order) after verifying the manifest."""
    shard_dir = Path(shard_dir)
    manifest = verify_manifest(shard_dir, checksums=verify)
    return [np.load(shard_dir / s["file"], mmap_mode="r") for s in manifest["shards"]]


def main(argv=None):
    p = argparse.ArgumentParser(prog="photoz shards", description=__doc__.splitlines()[0])
    p.add_argument("--cutouts", nargs="+", required=True, help="results/cutouts/group-*.npz")
    p.add_argument("--failures", nargs="*", default=[], help="results/cutouts/group-*-failures.csv")
    p.add_argument("--catalog", required=True)
    p.add_argument("--galaxies", required=True)
    p.add_argument("--config-json", required=True,
                   help='{"seed": ..., "dataset": {...}, "max_lost_fraction": ...}')
    p.add_argument("--out-dir", required=True)
    p.add_argument("--failures-out", required=True)
    p.add_argument("--losses", nargs="*", default=[], help="results/cutouts/group-*-losses.json")
    p.add_argument("--losses-out", default=None, help="results/cutouts/losses.json")
    p.add_argument("--log", default=None)
    a = p.parse_args(argv)
    setup_logging(a.log, name="photoz")
    cfg = json.loads(a.config_json)
    from photoz.cutouts.losses import LossCeilingError

    try:
        m = build_shards(a.cutouts, a.catalog, a.galaxies, a.out_dir, cfg["dataset"], cfg["seed"],
                         cfg["max_lost_fraction"], LossFiles(a.failures, a.failures_out, a.losses, a.losses_out))
    except LossCeilingError as err:
        log.error("%s", err)
        return 1
    log.info("%d galaxies in %d shards (%s); %d galaxies lost, listed in %s", m["n_galaxies"], m["n_shards"],
             a.out_dir, m["n_failed_galaxies"], a.failures_out)
    return 0
