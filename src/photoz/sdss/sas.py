"""Frame retrieval from the SDSS Science Archive Server (SAS), per job group.

A frame lives at ``{base}/{rerun}/{run}/{camcol}/frame-{band}-{run:06d}-{camcol}-{field:04d}.fits.bz2``
with ``base = https://data.sdss.org/sas/dr12/boss/photoObj/frames`` for the real
SAS and ``file:///.../results/mock/sas`` for the mock one: the same code
fetches both. A file:// frame is copied (a copy-on-write clone where the file
system can make one), never hard-linked: a group's frame is its own file, so
damage done to one copy in place reaches neither the source nor other groups.

Every file is verified before it is kept:

* the bzip2 stream is complete (every stream reaches its end-of-stream marker,
  CRCs pass, no trailing garbage);
* the decompressed bytes open as FITS with exactly the 4 HDUs of an SDSS
  frame (image, calibvec, sky, astrometry row) whose data can be read.

Resumable: the group's frames are plain files in the group's directory beside
``MANIFEST.json``, which is the only declared output of the ``retrieve`` rule
and is written last, atomically. Snakemake deletes a failed job's declared
outputs, not the verified frames, so a rerun (after a failure, a kill or a
changed input) fetches only the frames it does not already have; a partial
``.part`` download continues with an HTTP ``Range`` request.

Failures, by kind:

* the archive having a problem (timeouts, resets, HTTP 5xx/429, a short body,
  and a status-200 answer that is not a frame at all: an HTML maintenance or
  error page, any body that is not bzip2): retried with exponential backoff over
  http(s); when the retries run out the job fails with :class:`RetrievalError`
  naming the URLs, and the rerun fetches only them. Nothing the archive's
  being down causes is recorded as unavailable;
* the archive refusing us (HTTP 401, 403 and any other 4xx but 404/410): the
  job fails at once, quoting the status and the URL (retrying cannot fix it);
* the frame truly absent or damaged at the source (HTTP 404/410, a missing
  local file, a bzip2 file that fails verification on every attempt): the frame
  is listed under ``unavailable`` in the manifest with its reason and the job
  succeeds; the cutouts then fail (or, by the ``cutouts.bad_frame`` policy, skip
  the frame for) only the galaxies that need it. If *every* frame of a group
  answers 404, the SAS path is wrong or the archive is not serving frames: the
  job fails naming the URL instead;
* a local (file://) source is read once: retrying a local disk gains nothing.

Downloads run ``sdss.parallel_downloads`` at a time (network waits overlap), but
verification (bzip2 decoding and the FITS parse, ~0.6 s of CPU per frame) runs on
at most the job's CPU threads at once: more decoding threads than cores only add
contention (measured on one core: 4 at once take 2.8 times the CPU of one at a
time for the same 40 frames, benchmarks/bench_retrieve_verify.txt).
"""

from __future__ import annotations

import argparse
import bz2
import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import requests

from .. import BANDS
from ..io import atomic_write_bytes, setup_logging
from .frames import FrameError, frame_name  # the one definition of each

__all__ = ["FrameError", "RetrievalError", "FrameUnavailable", "ArchiveRefused", "NotAFrame", "frame_name", "frame_url", "verify_frame",
           "fetch_frame", "group_frames", "retrieve_group", "read_manifest", "MANIFEST_NAME", "main"]

log = logging.getLogger("photoz.sas")

N_HDUS = 4
RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
MANIFEST_NAME = "MANIFEST.json"


class RetrievalError(RuntimeError):
    """Some frames could not be retrieved; the message names them."""


class FrameUnavailable(RetrievalError):
    """A frame that retrying cannot bring (missing at the source, or corrupt there)."""


class ArchiveRefused(RetrievalError):
    """The archive refused the request (HTTP 401, 403, other 4xx but 404/410): no retry, the group fails."""


class NotAFrame(RuntimeError):
    """A status-200 answer that is not a frame at all (an HTML page, not bzip2): the archive's problem, retried."""


class _Fatal(RuntimeError):
    """The frame is truly absent at the source (HTTP 404/410, missing local file)."""


ABSENT_STATUS = {404, 410}
"""What the SAS answers for a frame that does not exist: the only statuses recorded as unavailable."""


