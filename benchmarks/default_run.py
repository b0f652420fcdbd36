#!/usr/bin/env python
"""Report of a run of the embedded default (``make paper``): time per stage and the paper's comparison.

    python benchmarks/default_run.py --run-dir . [--cpu logs/job_cpu.jsonl] > benchmarks/default_run.txt

Reads only what the run wrote:

* Snakemake's logs (``.snakemake/log/*.snakemake.log``, every invocation of the
  run): jobs, job-minutes and wall span per rule (``mock_science.py``'s table);
* optionally the CPU seconds per job sampled by ``benchmarks/job_cpu.py watch``
  (on a shared machine wall time is an upper bound, CPU time is not);
* ``results/ensemble/main.parquet`` (the CNN), ``results/knn/main.parquet``
  and the catalogue's ``zphot`` (the B16-like Photoz table): sigma_MAD and eta
  per fold and their fold mean, on the galaxies that all three estimators have
  (the same galaxies for every estimator), with paired bootstrap errors of the
  ratios;
* ``results/models/*/fold*/seed*/metrics.csv``: each member's best epoch and
  the slope of its validation loss over the last third of its epochs;
* ``logs/train/*`` with those ``metrics.csv``: where each training job's time
  goes (epochs, the first epoch's compilation, start-up and checkpoints).
"""

from __future__ import annotations

import argparse
import datetime
import glob
import platform
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from photoz import metrics  # noqa: E402
from mock_science import machine_line, parse_snakemake_logs, print_train_time, stage_table  # noqa: E402
from photoz.config import load_config  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", default=".")
    p.add_argument("--cpu", help="the jsonl of benchmarks/job_cpu.py watch")
    p.add_argument("--bootstrap", type=int, default=200)
    a = p.parse_args(argv)
    run = Path(a.run_dir)
    import torch

    print("# default_run: a report of a run of the embedded default (benchmarks/default_run.py)")
    print(f"date of report: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(machine_line())
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}")
    logs = sorted(glob.glob(str(run / ".snakemake" / "log" / "*.snakemake.log")))
    jobs = parse_snakemake_logs(logs)
    rows = stage_table(jobs)
    print(f"\n## wall time per stage ({len(logs)} Snakemake invocation(s), {len(jobs)} finished jobs)")
    print(f"{'rule':18s} {'jobs':>5s} {'job-minutes':>12s} {'wall span (min)':>16s}")
    for rule, (n, sec, t0, t1) in sorted(rows.items(), key=lambda kv: kv[1][2]):
        print(f"{rule:18s} {n:5d} {sec / 60:12.1f} {(t1 - t0).total_seconds() / 60:16.1f}   {t0:%H:%M:%S} -> {t1:%H:%M:%S}")
    if jobs:
        t0, t1 = min(j[1] for j in jobs), max(j[2] for j in jobs)
        tot = sum(r[1] for r in rows.values()) / 60
        print(f"run: first job {t0:%Y-%m-%d %H:%M:%S} -> last job {t1:%H:%M:%S}: "
              f"{(t1 - t0).total_seconds() / 60:.1f} min wall ({tot:.0f} job-minutes)")
    print_train_time(run, load_config(run / "config.yaml")["training"]["batch_size"])
    if a.cpu:
        import subprocess

        print("\n## CPU time per stage (benchmarks/job_cpu.py; failed or killed jobs included)")
        n = len(pd.read_parquet(run / "results" / "shards" / "catalog.parquet", columns=["specObjID"]))
        sys.stdout.flush()
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "job_cpu.py"), "report", a.cpu, "--galaxies", str(n)],
                       check=True)

    res = run / "results"
    cat = pd.read_parquet(res / "shards" / "catalog.parquet", columns=["specObjID", "z", "zphot", "fold", "stripe82"])
    cnn = pd.read_parquet(res / "ensemble" / "main.parquet", columns=["specObjID", "z_phot"])
    knn = pd.read_parquet(res / "knn" / "main.parquet", columns=["specObjID", "z_phot"])
    d = cat.merge(cnn.rename(columns={"z_phot": "cnn"}), on="specObjID").merge(
        knn.rename(columns={"z_phot": "knn"}), on="specObjID")
    d = d[np.isfinite(d[["cnn", "knn", "zphot"]]).all(axis=1)]
    print(f"\n## the paper's comparison: {len(d)} test galaxies that all three estimators have "
          f"({len(cat)} in the shards, {int(d['stripe82'].sum())} Stripe 82-like)")
    dz = {e: (d[e].to_numpy() - d["z"].to_numpy()) / (1 + d["z"].to_numpy()) for e in ("cnn", "knn", "zphot")}
    folds = sorted(d["fold"].unique())
    rng = np.random.default_rng(0)
    print(f"{'fold':>5s} {'N':>6s}  {'CNN smad':>9s} {'kNN smad':>9s} {'B16 smad':>9s}  {'CNN eta%':>8s} {'kNN eta%':>8s} {'B16 eta%':>8s}")
    per = []
    for f in folds:
        m = (d["fold"] == f).to_numpy()
        s = [metrics.sigma_mad(dz[e][m]) for e in dz]
        t = [metrics.eta(dz[e][m]) for e in dz]
        per.append((s, t, m))
        print(f"{f:5d} {m.sum():6d}  " + " ".join(f"{v:9.4f}" for v in s) + "  " + " ".join(f"{v:8.2f}" for v in t))
    ms = np.mean([x[0] for x in per], axis=0)
    mt = np.mean([x[1] for x in per], axis=0)
    print(f"{'mean':>5s} {len(d):6d}  " + " ".join(f"{v:9.4f}" for v in ms) + "  " + " ".join(f"{v:8.2f}" for v in mt))
    # paired bootstrap of the fold-mean ratios (resampling galaxies within each fold)
    boots = []
    for _ in range(a.bootstrap):
        sb = []
        for _, _, m in per:
            idx = np.flatnonzero(m)
            i = rng.choice(idx, idx.size)
            sb.append([metrics.sigma_mad(dz[e][i]) for e in dz])
        sb = np.mean(sb, axis=0)
        boots.append((sb[0] / sb[1], sb[0] / sb[2]))
    err = np.std(boots, axis=0)
    print(f"fold-mean sigma_MAD ratios: CNN/kNN {ms[0] / ms[1]:.3f} +- {err[0]:.3f} (goal <= 0.85), "
          f"CNN/B16 {ms[0] / ms[2]:.3f} +- {err[1]:.3f} (goal <= 0.90)")
    print(f"fold-mean eta: CNN {mt[0]:.2f}%, kNN {mt[1]:.2f}%, B16 {mt[2]:.2f}% (goal: CNN lowest)")

    print("\n## convergence per member: best epoch, and the validation loss's least-squares slope per epoch "
          "over the last third of the epochs")
    for path in sorted(glob.glob(str(res / "models" / "*" / "fold*" / "seed*" / "metrics.csv"))):
        m = pd.read_csv(path)
        loss = m["val_loss"].to_numpy()
        k = max(3, len(loss) // 3)
        slope = np.polyfit(np.arange(k), loss[-k:], 1)[0] if len(loss) >= 3 else float("nan")
        name = "/".join(Path(path).parts[-4:-1])
        print(f"{name:24s} epochs {len(loss):3d}  best {int(np.argmin(loss)) + 1:3d}  min val_loss {loss.min():.4f}  "
              f"last-third slope {slope:+.4f}/epoch")


if __name__ == "__main__":
    main()
