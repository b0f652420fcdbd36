"""Frame-index query time for 500,000 random galaxy positions.

A synthetic footprint with the SDSS frame geometry: 4 stripes of 6 camcols
x 700 fields (~16,800 frames, single epoch) plus a Stripe 82-like patch of 40
epochs (6 camcols x 300 fields x 40 runs = 72,000 frames), rotated rectangles
as in the real survey. 500,000 positions are drawn uniformly inside the
footprint (450,000 in the single-epoch stripes, 50,000 in Stripe 82), and the
index answers which frames overlap each 64x64 cutout (25.3"), and which frames
contain each centre (epochs). Output: benchmarks/bench_frame_index.txt.

    python benchmarks/bench_frame_index.py [--n 500000]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy

from photoz.frame_index import FrameIndex, assign_groups

W, H = 2048 * 0.396 / 3600, 1489 * 0.396 / 3600  # frame size, deg
STEP = (1489 - 128) * 0.396 / 3600  # consecutive fields overlap by 128 rows


def strip_frames(ra0, dec0, n_camcol, n_field, jitter, rng):
    """Frames of one run: camcols side by side in dec, fields along RA."""
    rows = []
    for c in range(n_camcol):
        dec = dec0 + (c - n_camcol / 2) * 0.2515 + rng.normal(0, jitter)
        ra_c = ra0 + np.arange(n_field) * STEP / np.cos(np.radians(dec)) + rng.normal(0, jitter, n_field)
        hw = H / 2 / np.cos(np.radians(dec))
        hh = W / 2
        rows.append(pd.DataFrame({"ra_c": ra_c % 360, "dec_c": np.full(n_field, dec),
                                  "ra_0": (ra_c - hw) % 360, "dec_0": dec - hh, "ra_1": (ra_c + hw) % 360,
                                  "dec_1": dec - hh, "ra_2": (ra_c + hw) % 360, "dec_2": dec + hh,
                                  "ra_3": (ra_c - hw) % 360, "dec_3": dec + hh}))
    return pd.concat(rows, ignore_index=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500_000)
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".txt")))
    a = ap.parse_args()
    load = os.getloadavg()[0]
    rng = np.random.default_rng(0)
    parts = [strip_frames(130.0, dec, 6, 700, 0.0, rng) for dec in (10.0, 20.0, 35.0, 50.0)]
    parts += [strip_frames(0.0, 0.0, 6, 300, 0.002, rng) for _ in range(40)]  # Stripe 82: 40 epochs
    frames = pd.concat(parts, ignore_index=True)
    n_s82 = a.n // 10
    n_main = a.n - n_s82
    stripe = rng.integers(0, 4, n_main)
    dec_main = np.array([10.0, 20.0, 35.0, 50.0])[stripe] + rng.uniform(-0.7, 0.7, n_main)
    ra_main = 130.0 + rng.uniform(0.3, 700 * STEP / np.cos(np.radians(dec_main)) - 0.3)
    ra = np.concatenate([ra_main, rng.uniform(0.3, 300 * STEP - 0.3, n_s82)])
    dec = np.concatenate([dec_main, rng.uniform(-0.7, 0.7, n_s82)])

    t0 = time.perf_counter()
    index = FrameIndex(frames)
    t1 = time.perf_counter()
    gi, fi = index.overlapping(ra, dec, 64 * 0.396 / 3600 / 2)
    t2 = time.perf_counter()
    cg, cf = index.containing(ra, dec)
    t3 = time.perf_counter()
    from astropy import units as u
    from astropy_healpix import HEALPix

    tiles = HEALPix(nside=64, order="nested").lonlat_to_healpix(ra * u.deg, dec * u.deg)
    assign_groups(tiles, 400)
    t4 = time.perf_counter()
    per_gal = np.bincount(gi, minlength=len(ra))
    lines = [
        f"# bench_frame_index  {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"# machine: {platform.node()} {platform.machine()} {platform.processor() or ''} python {platform.python_version()}"
        f" numpy {np.__version__} scipy {scipy.__version__} pandas {pd.__version__}; {os.cpu_count()} cores,"
        f" load average {load:.1f} at start (shared machine)",
        f"frames: {len(frames)}  galaxies: {len(ra)}",
        f"build index: {t1 - t0:.2f} s",
        f"overlap query (64x64 cutouts): {t2 - t1:.2f} s  -> {len(gi)} pairs, "
        f"frames per galaxy median {np.median(per_gal):.0f} max {per_gal.max()}",
        f"containing query (epochs): {t3 - t2:.2f} s  -> {len(cg)} pairs",
        f"tiles + groups (nside 64, 400 groups): {t4 - t3:.2f} s",
        f"total: {t4 - t0:.2f} s",
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