def _not_a_frame(url, head, content_type):
    """Why ``head`` (the first bytes of a 200 answer) is not a frame, or None if it may be one."""
    if head.startswith(b"BZh"):
        return None
    text = head[:4096].decode("latin-1")
    low = text.lower()
    if "html" in (content_type or "").lower() or "<html" in low or "<!doctype" in low or low.lstrip().startswith("<"):
        import re

        title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
        heading = re.search(r"<h[12][^>]*>(.*?)</h[12]>", text, re.I | re.S)
        what = (title or heading).group(1).strip()[:100] if (title or heading) else "no title"
        return f"{url}: HTTP 200 with an HTML page instead of a frame ({what!r})"
    return f"{url}: HTTP 200 with a body that is not bzip2 (starts with {head[:24]!r}), not a frame"


def frame_url(base, rerun, run, camcol, field, band):
    """URL of a frame under the SAS layout ``{base}/{rerun}/{run}/{camcol}/{name}``."""
    return f"{base.rstrip('/')}/{int(rerun)}/{int(run)}/{int(camcol)}/{frame_name(band, run, camcol, field)}"


def _decompress_all(data, name):
    out = []
    while data:
        d = bz2.BZ2Decompressor()
        try:
            out.append(d.decompress(data))
        except (OSError, ValueError, EOFError) as err:
            raise FrameError(f"{name}: corrupt bzip2 data ({err})") from None
        if not d.eof:
            raise FrameError(f"{name}: bzip2 stream ends before its end-of-stream marker (truncated)")
        data = d.unused_data
        if data and not data.startswith(b"BZh"):
            raise FrameError(f"{name}: {len(data)} bytes of garbage after the bzip2 stream")
    return b"".join(out)


def verify_frame(path, n_hdus=N_HDUS):
    """Check that ``path`` is a complete SDSS frame; return its sha256. Raises :class:`FrameError`."""
    import warnings

    from astropy.io import fits

    path = Path(path)
    data = path.read_bytes()
    if not data.startswith(b"BZh"):
        raise FrameError(f"{path.name}: not a bzip2 file (starts with {data[:16]!r})")
    raw = _decompress_all(data, path.name)
    if len(raw) % 2880:
        raise FrameError(f"{path.name}: FITS size {len(raw)} is not a multiple of 2880 bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", category=fits.verify.VerifyWarning)
            with fits.open(io.BytesIO(raw), memmap=False) as hdul:
                if len(hdul) != n_hdus:
                    raise FrameError(f"{path.name}: {len(hdul)} HDUs instead of {n_hdus}")
                img = hdul[0].data
                if img is None or img.ndim != 2:
                    raise FrameError(f"{path.name}: HDU 0 is not a 2-D image")
                for h in hdul[1:]:
                    _ = h.data
    except FrameError:
        raise
    except Exception as err:  # astropy raises many kinds on broken files
        raise FrameError(f"{path.name}: does not open as FITS ({type(err).__name__}: {err})") from None
    return hashlib.sha256(data).hexdigest()


def _is_local(url):
    return urllib.parse.urlsplit(url).scheme == "file"


def _copy_file(src, dst):
    """Copy ``src`` to ``dst``: a copy-on-write clone (FICLONE) where the file system has it, else a copy.

    Never a hard link: a hard link would make every group's frame the same
    inode as the source, so one in-place corruption would reach all of them.
    """
    try:
        import fcntl

        ficlone = 0x40049409  # FICLONE (linux/fs.h)
        with open(src, "rb") as fi, open(dst, "wb") as fo:
            fcntl.ioctl(fo.fileno(), ficlone, fi.fileno())
        return
    except (ImportError, OSError):
        pass
    shutil.copyfile(src, dst)


