"""Drive the real SWarp binary on WCS-preserving stamps.

One SWarp call makes one cutout (one galaxy, one band): all the stamps of the
band's overlapping frames (all epochs) are resampled with SWarp's defaults
(Lanczos-3, ``FSCALASTRO_TYPE FIXED``, ``COMBINE_TYPE MEDIAN``) onto a TAN
grid centred on the galaxy, ``0.396"``/pixel, 64x64, without background
subtraction (``SUBTRACT_BACK N``). Calls for many galaxies run in parallel
(``threads`` processes) and each reads only its small stamps.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

__all__ = ["SwarpError", "find_swarp", "check_swarp", "swarp_command", "run_swarp", "run_swarp_batch"]


class SwarpError(RuntimeError):
    """SWarp is missing or failed on a cutout."""


INSTALL_HINT = ("install SWarp: the Debian/Ubuntu package `swarp` (apt-get install swarp; binary SWarp) or the "
                "conda package `astromatic-swarp` (conda install -c conda-forge astromatic-swarp, as in "
                "envs/cutouts.yaml; binary swarp); or set cutouts.swarp_binary to its path, or use "
                "cutouts.resampler: native")


def find_swarp(binary="auto"):
    """Path of the SWarp executable (Debian names it ``SWarp``, conda ``swarp``)."""
    names = ["SWarp", "swarp"] if binary in (None, "auto") else [binary]
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise SwarpError(f"SWarp executable not found (cutouts.swarp_binary: {binary}; looked for "
                     f"{', '.join(names)} on PATH); {INSTALL_HINT}")


def check_swarp(binary="auto", timeout=60):
    """Find SWarp and run ``SWarp -v`` once; return its path. Raises :class:`SwarpError` saying what to install."""
    exe = find_swarp(binary)
    try:
        proc = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as err:
        raise SwarpError(f"SWarp at {exe} does not run ({type(err).__name__}: {err}); {INSTALL_HINT}") from None
    text = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 or "swarp" not in text.lower():
        raise SwarpError(f"SWarp at {exe} is broken (`{exe} -v` exited {proc.returncode}: "
                         f"{text[-300:] or 'no output'}); {INSTALL_HINT}")
    return exe


#: SWarp's outputs in its working folder: the cutout and its weight map
COADD, COADD_WEIGHT = "coadd.fits", "coadd.weight.fits"


def swarp_command(binary, stamps, centre, grid, out_dir, nthreads=1):
    """The SWarp command line of one cutout (a list of arguments).

    ``centre``: (RA, Dec) in degrees; ``grid``: (size in pixels, pixel scale in arcsec);
    the outputs (``COADD``, ``COADD_WEIGHT``) and SWarp's resampled stamps go to ``out_dir``.
    """
    (ra, dec), (size, pixel_scale) = centre, grid
    return [
        binary, *map(str, stamps),
        "-c", os.devnull,
        "-IMAGEOUT_NAME", str(Path(out_dir) / COADD),
        "-WEIGHTOUT_NAME", str(Path(out_dir) / COADD_WEIGHT),
        "-SUBTRACT_BACK", "N",
        "-RESAMPLING_TYPE", "LANCZOS3",
        "-PROJECTION_TYPE", "TAN",
        "-CENTER_TYPE", "MANUAL",
        "-CENTER", f"{float(ra):.10f},{float(dec):.10f}",
        "-PIXELSCALE_TYPE", "MANUAL",
        "-PIXEL_SCALE", f"{float(pixel_scale)}",
        "-IMAGE_SIZE", f"{int(size)},{int(size)}",
        "-COMBINE", "Y",
        "-RESAMPLE_DIR", str(out_dir),
        "-NTHREADS", str(int(nthreads)),
        "-VERBOSE_TYPE", "QUIET",
        "-WRITE_XML", "N",
    ]


def run_swarp(stamps, centre, grid, binary="auto", workdir=None):
    """Resample and median-combine ``stamps`` (FITS paths) into one cutout.

    ``centre``: (RA, Dec) in degrees; ``grid``: (size in pixels, pixel scale in arcsec), the
    config's ``cutouts.size`` and ``cutouts.pixel_scale``.

    Returns
    -------
    image : ndarray (size, size) float32
    weight : ndarray (size, size) float32 (0 where no stamp covers)
    """
    from astropy.io import fits

    exe = find_swarp(binary)
    with tempfile.TemporaryDirectory(prefix="swarp-", dir=workdir) as tmp:
        # SWarp runs in its own folder: every path it is given is absolute
        tmp = Path(tmp).resolve()
        img, wgt = tmp / COADD, tmp / COADD_WEIGHT
        stamps = [Path(s).resolve() for s in stamps]
        cmd = swarp_command(exe, stamps, centre, grid, tmp)
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0 or not img.exists():
            raise SwarpError(f"SWarp failed (exit {proc.returncode}) on {len(stamps)} stamps at "
                             f"({centre[0]:.6f}, {centre[1]:.6f}): {proc.stderr.strip()[-500:]}")
        image = np.array(fits.getdata(img), dtype=np.float32)
        weight = np.array(fits.getdata(wgt), dtype=np.float32)
    if image.shape != (grid[0], grid[0]):
        raise SwarpError(f"SWarp returned shape {image.shape}, expected {(grid[0], grid[0])}")
    return image, weight


def run_swarp_batch(jobs, grid, binary, threads, workdir=None):
    """Run many cutouts, ``threads`` SWarp processes at a time.

    Parameters
    ----------
    jobs : list of (stamps, ra, dec)
    grid : (size in pixels, pixel scale in arcsec)

    Returns
    -------
    list of (image, weight) or :class:`SwarpError` per job, in order.
    """
    def one(job):
        stamps, ra, dec = job
        try:
            return run_swarp(stamps, (ra, dec), grid, binary, workdir)
        except SwarpError as err:
            return err

    if threads <= 1:
        return [one(j) for j in jobs]
    pool = ThreadPoolExecutor(max_workers=threads)
    try:
        return list(pool.map(one, jobs))
    finally:  # on SIGTERM (SystemExit) the queued cutouts are dropped, not run
        pool.shutdown(wait=True, cancel_futures=True)
