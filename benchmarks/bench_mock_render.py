"""Rendering throughput of the mock: galaxies per second per core.

Renders the field-epochs of one cell-sized chunk of the default config on one
core (single-threaded), separately timing GalSim rendering + noise, the frame
files (FITS + bz2) and the sep photometry, and prints galaxies/s per core.

    python benchmarks/bench_mock_render.py [--fields 2] [--out benchmarks/bench_mock_render.txt]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--fields", type=int, default=2, help="field-epochs to render")
    p.add_argument("--out")
    a = p.parse_args()
    import galsim
    import sep

    from photoz.config import load_config
    from photoz.mock import chunk as ch
    from photoz.mock import geometry as geo
    from photoz.mock.population import natural_target_density
    from photoz.mock.render import frame_hdul, render_frame, write_frame

    mock = load_config().get("mock")
    natural_target_density()  # template grid and LF tables, once per process
    cells = geo.cells(mock)
    by_key = {(c.entry, c.camcol, c.field): c for c in cells}
    frs = geo.frames(mock)[: a.fields]
    t_pop = t_render = t_write = t_meas = 0.0
    n_gal = n_obj = 0
    with tempfile.TemporaryDirectory() as tmp:
        for fr in frs:
            cell = by_key[(fr.entry, fr.camcol, fr.field)]
            t0 = time.perf_counter()
            objs = ch.frame_objects(mock, cell, by_key)
            t1 = time.perf_counter()
            cond = geo.frame_conditions(mock, fr)
            out = render_frame(mock, fr, objs, cond)
            t2 = time.perf_counter()
            for b in geo.BANDS:
                write_frame(Path(tmp) / f"{b}.fits.bz2", frame_hdul(mock, fr, b, out, cond))
            t3 = time.perf_counter()
            ch.measure_cell(mock, cell, fr, objs, out, cond)
            t4 = time.perf_counter()
            x, y = geo.frame_wcs(fr).all_world2pix(objs["ra"], objs["dec"], 0)
            on = (x > 0) & (x < geo.NCOL) & (y > 0) & (y < geo.NROW)
            n_gal += int((on & (objs["kind"] != "star")).sum())
            n_obj += int(on.sum())
            t_pop += t1 - t0
            t_render += t2 - t1
            t_write += t3 - t2
            t_meas += t4 - t3
    total = t_render + t_write + t_meas
    lines = [
        f"bench_mock_render  {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"machine: {platform.node()} {platform.machine()} {platform.processor() or ''} python {platform.python_version()}",
        f"versions: galsim {galsim.__version__}, sep {sep.__version__}, numpy {np.__version__}",
        f"config: default mock (target_density {mock['target_density']}/deg^2), {len(frs)} field-epochs x 5 bands, 1 core",
        f"objects on the frames: {n_obj} ({n_gal} galaxies incl. faint), per field-epoch {n_obj / len(frs):.0f}",
        f"population          {t_pop:7.2f} s",
        f"GalSim render+noise {t_render:7.2f} s  -> {n_gal / t_render:7.1f} galaxies/s/core (5 bands)",
        f"FITS + bz2 write    {t_write:7.2f} s  ({t_write / (5 * len(frs)):.2f} s per frame)",
        f"sep photometry      {t_meas:7.2f} s",
        f"end to end          {total:7.2f} s  -> {n_gal / total:7.1f} galaxies/s/core, "
        f"{total / len(frs):.1f} s per field-epoch",
    ]
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
