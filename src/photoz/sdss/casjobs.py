"""The catalog the paper's way: a CasJobs batch job ``SELECT ... INTO mydb.x``, then paged out.

``sdss.service: casjobs`` (the default ``skyserver`` needs no account). The
client speaks the SciServer CasJobs REST API (as SciServer's own SciScript
``CasJobs`` module does), base ``sdss.casjobs_url``
(``https://skyserver.sdss.org/CasJobs/RestApi``), header ``X-Auth-Token``:

* ``PUT  /contexts/{context}/jobs``  body ``{"Query", "TaskName"}`` -> the job id (text);
* ``GET  /jobs/{id}``                -> the job, ``Status`` 0 ready, 1 started,
  2 canceling, 3 canceled, 4 failed, 5 finished (``Error``/``Message`` on failure);
* ``GET  /jobs/``                    -> every job of the user (SciScript: ``getJobStatus("")``);
* ``GET  /contexts/MyDB/Tables``     -> ``[{"Date", "Name", "Rows", "Size"}, ...]`` (SciScript: ``getTables``);
* ``POST /contexts/MyDB/query``      body ``{"Query", "TaskName"}``, ``Accept:
  application/json+array`` -> ``{"Result": [{"Columns": [...], "Data": [[...], ...]}]}``.

The token is read from the environment variable named by
``sdss.casjobs_token_env`` (``SCISERVER_TOKEN``); it is never written to the
config, a log or an output. A refused token (HTTP 401/403, e.g. expired)
stops the run with a message saying which variable to renew; a SQL error
(SQL Server's message in the answer: bad syntax, unknown column, an existing
table) stops it at once, quoting the message: no retry can fix them.

Idempotent, because a ``SELECT ... INTO mydb.T`` can run only once: before
submitting, the job list and the MyDB tables are looked up by the table's
name (:func:`catalog_table_name`, a hash of the query). A job of this query
still queued or running is waited for; a table that a finished job of this
query wrote (same row count) is reused; a table that no finished job wrote
(a failed or cancelled job's, or one of unknown origin) is dropped, then the
job is submitted. A submission whose answer is lost (timeout, reset, 5xx) is
not simply sent again: the job list is read first, and a job of this query
created since is adopted. The job's id is also kept in
``{pages}/casjobs-job.json`` (for the log and the pages' identity).

Completeness is checked as for SkyServer paging
(:func:`photoz.sdss.skyserver.fetch_paged`): the MyDB table's ``COUNT(*)``
(equal to the rows the job reports), keyset pages overlapping by one row,
every page's header, fields, numbers and row count; pages are kept for resume.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path

import requests

from ..io import atomic_write_bytes
from . import query as Q
from .sqlerrors import permanent_sql_error
from .skyserver import (RETRYABLE_STATUS, backoff, PagedQuery, PageError, QueryError, fetch_paged, finish_catalog,
                        parse_csv_page)

__all__ = ["CasJobsClient", "CasJobsAuthError", "CasJobsJobFailed", "CasJobsUnanswered", "JOB_STATUS",
           "catalog_table_name", "jobs_of_table", "mydb_paged_query", "run_casjobs_catalog", "submit_once",
           "token_from_env", "TASK_NAME"]

log = logging.getLogger("photoz.casjobs")

JOB_STATUS = {0: "ready", 1: "started", 2: "canceling", 3: "canceled", 4: "failed", 5: "finished"}
TASK_NAME = "photoz.query"


class CasJobsAuthError(QueryError):
    """CasJobs refused the token (missing, wrong or expired)."""


class CasJobsUnanswered(QueryError):
    """No usable answer after the retries (timeouts, resets, 5xx): the request may or may not have acted."""


class CasJobsJobFailed(QueryError):
    """A batch job ended failed or cancelled; ``error`` is CasJobs' message."""

    def __init__(self, message, error=""):
        super().__init__(message)
        self.error = error


