"""A loopback SkyServer: the SkyServer SQL search protocol served from SQLite.

It answers ``GET`` (and form ``POST``) requests on
``/dr{N}/en/tools/search/x_results.aspx`` and ``.../x_sql.aspx`` with the
parameters ``cmd`` (SQL in the SkyServer dialect) and ``format=csv``, as the
real SkyServer does: a ``#Table1`` line, a header line, then one line per row.
The SQL is translated to SQLite by :func:`photoz.sdss.query.to_sqlite`.

Used by the mock mode (the ``query`` and ``frame_index`` rules start it on a
free port of 127.0.0.1 against ``results/mock/skyserver.sqlite``) and by the
tests, which inject faults: each request takes the next entry of
``server.faults`` (``None`` = answer normally):

``"timeout"``    wait ``fault_delay`` seconds, then answer normally
``"500"``        HTTP 500 with an ASP.NET-like error page
``"503"``        HTTP 503 with ``Retry-After``
``"429"``        HTTP 429 Too Many Requests with ``Retry-After``
``"html"``       HTTP 200 whose body is an HTML error page
``"truncated"``  HTTP 200, the CSV cut at a row boundary (consistent Content-Length)
``"cut"``        HTTP 200, the CSV cut inside the last row's last value
``"midrow"``     HTTP 200, the CSV cut in the middle of a row
``"drop"``       close the connection without an answer
``"down"``       like ``"500"`` (used to make a page fail persistently)

It is as strict as SkyServer's documented limits, whatever the faults:

* a URL query string longer than ``max_query_string`` (2,048) characters is
  refused with HTTP 400 and IIS's message ("The length of the query string
  for this request exceeds the configured maxQueryStringLength value.");
* at most ``max_rows`` (500,000) rows are returned per query (the rest is
  silently cut, as SkyServer does);
* more than ``max_per_minute`` (60) queries in any 60 seconds get HTTP 429
  with ``Retry-After``;
* a query SQL Server would refuse (bad syntax, unknown column or table) gets
  SQL Server's own message (:func:`photoz.sdss.sqlerrors.sqlserver_message`),
  wrapped as SkyServer wraps it: ``sql_error_style="page"`` (the default) as
  ``x_sql.aspx`` does, HTTP 200 with ``<h1>ERROR</h1><h2>MESSAGE</h2>``;
  ``"json"`` as SciServer's REST services do, HTTP 500 with
  ``{"ErrorCode", "ErrorType", "ErrorMessage", ...}``; ``"table"`` as the
  one-column ``error_message`` CSV that astroquery's SDSS client checks for.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import logging
import math
import sqlite3
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .loopback import serving
from .query import MAX_QUERY_STRING, MAX_ROWS, to_sqlite
from .sqlerrors import sciserver_error_json, skyserver_error_page, sqlserver_message

__all__ = ["SkyServerHandler", "SkyServerServer", "serve_sqlite", "format_csv", "main", "QUERY_STRING_MESSAGE",
           "RateWindow"]

log = logging.getLogger("photoz.skyserver_server")

HTML_ERROR = ("<!DOCTYPE html>\n<html><head><title>Runtime Error</title></head><body>"
              "<h1>Server Error in '/' Application.</h1><p>The service is unavailable.</p></body></html>\n")


def _fmt(v):
    if v is None:
        return "null"
    if isinstance(v, float):
        if math.isnan(v):
            return "null"
        return repr(v)
    if isinstance(v, (bytes, bytearray)):
        v = v.decode("utf-8", "replace")
    s = str(v)
    if any(ch in s for ch in ',"\n'):
        s = '"' + s.replace('"', '""') + '"'
    return s


def format_csv(names, rows):
    """SkyServer's CSV: ``#Table1``, the header, one line per row (each ending in a newline)."""
    out = ["#Table1\n", ",".join(names) + "\n"]
    out.extend(",".join(_fmt(v) for v in row) + "\n" for row in rows)
    return "".join(out)


QUERY_STRING_MESSAGE = ("The length of the query string for this request exceeds the configured "
                        "maxQueryStringLength value.")
"""IIS's answer (HTTP 400) to a URL query string longer than SkyServer's limit."""


class RateWindow:
    """At most ``max_per_minute`` events in any 60 s (a sliding window); ``clock`` injectable."""

    def __init__(self, max_per_minute, clock=time.monotonic):
        self.max_per_minute, self.clock = max_per_minute, clock
        self.times = collections.deque()
        self.lock = threading.Lock()

    def admit(self):
        """Record an event; return 0 if admitted, else the seconds until one would be."""
        with self.lock:
            now = self.clock()
            while self.times and now - self.times[0] >= 60.0:
                self.times.popleft()
            if self.max_per_minute is not None and len(self.times) >= self.max_per_minute:
                return max(1, math.ceil(60.0 - (now - self.times[0])))
            self.times.append(now)
            return 0


#: The loopback service's behaviour, and what a test may change: queued faults (and how long a
#: slow one waits), the Retry-After of a refusal, the real service's limits (query string length,
#: rows per answer, requests per minute) and how a SQL error is answered (``page``: the HTML page,
#: ``json``, or ``table``: astroquery's one-column error table).
BEHAVIOUR = {"faults": (), "fault_delay": 5.0, "retry_after": 0, "max_query_string": MAX_QUERY_STRING,
             "max_rows": MAX_ROWS, "max_per_minute": 60, "sql_error_style": "page"}