def _download(url, part, timeout, session):
    """Fetch ``url`` into ``part`` (continuing a partial download when the server allows)."""
    if _is_local(url):
        src = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
        if not src.is_file():
            raise _Fatal(f"{src} does not exist")
        part.unlink(missing_ok=True)
        _copy_file(src, part)
        return
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with session.get(url, stream=True, timeout=timeout, headers=headers) as r:
        if r.status_code in ABSENT_STATUS:
            raise _Fatal(f"{url}: HTTP {r.status_code} (not on the SAS)")
        if r.status_code in RETRYABLE_STATUS:
            err = requests.HTTPError(f"HTTP {r.status_code}")
            err.retry_after = r.headers.get("Retry-After")
            raise err
        if r.status_code == 206 and have:
            mode = "ab"
        elif r.status_code == 200:
            mode = "wb"
        elif r.status_code == 416:  # nothing more to send: the part is complete (or wrong)
            return
        else:
            body = r.raw.read(300, decode_content=True).decode("utf-8", "replace").strip()
            raise ArchiveRefused(f"{url}: the SAS answered HTTP {r.status_code} {r.reason or ''}".rstrip()
                                 + (f": {body}" if body else ""))
        chunks = r.iter_content(1 << 16)
        first = next(chunks, b"")
        if mode == "wb":
            why = _not_a_frame(url, first, r.headers.get("Content-Type"))
            if why:
                raise NotAFrame(why)
        with open(part, mode) as fh:
            fh.write(first)
            for chunk in chunks:
                fh.write(chunk)


def _kept_frame(dest, slots):
    """The sha256 of ``dest`` if it exists and verifies (a resumed retrieval keeps it), else None
    (a kept file that fails verification is removed, to be fetched again)."""
    if not dest.exists():
        return None
    try:
        with slots:
            return verify_frame(dest)
    except FrameError as err:
        log.warning("%s: kept file fails verification (%s); fetching it again", dest, err)
        dest.unlink()
        return None


def fetch_frame(url, dest, timeout, max_retries, backoff_base=2.0, backoff_max=300.0, session=None,
                verify_slots=None):
    """Make ``dest`` a verified copy of ``url``; return its sha256.

    ``verify_slots``: a semaphore that every verification holds (the downloads of a job run
    in parallel, their CPU-bound verifications at most as many at once as the job has threads).

    A ``dest`` that already verifies is kept (resume). Transient errors,
    answers that are not a frame (an HTML page) and files that fail
    verification are retried over http(s); a file:// source is read once.
    Raises :class:`FrameUnavailable` when the frame is missing at the source
    (404/410) or still fails verification on the last attempt,
    :class:`ArchiveRefused` at once on a refusal (401, 403, other 4xx), and
    :class:`RetrievalError` when the archive's problems outlast the retries.
    """
    dest = Path(dest)
    slots = verify_slots or contextlib.nullcontext()
    kept = _kept_frame(dest, slots)
    if kept is not None:
        return kept
    part = dest.with_name(dest.name + ".part")
    session = session or requests.Session()
    attempts = 1 if _is_local(url) else max_retries + 1
    last, last_is_frame_error = None, False
    for attempt in range(attempts):
        retry_after = 0.0
        try:
            _download(url, part, timeout, session)
            with slots:
                sha = verify_frame(part)
            os.replace(part, dest)
            return sha
        except _Fatal as err:
            part.unlink(missing_ok=True)
            raise FrameUnavailable(f"{dest.name}: {err}") from None
        except ArchiveRefused as err:
            part.unlink(missing_ok=True)
            raise ArchiveRefused(f"{dest.name}: {err}") from None
        except NotAFrame as err:  # a maintenance/error page: the archive's problem, not the frame's
            last, last_is_frame_error = str(err), False
            part.unlink(missing_ok=True)
        except FrameError as err:
            last, last_is_frame_error = str(err), True
            part.unlink(missing_ok=True)  # a broken file is refetched from scratch
        except (requests.RequestException, OSError) as err:
            last, last_is_frame_error = f"{type(err).__name__}: {err}", False
            try:
                retry_after = float(getattr(err, "retry_after", 0) or 0)
            except ValueError:
                retry_after = 0.0
        if attempt + 1 < attempts:
            wait = max(retry_after, min(backoff_max, backoff_base * 2 ** attempt))
            log.warning("%s: attempt %d/%d failed (%s); retrying in %.1f s", dest.name, attempt + 1,
                        attempts, last, wait)
            time.sleep(wait)
    if last_is_frame_error:
        part.unlink(missing_ok=True)
        raise FrameUnavailable(f"{dest.name} ({url}): fails verification on all {attempts} attempt(s): {last}")
    raise RetrievalError(f"{dest.name} ({url}): still failing after {attempts} attempt(s); last error: {last}")


