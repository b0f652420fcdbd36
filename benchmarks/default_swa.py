#!/usr/bin/env python
"""Which weights of a default member to predict with: the least-validation-loss epoch, the last, or averages.

    python benchmarks/default_swa.py --run-dir RUN --scratch /tmp/swa > benchmarks/default_swa.txt

(a finished member with its epochs already in the scratch folder is not trained again)

``RUN`` is a finished run of the embedded default. Each main fold's member is trained again with the
run's own shards, settings and seed (the workflow's ``photoz train``, one thread, two folds side by
side), keeping the weights of every epoch (``epochNN.pt``, which the workflow does not write). Then,
on the fold's test galaxies, beside the run's kNN and B16-like estimator on the same galaxies:

* ``best``: the least-validation-loss epoch (what the workflow predicts with: the run's CNN again);
* ``last``: the last epoch;
* ``swaK``: one network whose weights are the mean of the last K epochs' (the network has no batch
  normalisation, so the mean weights need no recalibration; predicting costs as much as one network);
* ``pdfavg5``: the PDFs of the last 5 epochs' networks averaged (5 predictions).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from mock_science import machine_line  # noqa: E402
from predict_from_compare import print_summary  # noqa: E402
from photoz import bins as zbins  # noqa: E402
from photoz import metrics  # noqa: E402
from photoz.config import load_config  # noqa: E402

WEIGHTS = ("best", "last", "swa3", "swa5", "swa10", "pdfavg5")


def train_keeping_epochs(argv):
    """``photoz train`` with every epoch's member weights also written to ``epochNN.pt`` (this script only)."""
    import torch

    from photoz.nn import train as T

    record = T._record_epoch

    def keeping(run, net, opt, st, g, row, rng, last):
        improved = record(run, net, opt, st, g, row, rng, last)
        torch.save({k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()},
                   run.out_dirs[g] / f"epoch{row['epoch']:02d}.pt")
        return improved

    T._record_epoch = keeping
    return T.main(argv)


def train_fold(cfg, run_dir, scratch, fold):
    """The fold's member directory, trained unless a finished one with its epochs is already in ``scratch``."""
    member = scratch / "main" / f"fold{fold}" / "seed0"
    if (member / "checkpoint.pt").exists() and (member / f"epoch{cfg['training']['epochs']:02d}.pt").exists():
        return member
    training = dict(cfg["training"], num_threads=1)
    net = cfg["networks"][cfg["trials"]["main"].get("network", training["network"])]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--train-one", "--shards", str(run_dir / "results" / "shards"),
           "--trial", "main", "--trial-json", json.dumps(cfg["trials"]["main"]), "--fold", str(fold), "--seeds", "0",
           "--master-seed", str(cfg["seed"]), "--config-json",
           json.dumps({"training": training, "bins": cfg["bins"], "network": net}), "--out-root", str(scratch),
           "--compile-cache", str(run_dir / "results" / ".cache" / "torchinductor")]
    log = scratch / f"train-fold{fold}.log"
    if subprocess.run(cmd, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")), stderr=open(log, "w")).returncode:
        raise SystemExit(f"fold {fold}: training failed (log: {log})")
    return member


def fold_pdfs(cfg, run_dir, member, fold):
    """The PDFs of the fold's test galaxies for each choice of weights, and the galaxies' specObjID."""
    import torch

    from photoz.nn.data import ShardStore, make_source, split_from_catalog
    from photoz.nn.predict import predict_pdfs
    from photoz.nn.train import load_member

    test = split_from_catalog(run_dir / "results" / "shards" / "catalog.parquet", cfg["trials"]["main"], fold)["test"]
    src = make_source(ShardStore(run_dir / "results" / "shards"), test, "cpu")
    net, _ = load_member(member / "best.pt")
    n = len(sorted(member.glob("epoch*.pt")))
    epoch = {e: torch.load(member / f"epoch{e:02d}.pt", map_location="cpu") for e in range(1, n + 1)}

    def pdf(states):
        net.load_state_dict({k: sum(s[k].float() for s in states) / len(states) for k in states[0]})
        return predict_pdfs(net, src, test.ebv, cfg["training"]["eval_batch_size"])

    out = {"best": predict_pdfs(load_member(member / "best.pt")[0], src, test.ebv, cfg["training"]["eval_batch_size"]),
           "last": pdf([epoch[n]])}
    for k in (3, 5, 10):
        out[f"swa{k}"] = pdf([epoch[e] for e in range(n - k + 1, n + 1)])
    out["pdfavg5"] = np.mean([pdf([epoch[e]]) for e in range(n - 4, n + 1)], axis=0)
    return out, test.specObjID


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--train-one":
        return train_keeping_epochs(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--scratch", required=True)
    ap.add_argument("--folds", type=int, nargs="*")
    a = ap.parse_args(argv)
    run_dir, scratch = Path(a.run_dir).resolve(), Path(a.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    cfg = load_config(run_dir / "config.yaml")
    folds = a.folds if a.folds is not None else list(range(cfg["dataset"]["n_folds"]))
    with ThreadPoolExecutor(2) as pool:
        members = dict(zip(folds, pool.map(lambda f: train_fold(cfg, run_dir, scratch, f), folds)))
    import torch

    torch.set_num_threads(2)
    res = run_dir / "results"
    cat = pd.read_parquet(res / "shards" / "catalog.parquet", columns=["specObjID", "z", "zphot"]).set_index("specObjID")
    knn = pd.read_parquet(res / "knn" / "main.parquet", columns=["specObjID", "z_phot"]).set_index("specObjID")["z_phot"]
    mid = zbins.midpoints(cfg["bins"]["n"], cfg["bins"]["z_min"], cfg["bins"]["z_max"])
    print("# default_swa: which weights of each main member to predict with (benchmarks/default_swa.py)")
    print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; run: {run_dir}")
    print(machine_line())
    print("sigma_MAD (eta %) of the fold's test galaxies; kNN and B16-like: the run's, on the same galaxies")
    print("fold     N " + " ".join(f"{w:>15}" for w in WEIGHTS) + "             kNN       B16-like")
    table = {w: [] for w in WEIGHTS + ("knn", "b16")}
    for f in folds:
        pdfs, ids = fold_pdfs(cfg, run_dir, members[f], f)
        z = cat.loc[ids, "z"].to_numpy()
        pm = {w: metrics.point_metrics(metrics.z_phot(p, mid), z) for w, p in pdfs.items()}
        pm["knn"] = metrics.point_metrics(knn.loc[ids].to_numpy(), z)
        pm["b16"] = metrics.point_metrics(cat.loc[ids, "zphot"].to_numpy(), z)
        for w in table:
            table[w].append((pm[w]["sigma_mad"], pm[w]["eta"]))  # eta in per cent
        print(f"{f:>4} {len(ids):>5} " + " ".join(f"{pm[w]['sigma_mad']:.5f} ({pm[w]['eta']:4.2f})"
                                              for w in WEIGHTS + ("knn", "b16")), flush=True)
    print_summary(table, WEIGHTS, ("knn", "b16"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
