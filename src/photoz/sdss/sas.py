"""Frame retrieval from the SDSS Science Archive Server (SAS), per job group.

A frame lives at ``{base}/{rerun}/{run}/{camcol}/frame-{band}-{run:06d}-{camcol}-{field:04d}.fits.bz2``
with ``base = https://data.sdss.org/sas/dr12/boss/photoObj/frames`` for the real
SAS and ``file:///.../results/mock/sas`` for the mock one: the same code
fetches both (a file:// frame is hard-linked when it can be, so the mock's
frames take no extra disk). Downloads run in parallel threads, are resumable (a verified
file is never fetched again; a partial ``.part`` download continues with an
HTTP ``Range`` request) and every file is verified before it is kept:

* the bzip2 stream is complete (every stream reaches its end-of-stream marker,
  CRCs pass, no trailing garbage);
* the decompressed bytes open as FITS with exactly the 4 HDUs of an SDSS
  frame (image, calibvec, sky, astrometry row) whose data can be read.

A file that fails is fetched again (exponential backoff); one that keeps
failing stops the group with :class:`RetrievalError` naming it. The group's
``MANIFEST.json`` (names, sizes, sha256) is written last, atomically, so its
presence means every frame of the group is there and verified.

:class:`SASServer` is a loopback SAS (HTTP file server with ``Range``
support) with injectable faults, for the tests.
"""

from __future__ import annotations

import argparse
import bz2
import collections
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
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from .. import BANDS
from ..io import atomic_write_bytes, setup_logging
from .loopback import serving
from .frames import FrameError, frame_name  # the one definition of each

__all__ = ["FrameError", "RetrievalError", "frame_name", "frame_url", "verify_frame", "fetch_frame",
           "group_frames", "retrieve_group", "SASServer", "serve_sas", "main"]

log = logging.getLogger("photoz.sas")

N_HDUS = 4
RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}


class RetrievalError(RuntimeError):
    """Some frames could not be retrieved; the message names them."""


class _Fatal(RuntimeError):
    """A failure that retrying cannot fix (404, missing file)."""


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


