#!/usr/bin/env python
"""The stages before training, before and after issue 26, side by side in one run.

Two checkouts of the project (``--before``, by default f71017b, the commit
issue 26 measured; ``--after``, by default HEAD) each run the embedded default
of their own commit (its own config.yaml: the mock's size, the resampler, the
groups) from an empty ``results/``, stage by stage, the two checkouts taking
turns at every stage:

    mock sky     snakemake --until mock_sky_merge   (render, write and measure the frames; merge)
    query        snakemake --until frame_index      (SkyServer query and frame index)
    retrieval    snakemake --until retrieve         (every group's frames from the mock SAS)
    cutouts      snakemake --until cutouts          (every group's cubes)
    swarp check  snakemake --until swarp_check

each as the workflow runs it (``--cores 2``). A stage's cost is the CPU time
of that Snakemake invocation and of every job it ran (``RUSAGE_CHILDREN``),
and its wall time; per galaxy it is divided by the galaxies the checkout's
frame index lists (``results/frames/galaxies.parquet``). Snakemake's own
start-up (a few CPU seconds per invocation) is in every row of both sides.

    python benchmarks/bench_stages_vs.py --scratch /tmp/stages > benchmarks/bench_stages_vs.txt

The machine should be otherwise idle (wall times are compared too). Both
checkouts use this checkout's ``.venv`` (the older commit's dependencies are a
subset of today's).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
STAGES = [("mock sky", "mock_sky_merge"), ("query", "frame_index"), ("retrieval", "retrieve"),
          ("cutouts", "cutouts"), ("swarp check", "swarp_check")]


def children_cpu():
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return c.ru_utime + c.ru_stime


def checkout(rev, dest):
    """A clone of this repository at ``rev`` in ``dest``, with this checkout's .venv linked."""
    if dest.exists():
        shutil.rmtree(dest)
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(dest)], check=True)
    subprocess.run(["git", "-C", str(dest), "checkout", "-q", rev], check=True)
    (dest / ".venv").symlink_to(ROOT / ".venv")
    return subprocess.run(["git", "-C", str(dest), "rev-parse", "--short", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def run_stage(dest, rule, log):
    """CPU and wall seconds of ``snakemake --until rule`` in ``dest``."""
    env = dict(os.environ, PATH=f"{dest / '.venv' / 'bin'}:{os.environ['PATH']}")
    env.pop("PYTHONPATH", None)
    c0, w0 = children_cpu(), time.perf_counter()
    with open(log, "a") as fh:
        res = subprocess.run([str(dest / ".venv" / "bin" / "snakemake"), "--cores", "2", "--until", rule],
                             cwd=dest, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if res.returncode:  # e.g. a rule the older commit's default does not run (no SWarp check before issue 26)
        print(f"# {dest}: snakemake --until {rule} failed (log: {log}); stage not compared", file=sys.stderr)
        return None
    return children_cpu() - c0, time.perf_counter() - w0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="f71017b")
    ap.add_argument("--after", default="HEAD")
    ap.add_argument("--scratch", required=True, help="where the two checkouts run (emptied first)")
    a = ap.parse_args(argv)
    scratch = Path(a.scratch).resolve()
    scratch.mkdir(parents=True, exist_ok=True)
    sides = {}
    for name, rev in (("before", a.before), ("after", a.after)):
        sides[name] = (scratch / name, checkout(rev, scratch / name))
    t_start = time.time()
    cost = {}
    for stage, rule in STAGES:
        for name, (dest, _) in sides.items():
            cost[(stage, name)] = run_stage(dest, rule, scratch / f"{name}.log")
            if cost[(stage, name)]:
                print(f"# {stage:12s} {name:6s} {cost[(stage, name)][0]:8.1f} CPU s {cost[(stage, name)][1]:7.1f} wall s",
                      file=sys.stderr, flush=True)
    n_gal = {name: len(pd.read_parquet(dest / "results" / "frames" / "galaxies.parquet", columns=["specObjID"]))
             for name, (dest, _) in sides.items()}
    n_frames = {name: len(list((dest / "results" / "mock").rglob("frame-*.fits.bz2")))
                for name, (dest, _) in sides.items()}
    print("# bench_stages: the stages before training, before and after, side by side (benchmarks/bench_stages_vs.py)")
    print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.node()} "
          f"{platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}; "
          f"{(time.time() - t_start) / 60:.1f} min in all")
    for name, (dest, rev) in sides.items():
        print(f"{name}: {rev} (its own config.yaml): {n_gal[name]} galaxies, {n_frames[name]} mock frames")
    print()
    print(f"{'stage':12s} {'before CPU s':>12s} {'after CPU s':>12s} {'before ms/gal':>13s} {'after ms/gal':>13s} "
          f"{'cheaper':>8s} {'before wall s':>13s} {'after wall s':>12s}")
    tot = {"before": [0.0, 0.0], "after": [0.0, 0.0]}
    for stage, _ in STAGES:
        if not (cost[(stage, "before")] and cost[(stage, "after")]):
            print(f"{stage:12s} not run by both")
            continue
        (cb, wb), (ca, wa) = cost[(stage, "before")], cost[(stage, "after")]
        pb, pa = 1000 * cb / n_gal["before"], 1000 * ca / n_gal["after"]
        for name, (c, w) in (("before", (cb, wb)), ("after", (ca, wa))):
            tot[name][0] += c
            tot[name][1] += w
        print(f"{stage:12s} {cb:12.1f} {ca:12.1f} {pb:13.1f} {pa:13.1f} {pb / pa:7.2f}x {wb:13.1f} {wa:12.1f}")
    (cb, wb), (ca, wa) = tot["before"], tot["after"]
    pb, pa = 1000 * cb / n_gal["before"], 1000 * ca / n_gal["after"]
    print(f"{'all compared':12s} {cb:12.1f} {ca:12.1f} {pb:13.1f} {pa:13.1f} {pb / pa:7.2f}x {wb:13.1f} {wa:12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
