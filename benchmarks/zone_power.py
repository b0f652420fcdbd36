#!/usr/bin/env python
"""Can the zone search find a paper-sized zone at the mock-science preset's density? A design estimate.

    python benchmarks/zone_power.py > benchmarks/zone_power.txt

A synthetic residual map with the mock-science preset's footprint (its ``mock.runs``: 132 fields, the
mock's field geometry), ~182 test galaxies per field as in the preset's run (24,080 test galaxies),
per-galaxy residuals like the CNN's there (a core of 0.02 and 4 % outliers of 0.1: an all-galaxy
scatter of ~0.028) and a field-to-field scatter tau (0.0025 measured on that run's CNN residuals,
benchmarks/zone_rerun.txt). A zone of whole fields of run 9001 gets the paper's per-galaxy size: an
excess mean residual of 9 x (all-galaxy scatter) / sqrt(1807), the Z of 9 that the paper's zone has at
its 1,807 galaxies, at any count. The workflow's search (``photoz.zone.detect`` with the preset's
``zone`` settings, ``nside`` varied) runs on it; ``validate`` scores it against the zone's membership.
Nothing here is a result of the run: it sizes the injection and the search's cells before a 2-hour run.
"""

from __future__ import annotations

import datetime
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from photoz import zone  # noqa: E402
from photoz.config import load_config  # noqa: E402
from photoz.mock import geometry as geo  # noqa: E402

PRESET = load_config(ROOT / "config" / "mock-science.yaml")

CAMCOL_DEG = geo.CAMCOL_STEP * geo.PIXSCALE / 3600.0
FIELD_DEG = geo.FIELD_STEP * geo.PIXSCALE / 3600.0
PER_FIELD, TAU, CORE, OUT_FRAC, OUT_SD = 182, 0.0025, 0.02, 0.04, 0.1


def sky(rng, runs):
    """Positions, field ids and (camcol, field number) of run 9001 for every synthetic test galaxy.

    ``runs``: the preset's ``mock.runs`` (a multi-epoch run's fields count once: the catalogue's)."""
    ra, dec, fid, cc, fi = [], [], [], [], []
    for r in runs:
        for c in r["camcols"]:
            d0 = r["dec"] + (c - 3.5) * CAMCOL_DEG
            for f in range(r["n_fields"]):
                n = rng.poisson(PER_FIELD)
                dd = d0 + rng.uniform(-0.5, 0.5, n) * CAMCOL_DEG
                rr = r["ra_start"] + (f + rng.uniform(0, 1, n)) * FIELD_DEG / np.cos(np.radians(dd))
                ra.append(rr); dec.append(dd)
                fid.append(np.full(n, (r["run"] * 10 + c) * 10000 + geo.FIELD0 + f))
                cc.append(np.full(n, c if r["run"] == 9001 else 0))
                fi.append(np.full(n, geo.FIELD0 + f))
    return [np.concatenate(x) for x in (ra, dec, fid, cc, fi)]


def trial(rng, camcols, fields, size, nside):
    ra, dec, fid, cc, fi = sky(rng, PRESET["mock"]["runs"])
    n = len(ra)
    dz = np.where(rng.random(n) < OUT_FRAC, rng.normal(0, OUT_SD, n), rng.normal(0, CORE, n))
    ufid, inv = np.unique(fid, return_inverse=True)
    dz += rng.normal(0, TAU, len(ufid))[inv]
    inj = np.isin(cc, camcols) & np.isin(fi, fields)
    excess = size * 9.0 * np.std(dz) / np.sqrt(1807)
    dz[inj] += excess
    zc = {**PRESET["zone"], "nside": nside}
    res, _ = zone.detect(ra, dec, dz, zc, seed=int(rng.integers(1 << 30)), field=fid)
    ids = np.arange(n)
    v = zone.validate(res, ids, ra, dec, dz, ids, inj)
    return res, v, excess


def main():
    print("# zone_power: a paper-sized zone on a synthetic map at the mock-science preset's density "
          "(benchmarks/zone_power.py)")
    print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.node()}; "
          f"python {platform.python_version()}, numpy {np.__version__}")
    print(f"per field {PER_FIELD} test galaxies, tau {TAU}, residual core {CORE} with {OUT_FRAC:.0%} outliers of "
          f"{OUT_SD}; zone size in units of the paper's per-galaxy excess")
    cases = [((3, 4), (13, 14), 512), ((2, 3, 4), (13, 14, 15, 16), 512),
             ((2, 3, 4, 5), (13, 14, 15, 16), 512), ((2, 3, 4), (13, 14, 15, 16), 256)]
    seeds = range(1, 11)
    for camcols, fields, nside in cases:
        rows = []
        for seed in seeds:
            res, v, excess = trial(np.random.default_rng(seed), camcols, fields, 1.0, nside)
            rows.append((v["recovered"], v["jaccard"], v["n_spurious_zones"], v["n_injected"], v["z_injected"],
                         v["z_paper_scaled"], max([abs(z["z"]) for z in res["zones"]] or [0.0]), res["threshold_z"]))
        r = np.array(rows, dtype=float)
        print(f"zone of camcols {camcols} x fields {fields} ({len(camcols) * len(fields)} fields), nside {nside}: "
              f"{int(r[:, 0].sum())}/{len(r)} recovered; Jaccard median {np.median(r[:, 1]):.2f} "
              f"(min {r[:, 1].min():.2f}); spurious zones {int(r[:, 2].sum())}; {r[:, 3].mean():.0f} galaxies, "
              f"truth Z median {np.median(r[:, 4]):.1f} (paper at this count {r[:, 5].mean():.1f}); found |Z| median "
              f"{np.median(r[:, 6]):.1f} against threshold {np.median(r[:, 7]):.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
