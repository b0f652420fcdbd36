"""The catalog the paper's way: a CasJobs batch job ``SELECT ... INTO mydb.x``, then paged out.

``sdss.service: casjobs`` (the default ``skyserver`` needs no account). The
client speaks the SciServer CasJobs REST API (as SciServer's own SciScript
``CasJobs`` module does), base ``sdss.casjobs_url``
(``https://skyserver.sdss.org/CasJobs/RestApi``), header ``X-Auth-Token``:

* ``PUT  /contexts/{context}/jobs``  body ``{"Query", "TaskName"}`` -> the job id (text);
* ``GET  /jobs/{id}``                -> the job, ``Status`` 0 ready, 1 started,
  2 canceling, 3 canceled, 4 failed, 5 finished (``Error``/``Message`` on failure);
* ``POST /contexts/MyDB/query``      body ``{"Query", "TaskName"}``, ``Accept:
  application/json+array`` -> ``{"Result": [{"Columns": [...], "Data": [[...], ...]}]}``.

The token is read from the environment variable named by
``sdss.casjobs_token_env`` (``SCISERVER_TOKEN``); it is never written to the
config, a log or an output. A refused token (HTTP 401/403, e.g. expired)
stops the run with a message saying which variable to renew; the submitted
job's id is kept in ``{pages}/casjobs-job.json``, so a rerun with a fresh
token polls the same job instead of submitting it again.

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
import time
from pathlib import Path

import requests

from ..io import atomic_write_bytes
from . import query as Q
from .skyserver import (RETRYABLE_STATUS, backoff, PagedQuery, PageError, QueryError, fetch_paged, finish_catalog,
                        parse_csv_page)

__all__ = ["CasJobsClient", "CasJobsAuthError", "JOB_STATUS", "catalog_table_name", "mydb_paged_query",
           "run_casjobs_catalog", "token_from_env", "TASK_NAME"]

log = logging.getLogger("photoz.casjobs")

JOB_STATUS = {0: "ready", 1: "started", 2: "canceling", 3: "canceled", 4: "failed", 5: "finished"}
TASK_NAME = "photoz.query"


class CasJobsAuthError(QueryError):
    """CasJobs refused the token (missing, wrong or expired)."""


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

    def __init__(self, url, token, token_env="SCISERVER_TOKEN", timeout=120.0, max_retries=6,
                 backoff_base=2.0, backoff_max=300.0, poll_s=10.0, sleep=time.sleep):
        self.base_url = url.rstrip("/")
        self._token = token
        self.token_env = token_env
        self.timeout, self.max_retries = float(timeout), int(max_retries)
        self.backoff_base, self.backoff_max = float(backoff_base), float(backoff_max)
        self.poll_s, self.sleep = float(poll_s), sleep
        self.session = requests.Session()
        self.n_requests = 0

    def __repr__(self):
        return f"CasJobsClient({self.base_url!r}, token=<from ${self.token_env}>)"

    def _request(self, method, path, label, body=None, accept="application/json"):
        """One API call with retries; returns the response of a 200 answer."""
        url = f"{self.base_url}{path}"
        headers = {"X-Auth-Token": self._token, "Content-Type": "application/json", "Accept": accept}
        data = None if body is None else json.dumps(body).encode()
        last = None
        for attempt in range(self.max_retries + 1):
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
            if attempt < self.max_retries:
                backoff(self, label, attempt, last, retry_after)
        raise QueryError(f"{label}: no answer after {self.max_retries + 1} attempts; last error: {last}")

    # --- jobs --------------------------------------------------------------
    def submit_job(self, sql, context):
        """Submit ``sql`` as a batch job in ``context``; returns the job id."""
        resp = self._request("PUT", f"/contexts/{context}/jobs?TaskName={TASK_NAME}", "CasJobs submit",
                             {"Query": sql, "TaskName": TASK_NAME}, accept="text/plain")
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
                raise QueryError(f"CasJobs job {job_id} {JOB_STATUS[status]}: {why}")
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


def _run_job(client, selection, context, pages_dir):
    """Submit the INTO job (or find the one a previous run submitted) and wait for it; return the table."""
    table = catalog_table_name(selection, context)
    sql = Q.catalog_into_query(selection, table)
    record_path = Path(pages_dir) / "casjobs-job.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    if record.get("table") != table or record.get("url") != client.base_url:
        record = {}
    job_id = record.get("job_id")
    if job_id is not None and record.get("status") != "finished":
        status = int(client.job_status(job_id)["Status"])
        if status in (3, 4):
            log.warning("CasJobs job %s of an earlier run %s; submitting the query again", job_id, JOB_STATUS[status])
            job_id = None
    if job_id is None:
        job_id = client.submit_job(sql, context)
        record = {"job_id": job_id, "table": table, "url": client.base_url, "context": context, "status": "submitted"}
        atomic_write_bytes(record_path, json.dumps(record, indent=1).encode())
        log.info("CasJobs job %s submitted: the catalog query INTO mydb.%s in context %s", job_id, table, context)
    if record.get("status") != "finished":
        desc = client.wait(job_id)
        record.update(status="finished", rows=desc.get("Rows"))
        atomic_write_bytes(record_path, json.dumps(record, indent=1).encode())
        log.info("CasJobs job %s finished (%s rows reported)", job_id, desc.get("Rows"))
    return table, record


@contextlib.contextmanager
def open_casjobs(sdss_cfg, mock_db=None, sleep=time.sleep):
    """A :class:`CasJobsClient`: the real service, or ``mock_db`` behind a loopback CasJobs."""
    kw = dict(timeout=sdss_cfg.get("timeout_s", 120), max_retries=sdss_cfg.get("max_retries", 6),
              poll_s=sdss_cfg.get("casjobs_poll_s", 10), sleep=sleep)
    if mock_db:
        import secrets

        from .casjobs_server import serve_casjobs

        token = secrets.token_hex(16)  # a token of this run only, in memory
        with serve_casjobs(mock_db, tokens={token}, context=sdss_cfg.get("casjobs_context", "DR12")) as server:
            log.info("mock CasJobs on %s backed by %s", server.url, mock_db)
            yield CasJobsClient(server.url, token, "<loopback>", **kw), f"sqlite:{Path(mock_db).resolve()}:" \
                f"{Path(mock_db).stat().st_size}:{Path(mock_db).stat().st_mtime_ns}"
    else:
        env = sdss_cfg.get("casjobs_token_env", "SCISERVER_TOKEN")
        client = CasJobsClient(sdss_cfg.get("casjobs_url", "https://skyserver.sdss.org/CasJobs/RestApi"),
                               token_from_env(env), env, **kw)
        yield client, f"{client.base_url} {sdss_cfg.get('casjobs_context', 'DR12')}"


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
        rows = fetch_casjobs(client, selection, sdss_cfg.get("casjobs_context", "DR12"), pages_dir,
                             sdss_cfg.get("page_size", 50000), source)
    return finish_catalog(rows, out, rejected_out)
