#!/usr/bin/env python
"""The same trained members predicting with each of their weights files: best.pt, average.pt, checkpoint.pt.

    python benchmarks/predict_from_compare.py --run-dir RUN [--configfile config/mock-science.yaml] [--trial main]

``RUN`` is a run whose members of ``--trial`` have finished training (every member writes all three files,
whatever ``training.predict_from`` says). For each fold, the members' PDFs are averaged as the ensemble
rule averages them, and scored on the fold's test galaxies beside the run's kNN (when its
``results/knn/<trial>.parquet`` exists) and the catalogue's B16-like ``zphot`` on the same galaxies. Nothing
is trained and nothing in ``RUN`` is written.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from mock_science import machine_line  # noqa: E402
from photoz import bins as zbins  # noqa: E402
from photoz import metrics, trials  # noqa: E402
from photoz.config import load_config  # noqa: E402
from photoz.nn.files import WEIGHTS_FILES  # noqa: E402


def print_summary(table, kinds, base):
    """The fold means of ``table`` (``{column: [(sigma_MAD, eta %) per fold]}``) and each CNN column's fold-mean
    ratio to each baseline column of ``base``, +- the spread of the folds' ratios / sqrt(n)."""
    mean = {k: np.mean(v, axis=0) for k, v in table.items()}
    print(" mean       " + " ".join(f"{mean[k][0]:.5f} ({mean[k][1]:4.2f})" for k in list(kinds) + list(base)))
    for b in base:
        print(f"fold-mean CNN/{b} ratio (+- the spread of the folds' ratios / sqrt(n)): " + ", ".join(
            f"{k} {np.mean(r := np.array(table[k])[:, 0] / np.array(table[b])[:, 0]):.3f} +- "
            f"{np.std(r, ddof=1) / np.sqrt(len(r)):.3f}" for k in kinds))


def fold_pdfs(cfg, run_dir, trial, fold):
    """``({predict_from: ensemble PDFs}, specObjIDs)`` of one fold's test galaxies."""
    from photoz.nn.data import ShardStore, make_source, split_from_catalog
    from photoz.nn.predict import predict_pdfs
    from photoz.nn.train import load_member

    res = run_dir / "results"
    test = split_from_catalog(res / "shards" / "catalog.parquet", cfg["trials"][trial], fold)["test"]
    src = make_source(ShardStore(res / "shards"), test, "cpu")
    members = [res / "models" / trial / f"fold{fold}" / f"seed{s}" for s in trials.trial_seeds(cfg, trial)]
    out = {}
    for kind, name in WEIGHTS_FILES.items():
        out[kind] = np.mean([predict_pdfs(load_member(m / name)[0], src, test.ebv, cfg["training"]["eval_batch_size"])
                             for m in members], axis=0)
    return out, test.specObjID


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--configfile", default="config.yaml", help="the run's preset (relative to --run-dir)")
    ap.add_argument("--trial", default="main")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    run_dir = Path(a.run_dir).resolve()
    cfg = load_config(run_dir / a.configfile)
    res = run_dir / "results"
    cat = pd.read_parquet(res / "shards" / "catalog.parquet", columns=["specObjID", "z", "zphot"]).set_index("specObjID")
    knn_file = res / "knn" / f"{a.trial}.parquet"
    knn = (pd.read_parquet(knn_file, columns=["specObjID", "z_phot"]).set_index("specObjID")["z_phot"]
           if knn_file.exists() else None)
    mid = zbins.midpoints(cfg["bins"]["n"], cfg["bins"]["z_min"], cfg["bins"]["z_max"])
    kinds = list(WEIGHTS_FILES)
    base = ["b16"] + (["knn"] if knn is not None else [])
    print("# predict_from_compare: the same members predicting with each weights file (benchmarks/predict_from_compare.py)")
    print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; run: {run_dir} ({a.configfile}); "
          f"trial {a.trial}, {len(trials.trial_seeds(cfg, a.trial))} member(s) per fold, PDFs averaged per fold")
    print(machine_line())
    print("sigma_MAD (eta %) of the fold's test galaxies; " + ("kNN: the run's; " if knn is not None else "no kNN file; ")
          + "B16-like: the catalogue's zphot, on the same galaxies")
    print("fold     N " + " ".join(f"{k:>15}" for k in kinds + base))
    table = {k: [] for k in kinds + base}
    for fold in trials.trial_folds(cfg, a.trial):
        pdfs, ids = fold_pdfs(cfg, run_dir, a.trial, fold)
        z = cat.loc[ids, "z"].to_numpy()
        pm = {k: metrics.point_metrics(metrics.z_phot(p, mid), z) for k, p in pdfs.items()}
        pm["b16"] = metrics.point_metrics(cat.loc[ids, "zphot"].to_numpy(), z)
        if knn is not None:
            pm["knn"] = metrics.point_metrics(knn.loc[ids].to_numpy(), z)
        for k in table:
            table[k].append((pm[k]["sigma_mad"], pm[k]["eta"]))
        print(f"{fold:>4} {len(ids):>5} " + " ".join(f"{pm[k]['sigma_mad']:.5f} ({pm[k]['eta']:4.2f})" for k in kinds + base),
              flush=True)
    print_summary(table, kinds, base)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
