"""The non-training stages of the default, before and after issue 26, side by side in one run.

Measured in one process on a finished run of the default (``--run-dir``, the
new default's results), each stage in CPU seconds (``time.process_time`` of
this process plus its waited-for children, e.g. SWarp) and per galaxy:

* mock sky: the frames of ``--fields`` field-epochs of run 9001 rendered,
  written and measured as ``mock-sky-chunk`` does, at the old density
  (5,000 targets/deg^2) and the new one (6,500); per target galaxy on them;
* retrieval: ``retrieve_group`` of one group from the run's mock SAS
  (file://) into a temporary folder; per galaxy of the group, at the old
  (4 groups over 12 fields, from ``--old-frames-per-galaxy``) and the new
  frame sharing;
* cutouts: the same ``--galaxies`` galaxies of that group cut with the old
  default (SWarp, chunks of 256) and the new one (native Lanczos-3, one chunk);
  the cubes compared in units of the noise (``swarp_check.compare_cubes``);
* SWarp check: ``swarp_check`` of ``--check`` galaxies drawn from the run, its
  cost spread over every galaxy of the run (the old default had none, its
  cutouts were all SWarp's).

    python benchmarks/bench_stages.py --run-dir . > benchmarks/bench_stages.txt
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def cpu():
    """CPU seconds of this process and its waited-for children."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