def token_from_env(name):
    """The SciServer token from environment variable ``name``; :class:`CasJobsAuthError` if unset."""
    token = os.environ.get(name, "").strip()
    if not token:
        raise CasJobsAuthError(f"sdss.service is casjobs but the environment variable {name} holding the "
                               "SciServer token is not set (log in at https://apps.sciserver.org and export it)")
    return token


def _csv_value(v):
    if v is None:
        return "null"
    if isinstance(v, float):
        return repr(v)
    s = str(v)
    return '"' + s.replace('"', '""') + '"' if any(c in s for c in ',"\n') else s


class CasJobsClient:
    """The SciServer CasJobs REST API with retries; answers checked like SkyServer pages.

    ``token`` is held in memory only; ``__repr__`` never shows it.
    """

    def __init__(self, url, token, token_env, timeout, max_retries, poll_s, backoff=(2.0, 300.0), sleep=time.sleep):
        self.base_url = url.rstrip("/")
        self._token = token
        self.token_env = token_env
        self.timeout, self.max_retries = float(timeout), int(max_retries)
        self.backoff_base, self.backoff_max = map(float, backoff)
        self.poll_s, self.sleep = float(poll_s), sleep
        self.session = requests.Session()
        self.n_requests = 0

    def __repr__(self):
        return f"CasJobsClient({self.base_url!r}, token=<from ${self.token_env}>)"

    def _request(self, method, path, label, body=None, accept="application/json", retries=None):
        """One API call with retries (``retries``: this many instead of ``max_retries``); the 200 answer."""
        url = f"{self.base_url}{path}"
        headers = {"X-Auth-Token": self._token, "Content-Type": "application/json", "Accept": accept}
        data = None if body is None else json.dumps(body).encode()
        last = None
        retries = self.max_retries if retries is None else int(retries)
        for attempt in range(retries + 1):
            retry_after = 0.0
            try:
                self.n_requests += 1
                resp = self.session.request(method, url, data=data, headers=headers, timeout=self.timeout)
            except (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as err:
                last = f"{type(err).__name__}: {err}"
            else:
                if resp.status_code == 200:
                    return resp
                text = resp.text.strip()[:300]
                sql_error = permanent_sql_error(resp.text)
                if sql_error:
                    raise QueryError(f"{label}: CasJobs refused the query (HTTP {resp.status_code}): {sql_error} "
                                     "(an error in the query, which no retry can fix)")
                if resp.status_code in (401, 403):
                    raise CasJobsAuthError(f"{label}: CasJobs refused the token (HTTP {resp.status_code}: {text}); "
                                           f"it may have expired: put a fresh SciServer token in ${self.token_env} "
                                           "and rerun (kept pages and the submitted job are reused)")
                if resp.status_code not in RETRYABLE_STATUS:
                    raise QueryError(f"{label}: CasJobs answered HTTP {resp.status_code}: {text}")
                last = f"HTTP {resp.status_code}"
                try:
                    retry_after = float(resp.headers.get("Retry-After", 0) or 0)
                except ValueError:
                    retry_after = 0.0
            if attempt < retries:
                backoff(self, label, attempt, last, retry_after)
        raise CasJobsUnanswered(f"{label}: no answer after {retries + 1} attempts; last error: {last}")

    # --- jobs --------------------------------------------------------------
    def submit_job(self, sql, context, retries=None):
        """Submit ``sql`` as a batch job in ``context``; returns the job id.

        ``retries=0`` sends the PUT once: an unanswered submission may have
        created the job, so :func:`submit_once` looks before sending it again.
        """
        resp = self._request("PUT", f"/contexts/{context}/jobs?TaskName={TASK_NAME}", "CasJobs submit",
                             {"Query": sql, "TaskName": TASK_NAME}, accept="text/plain", retries=retries)
        try:
            return int(resp.text.strip())
        except ValueError:
            raise QueryError(f"CasJobs submit: the answer {resp.text[:100]!r} is not a job id") from None

    def job_status(self, job_id):
        """The job's description (a dict with at least ``Status``)."""
        resp = self._request("GET", f"/jobs/{int(job_id)}?TaskName={TASK_NAME}", f"CasJobs job {job_id}")
        try:
            desc = resp.json()
            int(desc["Status"])
        except (ValueError, KeyError, TypeError):
            raise QueryError(f"CasJobs job {job_id}: unreadable status {resp.text[:200]!r}") from None
        return desc

    def list_jobs(self):
        """Every job of the user (``GET /jobs/``), as CasJobs describes them."""
        resp = self._request("GET", f"/jobs/?TaskName={TASK_NAME}", "CasJobs job list")
        try:
            jobs = resp.json()
            return [j for j in jobs if int(j["JobID"]) >= 0]
        except (ValueError, KeyError, TypeError):
            raise QueryError(f"CasJobs job list: unreadable answer {resp.text[:200]!r}") from None

    def mydb_tables(self):
        """``{table name (lower case): rows}`` of MyDB (``GET /contexts/MyDB/Tables``)."""
        resp = self._request("GET", f"/contexts/MyDB/Tables?TaskName={TASK_NAME}", "CasJobs MyDB tables")
        try:
            return {str(t["Name"]).lower(): t.get("Rows") for t in resp.json()}
        except (ValueError, KeyError, TypeError):
            raise QueryError(f"CasJobs MyDB tables: unreadable answer {resp.text[:200]!r}") from None

    def drop_table(self, table):
        """``DROP TABLE`` a MyDB table (a quick query in context MyDB)."""
        if not _TABLE_NAME.fullmatch(table):
            raise ValueError(f"not a plain MyDB table name: {table!r}")
        self._request("POST", f"/contexts/MyDB/query?TaskName={TASK_NAME}", f"CasJobs drop mydb.{table}",
                      {"Query": f"DROP TABLE {table}", "TaskName": TASK_NAME}, accept="application/json+array")

    def wait(self, job_id, max_wait_s=None):
        """Poll job ``job_id`` until it ends; return its description if finished, else raise."""
        start = time.monotonic()
        while True:
            desc = self.job_status(job_id)
            status = int(desc["Status"])
            if status == 5:
                return desc
            if status in (3, 4):
                why = desc.get("Error") or desc.get("Message") or "no message"
                raise CasJobsJobFailed(f"CasJobs job {job_id} {JOB_STATUS[status]}: {why}", str(why))
            if max_wait_s is not None and time.monotonic() - start > max_wait_s:
                raise QueryError(f"CasJobs job {job_id} still {JOB_STATUS.get(status, status)} after {max_wait_s} s")
            log.info("CasJobs job %s %s; polling again in %.0f s", job_id, JOB_STATUS.get(status, status),
                     self.poll_s)
            self.sleep(self.poll_s)

    # --- quick queries (what fetch_paged calls) ------------------------------
    def query_rows(self, sql, context="MyDB", label="CasJobs query"):
        """``(columns, rows)`` of a quick query."""
        resp = self._request("POST", f"/contexts/{context}/query?TaskName={TASK_NAME}", label,
                             {"Query": sql, "TaskName": TASK_NAME}, accept="application/json+array")
        try:
            result = resp.json()["Result"][0]
            return list(result["Columns"]), result["Data"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise PageError(f"an answer that is not a CasJobs result: {resp.text[:200]!r}") from None

    def fetch(self, sql, columns, label, validate=None):
        """Like :meth:`SkyServerClient.fetch`: ``(csv_text, data_lines)`` once the answer passes the checks."""
        last = None
        for attempt in range(self.max_retries + 1):
            try:
                names, rows = self.query_rows(sql, "MyDB", label)
                text = ",".join(names) + "\n" + "".join(",".join(_csv_value(v) for v in r) + "\n" for r in rows)
                data = parse_csv_page(text, columns)
                if validate is not None:
                    validate(data)
                return text, data
            except PageError as err:
                last = str(err)
            if attempt < self.max_retries:
                backoff(self, label, attempt, last)
        raise QueryError(f"{label}: no complete answer after {self.max_retries + 1} attempts; last error: {last}")


_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def catalog_table_name(selection, context):
    """The MyDB table of this query: Appendix A's ``SDSS_DR12`` plus a hash of the query text.

    Another selection gets another table, so an old table is never read as
    the answer to a new query.
    """
    h = hashlib.sha256(Q.catalog_into_query(selection, "x").encode() + context.encode()).hexdigest()[:10]
    return f"SDSS_DR12_{h}"


def mydb_paged_query(table, identity):
    """The MyDB table as a :class:`PagedQuery` keyed on ``specObjID`` (the catalog's query columns)."""
    cols = Q.CATALOG_QUERY_COLUMNS
    return PagedQuery(name="catalog", columns=cols, key=("specObjID",),
                      page_sql=lambda after, limit: Q.mydb_page_query(table, cols, "specObjID",
                                                                       None if after is None else after[0], limit),
                      count_sql=Q.mydb_count_query(table), identity=identity)


def jobs_of_table(client, table):
    """The server's jobs that write ``mydb.table`` (found by the INTO of their query), oldest first."""
    ours = [j for j in client.list_jobs() if (Q.into_table(str(j.get("Query") or "")) or "").lower() == table.lower()]
    return sorted(ours, key=lambda j: int(j["JobID"]))


def _prepare(client, table):
    """Before submitting: ``(job id to wait for or None, what was found, ids of the table's jobs)``.

    A queued or running job of this query is waited for; a table written by a
    finished job of this query is reused; any other table of that name (a
    failed, cancelled or partial job's, or of unknown origin) is dropped.
    """
    jobs = jobs_of_table(client, table)
    ids = {int(j["JobID"]) for j in jobs}
    active = [j for j in jobs if int(j["Status"]) in (0, 1, 2)]
    if active:
        return int(active[-1]["JobID"]), "running", ids
    rows = client.mydb_tables().get(table.lower(), "absent")
    if rows == "absent":
        return None, "absent", ids
    finished = [j for j in jobs if int(j["Status"]) == 5]
    if finished:
        job = finished[-1]
        if job.get("Rows") is None or rows is None or int(job["Rows"]) == int(rows):
            return int(job["JobID"]), "finished", ids
        why = f"it holds {rows} rows but job {job['JobID']} reported {job['Rows']}"
    else:
        failed = [f"{j['JobID']} {JOB_STATUS.get(int(j['Status']))}" for j in jobs]
        why = "no finished job of this query wrote it" + (f" (jobs {', '.join(failed)})" if failed else "")
    log.warning("CasJobs: mydb.%s exists but %s: dropping it before submitting the query", table, why)
    client.drop_table(table)
    return None, "dropped", ids


def submit_once(client, sql, context, table, known_ids=()):
    """Submit the INTO job exactly once, even when the answer to the PUT is lost.

    The PUT is sent without retries; when it goes unanswered (timeout, reset,
    5xx) the job list is read before anything is sent again, and a job of this
    table that was not among ``known_ids`` (it was created by the lost PUT)
    is adopted.
    """
    last = None
    for attempt in range(client.max_retries + 1):
        try:
            return client.submit_job(sql, context, retries=0)
        except CasJobsUnanswered as err:
            last = err
        backoff(client, "CasJobs submit", attempt, last)
        new = [j for j in jobs_of_table(client, table) if int(j["JobID"]) not in set(known_ids)]
        if new:
            job_id = int(new[-1]["JobID"])
            log.warning("CasJobs: the answer to the submission was lost, but job %s INTO mydb.%s was created: "
                        "using it (not submitting again)", job_id, table)
            return job_id
    raise QueryError(f"CasJobs submit of the query INTO mydb.{table}: no answer after "
                     f"{client.max_retries + 1} attempts, and no job of it on the server; last error: {last}")


def _run_job(client, selection, context, pages_dir):
    """Make ``mydb.<table>`` hold this query's result, submitting the INTO job only if needed."""
    table = catalog_table_name(selection, context)
    sql = Q.catalog_into_query(selection, table)
    record_path = Path(pages_dir) / "casjobs-job.json"
    for _ in range(3):
        job_id, found, known = _prepare(client, table)
        if job_id is None:
            job_id = submit_once(client, sql, context, table, known)
            log.info("CasJobs job %s submitted: the catalog query INTO mydb.%s in context %s", job_id, table, context)
        else:
            log.info("CasJobs: job %s of this query (%s) found by its table mydb.%s: not submitting again",
                     job_id, found, table)
        record = {"job_id": job_id, "table": table, "url": client.base_url, "context": context, "status": "submitted"}
        atomic_write_bytes(record_path, json.dumps(record, indent=1).encode())
        try:
            desc = client.wait(job_id)
        except CasJobsJobFailed:
            if found == "running":  # an earlier run's job failed: clear its table and submit ours
                log.warning("CasJobs job %s of an earlier run failed; submitting the query again", job_id)
                continue
            raise
        record.update(status="finished", rows=desc.get("Rows"))
        atomic_write_bytes(record_path, json.dumps(record, indent=1).encode())
        log.info("CasJobs job %s finished (%s rows reported)", job_id, desc.get("Rows"))
        return table, record
    raise QueryError(f"CasJobs: the jobs INTO mydb.{table} keep failing; see the log")


@contextlib.contextmanager
def open_casjobs(sdss_cfg, mock_db=None, sleep=time.sleep):
    """A :class:`CasJobsClient`: the real service, or ``mock_db`` behind a loopback CasJobs."""
    kw = dict(timeout=sdss_cfg["timeout_s"], max_retries=sdss_cfg["max_retries"],
              poll_s=sdss_cfg["casjobs_poll_s"], sleep=sleep)
    if mock_db:
        import secrets

        from .casjobs_server import serve_casjobs

        token = secrets.token_hex(16)  # a token of this run only, in memory
        with serve_casjobs(mock_db, tokens={token}, context=sdss_cfg["casjobs_context"]) as server:
            log.info("mock CasJobs on %s backed by %s", server.url, mock_db)
            yield CasJobsClient(server.url, token, "<loopback>", **kw), f"sqlite:{Path(mock_db).resolve()}:" \
                f"{Path(mock_db).stat().st_size}:{Path(mock_db).stat().st_mtime_ns}"
    else:
        env = sdss_cfg["casjobs_token_env"]
        client = CasJobsClient(sdss_cfg["casjobs_url"],
                               token_from_env(env), env, **kw)
        yield client, f"{client.base_url} {sdss_cfg['casjobs_context']}"


def fetch_casjobs(client, selection, context, pages_dir, page_size, source):
    """Run the job (or reuse it), then page the MyDB table out with the completeness checks."""
    pages_dir = Path(pages_dir)
    pages_dir.mkdir(parents=True, exist_ok=True)
    table, record = _run_job(client, selection, context, pages_dir)
    pq = mydb_paged_query(table, {"selection": dict(selection), "context": context, "job_id": record["job_id"]})
    rows = fetch_paged(client, pq, pages_dir, page_size, source)
    if record.get("rows") is not None and int(record["rows"]) != len(rows):
        raise QueryError(f"CasJobs job {record['job_id']} reported {record['rows']} rows but mydb.{table} "
                         f"holds {len(rows)}")
    return rows


def run_casjobs_catalog(sdss_cfg, selection, pages_dir, out, rejected_out=None, mock_db=None, sleep=time.sleep):
    """``python -m photoz query`` with ``sdss.service: casjobs``."""
    with open_casjobs(sdss_cfg, mock_db, sleep=sleep) as (client, source):
        rows = fetch_casjobs(client, selection, sdss_cfg["casjobs_context"], pages_dir,
                             sdss_cfg["page_size"], source)
    return finish_catalog(rows, out, rejected_out)
