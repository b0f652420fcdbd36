"""SWarp versus the native Lanczos-3 resampler: agreement and speed.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_resample.py [--n-real 40] [--n-mock 40] [--out benchmarks/bench_resample.txt]

Two data sets:

* the real SDSS field 2583/2/136 (``../shared/data/sdss-field-2583-2-136``),
  5 bands, one frame per band, cutouts centred on the brightest sources
  and on random positions;
* a synthetic multi-epoch field (4 epochs x 5 bands, Gaussian galaxies) that
  exercises the median combination.

Agreement: median |native - SWarp| over all pixels in units of the noise sigma
(SDSS recipe for the real field, the injected sigma for the mock) and the
ratio of the integrated fluxes of the cutouts (bright sources only), both
from ``make_cutouts`` on the ``.fits.bz2`` frames.

Speed, in cutouts (5 bands) per CPU-second (= per second on one core; CPU
time of this process plus its SWarp child processes, so that the load of a
shared machine does not count; wall-clock time is printed beside it):

(a) resampling + combination with the frames already in memory. Native:
    ``resample_frame`` for every frame (all galaxies at once) and
    ``combine_median`` per galaxy and band. SWarp: cutting and writing the
    stamps, the SWarp process per galaxy and band, reading its output. The
    >= 20x target applies here.
(b) end to end, adding the reading (bz2 decoding) of the frames, amortised
    over the galaxies that share a frame: printed for the benchmark's own
    density (all galaxies on the same frames) and for 2 galaxies per frame
    and band (the SDSS spectroscopic density: about 55 galaxies per square
    degree, 0.037 square degree per frame), and measured directly with
    ``make_cutouts`` on the ``.fits.bz2`` files for the former.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic frames are a test fixture

from photoz.cutouts.group import _write_stamp, make_cutouts  # noqa: E402
from photoz.cutouts.native import combine_median, resample_frame  # noqa: E402
from photoz.cutouts.stamps import cut_stamp, grid_world, project, stamp_box  # noqa: E402
from photoz.cutouts.swarp import run_swarp  # noqa: E402
from photoz.cutouts.swarp_check import compare_cubes  # noqa: E402
from photoz.sdss.frames import BANDS, noise_sigma, read_frame, read_photofield_calibration  # noqa: E402
from synthetic_frames import cutouts_section, synthetic_frame  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "sdss-field-2583-2-136"


def _compare(nat, sw, sigma, bright):
    """(band, median |native - SWarp| / sigma, median flux ratio, max |ratio - 1|) per band.

    ``photoz.cutouts.swarp_check.compare_cubes`` (the run's own SWarp check uses it too),
    with one sigma per band and the flux of the whole cutout of the ``bright`` sources.
    """
    per = compare_cubes(nat.cube, sw.cube, np.array([[sigma[b] for b in BANDS]]), BANDS, aperture_radius=None,
                        ratio_min_snr=0.0, ratio_galaxies=bright)
    return [(band, per[band]["median_abs_diff_sigma"], per[band]["median_flux_ratio"],
             per[band]["max_abs_ratio_minus_1"]) for band in BANDS]


class Clock:
    """CPU time of this process and its children, and wall time."""

    def __enter__(self):
        self.c0, self.w0 = self._cpu(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.cpu, self.wall = self._cpu() - self.c0, time.perf_counter() - self.w0

    @staticmethod
    def _cpu():
        s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _timed(gal, frame_dir, resampler):
    with Clock() as c:
        res = make_cutouts(gal, frame_dir, cutouts_section(resampler=resampler, threads=1, chunk_galaxies=10_000))
    return res, c


def native_in_memory(frames, ra, dec):
    """Cutouts of all galaxies from in-memory frames ``{band: [Frame, ...]}`` with the native resampler."""
    cube = np.zeros((len(ra), len(BANDS), 64, 64), np.float32)
    for b, band in enumerate(BANDS):
        per = [resample_frame(f.image, f.wcs, ra, dec, 64, 0.396) for f in frames[band]]
        for i in range(len(ra)):
            items = [(v[i], c[i]) for v, c in per if c[i].any()]
            cube[i, b] = combine_median([v for v, _ in items], [c for _, c in items])[0]
    return cube


def swarp_in_memory(frames, ra, dec, tmp):
    """The same with SWarp: stamps cut and written, one SWarp run per galaxy and band, output read."""
    cube = np.zeros((len(ra), len(BANDS), 64, 64), np.float32)
    for b, band in enumerate(BANDS):
        stamps = [[] for _ in ra]
        for k, f in enumerate(frames[band]):
            x, y = project(f.wcs, *grid_world(ra, dec, 64, 0.396))
            for i in range(len(ra)):
                box = stamp_box(x[i], y[i], f.shape)
                if box is not None:
                    path = tmp / f"{i}-{band}-{k}.fits"
                    _write_stamp(path, *cut_stamp(f.image, f.header, box))
                    stamps[i].append(path)
        for i in range(len(ra)):
            cube[i, b] = run_swarp(stamps[i], (ra[i], dec[i]), (64, 0.396), workdir=tmp)[0]
            for path in stamps[i]:
                path.unlink()
    return cube


def speed(frames, ra, dec, read_cpu, title, lines):
    """Speed section: (a) in memory, (b) with the frame reading amortised."""
    n = len(ra)
    nfr = len(frames["r"])
    tmp = Path(tempfile.mkdtemp(prefix="bench-swarp-"))
    native_in_memory(frames, ra[:2], dec[:2])  # warm-up (imports, caches)
    with Clock() as cn:
        cube_n = native_in_memory(frames, ra, dec)
    with Clock() as cs:
        cube_s = swarp_in_memory(frames, ra, dec, tmp)
    shutil.rmtree(tmp)
    dn = float(np.median(np.abs(cube_n - cube_s)))
    lines.append(f"  speed ({title}; {n} galaxies, {nfr} frame(s) per band per galaxy; CPU s = process + children)")
    lines.append(f"  (a) in memory: native {cn.cpu:7.2f} CPU s ({cn.wall:6.2f} wall), {n / cn.cpu:8.2f} cutouts/s/core")
    lines.append(f"                 SWarp  {cs.cpu:7.2f} CPU s ({cs.wall:6.2f} wall), {n / cs.cpu:8.2f} cutouts/s/core")
    lines.append(f"      median |native - SWarp| of these cubes: {dn:.2e} nanomaggies")
    ratio = cs.cpu / cn.cpu
    lines.append(f"      native / SWarp speed ratio per galaxy (resampling + combination): {ratio:.1f}x "
                 f"(target >= 20x: {'met' if ratio >= 20 else f'NOT met, {20 / ratio:.2f}x short'})")
    lines.append(f"  (b) reading one frame (bz2 decode + FITS + WCS): {read_cpu:.2f} CPU s; per galaxy "
                 f"{5 * nfr} frame reads shared by the galaxies on the frame:")
    for gpf in (n, 2):
        read = 5 * nfr * read_cpu / gpf
        tn, ts = cn.cpu / n + read, cs.cpu / n + read
        lines.append(f"      {gpf:3d} galaxies per frame: native {1 / tn:7.2f}, SWarp {1 / ts:7.2f} cutouts/s/core, "
                     f"ratio {ts / tn:.2f}x")


def _read_all(paths):
    """Read frames ``{band: [path, ...]}``; returns the frames and the CPU time per frame read."""
    with Clock() as c:
        frames = {band: [read_frame(p) for p in ps] for band, ps in paths.items()}
    return frames, c.cpu / sum(len(ps) for ps in paths.values())


def real_field(n, rng, lines):
    from scipy.ndimage import maximum_filter, uniform_filter

    frames, read_cpu = _read_all({b: [REAL / f"frame-{b}-002583-2-0136.fits.bz2"] for b in BANDS})
    f = frames["r"][0]
    sm = uniform_filter(f.image, 5)
    peaks = (sm == maximum_filter(sm, 41)) & (sm > 0.3)
    m = 70
    peaks[:m], peaks[-m:], peaks[:, :m], peaks[:, -m:] = False, False, False, False
    y, x = np.nonzero(peaks)
    top = np.argsort(sm[y, x])[::-1][: n // 2]
    xs = np.r_[x[top] + rng.uniform(-0.5, 0.5, top.size), rng.uniform(m, 2048 - m, n - top.size)]
    ys = np.r_[y[top] + rng.uniform(-0.5, 0.5, top.size), rng.uniform(m, 1489 - m, n - top.size)]
    ra, dec = f.wcs.all_pix2world(xs, ys, 0)
    gal = pd.DataFrame({"specObjID": np.arange(1, n + 1, dtype=np.int64), "ra": ra, "dec": dec,
                        "frames": [["2583-2-136"]] * n})
    cal = read_photofield_calibration(REAL / "photoField-002583-2.fits", 136)
    sigma = {b: float(np.median(noise_sigma(frames[b][0], cal["gain"], cal["dark_variance"]))) for b in BANDS}
    title = "real field 2583/2/136 (1 frame per band)"
    nat, tn = _timed(gal, REAL, "native")
    sw, ts = _timed(gal, REAL, "swarp")
    report(title, n, nat, sw, tn, ts, sigma, np.arange(top.size), lines)
    speed(frames, ra, dec, read_cpu, "real field", lines)


def mock_field(n, rng, lines, epochs=4, noise=0.05):
    tmp = Path(tempfile.mkdtemp(prefix="bench-mock-"))
    ra0, dec0 = 150.0, 30.0
    pos = np.c_[ra0 + rng.uniform(-0.06, 0.06, n), dec0 + rng.uniform(-0.05, 0.05, n)]
    srcs = [(r, d, float(rng.uniform(5, 80)), float(rng.uniform(0.8, 3.0))) for r, d in pos]
    keys, paths = [], {b: [] for b in BANDS}
    for e in range(epochs):
        run = 9001 + e
        for b, band in enumerate(BANDS):
            path = tmp / f"frame-{band}-{run:06d}-1-0011.fits.bz2"
            synthetic_frame(path, ra0 + 2e-4 * e, dec0 - 1e-4 * e, band=band, run=run, shape=(1489, 2048),
                            sources=srcs, noise=noise, seed=100 * e + b)
            paths[band].append(path)
        keys.append(f"{run}-1-11")
    frames, read_cpu = _read_all(paths)
    gal = pd.DataFrame({"specObjID": np.arange(1, n + 1, dtype=np.int64), "ra": pos[:, 0], "dec": pos[:, 1],
                        "frames": [keys] * n})
    nat, tn = _timed(gal, tmp, "native")
    sw, ts = _timed(gal, tmp, "swarp")
    # the median of 4 epochs has a noise of about 1.25 sigma/sqrt(4)
    sigma = {b: noise * 1.2533 / np.sqrt(epochs) for b in BANDS}
    title = f"synthetic mock field ({epochs} epochs x 5 bands, 2048x1489 frames)"
    report(title, n, nat, sw, tn, ts, sigma, np.arange(n), lines)
    speed(frames, pos[:, 0], pos[:, 1], read_cpu, "mock", lines)
    shutil.rmtree(tmp)


def report(title, n, nat, sw, tn, ts, sigma, bright, lines):
    assert list(nat.specObjID) == list(sw.specObjID), "the two resamplers kept different galaxies"
    lines.append(f"\n## {title}: {n} galaxies, {len(nat)} kept by both")
    lines.append("  band  median|native-SWarp|/sigma  median flux ratio  max |ratio-1|")
    for band, dsig, ratio, worst in _compare(nat, sw, sigma, bright):
        lines.append(f"  {band}     {dsig:10.5f}                 {ratio:.6f}        {worst:.2e}")
    lines.append(f"  end to end, measured (make_cutouts on the .fits.bz2 frames, each frame read once for all "
                 f"{n} galaxies):")
    lines.append(f"      native {tn.cpu:7.2f} CPU s ({tn.wall:6.2f} wall), {len(nat) / tn.cpu:7.2f} cutouts/s/core")
    lines.append(f"      SWarp  {ts.cpu:7.2f} CPU s ({ts.wall:6.2f} wall), {len(sw) / ts.cpu:7.2f} cutouts/s/core, "
                 f"ratio {ts.cpu / tn.cpu:.2f}x")


def _cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-real", type=int, default=40)
    p.add_argument("--n-mock", type=int, default=40)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    import astropy

    sv = subprocess.run(["SWarp", "-v"], capture_output=True, text=True).stdout.strip() if shutil.which("SWarp") else "absent"
    lines = [
        "# bench_resample: SWarp vs native Lanczos-3 cutouts (64x64, 0.396\"/pix, median combination)",
        f"date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"machine: {platform.node()} {platform.machine()} {_cpu_model()}, {os.cpu_count()} cores "
        f"(shared with other jobs: load average {os.getloadavg()[0]:.1f}), python {platform.python_version()}",
        f"versions: {sv}; numpy {np.__version__}; astropy {astropy.__version__}",
        "targets: median |diff| < 0.05 sigma; flux ratio within 0.5%; native >= 20x faster per galaxy",
    ]
    if (REAL / "frame-r-002583-2-0136.fits.bz2").exists():
        real_field(a.n_real, rng, lines)
    else:
        lines.append(f"\n(real field not found at {REAL}; skipped)")
    mock_field(a.n_mock, rng, lines)
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
