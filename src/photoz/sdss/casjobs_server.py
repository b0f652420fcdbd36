"""A loopback CasJobs: the SciServer CasJobs REST API served from SQLite.

Speaks what :mod:`photoz.sdss.casjobs` (and SciServer's SciScript) sends:

* ``GET  /jobs/``                     -> every job of the user (SciScript's ``getJobStatus("")``);
* ``GET  /contexts/MyDB/Tables``      -> ``[{"Date", "Name", "Rows", "Size"}, ...]`` (SciScript's ``getTables``);
* ``PUT  /contexts/{context}/jobs``   submit ``{"Query"}`` -> job id (text/plain); the job runs
  in a thread: ``SELECT ... INTO mydb.T ...`` creates table ``T`` in this server's MyDB
  (an SQLite file of its own) from the context database (the mock SkyServer SQLite);
* ``GET  /jobs/{id}``                 -> ``{"JobID", "Status", "Message", "Error", "Query",
  "Target", "Rows", "TimeSubmit", "TimeEnd"}`` (Status 0 ready, 1 started, 4 failed, 5 finished);
* ``POST /contexts/{context}/query``  quick query ``{"Query"}`` -> ``{"Result": [{"TableName",
  "Columns", "Data"}]}`` (``Accept: application/json+array``) or CSV (``text/plain``); a
  statement without a result (``DROP TABLE x`` in MyDB) answers an empty result.

Every request needs ``X-Auth-Token`` with a token of ``tokens``; a token in
``expired`` (or one that passed ``expire_after`` requests) gets HTTP 401, as
CasJobs answers an expired SciServer token. ``fail_jobs`` makes the next n
jobs fail (Status 4 with an error message); ``faults`` is a queue of
``"500"``/``"503"``/``None`` answers for the next requests; a job stays
"started" for ``job_seconds``; ``lose_put_replies`` makes the next n
submissions create their job and then close the connection without an answer
(a reply lost on the way: the client cannot know the job exists). Strict as
the real service: a job INTO an existing MyDB table fails with SQL Server's
"There is already an object named '...' in the database."; SQL errors carry
SQL Server's messages (:func:`photoz.sdss.sqlerrors.sqlserver_message`), a
failing quick query or a refused token gets the HTTP error status with
SciServer's JSON error body (``ErrorCode``, ``ErrorType``, ``ErrorMessage``).
SQL is translated by :func:`photoz.sdss.query.to_sqlite`; at most
``max_rows`` rows come back from a quick query.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import re
import sqlite3
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .loopback import serving
from .query import MAX_ROWS, into_table, to_sqlite
from .skyserver_server import format_csv
from .sqlerrors import sciserver_error_json, sqlserver_message

__all__ = ["CasJobsServer", "serve_casjobs"]

log = logging.getLogger("photoz.casjobs_server")


#: The loopback service's behaviour, and what a test may change: the context it serves, tokens
#: that are refused as expired (``expired``; or every token after ``expire_after`` requests),
#: how many jobs fail (``fail_jobs``), queued faults, how long a job runs, the row cap of a
#: query, and how many PUT (submission) replies are lost after the job was created.
BEHAVIOUR = {"context": "DR12", "expired": (), "expire_after": None, "fail_jobs": 0, "faults": (),
             "job_seconds": 0.05, "max_rows": MAX_ROWS, "lose_put_replies": 0}


class CasJobsServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, db_path, mydb_path, tokens, **behaviour):
        unknown = sorted(set(behaviour) - set(BEHAVIOUR))
        if unknown:
            raise TypeError(f"CasJobsServer: unknown behaviour {unknown}; known: {', '.join(BEHAVIOUR)}")
        b = {**BEHAVIOUR, **behaviour}
        super().__init__(address, CasJobsHandler)
        self.db_path, self.mydb_path = str(db_path), str(mydb_path)
        self.tokens, self.expired = set(tokens), set(b["expired"])
        self.expire_after = b["expire_after"]
        self.context = b["context"]
        self.fail_jobs = int(b["fail_jobs"])
        self.lose_put_replies = int(b["lose_put_replies"])
        self.faults = collections.deque(b["faults"])
        self.job_seconds = float(b["job_seconds"])
        self.max_rows = int(b["max_rows"])
        self.jobs = {}
        self.requests = []  # (method, path, body query or None)
        self.lock = threading.Lock()
        self._next_id = 1000

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def _connect(self, context):
        if context.lower() == "mydb":
            con = sqlite3.connect(f"file:{self.mydb_path}", uri=True)
            con.execute("ATTACH DATABASE ? AS ctx", (f"file:{self.db_path}?mode=ro",))
            return con
        if context.lower() != self.context.lower():
            raise sqlite3.OperationalError(f"unknown context {context!r}")
        return sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)

    def run_job(self, job_id):
        job = self.jobs[job_id]
        time.sleep(self.job_seconds)
        with self.lock:
            job["Status"] = 1
            fail = self.fail_jobs > 0
            self.fail_jobs -= 1 if fail else 0
        time.sleep(self.job_seconds)
        if fail:
            job.update(Status=4, Error="Query timed out: the job exceeded its maximum running time", TimeEnd=time.time())
            return
        table = into_table(job["Query"])
        try:
            if table is None:
                raise sqlite3.OperationalError("a batch job here must write a MyDB table (SELECT ... INTO mydb.x)")
            con = sqlite3.connect(f"file:{self.mydb_path}", uri=True)
            try:
                con.execute("ATTACH DATABASE ? AS ctx", (f"file:{self.db_path}?mode=ro",))
                exists = con.execute("SELECT 1 FROM main.sqlite_master WHERE type='table' AND name=?",
                                     (table,)).fetchone()
                if exists:
                    raise sqlite3.OperationalError(f"There is already an object named '{table}' in the database.")
                con.execute(f"CREATE TABLE main.{table} AS {to_sqlite(job['Query'])}")
                con.commit()
                rows = con.execute(f"SELECT COUNT(*) FROM main.{table}").fetchone()[0]
            finally:
                con.close()
        except sqlite3.Error as err:
            job.update(Status=4, Error=sqlserver_message(err, job["Query"]), TimeEnd=time.time())
            return
        job.update(Status=5, Rows=rows, Message="Query Complete", TimeEnd=time.time())


class CasJobsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CasJobsServer

    def log_message(self, fmt, *args):
        log.debug("%s " + fmt, self.address_string(), *args)

    def _reply(self, status, body, ctype="application/json", headers=None):
        data = (json.dumps(body) if not isinstance(body, (str, bytes)) else body)
        data = data.encode() if isinstance(data, str) else data
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        n = int(self.headers.get("Content-Length", 0) or 0)
        raw = self.rfile.read(n).decode("utf-8", "replace") if n else ""
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return None

    def _gate(self, method):
        """Token and fault checks; returns (path, body) or None when already answered."""
        url = urllib.parse.urlsplit(self.path)
        body = self._body() if method in ("PUT", "POST") else {}
        srv = self.server
        with srv.lock:
            srv.requests.append((method, url.path, (body or {}).get("Query") if isinstance(body, dict) else None))
            n = len(srv.requests)
            fault = srv.faults.popleft() if srv.faults else None
        token = self.headers.get("X-Auth-Token", "")
        if srv.expire_after is not None and n > srv.expire_after:
            srv.expired |= srv.tokens
        if token in srv.expired:
            self._reply(401, sciserver_error_json(401, "Unauthorized", "The token has expired; log in again"))
            return None
        if token not in srv.tokens:
            self._reply(401, sciserver_error_json(401, "Unauthorized", "Invalid or missing X-Auth-Token"))
            return None
        if fault in ("500", "503"):
            self._reply(int(fault), {"Error": "Service unavailable"}, headers={"Retry-After": 0})
            return None
        if body is None:
            self._reply(400, {"Error": "the request body is not JSON"})
            return None
        return url.path, body

    def do_PUT(self):
        got = self._gate("PUT")
        if got is None:
            return
        path, body = got
        m = re.fullmatch(r".*/contexts/([^/]+)/jobs", path)
        if not m or "Query" not in body:
            self._reply(404, {"Error": f"no such resource {path}"})
            return
        srv = self.server
        with srv.lock:
            srv._next_id += 1
            job_id = srv._next_id
            srv.jobs[job_id] = {"JobID": job_id, "Status": 0, "Query": body["Query"], "Target": m.group(1),
                                "Message": "", "Error": None, "Rows": None, "TimeSubmit": time.time(),
                                "TimeEnd": None}
        threading.Thread(target=srv.run_job, args=(job_id,), daemon=True).start()
        with srv.lock:
            lose = srv.lose_put_replies > 0
            srv.lose_put_replies -= 1 if lose else 0
        if lose:  # the job exists; its id never reaches the client
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self._reply(200, str(job_id), "text/plain")

    def do_GET(self):
        got = self._gate("GET")
        if got is None:
            return
        path, _ = got
        srv = self.server
        if re.fullmatch(r".*/jobs/?", path):
            with srv.lock:
                self._reply(200, [dict(j) for _, j in sorted(srv.jobs.items())])
            return
        m = re.fullmatch(r".*/contexts/([^/]+)/tables", path, flags=re.I)
        if m:
            if m.group(1).lower() != "mydb":
                self._reply(200, [])
                return
            con = sqlite3.connect(f"file:{srv.mydb_path}", uri=True)
            try:
                names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
                tables = [{"Date": 0, "Name": n, "Rows": con.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0],
                           "Size": 0} for n in names]
            finally:
                con.close()
            self._reply(200, tables)
            return
        m = re.fullmatch(r".*/jobs/(\d+)", path)
        job = self.server.jobs.get(int(m.group(1))) if m else None
        if job is None:
            self._reply(404, {"Error": f"no such job {path}"})
            return
        self._reply(200, dict(job))

    def do_POST(self):
        got = self._gate("POST")
        if got is None:
            return
        path, body = got
        m = re.fullmatch(r".*/contexts/([^/]+)/query", path)
        if not m or "Query" not in body:
            self._reply(404, {"Error": f"no such resource {path}"})
            return
        try:
            con = self.server._connect(m.group(1))
            try:
                cur = con.execute(to_sqlite(body["Query"]))
                if cur.description is None:  # DROP TABLE and the like
                    con.commit()
                    names, rows = [], []
                else:
                    names = [d[0] for d in cur.description]
                    rows = cur.fetchmany(self.server.max_rows)
            finally:
                con.close()
        except sqlite3.Error as err:
            self._reply(500, sciserver_error_json(500, "InternalServerError", sqlserver_message(err, body["Query"])))
            return
        if "json" in self.headers.get("Accept", "application/json+array"):
            self._reply(200, {"Result": [{"TableName": "Table1", "Columns": names, "Data": [list(r) for r in rows]}]})
        else:
            self._reply(200, format_csv(names, rows), "text/plain")


@contextlib.contextmanager
def serve_casjobs(db_path, tokens, host="127.0.0.1", port=0, mydb=None, **kw):
    """Serve ``db_path`` as CasJobs context ``context`` (and a MyDB) for the block.

    ``mydb``: the MyDB SQLite file (a temporary one by default, deleted after).
    """
    if not Path(db_path).is_file():
        raise FileNotFoundError(f"mock CasJobs context database not found: {db_path}")
    with contextlib.ExitStack() as stack:
        if mydb is None:
            mydb = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mydb-"))) / "mydb.sqlite"
        server = CasJobsServer((host, port), db_path, mydb, tokens, **kw)
        yield stack.enter_context(serving(server, "casjobs"))
