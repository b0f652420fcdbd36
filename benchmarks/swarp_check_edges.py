#!/usr/bin/env python
"""Where the native resampler and SWarp disagree: a follow-up of a run's SWarp check.

    python benchmarks/swarp_check_edges.py --run-dir . [--per-group 8] > benchmarks/swarp_check_edges.txt

``results/cutouts/swarp_check.json`` keeps per-band summaries only. This
script remakes with SWarp the first ``--per-group`` galaxies of the check's
subset in every cutout group (as ``photoz.cutouts.swarp_check`` does: same
frames, same settings), and for every galaxy and band locates the pixel of
largest |native - SWarp| / sigma (sigma: ``swarp_check.background_sigma``).
It prints the distribution by the number of frames combined into the cube,
and, for the worst galaxies, where their centre lies on each of their frames
(distance to the frame's nearest edge, in frame pixels; negative: outside).
Needs SWarp and the run's frames (``tiles.delete_frames_after_cutouts: false``).
"""

from __future__ import annotations

import argparse
import bz2
import datetime
import io
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from photoz.cutouts import swarp_check as S  # noqa: E402
from photoz.cutouts.swarp import check_swarp  # noqa: E402
from photoz.sdss.frames import BANDS  # noqa: E402


def worst_pixels(res_dir, per_group, cfg):
    """One row per (galaxy, band): the largest |native - SWarp| / sigma and where it is."""
    chosen = np.asarray(json.loads((res_dir / "cutouts/swarp_check.json").read_text())["specObjID"], np.int64)
    cubes = {int(p.stem.split("-")[1]): p for p in sorted((res_dir / "cutouts").glob("group-*.npz"))}
    manifests = {g: res_dir / f"frames/group-{g}/MANIFEST.json" for g in cubes}
    galaxies = {g: np.intersect1d(np.load(p)["specObjID"].astype(np.int64), chosen)[:per_group] for g, p in cubes.items()}
    rows = []
    for g, _, res, native, nframes in S.remake_groups(cubes, manifests, galaxies, res_dir / "frames/galaxies.parquet",
                                                      res_dir / "catalog.parquet",
                                                      dict(cfg, threads=1, swarp_binary=check_swarp("auto")),
                                                      res_dir / "frames/frames.parquet"):
        if native is None:
            continue
        sigma = S.background_sigma(native)
        n = native.shape[-1]
        for i, sid in enumerate(res.specObjID):
            for b, band in enumerate(BANDS):
                d = np.abs(native[i, b] - res.cube[i, b]) / sigma[i, b]
                y, x = np.unravel_index(np.argmax(d), d.shape)
                rows.append({"group": g, "specObjID": int(sid), "band": band, "max_diff_sigma": float(d.max()),
                             "y": int(y), "x": int(x), "from_centre_pix": float(np.hypot(y - (n - 1) / 2, x - (n - 1) / 2)),
                             "pixel_snr": float(abs(res.cube[i, b, y, x]) / sigma[i, b]), "nframes": int(nframes[i, b])})
    return pd.DataFrame(rows)


def centre_on_frames(res_dir, sids):
    """For each galaxy: (field id, distance of its centre to that frame's nearest edge in pixels) per frame."""
    from astropy.io import fits
    from astropy.wcs import WCS

    g = pd.read_parquet(res_dir / "frames/galaxies.parquet", columns=["specObjID", "frames"]).set_index("specObjID")
    cat = pd.read_parquet(res_dir / "catalog.parquet", columns=["specObjID", "ra", "dec"]).set_index("specObjID")
    out = {}
    for sid in sids:
        ra, dec = cat.loc[sid, ["ra", "dec"]]
        per = []
        for fid in g.loc[sid, "frames"]:
            run, camcol, field = (int(v) for v in str(fid).split("-")[:3])
            p = res_dir / f"mock/sas/301/{run}/{camcol}/frame-r-{run:06d}-{camcol}-{field:04d}.fits.bz2"
            h = fits.getheader(io.BytesIO(bz2.decompress(p.read_bytes())), 0)
            x, y = WCS(h).all_world2pix(ra, dec, 0)
            per.append((str(fid), float(min(x, y, h["NAXIS1"] - 1 - x, h["NAXIS2"] - 1 - y))))
        out[sid] = per
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", default=".")
    p.add_argument("--per-group", type=int, default=8)
    a = p.parse_args(argv)
    res_dir = Path(a.run_dir) / "results"
    cfg = json.loads((res_dir / "cutouts/swarp_check.json").read_text())["settings"]
    print(f"# swarp_check_edges  {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"# command: python benchmarks/swarp_check_edges.py --run-dir {a.run_dir} --per-group {a.per_group}")
    df = worst_pixels(res_dir, a.per_group, cfg)
    print(f"{df.specObjID.nunique()} galaxies of the SWarp check's subset remade ({a.per_group} per group), "
          f"{len(df)} galaxy-bands")
    print("\n## largest |native - SWarp| / sigma per galaxy-band, by frames combined into the cube")
    for nf, sub in df.groupby("nframes"):
        print(f"{nf} frame(s): {len(sub):4d} galaxy-bands; median {sub.max_diff_sigma.median():.1e}, "
              f"max {sub.max_diff_sigma.max():.3g}; over 1 sigma: {(sub.max_diff_sigma > 1).sum()}")
    worst = df.sort_values("max_diff_sigma", ascending=False).drop_duplicates("specObjID").head(10)
    where = centre_on_frames(res_dir, [int(s) for s in worst.specObjID])
    print("\n## the 10 worst galaxies: their centre's distance (frame pixels) to each frame's nearest edge")
    for _, r in worst.iterrows():
        frames = " | ".join(f"{fid}: {d:+.0f}" for fid, d in where[int(r.specObjID)])
        print(f"{r.max_diff_sigma:6.2f} sigma ({r.band}, pixel SNR {r.pixel_snr:5.1f}, {r.from_centre_pix:4.1f} px "
              f"from the stamp centre, {r.nframes} frames)  {frames}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