class SkyServerServer(ThreadingHTTPServer):
    """The HTTP server; holds the database path, the fault queue and a request log."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, db_path, **behaviour):
        unknown = sorted(set(behaviour) - set(BEHAVIOUR))
        if unknown:
            raise TypeError(f"SkyServerServer: unknown behaviour {unknown}; known: {', '.join(BEHAVIOUR)}")
        b = {**BEHAVIOUR, **behaviour}
        super().__init__(address, SkyServerHandler)
        if b["sql_error_style"] not in ("page", "json", "table"):
            raise ValueError(f"sql_error_style must be 'page', 'json' or 'table', not {b['sql_error_style']!r}")
        self.sql_error_style = b["sql_error_style"]
        self.max_query_string, self.max_rows = int(b["max_query_string"]), int(b["max_rows"])
        self.rate = RateWindow(b["max_per_minute"])
        self.db_path = str(db_path)
        self.faults = collections.deque(b["faults"])
        self.fault_delay = float(b["fault_delay"])
        self.retry_after = b["retry_after"]
        self.requests = []  # (path, cmd, fault) per request
        self.lock = threading.Lock()

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def next_fault(self):
        with self.lock:
            return self.faults.popleft() if self.faults else None

    def run_sql(self, cmd):
        con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        try:
            cur = con.execute(to_sqlite(cmd))
            names = [d[0] for d in cur.description]
            return names, cur.fetchmany(self.max_rows)
        finally:
            con.close()


class SkyServerHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SkyServerServer

    def log_message(self, fmt, *args):  # quiet: the client logs what matters
        log.debug("%s " + fmt, self.address_string(), *args)

    def _reply(self, status, body, ctype="text/plain; charset=utf-8", headers=None, length=None):
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data) if length is None else length))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout fault)
            self.close_connection = True

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if len(url.query) > self.server.max_query_string:
            with self.server.lock:
                self.server.requests.append((url.path, None, "too long"))
            self._reply(400, f"<html><body><h2>Bad Request</h2><p>{QUERY_STRING_MESSAGE}</p></body></html>\n",
                        "text/html")
            return
        self._handle(url.path, urllib.parse.parse_qs(url.query))

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0) or 0)
        body = self.rfile.read(n).decode("utf-8", "replace")
        url = urllib.parse.urlsplit(self.path)
        params = urllib.parse.parse_qs(url.query)
        params.update(urllib.parse.parse_qs(body))
        self._handle(url.path, params)

    def _handle(self, path, params):
        if not (path.endswith("/x_results.aspx") or path.endswith("/x_sql.aspx")):
            self._reply(404, HTML_ERROR, "text/html")
            return
        cmd = (params.get("cmd") or [""])[0]
        fmt = (params.get("format") or ["csv"])[0].lower()
        wait = self.server.rate.admit()
        if wait:
            with self.server.lock:
                self.server.requests.append((path, cmd, "rate"))
            self._reply(429, "Too many queries: at most 60 per minute\n", headers={"Retry-After": wait})
            return
        fault = self.server.next_fault()
        with self.server.lock:
            self.server.requests.append((path, cmd, fault))
        if fault == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if fault in ("500", "down"):
            self._reply(500, HTML_ERROR, "text/html")
            return
        if fault in ("429", "503"):
            self._reply(int(fault), "Too many requests\n", headers={"Retry-After": self.server.retry_after})
            return
        if fault == "html":
            self._reply(200, HTML_ERROR, "text/html")
            return
        if fault == "timeout":
            time.sleep(self.server.fault_delay)
        if fmt != "csv":
            self._reply(400, f"error_message: only format=csv is served, not {fmt!r}\n")
            return
        try:
            names, rows = self.server.run_sql(cmd)
        except sqlite3.Error as err:
            message = sqlserver_message(err, cmd)
            if self.server.sql_error_style == "json":
                self._reply(500, sciserver_error_json(500, "InternalServerError", message), "application/json")
            elif self.server.sql_error_style == "table":
                self._reply(200, format_csv(["error_message"], [[message]]))
            else:
                self._reply(200, skyserver_error_page(message), "text/html")
            return
        text = format_csv(names, rows)
        if fault in ("truncated", "cut", "midrow") and rows:
            lines = text.splitlines(keepends=True)
            if fault == "truncated":  # lose the last row(s), cleanly at a line end
                text = "".join(lines[:max(2, len(lines) - max(1, len(rows) // 3))])
            elif fault == "cut":  # lose the last two characters of the last value
                text = text[:-3]
            else:  # cut inside the middle row
                mid = 2 + len(rows) // 2
                text = "".join(lines[:mid]) + lines[mid][: len(lines[mid]) // 2]
        self._reply(200, text)


@contextlib.contextmanager
def serve_sqlite(db_path, host="127.0.0.1", port=0, **kw):
    """Serve ``db_path`` on ``host`` (a free port by default) for the duration of the block."""
    from pathlib import Path

    if not Path(db_path).is_file():
        raise FileNotFoundError(f"mock SkyServer database not found: {db_path}")
    with serving(SkyServerServer((host, port), db_path, **kw), "skyserver") as server:
        yield server


def main(argv=None):
    """``python -m photoz skyserver-serve DB``: serve a SQLite DB as a SkyServer until interrupted."""
    p = argparse.ArgumentParser(prog="photoz skyserver-serve", description=main.__doc__)
    p.add_argument("db")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    with serve_sqlite(a.db, a.host, a.port) as server:
        print(f"SkyServer on {server.url}/dr12/en/tools/search/x_results.aspx", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0
