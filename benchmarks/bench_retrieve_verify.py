"""Retrieval of one group's frames from a run's mock SAS, with a given cap on simultaneous verifications.

Made to be timed from outside, one core, against itself with another cap (benchmarks/bench_retrieve_verify.txt):

    farm-bench --pin 0 -n 3 --timeout 900 -- .venv/bin/python benchmarks/bench_retrieve_verify.py --run-dir RUN --threads 1 \
        --vs '.venv/bin/python benchmarks/bench_retrieve_verify.py --run-dir RUN --threads 4'

``--threads 4`` with ``sdss.parallel_downloads`` 4 verifies up to 4 frames at once (what retrieval did before the
cap); ``--threads 1`` one at a time (a 1-thread retrieve job now). Each run fetches into a new temporary
directory the frames of the first ``--fields`` fields of the group (5 bands each) from ``file://RUN/results/mock/sas``.
"""

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from photoz.config import load_config
from photoz.sdss.sas import retrieve_group


def subset(galaxies, group, n_fields):
    """The galaxies of ``group`` whose frames all lie in its first ``n_fields`` fields (sorted keys)."""
    g = galaxies[galaxies["group"] == group]
    fields = sorted({k for lst in g["frames"] for k in lst})[:n_fields]
    keep = g["frames"].map(lambda lst: set(lst) <= set(fields))
    return g[keep]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--group", type=int, default=0)
    ap.add_argument("--fields", type=int, default=8)
    a = ap.parse_args()
    run = Path(a.run_dir).resolve()
    cfg = load_config(run / "config.yaml")["sdss"]
    gal = pd.read_parquet(run / "results/frames/galaxies.parquet", columns=["specObjID", "group", "frames"])
    sub = subset(gal, a.group, a.fields)
    with tempfile.TemporaryDirectory() as tmp:
        man = retrieve_group(sub, a.group, f"file://{run / 'results/mock/sas'}", Path(tmp) / "out", cfg,
                             threads=a.threads)
    print(f"{len(sub)} galaxies, {man['n_frames']} frames, threads {a.threads}, "
          f"parallel_downloads {cfg['parallel_downloads']}")


if __name__ == "__main__":
    main()
