#!/usr/bin/env python
"""How much a trial's test sigma_MAD moves from member to member: the scatter a rerun can show.

    python benchmarks/member_scatter.py --run-dir RUN [--trial main] [--configfile PRESET]

For each fold of ``--trial`` in a finished run: every member's test sigma_MAD
(its own PDFs, ``results/predictions/{trial}/fold{f}/seed{s}.npz``), the
ensemble's (the members' PDFs averaged, as ``photoz ensemble`` does), and the
kNN's on the same galaxies. Below: the spread of single members (standard
deviation), the expected standard deviation of an M-member fold ensemble from
a rerun with other seeds (the members' spread / sqrt(M), as if the members'
errors were independent), and of the fold mean.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from photoz import bins as zbins  # noqa: E402
from photoz import metrics  # noqa: E402
from photoz.config import load_config  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--trial", default="main")
    ap.add_argument("--configfile", default=None, help="the run's preset (its bins); config.yaml if omitted")
    a = ap.parse_args(argv)
    run = Path(a.run_dir)
    cfg = load_config(Path(a.configfile) if a.configfile else ROOT / "config.yaml")
    b = cfg["bins"]
    mid = zbins.midpoints(b["n"], b["z_min"], b["z_max"])
    cat = pd.read_parquet(run / "results" / "shards" / "catalog.parquet", columns=["specObjID", "z"]).set_index("specObjID")
    knn = pd.read_parquet(run / "results" / "knn" / f"{a.trial}.parquet").set_index("specObjID")
    folds = sorted((run / "results" / "predictions" / a.trial).glob("fold*"), key=lambda p: int(p.name[4:]))
    print(f"# member_scatter: {run.resolve()}, trial {a.trial}")
    print(f"{'fold':>4s} {'N':>6s} {'members':>30s} {'ensemble':>9s} {'kNN':>7s} {'CNN/kNN':>8s}")
    spreads, ens_all, ratios, m_count = [], [], [], []
    for fd in folds:
        files = sorted(fd.glob("seed*.npz"))
        pdfs, ids = [], None
        for f in files:
            d = np.load(f)
            if ids is None:
                ids = d["specObjID"]
            elif not np.array_equal(ids, d["specObjID"]):
                raise SystemExit(f"{f}: other galaxies than {files[0]}")
            pdfs.append(d["pdf"].astype(np.float64))
        z = cat.loc[ids, "z"].to_numpy()
        single = [metrics.sigma_mad(metrics.delta_z(metrics.z_phot(p, mid), z)) for p in pdfs]
        ens = metrics.sigma_mad(metrics.delta_z(metrics.z_phot(np.mean(pdfs, axis=0), mid), z))
        kn = metrics.sigma_mad(metrics.delta_z(knn.loc[ids, "z_phot"].to_numpy(), z))
        spreads.append(np.std(single, ddof=1) if len(single) > 1 else np.nan)
        ens_all.append(ens)
        ratios.append(ens / kn)
        m_count.append(len(single))
        print(f"{fd.name[4:]:>4s} {len(ids):6d} {' '.join(f'{s:.4f}' for s in single):>30s} {ens:9.4f} {kn:7.4f} {ens / kn:8.3f}")
    sd = float(np.sqrt(np.nanmean(np.square(spreads))))
    m = int(np.median(m_count))
    print(f"member-to-member standard deviation of the test sigma_MAD (pooled over folds): {sd:.4f}")
    print(f"expected rerun scatter (other seeds): one {m}-member fold ensemble <= {sd / np.sqrt(m):.4f}; "
          f"the mean of {len(folds)} folds <= {sd / np.sqrt(m * len(folds)):.4f}")
    print(f"fold-mean CNN/kNN {np.mean(ratios):.3f}; fold-0 CNN/kNN {ratios[0]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
