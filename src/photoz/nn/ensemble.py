"""Ensemble PDFs of a trial: the members' PDFs averaged, and per-galaxy statistics.

For each test galaxy (all folds of the trial): the mean of the members' PDFs,
``z_phot = sum_k z_k p_k`` with ``z_k`` the bin MIDPOINTS (the published
inference script used the lower edges, a shift of -0.0011), the width of the
central 68% interval, PIT and CRPS of the ensemble PDF, and each member's PIT.

``python -m photoz ensemble --catalog results/shards/catalog.parquet
--n-bins 180 --z-min 0 --z-max 0.4 --out results/ensemble/T.parquet
results/predictions/T/fold0/seed0.npz ...``

The core (:func:`ensemble_fold`) needs numpy only; writing Parquet needs pyarrow.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

import numpy as np

from photoz import bins as zbins
from photoz import metrics

__all__ = ["ensemble_fold", "main"]

log = logging.getLogger("photoz.nn.ensemble")

_PRED_RE = re.compile(r"fold(\d+)[/\\]seed(\d+)\.npz$")


def ensemble_fold(member_pdfs, z_spec, edges):
    """Average the members' PDFs and compute the per-galaxy statistics.

    Parameters
    ----------
    member_pdfs : array (M, N, K)
    z_spec : array (N,)
    edges : array (K + 1,)

    Returns a dict of arrays: ``pdf (N, K) float32, z_phot, width68, pit, crps (N,),
    pit_members (N, M) float32``.
    """
    member_pdfs = np.asarray(member_pdfs, dtype=np.float64)
    if member_pdfs.ndim != 3:
        raise ValueError(f"member_pdfs must be (members, galaxies, bins), got {member_pdfs.shape}")
    edges = np.asarray(edges, dtype=np.float64)
    mid = zbins.centres(edges)
    if member_pdfs.shape[2] != len(mid):
        raise ValueError(f"PDFs have {member_pdfs.shape[2]} bins, the bin grid has {len(mid)}")
    member_pdfs = member_pdfs / member_pdfs.sum(axis=2, keepdims=True)
    pdf = member_pdfs.mean(axis=0)
    return {
        "pdf": pdf.astype(np.float32),
        "z_phot": metrics.z_phot(pdf, mid),
        "width68": metrics.width(pdf, edges, 0.68),
        "pit": metrics.pit(pdf, z_spec, edges),
        "crps": metrics.crps(pdf, z_spec, edges),
        "pit_members": np.stack([metrics.pit(p, z_spec, edges) for p in member_pdfs], axis=1).astype(np.float32),
    }


def _group_predictions(paths):
    """``{fold: {seed: path}}`` from paths ending in ``fold{f}/seed{s}.npz``."""
    out = {}
    for p in paths:
        m = _PRED_RE.search(str(p))
        if not m:
            raise ValueError(f"{p}: prediction files must end in fold<f>/seed<s>.npz")
        out.setdefault(int(m.group(1)), {})[int(m.group(2))] = Path(p)
    return out


def build_table(paths, catalog_z, edges):
    """The ensemble table (a dict of columns) of a trial from its prediction files.

    ``catalog_z``: mapping specObjID -> z_spec (a dict or a pandas Series).
    """
    cols = {k: [] for k in ("specObjID", "fold", "z_spec", "z_phot", "width68", "pit", "crps", "pdf", "pit_members")}
    for fold, members in sorted(_group_predictions(paths).items()):
        ids, pdfs = None, []
        for seed, p in sorted(members.items()):
            with np.load(p) as f:
                if "specObjID" not in f.files or "pdf" not in f.files:
                    raise KeyError(f"{p}: needs arrays specObjID and pdf")
                sid, pdf = f["specObjID"].astype(np.int64), f["pdf"]
            order = np.argsort(sid, kind="stable")
            sid, pdf = sid[order], pdf[order]
            if ids is None:
                ids = sid
            elif not np.array_equal(ids, sid):
                raise ValueError(f"{p}: test galaxies differ from the other members of fold {fold}")
            pdfs.append(pdf)
        try:
            z = np.array([catalog_z[i] for i in ids], dtype=np.float64)
        except KeyError as err:
            raise KeyError(f"specObjID {err.args[0]} of fold {fold} is not in the catalog") from None
        res = ensemble_fold(np.stack(pdfs), z, edges)
        log.info("fold %d: %d galaxies, %d members", fold, len(ids), len(pdfs))
        cols["specObjID"].append(ids)
        cols["fold"].append(np.full(len(ids), fold, dtype=np.int8))
        cols["z_spec"].append(z)
        for k in ("z_phot", "width68", "pit", "crps"):
            cols[k].append(res[k])
        cols["pdf"].extend(list(res["pdf"]))
        cols["pit_members"].extend(list(res["pit_members"]))
    out = {k: (np.concatenate(v) if k not in ("pdf", "pit_members") else v) for k, v in cols.items()}
    dup = np.unique(out["specObjID"], return_counts=True)
    if np.any(dup[1] > 1):
        raise ValueError(f"specObjID {dup[0][dup[1] > 1][0]} is tested in more than one fold")
    return out


def write_parquet(table, path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from photoz.io import atomic_path

    arrays = {
        "specObjID": pa.array(table["specObjID"], pa.int64()),
        "fold": pa.array(table["fold"], pa.int8()),
        "z_spec": pa.array(table["z_spec"], pa.float64()),
        "z_phot": pa.array(table["z_phot"], pa.float64()),
        "width68": pa.array(table["width68"], pa.float64()),
        "pit": pa.array(table["pit"], pa.float64()),
        "crps": pa.array(table["crps"], pa.float64()),
        "pdf": pa.array([np.asarray(p, np.float32) for p in table["pdf"]], pa.list_(pa.float32())),
        "pit_members": pa.array([np.asarray(p, np.float32) for p in table["pit_members"]], pa.list_(pa.float32())),
    }
    with atomic_path(path) as tmp:
        pq.write_table(pa.table(arrays), tmp)


def main(argv=None):
    from photoz.io import setup_logging

    ap = argparse.ArgumentParser(prog="photoz ensemble", description=__doc__.splitlines()[0])
    ap.add_argument("predictions", nargs="+", help="results/predictions/<trial>/fold<f>/seed<s>.npz files")
    ap.add_argument("--catalog", default="results/shards/catalog.parquet", help="z_spec source (column z)")
    ap.add_argument("--n-bins", type=int, required=True, help="bins.n: redshift classes of the PDFs")
    ap.add_argument("--z-min", type=float, required=True, help="bins.z_min")
    ap.add_argument("--z-max", type=float, required=True, help="bins.z_max")
    ap.add_argument("--out", required=True)
    ap.add_argument("--log")
    a = ap.parse_args(argv)
    logger = setup_logging(a.log, name="photoz")
    import pandas as pd

    edges = zbins.edges(a.n_bins, a.z_min, a.z_max)
    cat = pd.read_parquet(a.catalog, columns=["specObjID", "z"])
    z = pd.Series(cat["z"].to_numpy(), index=cat["specObjID"].to_numpy())
    table = build_table(a.predictions, z, edges)
    write_parquet(table, a.out)
    pm = metrics.point_metrics(table["z_phot"], table["z_spec"])
    logger.info("%s: %d galaxies, sigma_MAD %.5f, bias %.5f, mean CRPS %.5f", a.out, pm["n"], pm["sigma_mad"],
                pm["bias"], float(np.mean(table["crps"])))
    return 0
