#!/usr/bin/env python
"""How long the default's main members should train: one fold, several settings, the same test galaxies.

    python benchmarks/default_epochs.py --run-dir RUN --scratch /tmp/epochs \
        --variant epochs=15 --variant epochs=24 --variant epochs=40 --variant epochs=24,seed=1 \
        > benchmarks/default_epochs.txt

``RUN`` is a finished run of the embedded default (its ``results/shards``,
``results/knn/main.parquet`` and ``results/ensemble/main.parquet``). Each
variant trains one member of the main trial on each ``--fold`` (one or more) with the run's
own shards and splits, by the workflow's two commands (``python -m photoz
train`` and ``python -m photoz predict``, one thread each, two members side by
side; a member whose weights are already in ``--scratch`` is not trained again),
with the training section of ``config.yaml`` where a variant overrides
``epochs``, ``learning_rate``, ``batch_size``, ``label_sigma_z`` or ``seed`` (the
member index under the master seed), and where a variant sets ``train_size``, on that many of the
fold's training galaxies (a learning-curve subset). Each member predicts with the weights the
workflow uses (``training.predict_from``: the least-validation-loss epoch, the last epoch, or the
mean of the last epochs' weights). It prints, per fold and variant: the epoch of the least
validation loss, that loss and the validation sigma_MAD there, the wall time, and the test
galaxies' sigma_MAD and outlier rate, beside the kNN's and the run's CNN on the same galaxies,
then each variant's fold-mean CNN/kNN ratio. The validation loss is what chooses
the default's epochs; the test columns only show what that choice is worth.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from photoz import bins as zbins  # noqa: E402
from photoz import metrics  # noqa: E402
from photoz.config import load_config  # noqa: E402
from photoz.nn.files import WEIGHTS_FILES  # noqa: E402

OVERRIDABLE = {"epochs": int, "learning_rate": float, "batch_size": int, "label_sigma_z": float, "seed": int,
               "train_size": int}
#: keys that go into the trial (its training subset), not the training section
TRIAL_KEYS = ("train_size",)


def parse_variant(text):
    """``"epochs=24,seed=1"`` -> ``{"epochs": 24, "seed": 1}``."""
    out = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        if key not in OVERRIDABLE:
            raise SystemExit(f"--variant {text!r}: unknown key {key!r}; known: {', '.join(OVERRIDABLE)}")
        out[key] = OVERRIDABLE[key](value)
    return out


def variant_name(v):
    return "_".join(f"{k}{v[k]}" for k in sorted(v)) or "default"


def run_variant(cfg, v, run_dir, scratch, fold):
    """Train and predict one member; returns (the member's directory, its test PDFs file, wall seconds)."""
    training = dict(cfg["training"], num_threads=1, **{k: x for k, x in v.items() if k != "seed" and k not in TRIAL_KEYS})
    net = cfg["networks"][cfg["trials"]["main"].get("network", training["network"])]
    cfg_json = json.dumps({"training": training, "bins": cfg["bins"], "network": net})
    trial_json = json.dumps(dict(cfg["trials"]["main"], **{k: v[k] for k in TRIAL_KEYS if k in v}))
    seed = v.get("seed", 0)
    out = Path(scratch) / variant_name(v)
    out.mkdir(parents=True, exist_ok=True)
    member = out / "main" / f"fold{fold}" / f"seed{seed}"
    weights = member / WEIGHTS_FILES[cfg["training"]["predict_from"]]
    test = out / f"test_fold{fold}.npz"
    shards = str(Path(run_dir) / "results" / "shards")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    cmds = [
        [sys.executable, "-m", "photoz", "train", "--shards", shards, "--trial", "main", "--trial-json", trial_json,
         "--fold", str(fold), "--seeds", str(seed), "--master-seed", str(cfg["seed"]), "--config-json", cfg_json,
         "--out-root", str(out), "--compile-cache", str(Path(run_dir) / "results" / ".cache" / "torchinductor")],
        [sys.executable, "-m", "photoz", "predict", "--checkpoint", str(weights),
         "--shards", shards, "--trial-json", trial_json, "--fold", str(fold), "--device", "cpu", "--num-threads", "1",
         "--batch-size", str(cfg["training"]["eval_batch_size"]), "--out", str(test)],
    ]
    if weights.exists():
        cmds = cmds[1:]  # trained by an earlier invocation with the same --scratch
    wall = 0.0
    for cmd in cmds:
        t = time.time()
        log = out / f"{cmd[3]}_fold{fold}.log"
        res = subprocess.run(cmd, env=env, stderr=open(log, "w"))
        if res.returncode:
            raise SystemExit(f"{variant_name(v)} fold {fold}: {' '.join(cmd[:4])} failed (log: {log})")
        wall += time.time() - t
    return member, test, wall


def score(member_dir, test_file, z_spec, n_bins, z_min, z_max):
    m = pd.read_csv(member_dir / "metrics.csv")
    best = m.loc[m["val_loss"].idxmin()]
    d = np.load(test_file)
    ids = d["specObjID"]
    zp = metrics.z_phot(d["pdf"], zbins.midpoints(n_bins, z_min, z_max))
    pm = metrics.point_metrics(zp, z_spec.loc[ids].to_numpy())
    return {"epochs": len(m), "best_epoch": int(best["epoch"]), "min_val_loss": float(best["val_loss"]),
            "val_smad_at_best": float(best["val_sigma_mad"]), "test_smad": pm["sigma_mad"], "test_eta": pm["eta"],
            "n_test": pm["n"], "ids": ids}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--scratch", required=True, help="where the variants' members are written")
    ap.add_argument("--variant", action="append", required=True, help="e.g. epochs=24,seed=1 (keys: %s)" % ", ".join(OVERRIDABLE))
    ap.add_argument("--fold", type=int, action="append", help="a main fold (repeat for several; default 0)")
    ap.add_argument("--parallel", type=int, default=2, help="members trained side by side (one thread each)")
    a = ap.parse_args(argv)
    folds = a.fold or [0]
    cfg = load_config(ROOT / "config.yaml")
    run = Path(a.run_dir)
    ens = pd.read_parquet(run / "results" / "ensemble" / "main.parquet").set_index("specObjID")
    knn = pd.read_parquet(run / "results" / "knn" / "main.parquet").set_index("specObjID")
    variants = [parse_variant(v) for v in a.variant]
    jobs = [(f, v) for f in folds for v in variants]
    t0 = time.time()
    with ThreadPoolExecutor(a.parallel) as pool:
        done = list(pool.map(lambda job: run_variant(cfg, job[1], run, a.scratch, job[0]), jobs))
    b = cfg["bins"]
    import torch

    tr = cfg["training"]
    print("# default_epochs: one main member per setting and fold of a default run (benchmarks/default_epochs.py)")
    print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.node()} "
          f"{platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}, torch {torch.__version__}")
    print(f"run: {run.resolve()}; folds {' '.join(map(str, folds))}; {len(variants)} variants, {a.parallel} side by side, "
          f"{(time.time() - t0) / 60:.1f} min wall (members trained before in --scratch only predicted)")
    print(f"training settings otherwise config.yaml's: epochs {tr['epochs']}, batch {tr['batch_size']}, "
          f"learning rate {tr['learning_rate']}, label_sigma_z {tr['label_sigma_z']}, "
          f"network {cfg['trials']['main'].get('network', tr['network'])}; "
          f"test PDFs from the weights training.predict_from names ({tr['predict_from']})")
    ratios = {variant_name(v): [] for v in variants}
    for fold in folds:
        print()
        print(f"{'variant':28s} {'epochs':>6s} {'best ep':>7s} {'min val_loss':>12s} {'val smad':>8s} {'wall s':>7s} "
              f"{'test smad':>9s} {'test eta%':>9s}")
        ids, rows = None, []
        for (f, v), (mdir, tfile, secs) in zip(jobs, done):
            if f != fold:
                continue
            s = score(mdir, tfile, ens["z_spec"], b["n"], b["z_min"], b["z_max"])
            ids = s["ids"]
            rows.append((variant_name(v), s["test_smad"]))
            print(f"{variant_name(v):28s} {s['epochs']:6d} {s['best_epoch']:7d} {s['min_val_loss']:12.4f} "
                  f"{s['val_smad_at_best']:8.4f} {secs:7.0f} {s['test_smad']:9.4f} {s['test_eta']:9.2f}")
        pk = metrics.point_metrics(knn.loc[ids, "z_phot"].to_numpy(), ens.loc[ids, "z_spec"].to_numpy())
        pr = metrics.point_metrics(ens.loc[ids, "z_phot"].to_numpy(), ens.loc[ids, "z_spec"].to_numpy())
        print(f"{'kNN (the run)':28s} {'':6s} {'':7s} {'':12s} {'':8s} {'':7s} {pk['sigma_mad']:9.4f} {pk['eta']:9.2f}")
        print(f"{'CNN ensemble (the run)':28s} {'':6s} {'':7s} {'':12s} {'':8s} {'':7s} {pr['sigma_mad']:9.4f} {pr['eta']:9.2f}")
        print(f"test galaxies: {len(ids)} (fold {fold})")
        ratios.setdefault("CNN ensemble (the run)", []).append(pr["sigma_mad"] / pk["sigma_mad"])
        for name, smad in rows:
            ratios[name].append(smad / pk["sigma_mad"])
    print()
    print(f"CNN/kNN sigma_MAD ratio per fold ({' '.join(map(str, folds))}) and its fold mean "
          "(+- the folds' spread / sqrt(n) where n > 1):")
    for name, r in ratios.items():
        r = np.asarray(r)
        err = f" +- {r.std(ddof=1) / np.sqrt(len(r)):.3f}" if len(r) > 1 else ""
        print(f"  {name:28s} {' '.join(f'{x:.3f}' for x in r)}   mean {r.mean():.3f}{err}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