def _download(url, part, timeout, session):
    """Fetch ``url`` into ``part`` (continuing a partial download when the server allows)."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme == "file":
        src = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
        if not src.is_file():
            raise _Fatal(f"{src} does not exist")
        part.unlink(missing_ok=True)
        try:  # a hard link costs no disk (frames are never written to); copy across devices
            os.link(src, part)
        except OSError:
            shutil.copyfile(src, part)
        return
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with session.get(url, stream=True, timeout=timeout, headers=headers) as r:
        if r.status_code == 404:
            raise _Fatal(f"{url}: HTTP 404 (not on the SAS)")
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
            raise _Fatal(f"{url}: HTTP {r.status_code}")
        with open(part, mode) as fh:
            for chunk in r.iter_content(1 << 16):
                fh.write(chunk)


def fetch_frame(url, dest, timeout=120.0, max_retries=6, backoff_base=2.0, backoff_max=300.0, session=None,
                sleep=time.sleep):
    """Make ``dest`` a verified copy of ``url``; return its sha256.

    A ``dest`` that already verifies is kept (resume). Transient errors and
    files that fail verification are retried; raises :class:`RetrievalError`.
    """
    dest = Path(dest)
    if dest.exists():
        try:
            return verify_frame(dest)
        except FrameError as err:
            log.warning("%s: kept file fails verification (%s); fetching it again", dest, err)
            dest.unlink()
    part = dest.with_name(dest.name + ".part")
    session = session or requests.Session()
    last = None
    for attempt in range(max_retries + 1):
        retry_after = 0.0
        try:
            _download(url, part, timeout, session)
            sha = verify_frame(part)
            os.replace(part, dest)
            return sha
        except _Fatal as err:
            part.unlink(missing_ok=True)
            raise RetrievalError(f"{dest.name}: {err}") from None
        except FrameError as err:
            last = str(err)
            part.unlink(missing_ok=True)  # a broken file is refetched from scratch
        except (requests.RequestException, OSError) as err:
            last = f"{type(err).__name__}: {err}"
            try:
                retry_after = float(getattr(err, "retry_after", 0) or 0)
            except ValueError:
                retry_after = 0.0
        if attempt < max_retries:
            wait = max(retry_after, min(backoff_max, backoff_base * 2 ** attempt))
            log.warning("%s: attempt %d/%d failed (%s); retrying in %.1f s", dest.name, attempt + 1,
                        max_retries + 1, last, wait)
            sleep(wait)
    part.unlink(missing_ok=True)
    raise RetrievalError(f"{dest.name} ({url}): still bad after {max_retries + 1} attempts; last error: {last}")


def group_frames(galaxies, group):
    """Sorted unique (run, camcol, field) of the frames that the galaxies of ``group`` overlap."""
    sub = galaxies[galaxies["group"] == int(group)]
    keys = set()
    for lst in sub["frames"]:
        keys.update(tuple(int(v) for v in k.split("-")) for k in lst)
    return sorted(keys), len(sub)


def retrieve_group(galaxies, group, base_url, rerun, out_dir, parallel=4, timeout=120.0, max_retries=6,
                   backoff_base=2.0, bands=BANDS):
    """Fetch and verify every frame (all bands) of ``group`` into ``out_dir``; write ``MANIFEST.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fields, n_gal = group_frames(galaxies, group)
    jobs = [(r, c, f, b) for (r, c, f) in fields for b in bands]
    log.info("group %s: %d galaxies, %d fields, %d frames from %s", group, n_gal, len(fields), len(jobs), base_url)
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=max(4, parallel))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    results, failures = {}, []
    with ThreadPoolExecutor(max_workers=max(1, int(parallel))) as pool:
        futs = {pool.submit(fetch_frame, frame_url(base_url, rerun, r, c, f, b), out_dir / frame_name(b, r, c, f),
                            timeout, max_retries, backoff_base, session=session): (r, c, f, b)
                for (r, c, f, b) in jobs}
        for i, fut in enumerate(as_completed(futs), 1):
            r, c, f, b = futs[fut]
            try:
                results[(r, c, f, b)] = fut.result()
            except RetrievalError as err:
                failures.append(str(err))
                log.error("%s", err)
            if i % 50 == 0 or i == len(jobs):
                log.info("group %s: %d/%d frames done", group, i, len(jobs))
    if failures:
        raise RetrievalError(f"group {group}: {len(failures)} of {len(jobs)} frames could not be retrieved: "
                             + "; ".join(failures[:10]) + (" ..." if len(failures) > 10 else ""))
    files = []
    for (r, c, f, b) in sorted(results):
        name = frame_name(b, r, c, f)
        files.append({"name": name, "run": r, "camcol": c, "field": f, "band": b,
                      "bytes": (out_dir / name).stat().st_size, "sha256": results[(r, c, f, b)]})
    manifest = {"group": int(group), "rerun": int(rerun), "base_url": base_url, "n_galaxies": int(n_gal),
                "n_fields": len(fields), "n_frames": len(files), "files": files}
    atomic_write_bytes(out_dir / "MANIFEST.json", (json.dumps(manifest, indent=1) + "\n").encode())
    log.info("group %s: %d frames verified; manifest written", group, len(files))
    return manifest


# --------------------------------------------------------------------------- loopback SAS

