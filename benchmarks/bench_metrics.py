"""Time every metric of photoz.metrics on a full-scale sample (default 500,000 galaxies x 180 bins).

    python benchmarks/bench_metrics.py [--n 500000] [--bootstrap 200] [--knn-train 0]

Prints one line per metric (seconds) and the total; the committed output is
benchmarks/bench_metrics.txt. ``--knn-train N`` also times the kNN baseline
(N training galaxies, n/5 test galaxies: one cross-validation fold).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import numpy as np

from photoz import bins, metrics


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=500_000)
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--knn-train", type=int, default=0)
    a = p.parse_args()
    import pandas
    import scipy
    import sklearn

    print(f"# bench_metrics  {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
    print(f"# machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus, "
          f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
          f"pandas {pandas.__version__}, scikit-learn {sklearn.__version__}")
    rng = np.random.default_rng(0)
    n = a.n
    e = bins.edges(180, 0.0, 0.4)
    mid = bins.midpoints(180, 0.0, 0.4)
    z_spec = rng.uniform(0.01, 0.39, n)
    sig = rng.uniform(0.004, 0.03, n).astype(np.float32)
    mu = (z_spec + rng.normal(0, 1, n) * sig).astype(np.float32)
    pdf = np.exp(-0.5 * ((mid[None, :].astype(np.float32) - mu[:, None]) / sig[:, None]) ** 2)
    pdf /= pdf.sum(1, keepdims=True)
    print(f"# sample: {n:,} galaxies x {pdf.shape[1]} bins (float32 PDFs, {pdf.nbytes / 2**20:.0f} MiB)")
    total = 0.0
    results = {}
    steps = [
        ("z_phot (sum z_k p_k)", lambda: metrics.z_phot(pdf, mid)),
        ("pit", lambda: metrics.pit(pdf, z_spec, e)),
        ("crps", lambda: metrics.crps(pdf, z_spec, e)),
        ("width68", lambda: metrics.width(pdf, e)),
    ]
    for name, fn in steps:
        t = time.perf_counter()
        results[name] = fn()
        dt = time.perf_counter() - t
        total += dt
        print(f"{name:<34s} {dt:8.2f} s")
    zp = results["z_phot (sum z_k p_k)"]
    t = time.perf_counter()
    m = metrics.point_metrics(zp, z_spec)
    dt = time.perf_counter() - t
    total += dt
    print(f"{'bias, sigma_MAD, eta':<34s} {dt:8.2f} s   (sigma_MAD={m['sigma_mad']:.5f})")
    t = time.perf_counter()
    metrics.bootstrap(zp, z_spec, a.bootstrap, seed=1)
    dt = time.perf_counter() - t
    total += dt
    print(f"{f'bootstrap x{a.bootstrap} (3 metrics)':<34s} {dt:8.2f} s")
    print(f"{'total':<34s} {total:8.2f} s")
    if a.knn_train:
        from photoz.knn import fit_predict

        x = rng.normal(size=(a.knn_train + n // 5, 5))
        zz = 0.1 + 0.02 * x[:, 0] + 0.01 * rng.normal(size=len(x))
        t = time.perf_counter()
        fit_predict(x[: a.knn_train], zz[: a.knn_train], x[a.knn_train:], k=100, clip_sigma=3.0)
        print(f"{f'knn k=100: {a.knn_train:,} train, {n // 5:,} test':<34s} {time.perf_counter() - t:8.2f} s")


if __name__ == "__main__":
    main()