def group_frames(galaxies, group):
    """Sorted unique (run, camcol, field) of the frames that the galaxies of ``group`` overlap."""
    sub = galaxies[galaxies["group"] == int(group)]
    keys = set()
    for lst in sub["frames"]:
        keys.update(tuple(int(v) for v in k.split("-")) for k in lst)
    return sorted(keys), len(sub)


def _session(parallel):
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=max(4, parallel))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _fetch_all(jobs, base_url, out_dir, sdss, backoff_base, group, threads=1):
    """Fetch ``jobs`` ((run, camcol, field, band)) in parallel: ``(sha256 by job, unavailable reason by
    job, transient failures, refusals)``; after a refusal the jobs not yet started are cancelled.
    At most ``threads`` frames are verified at once."""
    rerun, parallel = sdss["rerun"], sdss["parallel_downloads"]
    session = _session(parallel)
    slots = threading.BoundedSemaphore(max(1, int(threads)))
    results, unavailable, failures, refused = {}, {}, [], []
    with ThreadPoolExecutor(max_workers=max(1, int(parallel))) as pool:
        futs = {pool.submit(fetch_frame, frame_url(base_url, rerun, r, c, f, b), out_dir / frame_name(b, r, c, f),
                            sdss["timeout_s"], sdss["max_retries"], backoff_base, session=session,
                            verify_slots=slots): (r, c, f, b)
                for (r, c, f, b) in jobs}
        for i, fut in enumerate(as_completed(futs), 1):
            key = futs[fut]
            if fut.cancelled():  # after a refusal: not asked for
                continue
            try:
                results[key] = fut.result()
            except FrameUnavailable as err:
                unavailable[key] = str(err)
                log.error("unavailable: %s", err)
            except ArchiveRefused as err:
                refused.append(str(err))
                log.error("%s", err)
                for other in futs:  # no point asking for the rest: the archive refuses us
                    other.cancel()
            except RetrievalError as err:
                failures.append(str(err))
                log.error("%s", err)
            if i % 50 == 0 or i == len(jobs):
                log.info("group %s: %d/%d frames done", group, i, len(jobs))
    return results, unavailable, failures, refused


def _raise_unless_complete(group, jobs, fetched, base_url, rerun):
    """A RetrievalError when the archive refused, kept failing, or answered 404 for every frame of a remote SAS."""
    results, unavailable, failures, refused = fetched
    if refused:
        raise RetrievalError(f"group {group}: the SAS refused the request, which no retry can fix "
                             f"(the {len(results)} verified frames are kept for the rerun): "
                             + "; ".join(sorted(refused)[:3]) + (" ..." if len(refused) > 3 else ""))
    if failures:
        raise RetrievalError(f"group {group}: {len(failures)} of {len(jobs)} frames could not be retrieved "
                             f"(the archive kept failing; the {len(results)} verified frames are kept for the "
                             "rerun, nothing is recorded unavailable): "
                             + "; ".join(sorted(failures)[:10]) + (" ..." if len(failures) > 10 else ""))
    if jobs and not results and not _is_local(base_url) and all(" HTTP 404 " in why or " HTTP 410 " in why
                                                              for why in unavailable.values()):
        first = frame_url(base_url, rerun, *jobs[0])
        raise RetrievalError(f"group {group}: every one of its {len(jobs)} frames answered HTTP 404 (first: "
                             f"{first}); the SAS path (sdss.sas_url) is wrong or the archive is not serving "
                             "frames, so nothing is recorded unavailable")


def _manifest_entries(results, unavailable, out_dir, group):
    """The manifest's ``files`` and ``unavailable``; frame files the group does not need are removed."""
    files = []
    for (r, c, f, b) in sorted(results):
        name = frame_name(b, r, c, f)
        files.append({"name": name, "run": r, "camcol": c, "field": f, "band": b,
                      "bytes": (out_dir / name).stat().st_size, "sha256": results[(r, c, f, b)]})
    missing = [{"name": frame_name(b, r, c, f), "run": r, "camcol": c, "field": f, "band": b,
                "reason": unavailable[(r, c, f, b)]} for (r, c, f, b) in sorted(unavailable)]
    wanted = {x["name"] for x in files}
    for stale in sorted(out_dir.iterdir()):
        if stale.is_file() and stale.name.startswith("frame-") and stale.name not in wanted:
            log.info("group %s: removing %s (not needed by the group)", group, stale.name)
            stale.unlink()
    return files, missing


