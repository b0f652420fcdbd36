#!/usr/bin/env python
"""The mock sky's cost per galaxy that does not depend on how the galaxies are drawn (issue 26, item 3).

    python benchmarks/mock_sky_floor.py --run-dir RUN [--fields 4] > benchmarks/mock_sky_floor.txt

Every frame the mock serves costs the same whatever is drawn on it: the camera's noise (Poisson and
read noise on 2048 x 1489 pixels, and the smooth sky; ``photoz.mock.render._observe``), the FITS file
of the real SDSS layout (``frame_hdul``) and its bz2 compression (the real ``frame-*.fits.bz2``). This
renders ``--fields`` field-epochs of the embedded default on one core, times those three steps per
frame, and scales them to the default run ``RUN`` (its frame count from the config, its galaxy count
from ``RUN/results/frames/galaxies.parquet``): a floor under the mock sky's CPU per galaxy that no
faster drawing or photometry can go below. It prints the floor beside issue 26's target (a third of
f71017b's 133.5 ms per galaxy, ``benchmarks/bench_stages_vs.txt``) and beside the whole stage of that
run (``benchmarks/bench_stages_vs.txt``'s "after": 86.3 ms per galaxy).
"""

from __future__ import annotations

import argparse
import bz2
import datetime
import io
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

#: f71017b's mock sky, CPU ms per galaxy (benchmarks/bench_stages_vs.txt, "before"); item 3 asks for a third
BEFORE_MS_PER_GALAXY = 133.5
#: the stage at 139001c (benchmarks/bench_stages_vs.txt, "after")
AFTER_MS_PER_GALAXY = 86.3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", required=True, help="a finished default run (its results/frames/galaxies.parquet)")
    ap.add_argument("--fields", type=int, default=4, help="field-epochs to render and time")
    a = ap.parse_args(argv)
    import galsim

    from photoz.config import load_config
    from photoz.mock import chunk as ch
    from photoz.mock import geometry as geo
    from photoz.mock.population import natural_target_density
    from photoz.mock.render import _observe, frame_hdul, render_frame

    mock = load_config(ROOT / "config.yaml").get("mock")
    n_gal = len(pd.read_parquet(Path(a.run_dir) / "results" / "frames" / "galaxies.parquet", columns=["specObjID"]))
    all_frames = geo.frames(mock)
    n_frames = len(all_frames) * len(geo.BANDS)
    natural_target_density()
    by_key = {(c.entry, c.camcol, c.field): c for c in geo.cells(mock)}
    t_noise, t_fits, t_bz2, sizes, t_render = [], [], [], [], 0.0
    for fr in all_frames[: a.fields]:
        cell = by_key[(fr.entry, fr.camcol, fr.field)]
        objs = ch.frame_objects(mock, cell, by_key)
        cond = geo.frame_conditions(mock, fr)
        t0 = time.process_time()
        out = render_frame(mock, fr, objs, cond)
        t_render += time.process_time() - t0
        for j, b in enumerate(geo.BANDS):
            rng = np.random.default_rng(j)
            t0 = time.process_time()
            _observe(out[b]["model"].astype(np.float64), cond, j, rng)
            t1 = time.process_time()
            buf = io.BytesIO()
            frame_hdul(mock, fr, b, out, cond).writeto(buf)
            t2 = time.process_time()
            data = bz2.compress(buf.getvalue(), 9)
            t3 = time.process_time()
            t_noise.append(t1 - t0)
            t_fits.append(t2 - t1)
            t_bz2.append(t3 - t2)
            sizes.append((len(buf.getvalue()), len(data)))
    per_frame = {"noise and sky": np.median(t_noise), "FITS bytes": np.median(t_fits), "bz2 compression": np.median(t_bz2)}
    fixed = sum(per_frame.values())
    floor = fixed * n_frames / n_gal * 1000
    target = BEFORE_MS_PER_GALAXY / 3
    print("# mock_sky_floor: the per-frame costs of the mock sky, per galaxy of the default run (benchmarks/mock_sky_floor.py)")
    print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.node()} "
          f"{platform.machine()}; python {platform.python_version()}, numpy {np.__version__}, galsim {galsim.__version__}")
    print(f"run: {Path(a.run_dir).resolve()}: {n_gal} galaxies, {n_frames} frames ({len(all_frames)} field-epochs x "
          f"{len(geo.BANDS)} bands), {n_gal / len(all_frames):.0f} galaxies per field-epoch")
    print(f"timed: {a.fields} field-epochs, {len(t_bz2)} frames, one core (process CPU time), median per frame; "
          f"FITS {np.median([s[0] for s in sizes]) / 1e6:.1f} MB -> bz2 {np.median([s[1] for s in sizes]) / 1e6:.1f} MB")
    print()
    print(f"{'per frame':24s} {'CPU s':>7s} {'ms per galaxy':>14s}")
    for name, t in per_frame.items():
        print(f"{name:24s} {t:7.3f} {t * n_frames / n_gal * 1000:14.1f}")
    print(f"{'fixed, together':24s} {fixed:7.3f} {floor:14.1f}")
    print(f"{'drawing (render_frame)':24s} {t_render / len(t_bz2):7.3f} {t_render / len(t_bz2) * n_frames / n_gal * 1000:14.1f}"
          "   (GalSim and the noise, for comparison)")
    print()
    print(f"item 3's target for the mock sky: {BEFORE_MS_PER_GALAXY} / 3 = {target:.1f} ms per galaxy; the stage now "
          f"(bench_stages_vs.txt): {AFTER_MS_PER_GALAXY} ms")
    print(f"the per-frame floor alone is {floor:.1f} ms per galaxy, {100 * floor / target:.0f} % of the target, leaving "
          f"{max(target - floor, 0):.1f} ms per galaxy for drawing, photometry and the population")
    return 0


if __name__ == "__main__":
    sys.exit(main())
