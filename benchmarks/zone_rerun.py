#!/usr/bin/env python
"""The suspect-zone search rerun on finished runs' predictions, with and without the field term.

    python benchmarks/zone_rerun.py --run RUN_DIR[:PRESET] [--run ...] > benchmarks/zone_rerun.txt

``RUN_DIR`` is a finished mock run (``results/ensemble/main.parquet``, ``results/shards/catalog.parquet``,
``results/mock/truth.parquet``); ``PRESET`` its config file relative to it (default ``config.yaml``).
The search (``photoz.zone``, this checkout's code, the run's ``zone`` settings) runs twice on the
same residuals: as the workflow runs it (the field-to-field scatter in every statistic) and
without the field term (the search before it); each is then validated against the truth's
membership (``zone.validate``). The kNN's residuals, which the injection cannot reach (the kNN
reads the catalogue, measured on the correct images), are searched too, as a null map. Nothing
is retrained: the predictions are the run's.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from photoz import zone  # noqa: E402
from photoz.config import load_config  # noqa: E402


def _commit(path):
    try:
        return subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def report(run, preset):
    cfg = load_config(run / preset)
    df = zone._test_sample(run / "results/ensemble/main.parquet", run / "results/shards/catalog.parquet", controls=True)
    truth = pd.read_parquet(run / "results/mock/truth.parquet", columns=["specObjID", "in_suspect_zone"])
    dz = zone._dz(df)
    with_field, _ = zone.run_detect(df, cfg)
    controls = (df["ebv"], df["dered_petro_r"] + df["extinction_r"], df["z_spec"])
    without, _ = zone.detect(df["ra"], df["dec"], dz, cfg["zone"], controls, int(cfg["seed"]))
    print(f"## {run} ({preset}; the run's commit {_commit(run)}): {len(df)} test galaxies, zone nside "
          f"{cfg['zone']['nside']}, injected {cfg['mock']['suspect_zone_error_mag']} mag in "
          f"{cfg['mock']['suspect_zone_band']}")
    for name, res in (("with the field term (the workflow)", with_field), ("without the field term", without)):
        v = zone.validate(res, df["specObjID"].to_numpy(), df["ra"], df["dec"], dz, truth["specObjID"].to_numpy(),
                          truth["in_suspect_zone"].to_numpy())
        tau = res.get("field_scatter")
        print(f"{name}: field scatter tau {'-' if tau is None else f'{tau:.5f}'}, threshold |Z| "
              f"{res['threshold_z']:.2f}, zones found {res['n_zones']}; validation: {v['reason']}, Jaccard "
              f"{v['jaccard']:.2f}, spurious zones {v['n_spurious_zones']}; largest zone |Z| left after them "
              f"{res['max_abs_z_left']:.2f} against its threshold {res['threshold_z_left']:.2f}")
        for zd in res["zones"]:
            print(f"   Z {zd['z']:+6.1f}  {zd['n']:5d} galaxies  bias {zd['bias']:+.5f}  RA {zd['ra']:.2f} Dec {zd['dec']:.2f}")
    knn = zone._test_sample(run / "results/knn/main.parquet", run / "results/shards/catalog.parquet", controls=True)
    kres, _ = zone.run_detect(knn, cfg)
    print(f"the kNN's residuals (a null map: the kNN reads the catalogue, which the injection leaves correct): "
          f"tau {kres['field_scatter']:.5f}, zones found {kres['n_zones']} (threshold |Z| {kres['threshold_z']:.2f}, "
          f"largest zone |Z| {kres['max_abs_z']:.2f})")
    print(f"injected zone (truth): {v['n_injected']} test galaxies, bias {v['bias_injected']:+.5f} +- "
          f"{v['bias_injected_se']:.5f} against {v['bias_rest']:+.5f}, Z {v['z_injected']:.1f}; the paper's zone "
          f"at this count: Z {v['z_paper_scaled']:.1f}")
    print()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", required=True, help="RUN_DIR[:PRESET]")
    a = ap.parse_args(argv)
    import torch  # noqa: F401  (versions line only)

    print("# zone_rerun: the suspect-zone search on finished runs' predictions (benchmarks/zone_rerun.py)")
    print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.node()}; "
          f"this checkout {_commit(ROOT)}; python {platform.python_version()}, numpy {np.__version__}")
    print()
    for spec in a.run:
        run, _, preset = spec.partition(":")
        report(Path(run), preset or "config.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