def retrieve_group(galaxies, group, base_url, out_dir, sdss, backoff_base=2.0, bands=BANDS, threads=1):
    """Fetch and verify every frame (all bands) of ``group`` into ``out_dir``; write ``MANIFEST.json``.

    ``threads``: the job's CPU threads, the most frames verified at once (the downloads run
    ``sdss.parallel_downloads`` at a time).

    ``sdss`` is the validated ``sdss`` config section (``rerun``, ``parallel_downloads``,
    ``timeout_s``, ``max_retries``). Frames already in ``out_dir`` that verify are kept. Raises
    :class:`RetrievalError` (no manifest written, verified frames kept) when
    transient failures outlast the retries; frames that are permanently
    unavailable are listed in the manifest's ``unavailable`` with their reason.
    Files of ``out_dir`` that the group no longer needs are removed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)  # its presence means "complete"
    fields, n_gal = group_frames(galaxies, group)
    jobs = [(r, c, f, b) for (r, c, f) in fields for b in bands]
    log.info("group %s: %d galaxies, %d fields, %d frames from %s", group, n_gal, len(fields), len(jobs), base_url)
    fetched = _fetch_all(jobs, base_url, out_dir, sdss, backoff_base, group, threads=threads)
    _raise_unless_complete(group, jobs, fetched, base_url, sdss["rerun"])
    files, missing = _manifest_entries(fetched[0], fetched[1], out_dir, group)
    manifest = {"group": int(group), "rerun": int(sdss["rerun"]), "base_url": base_url, "n_galaxies": int(n_gal),
                "n_fields": len(fields), "n_frames": len(files), "files": files, "unavailable": missing}
    atomic_write_bytes(out_dir / MANIFEST_NAME, (json.dumps(manifest, indent=1) + "\n").encode())
    log.info("group %s: %d frames verified, %d unavailable; manifest written", group, len(files), len(missing))
    return manifest


def read_manifest(path):
    """A group's retrieval manifest (``MANIFEST.json``), checked; raises ``ValueError`` naming the file."""
    path = Path(path)
    try:
        man = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: unreadable retrieval manifest ({err})") from None
    for key in ("group", "files"):
        if key not in man:
            raise ValueError(f"{path}: retrieval manifest lacks {key!r}")
    man.setdefault("unavailable", [])
    for f in man["files"]:
        if not {"name", "sha256"} <= set(f):
            raise ValueError(f"{path}: a file entry lacks name or sha256: {f}")
    return man


def main(argv=None):
    """``python -m photoz retrieve``: fetch and verify the frames of one group."""
    import pandas as pd

    p = argparse.ArgumentParser(prog="photoz retrieve", description=main.__doc__)
    p.add_argument("--group", type=int, required=True)
    p.add_argument("--galaxies", default="results/frames/galaxies.parquet")
    p.add_argument("--sdss-json", required=True)
    p.add_argument("--sas-url", help="base URL of the frame tree (default: sdss.sas_url)")
    p.add_argument("--manifest", required=True,
                   help="results/frames/group-{g}/MANIFEST.json; the frames go in its directory")
    p.add_argument("--threads", type=int, default=1, help="the job's CPU threads: the most frames verified at once")
    p.add_argument("--log")
    a = p.parse_args(argv)
    setup_logging(a.log)
    cfg = json.loads(a.sdss_json)
    base = a.sas_url or cfg["sas_url"]
    if base.startswith("file://"):
        # a relative file:// path is taken from the working directory (the repository root)
        path = urllib.parse.unquote(base[len("file://"):])
        base = "file://" + str(Path(path).resolve())
    manifest = Path(a.manifest)
    if manifest.name != MANIFEST_NAME:
        p.error(f"--manifest must be named {MANIFEST_NAME} (got {manifest})")
    galaxies = pd.read_parquet(a.galaxies, columns=["specObjID", "group", "frames"])
    try:
        retrieve_group(galaxies, a.group, base, manifest.parent, cfg, threads=a.threads)
    except RetrievalError as err:
        log.error("%s", err)
        return 1
    log.info("group %s: frames in %s", a.group, manifest.parent)
    return 0
