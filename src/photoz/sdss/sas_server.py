"""A loopback SAS for the tests: an HTTP file server over a SAS-like tree, with faults.

``faults`` maps a file name to a list of faults, consumed one per request of
that file (``None`` = serve normally):

``"500"``, ``"429"``  the status with ``Retry-After: 0``
``"timeout"``        wait ``fault_delay`` seconds, then answer normally
``"reset"``          announce the full length, send half, close the connection
``"short"``          consistent headers, body cut
``"corrupt"``        bytes flipped in the middle of the body
``"html"``           HTTP 200 with an HTML maintenance page (what a web server or proxy in front of
                     the SAS serves while it is down; the client must retry, never record the frame
                     unavailable)
``"403"``            HTTP 403 Forbidden (refused: the client fails at once, quoting it)
``"404"``            HTTP 404 (the frame truly absent)

Every request is recorded in ``server.requests`` as ``(path, Range header, fault)``
so the tests can count what a retrieval fetched; ``server.max_active`` is the
most requests it was serving at one time (the client's connections).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import urllib.parse
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .loopback import serving

__all__ = ["SASServer", "serve_sas", "MAINTENANCE_PAGE"]

MAINTENANCE_PAGE = (b"<!DOCTYPE html>\n<html><head><title>SDSS Data Server - Scheduled Maintenance</title></head>"
                    b"<body><h1>Down for maintenance</h1><p>The SDSS Science Archive Server is unavailable during "
                    b"scheduled maintenance. Please try again later.</p></body></html>\n")
"""A status-200 HTML page served in place of a frame while the archive is down."""

log = logging.getLogger("photoz.sas")


class SASServer(ThreadingHTTPServer):
    """An HTTP file server over ``root`` with the SAS layout, ``Range`` support and faults.

    ``faults`` maps a file name to a list of faults, consumed one per request
    of that file (``None`` = serve normally): ``"500"``, ``"429"``,
    ``"timeout"`` (wait ``fault_delay`` s), ``"reset"`` (announce the full
    length, send half, close), ``"short"`` (consistent headers, body cut),
    ``"corrupt"`` (bytes flipped in the middle), ``"html"`` (an HTML page),
    ``"403"``, ``"404"``. ``delay`` seconds are spent on every request (to
    make concurrent connections overlap); ``max_active`` counts them.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, root, faults=None, fault_delay=3.0, delay=0.0):
        super().__init__(address, _SASHandler)
        self.delay = float(delay)
        self.active = self.max_active = 0
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
        srv = self.server
        with srv.lock:
            srv.active += 1
            srv.max_active = max(srv.max_active, srv.active)
        try:
            if srv.delay:
                time.sleep(srv.delay)
            self._get()
        finally:
            with srv.lock:
                srv.active -= 1

    def _get(self):
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
            self._send(200, MAINTENANCE_PAGE, {"Content-Type": "text/html; charset=utf-8"})
            return
        if fault == "403":
            self._send(403, b"<html><head><title>403 Forbidden</title></head><body><h1>Forbidden</h1>"
                       b"<p>You don't have permission to access this resource.</p></body></html>",
                       {"Content-Type": "text/html; charset=iso-8859-1"})
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