class Timer:
    def __enter__(self):
        self.c0, self.w0 = cpu(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.cpu, self.wall = cpu() - self.c0, time.perf_counter() - self.w0


def mock_sky(density, n_fields, workdir):
    """CPU seconds and target galaxies of ``n_fields`` field-epochs of the default at ``density``."""
    from photoz.config import load_config
    from photoz.mock import chunk as ch
    from photoz.mock import geometry as geo
    from photoz.mock.population import cell_population, natural_target_density
    from photoz.mock.render import frame_hdul, render_frame, write_frame

    mock = dict(load_config().get("mock"))
    mock["target_density"] = float(density)
    natural_target_density()
    cells = geo.cells(mock)
    by_key = {(c.entry, c.camcol, c.field): c for c in cells}
    frs = [fr for fr in geo.frames(mock) if fr.run == 9001][:n_fields]
    n_gal, nbytes = 0, 0
    with Timer() as t:
        for fr in frs:
            cell = by_key[(fr.entry, fr.camcol, fr.field)]
            objs = ch.frame_objects(mock, cell, by_key)
            cond = geo.frame_conditions(mock, fr)
            out = render_frame(mock, fr, objs, cond)
            for b in geo.BANDS:
                nbytes += write_frame(Path(workdir) / f"{b}.fits.bz2", frame_hdul(mock, fr, b, out, cond))
            ch.measure_cell(mock, cell, fr, objs, out, cond)
            own = cell_population(mock, cell)
            n_gal += int((own["kind"] == "galaxy").sum())
    return t.cpu, n_gal, nbytes / (5 * len(frs))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", default=".")
    p.add_argument("--fields", type=int, default=2, help="field-epochs rendered per density")
    p.add_argument("--group", type=int, default=0)
    p.add_argument("--galaxies", type=int, default=256, help="galaxies cut by both resamplers")
    p.add_argument("--check", type=int, default=40, help="galaxies of the SWarp check")
    a = p.parse_args()
    from photoz.config import load_config
    from photoz.cutouts.group import FrameSet, load_group_galaxies, make_cutouts
    from photoz.cutouts.swarp_check import background_sigma, compare_cubes, swarp_check
    from photoz.sdss.sas import retrieve_group

    run = Path(a.run_dir).resolve()
    res = run / "results"
    cfg = load_config()
    cut = cfg["cutouts"]
    print(f"bench_stages  {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores (shared: CPU seconds, "
          f"not wall, are compared); python {platform.python_version()}")
    print(f"run: {run}; one process, stages one after the other, 1 thread\n")
    n_run = len(pd.read_parquet(res / "shards" / "catalog.parquet", columns=["specObjID"]))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # --- mock sky
        for label, dens in (("before (5,000/deg^2)", 5000.0), ("after (6,500/deg^2)", 6500.0)):
            c, n, size = mock_sky(dens, a.fields, tmp)
            rows.append(("mock sky", label, c, n, f"{a.fields} field-epochs, {size / 1e6:.2f} MB per frame file"))
        # --- retrieval of one group
        gal = pd.read_parquet(res / "frames" / "galaxies.parquet", columns=["specObjID", "group", "frames"])
        n_grp = int((gal["group"] == a.group).sum())
        with Timer() as t:
            man = retrieve_group(gal, a.group, "file://" + str(res / "mock" / "sas"), tmp / "frames",
                                 dict(cfg["sdss"], parallel_downloads=1))
        rows.append(("retrieval", "group %d" % a.group, t.cpu, n_grp,
                     f"{man['n_frames']} frames, {t.cpu / max(man['n_frames'], 1):.2f} s per frame"))
        # --- cutouts: SWarp (old default) against native (new) on the same galaxies
        g = load_group_galaxies(res / "frames" / "galaxies.parquet", res / "catalog.parquet", a.group)
        g = g.sort_values("specObjID").iloc[: a.galaxies]
        frames = FrameSet.from_manifest(res / "frames" / f"group-{a.group}" / "MANIFEST.json")
        with Timer() as t:
            sw = make_cutouts(g, frames, dict(cut, resampler="swarp", chunk_galaxies=256), workdir=tmp, group=a.group)
        rows.append(("cutouts", "before (SWarp, chunks of 256)", t.cpu, len(g), ""))
        with Timer() as t:
            nat = make_cutouts(g, frames, dict(cut, resampler="native", chunk_galaxies=8192), group=a.group)
        rows.append(("cutouts", "after (native, one chunk)", t.cpu, len(g), ""))
        both = np.intersect1d(sw.specObjID, nat.specObjID)
        i_s = np.searchsorted(sw.specObjID, both)
        i_n = np.searchsorted(nat.specObjID, both)
        cmp = compare_cubes(nat.cube[i_n], sw.cube[i_s], background_sigma(nat.cube[i_n]))
        worst = max(v["p95_abs_diff_sigma"] for v in cmp.values() if v.get("p95_abs_diff_sigma") is not None)
        # --- the SWarp check of the new default, spread over the run's galaxies
        groups = sorted(int(q.name.split("-")[1].split(".")[0]) for q in (res / "cutouts").glob("group-*.npz"))
        with Timer() as t:
            chk = swarp_check([res / "cutouts" / f"group-{q}.npz" for q in groups],
                              [res / "frames" / f"group-{q}" / "MANIFEST.json" for q in groups],
                              res / "frames" / "galaxies.parquet", res / "catalog.parquet",
                              dict(cut, swarp_check_galaxies=a.check), cfg["seed"], frames_path=res / "frames" / "frames.parquet", workdir=tmp)
        rows.append(("swarp check", f"after ({a.check} galaxies)", t.cpu, n_run,
                     f"{t.cpu / max(chk.get('n_compared', a.check), 1):.2f} s per checked galaxy"))
    print(f"{'stage':12s} {'setting':32s} {'CPU s':>8s} {'galaxies':>9s} {'CPU ms/galaxy':>14s}  note")
    for st, lab, c, n, note in rows:
        print(f"{st:12s} {lab:32s} {c:8.1f} {n:9d} {1000 * c / max(n, 1):14.1f}  {note}")
    print(f"\nnative against SWarp on the {len(both)} galaxies cut by both: 95th percentile of |native - SWarp| "
          f"/ sigma, worst band: {worst:.2g}")
    print(json.dumps({"n_run_galaxies": n_run}))


if __name__ == "__main__":
    main()
