"""Whether the mock-science preset's members converged, and what longer training does to the reddening trend.

The 2-hour budget of ``config/mock-science.yaml`` fixes its epochs. This
script retrains fold-0 members of the run's trials (default: seed 0 of
``main`` and of ``noebv``, the network without the E(B-V) input) on the
run's own shards with the run's settings for more epochs (``--epochs``), side
by side with one thread each as the workflow runs them. It prints their
validation loss and sigma_MAD per epoch beside those of the run's members
and then, for the model the workflow would keep (lowest validation loss) and
for the run's own member, sigma_MAD on fold 0's test galaxies and the slope of
the bias against the catalogue's E(B-V) (``photoz.metrics.bias_slope``).

A member's seed comes from (master seed, trial, fold, seed number), so the
retrained members repeat the run's members exactly over the run's epochs and
then go on. Nothing of the run is overwritten (models go to ``--out``).

    python benchmarks/mock_science_convergence.py --run-dir RUN --epochs 16 > benchmarks/mock_science_convergence.txt
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd


def train_command(cfg, run, out, trial, seed=0):
    """``python -m photoz train`` of fold 0 of ``trial``, member ``seed`` (what the workflow's train rule runs)."""
    from photoz import trials

    # the shape of the train rule's --config-json (workflow/rules/common.smk: _train_config)
    network = cfg["networks"][trials.network_name(cfg, trial)]
    cfg_json = json.dumps({"training": cfg["training"], "bins": cfg["bins"], "network": network})
    trial_json = json.dumps(cfg["trials"][trial], sort_keys=True)
    return [sys.executable, "-m", "photoz", "train", "--shards", str(run / "results/shards"), "--trial", trial,
            "--trial-json", trial_json, "--fold", "0", "--seeds", str(seed), "--master-seed", str(cfg["seed"]),
            "--config-json", cfg_json, "--out-root", str(out)]


def predict_command(cfg, run, trial, checkpoint, out):
    """``python -m photoz predict`` of ``checkpoint`` on fold 0's test galaxies of ``trial``."""
    return [sys.executable, "-m", "photoz", "predict", "--checkpoint", str(checkpoint), "--shards",
            str(run / "results/shards"), "--trial-json", json.dumps(cfg["trials"][trial], sort_keys=True),
            "--fold", "0", "--device", "cpu", "--num-threads", "1", "--batch-size",
            str(cfg["training"]["eval_batch_size"]), "--out", str(out)]


def test_scores(pred_npz, cat, cfg):
    """sigma_MAD, eta and the E(B-V) slope of one member's fold-0 test predictions."""
    import numpy as np
    from photoz import bins, metrics

    f = np.load(pred_npz)
    d = pd.DataFrame({"specObjID": f["specObjID"]}).merge(cat, on="specObjID", how="left")
    zp = metrics.z_phot(f["pdf"], bins.midpoints(**cfg["bins"]))
    dz = metrics.delta_z(zp, d["z"].to_numpy())
    b, be, n = metrics.bias_slope(d["ebv"].to_numpy(), dz)
    return {"n": len(dz), "sigma_mad": float(metrics.sigma_mad(dz)), "eta": float(metrics.eta(dz)), "slope": b,
            "slope_err": be, "n_fit": n}


def ebv_response(checkpoint, run, cfg, trial="main", delta=0.05):
    """How much a network's z_phot moves when its E(B-V) input is raised by ``delta``, per magnitude.

    Mean over fold 0's test galaxies of (z_phot(E + delta) - z_phot(E)) / (1 + z_spec) / delta. A network that
    undoes reddening fully answers about minus the slope a reddening-blind estimator shows.
    """
    import numpy as np
    import torch
    from photoz import bins, metrics
    from photoz.nn.data import ShardStore, make_source, split_from_catalog
    from photoz.nn.predict import predict_pdfs
    from photoz.nn.train import load_member

    torch.set_num_threads(2)
    model, _ = load_member(checkpoint)
    test = split_from_catalog(run / "results/shards/catalog.parquet", cfg["trials"][trial], 0)["test"]
    src = make_source(ShardStore(run / "results/shards"), test, torch.device("cpu"))
    mid = bins.midpoints(**cfg["bins"])
    zp = [metrics.z_phot(predict_pdfs(model, src, test.ebv + d, cfg["training"]["eval_batch_size"]), mid) for d in (0.0, delta)]
    return float(np.mean((zp[1] - zp[0]) / (1.0 + test.z)) / delta)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", required=True, help="the mock-science run's working directory")
    p.add_argument("--configfile", default="config/mock-science.yaml", help="the run's preset (relative to --run-dir)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--trials", nargs="+", default=["main", "noebv"], help="trials to retrain (fold 0, seed 0 each)")
    p.add_argument("--out", default=None, help="models folder (default RUN/results/convergence)")
    a = p.parse_args(argv)
    run = Path(a.run_dir).resolve()
    sys.path.insert(0, str(run / "src"))
    from photoz.config import load_config

    cfg = load_config(run / a.configfile, overrides={"training": {"epochs": a.epochs}})
    out = Path(a.out) if a.out else run / "results/convergence"
    (run / "logs/convergence").mkdir(parents=True, exist_ok=True)
    import numpy as np
    import torch

    print("# mock_science_convergence: main-trial fold-0 members trained longer (benchmarks/mock_science_convergence.py)")
    print(f"date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, no GPU used")
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}")
    print(f"command: python benchmarks/mock_science_convergence.py --run-dir RUN --epochs {a.epochs} "
          f"--trials {' '.join(a.trials)}")
    run_epochs = load_config(run / a.configfile)["training"]["epochs"]
    print(f"run: {a.configfile}, {a.epochs} epochs here against the run's {run_epochs}\n")
    env = {**os.environ, "PYTHONPATH": f"{run / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    def side_by_side(cmds, what):
        procs = []
        for name, cmd in cmds:
            log = open(run / f"logs/convergence/{what}-{name}.log", "w")
            procs.append((name, cmd, subprocess.Popen(cmd, cwd=run, stderr=log, stdout=log, env=env), log))
        for name, cmd, proc, log in procs:
            if proc.wait() != 0:
                raise SystemExit(f"{what} {name} failed, see {log.name}: " + " ".join(shlex.quote(c) for c in cmd))

    def finished(t):  # the train command retrains a finished member (it resumes only from resume.pt)
        m = out / f"{t}/fold0/seed0/metrics.csv"
        return (out / f"{t}/fold0/seed0/checkpoint.pt").exists() and m.exists() and len(pd.read_csv(m)) == a.epochs

    side_by_side([(t, train_command(cfg, run, out, t)) for t in a.trials if not finished(t)], "train")
    minutes = [pd.read_csv(out / f"{t}/fold0/seed0/metrics.csv").seconds.sum() / 60 for t in a.trials]
    print(f"trained {len(a.trials)} member(s) side by side, one thread each: "
          f"{', '.join(f'{t} {m:.1f} min' for t, m in zip(a.trials, minutes))} (sum of the epochs' times)\n")
    preds = {t: out / f"predictions/{t}.npz" for t in a.trials}
    side_by_side([(t, predict_command(cfg, run, t, out / f"{t}/fold0/seed0/best.pt", preds[t])) for t in a.trials],
                 "predict")
    for t in a.trials:
        long = pd.read_csv(out / f"{t}/fold0/seed0/metrics.csv")
        ref_p = run / f"results/models/{t}/fold0/seed0/metrics.csv"
        ref = pd.read_csv(ref_p) if ref_p.exists() else None
        print(f"## {t}/fold0/seed0: per epoch (the run's member beside it where it has the epoch); "
              "'best so far': the model predict_from: best would keep had training stopped there")
        print("epoch  iters  train_loss  val_loss  val_smad  best so far: epoch val_loss val_smad"
              "  | run val_loss  run val_smad")
        best_i = None
        for i, r in long.iterrows():
            if best_i is None or r.val_loss < long.val_loss[best_i]:
                best_i = i
            b = long.loc[best_i]
            line = (f"{int(r.epoch):>5} {int(r.iteration):>6} {r.train_loss:>11.4f} {r.val_loss:>9.4f} "
                    f"{r.val_sigma_mad:>9.4f}  {int(b.epoch):>17} {b.val_loss:>8.4f} {b.val_sigma_mad:>8.4f}")
            if ref is not None and int(r.epoch) in set(ref.epoch):
                q = ref[ref.epoch == r.epoch].iloc[0]
                line += f"  | {q.val_loss:>12.4f} {q.val_sigma_mad:>12.4f}"
            print(line)
        best = long.loc[long.val_loss.idxmin()]
        print(f"lowest validation loss at epoch {int(best.epoch)} of {len(long)} (val_loss {best.val_loss:.4f}, "
              f"val sigma_MAD {best.val_sigma_mad:.4f})\n")
    cat = pd.read_parquet(run / "results/shards/catalog.parquet", columns=["specObjID", "z", "ebv"])
    print("## fold-0 test galaxies, one member each (the model with the lowest validation loss): sigma_MAD, eta and")
    print("## the slope of the bias against the catalogue's E(B-V) (|dz| > 0.05 left out of the fit)")
    print(f"{'member':<42} {'N':>5} {'sigma_MAD':>9} {'eta%':>6} {'slope':>8} {'+-':>6}")
    for t in a.trials:
        rows = [(f"{t} seed0, run ({run_epochs} epochs)", run / f"results/predictions/{t}/fold0/seed0.npz"),
                (f"{t} seed0, retrained ({a.epochs} epochs)", preds[t])]
        for label, p in rows:
            if p.exists():
                r = test_scores(p, cat, cfg)
                print(f"{label:<42} {r['n']:>5} {r['sigma_mad']:>9.4f} {r['eta']:>6.2f} {r['slope']:>+8.4f} "
                      f"{r['slope_err']:>6.4f}")
    if "main" in a.trials:
        print("\n## how much the network with the E(B-V) input uses it: mean d z_phot/(1+z) per magnitude of E(B-V)")
        print("## added to its input (+0.05 mag), fold-0 test galaxies; undoing the reddening fully needs about minus")
        print("## the slope of an estimator blind to it (the kNN control of mock_science.txt, the noebv row above)")
        for label, ck in ((f"main seed0, run ({run_epochs} epochs)", run / "results/models/main/fold0/seed0/best.pt"),
                          (f"main seed0, retrained ({a.epochs} epochs)", out / "main/fold0/seed0/best.pt")):
            print(f"{label:<42} {ebv_response(ck, run, cfg):+.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
