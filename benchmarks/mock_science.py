#!/usr/bin/env python
"""Report of a `mock-science` run: wall time per stage and the science numbers.

    snakemake --cores 2 --configfile config/mock-science.yaml 2>&1 | tee logs/science.log
    python benchmarks/mock_science.py --run-dir . > benchmarks/mock_science.txt

Reads only what the run wrote (nothing is recomputed from the mock's truth):

* Snakemake's own logs (``.snakemake/log/*.snakemake.log``; every invocation
  of the run): per rule, the number of jobs, the summed job time and the wall
  span from the first job's start to the last job's end, and the run's wall
  time (first start to last finish);
* ``results/learning_curve.csv``: sigma_MAD, eta, bias and CRPS of the CNN
  ensemble and the kNN at each training size (same fold-0 test galaxies);
* ``results/ensemble/main.parquet`` and ``results/knn/main.parquet``: Stripe
  82-like (deep) against single-epoch galaxies, all folds;
* ``results/ensemble/{main,noebv}.parquet``: the slope of the bias against the
  catalogue's E(B-V) with and without the reddening input (fold 0), and, as a
  control of what the mock's reddening can show at all, the same slope for the
  kNN (fold 0, k = 100) on the catalogue's magnitudes with and without the
  reddening correction (observed = dereddened + SDSS coefficient x E(B-V));
* ``results/table2.csv``: the CNN, the B16-like Photoz table and the kNN on the
  same galaxies (main trial, fold means), the ratios CNN/B16-like and CNN/kNN
  beside the paper's CNN/B16 (``src/photoz/data/published.yaml``);
* ``results/zone/zone.json``, ``validation.json``: the zone search and the injected zone;
* ``results/models/main/fold*/seed*/metrics.csv``: convergence (validation
  loss over the last epochs against its minimum);
* the main ensemble's PIT histogram.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import os
import platform
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from photoz import metrics  # noqa: E402
from photoz.config import load_config  # noqa: E402

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
START = re.compile(r"^(?:local)?rule (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)")


def parse_snakemake_logs(paths):
    """Per-job (rule, start, end) from Snakemake logs; job ids are per log file."""
    jobs = []
    for path in paths:
        stamp, pending, open_jobs = None, None, {}
        for line in Path(path).read_text(errors="replace").splitlines():
            m = STAMP.match(line.strip())
            if m:
                stamp = datetime.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
                continue
            m = START.match(line.strip())
            if m:
                pending = (m.group(1), stamp)
                continue
            m = JOBID.match(line)
            if m and pending:
                open_jobs[m.group(1)] = pending
                pending = None
                continue
            m = FINISHED.match(line.strip())
            if m and m.group(1) in open_jobs:
                rule, t0 = open_jobs.pop(m.group(1))
                jobs.append((rule, t0, stamp))
    return jobs


def stage_table(jobs):
    rows = defaultdict(lambda: [0, 0.0, None, None])
    for rule, t0, t1 in jobs:
        r = rows[rule]
        r[0] += 1
        r[1] += (t1 - t0).total_seconds()
        r[2] = t0 if r[2] is None else min(r[2], t0)
        r[3] = t1 if r[3] is None else max(r[3], t1)
    return rows


DONE = re.compile(r"done in ([0-9.]+) s wall, ([0-9.]+) s CPU")


def train_time_rows(run):
    """Where each training job's time goes: ``(member, wall s, CPU s, epochs s, first-epoch excess s,
    outside-epochs s, images, steady img/s)`` per member.

    From ``logs/train/**/seed*.log`` (the job's ``done in ... s wall, ... s CPU``) and the member's
    ``metrics.csv`` (``seconds`` and ``iteration`` per epoch: the steps and the validation, nothing
    else). The first-epoch excess (its seconds minus the median epoch's) is the compilation or the
    loading of compiled code; outside the epochs are start-up, data loading and the checkpoints.
    Members without a finished log are left out.
    """
    rows = []
    for log in sorted(Path(run, "logs", "train").glob("*/fold*/seed*.log")):
        m = DONE.search(log.read_text(errors="replace"))
        trial, fold, seed = log.parts[-3], log.parts[-2], log.stem
        mfile = Path(run, "results", "models", trial, fold, seed, "metrics.csv")
        if not m or not mfile.exists():
            continue
        ep = pd.read_csv(mfile, usecols=["iteration", "seconds"])
        sec = ep["seconds"].to_numpy()
        steps = np.diff(np.concatenate([[0], ep["iteration"].to_numpy()]))
        excess = float(sec[0] - np.median(sec[1:])) if len(sec) > 1 else float("nan")
        steady = float(np.sum(steps[1:]) / np.sum(sec[1:])) if len(sec) > 1 else float("nan")
        rows.append((f"{trial}/{fold}/{seed}", float(m.group(1)), float(m.group(2)), float(sec.sum()), excess,
                     float(m.group(1)) - float(sec.sum()), int(ep["iteration"].iloc[-1]), steady))
    return rows


def print_train_time(run, batch_size):
    """Print :func:`train_time_rows` and their sums (steady rate in images per second at ``batch_size``)."""
    rows = train_time_rows(run)
    if not rows:
        return
    print("\n## training jobs: where the time goes (logs/train/*: the job; metrics.csv: its epochs)")
    print(f"{'member':26s} {'wall s':>7s} {'CPU s':>7s} {'epochs s':>8s} {'1st-epoch excess s':>18s} "
          f"{'outside epochs s':>16s} {'images':>8s} {'steady img/s':>12s}")
    for name, wall, cpu, eps, exc, out, it, steady in rows:
        print(f"{name:26s} {wall:7.1f} {cpu:7.1f} {eps:8.1f} {exc:18.1f} {out:16.1f} {it * batch_size:8d} "
              f"{steady * batch_size:12.0f}")
    tot = np.nansum(np.array([r[1:6] for r in rows]), axis=0)
    print(f"{'sum':26s} {tot[0]:7.1f} {tot[1]:7.1f} {tot[2]:8.1f} {tot[3]:18.1f} {tot[4]:16.1f}")


def _halves_slopes(loss):
    """Least-squares slopes of a validation-loss curve per epoch over its first and its second half, and the
    error of the second from the residual scatter (NaN where a half has fewer than 3 epochs)."""
    n = len(loss)
    h = n // 2

    def fit(y):
        if len(y) < 3:
            return float("nan"), float("nan")
        x = np.arange(len(y), dtype=float)
        b, a = np.polyfit(x, y, 1)
        r = y - (a + b * x)
        err = np.sqrt((r ** 2).sum() / (len(y) - 2) / ((x - x.mean()) ** 2).sum())
        return float(b), float(err)

    return fit(loss[:h])[0], *fit(loss[h:])


def brightness_and_reddening(rows, cat_path):
    """Is the E(B-V) trend one of colour or of brightness? Reddened galaxies are fainter in the images (the sample
    is cut on dereddened r), so a bias that grows with the *observed* magnitude (lower S/N) shows up as an E(B-V)
    trend that no reddening correction can remove. The two fits below are the same linear model written twice:
    at fixed dereddened r the E(B-V) coefficient holds both effects; at fixed observed r only the colour one
    (metrics.slope_at_fixed_z, as the paper's \\EbvTrend; bootstrap errors)."""
    cat = pd.read_parquet(cat_path, columns=["specObjID", "dered_petro_r", "extinction_r"])
    print("\n## the E(B-V) slope at fixed z_spec (cubic) and fixed r magnitude, fold-0 test galaxies with |dz| <= 0.05")
    print(f"{'':<36} {'E(B-V) | dereddened r':>24} {'E(B-V) | observed r':>22} {'d(dz)/d r':>20}")
    for label, d in rows:
        d = d.merge(cat, on="specObjID")
        dz = metrics.delta_z(d.z_phot.to_numpy(), d.z_spec.to_numpy())  # outliers: left out by partial_slope
        r_dered = d.dered_petro_r.to_numpy()
        r_obs = r_dered + d.extinction_r.to_numpy()
        ebv, z = d.ebv.to_numpy(), d.z_spec.to_numpy()
        a = metrics.slope_at_fixed_z(ebv, dz, z, r_dered)
        b = metrics.slope_at_fixed_z(ebv, dz, z, r_obs)
        r = metrics.slope_at_fixed_z(r_dered, dz, z, ebv)
        print(f"{label:<36} {a[0]:+.4f} +- {a[1]:.4f}      {b[0]:+.4f} +- {b[1]:.4f}    {r[0]:+.4f} +- {r[1]:.4f}")


def _pm(z_phot, z_spec, seed=0):
    m = metrics.point_metrics(z_phot, z_spec)
    e = metrics.bootstrap(z_phot, z_spec, n_resamples=200, seed=seed)
    return m, e


def reddening_control(cat_path, knn_cfg):
    """Slope of the kNN's bias against E(B-V) with and without the reddening correction (fold 0).

    A reddening-blind estimator shows the trend the mock's reddening can produce;
    if it shows none, neither can the CNN without the E(B-V) input.
    """
    from photoz import knn
    from photoz.mock.reddening import EXTINCTION_COEFF

    k = int(knn_cfg["k"])
    cols = ["fold", "z", "ebv"] + [f"dered_petro_{b}" for b in knn.BANDS]
    c = pd.read_parquet(cat_path, columns=cols)
    tr, te = c[c.fold != 0], c[c.fold == 0]
    ebv = te.ebv.to_numpy()
    print(f"control: the kNN (k={k}) on fold 0; E(B-V) of the test galaxies: 5/50/95th percentiles "
          f"{' '.join(f'{v:.4f}' for v in np.percentile(ebv, [5, 50, 95]))}, std {ebv.std():.4f}")
    def observed(df):  # the reddening correction undone: dered + SDSS coefficient x E(B-V)
        df = df.copy()
        for j, b in enumerate(knn.BANDS):
            df[f"dered_petro_{b}"] += EXTINCTION_COEFF[j] * df.ebv
        return df

    for label, fix in (("kNN, dereddened magnitudes", lambda df: df),
                       ("kNN, observed magnitudes (no correction)", observed)):
        zp = knn.fit_predict(knn.features(fix(tr)), tr.z.to_numpy(), knn.features(fix(te)), k=k, clip_sigma=knn_cfg["clip_sigma"])[0]
        dz = metrics.delta_z(zp, te.z.to_numpy())
        b, be, n = metrics.bias_slope(ebv, dz)
        print(f"{label:<42} N={n:>5}  sigma_MAD {metrics.sigma_mad(dz):.4f}  slope {b:+.4f} +- {be:.4f}")


def like_with_like(res):
    """CNN/B16-like and CNN/kNN (Table 2, main trial, same galaxies) beside the paper's CNN/B16; the zone search."""
    import json

    t2p = res / "table2.csv"
    if t2p.exists():
        from photoz import published

        t2 = pd.read_csv(t2p)
        rows = {}
        for est in ("cnn", "b16", "knn"):
            sel = (t2["estimator"].fillna("cnn") == est) & (t2["subset"] == "all") & (t2["remove_widest"].fillna(0) == 0)
            if sel.any():
                rows[est] = t2[sel].iloc[0]
        print("\n## the CNN against the baselines on the same galaxies (results/table2.csv; main trial, "
              "fold means; +-: spread of the fold values)")
        for est, r in rows.items():
            print(f"{est:4s} sigma_MAD {r['sigma_mad']:.5f} +- {r['sigma_mad_err']:.5f}  eta {r['eta']:.2f}%  "
                  f"bias {r['bias']:+.5f}")
        pm, pb = published.table2_row("full"), published.table2_row("b16")
        for est, name in (("b16", "B16-like (mock)"), ("knn", "kNN")):
            if "cnn" in rows and est in rows:
                a, b = rows["cnn"], rows[est]
                r = a["sigma_mad"] / b["sigma_mad"]
                e = r * np.hypot(a["sigma_mad_err"] / a["sigma_mad"], b["sigma_mad_err"] / b["sigma_mad"])
                print(f"CNN / {name}: {r:.3f} +- {e:.3f} (errors of the fold spreads in quadrature)")
        print(f"paper (SDSS): CNN / B16 = {pm['sigma_mad'] / pb['sigma_mad']:.3f}")
    zp, vp = res / "zone" / "zone.json", res / "zone" / "validation.json"
    if zp.exists():
        z = json.loads(zp.read_text())
        print("\n## zone search (results/zone/zone.json)")
        print(f"threshold |Z| {z.get('threshold_z')}, largest zone |Z| {z.get('max_abs_z')}, zones found "
              f"{z.get('n_zones')}: " + "; ".join(f"Z {d['z']:+.1f}, {d['n']} galaxies, bias {d['bias']:+.5f}"
                                                  for d in z.get("zones", [])))
        if vp.exists():
            v = json.loads(vp.read_text())
            print(f"injected (truth): {v['n_injected']} test galaxies, bias {v['bias_injected']:+.5f} +- "
                  f"{v['bias_injected_se']:.5f} against {v['bias_rest']:+.5f}, Z {v['z_injected']:.1f} (the paper's "
                  f"zone at this count: Z {v['z_paper_scaled']:.1f}); {v['reason']}, Jaccard {v['jaccard']}")


def machine_line(extra=""):
    """``machine: ...`` with the CPU model and its bf16 instructions: the CPU training's numerics depend on them
    (oneDNN picks AMX or AVX-512 BF16 kernels), so the same shards train to slightly different networks on
    another CPU (benchmarks/default_run.txt)."""
    model, flags = platform.processor() or "?", set()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as fh:
            for ln in fh:
                if ln.startswith("model name"):
                    model = ln.split(":", 1)[1].strip()
                elif ln.startswith("flags"):
                    flags = set(ln.split(":", 1)[1].split())
                    break
    bf16 = " ".join(f for f in ("avx512_bf16", "amx_bf16") if f in flags) or "none"
    return f"machine: {platform.node()} {platform.machine()}, {model} (bf16 instructions: {bf16}), {os.cpu_count()} cores{extra}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", default=".", help="the run's working directory")
    p.add_argument("--command", default="snakemake --cores 2 --configfile config/mock-science.yaml",
                   help="the command that made the run (printed)")
    p.add_argument("--configfile", default="config/mock-science.yaml", help="the run's --configfile (its knn settings)")
    a = p.parse_args(argv)
    run = Path(a.run_dir)
    res = run / "results"
    import torch

    print("# mock_science: a report of the mock-science preset's run (benchmarks/mock_science.py)")
    print(f"date of report: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
    print(machine_line(", no GPU used"))
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}")
    print(f"command: {a.command}")

    logs = sorted(glob.glob(str(run / ".snakemake/log/*.snakemake.log")))
    jobs = parse_snakemake_logs(logs)
    if jobs:
        rows = stage_table(jobs)
        t0 = min(r[2] for r in rows.values())
        t1 = max(r[3] for r in rows.values())
        print(f"\n## wall time per stage ({len(logs)} Snakemake invocation(s), {len(jobs)} finished jobs)")
        print(f"{'rule':<18}{'jobs':>6}{'job-minutes':>13}{'wall span (min)':>17}   first start -> last end")
        for rule, (n, secs, s, e) in sorted(rows.items(), key=lambda kv: kv[1][2]):
            print(f"{rule:<18}{n:>6}{secs / 60:>13.1f}{(e - s).total_seconds() / 60:>17.1f}   {s:%H:%M:%S} -> {e:%H:%M:%S}")
        busy = sum(r[1] for r in rows.values())
        print(f"run: first job {t0:%Y-%m-%d %H:%M:%S} -> last job {t1:%H:%M:%S}: {(t1 - t0).total_seconds() / 60:.1f} min "
              f"wall ({busy / 60:.0f} job-minutes on 2 cores)")
    print_train_time(run, load_config(run / a.configfile)["training"]["batch_size"])

    cat_path = res / "shards/catalog.parquet"
    if cat_path.exists():
        cat = pd.read_parquet(cat_path, columns=["specObjID", "fold", "stripe82", "ebv"])
        print(f"\ngalaxies in the shards: {len(cat)} ({int(cat.stripe82.sum())} in the Stripe 82-like patch)")
    lc = res / "learning_curve.csv"
    if lc.exists():
        df = pd.read_csv(lc)
        print("\n## learning curve (results/learning_curve.csv; same fold-0 test galaxies at every point)")
        print(df.to_string(index=False))
    like_with_like(res)
    conv = []
    for f in sorted(glob.glob(str(res / "models/*/fold*/seed*/metrics.csv"))):
        m = pd.read_csv(f)
        best = int(m.val_loss.idxmin())
        last3 = m.val_loss.iloc[-3:]
        conv.append((str(Path(f).parent.relative_to(res / "models")), len(m), int(m.iteration.iloc[-1]),
                     int(m.epoch.iloc[best]), float(m.val_loss.min()), float(last3.mean()),
                     float(m.val_sigma_mad.iloc[best]), float(m.val_sigma_mad.iloc[-1]),
                     *_halves_slopes(m.val_loss.to_numpy())))
    if conv:
        print("\n## convergence per member: validation loss at its minimum and over the last 3 epochs;")
        print("## its least-squares slope per epoch over the first and the second half of the epochs")
        print(f"{'member':<28}{'epochs':>7}{'iters':>8}{'best ep':>8}{'min val_loss':>13}{'last-3 mean':>12}"
              f"{'rel. diff':>10}{'val smad best':>14}{'last':>8}{'slope 1st half':>15}{'slope 2nd half':>22}")
        for name, ne, it, be, vmin, vlast, sb, sl, s1, s2, e2 in conv:
            print(f"{name:<28}{ne:>7}{it:>8}{be:>8}{vmin:>13.4f}{vlast:>12.4f}{(vlast - vmin) / abs(vmin):>10.3%}"
                  f"{sb:>14.4f}{sl:>8.4f}{s1:>15.4f}{s2:>13.4f} +- {e2:.4f}")
        for trial in sorted({c[0].split("/")[0] for c in conv}):
            rows_t = [c for c in conv if c[0].split("/")[0] == trial]
            s1 = np.array([c[8] for c in rows_t])
            s2 = np.array([c[9] for c in rows_t])
            err2 = s2.std(ddof=1) / np.sqrt(len(s2)) if len(s2) > 1 else float("nan")
            print(f"{trial}: {len(rows_t)} members, best epoch = last for {sum(c[3] == c[1] for c in rows_t)}; "
                  f"mean val_loss slope per epoch: first half {s1.mean():+.4f}, second half {s2.mean():+.4f} +- {err2:.4f} "
                  f"(scatter of the members)")

    ens_p, knn_p = res / "ensemble/main.parquet", res / "knn/main.parquet"
    if ens_p.exists() and cat_path.exists():
        ens = pd.read_parquet(ens_p, columns=["specObjID", "fold", "z_spec", "z_phot", "pit", "crps"])
        ens = ens.merge(cat[["specObjID", "stripe82", "ebv"]], on="specObjID", how="left")
        print("\n## Stripe 82-like (deep, 4 epochs) against single-epoch galaxies: main trial, all folds")
        knn = pd.read_parquet(knn_p).merge(cat[["specObjID", "stripe82"]], on="specObjID") if knn_p.exists() else None
        for label, sel in (("deep (S82-like)", True), ("single-epoch", False)):
            e = ens[ens.stripe82 == sel]
            m, err = _pm(e.z_phot, e.z_spec)
            line = f"{label:<17} N={len(e):>6}  CNN sigma_MAD {m['sigma_mad']:.4f} +- {err['sigma_mad_err']:.4f}  eta {m['eta']:.2f}%"
            if knn is not None:
                k = knn[knn.stripe82 == sel]
                mk, ek = _pm(k.z_phot, k.z_spec)
                line += f"   kNN sigma_MAD {mk['sigma_mad']:.4f} +- {ek['sigma_mad_err']:.4f}  eta {mk['eta']:.2f}%"
            print(line)
        h = np.histogram(ens.pit, bins=10, range=(0, 1))[0] / len(ens)
        print("\n## PIT of the main ensemble (10 bins, fraction; flat = 0.100 each)")
        print(" ".join(f"{v:.3f}" for v in h))
        noebv_p = res / "ensemble/noebv.parquet"
        if noebv_p.exists():
            print("\n## bias against the catalogue's E(B-V), fold-0 test galaxies: slope d(dz)/d(E(B-V))")
            ne = pd.read_parquet(noebv_p, columns=["specObjID", "z_spec", "z_phot"]).merge(
                cat[["specObjID", "ebv"]], on="specObjID")
            f0 = ens[ens.fold == 0]
            rows = [("with E(B-V) input (main, fold 0)", f0), ("without E(B-V) input (noebv)", ne)]
            if knn is not None:
                kn0 = pd.read_parquet(knn_p, columns=["specObjID", "fold", "z_spec", "z_phot"])
                rows.append(("kNN (main, fold 0)", kn0[kn0.fold == 0].merge(cat[["specObjID", "ebv"]], on="specObjID")))
            edges = np.quantile(f0.z_spec, [0, 1 / 3, 2 / 3, 1])
            thirds = [f"z {edges[i]:.3f}-{edges[i + 1]:.3f}" for i in range(3)]
            print(f"{'':<36} {'all':>24}   " + "   ".join(f"{t:>17}" for t in thirds))
            for label, d in rows:
                dz = metrics.delta_z(d.z_phot.to_numpy(), d.z_spec.to_numpy())
                b, be, n = metrics.bias_slope(d.ebv.to_numpy(), dz)  # outliers (|dz| > 0.05) left out of the fit
                line = f"{label:<36} N={n:>5}  slope {b:+.4f} +- {be:.4f}"
                third = np.clip(np.searchsorted(edges, d.z_spec.to_numpy(), side="right") - 1, 0, 2)
                for i in range(3):  # the slope in thirds of z_spec (edges of main's fold-0 test galaxies)
                    bi, bei, _ = metrics.bias_slope(d.ebv.to_numpy()[third == i], dz[third == i])
                    line += f"   {bi:+.4f} +- {bei:.4f}"
                print(line)
            brightness_and_reddening(rows, cat_path)
            reddening_control(cat_path, load_config(a.configfile)["knn"])
    prov = run / "results/paper/variables.tex"
    if prov.exists():
        digest = re.search(r"\\newcommand\{\\ConfigDigest\}\{([^}]*)\}", prov.read_text())
        if digest:
            print(f"\nconfig digest (variables.tex): {digest.group(1)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