class SASServer(ThreadingHTTPServer):
    """An HTTP file server over ``root`` with the SAS layout, ``Range`` support and faults.

    ``faults`` maps a file name to a list of faults, consumed one per request
    of that file (``None`` = serve normally): ``"500"``, ``"429"``,
    ``"timeout"`` (wait ``fault_delay`` s), ``"reset"`` (announce the full
    length, send half, close), ``"short"`` (consistent headers, body cut),
    ``"corrupt"`` (bytes flipped in the middle), ``"html"`` (an HTML page),
    ``"404"``.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, root, faults=None, fault_delay=3.0):
        super().__init__(address, _SASHandler)
        self.root = Path(root).resolve()
        self.faults = {k: collections.deque(v) for k, v in (faults or {}).items()}
        self.fault_delay = fault_delay
        self.requests = []
        self.lock = threading.Lock()

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def next_fault(self, name):
        with self.lock:
            q = self.faults.get(name)
            return q.popleft() if q else None


class _SASHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SASServer

    def log_message(self, fmt, *args):
        log.debug(fmt, *args)

    def _send(self, status, body, headers=None, length=None):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        try:
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_GET(self):
        rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        path = (self.server.root / rel).resolve()
        name = path.name
        fault = self.server.next_fault(name)
        with self.server.lock:
            self.server.requests.append((rel, self.headers.get("Range"), fault))
        if self.server.root not in path.parents or not path.is_file() or fault == "404":
            self._send(404, b"<html><body>404 Not Found</body></html>", {"Content-Type": "text/html"})
            return
        if fault in ("500", "429"):
            self._send(int(fault), b"<html><body>busy</body></html>", {"Retry-After": 0, "Content-Type": "text/html"})
            return
        if fault == "html":
            self._send(200, b"<!DOCTYPE html><html><body>Service Unavailable</body></html>",
                       {"Content-Type": "text/html"})
            return
        if fault == "timeout":
            time.sleep(self.server.fault_delay)
        data = path.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and fault is None:
            start = int(rng[6:].split("-")[0] or 0)
            if start >= len(data):
                self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                return
        body = data[start:]
        status, headers = (206, {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}) if start else (200, {})
        headers["Content-Type"] = "application/x-bzip2"
        headers["Accept-Ranges"] = "bytes"
        if fault == "reset":
            self._send(status, body[: len(body) // 2], headers, length=len(body))
            self.close_connection = True
            return
        if fault == "short":
            body = body[: len(body) * 2 // 3]
        elif fault == "corrupt":
            mid = len(body) // 2
            body = body[:mid] + bytes(b ^ 0xFF for b in body[mid:mid + 64]) + body[mid + 64:]
        self._send(status, body, headers)


@contextmanager
def serve_sas(root, host="127.0.0.1", port=0, **kw):
    """Serve the SAS-like tree ``root`` over HTTP for the duration of the block."""
    with serving(SASServer((host, port), root, **kw), "sas") as server:
        yield server


def main(argv=None):
    """``python -m photoz retrieve``: fetch and verify the frames of one group."""
    import pandas as pd

    p = argparse.ArgumentParser(prog="photoz retrieve", description=main.__doc__)
    p.add_argument("--group", type=int, required=True)
    p.add_argument("--galaxies", default="results/frames/galaxies.parquet")
    p.add_argument("--sdss-json", required=True)
    p.add_argument("--sas-url", help="base URL of the frame tree (default: sdss.sas_url)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--log")
    a = p.parse_args(argv)
    setup_logging(a.log)
    cfg = json.loads(a.sdss_json)
    base = a.sas_url or cfg["sas_url"]
    if base.startswith("file://"):
        # a relative file:// path is taken from the working directory (the repository root)
        path = urllib.parse.unquote(base[len("file://"):])
        base = "file://" + str(Path(path).resolve())
    galaxies = pd.read_parquet(a.galaxies, columns=["specObjID", "group", "frames"])
    # Work in "<out>.partial" (kept across failures, so a rerun resumes; Snakemake
    # removes an incomplete output directory) and rename it onto <out> when done.
    out = Path(a.out_dir)
    work = out.with_name(out.name + ".partial")
    try:
        retrieve_group(galaxies, a.group, base, cfg["rerun"], work, parallel=cfg.get("parallel_downloads", 4),
                       timeout=cfg.get("timeout_s", 120), max_retries=cfg.get("max_retries", 6))
    except RetrievalError as err:
        log.error("%s (verified frames are kept in %s for the rerun)", err, work)
        return 1
    for part in work.glob("*.part"):
        part.unlink()
    if out.exists():
        shutil.rmtree(out)
    os.replace(work, out)
    log.info("group %s: frames in %s", a.group, out)
    return 0
